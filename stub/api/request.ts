import { ModelError, asModelError } from './errors.js';
import { InferenceResponse, type ParameterValue } from './response.js';
import { INTERNAL, getRuntime, type RequestInternals } from './runtime.js';
import type { InputName, InputTensor, ModelSpec } from './spec.js';
import type { Tensor } from './tensor.js';

export interface InferenceRequestOptions {
  modelName: string;
  modelVersion?: number;
  inputs: Tensor[];
  requestedOutputNames?: string[];
  parameters?: Record<string, ParameterValue>;
  /** The sequence (correlation) id of a stateful target: a bigint for an integer id, as clients send it. */
  correlationId?: string | bigint;
  /**
   * This request starts / ends the sequence `correlationId` names on a stateful target, as a
   * client's `sequence_start` / `sequence_end` (Triton's BLS sets the same with `flags`).
   */
  sequenceStart?: boolean;
  sequenceEnd?: boolean;
  priority?: number;
  timeoutMs?: number;
  /** Echoed in the target's responses and logs (Triton's `request_id`). */
  requestId?: string;
}

/** Sends a decoupled model's responses: 0..n per request, then exactly one final flag. */
export class ResponseSender<S extends ModelSpec = ModelSpec> {
  private finished = false;
  constructor(private readonly rid: number, private readonly cancelled: { value: boolean }) {}

  /**
   * Sends `response` (optional) and, with `{ final: true }`, closes the stream. May be called
   * after execute has returned. Sending after the final flag throws.
   */
  send(response?: InferenceResponse<S>, options: { final?: boolean } = {}): void {
    if (this.finished) throw new ModelError('ResponseSender.send: the final flag was already sent for this request', 'INVALID_ARG');
    const final = options.final === true;
    if (!response && !final) throw new ModelError('ResponseSender.send: give a response, or { final: true }', 'INVALID_ARG');
    if (final) this.finished = true;
    const runtime = getRuntime();
    if (!runtime) throw new ModelError('ResponseSender.send: not running inside a stubhost stub', 'UNAVAILABLE');
    // The spec is a compile-time view; at run time every response is the same class.
    runtime.sendResponse(this.rid, response as InferenceResponse | undefined, final);
  }

  isCancelled(): boolean {
    return this.cancelled.value;
  }

  get isFinished(): boolean {
    return this.finished;
  }
}

/**
 * A request: the ones execute receives, and the ones model code builds to call another model
 * (BLS) with `exec()` or `stream()`. `InferenceRequest<Spec>` (Spec from the model's generated
 * config.types.ts) types `input(name)` by the config; for BLS it types the response's outputs.
 */
export class InferenceRequest<S extends ModelSpec = ModelSpec> {
  readonly modelName: string;
  readonly modelVersion?: number;
  readonly inputs: Tensor[];
  readonly requestedOutputNames: string[];
  readonly parameters: Record<string, ParameterValue>;
  readonly correlationId?: string | bigint;
  /** Whether this request starts / ends its sequence (execute sees the client's flags). */
  readonly sequenceStart: boolean;
  readonly sequenceEnd: boolean;
  readonly priority: number;
  readonly timeoutMs?: number;
  readonly requestId: string;
  private readonly internals?: RequestInternals;
  private sender?: ResponseSender<S>;

  constructor(opts: InferenceRequestOptions & { [INTERNAL]?: RequestInternals }) {
    if (!opts || typeof opts.modelName !== 'string') throw new TypeError('InferenceRequest: modelName is required');
    if (!Array.isArray(opts.inputs)) throw new TypeError('InferenceRequest: inputs must be an array of Tensor');
    if (opts.sequenceStart !== undefined && typeof opts.sequenceStart !== 'boolean') throw new TypeError(`InferenceRequest: sequenceStart must be true or false, not ${String(opts.sequenceStart)}`);
    if (opts.sequenceEnd !== undefined && typeof opts.sequenceEnd !== 'boolean') throw new TypeError(`InferenceRequest: sequenceEnd must be true or false, not ${String(opts.sequenceEnd)}`);
    if (opts.requestId !== undefined && typeof opts.requestId !== 'string') throw new TypeError('InferenceRequest: requestId must be a string');
    this.modelName = opts.modelName;
    this.modelVersion = opts.modelVersion;
    this.inputs = opts.inputs;
    this.requestedOutputNames = opts.requestedOutputNames ?? [];
    this.parameters = opts.parameters ?? {};
    this.correlationId = opts.correlationId;
    this.sequenceStart = opts.sequenceStart === true;
    this.sequenceEnd = opts.sequenceEnd === true;
    this.priority = opts.priority ?? 0;
    this.timeoutMs = opts.timeoutMs;
    this.internals = opts[INTERNAL];
    this.requestId = opts.requestId ?? '';
  }

