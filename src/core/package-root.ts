/**
 * The folder of stubhost's own package.json. Files the code reads at run time (the native addon
 * in build/Release, the compiled stub in dist/stub, the gRPC .proto files, the stub's health
 * worker, the tsconfig handed to tsx for model.ts) are found from here, so a module finds them
 * the same whether it runs from src/ (vitest, scripts through tsx) or from dist/ (the build).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | undefined;

export function packageRoot(): string {
  root ??= findPackageRoot(path.dirname(fileURLToPath(import.meta.url)));
  return root;
}

function findPackageRoot(start: string): string {
  for (let dir = start; ; dir = path.dirname(dir)) {
    const manifest = path.join(dir, 'package.json');
    if (fs.existsSync(manifest) && (JSON.parse(fs.readFileSync(manifest, 'utf8')) as { name?: unknown }).name === 'stubhost') return dir;
    if (path.dirname(dir) === dir) throw new Error(`stubhost's package.json not found above ${start}`);
  }
}
