/**
 * A counting semaphore in shared memory, usable across processes.
 *
 * Two Int32 words: the count, and a sleeper flag the waiting side sets just before it sleeps.
 * `post` makes the futex wake syscall only when the flag is set, and clears it as it wakes, so
 * a burst of posts to a sleeper costs one syscall and posts to a side that is awake cost none.
 * The protocol (no wake is ever lost): the waiter stores the flag, re-checks the count, then
 * futex-waits on the count word expecting 0; the poster adds to the count, then reads the flag
 * (sequentially consistent Atomics, so neither reorders). If the add comes before the kernel's
 * compare in futex_wait, the wait returns at once; if after, the waiter was already flagged, so
 * the poster sees the flag and wakes it. (The re-check only saves a syscall.)
 *
 * An async waiter with a doorbell (see doorbell.ts: the host's side of the queues it reads)
 * announces itself as BELL instead, and the poster rings the doorbell instead of the futex: the
 * waiter's event loop wakes with no watcher thread in between. The same protocol holds (flag
 * stored, count re-checked; count added, flag read); the doorbell callback clears the eventfd
 * before it looks at the count, so a post racing with it rings again, and it announces again
 * while still parked (a ring may have been spent on a unit taken by other means).
 *
 * With coalesceWakes (the rings' `filled` semaphores while both sides share one CPU), a post
 * that finds the waiter asleep leaves the wake for the end of this event-loop turn: the units
 * are visible at once, and the whole burst posted in the turn costs one wake-up. On one CPU, a
 * wake per message made the peer preempt us for every request (one context switch each way per
 * message); across CPUs the peer is woken at once, to work in parallel. A thread about to
 * sleep synchronously pays what it owes first.
 *
 * Waiting spins briefly first, when that can pay (see spin-gate.ts): a futex sleep/wake costs
 * tens of microseconds, and a peer running on another CPU often answers faster than that.
 *
 * Threading: any number of posters, in any process mapping the buffer; ONE waiting side (one
 * process, one wait at a time: a `wait` or one pending `whenAvailable`), which is how a
 * single-producer single-consumer queue uses its two semaphores. `waitAsync` never blocks the
 * event loop; `wait` does, and is for places where nothing else is pending.
 */
import { native, FUTEX_TIMED_OUT, WATCH_CHANGED, type NativeWatcher } from './native.js';
import { SpinGate } from './spin-gate.js';
import type { DoorbellListener, DoorbellRinger } from './doorbell.js';

const INT32_MAX = 0x7fffffff;
const AWAKE = 0;
/** Sleeper states: asleep on the futex (a synchronous wait or the watcher thread), or parked on the doorbell. */
const SLEEPING = 1;
const BELL = 2;
/** The shortest adaptive spin worth starting, in microseconds. */
const MIN_SPIN_US = 4;

export interface SemaphoreOptions {
  /** The longest `wait`/`waitAsync` poll the count before sleeping, in microseconds. */
  spinMicros?: number;
  /** Whether a spin can pay now (default: this process may run on more than one CPU). */
  gate?: SpinGate;
  /** This side's async waits park on this doorbell (no watcher thread). */
  listen?: DoorbellListener;
  /** Posts that find the waiter parked on its doorbell ring this copy of it. */
  ring?: DoorbellRinger;
  /**
   * Asked by a post that finds the waiter asleep: true, wake it at the end of this event-loop
   * turn (setImmediate) instead of at once, so a burst of posts in one turn costs one wake-up.
   */
  coalesceWakes?: () => boolean;
}

/** Semaphores of this thread with a wake put off to the end of the turn (see coalesceWakes). */
const deferredWakes: Semaphore[] = [];
let flushScheduled = false;

/**
 * Makes the wake-ups put off by coalescing posts now. Runs at the end of each turn that posted;
 * also before any synchronous sleep of this thread, so a thread never sleeps on a wake it owes.
 */
export function flushDeferredWakes(): void {
  flushScheduled = false;
  if (deferredWakes.length === 0) return;
  const due = deferredWakes.splice(0);
  for (const s of due) s.wakeDeferred();
}

/** Counters for tests and benchmarks (this object's side only). */
export interface SemaphoreStats {
  /** futex wake syscalls made by post. */
  wakes: number;
  /** futex sleeps (synchronous waits and watcher arms). */
  sleeps: number;
  /** Synchronous sleeps that timed out with a unit available: a post that did not wake us. */
  missedWakes: number;
  /** Spins started, and those that found a unit. */
  spins: number;
  spinHits: number;
  /** Spins cut short because the peer made no progress. */
  stalledSpins: number;
}

let defaultGate: SpinGate | undefined;

