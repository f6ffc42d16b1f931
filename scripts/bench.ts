/**
 * The benchmark dispatcher: `npm run bench -- <name> [args]` runs scripts/bench/<name>.ts, whose
 * default export is `(argv: string[]) => Promise<void>`. To add a benchmark, drop a file there.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'bench');
const available = fs
  .readdirSync(dir)
  .filter((f) => f.endsWith('.ts') && f !== 'common.ts')
  .map((f) => f.slice(0, -3))
  .sort();

const [name, ...rest] = process.argv.slice(2);
if (!name || !available.includes(name)) {
  process.stderr.write(`usage: npm run bench -- <name> [--json]\n  benchmarks: ${available.join(', ') || '(none)'}\n`);
  process.exit(name ? 2 : 0);
}

const mod = (await import(pathToFileURL(path.join(dir, `${name}.ts`)).href)) as { default?: (argv: string[]) => Promise<void> };
if (typeof mod.default !== 'function') {
  process.stderr.write(`scripts/bench/${name}.ts has no default export (argv: string[]) => Promise<void>\n`);
  process.exit(2);
}
await mod.default(rest);
// Peers and watcher threads must not keep a finished benchmark alive.
process.exit(0);
