import { afterEach, describe, expect, it } from 'vitest';
import { Semaphore } from '../src/ipc/semaphore.js';

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
    expect(ticks).toBeGreaterThan(5);
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
