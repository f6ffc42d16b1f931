/**
 * A model's scheduler: one queue (priority levels, queue policies), batches formed by the
 * dynamic batcher when the config asks for one, and dispatch to whichever instance is free.
 *
 * Default scheduling (no dynamic_batching): one request per execution, to an idle instance; no
 * instance idles while work waits. Dynamic batching: requests are gathered up to
 * max_batch_size (counting each request's batch dimension, never splitting one), dispatched at
 * once when a preferred size (or the max) is reached, else when the oldest has waited
 * max_queue_delay. Only requests whose non-batch shapes agree share a batch.
 */
import type { ExecOutcome } from '../instance/stub-process.js';
import { StubhostError } from '../errors.js';
import type { Job } from './job.js';
import { PriorityQueue, type QueuePolicy } from './priority-queue.js';

/** Something that executes batches: a model instance. */
export interface ExecutionTarget {
  readonly name: string;
  /** Can take a batch now. */
  canAccept(): boolean;
  /** Executes the batch and settles every job (finish is called by the target). */
  run(jobs: Job[]): Promise<void>;
}

export interface SchedulerOptions {
  modelLabel: string;
  maxBatchSize: number;
  dynamicBatching?: {
    preferredBatchSizes: number[];
    maxQueueDelayUs: number;
    preserveOrdering: boolean;
  };
  priorityLevels: number;
  defaultPriorityLevel: number;
  policyOf: (level: number) => QueuePolicy;
  /** Called when the number of queued requests changes. */
  onPending?: (pending: number) => void;
  /** Rate limiter hook: resolves when the instance may execute; returns the release function. */
  acquire?: (target: ExecutionTarget) => Promise<() => void> | (() => void);
}

export class Scheduler {
  private readonly queue: PriorityQueue;
  private readonly targets: ExecutionTarget[] = [];
  private timer?: NodeJS.Timeout;
  private timerAt = Infinity;
  private seq = 0;
  private closed = false;
  /** preserve_ordering: outcomes held back until every earlier request has finished. */
  private nextToRelease = 0;
  private readonly held = new Map<number, () => void>();
  private inflightJobs = 0;
  private idleWaiters: (() => void)[] = [];

  constructor(private readonly opts: SchedulerOptions) {
    this.queue = new PriorityQueue(opts.priorityLevels, opts.policyOf);
  }

  get pending(): number {
    return this.queue.size;
  }

  get inflight(): number {
    return this.inflightJobs;
  }

  addTarget(target: ExecutionTarget): void {
    this.targets.push(target);
    this.schedule();
  }

  removeTarget(target: ExecutionTarget): void {
    const i = this.targets.indexOf(target);
    if (i >= 0) this.targets.splice(i, 1);
  }

  /** The priority level a request asks for (0 or out of range: the default level). */
  levelOf(priority: number): number {
    if (!Number.isInteger(priority) || priority <= 0 || priority > this.opts.priorityLevels) return this.opts.defaultPriorityLevel;
    return priority;
  }

  /** Queues a job; rejects it at once when its level's queue is full. */
  submit(job: Omit<Job, 'seq' | 'deadline' | 'timeoutAction' | 'enqueuedAt'> & { timeoutUs: number }): void {
    const now = performance.now();
    const policy = this.queue.policy(job.level);
    const timeoutUs = policy.allowTimeoutOverride && job.timeoutUs > 0 ? job.timeoutUs : policy.defaultTimeoutUs;
    const full: Job = {
      ...job,
      seq: this.seq++,
      enqueuedAt: now,
      deadline: timeoutUs > 0 ? now + timeoutUs / 1000 : Infinity,
      timeoutAction: policy.timeoutAction,
    };
    if (this.closed) {
      this.settle(full, { error: new StubhostError('STUBHOST_UNAVAILABLE', `${this.opts.modelLabel} is unloading`) }, now);
      return;
    }
    if (!this.queue.push(full)) {
      this.settle(full, {
        error: new StubhostError('STUBHOST_QUEUE_FULL', `${this.opts.modelLabel}: queue for priority level ${job.level} is full (max_queue_size ${policy.maxQueueSize}); retry later`),
      }, now);
      return;
    }
    this.opts.onPending?.(this.queue.size);
    this.schedule();
  }

