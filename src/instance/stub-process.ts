/**
 * The host's handle on one stub process: spawns it, owns its region, sends execute batches and
 * matches responses to requests, watches its health word and its exit.
 *
 * Failure model: when the process exits or stops answering (health word stale for longer than
 * the stub timeout, or an execute past the execute timeout), every request in flight on it
 * fails with an error naming the model, instance and cause, the region and its shm files are
 * removed, and 'exit' is emitted once. Restarting is the owner's job (ModelInstance).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import v8 from 'node:v8';
import { Channel } from '../ipc/channel.js';
import { Region, type RegionOptions } from '../ipc/region.js';
import { sweepRegion } from '../ipc/shm-sweep.js';
import { newRegionName } from '../ipc/shm-names.js';
import { MAX_CUT_LINE_BYTES, boundLine, readBoundedLines } from '../core/bounded-lines.js';
import { residentBytes } from './process-memory.js';
import type { Handle } from '../ipc/arena.js';
import { correlationFromWire, correlationToWire, type HostMessage, type InitArgs, type StubMessage, type WireRequest, type WireResponse, type BlsRequest, type StubDebug } from '../ipc/protocol.js';
import { readTensor, writeTensor, copyTensor } from '../ipc/tensor-codec.js';
import { StubhostError, type ErrorBody } from '../errors.js';
import type { InferRequest, TensorValue } from '../core/types.js';
import type { Logger } from '../log/logger.js';
import type { ExecOutcome, StreamSink } from '../execution/contract.js';
import { packageRoot } from '../core/package-root.js';
import { inspectFlags } from './debug-inspect.js';

const ROOT = packageRoot();
// The stub always runs compiled (npm install and npm test build dist/), also when the host runs
// from its sources (vitest, scripts): it registers tsx itself, only to load a model.ts.
const STUB_MAIN = path.join(ROOT, 'dist', 'stub', 'main.js');
const TSCONFIG_FOR_MODELS = path.join(ROOT, 'stub', 'tsconfig.models.json');
// Lets model code import the packages stubhost ships (onnxruntime-node) from anywhere.
const SHIPPED_PACKAGES = path.join(ROOT, 'stub', 'shipped-packages.mjs');
// Extra node flags for every stub (debugging aid, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof").
const STUB_EXTRA_NODE_ARGS = (process.env.STUBHOST_STUB_NODE_ARGS ?? '').split(' ').filter(Boolean);
/** V8's default heap limit for a node like this one: a memory cap below it lowers the stub's. */
const DEFAULT_HEAP_LIMIT = v8.getHeapStatistics().heap_size_limit;

export interface BlsHandler {
  /** Runs a BLS request from this stub; pushes 0..n outcomes, then ends. Returns a cancel function. */
  (request: InferRequest, stream: boolean, sink: StreamSink): () => void;
}

export interface StubProcessOptions {
  modelName: string;
  modelVersion: number;
  instanceName: string;
  init: Omit<InitArgs, 'healthIntervalMs'>;
  /** Stub timeout: the health word must be set again within this (default 1000 ms). */
  healthTimeoutMs?: number;
  healthIntervalMs?: number;
  /** A batch running longer than this counts as a hang (0: off). */
  executeTimeoutMs?: number;
  /** A batch running longer than this is reported (log, metric, statistics) but not stopped (0: off). */
  executeWarnMs?: number;
  /** Batches the stub runs at once (max_inflight_per_instance): later ones wait in the stub and are not "running". */
  concurrentExecutes?: number;
  /** Called when the number of executes running past `executeWarnMs` changes. */
  onStalled?: (count: number) => void;
  /** Cap on the stub's resident memory outside shared memory (0: off): over it the stub is killed. */
  memoryLimitBytes?: number;
  /** How long start() waits for hello + initialize. */
  startTimeoutMs?: number;
  logger: Logger;
  region?: RegionOptions;
  arenaMaxBytes?: number;
  onBls?: BlsHandler;
}

interface PendingBatch {
  b: number;
  /** One entry per request, in order. */
  resolve: (outcomes: ExecOutcome[]) => void;
  /** Host arena blocks holding this batch's inputs: freed when the batch is done. */
  blocks: Handle[];
  rids: number[];
  startedAt: number;
  streams?: StreamSink[];
  /** Reported as running past the execute warning limit. */
  stalled?: boolean;
}

