/**
 * The stub's message loop: answers the host's messages (init, exec, cancel, fin, ping, ...) and
 * is the runtime the model API calls (responses, logs, metrics, BLS). One per stub. What it
 * delegates: loading the model (model-loader.ts), queueing executes (exec-queue.ts), calls into
 * the server (bls-client.ts), wire conversion (stub-wire.ts), console output (console-capture.ts).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Channel } from '../src/ipc/channel.js';
import type { Execute, HostMessage, InitArgs, StubDebug, StubMessage } from '../src/ipc/protocol.js';
import type { WireRequest, WireResponse } from '../src/ipc/wire-request.js';
import type { ErrorBody } from '../src/errors.js';
import type { InferenceRequest } from './api/request.js';
import type { InferenceResponse } from './api/response.js';
import { ModelError } from './api/errors.js';
import { setRuntime, type BlsCallRequest, type LogLevel, type MetricHandle, type MetricKindName, type ModelControlCall, type StubRuntime } from './api/runtime.js';
import type { Model } from './api/model.js';
import { boundLine } from '../src/core/bounded-lines.js';
import { ErrorLocator } from './error-location.js';
import { OutputSites } from './output-sites.js';
import { MetricsClient } from './metrics-client.js';
import { allCancelled, type ExecuteContext, type LiveRequest } from './execute-context.js';
import { ExecQueue } from './exec-queue.js';
import { BlsClient } from './bls-client.js';
import { loadModel } from './model-loader.js';
import { ModelErrors, describe } from './model-errors.js';
import { requestOf, responseToWire, type ResponseContext } from './stub-wire.js';
import { captureConsole } from './console-capture.js';

export class StubLoop implements StubRuntime {
  private model?: Model;
  private args?: InitArgs;
  private decoupled = false;
  private readonly live = new Map<number, LiveRequest>();
  private readonly executeContext = new AsyncLocalStorage<ExecuteContext>();
  private readonly execQueue = new ExecQueue((msg) => this.execute(msg));
  private errorLocator?: ErrorLocator;
  private readonly errors = new ModelErrors(() => this.locator(), (level, message) => this.log(level, message));
  /** Custom metrics (MetricFamily): kept here, sent to the host in batches. */
  private readonly metrics = new MetricsClient((batch) => this.channel.send({ k: 'metrics', batch }));
  /** Triton refuses model control during auto_complete_config and finalize; so do we. */
  private phase: 'starting' | 'autoComplete' | 'serving' | 'finalizing' = 'starting';
  private readonly calls: BlsClient;
  /** Where model code built outputs that may break the output contract (set once the config is final). */
  private outputSites?: OutputSites;
  /** toWire's context, for the current args and output sites (cleared when either is set). */
  private wireContext?: ResponseContext;

  /** Ends the stub (its process, or its thread: see launch.ts). */
  private readonly exit: (code: number) => void;

  constructor(private readonly channel: Channel<StubMessage, HostMessage>, options: { exit?: (code: number) => void } = {}) {
    this.exit = options.exit ?? ((code) => process.exit(code));
    this.calls = new BlsClient(channel, {
      context: () => this.executeContext.getStore(),
      decoupled: () => this.decoupled,
      quietly: (build) => this.quietly(build),
      controlRefused: () => (this.phase === 'autoComplete' ? 'autoCompleteConfig' : this.phase === 'finalizing' ? 'finalize' : undefined),
    });
  }

  start(): void {
    setRuntime(this);
    captureConsole((level, message) => this.log(level, message));
    process.on('uncaughtException', (err) => this.crash('uncaught exception', err));
    process.on('unhandledRejection', (err) => this.crash('unhandled promise rejection', err));
    this.channel.onMessage(
      (msg) => this.dispatch(msg),
      (err) => this.crash('protocol error', err),
      // Idle (no request or BLS call open): sleep on the queue synchronously, in short slices.
      { idleBlockMs: () => (this.live.size === 0 && this.calls.open === 0 && this.execQueue.executing === 0 && this.model !== undefined ? 10 : 0) },
    );
    this.channel.send({ k: 'hello', pid: process.pid });
  }

  // ---- StubRuntime (what the model API calls) -----------------------------------------------

  log(level: LogLevel, message: string): void {
    // One log line is cut at the host's line cap here, before it costs arena space.
    message = boundLine(message);
    try {
      this.channel.send({ k: 'log', level, msg: message });
    } catch {
      process.stderr.write(`${message}\n`);
    }
  }

  sendResponse(rid: number, response: InferenceResponse | undefined, final: boolean): void {
    const live = this.live.get(rid);
    if (!live || !live.open) throw new ModelError(`response for request ${rid}, which is already complete`, 'INVALID_ARG');
    const r = response ? this.toWire(response, live.outs) : undefined;
    if (final) {
      live.open = false;
      this.live.delete(rid);
    }
    this.sendFlushed({ k: 'resp', rid, r, final });
  }

  metricFamily(name: string, description: string, kind: MetricKindName): number {
    return this.metrics.family(name, description, kind);
  }

  metric(family: number, labels: Record<string, string>, buckets: number[] | undefined): MetricHandle {
    return this.metrics.metric(family, labels, buckets);
  }

  control(call: ModelControlCall): Promise<boolean | undefined> {
    return this.calls.control(call);
  }

  bls(request: BlsCallRequest, stream: boolean): AsyncIterable<InferenceResponse> {
    return this.calls.bls(request, stream);
  }

  // ---- messages from the host ---------------------------------------------------------------

  private dispatch(msg: HostMessage): void {
    switch (msg.k) {
      case 'init':
        void this.initialize(msg.args);
        break;
      case 'exec':
        this.execQueue.push(msg);
        break;
      case 'cancel':
        for (const rid of msg.rids) {
          const live = this.live.get(rid);
          if (!live) {
            // Still queued behind a running execute: it starts cancelled.
            this.execQueue.cancelWaiting(rid);
            continue;
          }
          live.cancelled.value = true;
          if (live.batch && allCancelled(live.batch)) this.calls.cancelCalls(live.batch);
        }
        break;
      case 'release':
        for (const h of msg.hs) this.channel.arena.free(h);
        break;
      case 'bls-res':
        this.calls.onResult(msg);
        break;
      case 'fin':
        void this.finalize();
        break;
      case 'ping':
        this.channel.send({ k: 'pong', t: msg.t, dbg: msg.dbg ? this.debugStats() : undefined });
        break;
      case 'ready?':
        void this.checkReady(msg.c);
        break;
      case 'ctl-ok':
        this.calls.onControlDone(msg);
        break;
      case 'metrics-ok':
        this.metrics.onResult(msg.result);
        break;
      default:
        break;
    }
  }

  /** Runs the model's isReady() for the host (Triton's is_ready: a boolean, else not ready). */
  private async checkReady(c: number): Promise<void> {
    let ready = false;
    let err: string | undefined;
    try {
      const result: unknown = await this.model?.isReady?.();
      if (typeof result === 'boolean') ready = result;
      else err = `isReady() must return a boolean value, it returned ${result === null ? 'null' : typeof result}`;
    } catch (e) {
      err = `isReady() threw: ${this.errors.clientDescription(e)}`;
    }
    this.channel.send({ k: 'ready-ok', c, ready, ...(err !== undefined ? { err } : {}) });
  }

  /** A message that answers the host (a response, initialize or finalize done): the metric changes made before it go first. */
  private sendFlushed(msg: StubMessage): void {
    this.metrics.flush();
    this.channel.send(msg);
  }

  /** For leak checks (Ping with `dbg`): heap after a gc (if the stub runs with --expose-gc), arena, collections. */
  private debugStats(): StubDebug {
    (globalThis as { gc?: () => void }).gc?.();
    const { blsCalls, lentOfOpenCalls } = this.calls.sizes;
    return {
      heapUsed: process.memoryUsage().heapUsed,
      arena: this.channel.arena.stats,
      peerMapped: (this.channel.peer as unknown as { mapped: Map<number, unknown> }).mapped.size,
      sizes: {
        live: this.live.size, blsCalls, cancelledBeforeStart: this.execQueue.cancelledWaiting,
        execQueue: this.execQueue.length, executing: this.execQueue.executing, lentOfOpenCalls,
      },
    };
  }

  private async initialize(args: InitArgs): Promise<void> {
    this.args = args;
    this.wireContext = undefined;
    try {
      const loaded = await loadModel(args, {
        autoCompleting: (running) => {
          this.phase = running ? 'autoComplete' : 'starting';
        },
        configured: (config) => {
          this.outputSites = new OutputSites(config as Record<string, unknown>, () => this.locator());
          this.outputSites.install();
          this.wireContext = undefined;
        },
        built: (model) => {
          this.model = model;
        },
      });
      this.decoupled = loaded.decoupled;
      this.execQueue.maxConcurrent = loaded.maxInflight;
      this.phase = 'serving';
      this.sendFlushed({ k: 'init-ok', config: loaded.completed, ...(typeof loaded.model.isReady === 'function' ? { readyHook: true } : {}) });
    } catch (err) {
      this.log('error', `${this.label()}: initialize failed: ${describe(err)}`);
      this.channel.send({ k: 'init-err', err: { code: 'STUBHOST_LOAD_FAILED', message: this.errors.clientDescription(err) } });
    }
  }

  private async execute(msg: Execute): Promise<void> {
    const model = this.model;
    if (!model) {
      for (const w of msg.reqs) this.execQueue.takeCancelled(w.rid);
      this.sendFlushed({ k: 'exec-done', b: msg.b, err: { code: 'STUBHOST_MODEL_NOT_READY', message: 'execute before initialize finished' } });
      return;
    }
    let requests: InferenceRequest[];
    const context: ExecuteContext = { requests: [], calls: undefined, lent: [], done: false };
    try {
      requests = msg.reqs.map((w) => this.toRequest(w, context));
    } catch (err) {
      for (const w of msg.reqs) {
        this.live.delete(w.rid);
        this.execQueue.takeCancelled(w.rid);
      }
      this.sendFlushed({ k: 'exec-done', b: msg.b, err: { code: 'STUBHOST_PROTOCOL', message: this.errors.clientDescription(err) } });
      return;
    }
    let result: unknown;
    try {
      result = await this.executeContext.run(context, () => model.execute(requests));
    } catch (err) {
      this.returnLent(context);
      // Decoupled too: the host ends these requests' streams with this error.
      for (const w of msg.reqs) this.live.delete(w.rid);
      this.sendFlushed({ k: 'exec-done', b: msg.b, err: this.errors.errorBody(err, `${this.label()}: execute threw`) });
      return;
    }
    if (this.decoupled) {
      this.returnLent(context);
      this.sendFlushed({ k: 'exec-done', b: msg.b });
      return;
    }
    for (const w of msg.reqs) this.live.delete(w.rid);
    if (!Array.isArray(result) || result.length !== requests.length) {
      this.returnLent(context);
      const got = Array.isArray(result) ? `${result.length} responses` : `${result === undefined ? 'nothing' : typeof result}`;
      this.sendFlushed({
        k: 'exec-done', b: msg.b,
        err: { code: 'STUBHOST_MODEL_ERROR', message: `${this.label()}: execute must return one response per request (${requests.length}), it returned ${got}` },
      });
      return;
    }
    // Outputs are written into our arena before the lent BLS views go back to the host.
    const rs = result.map((resp, i) => this.toWire(resp, msg.reqs[i]!.outs));
    this.returnLent(context);
    this.sendFlushed({ k: 'exec-done', b: msg.b, rs });
  }

  private returnLent(context: ExecuteContext): void {
    context.done = true;
    this.channel.releaseLater(context.lent);
    context.lent = [];
  }

  private async finalize(): Promise<void> {
    this.phase = 'finalizing';
    let err: ErrorBody | undefined;
    try {
      await this.model?.finalize?.();
    } catch (e) {
      err = this.errors.errorBody(e, `${this.label()}: finalize threw`);
    }
    this.sendFlushed({ k: 'fin-ok', err });
    // Let the queue deliver fin-ok before we go.
    setTimeout(() => this.exit(0), 20);
  }

  // ---- conversions --------------------------------------------------------------------------

  private toRequest(w: WireRequest, batch: ExecuteContext): InferenceRequest {
    const live: LiveRequest = { cancelled: { value: this.execQueue.takeCancelled(w.rid) }, open: true, batch, outs: w.outs };
    batch.requests.push(live);
    this.live.set(w.rid, live);
    return this.quietly(() => requestOf(w, this.channel.peer, { rid: w.rid, cancelled: live.cancelled, decoupled: this.decoupled, sequenceSlot: w.slot }));
  }

  private toWire(resp: unknown, requested: string[] | undefined): WireResponse {
    return responseToWire(resp, requested, this.channel.arena, (this.wireContext ??= this.responseContext()));
  }

  /** What toWire needs of us, made once per configuration rather than per response (it has a label to format). */
  private responseContext(): ResponseContext {
    const sites = this.outputSites;
    return {
      errorBody: (err, context) => this.errors.errorBody(err, context),
      siteOf: sites ? (t) => sites.siteOf(t) : undefined,
      label: this.label(),
    };
  }

  /** The stub's own tensors (inputs, BLS results) are not model outputs: the output-site hook skips them. */
  private quietly<T>(build: () => T): T {
    return this.outputSites ? this.outputSites.quietly(build) : build();
  }

  private locator(): ErrorLocator {
    // Before initialize the stub's working directory is already the model folder.
    this.errorLocator ??= new ErrorLocator(this.args?.modelDir ?? process.cwd());
    return this.errorLocator;
  }

  private label(): string {
    return this.args ? `model '${this.args.modelName}' instance '${this.args.instanceName}'` : 'stub';
  }

  private crash(what: string, err: unknown): void {
    const message = `${this.label()}: ${what}: ${describe(err)}`;
    try {
      // The cause goes first so the requests failed by the exit say why (not just "exit code 1").
      // It reaches clients (their requests fail with it): without absolute paths.
      this.channel.send({ k: 'fatal', cause: `${what}: ${this.errors.firstLine(err)}` });
      this.channel.send({ k: 'log', level: 'error', msg: message });
    } catch {
      // The queue is gone; stderr still reaches the host.
      process.stderr.write(`${message}\n`);
    }
    setTimeout(() => this.exit(1), 20);
  }

  /** Tells the host why the stub is about to end (its requests fail with this cause). */
  reportFatal(cause: string): void {
    try {
      this.channel.send({ k: 'fatal', cause });
      this.channel.send({ k: 'log', level: 'error', msg: `${this.label()}: ${cause}` });
    } catch {
      process.stderr.write(`${this.label()}: ${cause}\n`);
    }
  }
}
