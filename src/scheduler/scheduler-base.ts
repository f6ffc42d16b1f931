/**
 * What every scheduler of a model does the same way (the dynamic / default scheduler in
 * scheduler.ts and the sequence batcher in sequence-batcher.ts): its instances and how busy each
 * is, dispatch through the rate limiter, cancellation of queued requests, the pending count,
 * waiting for idle, and closing. A subclass decides only which queued jobs go where.
 *
 * A batch is bound to its instance when dispatched; with the rate limiter on, it then waits until
 * the instance holds its resources. An instance counts busy from dispatch, not from execute, so
 * work waiting for resources stays in the subclass's queue instead of piling onto one instance.
 * Triton's rate limiter gates every scheduler's executions alike: the dynamic batcher (core
 * src/dynamic_batch_scheduler.cc) and the direct sequence batcher (core
 * src/sequence_batch_scheduler/sequence_batch_scheduler.cc, DirectSequenceBatch::BatcherThread)
 * both hand their payloads to RateLimiter::EnqueuePayload (src/rate_limiter.cc); the oldest
 * sequence batcher batches through a DynamicBatchScheduler.
 *
 * Everything runs on the host's event loop (no locks).
 */
import { StubhostError, stacklessError } from '../errors.js';
import type { AcquireResources, ExecOutcome, ExecutionTarget, Job, ModelScheduler, RunningBatch, SubmittedJob } from '../execution/contract.js';
import type { CancelSignal } from '../core/cancel-signal.js';

export interface SchedulerBaseOptions {
  modelLabel: string;
  /** Called when the number of pending requests (queued, or dispatched and waiting for rate-limiter resources) changes. */
  onPending?: (pending: number) => void;
  /** Rate limiter hook: resolves when the instance may execute; returns the release function. */
  acquire?: AcquireResources;
}

export abstract class SchedulerBase implements ModelScheduler {
  protected readonly targets: ExecutionTarget[] = [];
  protected closed = false;
  private readonly busy = new Map<ExecutionTarget, number>();
  private inflightJobs = 0;
  /** Jobs dispatched whose instance waits for rate-limiter resources. */
  private waitingJobs = 0;
  private idleWaiters: (() => void)[] = [];

  constructor(private readonly base: SchedulerBaseOptions) {}

  /** Jobs in the subclass's queue. */
  protected abstract get queued(): number;
  abstract levelOf(priority: number): number;
  abstract submit(job: SubmittedJob): void;
  abstract schedule(): void;
  /** Empties the subclass's queue at close: the jobs it held, to be failed. */
  protected abstract drain(): Iterable<Job>;
  /** Delivers the outcome of a job that did not run (refused, cancelled, failed before execute). */
  protected abstract settle(job: Job, outcome: ExecOutcome, now: number): void;
  /**
   * `jobs` go to their instance now, as they are (no object made per job): a subclass notes
   * what its own bookkeeping needs (when the batch started, its size).
   */
  protected starting(_jobs: Job[], _startedAt: number): void {}

  get pending(): number {
    return this.queued + this.waitingJobs;
  }

  get inflight(): number {
    return this.inflightJobs;
  }

  addTarget(target: ExecutionTarget): void {
    this.targets.push(target);
    this.schedule();
  }

  close(reason: string): void {
    this.closed = true;
    const now = performance.now();
    const error = new StubhostError('STUBHOST_UNAVAILABLE', `${this.base.modelLabel}: ${reason}`);
    for (const job of [...this.drain()]) {
      this.unlisten(job);
      this.settle(job, { error }, now);
    }
    this.notePending();
    this.notifyIdle();
  }

