#!/usr/bin/env node
// The stubhost command. The host runs from its TypeScript sources through tsx (no build step),
// the same way stubs load model.ts.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli.ts');
process.exitCode = await main(process.argv.slice(2));
