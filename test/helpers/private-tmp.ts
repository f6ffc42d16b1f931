/**
 * A private TMPDIR for one test file and everything it starts (in-process servers, stubs, CLI
 * children inherit it), so "nothing left in /tmp" can be checked exactly while other test
 * processes use /tmp at the same time. Test files run in their own processes (vitest forks).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface PrivateTmp {
  dir: string;
  /** Entries named stubhost-* still in the folder. */
  leftovers(): string[];
  /** Removes the folder and restores TMPDIR. */
  remove(): void;
}

export function usePrivateTmpdir(prefix: string): PrivateTmp {
  const realTmp = os.tmpdir();
  const previous = process.env.TMPDIR;
  const dir = fs.mkdtempSync(path.join(realTmp, prefix));
  // tsx keeps its compile cache in <tmpdir>/tsx-<uid>: share the real one, or every stub of this
  // file would compile from scratch.
  const cache = `tsx-${process.getuid?.() ?? os.userInfo().username}`;
  if (fs.existsSync(path.join(realTmp, cache))) fs.symlinkSync(path.join(realTmp, cache), path.join(dir, cache));
  process.env.TMPDIR = dir;
  return {
    dir,
    leftovers: () => fs.readdirSync(dir).filter((n) => n.startsWith('stubhost-')),
    remove() {
      if (previous === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = previous;
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
