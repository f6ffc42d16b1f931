/**
 * The host's handle on one stub: starts it (a child process or a worker thread: its launcher,
 * see stub-launcher.ts), owns its region, sends execute batches and matches responses to
 * requests, watches its health word and its exit. Both isolations share this one code path.
 *
 * Failure model: when the process exits or stops answering (health word stale for longer than
 * the stub timeout, or an execute past the execute timeout), every request in flight on it
 * fails with an error naming the model, instance and cause, the region and its shm files are
 * removed, and 'exit' is emitted once. Restarting is the owner's job (ModelInstance).
 */
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import { Channel } from '../ipc/channel.js';
import { Region, type RegionOptions } from '../ipc/region.js';
import { sweepRegion } from '../ipc/shm-sweep.js';
import { newRegionName } from '../ipc/shm-names.js';
import { MAX_CUT_LINE_BYTES, boundLine } from '../core/bounded-lines.js';
import type { Isolation } from '../core/model-parameters.js';
import type { Handle } from '../ipc/arena.js';
import type { HostMessage, InitArgs, StubMessage, BlsRequest, StubDebug } from '../ipc/protocol.js';
import { readTensor, writeTensor, copyTensor } from '../ipc/tensor-codec.js';
import { decodeInferRequest, decodeResponse, encodeInferRequest, encodeResponse, errorResponse, responseHandles, type WireRequest, type WireResponse } from '../ipc/wire-request.js';
import { StubhostError, type ErrorBody } from '../errors.js';
import type { InferRequest, ModelControlCall, TensorValue } from '../core/types.js';
import type { Logger } from '../log/logger.js';
import type { ExecOutcome, ExecPhases, ResponseStat, StreamSink } from '../execution/contract.js';
import { inspectFlags } from './debug-inspect.js';
import { STUB_MAIN, type LaunchedStub, type StubLauncher } from './stub-launcher.js';
import { processLauncher } from './process-launcher.js';
import { threadLauncher } from './thread-launcher.js';
import type { MetricsSession } from '../core/metric-updates.js';
import type { ModelControl, ReadyCheckDone } from '../ipc/protocol.js';

const LAUNCHERS: Record<Isolation, StubLauncher> = { process: processLauncher, thread: threadLauncher };

export interface BlsHandler {
  /** Runs a BLS request from this stub; pushes 0..n outcomes, then ends. Returns a cancel function. */
  (request: InferRequest, stream: boolean, sink: StreamSink): () => void;
}

/** loadModel / unloadModel / isModelReady from model code; `caller` is the model that asks. */
export interface ModelControlRequest extends ModelControlCall {
  caller: string;
}

/** Carries out a model-control request; rejects with a StubhostError the model sees as a ModelError. */
export type ModelControlHandler = (request: ModelControlRequest) => Promise<{ ready?: boolean }>;

/** How long the model's isReady() may take before the check counts as not ready (Triton's kUserModelReadinessTimeoutMs). */
export const READY_CHECK_TIMEOUT_MS = 5000;

export interface StubProcessOptions {
  modelName: string;
  modelVersion: number;
  instanceName: string;
  init: Omit<InitArgs, 'healthIntervalMs'>;
  /** A child process (default) or a worker thread of this process (model parameter isolation). */
  isolation?: Isolation;
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
  /** Each response of a decoupled request (and a final flag sent alone), for the response statistics. */
  onResponseStat?: (stat: ResponseStat) => void;
  /** Cap on the stub's memory (0: off): over it the stub is killed. A process stub's RSS outside shared memory, a thread stub's V8 heap. */
  memoryLimitBytes?: number;
  /** How long start() waits for hello + initialize. */
  startTimeoutMs?: number;
  logger: Logger;
  region?: RegionOptions;
  arenaMaxBytes?: number;
  onBls?: BlsHandler;
  /** Model control from model code (loadModel, unloadModel, isModelReady). */
  onControl?: ModelControlHandler;
  /** Custom metrics of this model: a session per stub process (the stub numbers its families and metrics itself). */
  customMetrics?: () => MetricsSession;
}

