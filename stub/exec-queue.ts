/**
 * The executes the host sent ahead (it may send the next batch while one runs, to hide the round
 * trip): they run one after another, at most `maxConcurrent` (max_inflight_per_instance) at once.
 * A request cancelled while its batch waits here starts cancelled.
 */
import type { Execute } from '../src/ipc/protocol.js';

export class ExecQueue {
  private readonly waiting: Execute[] = [];
  private running = 0;
  /** max_inflight_per_instance, set once the config is final. */
  maxConcurrent = 1;
  private readonly cancelledBeforeStart = new Set<number>();

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
      // then, not finally: one promise less per execute; a rejection still goes unhandled (the
      // stub's crash handler), as with finally.
      void this.run(msg).then(this.finished, this.failed);
    }
  }

  private readonly finished = (): void => {
    this.running--;
    this.pump();
  };

  private readonly failed = (err: unknown): never => {
    this.finished();
    throw err;
  };
}
