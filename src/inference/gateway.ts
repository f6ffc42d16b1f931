/**
 * The one way into inference, for the HTTP and gRPC front-ends (through the server core) and for
 * BLS calls from stubs: a request's model version is looked up once, and the contract it is
 * validated against, the infer that runs it and the labels its classification uses all come
 * from that one version, so a reload in between cannot mix two. Admission (refusing new client
 * requests while the server closes, and counting those in flight so close() can wait for them)
 * and classification live here too, once for every protocol.
 */
import { StubhostError, toStubhostError } from '../errors.js';
import { type InferCallback, type InferReceiver, type ModelIOContract, type ResolvedModel, inferredFrom } from '../core/service.js';
import type { InferRequest, InferResult } from '../core/types.js';
import type { StreamSink } from '../execution/contract.js';
import { validateInferInputs, validateRequestedOutputs } from '../core/validate.js';
import type { ServableModel } from '../model/servable.js';
import { NO_LABELS } from '../model/output-labels.js';
import { applyClassification } from './classification.js';

/** Where model versions are looked up (the model repository). */
export interface ModelLookup {
  /** Throws the not-found (or not-ready version) error the client sees. */
  get(name: string, version?: number | string): ServableModel;
}

export class InferenceGateway {
  readonly #models: ModelLookup;
  /** One handle per loaded version, made at its first request: resolving makes no object. */
  readonly #handles = new WeakMap<ServableModel, VersionHandle>();
  #closing = false;
  /** Client requests (not BLS) accepted and not yet answered; drain() waits for them. */
  #inflight = 0;
  #drained: (() => void)[] = [];

  constructor(models: ModelLookup) {
    this.#models = models;
  }

  /** close() has begun: new client requests are refused. */
  get closing(): boolean {
    return this.#closing;
  }

  /** The request's model version, once; refused while the server closes. */
  resolve(name: string, version?: number | string): ResolvedModel {
    this.#refuseWhenClosing(name);
    return this.#handleOf(this.#models.get(name, version));
  }

  /**
   * A BLS call from a stub: resolved and validated as a client request, then scheduled as one
   * (batched, prioritised, rate-limited), its responses pushed into `sink`. Not refused while the
   * server closes: the client requests in flight that make BLS calls are let finish. Returns the
   * cancel function the stub's cancellation calls.
   */
  relay(request: InferRequest, sink: StreamSink): () => void {
    const abort = new AbortController();
    request.signal = abort.signal;
    void this.#relay(request, sink);
    return () => abort.abort();
  }

  /**
   * Refuses new client requests from now on, and resolves when those in flight have finished or
   * after `graceMs`, whichever comes first.
   */
  async drain(graceMs: number): Promise<void> {
    this.#closing = true;
    if (this.#inflight === 0) return;
    const drained = new Promise<void>((resolve) => this.#drained.push(resolve));
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, graceMs);
      void drained.then(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** A client request's one response, classified: one promise, settled from the batch's outcome. */
  run(mv: ServableModel, request: InferRequest): Promise<InferResult> {
    return new Promise((resolve, reject) => {
      const call = new GatewayCall(this, mv, request, undefined);
      call.resolve = resolve;
      call.reject = reject;
      this.#start(call);
    });
  }

  /**
   * run() without a promise: `callback(error, result)` is called once, as the batch's outcome is
   * read (or before runThen returns, for a request refused at once). It must not throw.
   */
  runThen(mv: ServableModel, request: InferRequest, callback: InferCallback): void {
    this.#start(new GatewayCall(this, mv, request, callback));
  }

  #start(call: GatewayCall): void {
    const { mv, request } = call;
    try {
      this.#admit(request.modelName);
    } catch (err) {
      call.answer(err, undefined);
      return;
    }
    if (!mv.inferThen) {
      inferredFrom(mv.infer(request), call);
      return;
    }
    try {
      mv.inferThen(request, call);
    } catch (err) {
      call.inferred(err, undefined);
    }
  }

  /** A request admitted by run / runThen has its answer. */
  finished(): void {
    this.#done();
  }

  /** A client request's 0..n responses, classified. */
  async *runStream(mv: ServableModel, request: InferRequest): AsyncGenerator<InferResult> {
    this.#admit(request.modelName);
    try {
      for await (const r of mv.inferStream(request)) yield classified(mv, request, r);
    } finally {
      this.#done();
    }
  }

  async #relay(request: InferRequest, sink: StreamSink): Promise<void> {
    try {
      const mv = this.#models.get(request.modelName, request.modelVersion);
      validateRequest(mv.contract(), request);
      for await (const r of mv.inferStream(request)) sink.response({ outputs: r.outputs, parameters: r.parameters });
      sink.end();
    } catch (err) {
      sink.end(toStubhostError(err));
    }
  }

  #handleOf(mv: ServableModel): VersionHandle {
    let handle = this.#handles.get(mv);
    if (handle === undefined) {
      handle = new VersionHandle(this, mv);
      this.#handles.set(mv, handle);
    }
    return handle;
  }