export class Semaphore {
  readonly stats: SemaphoreStats = { wakes: 0, sleeps: 0, missedWakes: 0, spins: 0, spinHits: 0, stalledSpins: 0 };
  private readonly words: Int32Array;
  private readonly countIndex: number;
  private readonly sleeperIndex: number;
  private readonly countByteOffset: number;
  private readonly spinMicros: number;
  private readonly gate: SpinGate;
  private watcher?: NativeWatcher;
  private readonly listener?: DoorbellListener;
  private readonly ringer?: DoorbellRinger;
  private unlisten?: () => void;
  private asyncWaiter?: { resolve: (ok: boolean) => void; timer?: NodeJS.Timeout };
  private refed = false;
  private closed = false;
  /** Current spin length of the adaptive spin (see spinUntilAvailable), in microseconds. */
  private adaptiveSpin: number;
  private spinProbe = 0;
  private readonly coalesce?: () => boolean;
  private wakeOwed = false;

  /** `countByteOffset` and `sleeperByteOffset` are byte offsets of two Int32 words of `buffer`. */
  constructor(private readonly buffer: SharedArrayBuffer, countByteOffset: number, sleeperByteOffset: number, options: SemaphoreOptions = {}) {
    this.words = new Int32Array(buffer);
    this.countIndex = countByteOffset >> 2;
    this.sleeperIndex = sleeperByteOffset >> 2;
    this.countByteOffset = countByteOffset;
    this.spinMicros = options.spinMicros ?? 20;
    this.adaptiveSpin = this.spinMicros;
    this.gate = options.gate ?? (defaultGate ??= new SpinGate());
    this.listener = options.listen;
    this.ringer = options.ring;
    this.coalesce = options.coalesceWakes;
    this.unlisten = this.listener?.listen(() => this.onBell());
  }

  /** Sets the initial count; only the creator calls it, before the peer attaches. */
  init(count: number): void {
    Atomics.store(this.words, this.countIndex, count);
    Atomics.store(this.words, this.sleeperIndex, AWAKE);
  }

  get value(): number {
    return Atomics.load(this.words, this.countIndex);
  }

  /** Whether the waiting side has announced that it sleeps and no post has woken it since. */
  get sleeperAnnounced(): boolean {
    return Atomics.load(this.words, this.sleeperIndex) !== AWAKE;
  }

  post(n = 1): void {
    Atomics.add(this.words, this.countIndex, n);
    // The plain load keeps the common case (peer awake) to two atomics; the exchange makes
    // exactly one of several concurrent posters pay for the wake.
    if (Atomics.load(this.words, this.sleeperIndex) === AWAKE) return;
    if (this.coalesce?.()) {
      // The count is visible at once (a spinning peer takes it); only the syscall waits for
      // the end of the turn, when the burst this post belongs to has been posted.
      if (this.wakeOwed) return;
      this.wakeOwed = true;
      deferredWakes.push(this);
      if (!flushScheduled) {
        flushScheduled = true;
        setImmediate(flushDeferredWakes);
      }
      return;
    }
    this.wakeNow();
  }

  /** The wake a coalescing post put off (flushDeferredWakes). */
  wakeDeferred(): void {
    if (!this.wakeOwed) return;
    this.wakeOwed = false;
    if (Atomics.load(this.words, this.sleeperIndex) === AWAKE) return;
    this.wakeNow();
  }

  private wakeNow(): void {
    const sleeper = Atomics.exchange(this.words, this.sleeperIndex, AWAKE);
    if (sleeper === AWAKE) return;
    this.stats.wakes++;
    if (sleeper === BELL && this.ringer) this.ringer.ring();
    else native.futexWake(this.buffer, this.countByteOffset, INT32_MAX);
  }

  tryWait(): boolean {
    for (;;) {
      const c = Atomics.load(this.words, this.countIndex);
      if (c <= 0) return false;
      if (Atomics.compareExchange(this.words, this.countIndex, c, c - 1) === c) return true;
    }
  }

  /**
   * Takes every unit there is now, in one exchange instead of a compare-exchange per unit;
   * returns how many. Only the waiting side calls it (posters only ever add, so nothing but us
   * lowers the count between our load and the exchange; a post that lands in between is taken too).
   */
  takeAll(): number {
    if (Atomics.load(this.words, this.countIndex) <= 0) return 0;
    return Atomics.exchange(this.words, this.countIndex, 0);
  }

