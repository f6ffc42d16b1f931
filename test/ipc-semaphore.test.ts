import { afterEach, describe, expect, it } from 'vitest';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { Semaphore, flushDeferredWakes } from '../src/ipc/semaphore.js';
import { SpinGate } from '../src/ipc/spin-gate.js';

let sems: Semaphore[] = [];
function semaphore(initial = 0): Semaphore {
  const s = new Semaphore(new SharedArrayBuffer(128), 0, 64);
  s.init(initial);
  sems.push(s);
  return s;
}

afterEach(() => {
  for (const s of sems) s.close();
  sems = [];
});

describe('Semaphore', () => {
  it('counts posts and takes one unit per tryWait', () => {
    const s = semaphore(2);
    expect(s.value).toBe(2);
    expect(s.tryWait()).toBe(true);
    expect(s.tryWait()).toBe(true);
    expect(s.tryWait()).toBe(false);
    s.post(3);
    expect(s.value).toBe(3);
    expect(s.wait(0)).toBe(true);
    expect(s.value).toBe(2);
  });

  it('wait times out when nothing is posted, and takes at once when something is', () => {
    const s = semaphore();
    const t0 = performance.now();
    expect(s.wait(30)).toBe(false);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(29);
    s.post();
    expect(s.wait(1000)).toBe(true);
    expect(s.value).toBe(0);
  });

  it('waitAsync resolves when a post arrives later, without blocking the event loop', async () => {
    const s = semaphore();
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    setTimeout(() => s.post(), 40);
    const t0 = performance.now();
    expect(await s.waitAsync(5000)).toBe(true);
    clearInterval(timer);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(35);
    // The post came from a timer, so the loop ran while waiting; the interval ran too (at least
    // once: on a loaded machine a 1 ms interval may fire only a few times in 40 ms).
    expect(ticks).toBeGreaterThan(0);
    expect(s.value).toBe(0);
  });

  it('waitAsync times out with false', async () => {
    const s = semaphore();
    const t0 = performance.now();
    expect(await s.waitAsync(50)).toBe(false);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(45);
  });

  it('hands every unit to exactly one taker', async () => {
    const s = semaphore();
    let taken = 0;
    const takers = (async () => {
      while (taken < 500) if (await s.waitAsync(5000)) taken++;
    })();
    for (let i = 0; i < 500; i++) {
      s.post();
      if (i % 50 === 0) await new Promise((r) => setTimeout(r, 1));
    }
    await takers;
    expect(taken).toBe(500);
    expect(s.value).toBe(0);
  });

  it('close resolves a pending async wait with false and is safe twice', async () => {
    const s = semaphore();
    const pending = s.waitAsync();
    setTimeout(() => s.close(), 10);
    expect(await pending).toBe(false);
    s.close();
    expect(await s.whenAvailable()).toBe(false);
  });

  it('refuses a second concurrent async wait on the same object', async () => {
    const s = semaphore();
    const first = s.whenAvailable(1000);
    expect(() => s.whenAvailable(1000)).toThrow(/already pending/);
    s.post();
    expect(await first).toBe(true);
  });
});