interface PendingBatch {
  b: number;
  /** One entry per request, in order. */
  resolve: (outcomes: ExecOutcome[]) => void;
  /** Host arena blocks holding this batch's inputs: freed when the batch is done. */
  blocks: Handle[];
  rids: number[];
  startedAt: number;
  /** Writing the inputs into the arena. */
  inputMs: number;
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
  private launched?: LaunchedStub;
  private region?: Region;
  private channel?: Channel<HostMessage, StubMessage>;
  private readonly batches = new Map<number, PendingBatch>();
  /** Decoupled requests whose final flag has not arrived: rid → sink. */
  private readonly streams = new Map<number, StreamSink>();
  /** Decoupled requests still streaming: rid → responses so far and when the last one came. */
  private readonly streamClocks = new Map<number, { count: number; lastAt: number }>();
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
  /** The model has an isReady() hook (init-ok said so). */
  private readyHook = false;
  /** The isReady() call in flight, shared by every check that arrives meanwhile (as Triton's). */
  private readyCheck?: { c: number; done: (ready: boolean) => void; promise: Promise<boolean> };
  private nextReadyCheck = 1;
  private metricsSession?: MetricsSession;
  pid = 0;

  constructor(opts: StubProcessOptions) {
    super();
    this.opts = opts;
    this.modelName = opts.modelName;
    this.instanceName = opts.instanceName;
  }