  /**
   * Sequence models with the direct strategy: the slot (0 .. max(1, max_batch_size) - 1) of the
   * instance the sequence is bound to, the same for every request of the sequence, so per-sequence
   * state can live in an array indexed by it instead of a map keyed by correlationId. A slot is
   * reused once its sequence ends (the request with the END control) or is released after
   * max_sequence_idle_microseconds. Undefined for the oldest strategy (a sequence may move between
   * instances) and for models without sequence batching.
   */
  get sequenceSlot(): number | undefined {
    return this.internals?.sequenceSlot;
  }

  /** The input named `name`; typed by the spec: a required input is never undefined. */
  input<K extends InputName<S>>(name: K): InputTensor<S, K> {
    return this.inputs.find((t) => t.name === name) as InputTensor<S, K>;
  }

  /** True once the client went away or the request timed out. */
  isCancelled(): boolean {
    return this.internals?.cancelled.value ?? false;
  }

  /** Decoupled models: the sender for this request's responses. */
  responseSender(): ResponseSender<S> {
    if (!this.internals) throw new ModelError('responseSender(): only requests received by execute have one', 'INVALID_ARG');
    this.sender ??= new ResponseSender(this.internals.rid, this.internals.cancelled);
    return this.sender;
  }

  /** BLS: runs this request on its model and resolves with its response (errors on `.error`). */
  async exec(): Promise<InferenceResponse<S>> {
    let last: InferenceResponse<S> | undefined;
    let count = 0;
    for await (const r of this.run(false)) {
      last = r as unknown as InferenceResponse<S>;
      count++;
    }
    if (!last) return new InferenceResponse({ error: new ModelError(`model '${this.modelName}' sent no response: use stream() for decoupled models`, 'UNSUPPORTED') });
    if (count > 1) return new InferenceResponse({ error: new ModelError(`model '${this.modelName}' sent ${count} responses: use stream() for decoupled models`, 'UNSUPPORTED') });
    return last;
  }

  /** BLS to a decoupled model: every response it sends, in order. */
  stream(): AsyncIterable<InferenceResponse<S>> {
    return this.run(true) as unknown as AsyncIterable<InferenceResponse<S>>;
  }

  /** Never throws: a failure (no stub, the call could not be sent) is a last error response. */
  private async *run(stream: boolean): AsyncGenerator<InferenceResponse, void, undefined> {
    const runtime = getRuntime();
    if (!runtime) {
      yield new InferenceResponse({ error: new ModelError('BLS needs a stubhost stub: this code is not running inside one', 'UNAVAILABLE') });
      return;
    }
    let calls: AsyncIterable<InferenceResponse>;
    try {
      calls = runtime.bls(this as unknown as InferenceRequest, stream);
    } catch (err) {
      yield new InferenceResponse({ error: asModelError(err) });
      return;
    }
    const it = calls[Symbol.asyncIterator]();
    try {
      for (;;) {
        let next: IteratorResult<InferenceResponse>;
        try {
          next = await it.next();
        } catch (err) {
          yield new InferenceResponse({ error: asModelError(err) });
          return;
        }
        if (next.done) return;
        yield next.value;
      }
    } finally {
      // The caller stopped early (break): let the runtime cancel the call.
      try {
        await it.return?.();
      } catch {
        // nothing left to report to
      }
    }
  }
}
