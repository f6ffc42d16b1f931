/**
 * Removes shared-memory files that a dead process left behind. Matching is by whole name (see
 * shm-names.ts): a region's sweep takes that region and its segments only, a host's sweep the
 * files whose host-pid field is that pid.
 */
import fs from 'node:fs';
import { native } from './native.js';
import { belongsToRegion, hostPidOf } from './shm-names.js';
import { isAlive } from '../core/pid.js';

const SHM_DIR = '/dev/shm';

/** Unlinks region `region` (name with or without the leading slash) and its arena segments. */
export function sweepRegion(region: string): number {
  const base = region.startsWith('/') ? region.slice(1) : region;
  return unlinkWhere((name) => belongsToRegion(name, base));
}

/** Unlinks every stubhost file of host `pid`. */
export function sweepHost(pid: number): number {
  return unlinkWhere((name) => hostPidOf(name) === pid);
}

function unlinkWhere(match: (name: string) => boolean): number {
  let removed = 0;
  for (const name of shmNames()) {
    if (!match(name)) continue;
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

/** Unlinks files of stubhost hosts that are no longer running (called at server start). */
export function sweepOrphans(): number {
  const dead = new Set<number>();
  for (const name of shmNames()) {
    const pid = hostPidOf(name);
    if (pid === undefined || pid === process.pid) continue;
    if (!isAlive(pid)) dead.add(pid);
  }
  let removed = 0;
  for (const pid of dead) removed += sweepHost(pid);
  return removed;
}