  #refuseWhenClosing(model: string): void {
    if (this.#closing) {
      throw new StubhostError('STUBHOST_CLOSED', `the server is shutting down: request for model '${model}' refused (requests already in flight finish); retry on another server`);
    }
  }

  /** Checked again at infer: close() may have begun since the request was resolved. */
  #admit(model: string): void {
    this.#refuseWhenClosing(model);
    this.#inflight++;
  }

  #done(): void {
    if (--this.#inflight === 0) for (const resolve of this.#drained.splice(0)) resolve();
  }
}

/** A resolved version: what a front-end holds for the length of one request. */
class VersionHandle implements ResolvedModel {
  readonly #gateway: InferenceGateway;
  readonly #mv: ServableModel;

  constructor(gateway: InferenceGateway, mv: ServableModel) {
    this.#gateway = gateway;
    this.#mv = mv;
  }

  get contract(): ModelIOContract {
    return this.#mv.contract();
  }

  infer(request: InferRequest): Promise<InferResult> {
    return this.#gateway.run(this.#mv, request);
  }

  inferThen(request: InferRequest, callback: InferCallback): void {
    this.#gateway.runThen(this.#mv, request, callback);
  }

  inferStream(request: InferRequest): AsyncIterable<InferResult> {
    return this.#gateway.runStream(this.#mv, request);
  }
}

/**
 * One client request between the gateway and its version (the version's InferReceiver): counts
 * it answered, classifies, and answers the callback or the promise. One object per request, no
 * closure.
 */
class GatewayCall implements InferReceiver {
  resolve?: (result: InferResult) => void;
  reject?: (err: unknown) => void;

  constructor(
    private readonly gateway: InferenceGateway,
    readonly mv: ServableModel,
    readonly request: InferRequest,
    private readonly callback: InferCallback | undefined,
  ) {}

  inferred(error: unknown, result: InferResult | undefined): void {
    this.gateway.finished();
    if (error === undefined) {
      try {
        result = classified(this.mv, this.request, result!);
      } catch (err) {
        error = err;
      }
    }
    this.answer(error, result);
  }

  answer(error: unknown, result: InferResult | undefined): void {
    if (this.callback) this.callback(error, result);
    else if (error !== undefined) this.reject!(error);
    else this.resolve!(result!);
  }
}

/**
 * A request built in the host (BLS, generate's flat JSON) checked against the version's contract
 * as the front-ends check what they decode: the requested outputs first, then the inputs (as
 * Triton's core src/infer_request.cc Normalize).
 */
export function validateRequest(contract: ModelIOContract, request: InferRequest): void {
  if (request.outputs) validateRequestedOutputs(contract, request.outputs.map((o) => o.name), request.id);
  validateInferInputs(contract, request.inputs, request.id);
}

/** Outputs asked for as classification become their top-k strings, as Triton's front-ends make them (both protocols). */
function classified(mv: ServableModel, request: InferRequest, result: InferResult): InferResult {
  return applyClassification(result, request.outputs, mv.config.max_batch_size, mv.outputLabels ?? NO_LABELS);
}
