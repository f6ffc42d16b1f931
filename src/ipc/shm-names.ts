/**
 * Names of stubhost's own shared-memory files, and which files belong to what.
 *
 * A stub's region is `/stubhost-<hostPid>-<random>`: the host pid lets the sweep at server start
 * find files of hosts that no longer run; the 128 random bits make the name unguessable, so a
 * client cannot name a live region it never saw. Arena segments are `<region>-h<n>` (written by
 * the host) and `<region>-s<n>` (written by the stub).
 *
 * Every test of "is this file one of X's" compares whole names: `<region>` itself or
 * `<region>-<h|s><digits>`, never a bare prefix, so one stub's cleanup cannot touch a file of
 * another stub whose name merely starts the same way (`…-1` vs `…-10`).
 */
import { randomBytes } from 'node:crypto';

/** Every file stubhost creates in /dev/shm starts with this (no leading slash). */
export const SHM_PREFIX = 'stubhost-';

/** A fresh, unguessable region name (with the leading slash shm_open takes). */
export function newRegionName(hostPid = process.pid): string {
  return `/${SHM_PREFIX}${hostPid}-${randomBytes(16).toString('hex')}`;
}

const SEGMENT_SUFFIX = /^-[hs]\d+$/;

/** Whether /dev/shm entry `file` is region `region` or one of its arena segments (names without the leading slash). */
export function belongsToRegion(file: string, region: string): boolean {
  if (file === region) return true;
  return file.startsWith(region) && SEGMENT_SUFFIX.test(file.slice(region.length));
}

/** The host pid a stubhost file name carries; undefined for any other name. */
export function hostPidOf(file: string): number | undefined {
  const m = /^stubhost-(\d+)-/.exec(file);
  return m ? Number(m[1]) : undefined;
}
