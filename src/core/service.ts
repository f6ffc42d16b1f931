/**
 * What the front-ends (HTTP, gRPC) need from the server core. The core implements it; the
 * front-ends know nothing else of the host, so they can be tested and replaced on their own.
 * Every method that fails throws a StubhostError (src/errors.ts).
 */
import type { InferRequest, InferResult, TensorSpec } from './types.js';

export interface ServerMetadata {
  name: string;
  version: string;
  extensions: string[];
}

export interface ModelMetadata {
  name: string;
  versions: string[];
  platform: string;
  inputs: { name: string; datatype: string; shape: number[] }[];
  outputs: { name: string; datatype: string; shape: number[] }[];
}

export interface RepositoryIndexEntry {
  name: string;
  version?: string;
  /** Triton's states: UNKNOWN, READY, UNAVAILABLE, LOADING, UNLOADING; absent for a model never loaded (Triton lists only its name). */
  state?: string;
  /** Absent or empty when there is none. */
  reason?: string;
}

/** The parts of a loaded model's config that request validation needs. */
export interface ModelIOContract {
  name: string;
  version: string;
  maxBatchSize: number;
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  decoupled: boolean;
}

/** Triton's statistics extension shape (`/v2/models/{m}/stats`), one entry per model version. */
export interface ModelStatistics {
  name: string;
  version: string;
  last_inference: number;
  inference_count: number;
  execution_count: number;
  inference_stats: Record<'success' | 'fail' | 'queue' | 'compute_input' | 'compute_infer' | 'compute_output' | 'cache_hit' | 'cache_miss', { count: number; ns: number }>;
  /** Triton's per-response statistics (decoupled models), keyed by the response's index in its request: "0", "1", … */
  response_stats: Record<string, Record<'compute_infer' | 'compute_output' | 'success' | 'fail' | 'empty_response' | 'cancel', { count: number; ns: number }>>;
  batch_stats: { batch_size: number; compute_input: { count: number; ns: number }; compute_infer: { count: number; ns: number }; compute_output: { count: number; ns: number } }[];
  memory_usage: unknown[];
  /** stubhost: executes running longer than --execute-warn-secs, per instance (not in Triton's proto: HTTP only). */
  stalled_executes?: { instance: string; pid: number; running_ms: number; requests: number }[];
}

/**
 * Who gets one request's answer without a promise (ServableModel.inferThen): called once, with
 * the error (anything thrown or failed; `result` undefined) or, `error` undefined, the result.
 * A long-lived object or one per request, its method called directly: no closure is required.
 */
export interface InferReceiver {
  inferred(error: unknown, result: InferResult | undefined): void;
}

/** Hands a promised answer to `receiver`: for a path that has only the promise form. */
export function inferredFrom(answer: Promise<InferResult>, receiver: InferReceiver): void {
  answer.then((result) => receiver.inferred(undefined, result), (err: unknown) => receiver.inferred(err, undefined));
}

/** A request's answer without a promise: the error (`result` undefined), or, `error` undefined, the result. */
export type InferCallback = (error: unknown, result: InferResult | undefined) => void;

/**
 * One model version, resolved once for a request: the contract the front-end validates the
 * request against belongs to the version that runs it, whatever reloads happen in between.
 */
export interface ResolvedModel {
  readonly contract: ModelIOContract;
  /** One request, one response (non-decoupled models, or decoupled ones that send exactly one). */
  infer(request: InferRequest): Promise<InferResult>;
  /**
   * infer() without a promise: `callback` is called once, as the outcome is read (or before
   * this returns, for a request refused at once); it must not throw.
   */
  inferThen?(request: InferRequest, callback: InferCallback): void;
  /** 0..n responses (decoupled models); non-decoupled models yield exactly one. */
  inferStream(request: InferRequest): AsyncIterable<InferResult>;
}

export interface InferenceService {
  isLive(): boolean;
  /** Ready: the server is up and every model that should be loaded is ready (isReady() hooks asked: may be async). */
  isReady(): boolean | Promise<boolean>;
  serverMetadata(): ServerMetadata;
  modelMetadata(name: string, version?: string): ModelMetadata;
  /** The version is ready; a model with an isReady() hook is asked (async). */
  modelReady(name: string, version?: string): boolean | Promise<boolean>;
  /** The model's completed config in Triton's JSON form (snake_case fields). */
  modelConfig(name: string, version?: string): Record<string, unknown>;
  /**
   * The one lookup of an inference request (refused while the server closes): the version's IO
   * contract, which the front-end validates the request against before it reaches a stub, and
   * the infer of that same version.
   */
  resolve(name: string, version?: string): ResolvedModel;
  modelStatistics(name?: string, version?: string): ModelStatistics[];
  repositoryIndex(readyOnly?: boolean): RepositoryIndexEntry[];
  /** Loads or reloads a model; `config` is a JSON config override as Triton's load API allows. */
  loadModel(name: string, options?: { config?: string; files?: Record<string, Uint8Array> }): Promise<void>;
  unloadModel(name: string, options?: { unloadDependents?: boolean }): Promise<void>;
  /** Triton's `/v2/logging` settings; `protocol` (default 'http') picks Triton's error codes and words for bad updates. */
  logSettings(update?: Record<string, unknown>, protocol?: 'http' | 'grpc'): Record<string, unknown>;
}
