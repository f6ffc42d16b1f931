/**
 * The stub's side of its launcher (src/instance/stub-launcher.ts): what differs between a stub
 * that is a child process of the host and one that is a worker thread of it. main.ts and
 * stub-loop.ts are the same for both; they reach the difference only through `StubLaunch`.
 *
 * Settings come from the environment in both cases (a worker thread gets its own copy of it, so
 * the region name is in neither the host's environment nor any argv).
 */
import fs from 'node:fs';
import { isMainThread, parentPort } from 'node:worker_threads';
import { native } from '../src/ipc/native.js';
import { adoptDoorbell } from '../src/ipc/doorbell.js';

export interface StubSettings {
  regionName: string;
  hostPid: number;
  healthIntervalMs: number;
  arenaMaxBytes?: number;
  spinMicros: number;
  /** Our own copy of the host's doorbell (see src/ipc/doorbell.ts), if the host passed one. */
  doorbellFd?: number;
}

export interface StubLaunch {
  readonly isolation: 'process' | 'thread';
  readonly settings: StubSettings;
  /**
   * Ties the stub's life to the host's. A process asks for SIGKILL when its parent dies and
   * offers itself to the OOM killer first; a thread dies with its process anyway.
   */
  bindToHost(): void;
  /** Whether the health thread watches the host's pid (and kills this process when it is gone). */
  readonly watchHost: boolean;
  /** Ends the stub: the process, or the thread only. */
  exit(code: number): void;
  /**
   * Keeps model code from ending more than the stub. `report` tells the host the cause before
   * the stub goes. A process needs nothing: all it can end is itself.
   */
  guardModelCode(report: (cause: string) => void): void;
}

/** The settings the host put in the environment, or a usage message. */
function readSettings(): StubSettings | string {
  const regionName = process.env.STUBHOST_REGION;
  if (!regionName) return 'usage: STUBHOST_REGION=<regionName> node dist/stub/main.js';
  return {
    regionName,
    hostPid: Number(process.env.STUBHOST_HOST_PID ?? process.ppid),
    healthIntervalMs: Number(process.env.STUBHOST_HEALTH_INTERVAL_MS ?? 300),
    // The arena cap (--shm-max-bytes, or the model parameter shm_max_bytes) applies to both sides.
    arenaMaxBytes: Number(process.env.STUBHOST_SHM_MAX_BYTES ?? 0) || undefined,
    spinMicros: Number(process.env.STUBHOST_SPIN_US ?? 50),
    doorbellFd: takeDoorbell(),
  };
}

/**
 * The host's doorbell, taken first thing (before anything can start a process that would
 * inherit it): a process closes the inherited fd for a close-on-exec copy; a thread shares the
 * host's fd table and copies it so the host can close its own whenever it likes.
 */
function takeDoorbell(): number | undefined {
  const fd = process.env.STUBHOST_DOORBELL_FD;
  if (fd === undefined || fd === '') return undefined;
  return adoptDoorbell(Number(fd), isMainThread);
}

function processLaunch(settings: StubSettings): StubLaunch {
  return {
    isolation: 'process',
    settings,
    watchHost: true,
    bindToHost() {
      // Die with the host even when it is SIGKILLed; then make sure it did not die before the prctl.
      native.setParentDeathSignal(9);
      if (process.ppid !== settings.hostPid) process.exit(70);
      // Under memory pressure the kernel's OOM killer should pick a stub (which restarts), not
      // the host that serves every model. Raising one's own score needs no privilege.
      try {
        fs.writeFileSync('/proc/self/oom_score_adj', '500');
      } catch {
        // not Linux, or /proc is read-only: nothing to adjust
      }
    },
    exit: (code) => process.exit(code),
    guardModelCode() {},
  };
}

function threadLaunch(settings: StubSettings): StubLaunch {
  // Kept before model code can replace them.
  const exitThread = process.exit.bind(process);
  const kill = process.kill.bind(process);
  return {
    isolation: 'thread',
    settings,
    // The prctl, the OOM score and the health thread's "host is gone" kill would all act on the
    // host's own process.
    watchHost: false,
    bindToHost() {},
    exit: (code) => exitThread(code),
    guardModelCode(report) {
      // In a worker, process.exit() already ends the thread only; the host is told why, so the
      // requests that fail name the call rather than an exit code.
      process.exit = ((code?: number | string | null) => {
        const cause = `model code called process.exit(${code ?? ''})`;
        report(cause);
        // Also by the worker's port: the host reads the queue asynchronously and may see the
        // thread's exit first, but Node delivers a port's messages before the worker's 'exit'.
        parentPort?.postMessage({ stubhostFault: cause });
        exitThread(code === undefined || code === null ? undefined : Number(code));
      }) as typeof process.exit;
      // A signal to our own process (its pid, its group as 0 or -pid, or -1: every process)
      // would reach the server, not the stub. Signal 0 only probes, and stays allowed.
      process.kill = ((pid: number, signal?: string | number) => {
        const reachesServer = pid === process.pid || pid === 0 || pid === -1 || pid === -process.pid;
        if (reachesServer && signal !== 0) {
          throw new Error(`process.kill(${pid}${signal === undefined ? '' : `, ${JSON.stringify(signal)}`}) is refused: this model runs in a thread of the server (model parameter isolation "thread"), and the signal would reach the server; throw, or use isolation "process"`);
        }
        return kill(pid, signal);
      }) as typeof process.kill;
    },
  };
}

/** This stub's launch: a worker thread of the host, or a process of its own. */
export function stubLaunch(): StubLaunch | string {
  const settings = readSettings();
  if (typeof settings === 'string') return settings;
  return isMainThread ? processLaunch(settings) : threadLaunch(settings);
}
