#!/usr/bin/env node
// The stubhost command: the host compiled to dist/ by `npm install` (its prepare script runs
// `npm run build`). tsx is not loaded here; stubs load it only for model.ts.
let cli;
try {
  cli = await import('../dist/src/cli.js');
} catch (err) {
  if (err?.code !== 'ERR_MODULE_NOT_FOUND' || !String(err.message).includes('dist/src/cli.js')) throw err;
  console.error('stubhost is not built (dist/src/cli.js is missing): run `npm run build` (npm install runs it)');
  process.exit(1);
}
process.exitCode = await cli.main(process.argv.slice(2));
