/**
 * The stub's side of the protocol: loads the model, runs initialize / execute / finalize, sends
 * responses, and carries BLS calls and logs to the host. One per stub process.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { format } from 'node:util';
import { pathToFileURL } from 'node:url';
import type { Channel } from '../src/ipc/channel.js';
import type { Handle } from '../src/ipc/arena.js';
import type { BlsResult, Execute, HostMessage, InitArgs, ModelControlDone, StubDebug, StubMessage } from '../src/ipc/protocol.js';
import { copyTensor, readTensor, writeTensor, type TensorDesc } from '../src/ipc/tensor-codec.js';
import {
  decodeRequest, decodeResponse, encodeRequest, encodeResponse, errorResponse, responseHandles,
  type RequestFields, type WireRequest, type WireResponse,
} from '../src/ipc/wire-request.js';
import { MODEL_ERROR_CODES, type ErrorBody } from '../src/errors.js';
import type { TensorValue } from '../src/core/types.js';
import { isDataType } from '../src/core/dtypes.js';
import { Tensor } from './api/tensor.js';
import { InferenceRequest, type InferenceRequestOptions } from './api/request.js';
import { InferenceResponse } from './api/response.js';
import { ModelError, asModelError } from './api/errors.js';
import { INTERNAL, setRuntime, type BlsCallRequest, type LogLevel, type MetricHandle, type MetricKindName, type ModelControlCall, type StubRuntime } from './api/runtime.js';
import type { Model, ModelClass, ModelConfig } from './api/model.js';
import { withAutoCompleteHelpers } from './api/auto-complete.js';
import { AsyncQueue } from '../src/core/async-queue.js';
import { boundLine } from '../src/core/bounded-lines.js';
import { ErrorLocator } from './error-location.js';
import { OutputSites } from './output-sites.js';
import { setLongTimeout, type LongTimer } from '../src/core/long-timer.js';
import { registerTypeScript } from './typescript-loader.js';
import { MetricsClient } from './metrics-client.js';

interface LiveRequest {
  cancelled: { value: boolean };
  /** Decoupled: the final flag has not been sent yet. */
  open: boolean;
  /** The execute call this request arrived in. */
  batch?: ExecuteContext;
  /** The outputs the client asked for (empty: all): a decoupled model's responses are filtered too. */
  outs?: string[];
}

/**
 * One execute call, as the async context of everything it starts (also a decoupled model's
 * sends after execute returned): BLS calls made in it belong to its requests, and are cancelled
 * once every one of those requests is cancelled — the parent-cancel link.
 */
interface ExecuteContext {
  requests: LiveRequest[];
  calls: Set<number>;
  /**
   * Host-arena blocks of BLS outputs handed to the model as views during this execute: valid,
   * like the inputs, until the execute call returns (non-decoupled models), then released.
   */
  lent: Handle[];
  /** The execute call has returned: BLS results arriving now are copied, not lent. */
  done: boolean;
}

interface BlsCall {
  queue: AsyncQueue<InferenceResponse>;
  blocks: Handle[];
  timer?: LongTimer;
  modelName: string;
  context?: ExecuteContext;
}

export class StubServer implements StubRuntime {
  private model?: Model;
  private args?: InitArgs;
  private decoupled = false;
  private readonly live = new Map<number, LiveRequest>();
  private readonly blsCalls = new Map<number, BlsCall>();
  private nextCall = 1;
  private readonly executeContext = new AsyncLocalStorage<ExecuteContext>();
  /**
   * Executes the host sent ahead (it may send the next batch while one runs, to hide the round
   * trip): they run one after another, at most `maxConcurrent` (max_inflight_per_instance) at once.
   */
  private readonly execQueue: Execute[] = [];
  private executing = 0;
  private maxConcurrent = 1;
  private readonly cancelledBeforeStart = new Set<number>();
  private errorLocator?: ErrorLocator;
  /** Custom metrics (MetricFamily): kept here, sent to the host in batches. */
  private readonly metrics = new MetricsClient((batch) => this.channel.send({ k: 'metrics', batch }));
  /** loadModel / unloadModel / isModelReady calls waiting for the host's answer, and their file blocks. */
  private readonly controlCalls = new Map<number, { resolve: (ready: boolean | undefined) => void; reject: (err: Error) => void; blocks: Handle[] }>();
  private nextControl = 1;
  /** Triton refuses model control during auto_complete_config and finalize; so do we. */
  private phase: 'starting' | 'autoComplete' | 'serving' | 'finalizing' = 'starting';
  /** Where model code built outputs that may break the output contract (set once the config is final). */
  private outputSites?: OutputSites;

