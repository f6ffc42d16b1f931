/**
 * This installed stubhost: its root folder and version, read from its package.json. Found by
 * walking up from this module, so it holds whether the host runs from src/ (tsx) or from
 * compiled JavaScript in another folder.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: { root: string; version: string } | undefined;

function find(): { root: string; version: string } {
  if (cached) return cached;
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const file = path.join(dir, 'package.json');
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === 'stubhost') return (cached = { root: dir, version: String(pkg.version) });
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`stubhost's package.json was not found above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

/** The folder holding stubhost's package.json. */
export function packageRoot(): string {
  return find().root;
}

/** The "version" of stubhost's package.json. */
export function packageVersion(): string {
  return find().version;
}
