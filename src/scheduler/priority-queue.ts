/**
 * The per-model request queue with Triton's priority levels and queue policies.
 *
 * Service order. Level 1 is the most urgent and is served first; within a level, requests are
 * served in arrival order. Each level has a main FIFO and a delayed FIFO:
 * - a request whose queue timeout (default_timeout_microseconds, or the request's `timeout`
 *   parameter when allow_timeout_override is set) passes is rejected with STUBHOST_TIMEOUT
 *   (timeout_action REJECT) or moved to its level's delayed FIFO (DELAY), which is served only
 *   after every request of that level that has not timed out — exactly Triton's DELAY: the
 *   request yields to fresh traffic of its own level and of more urgent levels;
 * - max_queue_size caps a level (main + delayed); a request beyond it fails at once with
 *   STUBHOST_QUEUE_FULL (HTTP 503) and nothing already queued is touched.
 *
 * Starvation. Strict priority starves lower levels while urgent traffic never stops, and Triton's
 * DELAY does not prevent that (a delayed request "may be delayed indefinitely due to newly
 * arriving requests"). stubhost bounds it in two ways:
 * 1. Triton's way, by configuration: give the lower level a timeout with REJECT (its requests
 *    fail fast with a clear error instead of waiting forever), and/or cap the urgent level with
 *    max_queue_size so a flood of urgent work is refused instead of queued;
 * 2. aging (a stubhost extension, model parameter `priority_aging_microseconds`, 0 = off): a
 *    request of level > 1 that has waited that long is promoted to the aged FIFO, served before
 *    every level in arrival order. A lower-priority request therefore waits at most the aging
 *    time plus the work of the requests that aged before it — never forever — while fresh urgent
 *    traffic still overtakes it for the whole aging window. Delayed requests (DELAY timeouts)
 *    are not aged: the policy demoted them on purpose.
 *
 * Cost. Every operation is O(1) or O(log n) in the queue's length: removals (dispatch, cancel,
 * timeout) leave holes that are skipped and compacted, deadlines sit in a min-heap, and aging
 * takes from the heads of the arrival-ordered FIFOs. A client cancelling N queued requests costs
 * O(N) in all, never a scan of the queue per request.
 *
 * Owned by one Scheduler; used on the host's event loop only.
 */
import type { Job } from '../execution/contract.js';
import { Fifo, type FifoEntry } from '../core/fifo.js';

type Slot = FifoEntry<Job>;

/**
 * A job as the queue holds it: its slot is kept on the job (set by push, cleared when it leaves),
 * not in a Map keyed by job. A Map with an entry per queued request is rehashed every few dozen
 * requests, and once its table is in the old generation (after any full GC) each table it
 * replaces stays there, still pointing at the jobs it held and through them at their requests,
 * which the scavenger then keeps (and promotes) until the next full GC.
 */
export type QueuedSlot = { queueSlot?: Slot | undefined };
type Held = Job & QueuedSlot;

export interface QueuePolicy {
  timeoutAction: 'REJECT' | 'DELAY';
  defaultTimeoutUs: number;
  allowTimeoutOverride: boolean;
  /** 0: unbounded. */
  maxQueueSize: number;
}

interface Level {
  main: Fifo<Job>;
  delayed: Fifo<Job>;
  policy: QueuePolicy;
  /** Jobs of this level queued anywhere (main, delayed, aged). */
  count: number;
}

/** A deadline as it was when the job was queued (a job's deadline only ever changes to Infinity). */
interface DeadlineEntry {
  at: number;
  job: Job;
}

export class PriorityQueue {
  private readonly levels: Level[];
  /** Requests promoted by aging, in arrival order; served before every level. */
  private readonly aged = new Fifo<Job>();
  /** Jobs queued (main, delayed and aged FIFOs). */
  private queued = 0;
  /** Min-heap of the finite deadlines of jobs in a main or the aged FIFO; stale entries are skipped. */
  private heap: DeadlineEntry[] = [];

  /** `agingMs`: promote a level > 1 request after waiting this long (0: never). */
  constructor(levelCount: number, policyOf: (level: number) => QueuePolicy, private readonly agingMs = 0) {
    this.levels = Array.from({ length: Math.max(1, levelCount) }, (_, i) => ({
      main: new Fifo<Job>(), delayed: new Fifo<Job>(), policy: policyOf(i + 1), count: 0,
    }));
  }

  get size(): number {
    return this.queued;
  }

  policy(level: number): QueuePolicy {
    return this.levels[level - 1]!.policy;
  }

  /** Requests queued at `level` (main + delayed; aged ones count at the level they came from). */
  levelSize(level: number): number {
    return this.levels[level - 1]!.count;
  }

  /** False when the level's queue is full. */
  push(job: Job): boolean {
    const level = this.levels[job.level - 1]!;
    if (level.policy.maxQueueSize > 0 && level.count >= level.policy.maxQueueSize) return false;
    level.count++;
    this.queued++;
    (job as Held).queueSlot = level.main.push(job);
    if (job.deadline !== Infinity) this.heapPush({ at: job.deadline, job });
    return true;
  }

  /** Whether a job's deadline has passed at `now` (expire would move or reject it). */
  hasExpired(now: number): boolean {
    const top = this.liveTop();
    return top !== undefined && top.at <= now;
  }