/** An execute running past the warning limit, as `/v2/models/{m}/stats` lists it. */
export interface StalledExecute {
  instance: string;
  pid: number;
  running_ms: number;
  requests: number;
}

export class StubProcess extends EventEmitter {
  readonly modelName: string;
  readonly instanceName: string;
  private readonly opts: StubProcessOptions;
  private child?: ChildProcess;
  private region?: Region;
  private channel?: Channel<HostMessage, StubMessage>;
  private readonly batches = new Map<number, PendingBatch>();
  /** Decoupled requests whose final flag has not arrived: rid → sink. */
  private readonly streams = new Map<number, StreamSink>();
  private readonly blsCancels = new Map<number, () => void>();
  private nextBatch = 1;
  private nextRid = 1;
  private healthTimer?: NodeJS.Timeout;
  private lastHealthy = 0;
  private exited = false;
  private initWaiter?: { resolve: (config?: Record<string, unknown>) => void; reject: (err: StubhostError) => void };
  private finWaiter?: () => void;
  private debugWaiters: ((d: StubDebug | undefined) => void)[] = [];
  /** Set once a fault is seen, so the exit reports the real cause. */
  private fault?: string;
  /** The host stopped the stub on purpose (unload): its exit is not a crash to restart from. */
  private stopping = false;
  private stalledCount = 0;
  pid = 0;

  constructor(opts: StubProcessOptions) {
    super();
    this.opts = opts;
    this.modelName = opts.modelName;
    this.instanceName = opts.instanceName;
  }

  get label(): string {
    return `model '${this.modelName}' version ${this.opts.modelVersion} instance '${this.instanceName}'${this.pid ? ` (pid ${this.pid})` : ''}`;
  }

  /** Requests in flight on this stub. */
  get inflight(): number {
    let n = 0;
    for (const b of this.batches.values()) n += b.rids.length;
    return n + this.streams.size;
  }

  isHealthy(): boolean {
    return !this.exited && this.channel !== undefined && this.initWaiter === undefined;
  }

  /**
   * Spawns the stub and runs initialize. Resolves with the config the model completed (if it
   * has autoCompleteConfig); rejects with the model's error (its stack) if loading fails.
   */
  async start(): Promise<Record<string, unknown> | undefined> {
    if (!fs.existsSync(STUB_MAIN)) {
      throw new StubhostError('STUBHOST_INTERNAL', `stubhost is not built: ${STUB_MAIN} is missing; run \`npm run build\` (npm install runs it)`);
    }
    // Before the region exists: a bad debug_inspect_port fails the load with nothing to clean up.
    const inspect = inspectFlags(this.modelName, this.opts.init.modelConfig.parameters);
    const name = newRegionName();
    this.region = Region.create(name, this.opts.region);
    this.channel = new Channel<HostMessage, StubMessage>(this.region, 'host', { arena: { maxBytes: this.opts.arenaMaxBytes } });
    const healthIntervalMs = this.opts.healthIntervalMs ?? 300;
    const child = spawn(process.execPath, [...STUB_EXTRA_NODE_ARGS, ...this.heapLimitArgs(), ...inspect, '--import', SHIPPED_PACKAGES, '--enable-source-maps', STUB_MAIN], {
      cwd: this.opts.init.modelDir,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        TSX_TSCONFIG_PATH: TSCONFIG_FOR_MODELS,
        // The region name goes by environment, not argv: argv is world-readable in /proc.
        STUBHOST_REGION: name,
        STUBHOST_HOST_PID: String(process.pid),
        STUBHOST_HEALTH_INTERVAL_MS: String(healthIntervalMs),
        ...(this.opts.arenaMaxBytes ? { STUBHOST_SHM_MAX_BYTES: String(this.opts.arenaMaxBytes) } : {}),
        // A model.ts: the stub registers tsx while it boots (an ONNX model's stub never loads it).
        ...(this.opts.init.backend !== 'onnxruntime' ? { STUBHOST_PRELOAD_TYPESCRIPT: '1' } : {}),
      },
    });
    this.child = child;
    this.pid = child.pid ?? 0;
    this.forwardOutput(child);
    child.once('exit', (code, signal) => this.afterStderr(child, () => this.onExit(code, signal)));
    child.once('error', (err) => this.fail(`could not start: ${err.message}`));

