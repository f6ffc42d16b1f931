/**
 * The native addon (native/stubhost_native.cc), typed. Built by `npm install` through node-gyp.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { packageRoot } from '../core/package-root.js';

export const FUTEX_WOKEN = 0;
export const FUTEX_NOT_EQUAL = 1;
export const FUTEX_TIMED_OUT = 2;
export const WATCH_CHANGED = 0;
export const WATCH_TIMED_OUT = 2;
export const WATCH_CLOSED = 3;

export interface NativeWatcher {
  /** Wait (on the watcher's thread) until the word differs from `expected`; then call back once. */
  arm(expected: number, timeoutMs?: number): void;
  close(): void;
  /** Whether a pending arm keeps the process alive (default: it does not). */
  ref(): void;
  unref(): void;
}

export interface NativeDoorbell {
  /** Stops watching and closes the eventfd. */
  close(): void;
  /** Whether watching keeps the process alive (default: it does not). */
  ref(): void;
  unref(): void;
}

export interface NativeAddon {
  /** Creates and maps a shm file; `reserve` (default true) backs every page now (ENOSPC instead of a later SIGBUS). */
  shmCreate(name: string, size: number, reserve?: boolean): SharedArrayBuffer;
  /** Backs a range of a sparse mapping with pages now; 0, or an errno when /dev/shm has no room. */
  shmPopulate(sab: SharedArrayBuffer, byteOffset: number, length: number): number;
  shmOpen(name: string): SharedArrayBuffer;
  shmUnlink(name: string): boolean;
  futexWait(sab: SharedArrayBuffer, byteOffset: number, expected: number, timeoutMs: number): number;
  futexWake(sab: SharedArrayBuffer, byteOffset: number, count: number): number;
  /** Linux prctl(PR_SET_PDEATHSIG): returns the parent pid at the time of the call. */
  setParentDeathSignal(signal: number): number;
  Watcher: new (sab: SharedArrayBuffer, byteOffset: number, onChange: (result: number) => void) => NativeWatcher;
  /** Watches an eventfd on this thread's event loop: readable → cleared → `onRing()`. Owns the fd. */
  Doorbell: new (fd: number, onRing: () => void) => NativeDoorbell;
  /** A new non-blocking, close-on-exec eventfd. */
  eventfdCreate(): number;
  /** Our own close-on-exec copy of a doorbell eventfd (refused if `fd` is not one); `closeOriginal` closes `fd`. */
  bellAdopt(fd: number, closeOriginal: boolean): number;
  /** Makes the eventfd readable (the peer's Doorbell fires). */
  bellRing(fd: number): void;
  /** Closes an fd from bellAdopt or eventfdCreate. */
  bellClose(fd: number): void;
  /** RLIMIT_NOFILE (Infinity for RLIM_INFINITY). */
  getNofileLimit(): { soft: number; hard: number };
  /** Sets the soft RLIMIT_NOFILE to `n` (at most the hard limit); returns the soft limit now in force. */
  setNofileSoftLimit(n: number): number;
}

const require = createRequire(import.meta.url);

function load(): NativeAddon {
  const file = path.join(packageRoot(), 'build', 'Release', 'stubhost_native.node');
  try {
    return require(file) as NativeAddon;
  } catch (err) {
    throw new Error(`stubhost's native addon is not built (${file}): run \`npm install\` (it compiles with node-gyp; needs g++, make, python3). Cause: ${(err as Error).message}`);
  }
}

export const native: NativeAddon = load();
