/**
 * The stub's calls into the server from model code: BLS requests (InferenceRequest.exec and
 * streamExec) and model control (loadModel, unloadModel, isModelReady). Sends them, matches the
 * host's answers to them, times them out, and cancels them with the requests that made them.
 */
import type { Channel } from '../src/ipc/channel.js';
import type { Handle } from '../src/ipc/arena.js';
import type { BlsResult, HostMessage, ModelControlDone, StubMessage } from '../src/ipc/protocol.js';
import { copyTensor, readTensor, writeTensor, type TensorDesc } from '../src/ipc/tensor-codec.js';
import { decodeResponse, encodeRequest, responseHandles, type WireRequest } from '../src/ipc/wire-request.js';
import { AsyncQueue } from '../src/core/async-queue.js';
import { setLongTimeout, type LongTimer } from '../src/core/long-timer.js';
import type { Tensor } from './api/tensor.js';
import { InferenceResponse } from './api/response.js';
import { ModelError, asModelError } from './api/errors.js';
import type { BlsCallRequest, ModelControlCall } from './api/runtime.js';
import { allCancelled, type ExecuteContext } from './execute-context.js';
import { modelCodeOf } from './model-errors.js';
import { tensorValueOf, toTensor } from './stub-wire.js';

interface BlsCall {
  queue: AsyncQueue<InferenceResponse>;
  blocks: Handle[];
  timer?: LongTimer;
  modelName: string;
  context?: ExecuteContext;
}

export interface BlsClientOptions {
  /** The execute call running now (its async context), if any. */
  context: () => ExecuteContext | undefined;
  /** A decoupled model: BLS outputs are always copied (its sends outlive the execute). */
  decoupled: () => boolean;
  /** Builds the stub's own tensors without the output-site hook (see OutputSites.quietly). */
  quietly: <T>(build: () => T) => T;
  /** Why model control is refused now (autoCompleteConfig, finalize), or undefined. */
  controlRefused: () => string | undefined;
}

export class BlsClient {
  private readonly calls = new Map<number, BlsCall>();
  private nextCall = 1;
  /** loadModel / unloadModel / isModelReady calls waiting for the host's answer, and their file blocks. */
  private readonly controlCalls = new Map<number, { resolve: (ready: boolean | undefined) => void; reject: (err: Error) => void; blocks: Handle[] }>();
  private nextControl = 1;

  constructor(private readonly channel: Channel<StubMessage, HostMessage>, private readonly opts: BlsClientOptions) {}

  /** Calls waiting for the host (BLS and model control). */
  get open(): number {
    return this.calls.size + this.controlCalls.size;
  }

  /** For leak checks: BLS calls open, and the blocks their execute contexts hold lent. */
  get sizes(): { blsCalls: number; lentOfOpenCalls: number } {
    let lent = 0;
    for (const call of this.calls.values()) lent += call.context?.lent.length ?? 0;
    return { blsCalls: this.calls.size, lentOfOpenCalls: lent };
  }

  async *bls(request: BlsCallRequest, stream: boolean): AsyncIterable<InferenceResponse> {
    const c = this.nextCall++;
    const context = this.opts.context();
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
    this.calls.set(c, call);
    if (context) (context.calls ??= new Set()).add(c);
    if (request.timeoutMs && request.timeoutMs > 0) {
      call.timer = setLongTimeout(() => {
        this.channel.send({ k: 'bls-cancel', c });
        this.finish(c, new InferenceResponse({ error: new ModelError(`BLS call to '${request.modelName}' timed out after ${request.timeoutMs} ms`, 'TIMEOUT') }));
      }, request.timeoutMs);
    }
    this.channel.send({ k: 'bls', c, req, stream });
    let completed = false;
    try {
      for await (const r of call.queue) yield r;
      completed = true;
    } finally {
      if (!completed && this.calls.has(c)) {
        // The caller stopped iterating early: cancel the call on the host.
        this.channel.send({ k: 'bls-cancel', c });
        this.finish(c);
      }
    }
  }

  onResult(msg: BlsResult): void {
    const call = this.calls.get(msg.c);
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
      const lend = context !== undefined && !context.done && !this.opts.decoupled();
      try {
        const f = this.opts.quietly(() => decodeResponse(msg.r!, (d) => {
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
    if (msg.final) this.finish(msg.c);
  }

  /** The parent-cancel link: every request of `context` is cancelled, so are its BLS calls. */
  cancelCalls(context: ExecuteContext): void {
    for (const c of [...(context.calls ?? [])]) {
      const call = this.calls.get(c);
      if (!call) continue;
      this.channel.send({ k: 'bls-cancel', c });
      this.finish(c, new InferenceResponse({ error: new ModelError(`BLS call to '${call.modelName}' cancelled: the request that made it was cancelled`, 'CANCELLED') }));
    }
  }

  control(call: ModelControlCall): Promise<boolean | undefined> {
    const what = call.op === 'load' ? 'loadModel' : call.op === 'unload' ? 'unloadModel' : 'isModelReady';
    const refused = this.opts.controlRefused();
    if (refused) return Promise.reject(new ModelError(`${what}('${call.name}') is not supported during ${refused} (as in Triton's python backend)`, 'UNSUPPORTED'));
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

  onControlDone(msg: ModelControlDone): void {
    const call = this.controlCalls.get(msg.c);
    if (!call) return;
    this.controlCalls.delete(msg.c);
    for (const h of call.blocks) this.channel.arena.free(h);
    if (msg.err) call.reject(new ModelError(msg.err.message, modelCodeOf(msg.err.code)));
    else call.resolve(msg.ready);
  }

  private finish(c: number, last?: InferenceResponse): void {
    const call = this.calls.get(c);
    if (!call) return;
    this.calls.delete(c);
    call.context?.calls?.delete(c);
    call.timer?.clear();
    for (const h of call.blocks) this.channel.arena.free(h);
    if (last) call.queue.push(last);
    call.queue.end();
  }
}