  /** Ends the stub (its process, or its thread: see launch.ts). */
  private readonly exit: (code: number) => void;

  constructor(private readonly channel: Channel<StubMessage, HostMessage>, options: { exit?: (code: number) => void } = {}) {
    this.exit = options.exit ?? ((code) => process.exit(code));
  }

  start(): void {
    setRuntime(this);
    this.redirectConsole();
    process.on('uncaughtException', (err) => this.crash('uncaught exception', err));
    process.on('unhandledRejection', (err) => this.crash('unhandled promise rejection', err));
    this.channel.onMessage(
      (msg) => this.dispatch(msg),
      (err) => this.crash('protocol error', err),
      // Idle (no request or BLS call open): sleep on the queue synchronously, in short slices.
      { idleBlockMs: () => (this.live.size === 0 && this.blsCalls.size === 0 && this.controlCalls.size === 0 && this.executing === 0 && this.model !== undefined ? 10 : 0) },
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
    const what = call.op === 'load' ? 'loadModel' : call.op === 'unload' ? 'unloadModel' : 'isModelReady';
    if (this.phase === 'autoComplete' || this.phase === 'finalizing') {
      return Promise.reject(new ModelError(`${what}('${call.name}') is not supported during ${this.phase === 'autoComplete' ? 'autoCompleteConfig' : 'finalize'} (as in Triton's python backend)`, 'UNSUPPORTED'));
    }
    const blocks: Handle[] = [];
    let files: TensorDesc[] | undefined;
    try {
      if (call.files) {
        files = Object.entries(call.files).map(([file, bytes]) =>
          writeTensor(this.channel.arena, { name: file, datatype: 'UINT8', shape: [bytes.length], data: bytes }, blocks));
      }
    } catch (err) {
      for (const h of blocks) this.channel.arena.free(h);
      return Promise.reject(asModelError(err));
    }
    const c = this.nextControl++;
    return new Promise<boolean | undefined>((resolve, reject) => {
      this.controlCalls.set(c, { resolve, reject, blocks });
      this.channel.send({
        k: 'ctl', c, op: call.op, name: call.name,
        ...(call.version !== undefined ? { version: call.version } : {}),
        ...(call.config !== undefined ? { config: call.config } : {}),
        ...(files ? { files } : {}),
        ...(call.unloadDependents ? { unloadDependents: true } : {}),
      });
    });
  }

  async *bls(request: BlsCallRequest, stream: boolean): AsyncIterable<InferenceResponse> {
    const c = this.nextCall++;
    const context = this.executeContext.getStore();
    if (context && allCancelled(context)) {
      yield new InferenceResponse({ error: new ModelError(`BLS call to '${request.modelName}' not sent: the request that makes it is cancelled`, 'CANCELLED') });
      return;
    }
    const blocks: Handle[] = [];
    let req: WireRequest;
    try {
      // Every field of the model's request travels: BlsCallRequest is a RequestFields.
      req = encodeRequest<Tensor>(request, c, (t) => writeTensor(this.channel.arena, tensorValueOf(t), blocks));
    } catch (err) {
      for (const h of blocks) this.channel.arena.free(h);
      yield new InferenceResponse({ error: asModelError(err) });
      return;
    }
    const call: BlsCall = { queue: new AsyncQueue<InferenceResponse>(), blocks, modelName: request.modelName, context };
    this.blsCalls.set(c, call);
    context?.calls.add(c);
    if (request.timeoutMs && request.timeoutMs > 0) {
      call.timer = setLongTimeout(() => {
        this.channel.send({ k: 'bls-cancel', c });
        this.finishBls(c, new InferenceResponse({ error: new ModelError(`BLS call to '${request.modelName}' timed out after ${request.timeoutMs} ms`, 'TIMEOUT') }));
      }, request.timeoutMs);
    }
    this.channel.send({ k: 'bls', c, req, stream });
    let completed = false;
    try {
      for await (const r of call.queue) yield r;
      completed = true;
    } finally {
      if (!completed && this.blsCalls.has(c)) {
        // The caller stopped iterating early: cancel the call on the host.
        this.channel.send({ k: 'bls-cancel', c });
        this.finishBls(c);
      }
    }
  }

  // ---- messages from the host ---------------------------------------------------------------

  private dispatch(msg: HostMessage): void {
    switch (msg.k) {
      case 'init':
        void this.initialize(msg.args);
        break;
      case 'exec':
        this.execQueue.push(msg);
        this.pumpExecutes();
        break;
      case 'cancel':
        for (const rid of msg.rids) {
          const live = this.live.get(rid);
          if (!live) {
            // Still queued behind a running execute: it starts cancelled.
            if (this.execQueue.some((e) => e.reqs.some((w) => w.rid === rid))) this.cancelledBeforeStart.add(rid);
            continue;
          }
          live.cancelled.value = true;
          if (live.batch && allCancelled(live.batch)) this.cancelBlsCalls(live.batch);
        }
        break;
      case 'release':
        for (const h of msg.hs) this.channel.arena.free(h);
        break;
      case 'bls-res':
        this.onBlsResult(msg);
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
        this.onControlDone(msg);
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
      err = `isReady() threw: ${this.clientDescription(e)}`;
    }
    this.channel.send({ k: 'ready-ok', c, ready, ...(err !== undefined ? { err } : {}) });
  }

  private onControlDone(msg: ModelControlDone): void {
    const call = this.controlCalls.get(msg.c);
    if (!call) return;
    this.controlCalls.delete(msg.c);
    for (const h of call.blocks) this.channel.arena.free(h);
    if (msg.err) call.reject(new ModelError(msg.err.message, modelCodeOf(msg.err.code)));
    else call.resolve(msg.ready);
  }

  /** A message that answers the host (a response, initialize or finalize done): the metric changes made before it go first. */
  private sendFlushed(msg: StubMessage): void {
    this.metrics.flush();
    this.channel.send(msg);
  }

  /** For leak checks (Ping with `dbg`): heap after a gc (if the stub runs with --expose-gc), arena, collections. */
  private debugStats(): StubDebug {
    (globalThis as { gc?: () => void }).gc?.();
    let lent = 0;
    for (const call of this.blsCalls.values()) lent += call.context?.lent.length ?? 0;
    return {
      heapUsed: process.memoryUsage().heapUsed,
      arena: this.channel.arena.stats,
      peerMapped: (this.channel.peer as unknown as { mapped: Map<number, unknown> }).mapped.size,
      sizes: {
        live: this.live.size, blsCalls: this.blsCalls.size, cancelledBeforeStart: this.cancelledBeforeStart.size,
        execQueue: this.execQueue.length, executing: this.executing, lentOfOpenCalls: lent,
      },
    };
  }

  private async initialize(args: InitArgs): Promise<void> {
    this.args = args;
    try {
      const ModelCtor = await loadModelClass(args);
      let config = args.modelConfig as ModelConfig;
      let completed: Record<string, unknown> | undefined;
      if (typeof ModelCtor.autoCompleteConfig === 'function') {
        this.phase = 'autoComplete';
        // The draft carries Triton's helpers (addInput, setMaxBatchSize, ...): see api/auto-complete.ts.
        const draft = withAutoCompleteHelpers(structuredClone(config));
        const returned = await ModelCtor.autoCompleteConfig(draft, { modelFile: args.modelFile, modelDir: args.modelDir });
        // Returning the config is the contract; one completed in place and not returned counts too.
        if (returned !== undefined && (returned === null || typeof returned !== 'object')) {
          throw new Error(`${args.modelFile}: autoCompleteConfig must return the completed config, it returned ${String(returned)}`);
        }
        // A plain copy: the helpers (and anything else that is not config data) stay behind.
        config = JSON.parse(JSON.stringify(returned ?? draft)) as ModelConfig;
        completed = config as Record<string, unknown>;
        this.phase = 'starting';
      }
      this.decoupled = Boolean((config.model_transaction_policy as { decoupled?: boolean } | undefined)?.decoupled);
      this.maxConcurrent = args.settings.maxInflightPerInstance;
      this.outputSites = new OutputSites(config as Record<string, unknown>, () => this.locator());
      this.outputSites.install();
      this.model = new ModelCtor();
      if (typeof this.model.execute !== 'function') throw new Error(`${args.modelFile}: the default-exported class has no execute() method`);
      await this.model.initialize?.({
        modelConfig: config,
        modelName: args.modelName,
        modelVersion: args.modelVersion,
        modelRepository: args.modelRepository,
        instanceName: args.instanceName,
        instanceKind: args.instanceKind,
        instanceDeviceId: args.instanceDeviceId,
        modelFile: args.modelFile,
        modelDir: args.modelDir,
        // The onnxruntime backend's session options, parsed by the host (ModelFileArgs.settings).
        ...(args.backend === 'onnxruntime' ? { settings: args.settings } : {}),
      });
      this.phase = 'serving';
      this.sendFlushed({ k: 'init-ok', config: completed, ...(typeof this.model.isReady === 'function' ? { readyHook: true } : {}) });
    } catch (err) {
      this.log('error', `${this.label()}: initialize failed: ${describe(err)}`);
      this.channel.send({ k: 'init-err', err: { code: 'STUBHOST_LOAD_FAILED', message: this.clientDescription(err) } });
    }
  }

  private pumpExecutes(): void {
    while (this.executing < this.maxConcurrent && this.execQueue.length > 0) {
      const msg = this.execQueue.shift()!;
      this.executing++;
      void this.execute(msg).finally(() => {
        this.executing--;
        this.pumpExecutes();
      });
    }
  }

  private async execute(msg: Execute): Promise<void> {
    const model = this.model;
    if (!model) {
      for (const w of msg.reqs) this.cancelledBeforeStart.delete(w.rid);
      this.sendFlushed({ k: 'exec-done', b: msg.b, err: { code: 'STUBHOST_MODEL_NOT_READY', message: 'execute before initialize finished' } });
      return;
    }
    let requests: InferenceRequest[];
    const context: ExecuteContext = { requests: [], calls: new Set(), lent: [], done: false };
    try {
      requests = msg.reqs.map((w) => this.toRequest(w, context));
    } catch (err) {
      for (const w of msg.reqs) {
        this.live.delete(w.rid);
        this.cancelledBeforeStart.delete(w.rid);
      }
      this.sendFlushed({ k: 'exec-done', b: msg.b, err: { code: 'STUBHOST_PROTOCOL', message: this.clientDescription(err) } });
      return;
    }
    let result: unknown;
    try {
      result = await this.executeContext.run(context, () => model.execute(requests));
    } catch (err) {
      this.returnLent(context);
      // Decoupled too: the host ends these requests' streams with this error.
      for (const w of msg.reqs) this.live.delete(w.rid);
      this.sendFlushed({ k: 'exec-done', b: msg.b, err: this.errorBody(err, `${this.label()}: execute threw`) });
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
      err = this.errorBody(e, `${this.label()}: finalize threw`);
    }
    this.sendFlushed({ k: 'fin-ok', err });
    // Let the queue deliver fin-ok before we go.
    setTimeout(() => this.exit(0), 20);
  }

  private onBlsResult(msg: BlsResult): void {
    const call = this.blsCalls.get(msg.c);
    if (!call) {
      // Cancelled or timed out already: still give back what the host lent us.
      if (msg.r) this.channel.releaseLater(responseHandles(msg.r));
      return;
    }
    let response: InferenceResponse | undefined;
    if (msg.err) response = new InferenceResponse({ error: new ModelError(msg.err.message, modelCodeOf(msg.err.code)) });
    else if (msg.r) {
      // During a (non-decoupled) execute, outputs are views of the host's arena, valid until that
      // execute returns (as its inputs are); elsewhere — initialize, decoupled sends, calls left
      // running past their execute — they are copied so the model may keep them.
      const context = call.context;
      const lend = context !== undefined && !context.done && !this.decoupled;
      try {
        const f = this.quietly(() => decodeResponse(msg.r!, (d) => {
          const t = readTensor(this.channel.peer, d);
          return toTensor(lend ? t : copyTensor(t));
        }));
        response = f.error
          ? new InferenceResponse({ error: new ModelError(f.error.message, modelCodeOf(f.error.code)) })
          : new InferenceResponse({ outputs: f.outputs, parameters: f.parameters });
      } catch (err) {
        response = new InferenceResponse({ error: asModelError(err) });
      }
      if (lend) context.lent.push(...responseHandles(msg.r));
      else this.channel.releaseLater(responseHandles(msg.r));
    }
    if (response) call.queue.push(response);
    if (msg.final) this.finishBls(msg.c);
  }

  /** The parent-cancel link: every request of `context` is cancelled, so are its BLS calls. */
  private cancelBlsCalls(context: ExecuteContext): void {
    for (const c of [...context.calls]) {
      const call = this.blsCalls.get(c);
      if (!call) continue;
      this.channel.send({ k: 'bls-cancel', c });
      this.finishBls(c, new InferenceResponse({ error: new ModelError(`BLS call to '${call.modelName}' cancelled: the request that made it was cancelled`, 'CANCELLED') }));
    }
  }

  private finishBls(c: number, last?: InferenceResponse): void {
    const call = this.blsCalls.get(c);
    if (!call) return;
    this.blsCalls.delete(c);
    call.context?.calls.delete(c);
    call.timer?.clear();
    for (const h of call.blocks) this.channel.arena.free(h);
    if (last) call.queue.push(last);
    call.queue.end();
  }


  // ---- conversions --------------------------------------------------------------------------

  private toRequest(w: WireRequest, batch: ExecuteContext): InferenceRequest {
    const live: LiveRequest = { cancelled: { value: this.cancelledBeforeStart.delete(w.rid) }, open: true, batch, outs: w.outs };
    batch.requests.push(live);
    this.live.set(w.rid, live);
    // Spread: every field the host sent reaches the model (InferenceRequestOptions has them all,
    // see OptionsCoverFields below).
    return new InferenceRequest({
      ...this.quietly(() => decodeRequest(w, (d) => toTensor(readTensor(this.channel.peer, d)))),
      [INTERNAL]: { rid: w.rid, cancelled: live.cancelled, decoupled: this.decoupled, sequenceSlot: w.slot },
    });
  }

  /** A model's response (from either copy of the API module: duck-typed) as a wire response. */
  private toWire(resp: unknown, requested: string[] | undefined): WireResponse {
    if (!resp || typeof resp !== 'object') {
      return errorResponse({ code: 'STUBHOST_MODEL_ERROR', message: `${this.label()}: execute returned ${String(resp)} where an InferenceResponse belongs` });
    }
    const r = resp as { outputs?: unknown; error?: unknown; parameters?: Record<string, string | number | boolean> };
    if (r.error) return errorResponse(this.errorBody(r.error, ''));
    const all = Array.isArray(r.outputs) ? r.outputs : [];
    const blocks: Handle[] = [];
    try {
      const outputs: TensorValue[] = [];
      let sites: Record<string, string> | undefined;
      for (const t of all) {
        const value = tensorValueOf(t);
        if (requested && requested.length > 0 && !requested.includes(value.name)) continue;
        outputs.push(value);
        const site = this.outputSites?.siteOf(t);
        if (site) (sites ??= {})[value.name] = site;
      }
      return encodeResponse({ outputs, parameters: r.parameters, sites }, (t) => writeTensor(this.channel.arena, t, blocks));
    } catch (err) {
      for (const h of blocks) this.channel.arena.free(h);
      return errorResponse(this.errorBody(err, `${this.label()}: bad output`));
    }
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

  /**
   * An error as a client sees it: `Name: message` and the frames in the model folder, paths
   * relative to it (see error-location.ts). The full stack is logged by the caller.
   */
  private clientDescription(err: unknown): string {
    const locator = this.locator();
    if (!(err instanceof Error)) return locator.message(String(err));
    const head = `${err.name}: ${locator.message(err.message)}`;
    const frames = err.stack ? locator.frames(err.stack) : '';
    return frames ? `${head}\n${frames}` : head;
  }

  /**
   * A model error on the wire: its code, and `context: message`. An unexpected error (code
   * INTERNAL) also carries its model frames; its full stack goes to the server log.
   */
  private errorBody(err: unknown, context: string): ErrorBody {
    const e = asModelError(err);
    const code = MODEL_ERROR_CODES[e.code] ?? 'STUBHOST_MODEL_ERROR';
    const text = this.locator().message(e.message);
    if (!context) return { code, message: text };
    if (e.code !== 'INTERNAL' || !(err instanceof Error) || !err.stack) return { code, message: `${context}: ${text}` };
    this.log('error', `${context}: ${err.stack}`);
    const name = err.name === 'Error' || err.name === 'ModelError' ? '' : `${err.name}: `;
    const frames = this.locator().frames(err.stack);
    return { code, message: `${context}: ${name}${text}${frames ? `\n${frames}` : ''}` };
  }

  private label(): string {
    return this.args ? `model '${this.args.modelName}' instance '${this.args.instanceName}'` : 'stub';
  }

  private redirectConsole(): void {
    const send = (level: LogLevel) => (...args: unknown[]) => this.log(level, format(...args));
    console.log = send('info');
    console.info = send('info');
    console.warn = send('warn');
    console.error = send('error');
    console.debug = send('verbose');
  }

  private crash(what: string, err: unknown): void {
    const message = `${this.label()}: ${what}: ${describe(err)}`;
    try {
      // The cause goes first so the requests failed by the exit say why (not just "exit code 1").
      // It reaches clients (their requests fail with it): without absolute paths.
      const first = this.locator().message(err instanceof Error ? `${err.name}: ${err.message}` : String(err)).split('\n')[0]!;
      this.channel.send({ k: 'fatal', cause: `${what}: ${first}` });
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

async function loadModelClass(args: InitArgs): Promise<ModelClass> {
  if (args.backend === 'onnxruntime') {
    const mod = (await import('./backends/onnxruntime.js')) as { default: ModelClass };
    return mod.default;
  }
  await registerTypeScript();
  const mod = (await import(pathToFileURL(args.modelFile).href)) as { default?: unknown };
  let C = mod.default;
  // A CommonJS model.ts compiled by tsx arrives as { default: module.exports }.
  if (C && typeof C === 'object' && typeof (C as { default?: unknown }).default === 'function') C = (C as { default: unknown }).default;
  if (typeof C !== 'function') {
    throw new Error(`${args.modelFile} must default-export the model class (export default class MyModel { execute(requests) { ... } })`);
  }
  return C as ModelClass;
}

function tensorValueOf(t: unknown): TensorValue {
  const v = t as { name?: unknown; dtype?: unknown; datatype?: unknown; shape?: unknown; data?: unknown };
  const name = typeof v?.name === 'string' ? v.name : undefined;
  const dtype = v?.dtype ?? v?.datatype;
  if (!name || !isDataType(dtype) || !Array.isArray(v.shape) || v.data === undefined) {
    throw new ModelError(`output ${name ? `'${name}' ` : ''}is not a Tensor (needs name, dtype, shape, data): build it with new Tensor(name, data, shape)`, 'INTERNAL');
  }
  // A Tensor checked this when it was built; a plain object did not, and the host would refuse
  // its bytes as a corrupt message.
  const shape = v.shape as number[];
  let count = 1;
  for (let k = 0; k < shape.length; k++) count *= shape[k]!;
  const length = (v.data as { length?: unknown }).length;
  if (length !== count) {
    throw new ModelError(`output '${name}' has shape [${shape.join(', ')}], which needs ${count} elements, but its data has ${String(length)}; build it with new Tensor(name, data, shape)`, 'INTERNAL');
  }
  return { name, datatype: dtype, shape, data: v.data as TensorValue['data'] };
}

function toTensor(t: TensorValue): Tensor {
  return new Tensor(t.name, t.data as never, t.shape, t.datatype);
}

/**
 * The model API's options name every field a request carries on the wire, so the spread in
 * toRequest passes them all: a field added to RequestFields and not to InferenceRequestOptions
 * fails to compile here.
 */
type MissingOptions = Exclude<keyof RequestFields<Tensor>, keyof InferenceRequestOptions>;
const OptionsCoverFields: [MissingOptions] extends [never] ? true : MissingOptions = true;
void OptionsCoverFields;

/** Host codes a BLS caller sees as ModelError codes (the message keeps the detail). */
const HOST_TO_MODEL_CODE: Record<string, ConstructorParameters<typeof ModelError>[1]> = {
  STUBHOST_MODEL_NOT_FOUND: 'NOT_FOUND',
  STUBHOST_MODEL_NOT_READY: 'UNAVAILABLE',
  STUBHOST_QUEUE_FULL: 'UNAVAILABLE',
  STUBHOST_CLOSED: 'UNAVAILABLE',
  STUBHOST_INVALID_INPUT: 'INVALID_ARG',
  STUBHOST_CONFIG: 'INVALID_ARG',
  STUBHOST_UNSUPPORTED: 'UNSUPPORTED',
};

function modelCodeOf(code: string): ConstructorParameters<typeof ModelError>[1] {
  for (const [k, v] of Object.entries(MODEL_ERROR_CODES)) if (v === code) return k as ConstructorParameters<typeof ModelError>[1];
  return HOST_TO_MODEL_CODE[code] ?? 'INTERNAL';
}

function allCancelled(context: ExecuteContext): boolean {
  return context.requests.length > 0 && context.requests.every((r) => r.cancelled.value);
}

function describe(err: unknown): string {
  if (err instanceof Error) return err.stack ?? err.message;
  return String(err);
}
