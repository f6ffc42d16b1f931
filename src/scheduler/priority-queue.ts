/**
 * The per-model request queue with Triton's priority levels and queue policies.
 *
 * Each level has a main FIFO and a delayed FIFO. Level 1 is served first. A request whose queue
 * timeout passes is rejected (REJECT) or moved to its level's delayed FIFO (DELAY), where it is
 * served only after every non-delayed request of its level — so urgent traffic that has waited
 * too long yields to fresh traffic. Starvation of lower levels is bounded by giving them a
 * timeout with REJECT (they fail fast with a clear error instead of waiting forever) or by
 * capping higher levels with max_queue_size.
 */
import type { Job } from './job.js';

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
  private count = 0;

  constructor(levelCount: number, policyOf: (level: number) => QueuePolicy) {
    this.levels = Array.from({ length: Math.max(1, levelCount) }, (_, i) => ({ main: [], delayed: [], policy: policyOf(i + 1) }));
  }

  get size(): number {
    return this.count;
  }

  policy(level: number): QueuePolicy {
    return this.levels[level - 1]!.policy;
  }

  /** False when the level's queue is full. */
  push(job: Job): boolean {
    const level = this.levels[job.level - 1]!;
    if (level.policy.maxQueueSize > 0 && level.main.length + level.delayed.length >= level.policy.maxQueueSize) return false;
    level.main.push(job);
    this.count++;
    return true;
  }

  /**
   * Applies timeouts: jobs past their deadline are returned for rejection (REJECT) or moved to
   * the delayed FIFO (DELAY). Returns the rejected jobs and the earliest deadline still pending.
   */
  expire(now: number): { rejected: Job[]; nextDeadline: number } {
    const rejected: Job[] = [];
    let nextDeadline = Infinity;
    for (const level of this.levels) {
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
        } else {
          keep.push(job);
          if (job.deadline < nextDeadline) nextDeadline = job.deadline;
        }
      }
      if (keep.length !== level.main.length) level.main = keep;
    }
    return { rejected, nextDeadline };
  }

  /** Jobs in service order, without removing them. */
  *inOrder(): Generator<Job> {
    for (const level of this.levels) {
      yield* level.main;
      yield* level.delayed;
    }
  }

  peek(): Job | undefined {
    for (const level of this.levels) {
      if (level.main.length > 0) return level.main[0];
      if (level.delayed.length > 0) return level.delayed[0];
    }
    return undefined;
  }

  /** Removes the given jobs (they were picked for a batch). */
  remove(jobs: ReadonlySet<Job>): void {
    if (jobs.size === 0) return;
    for (const level of this.levels) {
      if (level.main.some((j) => jobs.has(j))) level.main = level.main.filter((j) => !jobs.has(j));
      if (level.delayed.some((j) => jobs.has(j))) level.delayed = level.delayed.filter((j) => !jobs.has(j));
    }
    this.count -= jobs.size;
  }

  shift(): Job | undefined {
    for (const level of this.levels) {
      const job = level.main.shift() ?? level.delayed.shift();
      if (job) {
        this.count--;
        return job;
      }
    }
    return undefined;
  }

  /** Empties the queue, returning everything that was in it. */
  clear(): Job[] {
    const all = [...this.inOrder()];
    for (const level of this.levels) {
      level.main = [];
      level.delayed = [];
    }
    this.count = 0;
    return all;
  }
}
