/**
 * The executes the host sent ahead (it may send the next batch while one runs, to hide the round
 * trip): they run one after another, at most `maxConcurrent` (max_inflight_per_instance) at once.
 * A request cancelled while its batch waits here starts cancelled.
 */
import type { Execute } from '../src/ipc/protocol.js';
import { flushDeferredWakes } from '../src/ipc/semaphore.js';

/**
 * An execute at least this long (the previous one's duration predicts the next) pays the wake of
 * replies posted earlier in this turn before it starts: with coalesced wakes (both processes on
 * one CPU) a reply would otherwise wait for the next execute to end.
 */
const LONG_EXECUTE_MS = 0.1;

export class ExecQueue {
  private readonly waiting: Execute[] = [];
  private running = 0;
  /** max_inflight_per_instance, set once the config is final. */
  maxConcurrent = 1;
  private readonly cancelledBeforeStart = new Set<number>();
  private lastExecuteMs = 0;
  private startedAt = 0;

  constructor(private readonly run: (msg: Execute) => Promise<void>) {}

  push(msg: Execute): void {
    this.waiting.push(msg);
    this.pump();
  }

  /** Executes running now. */
  get executing(): number {
    return this.running;
  }

  get length(): number {
    return this.waiting.length;
  }

  get cancelledWaiting(): number {
    return this.cancelledBeforeStart.size;
  }

  /** A cancel for a request not running: if its batch waits here, it starts cancelled. */
  cancelWaiting(rid: number): void {
    if (this.waiting.some((e) => e.reqs.some((w) => w.rid === rid))) this.cancelledBeforeStart.add(rid);
  }

  /** Whether `rid` was cancelled before its execute started (and forgets it). */
  takeCancelled(rid: number): boolean {
    return this.cancelledBeforeStart.delete(rid);
  }

  private pump(): void {
    while (this.running < this.maxConcurrent && this.waiting.length > 0) {
      const msg = this.waiting.shift()!;
      this.running++;
      if (this.lastExecuteMs >= LONG_EXECUTE_MS) flushDeferredWakes();
      this.startedAt = performance.now();
      // then, not finally: one promise less per execute; a rejection still goes unhandled (the
      // stub's crash handler), as with finally.
      void this.run(msg).then(this.finished, this.failed);
    }
  }

  private readonly finished = (): void => {
    // With maxConcurrent > 1 this is the time since the latest start: a lower bound, enough to
    // tell a long execute from a short one.
    this.lastExecuteMs = performance.now() - this.startedAt;
    this.running--;
    this.pump();
  };

  private readonly failed = (err: unknown): never => {
    this.finished();
    throw err;
  };
}
