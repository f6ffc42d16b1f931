/**
 * The host's handle on one stub: starts it (a child process or a worker thread: its launcher,
 * see stub-launcher.ts), owns its region and arenas, and answers what the stub sends. What it
 * delegates, one job each: the requests in flight (stub-requests.ts), the calls model code makes
 * into the server (bls-relay.ts), the supervision of the running stub (health-watch.ts), and the
 * wire conversion (wire-outcome.ts). Both isolations share this one code path.
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
import type { HostMessage, InitArgs, StubMessage, StubDebug } from '../ipc/protocol.js';
import { StubhostError } from '../errors.js';
import type { InferRequest } from '../core/types.js';
import type { Logger } from '../log/logger.js';
import type { ExecOutcome, ResponseStat, StreamSink } from '../execution/contract.js';
import type { BlsGateway } from '../execution/bls-gateway.js';
import { inspectFlags } from './debug-inspect.js';
import { STUB_MAIN, type LaunchedStub, type StubLauncher } from './stub-launcher.js';
import { processLauncher } from './process-launcher.js';
import { threadLauncher } from './thread-launcher.js';
import { RESOLVE, StubRequests, type BatchReceiver, type StalledExecute } from './stub-requests.js';
import { BlsRelay } from './bls-relay.js';
import { HealthWatch } from './health-watch.js';
import type { MetricsSession } from '../core/metric-updates.js';
import type { ReadyCheckDone } from '../ipc/protocol.js';

export type { StalledExecute } from './stub-requests.js';

const LAUNCHERS: Record<Isolation, StubLauncher> = { process: processLauncher, thread: threadLauncher };

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
  /** Where BLS calls and model control from model code go (none: the stub is told they are not available). */
  gateway?: BlsGateway;
  /** Custom metrics of this model: a session per stub process (the stub numbers its families and metrics itself). */
  customMetrics?: () => MetricsSession;
}

export class StubProcess extends EventEmitter {
  readonly modelName: string;
  readonly instanceName: string;
  private readonly opts: StubProcessOptions;
  private launched?: LaunchedStub;
  private region?: Region;
  private channel?: Channel<HostMessage, StubMessage>;
  /** The requests in flight, the calls from model code, the health timer: once the channel exists. */
  private requests?: StubRequests;
  private relay?: BlsRelay;
  private health?: HealthWatch;
  private exited = false;
  private initWaiter?: { resolve: (config?: Record<string, unknown>) => void; reject: (err: StubhostError) => void };
  private finWaiter?: () => void;
  private debugWaiters: ((d: StubDebug | undefined) => void)[] = [];
  /** Set once a fault is seen, so the exit reports the real cause. */
  private fault?: string;
  /** The host stopped the stub on purpose (unload): its exit is not a crash to restart from. */
  private stopping = false;
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
    return this.requests?.inflight ?? 0;
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
    this.region = Region.create(name, { doorbell: true, ...this.opts.region });
    const channel = new Channel<HostMessage, StubMessage>(this.region, 'host', { arena: { maxBytes: this.opts.arenaMaxBytes } });
    this.channel = channel;
    const open = (): boolean => !this.exited;
    this.requests = new StubRequests(this.opts, channel, () => ({ label: this.label, model: this.modelName, instance: this.instanceName, pid: this.pid }), open);
    this.relay = new BlsRelay(channel, this.opts.gateway, this.modelName, open);
    this.health = new HealthWatch({
      takeHealth: () => this.region?.takeHealth() ?? false,
      memoryFault: () => this.launched?.memoryFault(),
      checkRequests: (now) => this.requests!.check(now),
      fail: (cause, code) => this.fail(cause, code),
    }, this.opts.healthTimeoutMs ?? 1000);
    const healthIntervalMs = this.opts.healthIntervalMs ?? 300;
    const tag = { model: this.modelName, instance: this.instanceName };
    try {
      this.launched = LAUNCHERS[this.isolation].launch(
        { regionName: name, modelDir: this.opts.init.modelDir, healthIntervalMs, arenaMaxBytes: this.opts.arenaMaxBytes, memoryLimitBytes: this.opts.memoryLimitBytes ?? 0, inspect, preloadTypeScript: this.opts.init.backend !== 'onnxruntime', doorbellFd: this.region.doorbellFd },
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
    return this.requests?.stalledExecutes() ?? [];
  }

  /** Sends one batch; resolves with one outcome per request (never rejects). */
  execute(requests: InferRequest[], startedAt?: number): Promise<ExecOutcome[]> {
    return new Promise((resolve) => this.executeThen(requests, undefined, startedAt ?? performance.now(), RESOLVE, resolve));
  }

  /** Decoupled: sends one batch; each request's responses go to its sink. */
  executeStreaming(requests: InferRequest[], sinks: StreamSink[], startedAt?: number): Promise<ExecOutcome[]> {
    return new Promise((resolve) => this.executeThen(requests, sinks, startedAt ?? performance.now(), RESOLVE, resolve));
  }

  /**
   * execute / executeStreaming (with `sinks`) without a promise: `receiver.executed(token,
   * outcomes)` is called once, never before this returns.
   */
  executeThen<T>(requests: InferRequest[], sinks: StreamSink[] | undefined, startedAt: number, receiver: BatchReceiver<T>, token: T): void {
    if (this.exited || !this.requests) {
      const err = new StubhostError('STUBHOST_STUB_DIED', `${this.label}: stub is not running${this.fault ? ` (${this.fault})` : ''}`);
      sinks?.forEach((s) => s.end(err));
      queueMicrotask(() => receiver.executed(token, requests.map(() => ({ error: err }))));
      return;
    }
    this.requests.sendThen(requests, sinks, startedAt, receiver, token);
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

  /** Marks requests cancelled in the stub (request.isCancelled() turns true). */
  cancel(rids: number[]): void {
    this.requests?.cancel(rids);
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
        this.requests!.onExecDone(msg.b, msg.rs, msg.err);
        break;
      case 'resp':
        this.requests!.onStreamResponse(msg.rid, msg.r, msg.final);
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
        this.relay!.call(msg);
        break;
      case 'bls-cancel':
        this.relay!.cancel(msg.c);
        break;
      case 'pong':
        if (msg.dbg) for (const w of this.debugWaiters.splice(0)) w(msg.dbg);
        break;
      case 'ready-ok':
        this.onReadyCheckDone(msg);
        break;
      case 'ctl':
        this.relay!.control(msg);
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

  // ---- health and exit ----------------------------------------------------------------------

  private startHealthWatch(): void {
    if (!this.exited) this.health?.start();
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
    this.health?.stop();
    const cause = this.fault ? `${this.fault} (${how})` : `stub ${how}`;
    const error = new StubhostError(this.faultCode, `${this.label}: ${cause}`);
    const w = this.initWaiter;
    this.initWaiter = undefined;
    w?.reject(new StubhostError('STUBHOST_LOAD_FAILED', `${this.label}: the stub died during initialize: ${cause}`));
    this.relay?.close();
    this.requests?.failAll(error);
    this.channel?.close();
    this.region?.unlink();
    if (this.region) sweepRegion(this.region.name);
    this.finWaiter?.();
    this.readyCheck?.done(false);
    for (const w of this.debugWaiters.splice(0)) w(undefined);
    this.emit('exit', { how, cause, expected: this.stopping, error });
  }
}
