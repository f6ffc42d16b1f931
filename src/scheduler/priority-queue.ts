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
 * Owned by one Scheduler; used on the host's event loop only.
 */
import type { Job } from '../execution/contract.js';

export interface QueuePolicy {
  timeoutAction: 'REJECT' | 'DELAY';
  defaultTimeoutUs: number;
  allowTimeoutOverride: boolean;
  /** 0: unbounded. */
  maxQueueSize: number;
}

interface Level {
  main: Job[];
  delayed: Job[];
  policy: QueuePolicy;
}

export class PriorityQueue {
  private readonly levels: Level[];
  /** Requests promoted by aging, in arrival order; served before every level. */
  private aged: Job[] = [];
  private count = 0;

  /** `agingMs`: promote a level > 1 request after waiting this long (0: never). */
  constructor(levelCount: number, policyOf: (level: number) => QueuePolicy, private readonly agingMs = 0) {
    this.levels = Array.from({ length: Math.max(1, levelCount) }, (_, i) => ({ main: [], delayed: [], policy: policyOf(i + 1) }));
  }

  get size(): number {
    return this.count;
  }

  policy(level: number): QueuePolicy {
    return this.levels[level - 1]!.policy;
  }

  /** Requests queued at `level` (main + delayed; aged ones count at the level they came from). */
  levelSize(level: number): number {
    const l = this.levels[level - 1]!;
    let n = l.main.length + l.delayed.length;
    for (const j of this.aged) if (j.level === level) n++;
    return n;
  }

  /** False when the level's queue is full. */
  push(job: Job): boolean {
    const level = this.levels[job.level - 1]!;
    if (level.policy.maxQueueSize > 0 && this.levelSize(job.level) >= level.policy.maxQueueSize) return false;
    level.main.push(job);
    this.count++;
    return true;
  }

  /**
   * Applies timeouts and aging: jobs past their deadline are returned for rejection (REJECT) or
   * moved to the delayed FIFO (DELAY); jobs that waited the aging time move to the aged FIFO.
   * Returns the rejected jobs and the earliest time something will change (deadline or aging).
   */
  expire(now: number): { rejected: Job[]; nextDeadline: number } {
    const rejected: Job[] = [];
    let nextDeadline = Infinity;
    if (this.aged.length > 0) {
      const keep: Job[] = [];
      for (const job of this.aged) {
        if (job.deadline <= now && job.timeoutAction === 'REJECT') {
          rejected.push(job);
          this.count--;
        } else {
          keep.push(job);
          if (job.deadline < nextDeadline) nextDeadline = job.deadline;
        }
      }
      this.aged = keep;
    }
    let promoted = false;
    for (let i = 0; i < this.levels.length; i++) {
      const level = this.levels[i]!;
      if (level.main.length === 0) continue;
      const keep: Job[] = [];
      for (const job of level.main) {
        if (job.deadline <= now) {
          if (job.timeoutAction === 'REJECT') {
            rejected.push(job);
            this.count--;
          } else {
            job.deadline = Infinity;
            level.delayed.push(job);
          }
        } else if (i > 0 && this.agingMs > 0 && now - job.enqueuedAt >= this.agingMs) {
          this.aged.push(job);
          promoted = true;
          if (job.deadline < nextDeadline) nextDeadline = job.deadline;
        } else {
          keep.push(job);
          if (job.deadline < nextDeadline) nextDeadline = job.deadline;
          if (i > 0 && this.agingMs > 0) nextDeadline = Math.min(nextDeadline, job.enqueuedAt + this.agingMs);
        }
      }
      if (keep.length !== level.main.length) level.main = keep;
    }
    if (promoted) this.aged.sort((a, b) => a.enqueuedAt - b.enqueuedAt || a.seq - b.seq);
    return { rejected, nextDeadline };
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
    if (this.aged.length > 0) return this.aged[0];
    for (const level of this.levels) {
      if (level.main.length > 0) return level.main[0];
      if (level.delayed.length > 0) return level.delayed[0];
    }
    return undefined;
  }

  /** Removes the given jobs (picked for a batch, or cancelled). Returns how many were queued. */
  remove(jobs: ReadonlySet<Job>): number {
    if (jobs.size === 0) return 0;
    const before = this.count;
    this.aged = this.drop(this.aged, jobs);
    for (const level of this.levels) {
      level.main = this.drop(level.main, jobs);
      level.delayed = this.drop(level.delayed, jobs);
    }
    return before - this.count;
  }

  /** `list` without `jobs` (the same array when it holds none of them). */
  private drop(list: Job[], jobs: ReadonlySet<Job>): Job[] {
    let i = 0;
    while (i < list.length && !jobs.has(list[i]!)) i++;
    if (i === list.length) return list;
    const kept = list.slice(0, i);
    for (i++; i < list.length; i++) if (!jobs.has(list[i]!)) kept.push(list[i]!);
    this.count -= list.length - kept.length;
    return kept;
  }

  shift(): Job | undefined {
    const job = this.peek();
    if (job) this.remove(new Set([job]));
    return job;
  }

  /** Empties the queue, returning everything that was in it. */
  clear(): Job[] {
    const all = [...this.inOrder()];
    this.aged = [];
    for (const level of this.levels) {
      level.main = [];
      level.delayed = [];
    }
    this.count = 0;
    return all;
  }
}
