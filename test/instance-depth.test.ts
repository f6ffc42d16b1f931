import { describe, expect, it } from 'vitest';
import { InstanceDepth, MAX_ADAPTIVE_PREFETCH, PREFETCH_AHEAD_MS } from '../src/instance/instance-depth.js';

/** Batches of `execMs` each, back to back in the stub, ending every execMs (times in ms). */
function backToBack(depth: InstanceDepth, execMs: number, batches: number, from = 0): number {
  let now = from;
  for (let i = 0; i < batches; i++) {
    const sentAt = now - execMs; // sent ahead, long before it ended
    now += execMs;
    depth.finished(sentAt, now);
  }
  return now;
}

describe('InstanceDepth (instance_prefetch unset: adaptive)', () => {
  it('starts with one batch sent ahead', () => {
    expect(new InstanceDepth(1, 'adaptive').depth).toBe(2);
  });

  it('a model of microseconds gets up to MAX_ADAPTIVE_PREFETCH ahead; one of milliseconds keeps one', () => {
    const fast = new InstanceDepth(1, 'adaptive');
    backToBack(fast, 0.005, 200);
    expect(fast.depth).toBe(1 + MAX_ADAPTIVE_PREFETCH);
    const slow = new InstanceDepth(1, 'adaptive');
    backToBack(slow, 5, 200);
    expect(slow.depth).toBe(2);
  });

  it('keeps about PREFETCH_AHEAD_MS of work ahead in between', () => {
    const mid = new InstanceDepth(1, 'adaptive');
    backToBack(mid, PREFETCH_AHEAD_MS / 4, 200);
    expect(mid.depth).toBe(1 + 4);
  });

  it('replies arriving together (one wake-up carrying many) count as the average interval', () => {
    const d = new InstanceDepth(1, 'adaptive');
    let now = 0;
    for (let burst = 0; burst < 100; burst++) {
      now += 0.2; // a wake-up every 0.2 ms carrying 10 replies: 0.02 ms per batch
      for (let i = 0; i < 10; i++) d.finished(now - 1, now);
    }
    expect(d.depth).toBe(1 + MAX_ADAPTIVE_PREFETCH);
  });

  it('comes back down when the model slows down', () => {
    const d = new InstanceDepth(1, 'adaptive');
    const t = backToBack(d, 0.005, 200);
    expect(d.depth).toBe(1 + MAX_ADAPTIVE_PREFETCH);
    backToBack(d, 10, 100, t);
    expect(d.depth).toBe(2);
  });

  it('time the instance sat idle does not count: a batch sent to an idle stub counts its round trip', () => {
    const d = new InstanceDepth(1, 'adaptive');
    let now = 0;
    for (let i = 0; i < 200; i++) {
      now += 1000; // idle for a second between requests
      d.finished(now, now + 0.01); // 10 µs round trip
    }
    expect(d.depth).toBe(1 + MAX_ADAPTIVE_PREFETCH);
  });

  it('adds max_inflight_per_instance (running) to those sent ahead', () => {
    const d = new InstanceDepth(3, 'adaptive');
    backToBack(d, 5, 200);
    expect(d.depth).toBe(4);
  });
});

describe('InstanceDepth (instance_prefetch set)', () => {
  it('stays at the parameter, 0 included', () => {
    const none = new InstanceDepth(1, 0);
    backToBack(none, 0.005, 200);
    expect(none.depth).toBe(1);
    const two = new InstanceDepth(2, 2);
    backToBack(two, 0.005, 200);
    expect(two.depth).toBe(4);
  });
});