    const started = new Promise<Record<string, unknown> | undefined>((resolve, reject) => {
      this.initWaiter = { resolve, reject };
    });
    this.channel.onMessage(
      (msg) => this.dispatch(msg),
      (err) => this.fail(err.message),
    );
    this.channel.send({ k: 'init', args: { ...this.opts.init, healthIntervalMs } });
    const timeoutMs = this.opts.startTimeoutMs ?? 120_000;
    const timer = setTimeout(() => this.fail(`initialize did not finish within ${timeoutMs} ms`), timeoutMs);
    try {
      const config = await started;
      this.startHealthWatch();
      return config;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * A memory cap below V8's own heap limit lowers that limit too, so a heap that outgrows the cap
   * between two RSS polls ends in V8's out-of-memory report rather than in the machine's swap.
   */
  private heapLimitArgs(): string[] {
    const cap = this.opts.memoryLimitBytes ?? 0;
    if (!(cap > 0) || cap >= DEFAULT_HEAP_LIMIT) return [];
    return [`--max-old-space-size=${Math.max(16, Math.floor(cap / (1024 * 1024)))}`];
  }

  /** Executes running longer than the warning limit now. */
  stalledExecutes(): StalledExecute[] {
    const now = performance.now();
    const out: StalledExecute[] = [];
    for (const b of this.batches.values()) {
      if (b.stalled) out.push({ instance: this.instanceName, pid: this.pid, running_ms: Math.round(now - b.startedAt), requests: b.rids.length });
    }
    return out;
  }

  /** Sends one batch; resolves with one outcome per request (never rejects). */
  execute(requests: InferRequest[]): Promise<ExecOutcome[]> {
    return this.send(requests);
  }

  /** Decoupled: sends one batch; each request's responses go to its sink. */
  executeStreaming(requests: InferRequest[], sinks: StreamSink[]): Promise<ExecOutcome[]> {
    return this.send(requests, sinks);
  }

  private send(requests: InferRequest[], sinks?: StreamSink[]): Promise<ExecOutcome[]> {
    if (this.exited || !this.channel) {
      const err = new StubhostError('STUBHOST_STUB_DIED', `${this.label}: stub is not running${this.fault ? ` (${this.fault})` : ''}`);
      sinks?.forEach((s) => s.end(err));
      return Promise.resolve(requests.map(() => ({ error: err })));
    }
    const blocks: Handle[] = [];
    const wire: WireRequest[] = [];
    const rids: number[] = [];
    try {
      for (const r of requests) {
        const rid = this.nextRid++;
        rids.push(rid);
        wire.push(toWireRequest(r, rid, this.opts.modelVersion, (t) => writeTensor(this.channel!.arena, t, blocks)));
      }
    } catch (err) {
      for (const h of blocks) this.channel.arena.free(h);
      const e = err instanceof StubhostError ? err : new StubhostError('STUBHOST_INTERNAL', (err as Error).message);
      sinks?.forEach((s) => s.end(e));
      return Promise.resolve(requests.map(() => ({ error: e })));
    }
    const b = this.nextBatch++;
    return new Promise<ExecOutcome[]>((resolve) => {
      this.batches.set(b, { b, resolve, blocks, rids, startedAt: performance.now(), streams: sinks });
      if (sinks) rids.forEach((rid, i) => this.streams.set(rid, sinks[i]!));
      // After 'exec': a Cancel for a request the stub has not seen yet would be dropped.
      this.channel!.send({ k: 'exec', b, reqs: wire });
      this.channel!.expectReply();
      for (let i = 0; i < requests.length; i++) {
        const signal = requests[i]!.signal;
        if (signal) {
          const rid = rids[i]!;
          if (signal.aborted) this.cancel([rid]);
          else signal.addEventListener('abort', () => this.cancel([rid]), { once: true });
        }
      }
    });
  }

  /** For leak checks: what the stub holds (undefined if it does not answer within `timeoutMs`). */
  debugStats(timeoutMs = 2000): Promise<StubDebug | undefined> {
    if (this.exited || !this.channel) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.debugWaiters = this.debugWaiters.filter((w) => w !== done);
        resolve(undefined);
      }, timeoutMs);
      const done = (d: StubDebug | undefined): void => {
        clearTimeout(timer);
        resolve(d);
      };
      this.debugWaiters.push(done);
      this.channel!.send({ k: 'ping', t: 0, dbg: true });
    });
  }

  /** Marks requests cancelled in the stub (request.isCancelled() turns true). */
  cancel(rids: number[]): void {
    if (!this.exited && this.channel) this.channel.send({ k: 'cancel', rids });
  }

  /** Runs finalize and lets the stub exit; kills it if that takes longer than `timeoutMs`. */
  async close(timeoutMs = 5000): Promise<void> {
    if (this.exited) return;
    if (!this.channel || this.initWaiter) {
      this.stopping = true;
      this.kill('SIGKILL');
      await this.waitExit(timeoutMs);
      return;
    }
    const finished = new Promise<void>((resolve) => (this.finWaiter = resolve));
    this.stopping = true;
    this.fault ??= 'unloaded';
    this.channel.send({ k: 'fin' });
    const timer = setTimeout(() => this.kill('SIGKILL'), timeoutMs);
    await Promise.race([finished, this.waitExit(timeoutMs + 1000)]);
    clearTimeout(timer);
    await this.waitExit(timeoutMs);
  }

  /**
   * Stops the stub now, without finalize, because the host gave up waiting for it (`cause` is
   * what its requests in flight fail with); no restart follows. Resolves once it exited.
   */
  async terminate(cause: string): Promise<void> {
    if (this.exited) return;
    this.stopping = true;
    this.fault = cause;
    this.kill('SIGKILL');
    await this.waitExit(5000);
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (!this.exited && this.child && this.child.exitCode === null) this.child.kill(signal);
  }

  private waitExit(timeoutMs: number): Promise<void> {
    if (this.exited) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.kill('SIGKILL');
        resolve();
      }, timeoutMs);
      this.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  // ---- messages -----------------------------------------------------------------------------

  private dispatch(msg: StubMessage): void {
    switch (msg.k) {
      case 'hello':
        // The stub says hello only once its health thread beats, so the watch can start now and
        // a stub that freezes during initialize is caught too (a long synchronous initialize is
        // fine: the health thread is not the main thread).
        this.startHealthWatch();
        break;
      case 'init-ok': {
        const w = this.initWaiter;
        this.initWaiter = undefined;
        w?.resolve(msg.config);
        break;
      }
      case 'init-err': {
        const w = this.initWaiter;
        this.initWaiter = undefined;
        this.fault = 'initialize failed';
        w?.reject(new StubhostError('STUBHOST_LOAD_FAILED', `${this.label}: initialize failed: ${msg.err.message}`));
        this.kill('SIGKILL');
        break;
      }
      case 'exec-done':
        this.onExecDone(msg.b, msg.rs, msg.err);
        break;
      case 'resp':
        this.onStreamResponse(msg.rid, msg.r, msg.final);
        break;
      case 'fatal':
        this.fault ??= msg.cause;
        break;
      case 'log':
        // Bounded here too: the stub cuts its messages (a line it cut passes as it is), but model
        // code shares its process.
        this.opts.logger[msg.level === 'verbose' ? 'verbose' : msg.level](boundLine(String(msg.msg), MAX_CUT_LINE_BYTES), { model: this.modelName, instance: this.instanceName });
        break;
      case 'release':
        for (const h of msg.hs) this.channel?.arena.free(h);
        break;
      case 'bls':
        this.onBls(msg);
        break;
      case 'bls-cancel': {
        const cancel = this.blsCancels.get(msg.c);
        this.blsCancels.delete(msg.c);
        cancel?.();
        break;
      }
      case 'pong':
        if (msg.dbg) for (const w of this.debugWaiters.splice(0)) w(msg.dbg);
        break;
      case 'fin-ok':
        if (msg.err) this.opts.logger.warn(msg.err.message, { model: this.modelName, instance: this.instanceName });
        this.finWaiter?.();
        break;
      default:
        break;
    }
  }

  private onExecDone(b: number, rs: WireResponse[] | undefined, err: ErrorBody | undefined): void {
    const batch = this.batches.get(b);
    if (!batch) return;
    this.batches.delete(b);
    if (batch.stalled) {
      this.opts.logger.info(`a stalled execute finished after ${Math.round((performance.now() - batch.startedAt) / 1000)} s`, { model: this.modelName, instance: this.instanceName, pid: this.pid });
      this.setStalled(this.stalledCount - 1);
    }
    // A batch sent ahead waited in the stub until now: its execute (and execute timeout) starts now.
    for (const next of this.batches.values()) {
      next.startedAt = Math.max(next.startedAt, performance.now());
      break;
    }
    const channel = this.channel!;
    const n = batch.rids.length;
    const outcomes: ExecOutcome[] = new Array(n);
    for (let i = 0; i < n; i++) {
      const r = err ? undefined : rs?.[i];
      outcomes[i] = err ? { error: StubhostError.fromBody(err) } : r ? this.readResponse(r) : {};
    }
    for (const h of batch.blocks) channel.arena.free(h);
    if (err && batch.streams) {
      // Execute threw: the decoupled streams of its requests end with that error.
      for (const rid of batch.rids) this.endStream(rid, StubhostError.fromBody(err));
    }
    batch.resolve(outcomes);
  }

  private onStreamResponse(rid: number, r: WireResponse | undefined, final: boolean): void {
    const sink = this.streams.get(rid);
    if (!sink) {
      if (r) this.releaseLater(r);
      return;
    }
    if (r) sink.response(this.readResponse(r), final);
    if (final) this.endStream(rid);
  }

  private endStream(rid: number, error?: StubhostError): void {
    const sink = this.streams.get(rid);
    if (!sink) return;
    this.streams.delete(rid);
    sink.end(error);
  }

  /** Copies a response's outputs out of the stub's arena and gives the blocks back. */
  private readResponse(r: WireResponse): ExecOutcome {
    if (r.err) {
      this.releaseLater(r);
      return { error: StubhostError.fromBody(r.err) };
    }
    try {
      const peer = this.channel!.peer;
      const outputs: TensorValue[] = new Array(r.outs.length);
      for (let i = 0; i < r.outs.length; i++) {
        const d = r.outs[i]!;
        const t = readTensor(peer, d);
        // Only arena views need copying: inline bytes are already private (the message decoder
        // copies them out of shared memory), and so is their message's shape array.
        outputs[i] = d.d || !d.h ? t : copyTensor(t);
      }
      return { outputs, parameters: r.params, sites: r.sites };
    } catch (err) {
      return { error: new StubhostError('STUBHOST_PROTOCOL', `${this.label}: ${(err as Error).message}`) };
    } finally {
      this.releaseLater(r);
    }
  }

  /** Gives the stub back the arena blocks of a response we have read. */
  private releaseLater(r: WireResponse): void {
    const hs: Handle[] = [];
    for (const d of r.outs) if (d.h) hs.push(d.h);
    if (!this.exited) this.channel?.releaseLater(hs);
  }


  private onBls(msg: BlsRequest): void {
    const channel = this.channel!;
    const handler = this.opts.onBls;
    const reply = (m: HostMessage): void => {
      if (!this.exited) channel.send(m);
    };
    if (!handler) {
      reply({ k: 'bls-res', c: msg.c, err: { code: 'STUBHOST_UNSUPPORTED', message: 'BLS is not available here' }, final: true });
      return;
    }
    let request: InferRequest;
    try {
      request = fromWireRequest(msg.req, (d) => readTensor(channel.peer, d));
    } catch (err) {
      reply({ k: 'bls-res', c: msg.c, err: { code: 'STUBHOST_INVALID_INPUT', message: (err as Error).message }, final: true });
      return;
    }
    const sink: StreamSink = {
      response: (outcome) => {
        if (this.exited) return;
        if (outcome.error) {
          reply({ k: 'bls-res', c: msg.c, r: { outs: [], err: outcome.error.toBody() }, final: false });
          return;
        }
        const blocks: Handle[] = [];
        try {
          const outs = (outcome.outputs ?? []).map((t) => writeTensor(channel.arena, t, blocks));
          reply({ k: 'bls-res', c: msg.c, r: { outs, params: outcome.parameters }, final: false });
        } catch (err) {
          for (const h of blocks) channel.arena.free(h);
          reply({ k: 'bls-res', c: msg.c, r: { outs: [], err: { code: 'STUBHOST_ARENA_FULL', message: (err as Error).message } }, final: false });
        }
      },
      end: (error) => {
        ended = true;
        this.blsCancels.delete(msg.c);
        reply(error ? { k: 'bls-res', c: msg.c, err: error.toBody(), final: true } : { k: 'bls-res', c: msg.c, final: true });
      },
    };
    // The handler may end the call before it returns (unknown model, invalid inputs): then there
    // is nothing left to cancel, and keeping its cancel function would leak one entry per call.
    let ended = false;
    const cancel = handler(request, msg.stream, sink);
    if (!ended) this.blsCancels.set(msg.c, cancel);
  }

  // ---- health and exit ----------------------------------------------------------------------

  private startHealthWatch(): void {
    if (this.healthTimer || this.exited) return;
    const timeoutMs = this.opts.healthTimeoutMs ?? 1000;
    const executeTimeoutMs = this.opts.executeTimeoutMs ?? 0;
    const memoryLimit = this.opts.memoryLimitBytes ?? 0;
    this.lastHealthy = performance.now();
    const tick = Math.max(50, Math.min(250, timeoutMs / 4));
    this.healthTimer = setInterval(() => {
      const now = performance.now();
      if (this.region?.takeHealth()) this.lastHealthy = now;
      if (now - this.lastHealthy > timeoutMs) {
        this.fail(`stub is unhealthy: no health signal for ${Math.round(now - this.lastHealthy)} ms (stub timeout ${timeoutMs} ms)`, 'STUBHOST_STUB_UNHEALTHY');
        return;
      }
      if (memoryLimit > 0 && this.pid) {
        // Polled from here, not reported by the stub: a busy or wedged stub cannot under-report.
        const rss = residentBytes(this.pid);
        if (rss !== undefined && rss > memoryLimit) {
          this.fail(`exceeded its memory limit of ${memoryLimit} bytes (RSS ${rss} bytes, not counting shared memory)`);
          return;
        }
      }
      if (executeTimeoutMs > 0) {
        for (const batch of this.batches.values()) {
          if (now - batch.startedAt > executeTimeoutMs) {
            this.fail(`execute ran longer than the execute timeout of ${executeTimeoutMs} ms`, 'STUBHOST_STUB_UNHEALTHY');
            return;
          }
        }
      }
      this.noteStalled(now);
    }, tick);
    this.healthTimer.unref();
  }

  /** Reports, once per execute, the running executes past the warning limit. */
  private noteStalled(now: number): void {
    const warnMs = this.opts.executeWarnMs ?? 0;
    if (!(warnMs > 0)) return;
    let running = this.opts.concurrentExecutes ?? 1;
    let count = this.stalledCount;
    // In send order: the first `concurrentExecutes` batches run, the others wait in the stub.
    for (const batch of this.batches.values()) {
      if (running-- <= 0) break;
      if (batch.stalled || now - batch.startedAt <= warnMs) continue;
      batch.stalled = true;
      count++;
      this.opts.logger.warn(
        `execute of ${batch.rids.length} request(s) has been running for ${Math.round((now - batch.startedAt) / 1000)} s, longer than the execute warning limit of ${warnMs / 1000} s (--execute-warn-secs); it is not stopped (the model parameter execute_timeout_seconds restarts a stub whose execute hangs)`,
        { model: this.modelName, instance: this.instanceName, pid: this.pid },
      );
    }
    this.setStalled(count);
  }

  private setStalled(count: number): void {
    if (count === this.stalledCount) return;
    this.stalledCount = count;
    this.opts.onStalled?.(count);
  }

  private forwardOutput(child: ChildProcess): void {
    const tag = { model: this.modelName, instance: this.instanceName };
    for (const [stream, level] of [[child.stdout, 'info'], [child.stderr, 'warn']] as const) {
      if (!stream) continue;
      readBoundedLines(stream, (line) => {
        if (!line.trim()) return;
        this.opts.logger[level](line, tag);
        // V8's last words before it aborts (heap out of memory): the cause, rather than "SIGABRT".
        const fatal = stream === child.stderr && /^FATAL ERROR: (.*)$/.exec(line);
        if (fatal) {
          const oom = /out of memory/i.test(fatal[1]!);
          const cap = this.opts.memoryLimitBytes ?? 0;
          // With a cap, the heap limit is the cap's (see heapLimitArgs): name the cap.
          this.fault ??= oom && this.heapLimitArgs().length > 0 ? `exceeded its memory limit of ${cap} bytes (V8: ${fatal[1]})` : oom ? `out of memory (${fatal[1]})` : `fatal error: ${fatal[1]}`;
        }
      });
    }
  }

  /**
   * Runs `then` once the child's stderr has been read to its end (at most 50 ms: a grandchild,
   * such as tsx's esbuild service, may hold the pipe open). 'exit' can come before the last
   * stderr lines, and those may carry the cause (V8's out-of-memory report).
   */
  private afterStderr(child: ChildProcess, then: () => void): void {
    const stderr = child.stderr;
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

  /** A fault: kill the process; onExit fails the work in flight. */
  private fail(cause: string, code: 'STUBHOST_STUB_DIED' | 'STUBHOST_STUB_UNHEALTHY' = 'STUBHOST_STUB_DIED'): void {
    if (this.exited) return;
    this.fault ??= cause;
    this.faultCode = code;
    this.kill('SIGKILL');
    if (!this.child || this.child.exitCode !== null || this.child.pid === undefined) this.onExit(null, null);
  }

  private faultCode: 'STUBHOST_STUB_DIED' | 'STUBHOST_STUB_UNHEALTHY' = 'STUBHOST_STUB_DIED';

  private onExit(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.exited) return;
    this.exited = true;
    if (this.healthTimer) clearInterval(this.healthTimer);
    this.setStalled(0);
    const how = signal ? `killed by ${signal}` : `exited with code ${code}`;
    const cause = this.fault ? `${this.fault} (${how})` : `stub ${how}`;
    const error = new StubhostError(this.faultCode, `${this.label}: ${cause}`);
    const w = this.initWaiter;
    this.initWaiter = undefined;
    w?.reject(new StubhostError('STUBHOST_LOAD_FAILED', `${this.label}: the stub died during initialize: ${cause}`));
    const batches = [...this.batches.values()];
    this.batches.clear();
    const streams = [...this.streams.values()];
    this.streams.clear();
    for (const cancel of this.blsCancels.values()) cancel();
    this.blsCancels.clear();
    for (const batch of batches) batch.resolve(batch.rids.map(() => ({ error })));
    for (const s of streams) s.end(error);
    this.channel?.close();
    this.region?.unlink();
    if (this.region) sweepRegion(this.region.name);
    this.finWaiter?.();
    for (const w of this.debugWaiters.splice(0)) w(undefined);
    this.emit('exit', { code, signal, cause, expected: this.stopping, error });
  }
}

