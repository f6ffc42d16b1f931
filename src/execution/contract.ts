/**
 * The execution contract between a model's schedulers (src/scheduler) and the instances that
 * run its batches (src/instance): the job a scheduler hands over, the outcome an instance
 * reports, where a decoupled model's responses go, and what a scheduler may ask of an instance.
 * Types only, at the bottom, so neither side imports the other.
 */
import type { InferRequest, Parameters, TensorValue } from '../core/types.js';
import type { StubhostError } from '../errors.js';

/** One request's outcome: outputs (copied out of shared memory) or an error. */
export interface ExecOutcome {
  outputs?: TensorValue[];
  parameters?: Parameters;
  error?: StubhostError;
  /** Where model code built outputs the stub thought might break the output contract (name → `1/model.ts:12:9`). */
  sites?: Record<string, string>;
}

/** Decoupled responses arrive one by one. */
export interface StreamSink {
  /** `final`: the model sent its final flag with this response (decoupled). */
  response(outcome: ExecOutcome, final?: boolean): void;
  /** The final flag (after the last response, or alone), or an error that ends the stream. */
  end(error?: StubhostError): void;
}

/** Something that executes batches: a model instance. */
export interface ExecutionTarget {
  readonly name: string;
  /** Executions this target may have in flight at once (default 1). */
  readonly depth?: number;
  /** Can take a batch now. */
  canAccept(): boolean;
  /** Executes the batch and settles every job (finish is called by the target). */
  run(jobs: Job[]): Promise<void>;
}

/** One request waiting in, or passing through, a model's scheduler. */

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
}
