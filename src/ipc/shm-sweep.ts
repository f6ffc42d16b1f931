/**
 * Removes shared-memory files that a dead process left behind. Names are
 * `/stubhost-<hostPid>-<stub>...`, so a file whose host pid no longer runs belongs to nobody.
 */
import fs from 'node:fs';
import { native } from './native.js';

const SHM_DIR = '/dev/shm';
export const SHM_PREFIX = 'stubhost-';

/** Unlinks every /dev/shm file whose name starts with `prefix` (no leading slash). */
export function sweepShm(prefix: string): number {
  let removed = 0;
  for (const name of shmNames()) {
    if (!name.startsWith(prefix)) continue;
    try {
      if (native.shmUnlink(`/${name}`)) removed++;
    } catch {
      // Raced with its owner's own cleanup.
    }
  }
  return removed;
}

function shmNames(): string[] {
  try {
    return fs.readdirSync(SHM_DIR);
  } catch {
    return [];
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Unlinks files of stubhost hosts that are no longer running (called at server start). */
export function sweepOrphans(): number {
  let removed = 0;
  const dead = new Set<string>();
  for (const name of shmNames()) {
    const m = /^stubhost-(\d+)-/.exec(name);
    if (!m || m[1] === String(process.pid)) continue;
    if (!isAlive(Number(m[1]))) dead.add(m[1]!);
  }
  for (const pid of dead) removed += sweepShm(`${SHM_PREFIX}${pid}-`);
  return removed;
}