describe('Semaphore wake-ups (a poster and a waiter object over one buffer, as two processes have)', () => {
  function pair(): { poster: Semaphore; waiter: Semaphore } {
    const buffer = new SharedArrayBuffer(128);
    const poster = new Semaphore(buffer, 0, 64);
    poster.init(0);
    const waiter = new Semaphore(buffer, 0, 64);
    sems.push(poster, waiter);
    return { poster, waiter };
  }

  it('posts to a side that does not wait make no wake syscall', () => {
    const { poster, waiter } = pair();
    for (let i = 0; i < 100; i++) poster.post();
    expect(poster.stats.wakes).toBe(0);
    for (let i = 0; i < 100; i++) expect(waiter.tryWait()).toBe(true);
  });

  it('a burst of posts to a sleeping waiter makes one wake syscall, and the next sleep gets its own', async () => {
    const { poster, waiter } = pair();
    const first = waiter.whenAvailable(10_000);
    expect(waiter.sleeperAnnounced).toBe(true);
    for (let i = 0; i < 100; i++) poster.post();
    expect(poster.stats.wakes).toBe(1);
    expect(waiter.sleeperAnnounced).toBe(false);
    expect(await first).toBe(true);
    while (waiter.tryWait());
    const second = waiter.whenAvailable(10_000);
    poster.post(3);
    poster.post();
    expect(await second).toBe(true);
    expect(poster.stats.wakes).toBe(2);
  });

  it('renewSleep: a parked side that took a posted unit itself is woken by the next post', async () => {
    // As MessageQueue.expectSoon: the receive loop is parked on the watcher, and a kick takes
    // the unit the peer just posted. That post withdrew the announcement as it woke the
    // watcher, which may have found the count back at 0 and slept on: without a renewed
    // announcement the next post would make no wake and wait for the watcher's re-check.
    const { poster, waiter } = pair();
    const parked = waiter.whenAvailable(10_000);
    poster.post();
    expect(poster.stats.wakes).toBe(1);
    expect(waiter.tryWait()).toBe(true);
    expect(waiter.sleeperAnnounced).toBe(false);
    waiter.renewSleep();
    expect(waiter.sleeperAnnounced).toBe(true);
    poster.post();
    expect(poster.stats.wakes).toBe(2);
    expect(await parked).toBe(true);
    expect(waiter.tryWait()).toBe(true);
  });

  it('renewSleep with a unit already there wakes its own watcher', async () => {
    const { poster, waiter } = pair();
    const parked = waiter.whenAvailable(10_000);
    poster.post();
    expect(waiter.tryWait()).toBe(true);
    // Posted while the announcement was withdrawn: no wake.
    poster.post();
    expect(poster.stats.wakes).toBe(1);
    waiter.renewSleep();
    expect(waiter.sleeperAnnounced).toBe(false);
    expect(await parked).toBe(true);
    expect(waiter.tryWait()).toBe(true);
  });

  it('a wait that times out withdraws its announcement: a later post wakes nobody', async () => {
    const { poster, waiter } = pair();
    expect(waiter.wait(20)).toBe(false);
    expect(waiter.sleeperAnnounced).toBe(false);
    expect(await waiter.whenAvailable(20)).toBe(false);
    expect(waiter.sleeperAnnounced).toBe(false);
    poster.post();
    expect(poster.stats.wakes).toBe(0);
    expect(waiter.wait(0)).toBe(true);
  });

  it('refuses a synchronous wait while an async one is pending on the same object', async () => {
    const { poster, waiter } = pair();
    const pending = waiter.whenAvailable(10_000);
    expect(() => waiter.wait(0)).toThrow(/async wait is pending/);
    poster.post();
    expect(await pending).toBe(true);
  });
});

describe('Semaphore coalescing wakes (coalesceWakes: one wake per event-loop turn)', () => {
  function pair(): { poster: Semaphore; waiter: Semaphore; buffer: SharedArrayBuffer } {
    const buffer = new SharedArrayBuffer(128);
    const poster = new Semaphore(buffer, 0, 64, { coalesceWakes: () => true });
    poster.init(0);
    const waiter = new Semaphore(buffer, 0, 64);
    sems.push(poster, waiter);
    return { poster, waiter, buffer };
  }

  it('a burst of posts in one turn wakes a sleeping waiter once, at the end of the turn', async () => {
    const { poster, waiter } = pair();
    const woken = waiter.whenAvailable(10_000);
    for (let i = 0; i < 100; i++) poster.post();
    // The units are there at once (a spinning peer would take them); the syscall is owed.
    expect(waiter.value).toBe(100);
    expect(poster.stats.wakes).toBe(0);
    expect(waiter.sleeperAnnounced).toBe(true);
    await new Promise((r) => setImmediate(r));
    expect(poster.stats.wakes).toBe(1);
    expect(await woken).toBe(true);
    // The next turn's burst owes its own wake.
    while (waiter.tryWait());
    const again = waiter.whenAvailable(10_000);
    poster.post();
    poster.post();
    expect(await again).toBe(true);
    // The watcher may have seen the count itself before the end of the turn; the owed wake is
    // paid at the end of the turn either way, once.
    await new Promise((r) => setImmediate(r));
    expect(poster.stats.wakes).toBe(2);
  });

  it('a waiter that woke by itself before the end of the turn costs no wake', async () => {
    const { poster, waiter } = pair();
    expect(waiter.wait(1)).toBe(false); // announced and withdrawn: awake now
    poster.post();
    flushDeferredWakes();
    expect(poster.stats.wakes).toBe(0);
    expect(waiter.tryWait()).toBe(true);
  });

  it('pays an owed wake before this thread sleeps synchronously (no sleeping on a wake it owes)', async () => {
    // The worker sleeps on `ping`, answers on `pong`. We post `ping` (coalesced: the wake is
    // owed until the end of our turn) and then block in a synchronous wait for `pong` in the
    // same turn: without paying the wake first, neither side would ever run.
    const buffer = new SharedArrayBuffer(256);
    const ping = new Semaphore(buffer, 0, 64, { coalesceWakes: () => true });
    ping.init(0);
    const pong = new Semaphore(buffer, 128, 192);
    pong.init(0);
    sems.push(ping, pong);
    // The worker sleeps on the futex as a stub does (the addon's futex, not Atomics.wait, whose
    // waiters a futex wake does not reach).
    const addon = path.resolve('build/Release/stubhost_native.node');
    const worker = new Worker(
      `const { workerData: { buffer, addon } } = require('node:worker_threads');
       const native = require(addon);
       const w = new Int32Array(buffer);
       Atomics.store(w, 16, 1);                       // announce: asleep on ping's count
       while (Atomics.load(w, 0) === 0) native.futexWait(buffer, 0, 0, -1);
       Atomics.sub(w, 0, 1);
       Atomics.add(w, 32, 1);                          // pong
       if (Atomics.exchange(w, 48, 0) !== 0) native.futexWake(buffer, 128, 1);`,
      { eval: true, workerData: { buffer, addon } },
    );
    try {
      while (!ping.sleeperAnnounced) await new Promise((r) => setTimeout(r, 1));
      ping.post();
      expect(ping.stats.wakes).toBe(0);
      expect(pong.wait(20_000)).toBe(true);
      expect(ping.stats.wakes).toBe(1);
    } finally {
      await worker.terminate();
    }
  }, 30_000);

  it('close pays an owed wake', async () => {
    const { poster, waiter } = pair();
    const woken = waiter.whenAvailable(10_000);
    poster.post();
    poster.close();
    expect(poster.stats.wakes).toBe(1);
    expect(await woken).toBe(true);
  });
});

