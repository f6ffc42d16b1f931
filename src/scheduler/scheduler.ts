/**
 * A model's scheduler: one queue (priority levels, queue policies), batches formed by the
 * dynamic batcher when the config asks for one, and dispatch to whichever instance is free.
 *
 * Default scheduling (no dynamic_batching): one request per execution, to an instance with a
 * free slot (each target takes up to `depth` executions at once: Triton's 1, or the model's
 * `max_inflight_per_instance` parameter); no instance idles while work waits.
 *
 * Dynamic batching, as Triton's GetDynamicBatch: requests are gathered in service order (see
 * priority-queue.ts) up to the largest preferred_batch_size, or max_batch_size when none is
 * given, counting each request's batch dimension and never splitting one. A batch that reaches
 * that size goes at once; one that would overflow it goes at once too, cut back to the largest
 * preferred size it passed. Otherwise the batch waits until its oldest request has waited
 * max_queue_delay_microseconds, then goes as it is. Only requests whose non-batch input shapes
 * agree share a batch; others wait for a batch of their own.
 *
 * Dispatch through the rate limiter, cancellation of queued requests (a queued request whose
 * `signal` aborts, the client having left, fails at once with STUBHOST_CANCELLED; one already
 * dispatched is cancelled in the stub), the pending count and idle waiting: scheduler-base.ts.
 *
 * Owned by one ModelVersion; everything runs on the host's event loop (no locks).
 */
import { StubhostError } from '../errors.js';
import { stacklessError } from '../errors.js';
import type { ExecOutcome, ExecutionTarget, Job, JobTiming, SubmittedJob } from '../execution/contract.js';
import type { CancelSignal } from '../core/cancel-signal.js';
import { PriorityQueue, type QueuePolicy, type QueuedSlot } from './priority-queue.js';
import { MAX_TIMER_MS } from '../core/long-timer.js';
import { NOT_LISTENING, SchedulerBase, clientCancelled, type QueuedWatchOf, type SchedulerBaseOptions, type Unlisten } from './scheduler-base.js';

export { markAnswered } from './scheduler-base.js';

/** No rejected jobs (never written: expire appends only when hasExpired said so). */
const NONE: Job[] = [];

export interface SchedulerOptions extends SchedulerBaseOptions {
  maxBatchSize: number;
  dynamicBatching?: {
    preferredBatchSizes: number[];
    maxQueueDelayUs: number;
    preserveOrdering: boolean;
  };
  priorityLevels: number;
  defaultPriorityLevel: number;
  policyOf: (level: number) => QueuePolicy;
  /** Promote a request of level > 1 to the front after waiting this long (0: off); see priority-queue.ts. */
  priorityAgingUs?: number;
}

export class Scheduler extends SchedulerBase {
  private readonly queue: PriorityQueue;
  private timer?: NodeJS.Timeout;
  private timerAt = Infinity;
  private seq = 0;
  /** Set by pickBatch: how long its batch should still wait (ms). */
  private pickWait = 0;
  /** preserve_ordering: outcomes held back until every earlier request has finished. */
  private nextToRelease = 0;
  private readonly held = new Map<number, () => void>();
  /** Submitted jobs whose outcome is not yet delivered (a count, for leak checks and debugging). */
  private unsettledJobs = 0;
  /** Dynamic batching: the preferred batch sizes within max_batch_size, and the size a batch is gathered up to. */
  private readonly preferred: number[];
  private readonly cap: number;

  constructor(private readonly opts: SchedulerOptions) {
    super(opts);
    this.queue = new PriorityQueue(opts.priorityLevels, opts.policyOf, (opts.priorityAgingUs ?? 0) / 1000);
    const max = opts.maxBatchSize;
    this.preferred = opts.dynamicBatching?.preferredBatchSizes.filter((p) => p > 0 && p <= max) ?? [];
    this.cap = this.preferred.length > 0 ? Math.max(...this.preferred) : max;
  }

  protected get queued(): number {
    return this.queue.size;
  }

  /** The priority level a request asks for (0 or out of range: the default level). */
  levelOf(priority: number): number {
    if (!Number.isInteger(priority) || priority <= 0 || priority > this.opts.priorityLevels) return this.opts.defaultPriorityLevel;
    return priority;
  }

