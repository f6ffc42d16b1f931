/** One request waiting in, or passing through, a model's scheduler. */
import type { InferRequest } from '../core/types.js';
import type { ExecOutcome, StreamSink } from '../instance/stub-process.js';

export type TimeoutAction = 'REJECT' | 'DELAY';

export interface Job {
  request: InferRequest;
  /** The request's batch dimension (1 when the model does not batch). */
  batchSize: number;
  /** Non-batch input shapes: only jobs with equal keys go into one batch. */
  shapeKey: string;
  /** Priority level, 1 = most urgent. */
  level: number;
  /** performance.now() at enqueue. */
  enqueuedAt: number;
  /** performance.now() past which the queue policy's timeout applies (Infinity: none). */
  deadline: number;
  timeoutAction: TimeoutAction;
  /** Arrival order, for preserve_ordering. */
  seq: number;
  /** Decoupled models: where the 0..n responses go. */
  sink?: StreamSink;
  /** Called exactly once with the request's outcome (non-decoupled), or when execute returned (decoupled). */
  finish(outcome: ExecOutcome, timing: JobTiming): void;
}

export interface JobTiming {
  queueMs: number;
  computeMs: number;
  batchSize: number;
  /** Of computeMs: the host's input copy and output copy (Triton's compute_input / compute_output); 0 when unknown. */
  inputMs?: number;
  outputMs?: number;
}