function toWireRequest(r: InferRequest, rid: number, version: number, write: (t: TensorValue) => WireRequest['ins'][number]): WireRequest {
  const ins: WireRequest['ins'] = new Array(r.inputs.length);
  for (let i = 0; i < r.inputs.length; i++) ins[i] = write(r.inputs[i]!);
  const w: WireRequest = {
    rid,
    id: r.id,
    model: r.modelName,
    version,
    ins,
    outs: r.outputs?.map((o) => o.name) ?? [],
    params: r.parameters,
    prio: r.priority,
  };
  // Optional fields only when set: msgpack would carry each undefined as a key and a value,
  // to be packed here and unpacked in the stub for every request.
  if (r.correlationId !== undefined) {
    const c = correlationToWire(r.correlationId);
    w.corr = c.corr;
    if (c.corrInt) w.corrInt = true;
  }
  if (r.sequenceStart !== undefined) w.start = r.sequenceStart;
  if (r.sequenceEnd !== undefined) w.end = r.sequenceEnd;
  if (r.timeoutUs) w.timeoutMs = r.timeoutUs / 1000;
  return w;
}

function fromWireRequest(w: WireRequest, read: (d: WireRequest['ins'][number]) => TensorValue): InferRequest {
  if (typeof w.model !== 'string' || w.model.length === 0) throw new Error('BLS request has no model name');
  return {
    id: w.id ?? '',
    modelName: w.model,
    modelVersion: w.version > 0 ? w.version : undefined,
    inputs: w.ins.map(read),
    outputs: w.outs.length > 0 ? w.outs.map((name) => ({ name })) : undefined,
    parameters: w.params ?? {},
    priority: w.prio ?? 0,
    timeoutUs: w.timeoutMs ? Math.round(w.timeoutMs * 1000) : 0,
    correlationId: correlationFromWire(w),
  };
}
