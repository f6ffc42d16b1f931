/**
 * What a child process holds in memory, read from /proc on Linux, and the default cap on it.
 */
import fs from 'node:fs';
import os from 'node:os';

/**
 * Resident bytes of `pid` outside shared memory (RssAnon + RssFile of /proc/<pid>/status), or
 * undefined once it is gone. Shared memory is left out: a stub's arenas (and the host's, which
 * it maps) are capped by shm_max_bytes and are not the model's own allocations.
 */
export function residentBytes(pid: number): number | undefined {
  let status: string;
  try {
    status = fs.readFileSync(`/proc/${pid}/status`, 'latin1');
  } catch {
    return undefined;
  }
  return (kiB(status, 'RssAnon:') + kiB(status, 'RssFile:')) * 1024;
}

function kiB(status: string, field: string): number {
  const at = status.indexOf(field);
  if (at < 0) return 0;
  return parseInt(status.slice(at + field.length, status.indexOf('\n', at)), 10) || 0;
}

/**
 * The default per-stub memory cap: half the memory this server may use (the machine's, or its
 * cgroup's limit when lower, as in a container). Generous, so no sane model meets it, but one
 * runaway model is stopped with a clear error before the kernel's OOM killer picks a victim.
 */
export function defaultStubMemoryLimitBytes(): number {
  let total = os.totalmem();
  try {
    const max = fs.readFileSync('/sys/fs/cgroup/memory.max', 'utf8').trim();
    if (/^\d+$/.test(max)) total = Math.min(total, Number(max));
  } catch {
    // no cgroup v2 limit
  }
  return Math.floor(total / 2);
}