  get label(): string {
    return `model '${this.modelName}' version ${this.opts.modelVersion} instance '${this.instanceName}'${this.launched ? ` (${this.launched.where})` : ''}`;
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
    const tag = { model: this.modelName, instance: this.instanceName };
    try {
      this.launched = LAUNCHERS[this.isolation].launch(
        { regionName: name, modelDir: this.opts.init.modelDir, healthIntervalMs, arenaMaxBytes: this.opts.arenaMaxBytes, memoryLimitBytes: this.opts.memoryLimitBytes ?? 0, inspect, preloadTypeScript: this.opts.init.backend !== 'onnxruntime' },
        {
          output: (line, level) => this.opts.logger[level](line, tag),
          fault: (cause) => {
            this.fault ??= cause;
          },
          exit: (how) => this.onExit(how),
        },
      );
    } catch (err) {
      // E.g. a worker refusing a node flag of STUBHOST_STUB_NODE_ARGS.
      this.fail(`could not start: ${(err as Error).message}`);
      throw new StubhostError('STUBHOST_LOAD_FAILED', `${this.label}: could not start the stub: ${(err as Error).message}`);
    }
    this.pid = this.launched.pid;

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
    const inputStart = performance.now();
    try {
      for (const r of requests) {
        const rid = this.nextRid++;
        rids.push(rid);
        wire.push(encodeInferRequest(r, rid, this.opts.modelVersion, (t) => writeTensor(this.channel!.arena, t, blocks)));
      }
    } catch (err) {
      for (const h of blocks) this.channel.arena.free(h);
      const e = err instanceof StubhostError ? err : new StubhostError('STUBHOST_INTERNAL', (err as Error).message);
      sinks?.forEach((s) => s.end(e));
      return Promise.resolve(requests.map(() => ({ error: e })));
    }
    const b = this.nextBatch++;
    const sentAt = performance.now();
    return new Promise<ExecOutcome[]>((resolve) => {
      this.batches.set(b, { b, resolve, blocks, rids, startedAt: sentAt, inputMs: sentAt - inputStart, streams: sinks });
      if (sinks) {
        rids.forEach((rid, i) => {
          this.streams.set(rid, sinks[i]!);
          if (this.opts.onResponseStat) this.streamClocks.set(rid, { count: 0, lastAt: sentAt });
        });
      }
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

  /**
   * The model's own readiness (its isReady(), Triton's is_ready): true without a hook; false when
   * it answers false, throws, or takes longer than `timeoutMs`. One call at a time: checks that
   * arrive while one runs share its answer.
   */
  get hasReadyHook(): boolean {
    return this.readyHook;
  }

  checkReady(timeoutMs = READY_CHECK_TIMEOUT_MS): Promise<boolean> {
    if (!this.isHealthy()) return Promise.resolve(false);
    if (!this.readyHook) return Promise.resolve(true);
    if (this.readyCheck) return this.readyCheck.promise;
    const c = this.nextReadyCheck++;
    let done!: (ready: boolean) => void;
    const promise = new Promise<boolean>((resolve) => (done = resolve));
    const timer = setTimeout(() => {
      this.opts.logger.verbose(`isReady() did not answer within ${timeoutMs} ms: not ready for this check`, { model: this.modelName, instance: this.instanceName });
      finish(false);
    }, timeoutMs);
    const finish = (ready: boolean): void => {
      clearTimeout(timer);
      if (this.readyCheck?.c === c) this.readyCheck = undefined;
      done(ready);
    };
    this.readyCheck = { c, done: finish, promise };
    this.channel!.send({ k: 'ready?', c });
    return promise;
  }

  private onReadyCheckDone(msg: ReadyCheckDone): void {
    // A late answer (after the timeout) finds another call, or none: dropped.
    if (this.readyCheck?.c !== msg.c) return;
    if (msg.err) this.opts.logger.verbose(`not ready: ${msg.err}`, { model: this.modelName, instance: this.instanceName });
    else if (!msg.ready) this.opts.logger.verbose('not ready: isReady() returned false', { model: this.modelName, instance: this.instanceName });
    this.readyCheck.done(msg.ready && !msg.err);
  }

  /** Model control from model code: the files are read out of the stub's arena (copied), the answer sent back. */
  private onControl(msg: ModelControl): void {
    const channel = this.channel!;
    const reply = (m: HostMessage): void => {
      if (!this.exited) channel.send(m);
    };
    const handler = this.opts.onControl;
    if (!handler) {
      reply({ k: 'ctl-ok', c: msg.c, err: { code: 'STUBHOST_UNSUPPORTED', message: 'model control is not available here' } });
      return;
    }
    let files: Record<string, Uint8Array> | undefined;
    try {
      if (msg.files) {
        files = {};
        for (const d of msg.files) {
          const t = readTensor(channel.peer, d);
          if (t.datatype !== 'UINT8' || !(t.data instanceof Uint8Array)) throw new Error(`file '${t.name}' is not bytes`);
          files[t.name] = t.data.slice();
        }
      }
    } catch (err) {
      reply({ k: 'ctl-ok', c: msg.c, err: { code: 'STUBHOST_PROTOCOL', message: (err as Error).message } });
      return;
    }
    handler({ op: msg.op, name: msg.name, version: msg.version, config: msg.config, files, unloadDependents: msg.unloadDependents, caller: this.modelName }).then(
      (r) => reply({ k: 'ctl-ok', c: msg.c, ...(r.ready !== undefined ? { ready: r.ready } : {}) }),
      (err: unknown) => reply({ k: 'ctl-ok', c: msg.c, err: err instanceof StubhostError ? err.toBody() : { code: 'STUBHOST_INTERNAL', message: (err as Error).message } }),
    );
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

  /** Stops the stub (a signal to a process stub; a thread stub is terminated whatever the signal). */
  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (!this.exited) this.launched?.kill(signal);
  }

  /** How messages name the running stub ("pid 123", "thread 4"), or '' before it starts. */
  get where(): string {
    return this.launched?.where ?? '';
  }

  /** Where the stub runs. */
  get isolation(): Isolation {
    return this.opts.isolation ?? 'process';
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
        this.readyHook = msg.readyHook === true;
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
      case 'ready-ok':
        this.onReadyCheckDone(msg);
        break;
      case 'ctl':
        this.onControl(msg);
        break;
      case 'metrics': {
        this.metricsSession ??= this.opts.customMetrics?.();
        const result = this.metricsSession
          ? this.metricsSession.apply(msg.batch)
          : { n: msg.batch.n, errors: (msg.batch.families ?? []).map((f) => ({ family: f.id, message: `MetricFamily '${f.name}': custom metrics are not available here` })) };
        if (!this.exited) this.channel?.send({ k: 'metrics-ok', result });
        break;
      }
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
    const outputStart = performance.now();
    for (let i = 0; i < n; i++) {
      const r = err ? undefined : rs?.[i];
      outcomes[i] = err ? { error: StubhostError.fromBody(err) } : r ? this.readResponse(r) : {};
    }
    const phases: ExecPhases = { inputMs: batch.inputMs, outputMs: performance.now() - outputStart };
    for (let i = 0; i < n; i++) outcomes[i]!.phases = phases;
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
    const clock = this.streamClocks.get(rid);
    const arrived = clock ? performance.now() : 0;
    const outcome = r ? this.readResponse(r) : undefined;
    if (clock) {
      const now = performance.now();
      const kind = outcome === undefined ? 'empty' : !outcome.error ? 'success' : outcome.error.code === 'STUBHOST_CANCELLED' ? 'cancel' : 'fail';
      // As Triton's core: an empty response and a failed one copied no outputs.
      const outputNs = kind === 'success' ? Math.round((now - arrived) * 1e6) : 0;
      this.opts.onResponseStat!({ index: clock.count++, kind, inferNs: Math.round((arrived - clock.lastAt) * 1e6), outputNs });
      clock.lastAt = now;
    }
    if (outcome) sink.response(outcome, final);
    if (final) this.endStream(rid);
  }

  private endStream(rid: number, error?: StubhostError): void {
    const sink = this.streams.get(rid);
    if (!sink) return;
    this.streams.delete(rid);
    this.streamClocks.delete(rid);
    sink.end(error);
  }

  /** Copies a response's outputs out of the stub's arena and gives the blocks back. */
  private readResponse(r: WireResponse): ExecOutcome {
    try {
      const peer = this.channel!.peer;
      // Only arena views need copying: inline bytes are already private (the message decoder
      // copies them out of shared memory), and so is their message's shape array.
      const f = decodeResponse(r, (d) => {
        const t = readTensor(peer, d);
        return d.d || !d.h ? t : copyTensor(t);
      });
      if (f.error) return { error: StubhostError.fromBody(f.error) };
      return { outputs: f.outputs, parameters: f.parameters, sites: f.sites };
    } catch (err) {
      return { error: new StubhostError('STUBHOST_PROTOCOL', `${this.label}: ${(err as Error).message}`) };
    } finally {
      this.releaseLater(r);
    }
  }

  /** Gives the stub back the arena blocks of a response we have read. */
  private releaseLater(r: WireResponse): void {
    if (!this.exited) this.channel?.releaseLater(responseHandles(r));
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
      request = decodeInferRequest(msg.req, (d) => readTensor(channel.peer, d));
    } catch (err) {
      reply({ k: 'bls-res', c: msg.c, err: { code: 'STUBHOST_INVALID_INPUT', message: (err as Error).message }, final: true });
      return;
    }
    const sink: StreamSink = {
      response: (outcome) => {
        if (this.exited) return;
        const blocks: Handle[] = [];
        try {
          const r = encodeResponse(
            { outputs: outcome.outputs ?? [], parameters: outcome.parameters, error: outcome.error?.toBody() },
            (t) => writeTensor(channel.arena, t, blocks),
          );
          reply({ k: 'bls-res', c: msg.c, r, final: false });
        } catch (err) {
          for (const h of blocks) channel.arena.free(h);
          reply({ k: 'bls-res', c: msg.c, r: errorResponse({ code: 'STUBHOST_ARENA_FULL', message: (err as Error).message }), final: false });
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
    this.lastHealthy = performance.now();
    const tick = Math.max(50, Math.min(250, timeoutMs / 4));
    this.healthTimer = setInterval(() => {
      const now = performance.now();
      if (this.region?.takeHealth()) this.lastHealthy = now;
      if (now - this.lastHealthy > timeoutMs) {
        this.fail(`stub is unhealthy: no health signal for ${Math.round(now - this.lastHealthy)} ms (stub timeout ${timeoutMs} ms)`, 'STUBHOST_STUB_UNHEALTHY');
        return;
      }
      const overMemory = this.launched?.memoryFault();
      if (overMemory) {
        this.fail(overMemory);
        return;
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

  /** A fault: stop the stub; onExit (the launcher's exit) fails the work in flight. */
  private fail(cause: string, code: 'STUBHOST_STUB_DIED' | 'STUBHOST_STUB_UNHEALTHY' = 'STUBHOST_STUB_DIED'): void {
    if (this.exited) return;
    this.fault ??= cause;
    this.faultCode = code;
    if (this.launched) this.launched.kill('SIGKILL');
    else this.onExit('not started');
  }

  private faultCode: 'STUBHOST_STUB_DIED' | 'STUBHOST_STUB_UNHEALTHY' = 'STUBHOST_STUB_DIED';

  private onExit(how: string): void {
    if (this.exited) return;
    this.exited = true;
    if (this.healthTimer) clearInterval(this.healthTimer);
    this.setStalled(0);
    const cause = this.fault ? `${this.fault} (${how})` : `stub ${how}`;
    const error = new StubhostError(this.faultCode, `${this.label}: ${cause}`);
    const w = this.initWaiter;
    this.initWaiter = undefined;
    w?.reject(new StubhostError('STUBHOST_LOAD_FAILED', `${this.label}: the stub died during initialize: ${cause}`));
    const batches = [...this.batches.values()];
    this.batches.clear();
    const streams = [...this.streams.values()];
    this.streams.clear();
    this.streamClocks.clear();
    for (const cancel of this.blsCancels.values()) cancel();
    this.blsCancels.clear();
    for (const batch of batches) batch.resolve(batch.rids.map(() => ({ error })));
    for (const s of streams) s.end(error);
    this.channel?.close();
    this.region?.unlink();
    if (this.region) sweepRegion(this.region.name);
    this.finWaiter?.();
    this.readyCheck?.done(false);
    for (const w of this.debugWaiters.splice(0)) w(undefined);
    this.emit('exit', { how, cause, expected: this.stopping, error });
  }
}