  idle(): Promise<void> {
    if (this.pending === 0 && this.inflightJobs === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** The error of a job submitted after close. */
  protected unloading(): StubhostError {
    return new StubhostError('STUBHOST_UNAVAILABLE', `${this.base.modelLabel} is unloading`);
  }

  /** Whether `target` can take another batch now: a free slot of its depth, and ready. */
  protected hasRoom(target: ExecutionTarget): boolean {
    return (this.busy.get(target) ?? 0) < (target.depth ?? 1) && target.canAccept();
  }

  /**
   * The least busy instance with room (an idle one at once; ties: the first). With batches sent
   * ahead (an instance depth above 1, see instance/instance-depth.ts) first-fit would fill one
   * instance's depth while another sat idle; as in Triton, where each instance takes the next
   * request when it is free, the work spreads. A loop, not find(): no closure per schedule.
   */
  protected leastBusyTarget(): ExecutionTarget | undefined {
    let best: ExecutionTarget | undefined;
    let bestBusy = Infinity;
    for (const t of this.targets) {
      if (!this.hasRoom(t)) continue;
      const busy = this.busy.get(t) ?? 0;
      if (busy === 0) return t;
      if (busy < bestBusy) {
        best = t;
        bestBusy = busy;
      }
    }
    return best;
  }

  /**
   * Sends `jobs` (already out of the queue) to `target`: the instance is busy from now; the batch
   * waits for its resources, drops requests whose clients left meanwhile, runs, then the
   * scheduler dispatches again. `now`: the caller's clock read just made (the batch's start
   * when it needs no resources to wait for). No promise unless the rate limiter makes it wait:
   * the target tells the batch when it is over (runThen).
   */
  protected dispatch(target: ExecutionTarget, jobs: Job[], now = performance.now()): void {
    for (const job of jobs) this.unlisten(job);
    this.inflightJobs += jobs.length;
    this.busy.set(target, (this.busy.get(target) ?? 0) + 1);
    const run = new BatchRun(this, target, jobs);
    const acquire = this.base.acquire;
    if (acquire) {
      let acquired: Promise<() => void> | (() => void);
      try {
        acquired = acquire(target);
      } catch (err) {
        this.batchOver(run, err);
        return;
      }
      if (acquired instanceof Promise) {
        run.waiting = jobs.length;
        this.waitingJobs += run.waiting;
        this.notePending();
        acquired.then((release) => {
          this.waitingJobs -= run.waiting;
          run.waiting = 0;
          run.release = release;
          this.start(run, performance.now());
        }, (err: unknown) => this.batchOver(run, err));
        return;
      }
      run.release = acquired;
    }
    this.start(run, now);
  }

  /** The batch holds its resources: its live requests go to the target. */
  private start(run: BatchRun, startedAt: number): void {
    const jobs = run.all;
    try {
      this.notePending();
      // Requests whose clients left while the instance waited for resources are not run. The
      // batch goes as it is when none left (the usual case: no copy of it).
      let live = jobs;
      for (let i = 0; i < jobs.length; i++) {
        const signal = jobs[i]!.request.signal;
        if (!clientCancelled(signal)) {
          if (live !== jobs) live.push(jobs[i]!);
          continue;
        }
        if (live === jobs) live = jobs.slice(0, i);
        this.settle(jobs[i]!, { error: this.cancelledError(signal!) }, startedAt);
      }
      if (live.length === 0) {
        this.batchOver(run);
        return;
      }
      run.jobs = live;
      run.startedAt = startedAt;
      this.starting(live, startedAt);
      const target = run.target;
      if (target.runThen) target.runThen(run);
      else target.run(live, startedAt).then(() => run.done(), (err: unknown) => run.done(err));
    } catch (err) {
      this.batchOver(run, err);
    }
  }

  /**
   * A batch is over (ran, failed, or had nothing left to run): the jobs it did not settle fail
   * with `error`; the instance is free again.
   */
  batchOver(run: BatchRun, err?: unknown): void {
    if (run.over) return;
    run.over = true;
    const jobs = run.all;
    if (err !== undefined) {
      const error = err instanceof StubhostError ? err : new StubhostError('STUBHOST_INTERNAL', (err as Error)?.message ?? String(err));
      const now = performance.now();
      for (const job of jobs) this.settle(job, { error }, now);
    }
    if (run.waiting > 0) this.waitingJobs -= run.waiting;
    this.inflightJobs -= jobs.length;
    const target = run.target;
    this.busy.set(target, (this.busy.get(target) ?? 1) - 1);
    // Dispatch this instance's next batch (its acquire queues) before giving the resources
    // back, so the rate limiter sees every contender and its priority share holds.
    try {
      this.schedule();
    } finally {
      this.notifyIdle();
      run.release?.();
    }
  }

  /**
   * Calls `onCancel(job, signal)` once the client of queued `job` cancels it (at once if it already has);
   * the request's own timeout does not count (see clientCancelled). unlisten() stops it.
   */
  protected watch(job: Job, onCancel: (job: Job, signal: CancelSignal) => void): void {
    const signal = job.request.signal;
    if (!signal) return;
    if (clientCancelled(signal)) {
      (job as Watched).queueWatch = undefined;
      onCancel(job, signal);
      return;
    }
    // One listener object per queued job (handleEvent), no closures: this runs for every
    // request that waits in the queue.
    const watch = new QueuedWatch(job, signal, onCancel);
    signal.addEventListener('abort', watch, ONCE);
    (job as Watched).queueWatch = watch;
  }

  protected unlisten(job: Job): void {
    const watch = (job as Watched).queueWatch;
    if (watch) {
      (job as Watched).queueWatch = undefined;
      watch.off();
    }
  }

  /**
   * A cancelled queued job has left the queue: answer it, then (`reschedule`) let the rest move
   * (a batch being gathered may now be complete).
   */
  protected cancelled(job: Job, signal: CancelSignal, reschedule = true): void {
    this.settle(job, { error: this.cancelledError(signal) }, performance.now());
    this.notePending();
    if (reschedule) this.schedule();
    this.notifyIdle();
  }

  protected cancelledError(signal: CancelSignal): StubhostError {
    const reason = signal.reason as unknown;
    const why = reason instanceof Error ? reason.message : typeof reason === 'string' ? reason : 'the request was cancelled';
    return stacklessError('STUBHOST_CANCELLED', `${this.base.modelLabel}: request cancelled while queued (${why})`);
  }

  protected notePending(): void {
    this.base.onPending?.(this.pending);
  }

  /** Wakes idle() once nothing is queued or executing (also after the last queued job timed out or was cancelled). */
  protected notifyIdle(): void {
    if (this.idleWaiters.length === 0 || this.pending !== 0 || this.inflightJobs !== 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}

/** One dispatched batch: what the target is told to run, and what the scheduler frees when it is over. */
class BatchRun implements RunningBatch {
  /** The jobs run: `all` without those cancelled while waiting for resources. */
  jobs: Job[];
  startedAt = 0;
  /** Jobs counted pending while the batch waits for rate-limiter resources. */
  waiting = 0;
  release?: () => void;
  over = false;

  constructor(
    private readonly owner: SchedulerBase,
    readonly target: ExecutionTarget,
    /** Every job dispatched with the batch. */
    readonly all: Job[],
  ) {
    this.jobs = all;
  }

  done(error?: unknown): void {
    this.owner.batchOver(this, error);
  }
}

/** Removes a queued job's abort listener. */
export interface Unlisten {
  off(): void;
}

/**
 * A queued job's abort listener is kept on the job (watch sets it, unlisten clears it), not in a
 * Map keyed by job: see QueuedSlot in priority-queue.ts for what such a Map does to the scavenger.
 */
export type QueuedWatchOf = { queueWatch?: Unlisten | undefined };
type Watched = Job & QueuedWatchOf;

const ONCE = { once: true } as const;

/** The abort listener of one queued job (an EventTarget handler object): calls `onCancel` when its client cancels. */
class QueuedWatch implements Unlisten {
  constructor(
    private readonly job: Job,
    private readonly signal: CancelSignal,
    private readonly onCancel: (job: Job, signal: CancelSignal) => void,
  ) {}

  handleEvent(): void {
    if (!clientCancelled(this.signal)) return;
    (this.job as Watched).queueWatch = undefined;
    this.onCancel(this.job, this.signal);
  }

  off(): void {
    this.signal.removeEventListener('abort', this);
  }
}

/** Marks a queued job whose abort listener is not added yet (Scheduler.submit). */
export const NOT_LISTENING: Unlisten = { off() {} };

/**
 * Aborted by the client (disconnect, explicit cancel), as opposed to by the request's own
 * `timeout` running out: ModelVersion aborts the signal with a STUBHOST_TIMEOUT reason so a
 * running model sees isCancelled(), but in the queue the queue policy (REJECT / DELAY) decides.
 */
export function clientCancelled(signal: CancelSignal | undefined): boolean {
  if (!signal?.aborted) return false;
  if (answeredSignals.has(signal)) return true;
  const reason = signal.reason as { code?: unknown } | undefined;
  return reason?.code !== 'STUBHOST_TIMEOUT';
}

/** Signals of requests whose client already has an answer (their deadline answered for them). */
const answeredSignals = new WeakSet<CancelSignal>();

/**
 * The request of this signal was answered without the model (its timeout's deadline passed):
 * if it is still queued it is dropped when it would be dispatched, instead of being run.
 */
export function markAnswered(signal: CancelSignal): void {
  answeredSignals.add(signal);
}
