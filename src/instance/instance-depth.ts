/**
 * How many batches one model instance may hold at once: those running (max_inflight_per_instance)
 * plus those sent ahead, which wait in the stub and start the moment the running one ends, so the
 * host⇄stub round trip does not idle the instance between executes.
 *
 * With the parameter instance_prefetch set, the number sent ahead is that. Unset (and the model
 * one whose default is to send ahead), it adapts to the model's speed: enough to keep about
 * PREFETCH_AHEAD_MS of work queued in the stub, from one batch for a model that takes a
 * millisecond or more, up to MAX_ADAPTIVE_PREFETCH for one that takes microseconds. A fast
 * model then gets many requests per host⇄stub wake-up instead of two (add_sub over HTTP at 16
 * connections: 12 per wake-up, 6k → 10k requests/s on one CPU; at 64 connections a cap of 64
 * instead of 16 took 14k to 18.5k), while a request that arrives later waits behind at most
 * about PREFETCH_AHEAD_MS of work sent ahead.
 */

/** Work kept queued in the stub by the adaptive depth, in milliseconds of execute time. */
export const PREFETCH_AHEAD_MS = 1;
/** The most batches the adaptive depth sends ahead. */
export const MAX_ADAPTIVE_PREFETCH = 64;
/** Weight of the newest interval in the service-time average. */
const EWMA_WEIGHT = 1 / 8;

export class InstanceDepth {
  /** Average time one batch occupies the instance, in ms (see finished). */
  private serviceMs = PREFETCH_AHEAD_MS;
  private lastDoneAt = -Infinity;
  private ahead: number;

  /**
   * `concurrent`: max_inflight_per_instance. `prefetch`: the instance_prefetch parameter, or
   * 'adaptive'.
   */
  constructor(private readonly concurrent: number, private readonly prefetch: number | 'adaptive') {
    this.ahead = prefetch === 'adaptive' ? 1 : prefetch;
  }

  /** Batches the instance may hold now. */
  get depth(): number {
    return this.concurrent + this.ahead;
  }

  /**
   * A batch sent at `sentAt` finished at `now` (performance.now() times). The time it occupied
   * the instance is measured from the later of its sending and the previous batch's end: back to
   * back in the stub, the interval between two ends; sent to an idle stub, its round trip.
   */
  finished(sentAt: number, now: number): void {
    if (this.prefetch !== 'adaptive') return;
    const interval = now - Math.max(sentAt, this.lastDoneAt);
    this.lastDoneAt = now;
    this.serviceMs += (Math.max(0, interval) - this.serviceMs) * EWMA_WEIGHT;
    // Batches end one per interval whatever max_inflight_per_instance is, so the queue ahead
    // drains in ahead × interval.
    const wanted = this.serviceMs <= 0 ? MAX_ADAPTIVE_PREFETCH : Math.ceil(PREFETCH_AHEAD_MS / this.serviceMs);
    this.ahead = Math.min(MAX_ADAPTIVE_PREFETCH, Math.max(1, wanted));
  }
}
