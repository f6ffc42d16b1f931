/**
 * The bridge from the model API to the stub that runs it. The stub installs its runtime on
 * globalThis under a registered symbol, so every copy of this module (a CommonJS model.ts gets
 * its own) reaches the same one.
 */
import type { InferenceRequest } from './request.js';
import type { InferenceResponse } from './response.js';

export type LogLevel = 'error' | 'warn' | 'info' | 'verbose';

export interface StubRuntime {
  /** BLS: sends the request to the host; yields 1 response (or 0..n, `stream`) then ends. */
  bls(request: InferenceRequest, stream: boolean): AsyncIterable<InferenceResponse>;
  /** Decoupled models: one response and/or the final flag for the request with host id `rid`. */
  sendResponse(rid: number, response: InferenceResponse | undefined, final: boolean): void;
  log(level: LogLevel, message: string): void;
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
  requestId: string;
  cancelled: { value: boolean };
  decoupled: boolean;
}