  /**
   * Polls for up to `micros` for the count to become positive, without taking it. It does not
   * spin when the gate says the peer cannot run meanwhile, and it stops once the peer's
   * progress word stood still for the gate's stall time. Without an argument the length adapts:
   * a spin that found nothing in its whole budget halves it (to zero, then a full-length probe
   * every 32nd call); one that found the unit after t µs raises it to at least 2t; one cut
   * short because the peer stopped running changes nothing. A peer we just woke has not run
   * yet, so it gets the whole budget to show progress.
   * (On 2 cores under load, a fixed 30 µs spin took pipelined echo from 1.3 M to 0.17 M
   * messages/s; with both processes on one CPU, spinning tripled the round trip.)
   */
  spinUntilAvailable(micros?: number): boolean {
    if (Atomics.load(this.words, this.countIndex) > 0) return true;
    const gate = this.gate;
    if (!gate.canSpin()) return false;
    const adaptive = micros === undefined;
    const tracks = gate.tracksProgress;
    const waking = tracks && gate.peerWaking();
    let budget = micros ?? this.adaptiveSpin;
    if (adaptive && budget === 0 && (++this.spinProbe & 31) === 0) budget = this.spinMicros;
    if (budget <= 0) return false;
    this.stats.spins++;
    const start = performance.now();
    const deadline = start + budget / 1000;
    let progress = gate.peerProgress();
    let lastMove = start;
    // A peer we just woke gets the whole budget to show progress; one that was running, the stall time.
    let stallMs = waking ? budget / 1000 : gate.stallMs;
    for (let i = 0; ; i++) {
      if (Atomics.load(this.words, this.countIndex) > 0) {
        this.stats.spinHits++;
        if (adaptive) {
          const tookUs = (performance.now() - start) * 1000;
          this.adaptiveSpin = Math.min(this.spinMicros, Math.max(this.adaptiveSpin, MIN_SPIN_US, 2 * tookUs));
        }
        return true;
      }
      if ((i & 63) !== 63) continue;
      const now = performance.now();
      let stalled = false;
      if (tracks) {
        const p = gate.peerProgress();
        if (p !== progress) {
          progress = p;
          lastMove = now;
          stallMs = gate.stallMs;
        } else stalled = now - lastMove >= stallMs;
      }
      if (stalled && now < deadline) {
        // The peer ran and then stopped (descheduled, or busy with something long): not a
        // reason to spin less next time it runs.
        this.stats.stalledSpins++;
        return false;
      }
      if (now >= deadline) {
        if (stalled) this.stats.stalledSpins++;
        if (adaptive) this.adaptiveSpin = this.adaptiveSpin < 2 * MIN_SPIN_US ? 0 : this.adaptiveSpin / 2;
        return false;
      }
    }
  }

  /**
   * Announces that this side is about to sleep, then re-checks the count. True: a unit is there
   * after all (the announcement is withdrawn); false: sleep now, on the count word expecting 0.
   */
  private announceSleep(how: typeof SLEEPING | typeof BELL = SLEEPING): boolean {
    Atomics.store(this.words, this.sleeperIndex, how);
    if (Atomics.load(this.words, this.countIndex) > 0) {
      this.withdrawSleep();
      return true;
    }
    return false;
  }

  /** We are not going to sleep (any more): a post need not wake us. Only the waiting side calls it. */
  private withdrawSleep(): void {
    Atomics.store(this.words, this.sleeperIndex, AWAKE);
  }

  /** One futex sleep on the count word while it is 0. */
  private sleep(timeoutMs: number): void {
    flushDeferredWakes();
    this.stats.sleeps++;
    const rc = native.futexWait(this.buffer, this.countByteOffset, 0, timeoutMs);
    if (rc === FUTEX_TIMED_OUT && Atomics.load(this.words, this.countIndex) > 0) this.stats.missedWakes++;
  }

  private checkNoAsyncWait(what: string): void {
    if (this.asyncWaiter) throw new Error(`Semaphore.${what}: an async wait is pending on this side`);
  }

  /** Blocks the calling thread until the count is positive (not taken) or `timeoutMs` passes. */
  waitUntilAvailable(timeoutMs: number): boolean {
    if (Atomics.load(this.words, this.countIndex) > 0) return true;
    this.checkNoAsyncWait('waitUntilAvailable');
    if (this.announceSleep()) return true;
    this.sleep(timeoutMs);
    if (Atomics.load(this.words, this.countIndex) > 0) return true;
    this.withdrawSleep(); // timed out (or a spurious wake-up): nobody needs to wake us now
    return false;
  }

  /** Blocks the calling thread until a unit is taken or `timeoutMs` passes (-1: forever). */
  wait(timeoutMs = -1): boolean {
    if (this.tryWait()) return true;
    this.checkNoAsyncWait('wait');
    if (this.spinUntilAvailable() && this.tryWait()) return true;
    const deadline = timeoutMs < 0 ? Infinity : performance.now() + timeoutMs;
    for (;;) {
      if (!this.announceSleep()) this.sleep(deadline === Infinity ? -1 : Math.max(0, deadline - performance.now()));
      if (this.tryWait()) return true;
      if (performance.now() >= deadline) {
        this.withdrawSleep();
        return false;
      }
    }
  }

