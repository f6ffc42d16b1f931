/**
 * How a stub is started and stopped — the part of a stub's life that depends on its isolation.
 * StubProcess owns the region, the messages and the health watch for both kinds; a launcher only
 * starts the stub (a child process, or a worker thread of this process), hands its output and
 * its faults back, enforces what only it can (memory), and stops it.
 */
import path from 'node:path';
import type { Readable } from 'node:stream';
import v8 from 'node:v8';
import { readBoundedLines } from '../core/bounded-lines.js';
import { packageRoot } from '../core/package-root.js';
import type { Isolation } from '../core/model-parameters.js';

const ROOT = packageRoot();
// The stub always runs compiled (npm install and npm test build dist/), also when the host runs
// from its sources (vitest, scripts): it registers tsx itself, only to load a model.ts.
export const STUB_MAIN = path.join(ROOT, 'dist', 'stub', 'main.js');
const TSCONFIG_FOR_MODELS = path.join(ROOT, 'stub', 'tsconfig.models.json');
// Lets model code import the packages stubhost ships (onnxruntime-node) from anywhere.
const SHIPPED_PACKAGES = path.join(ROOT, 'stub', 'shipped-packages.mjs');
// Extra node flags for every stub (debugging aid, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof").
const STUB_EXTRA_NODE_ARGS = (process.env.STUBHOST_STUB_NODE_ARGS ?? '').split(' ').filter(Boolean);
/** V8's default heap limit for a node like this one: a memory cap below it lowers the stub's. */
const DEFAULT_HEAP_LIMIT = v8.getHeapStatistics().heap_size_limit;

export interface LaunchSpec {
  regionName: string;
  /** The model's folder: a process stub's working directory. */
  modelDir: string;
  healthIntervalMs: number;
  arenaMaxBytes?: number;
  /** The memory cap (0: none): RSS for a process stub, the V8 heap for a thread stub. */
  memoryLimitBytes: number;
  /** Node flags of the model's inspector (debug_inspect_port; process stubs only). */
  inspect: string[];
  /** A model.ts: the stub registers tsx while it boots (an ONNX model's stub never loads it). */
  preloadTypeScript?: boolean;
  /** The region's doorbell (Region.doorbellFd): a process stub inherits it as fd 3, a thread stub shares it. */
  doorbellFd?: number;
}

export interface LaunchEvents {
  /** A line the stub wrote to its stdout ('info') or stderr ('warn'), already bounded. */
  output(line: string, level: 'info' | 'warn'): void;
  /** A cause learnt outside the queues (V8's last words, a worker's error); the exit follows. */
  fault(cause: string): void;
  /** Once: the stub is gone. `how` ends the error its requests fail with ("killed by SIGKILL"). */
  exit(how: string): void;
}

export interface LaunchedStub {
  readonly isolation: Isolation;
  /** The process the stub runs in (this one for a thread stub). */
  readonly pid: number;
  /** How messages name it: "pid 123", "thread 4". */
  readonly where: string;
  /** Called at the health cadence: the cause when the stub is over its memory cap. */
  memoryFault(): string | undefined;
  /** Stops the stub now; `exit` follows. A thread stub can only be terminated (`signal` is a process's). */
  kill(signal?: NodeJS.Signals): void;
}

export interface StubLauncher {
  launch(spec: LaunchSpec, events: LaunchEvents): LaunchedStub;
}

/** A process stub's fd of the doorbell (the first stdio entry after stdin, stdout, stderr). */
export const CHILD_DOORBELL_FD = 3;

/**
 * The environment a stub reads its settings from (a worker thread gets its own copy);
 * `doorbellFd`: the doorbell's fd number as the stub sees it.
 */
export function stubEnvironment(spec: LaunchSpec, doorbellFd?: number): Record<string, string> {
  return {
    TSX_TSCONFIG_PATH: TSCONFIG_FOR_MODELS,
    // The region name goes by environment, not argv: argv is world-readable in /proc.
    STUBHOST_REGION: spec.regionName,
    STUBHOST_HOST_PID: String(process.pid),
    STUBHOST_HEALTH_INTERVAL_MS: String(spec.healthIntervalMs),
    ...(spec.arenaMaxBytes ? { STUBHOST_SHM_MAX_BYTES: String(spec.arenaMaxBytes) } : {}),
    ...(spec.preloadTypeScript ? { STUBHOST_PRELOAD_TYPESCRIPT: '1' } : {}),
    ...(doorbellFd !== undefined ? { STUBHOST_DOORBELL_FD: String(doorbellFd) } : {}),
  };
}

/** Node flags every stub runs with, after `inspect` (thread stubs: their execArgv). */
export function stubNodeFlags(inspect: string[]): string[] {
  return [...STUB_EXTRA_NODE_ARGS, ...inspect, '--import', SHIPPED_PACKAGES, '--enable-source-maps'];
}

/**
 * The V8 heap limit for a memory cap, in MiB, or undefined when the cap is off or above V8's
 * default. A process stub's cap is its RSS, and a heap limit under it makes a heap that outgrows
 * the cap between two RSS polls end in V8's out-of-memory report rather than in swap; a thread
 * stub's cap is this limit alone.
 */
export function heapLimitMb(memoryLimitBytes: number): number | undefined {
  if (!(memoryLimitBytes > 0) || memoryLimitBytes >= DEFAULT_HEAP_LIMIT) return undefined;
  return Math.max(16, Math.floor(memoryLimitBytes / (1024 * 1024)));
}

/** Logs each line of a stub's stdout and stderr; `onStderr` sees stderr lines too. */
export function forwardLines(stdout: Readable | null, stderr: Readable | null, events: LaunchEvents, onStderr?: (line: string) => void): void {
  for (const [stream, level] of [[stdout, 'info'], [stderr, 'warn']] as const) {
    if (!stream) continue;
    readBoundedLines(stream, (line) => {
      if (!line.trim()) return;
      events.output(line, level);
      if (stream === stderr) onStderr?.(line);
    });
  }
}

/**
 * Runs `then` once `stderr` has been read to its end (at most 50 ms: a grandchild, such as tsx's
 * esbuild service, may hold a pipe open). An exit can come before the last stderr lines, and
 * those may carry the cause (V8's out-of-memory report).
 */
export function afterStream(stderr: Readable | null, then: () => void): void {
  if (!stderr || stderr.readableEnded || stderr.destroyed) {
    then();
    return;
  }
  let done = false;
  const finish = (): void => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    then();
  };
  const timer = setTimeout(finish, 50);
  stderr.once('end', finish);
  stderr.once('close', finish);
}
