/**
 * Builds dist/ (incrementally: about 2 s when nothing changed) before any suite runs, so every
 * test — also `npx vitest run test/one.test.ts` after an edit — exercises the compiled host and
 * stub a user runs: `bin/stubhost.js` loads dist/src, and every stub runs dist/stub/main.js.
 */
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';

export function setup(): void {
  const root = path.resolve(import.meta.dirname, '..');
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  try {
    execFileSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.build.json')], { cwd: root, stdio: 'pipe' });
  } catch (err) {
    const e = err as { stdout?: Buffer; stderr?: Buffer; message: string };
    throw new Error(`the build (tsc -p tsconfig.build.json) failed:\n${e.stdout?.toString() ?? ''}${e.stderr?.toString() ?? e.message}`);
  }
}
