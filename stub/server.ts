/**
 * The stub's side of the protocol: loads the model, runs initialize / execute / finalize, sends
 * responses, and carries BLS calls and logs to the host. One per stub process.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { format } from 'node:util';
import { pathToFileURL } from 'node:url';
import type { Channel } from '../src/ipc/channel.js';
import type { Handle } from '../src/ipc/arena.js';
import { correlationFromWire, correlationToWire, type BlsResult, type Execute, type HostMessage, type InitArgs, type StubDebug, type StubMessage, type WireRequest, type WireResponse } from '../src/ipc/protocol.js';
import { copyTensor, readTensor, writeTensor, type TensorDesc } from '../src/ipc/tensor-codec.js';
import { MODEL_ERROR_CODES, type ErrorBody } from '../src/errors.js';
import type { TensorValue } from '../src/core/types.js';
import { isDataType } from '../src/core/dtypes.js';
import { Tensor } from './api/tensor.js';
import { InferenceRequest } from './api/request.js';
import { InferenceResponse } from './api/response.js';
import { ModelError, asModelError } from './api/errors.js';
import { INTERNAL, setRuntime, type BlsCallRequest, type LogLevel, type StubRuntime } from './api/runtime.js';
import type { Model, ModelClass, ModelConfig } from './api/model.js';
import { AsyncQueue } from '../src/core/async-queue.js';
import { boundLine } from '../src/core/bounded-lines.js';
import { ErrorLocator } from './error-location.js';
import { OutputSites } from './output-sites.js';
import { setLongTimeout, type LongTimer } from '../src/core/long-timer.js';
import { maxInflightPerInstance, type ParameterMap } from '../src/core/model-parameters.js';
import { registerTypeScript } from './typescript-loader.js';

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
  /** Where model code built outputs that may break the output contract (set once the config is final). */
  private outputSites?: OutputSites;

  constructor(private readonly channel: Channel<StubMessage, HostMessage>) {}

  start(): void {
    setRuntime(this);
    this.redirectConsole();
    process.on('uncaughtException', (err) => this.crash('uncaught exception', err));
    process.on('unhandledRejection', (err) => this.crash('unhandled promise rejection', err));
    this.channel.onMessage(
      (msg) => this.dispatch(msg),
      (err) => this.crash('protocol error', err),
      // Idle (no request or BLS call open): sleep on the queue synchronously, in short slices.
      { idleBlockMs: () => (this.live.size === 0 && this.blsCalls.size === 0 && this.executing === 0 && this.model !== undefined ? 10 : 0) },
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
    this.channel.send({ k: 'resp', rid, r, final });
  }

  async *bls(request: BlsCallRequest, stream: boolean): AsyncIterable<InferenceResponse> {
    const c = this.nextCall++;
    const context = this.executeContext.getStore();
    if (context && allCancelled(context)) {
      yield new InferenceResponse({ error: new ModelError(`BLS call to '${request.modelName}' not sent: the request that makes it is cancelled`, 'CANCELLED') });
      return;
    }
    const blocks: Handle[] = [];
    let ins: TensorDesc[];
    try {
      ins = request.inputs.map((t) => writeTensor(this.channel.arena, tensorValueOf(t), blocks));
    } catch (err) {
      for (const h of blocks) this.channel.arena.free(h);
      yield new InferenceResponse({ error: asModelError(err) });
      return;
    }
    const call: BlsCall = { queue: new AsyncQueue<InferenceResponse>(), blocks, modelName: request.modelName, context };
    this.blsCalls.set(c, call);
    context?.calls.add(c);
    const req: WireRequest = {
      rid: c, id: request.requestId, model: request.modelName, version: request.modelVersion ?? -1, ins,
      outs: request.requestedOutputNames, params: request.parameters, prio: request.priority,
      ...correlationToWire(request.correlationId),
      timeoutMs: request.timeoutMs,
    };
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
      default:
        break;
    }
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
        const draft = structuredClone(config);
        const returned = await ModelCtor.autoCompleteConfig(draft, { modelFile: args.modelFile, modelDir: args.modelDir });
        // Returning the config is the contract; one completed in place and not returned counts too.
        if (returned !== undefined && (returned === null || typeof returned !== 'object')) {
          throw new Error(`${args.modelFile}: autoCompleteConfig must return the completed config, it returned ${String(returned)}`);
        }
        config = returned ?? draft;
        completed = config as Record<string, unknown>;
      }
      this.decoupled = Boolean((config.model_transaction_policy as { decoupled?: boolean } | undefined)?.decoupled);
      this.maxConcurrent = maxInflightPerInstance(config.parameters as ParameterMap);
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
      });
      this.channel.send({ k: 'init-ok', config: completed });
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
      this.channel.send({ k: 'exec-done', b: msg.b, err: { code: 'STUBHOST_MODEL_NOT_READY', message: 'execute before initialize finished' } });
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
      this.channel.send({ k: 'exec-done', b: msg.b, err: { code: 'STUBHOST_PROTOCOL', message: this.clientDescription(err) } });
      return;
    }
    let result: unknown;
    try {
      result = await this.executeContext.run(context, () => model.execute(requests));
    } catch (err) {
      this.returnLent(context);
      // Decoupled too: the host ends these requests' streams with this error.
      for (const w of msg.reqs) this.live.delete(w.rid);
      this.channel.send({ k: 'exec-done', b: msg.b, err: this.errorBody(err, `${this.label()}: execute threw`) });
      return;
    }
    if (this.decoupled) {
      this.returnLent(context);
      this.channel.send({ k: 'exec-done', b: msg.b });
      return;
    }
    for (const w of msg.reqs) this.live.delete(w.rid);
    if (!Array.isArray(result) || result.length !== requests.length) {
      this.returnLent(context);
      const got = Array.isArray(result) ? `${result.length} responses` : `${result === undefined ? 'nothing' : typeof result}`;
      this.channel.send({
        k: 'exec-done', b: msg.b,
        err: { code: 'STUBHOST_MODEL_ERROR', message: `${this.label()}: execute must return one response per request (${requests.length}), it returned ${got}` },
      });
      return;
    }
    // Outputs are written into our arena before the lent BLS views go back to the host.
    const rs = result.map((resp, i) => this.toWire(resp, msg.reqs[i]!.outs));
    this.returnLent(context);
    this.channel.send({ k: 'exec-done', b: msg.b, rs });
  }

  private returnLent(context: ExecuteContext): void {
    context.done = true;
    this.channel.releaseLater(context.lent);
    context.lent = [];
  }

  private async finalize(): Promise<void> {
    let err: ErrorBody | undefined;
    try {
      await this.model?.finalize?.();
    } catch (e) {
      err = this.errorBody(e, `${this.label()}: finalize threw`);
    }
    this.channel.send({ k: 'fin-ok', err });
    // Let the queue deliver fin-ok before we go.
    setTimeout(() => process.exit(0), 20);
  }

  private onBlsResult(msg: BlsResult): void {
    const call = this.blsCalls.get(msg.c);
    if (!call) {
      // Cancelled or timed out already: still give back what the host lent us.
      if (msg.r) this.channel.releaseLater(handlesOf(msg.r.outs));
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
        const outputs = this.quietly(() => msg.r!.outs.map((d) => {
          const t = readTensor(this.channel.peer, d);
          return toTensor(lend ? t : copyTensor(t));
        }));
        response = msg.r.err
          ? new InferenceResponse({ error: new ModelError(msg.r.err.message, modelCodeOf(msg.r.err.code)) })
          : new InferenceResponse({ outputs, parameters: msg.r.params });
      } catch (err) {
        response = new InferenceResponse({ error: asModelError(err) });
      }
      if (lend) context.lent.push(...handlesOf(msg.r.outs));
      else this.channel.releaseLater(handlesOf(msg.r.outs));
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
    return new InferenceRequest({
      modelName: w.model,
      modelVersion: w.version,
      inputs: this.quietly(() => w.ins.map((d) => toTensor(readTensor(this.channel.peer, d)))),
      requestedOutputNames: w.outs,
      parameters: w.params,
      correlationId: correlationFromWire(w),
      priority: w.prio,
      timeoutMs: w.timeoutMs,
      [INTERNAL]: { rid: w.rid, requestId: w.id, cancelled: live.cancelled, decoupled: this.decoupled },
    });
  }

  /** A model's response (from either copy of the API module: duck-typed) as a wire response. */
  private toWire(resp: unknown, requested: string[] | undefined): WireResponse {
    if (!resp || typeof resp !== 'object') {
      return { outs: [], err: { code: 'STUBHOST_MODEL_ERROR', message: `${this.label()}: execute returned ${String(resp)} where an InferenceResponse belongs` } };
    }
    const r = resp as { outputs?: unknown; error?: unknown; parameters?: Record<string, string | number | boolean> };
    if (r.error) return { outs: [], err: this.errorBody(r.error, '') };
    const outputs = Array.isArray(r.outputs) ? r.outputs : [];
    const blocks: Handle[] = [];
    try {
      const outs: TensorDesc[] = [];
      let sites: Record<string, string> | undefined;
      for (const t of outputs) {
        const value = tensorValueOf(t);
        if (requested && requested.length > 0 && !requested.includes(value.name)) continue;
        outs.push(writeTensor(this.channel.arena, value, blocks));
        const site = this.outputSites?.siteOf(t);
        if (site) (sites ??= {})[value.name] = site;
      }
      // No `params` key when there are none: an undefined one would be packed and unpacked too.
      const wire: WireResponse = r.parameters && Object.keys(r.parameters).length > 0 ? { outs, params: r.parameters } : { outs };
      if (sites) wire.sites = sites;
      return wire;
    } catch (err) {
      for (const h of blocks) this.channel.arena.free(h);
      return { outs: [], err: this.errorBody(err, `${this.label()}: bad output`) };
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
    setTimeout(() => process.exit(1), 20);
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

function handlesOf(descs: TensorDesc[]): Handle[] {
  const hs: Handle[] = [];
  for (const d of descs) if (d.h) hs.push(d.h);
  return hs;
}

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