describe('Semaphore spins (SpinGate)', () => {
  it('does not spin when the peer cannot run meanwhile (both on one CPU)', () => {
    const s = new Semaphore(new SharedArrayBuffer(128), 0, 64, { gate: new SpinGate({ sharesOneCpu: () => true }) });
    s.init(0);
    sems.push(s);
    const t0 = performance.now();
    expect(s.spinUntilAvailable(2_000_000)).toBe(false);
    expect(s.stats.spins).toBe(0);
    expect(performance.now() - t0).toBeLessThan(1000); // a 2 s budget was not spent
  });

  it('stops spinning once the peer progress word stands still, and keeps spinning while it moves', async () => {
    const buffer = new SharedArrayBuffer(128);
    const progress = { words: new Int32Array(buffer), index: 16 };
    const gate = new SpinGate({ sharesOneCpu: () => false, peerProgress: progress, stallMicros: 20_000 });
    const s = new Semaphore(buffer, 0, 64, { gate });
    s.init(0);
    sems.push(s);
    // Nobody moves the word: the spin ends after the 20 ms stall time, not its 5 s budget.
    const t0 = performance.now();
    expect(s.spinUntilAvailable(5_000_000)).toBe(false);
    expect(s.stats.stalledSpins).toBe(1);
    expect(performance.now() - t0).toBeLessThan(2500);
    // A worker moves the word for 3 s, then posts: a spin whose stall time is 0.5 s outlasts six
    // of them (the stall time is long enough that a loaded machine descheduling the worker for a
    // moment is not taken for a stalled peer).
    const patient = new Semaphore(buffer, 0, 64, { gate: new SpinGate({ sharesOneCpu: () => false, peerProgress: progress, stallMicros: 500_000 }) });
    const worker = new Worker(
      `const { workerData: { buffer } } = require('node:worker_threads');
       const w = new Int32Array(buffer);
       const end = performance.now() + 3000;
       while (performance.now() < end) Atomics.add(w, 16, 1);
       Atomics.add(w, 0, 1);`,
      { eval: true, workerData: { buffer } },
    );
    try {
      while (Atomics.load(progress.words, 16) === 0) await new Promise((r) => setTimeout(r, 1)); // the worker runs
      expect(patient.spinUntilAvailable(30_000_000)).toBe(true);
      expect(patient.stats.stalledSpins).toBe(0);
    } finally {
      await worker.terminate();
    }
  }, 30_000);
});
