/**
 * The bridge from the model API to the stub that runs it. The stub installs its runtime on
 * globalThis under a registered symbol, so every copy of this module (a CommonJS model.ts gets
 * its own) reaches the same one. The bottom of the API: it knows responses and tensors, not the
 * request class that calls it (request.ts imports this module).
 */
import type { InferenceResponse, ParameterValue } from './response.js';
import type { Tensor } from './tensor.js';

export type LogLevel = 'error' | 'warn' | 'info' | 'verbose';

/** What a BLS call carries to the host: the fields of the InferenceRequest model code built. */
export interface BlsCallRequest {
  readonly modelName: string;
  readonly modelVersion?: number;
  readonly inputs: Tensor[];
  readonly requestedOutputNames: string[];
  readonly parameters: Record<string, ParameterValue>;
  readonly correlationId?: string | bigint;
  readonly sequenceStart: boolean;
  readonly sequenceEnd: boolean;
  readonly priority: number;
  readonly timeoutMs?: number;
  readonly requestId: string;
}

export type { ModelControlCall } from '../../src/core/types.js';
import type { ModelControlCall } from '../../src/core/types.js';

export type MetricKindName = 'COUNTER' | 'GAUGE' | 'HISTOGRAM';

/** One metric of a family as the stub keeps it: changes are applied here and flushed in batches. */
export interface MetricHandle {
  increment(value: number): void;
  set(value: number): void;
  observe(value: number): void;
  value(): number;
}

export interface StubRuntime {
  /** BLS: sends the request to the host; yields 1 response (or 0..n, `stream`) then ends. */
  bls(request: BlsCallRequest, stream: boolean): AsyncIterable<InferenceResponse>;
  /** Decoupled models: one response and/or the final flag for the request with host id `rid`. */
  sendResponse(rid: number, response: InferenceResponse | undefined, final: boolean): void;
  log(level: LogLevel, message: string): void;
  /** Model control (explicit mode's load / unload, and readiness of any model); resolves with the readiness for 'ready'. */
  control?(call: ModelControlCall): Promise<boolean | undefined>;
  /** Custom metrics: a family (its id), and a metric of it. Throw with Triton's messages for bad arguments. */
  metricFamily?(name: string, description: string, kind: MetricKindName): number;
  metric?(family: number, labels: Record<string, string>, buckets: number[] | undefined): MetricHandle;
}

const RUNTIME = Symbol.for('stubhost.runtime');

export function getRuntime(): StubRuntime | undefined {
  return (globalThis as Record<symbol, StubRuntime | undefined>)[RUNTIME];
}

export function setRuntime(runtime: StubRuntime | undefined): void {
  (globalThis as Record<symbol, StubRuntime | undefined>)[RUNTIME] = runtime;
}

/** Key of the options the stub passes when it builds a request for execute (not for models). */
export const INTERNAL = Symbol.for('stubhost.request.internal');

export interface RequestInternals {
  rid: number;
  cancelled: { value: boolean };
  decoupled: boolean;
  /** The sequence batcher's slot (direct strategy), when the model uses sequence batching. */
  sequenceSlot?: number;
}