  /** Queues a job; rejects it at once when its level's queue is full. */
  submit(job: SubmittedJob): void {
    // The caller's arrival read when it made one: one clock read per request fewer.
    const now = job.arrivedAt ?? performance.now();
    const policy = this.queue.policy(job.level);
    const timeoutUs = policy.allowTimeoutOverride && job.timeoutUs > 0 ? job.timeoutUs : policy.defaultTimeoutUs;
    // The one object the scheduler makes per request: queued, then handed to the instance as it is.
    const full = new QueuedJob(this, job, this.seq++, now, timeoutUs > 0 ? now + timeoutUs / 1000 : Infinity, policy.timeoutAction);
    this.unsettledJobs++;
    if (this.closed) {
      this.settle(full, { error: this.unloading() }, now);
      return;
    }
    const signal = full.request.signal;
    if (clientCancelled(signal)) {
      this.settle(full, { error: this.cancelledError(signal!) }, now);
      return;
    }
    // Fast path: nothing queued and an instance with room. The request would be alone in its
    // batch and go at once (no priority can overtake it, no queue limit or timeout applies to an
    // empty queue), so it goes straight from here without entering the queue. Not when the
    // dynamic batcher would hold it for company: with a max_queue_delay, a request that does not
    // fill the batch on its own waits (Triton's dynamic batcher forms a batch once an instance is
    // free from what the queue holds, and waits out the delay for a batch below the preferred
    // size).
    if (this.queue.size === 0 && this.goesAlone(full)) {
      const target = this.leastBusyTarget();
      if (target) {
        this.dispatch(target, [full], now);
        return;
      }
    }
    if (!this.queue.push(full)) {
      this.settle(full, {
        error: new StubhostError(
          'STUBHOST_QUEUE_FULL',
          `${this.opts.modelLabel}: queue full: priority level ${job.level} already holds max_queue_size ${policy.maxQueueSize} requests; retry later`,
        ),
      }, now);
      return;
    }
    // The abort listener is only added if the job is still queued after this schedule(): most
    // jobs are dispatched by it at once, and adding and removing a listener costs more than the
    // rest of submit. NOT_LISTENING marks "queued, no listener yet"; unlisten() clears it.
    if (signal) full.queueWatch = NOT_LISTENING;
    this.notePending();
    // The same instant as the arrival: one clock read per request fewer.
    this.schedule(now);
    if (signal && full.queueWatch === NOT_LISTENING) this.watch(full, this.cancelQueued);
  }

  /** Tries to dispatch: call when work arrives or an instance frees up. `now`: a clock read just made. */
  schedule(now?: number): void {
    // Nothing queued: nothing to expire, age, wait for or dispatch (a batch that finished with
    // the queue empty makes no clock read).
    if (this.queue.size === 0) {
      this.notifyIdle();
      return;
    }
    now ??= performance.now();
    // Most calls reject nothing: the array is made only when a job expired.
    let rejected = NONE;
    if (this.queue.hasExpired(now)) rejected = [];
    const nextDeadline = this.queue.expire(now, rejected);
    for (const job of rejected) {
      this.settle(job, { error: stacklessError('STUBHOST_TIMEOUT', `${this.opts.modelLabel}: request timed out in the queue after ${Math.round(now - job.enqueuedAt)} ms`) }, now);
    }
    for (const job of rejected) this.unlisten(job);
    let wakeAt = nextDeadline;
    while (this.queue.size > 0) {
      const target = this.leastBusyTarget();
      if (!target) break;
      const jobs = this.pickBatch(now);
      if (this.pickWait > 0) {
        wakeAt = Math.min(wakeAt, now + this.pickWait);
        break;
      }
      for (const job of jobs) this.queue.remove(job);
      this.dispatch(target, jobs, now);
    }
    if (rejected.length > 0) this.notePending();
    this.armTimer(wakeAt);
    // Also reached when the last queued request timed out or was cancelled.
    this.notifyIdle();
  }

  override close(reason: string): void {
    if (this.timer) clearTimeout(this.timer);
    super.close(reason);
  }

  protected drain(): Iterable<Job> {
    return this.queue.clear();
  }


  /** Whether `job`, alone in the queue, would be dispatched at once (pickBatch would not wait). */
  private goesAlone(job: Job): boolean {
    const db = this.opts.dynamicBatching;
    return !db || this.opts.maxBatchSize === 0 || db.maxQueueDelayUs <= 0 || job.batchSize >= this.cap;
  }