  /** Tries to dispatch: call when work arrives or an instance frees up. */
  schedule(): void {
    const now = performance.now();
    const { rejected, nextDeadline } = this.queue.expire(now);
    for (const job of rejected) {
      this.settle(job, { error: new StubhostError('STUBHOST_TIMEOUT', `${this.opts.modelLabel}: request timed out in the queue after ${Math.round(now - job.enqueuedAt)} ms`) }, now);
    }
    let wakeAt = nextDeadline;
    while (this.queue.size > 0) {
      const target = this.targets.find((t) => t.canAccept());
      if (!target) break;
      const picked = this.pickBatch(now);
      if (picked.wait > 0) {
        wakeAt = Math.min(wakeAt, now + picked.wait);
        break;
      }
      this.dispatch(target, picked.jobs, now);
    }
    if (rejected.length > 0) this.opts.onPending?.(this.queue.size);
    this.armTimer(wakeAt);
  }

  /** Stops accepting work and fails everything still queued. */
  close(reason: string): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    const now = performance.now();
    for (const job of this.queue.clear()) this.settle(job, { error: new StubhostError('STUBHOST_UNAVAILABLE', `${this.opts.modelLabel}: ${reason}`) }, now);
  }

  /** Resolves once nothing is queued or executing (for unload and version swaps). */
  idle(): Promise<void> {
    if (this.queue.size === 0 && this.inflightJobs === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private pickBatch(now: number): { jobs: Job[]; wait: number } {
    const db = this.opts.dynamicBatching;
    const first = this.queue.peek()!;
    if (!db || this.opts.maxBatchSize === 0) return { jobs: [first], wait: 0 };
    const max = this.opts.maxBatchSize;
    const jobs: Job[] = [];
    let size = 0;
    let exhausted = true;
    for (const job of this.queue.inOrder()) {
      if (job.shapeKey !== first.shapeKey) continue;
      if (size + job.batchSize > max) {
        exhausted = false;
        break;
      }
      jobs.push(job);
      size += job.batchSize;
      if (size === max) {
        exhausted = false;
        break;
      }
    }
    // Full, or a preferred size with nothing more to add: go now.
    if (!exhausted) return { jobs, wait: 0 };
    if (db.preferredBatchSizes.length > 0 && db.preferredBatchSizes.includes(size) && size >= Math.max(...db.preferredBatchSizes)) {
      return { jobs, wait: 0 };
    }
    const waited = now - first.enqueuedAt;
    const delayMs = db.maxQueueDelayUs / 1000;
    if (waited >= delayMs) return { jobs, wait: 0 };
    if (db.preferredBatchSizes.length > 0 && db.preferredBatchSizes.includes(size) && delayMs === 0) return { jobs, wait: 0 };
    return { jobs, wait: delayMs - waited };
  }

  private dispatch(target: ExecutionTarget, jobs: Job[], now: number): void {
    this.queue.remove(new Set(jobs));
    this.opts.onPending?.(this.queue.size);
    this.inflightJobs += jobs.length;
    const startedAt = now;
    const run = async (): Promise<void> => {
      let release: (() => void) | undefined;
      try {
        if (this.opts.acquire) release = await this.opts.acquire(target);
        await target.run(jobs.map((job) => this.wrap(job, startedAt, jobs.length)));
      } catch (err) {
        const error = err instanceof StubhostError ? err : new StubhostError('STUBHOST_INTERNAL', (err as Error).message);
        for (const job of jobs) this.settle(job, { error }, performance.now());
      } finally {
        release?.();
        this.inflightJobs -= jobs.length;
        this.schedule();
        if (this.queue.size === 0 && this.inflightJobs === 0) {
          const waiters = this.idleWaiters;
          this.idleWaiters = [];
          for (const w of waiters) w();
        }
      }
    };
    void run();
  }

  /** A job whose finish also records timing and honours preserve_ordering. */
  private wrap(job: Job, startedAt: number, batchSize: number): Job {
    let done = false;
    return {
      ...job,
      finish: (outcome, timing) => {
        if (done) return;
        done = true;
        const t = { ...timing, queueMs: startedAt - job.enqueuedAt, batchSize };
        this.release(job.seq, () => job.finish(outcome, t));
      },
    };
  }

  private settle(job: Job, outcome: ExecOutcome, now: number): void {
    this.release(job.seq, () => job.finish(outcome, { queueMs: now - job.enqueuedAt, computeMs: 0, batchSize: 0 }));
  }

  private release(seq: number, deliver: () => void): void {
    if (!this.opts.dynamicBatching?.preserveOrdering) {
      deliver();
      return;
    }
    this.held.set(seq, deliver);
    while (this.held.has(this.nextToRelease)) {
      const d = this.held.get(this.nextToRelease)!;
      this.held.delete(this.nextToRelease);
      this.nextToRelease++;
      d();
    }
  }

  private armTimer(at: number): void {
    if (at === Infinity || this.closed) return;
    if (this.timer && this.timerAt <= at) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.timerAt = Infinity;
      this.schedule();
    }, Math.max(0, at - performance.now()));
  }
}