  /**
   * Resolves true once a unit is available (not taken: call `tryWait`), false on timeout or
   * close. One pending call at a time per Semaphore object (each side has its own object).
   */
  whenAvailable(timeoutMs = -1): Promise<boolean> {
    if (Atomics.load(this.words, this.countIndex) > 0) return Promise.resolve(true);
    if (this.closed) return Promise.resolve(false);
    if (this.asyncWaiter) throw new Error('Semaphore.whenAvailable: a wait is already pending on this side');
    if (this.listener) {
      if (this.announceSleep(BELL)) return Promise.resolve(true);
      return new Promise<boolean>((resolve) => {
        const waiter: { resolve: (ok: boolean) => void; timer?: NodeJS.Timeout } = { resolve };
        this.asyncWaiter = waiter;
        this.stats.sleeps++;
        if (timeoutMs >= 0) {
          waiter.timer = setTimeout(() => this.finishBellWait(), timeoutMs);
          if (!this.refed) waiter.timer.unref();
        }
      });
    }
    if (this.announceSleep()) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      this.asyncWaiter = { resolve };
      this.stats.sleeps++;
      this.watcher ??= new native.Watcher(this.buffer, this.countByteOffset, (result) => this.onWatch(result));
      this.watcher.arm(0, timeoutMs);
    });
  }

  /**
   * For a side parked in whenAvailable that took units meanwhile by other means (MessageQueue's
   * expectSoon): a post that came in between may have withdrawn our sleep announcement as it
   * woke the watcher, which found the count back at 0 and sleeps on. Announced again, the next
   * post wakes it; a unit that is already there gets the watcher woken by us.
   * (Without this, a reply could wait for the watcher's 250 ms re-check.)
   */
  renewSleep(): void {
    if (!this.asyncWaiter) return;
    if (this.listener) {
      this.onBell();
      return;
    }
    Atomics.store(this.words, this.sleeperIndex, SLEEPING);
    if (Atomics.load(this.words, this.countIndex) <= 0) return;
    this.withdrawSleep();
    native.futexWake(this.buffer, this.countByteOffset, INT32_MAX);
  }

  /** Takes one unit without blocking the event loop. */
  async waitAsync(timeoutMs = -1): Promise<boolean> {
    const deadline = timeoutMs < 0 ? Infinity : performance.now() + timeoutMs;
    for (;;) {
      if (this.tryWait()) return true;
      const left = deadline === Infinity ? -1 : deadline - performance.now();
      if (deadline !== Infinity && left <= 0) return false;
      if (!(await this.whenAvailable(left))) return this.tryWait();
    }
  }

  /** Whether a pending async wait keeps the process alive. */
  setRef(ref: boolean): void {
    this.refed = ref;
    if (this.listener) {
      this.listener.setRef(ref);
      return;
    }
    this.watcher ??= new native.Watcher(this.buffer, this.countByteOffset, (result) => this.onWatch(result));
    if (ref) this.watcher.ref();
    else this.watcher.unref();
  }

  /**
   * The doorbell rang (the eventfd is already cleared): for us, or for another semaphore on the
   * same doorbell, or late (for a unit taken meanwhile). Parked with nothing there: announce
   * again and re-check, so the next post rings again.
   */
  private onBell(): void {
    if (!this.asyncWaiter) return;
    if (Atomics.load(this.words, this.countIndex) > 0 || this.announceSleep(BELL)) this.finishBellWait();
  }

  /** Ends a doorbell wait: true if a unit is there (a ring, or the timeout with a unit after all). */
  private finishBellWait(): void {
    const waiter = this.asyncWaiter;
    if (!waiter) return;
    this.asyncWaiter = undefined;
    if (waiter.timer) clearTimeout(waiter.timer);
    this.withdrawSleep();
    waiter.resolve(Atomics.load(this.words, this.countIndex) > 0);
  }

  private onWatch(result: number): void {
    const waiter = this.asyncWaiter;
    this.asyncWaiter = undefined;
    const available = Atomics.load(this.words, this.countIndex) > 0;
    if (!available) this.withdrawSleep(); // timed out or closed: the next wait announces again
    waiter?.resolve(result === WATCH_CHANGED || available);
  }

  /** Stops the watcher thread (or leaves the doorbell); a pending `whenAvailable` resolves false. Safe to call twice. */
  close(): void {
    if (this.closed) return;
    this.wakeDeferred();
    this.closed = true;
    const watcher = this.watcher;
    this.watcher = undefined;
    watcher?.close();
    this.unlisten?.();
    this.unlisten = undefined;
    // close() joins the thread, whose final callback is queued for the event loop; resolve now
    // so nobody waits on a callback that may never run once the buffer is gone.
    const waiter = this.asyncWaiter;
    if (waiter) {
      this.asyncWaiter = undefined;
      if (waiter.timer) clearTimeout(waiter.timer);
      this.withdrawSleep();
      waiter.resolve(false);
    }
  }
}
