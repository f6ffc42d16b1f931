/**
 * The identities (device, inode) of the shared-memory files this process created or mapped for
 * its stubs, while they are in use. The client shared-memory registry refuses a file whose
 * identity is here: a hard link or a rename can give one of our regions or arena segments a
 * name that passes every name check, but not a different inode.
 */
import fs from 'node:fs';

const SHM_DIR = '/dev/shm';

/** shm name → identity; identity → how many live names carry it. */
const byName = new Map<string, string>();
const counts = new Map<string, number>();

const identity = (dev: bigint | number, ino: bigint | number): string => `${dev}:${ino}`;

/** Records the file `name` (shm_open name, leading slash) now names; call right after creating or opening it. */
export function trackOwnShm(name: string): void {
  let st: fs.BigIntStats;
  try {
    st = fs.statSync(`${SHM_DIR}${name}`, { bigint: true });
  } catch {
    return; // already unlinked by the peer: no client can open it by any name
  }
  untrackOwnShm(name);
  const id = identity(st.dev, st.ino);
  byName.set(name, id);
  counts.set(id, (counts.get(id) ?? 0) + 1);
}

/** Forgets `name` once its mapping is released (segment dropped, region closed). */
export function untrackOwnShm(name: string): void {
  const id = byName.get(name);
  if (id === undefined) return;
  byName.delete(name);
  const n = (counts.get(id) ?? 1) - 1;
  if (n <= 0) counts.delete(id);
  else counts.set(id, n);
}

/** Whether a file with this device and inode is one of ours. */
export function isOwnShm(dev: bigint | number, ino: bigint | number): boolean {
  return counts.has(identity(dev, ino));
}

/** How many of our files are tracked (tests: nothing is kept after the files are gone). */
export function ownShmCount(): number {
  return byName.size;
}