  /**
   * Applies timeouts and aging: jobs past their deadline are returned for rejection (REJECT) or
   * moved to the delayed FIFO (DELAY); jobs that waited the aging time move to the aged FIFO.
   * Returns the earliest time something will change (deadline or aging); the rejected jobs are
   * appended to `rejected`. Costs O(log n) per job that changes, not a pass over the queue.
   */
  expire(now: number, rejected: Job[]): number {
    for (let top = this.liveTop(); top !== undefined && top.at <= now; top = this.liveTop()) {
      this.heapPop();
      const job = top.job;
      const slot = (job as Held).queueSlot!;
      const level = this.levels[job.level - 1]!;
      if (job.timeoutAction === 'REJECT') {
        this.remove(job);
        rejected.push(job);
      } else {
        // DELAY: behind the fresh requests of its level (an aged one keeps its place).
        job.deadline = Infinity;
        if (level.main.delete(slot)) level.delayed.pushEntry(slot);
      }
    }
    let nextDeadline = this.liveTop()?.at ?? Infinity;
    if (this.agingMs > 0) {
      const promoted: Slot[] = [];
      for (let i = 1; i < this.levels.length; i++) {
        const main = this.levels[i]!.main;
        // A main FIFO is in arrival order: the requests due for aging are its head.
        for (let s = main.first(); s !== undefined; s = main.first()) {
          if (now - s.value.enqueuedAt < this.agingMs) {
            nextDeadline = Math.min(nextDeadline, s.value.enqueuedAt + this.agingMs);
            break;
          }
          main.delete(s);
          promoted.push(s);
        }
      }
      if (promoted.length > 0) this.addAged(promoted);
    }
    return nextDeadline;
  }

  /** Jobs in service order, without removing them. */
  *inOrder(): Generator<Job> {
    yield* this.aged;
    for (const level of this.levels) {
      yield* level.main;
      yield* level.delayed;
    }
  }

  peek(): Job | undefined {
    const aged = this.aged.first();
    if (aged !== undefined) return aged.value;
    for (const level of this.levels) {
      const s = level.main.first() ?? level.delayed.first();
      if (s !== undefined) return s.value;
    }
    return undefined;
  }

  /** Removes a job (picked for a batch, or cancelled) in O(1). False if it was not queued. */
  remove(job: Job): boolean {
    const slot = (job as Held).queueSlot;
    if (slot === undefined) return false;
    (job as Held).queueSlot = undefined;
    this.queued--;
    slot.owner!.delete(slot);
    this.levels[job.level - 1]!.count--;
    // Stale deadline entries are skipped when they reach the top; drop them in bulk when they
    // outnumber the live jobs (cancel storms), so the heap stays within twice the queue.
    if (this.heap.length > 2 * this.queued + 64) this.rebuildHeap();
    return true;
  }

  shift(): Job | undefined {
    const job = this.peek();
    if (job) this.remove(job);
    return job;
  }

  /** Empties the queue, returning everything that was in it. */
  clear(): Job[] {
    const all = [...this.inOrder()];
    for (const job of all) (job as Held).queueSlot = undefined;
    this.queued = 0;
    this.aged.clear();
    for (const level of this.levels) {
      level.main.clear();
      level.delayed.clear();
      level.count = 0;
    }
    this.heap = [];
    return all;
  }

  /** Appends newly aged requests in arrival order (they all arrived after the ones aged before). */
  private addAged(promoted: Slot[]): void {
    const byArrival = (a: Slot, b: Slot): number => a.value.enqueuedAt - b.value.enqueuedAt || a.value.seq - b.value.seq;
    promoted.sort(byArrival);
    const last = this.aged.last();
    if (last !== undefined && byArrival(last, promoted[0]!) > 0) {
      // Not expected (aging runs over every level at once), but order must hold regardless.
      const all = [...this.aged.entries()];
      for (const s of all) this.aged.delete(s);
      promoted = [...all, ...promoted].sort(byArrival);
    }
    for (const s of promoted) this.aged.pushEntry(s);
  }

  /** The heap's top, after dropping entries whose job left the queue or whose deadline changed. */
  private liveTop(): DeadlineEntry | undefined {
    const heap = this.heap;
    while (heap.length > 0 && !this.isLive(heap[0]!)) this.heapPop();
    return heap[0];
  }

  private isLive(e: DeadlineEntry): boolean {
    return e.job.deadline === e.at && (e.job as Held).queueSlot !== undefined;
  }

  private rebuildHeap(): void {
    const live = this.heap.filter((e) => this.isLive(e));
    this.heap = [];
    for (const e of live) this.heapPush(e);
  }

  private heapPush(e: DeadlineEntry): void {
    const heap = this.heap;
    let i = heap.length;
    heap.push(e);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(e, heap[parent]!)) break;
      heap[i] = heap[parent]!;
      i = parent;
    }
    heap[i] = e;
  }

  private heapPop(): void {
    const heap = this.heap;
    const last = heap.pop();
    if (last === undefined || heap.length === 0) return;
    let i = 0;
    const n = heap.length;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const child = r < n && before(heap[r]!, heap[l]!) ? r : l;
      if (!before(heap[child]!, last)) break;
      heap[i] = heap[child]!;
      i = child;
    }
    heap[i] = last;
  }
}

function before(a: DeadlineEntry, b: DeadlineEntry): boolean {
  return a.at < b.at || (a.at === b.at && a.job.seq < b.job.seq);
}