  /**
   * The next batch, in service order; `pickWait` is set to how long it should still wait for
   * more requests (0: send it now). A field, not a result object: this runs for every batch.
   */
  private pickBatch(now: number): Job[] {
    this.pickWait = 0;
    const db = this.opts.dynamicBatching;
    const first = this.queue.peek()!;
    if (!db || this.opts.maxBatchSize === 0) return [first];
    const { preferred, cap } = this;
    const jobs: Job[] = [];
    let size = 0;
    let oldest = Infinity;
    /** Jobs in the batch when it last had a preferred size. */
    let atPreferred = 0;
    let full = false;
    for (const job of this.queue.inOrder()) {
      if (job.shapeKey !== first.shapeKey) continue;
      // A request larger than the cap still runs, alone: a request is never split.
      if (jobs.length > 0 && size + job.batchSize > cap) {
        full = true;
        break;
      }
      jobs.push(job);
      size += job.batchSize;
      if (job.enqueuedAt < oldest) oldest = job.enqueuedAt;
      if (preferred.includes(size)) atPreferred = jobs.length;
      if (size >= cap) {
        full = true;
        break;
      }
    }
    if (full) return atPreferred > 0 ? jobs.slice(0, atPreferred) : jobs;
    const delayMs = db.maxQueueDelayUs / 1000;
    const waited = now - oldest;
    if (waited < delayMs) this.pickWait = delayMs - waited;
    return jobs;
  }

  /** One handler for every queued job (bound once, not per request). */
  private readonly cancelQueued = (job: Job, signal: CancelSignal): void => {
    if (this.queue.remove(job)) this.cancelled(job, signal);
  };

  /** Its batch goes to its instance now: its queue time ends, and its batch size is known. */
  protected override starting(jobs: Job[], startedAt: number): void {
    const n = jobs.length;
    for (let i = 0; i < n; i++) {
      const job = jobs[i] as QueuedJob;
      job.startedAt = startedAt;
      job.ranIn = n;
    }
  }

  /** A dispatched job's outcome from its instance, with its queue time and batch size. */
  ranJob(job: QueuedJob, outcome: ExecOutcome, timing: JobTiming): void {
    this.release(job, outcome, {
      queueMs: job.startedAt - job.enqueuedAt, computeMs: timing.computeMs, batchSize: job.ranIn, inputMs: timing.inputMs, outputMs: timing.outputMs, endedAt: timing.endedAt,
    });
  }

  protected settle(job: Job, outcome: ExecOutcome, now: number): void {
    this.release(job, outcome, { queueMs: now - job.enqueuedAt, computeMs: 0, batchSize: 0 });
  }

  /** Delivers a job's outcome once (a second settle of the same job is ignored), in order when preserve_ordering asks. */
  private release(job: Job, outcome: ExecOutcome, timing: JobTiming): void {
    const queued = job as QueuedJob;
    if (queued.settled) return;
    queued.settled = true;
    this.unsettledJobs--;
    const seq = job.seq;
    const submitted = queued.submitted;
    if (!this.opts.dynamicBatching?.preserveOrdering) {
      submitted.finish(outcome, timing);
      return;
    }
    this.held.set(seq, () => submitted.finish(outcome, timing));
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
    // Clamped to Node's longest delay (a longer one would fire after 1 ms); firing early only
    // runs schedule(), which arms the timer again for what is left.
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.timerAt = Infinity;
      this.schedule();
    }, Math.min(MAX_TIMER_MS, Math.max(0, at - performance.now())));
  }
}

/**
 * A job as the scheduler queues it and its instance gets it: the submitted job's fields, its
 * order and deadline. Its instance's finish goes through the scheduler (queue time, batch size,
 * once only, preserve_ordering); the submitted job's finish gets the result. A class: one object
 * per request, no closure.
 */
class QueuedJob implements Job, QueuedSlot, QueuedWatchOf {
  readonly request: Job['request'];
  readonly batchSize: number;
  readonly shapeKey: string;
  readonly level: number;
  readonly sink: Job['sink'];
  /** When its batch went to its instance, and the batch's size (set at dispatch). */
  startedAt = 0;
  ranIn = 0;
  /**
   * Its outcome was delivered (release ignores a second one). A field, not a Set of unsettled
   * seqs: that Set's add and delete per request rehashed it every few dozen requests, each new
   * table allocated in the old generation once the Set's table was there.
   */
  settled = false;
  /** While queued: its queue slot and abort listener (declared so every job has the same shape). */
  queueSlot: QueuedSlot['queueSlot'] = undefined;
  queueWatch: Unlisten | undefined = undefined;

  constructor(
    private readonly owner: Scheduler,
    readonly submitted: SubmittedJob,
    readonly seq: number,
    readonly enqueuedAt: number,
    public deadline: number,
    readonly timeoutAction: Job['timeoutAction'],
  ) {
    this.request = submitted.request;
    this.batchSize = submitted.batchSize;
    this.shapeKey = submitted.shapeKey;
    this.level = submitted.level;
    this.sink = submitted.sink;
  }

  finish(outcome: ExecOutcome, timing: JobTiming): void {
    this.owner.ranJob(this, outcome, timing);
  }
}
