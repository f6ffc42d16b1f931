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
  /**
   * The host's side of the execution this request was part of (Triton's compute_input and
   * compute_output): writing the batch's inputs into the stub's arena, and reading its outputs
   * back out. Set on execute outcomes; the same for every request of a batch.
   */
  phases?: ExecPhases;
}

/** Durations of a batch's input copy and output copy, in ms. */
export interface ExecPhases {
  inputMs: number;
  outputMs: number;
  /** performance.now() as the outputs were read: the execution's end (one clock read for every layer above). */
  endedAt?: number;
}

/** One response of a decoupled request, as Triton's response statistics count it (core src/infer_stats.cc). */
export interface ResponseStat {
  /** The response's index within its request: 0, 1, 2, … */
  index: number;
  kind: 'success' | 'fail' | 'empty' | 'cancel';
  /** From the previous response of the request (or the execute's start) to this one's arrival. */
  inferNs: number;
  /** Reading this response's outputs out of the stub's arena. */
  outputNs: number;
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
  /**
   * Executes the batch and settles every job (finish is called by the target). `startedAt`: the
   * scheduler's performance.now() as it hands the batch over, for the target's own timing (a
   * clock read per layer fewer).
   */
  run(jobs: Job[], startedAt?: number): Promise<unknown>;
  /**
   * run() without a promise: executes `batch.jobs`, settles every job, then calls batch.done()
   * once (with an error when the batch failed before its jobs could be settled). Never calls it
   * before runThen returns. A target without it is driven through run().
   */
  runThen?(batch: RunningBatch): void;
}

/** A batch handed to ExecutionTarget.runThen: its jobs, its start, and whom to tell when it is over. */
export interface RunningBatch {
  readonly jobs: Job[];
  /** The scheduler's performance.now() as it handed the batch over. */
  readonly startedAt: number;
  /** Called once, after every job is finished; with `error` when the batch failed before its jobs were. */
  done(error?: unknown): void;
}

export type TimeoutAction = 'REJECT' | 'DELAY';

/** One request waiting in, or passing through, a model's scheduler. */
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
  /** performance.now() as the execution ended (its outputs read), when known: the request's end for its statistics. */
  endedAt?: number;
}

/** What a caller hands a scheduler: a job before the scheduler stamps its arrival, order and deadline. */
export type SubmittedJob = Omit<Job, 'seq' | 'deadline' | 'timeoutAction' | 'enqueuedAt'> & {
  /** The request's own queue timeout (0: the queue policy's default). */
  timeoutUs: number;
  /** performance.now() at the request's arrival, when the caller read it (the scheduler reads it otherwise). */
  arrivedAt?: number;
};

/**
 * Rate limiter hook: resolves once `target` holds its resources, with the function that gives
 * them back; a plain function when it holds them at once.
 */
export type AcquireResources = (target: ExecutionTarget) => Promise<() => void> | (() => void);

/**
 * A model's scheduler, as its ModelVersion uses it: the default / dynamic batcher
 * (src/scheduler/scheduler.ts) or the sequence batcher (src/scheduler/sequence-batcher.ts).
 */
export interface ModelScheduler {
  /** Requests not yet executing: queued, or bound to an instance that waits for rate-limiter resources. */
  readonly pending: number;
  /** Requests dispatched and not yet finished (those waiting for resources included). */
  readonly inflight: number;
  addTarget(target: ExecutionTarget): void;
  /** The priority level a request's `priority` maps to. */
  levelOf(priority: number): number;
  /** Queues a job; its finish is called exactly once, also when it is refused at once. */
  submit(job: SubmittedJob): void;
  /** Tries to dispatch: call when an instance frees up. */
  schedule(): void;
  /** Stops accepting work and fails everything still queued. */
  close(reason: string): void;
  /** Resolves once nothing is queued or executing. */
  idle(): Promise<void>;
}
