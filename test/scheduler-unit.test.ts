/** The Scheduler, PriorityQueue and RateLimiter on their own, with fake instances (no processes). */
import { describe, expect, it } from 'vitest';
import { Scheduler, type SchedulerOptions } from '../src/scheduler/scheduler.js';
import type { QueuePolicy } from '../src/scheduler/priority-queue.js';
import { RateLimiter } from '../src/scheduler/rate-limiter.js';
import { SequenceBatcher } from '../src/scheduler/sequence-batcher.js';
import type { ExecOutcome, ExecutionTarget, Job, JobTiming } from '../src/execution/contract.js';
import type { InferRequest } from '../src/core/types.js';
import { StubhostError } from '../src/errors.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A fake instance: records each batch (request ids), holds it until released or for `ms`. */
class FakeTarget implements ExecutionTarget {
  batches: string[][] = [];
  running = 0;
  maxRunning = 0;
  private gates: (() => void)[] = [];
  constructor(readonly name: string, private readonly ms: number | 'manual' = 0, readonly depth = 1) {}
  canAccept(): boolean {
    return true;
  }
  async run(jobs: Job[]): Promise<void> {
    this.batches.push(jobs.map((j) => j.request.id));
    this.running++;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    if (this.ms === 'manual') await new Promise<void>((r) => this.gates.push(r));
    else await sleep(this.ms);
    this.running--;
    for (const j of jobs) j.finish({ outputs: [] }, { queueMs: 0, computeMs: 0, batchSize: jobs.length });
  }
  /** Lets the oldest held batch finish. */
  releaseOne(): void {
    this.gates.shift()?.();
  }
}

const noPolicy: QueuePolicy = { timeoutAction: 'REJECT', defaultTimeoutUs: 0, allowTimeoutOverride: false, maxQueueSize: 0 };

function scheduler(opts: Partial<SchedulerOptions> = {}): Scheduler {
  return new Scheduler({ modelLabel: "model 'm'", maxBatchSize: 0, priorityLevels: 1, defaultPriorityLevel: 1, policyOf: () => noPolicy, ...opts });
}

interface Done {
  id: string;
  outcome: ExecOutcome;
  timing: JobTiming;
  at: number;
}

/** Submits a request; resolves with its outcome. */
function submit(
  s: Scheduler,
  id: string,
  o: { level?: number; batchSize?: number; shapeKey?: string; timeoutUs?: number; signal?: AbortSignal; log?: Done[] } = {},
): Promise<Done> {
  const request: InferRequest = { id, modelName: 'm', inputs: [], parameters: {}, priority: 0, timeoutUs: 0, signal: o.signal };
  return new Promise((resolve) => {
    s.submit({
      request,
      batchSize: o.batchSize ?? 1,
      shapeKey: o.shapeKey ?? '',
      level: o.level ?? 1,
      timeoutUs: o.timeoutUs ?? 0,
      finish: (outcome, timing) => {
        const d = { id, outcome, timing, at: performance.now() };
        o.log?.push(d);
        resolve(d);
      },
    });
  });
}

describe('default scheduler', () => {
  it('gives each request to an idle instance; none idles while work waits', async () => {
    const s = scheduler();
    const a = new FakeTarget('a', 'manual');
    const b = new FakeTarget('b', 'manual');
    s.addTarget(a);
    s.addTarget(b);
    const all = ['1', '2', '3', '4'].map((id) => submit(s, id));
    // Both instances took one request at once; two wait.
    expect([a.batches, b.batches, s.pending]).toEqual([[['1']], [['2']], 2]);
    // The instance that frees up takes the next request right away.
    b.releaseOne();
    await sleep(1);
    expect([a.batches, b.batches, s.pending]).toEqual([[['1']], [['2'], ['3']], 1]);
    a.releaseOne();
    await sleep(1);
    expect([a.batches, b.batches, s.pending]).toEqual([[['1'], ['4']], [['2'], ['3']], 0]);
    a.releaseOne();
    b.releaseOne();
    await Promise.all(all);
  });

  it('honours the per-instance in-flight depth', async () => {
    const s = scheduler();
    const a = new FakeTarget('a', 20, 3);
    s.addTarget(a);
    await Promise.all(Array.from({ length: 7 }, (_, i) => submit(s, String(i))));
    expect(a.maxRunning).toBe(3);
    expect(s.pending).toBe(0);
  });

  it('spreads work over instances with room instead of filling the first one\'s depth', async () => {
    const s = scheduler();
    const a = new FakeTarget('a', 'manual', 4);
    const b = new FakeTarget('b', 'manual', 4);
    s.addTarget(a);
    s.addTarget(b);
    const all = Array.from({ length: 6 }, (_, i) => submit(s, String(i)));
    // First-fit would have given 'a' four and 'b' two.
    expect([a.batches.length, b.batches.length]).toEqual([3, 3]);
    for (let i = 0; i < 3; i++) {
      a.releaseOne();
      b.releaseOne();
    }
    await Promise.all(all);
  });

  it('an instance added later takes the waiting work', async () => {
    const s = scheduler();
    const p = submit(s, 'x');
    await sleep(10);
    expect(s.pending).toBe(1);
    const a = new FakeTarget('a');
    s.addTarget(a);
    await p;
    expect(a.batches).toEqual([['x']]);
  });
});

describe('dynamic batcher', () => {
  const db = (preferred: number[], delayUs: number, preserveOrdering = false) => ({ preferredBatchSizes: preferred, maxQueueDelayUs: delayUs, preserveOrdering });

  it('dispatches at once when the largest preferred size is reached, well before the delay', async () => {
    const s = scheduler({ maxBatchSize: 8, dynamicBatching: db([4], 1_000_000) });
    const a = new FakeTarget('a');
    s.addTarget(a);
    const t0 = performance.now();
    await Promise.all(['1', '2', '3', '4'].map((id) => submit(s, id)));
    expect(performance.now() - t0).toBeLessThan(500); // the delay is 1 s
    expect(a.batches).toEqual([['1', '2', '3', '4']]);
  });

  it('a lone request waits for max_queue_delay, and no longer', async () => {
    const s = scheduler({ maxBatchSize: 8, dynamicBatching: db([4], 50_000) });
    const a = new FakeTarget('a');
    s.addTarget(a);
    const d = await submit(s, 'alone');
    expect(d.timing.queueMs).toBeGreaterThanOrEqual(49);
    expect(d.timing.queueMs).toBeLessThan(50 + 200); // timer slack: a few ms idle, more on a loaded CI box
    expect(a.batches).toEqual([['alone']]);
  });

  it('counts batch dimensions, never splits a request, caps at the largest preferred size and cuts back to a preferred one', async () => {
    const s = scheduler({ maxBatchSize: 8, dynamicBatching: db([2, 4], 20_000) });
    const a = new FakeTarget('a', 'manual');
    s.addTarget(a);
    const busy = submit(s, 'busy', { batchSize: 4 }); // runs alone (reaches 4) and holds the instance
    // 1 + 1 = 2 (preferred), + 3 = 5 > 4: the batch goes at once, cut back to size 2.
    const rest = [submit(s, 'a1'), submit(s, 'b1'), submit(s, 'c3', { batchSize: 3 }), submit(s, 'd6', { batchSize: 6 })];
    a.releaseOne();
    await busy;
    await sleep(1);
    expect(a.batches).toEqual([['busy'], ['a1', 'b1']]);
    // c3 (3) alone: adding d6 would pass the cap; after the delay it goes as it is. d6 > cap runs alone, unsplit.
    let settled = false;
    void Promise.all(rest).then(() => (settled = true));
    while (!settled) {
      a.releaseOne();
      await sleep(5);
    }
    expect(a.batches.slice(2)).toEqual([['c3'], ['d6']]);
  });

  it('fills up to max_batch_size without preferred sizes, only with requests of equal non-batch shapes', async () => {
    const s = scheduler({ maxBatchSize: 4, dynamicBatching: db([], 30_000) });
    const a = new FakeTarget('a');
    s.addTarget(a);
    await Promise.all([
      submit(s, 'x1', { shapeKey: 'X:3' }), submit(s, 'y1', { shapeKey: 'X:5' }), submit(s, 'x2', { shapeKey: 'X:3' }),
      submit(s, 'y2', { shapeKey: 'X:5' }), submit(s, 'x3', { shapeKey: 'X:3', batchSize: 2 }),
    ]);
    expect(a.batches).toContainEqual(['x1', 'x2', 'x3']);
    expect(a.batches).toContainEqual(['y1', 'y2']);
    expect(a.batches).toHaveLength(2);
  });

  it('preserve_ordering delivers responses in arrival order across instances', async () => {
    const s = scheduler({ maxBatchSize: 1, dynamicBatching: db([], 0, true) });
    const slow = new FakeTarget('slow', 60);
    const fast = new FakeTarget('fast', 5);
    s.addTarget(slow);
    s.addTarget(fast);
    const log: Done[] = [];
    await Promise.all(['1', '2', '3'].map((id) => submit(s, id, { log })));
    expect(slow.batches).toEqual([['1']]);
    expect(log.map((d) => d.id)).toEqual(['1', '2', '3']);
  });
});

describe('priorities and queue policies', () => {
  const policies = (p: Record<number, Partial<QueuePolicy>>) => (level: number): QueuePolicy => ({ ...noPolicy, ...p[level] });

  it('lower level numbers overtake while the instance is busy', async () => {
    const s = scheduler({ priorityLevels: 2, defaultPriorityLevel: 2 });
    const a = new FakeTarget('a', 5);
    s.addTarget(a);
    const all = [submit(s, 'first', { level: 2 })];
    for (let i = 0; i < 8; i++) all.push(submit(s, `r${i}`, { level: (i % 2) + 1 }));
    await Promise.all(all);
    expect(a.batches.flat()).toEqual(['first', 'r0', 'r2', 'r4', 'r6', 'r1', 'r3', 'r5', 'r7']);
  });

  it('REJECT fails a request past its queue timeout with STUBHOST_TIMEOUT; the timeout parameter overrides when allowed', async () => {
    const s = scheduler({
      priorityLevels: 2, defaultPriorityLevel: 1,
      policyOf: policies({ 1: { defaultTimeoutUs: 30_000 }, 2: { defaultTimeoutUs: 30_000, allowTimeoutOverride: true } }),
    });
    const a = new FakeTarget('a', 'manual');
    s.addTarget(a);
    const busy = submit(s, 'busy');
    const rejected = submit(s, 'late', { level: 1, timeoutUs: 1_000_000 }); // override not allowed on level 1
    const overridden = submit(s, 'patient', { level: 2, timeoutUs: 1_000_000 });
    const d = await rejected;
    expect((d.outcome.error as StubhostError).code).toBe('STUBHOST_TIMEOUT');
    expect(d.outcome.error!.message).toMatch(/timed out in the queue/);
    expect(a.batches).toEqual([['busy']]); // rejected while the instance was still busy
    a.releaseOne();
    await busy;
    await sleep(5);
    a.releaseOne();
    expect((await overridden).outcome.error).toBeUndefined();
  });

  it('DELAY moves a timed-out request behind the fresh requests of its level; it still runs', async () => {
    const s = scheduler({ policyOf: policies({ 1: { defaultTimeoutUs: 20_000, timeoutAction: 'DELAY', allowTimeoutOverride: true } }) });
    const a = new FakeTarget('a', 'manual');
    s.addTarget(a);
    const log: Done[] = [];
    const all = [submit(s, 'busy', { log }), submit(s, 'old', { log })];
    await sleep(40); // 'old' passes its 20 ms timeout: delayed
    all.push(submit(s, 'fresh1', { log, timeoutUs: 10_000_000 }), submit(s, 'fresh2', { log, timeoutUs: 10_000_000 }));
    for (let i = 0; i < 4; i++) {
      a.releaseOne();
      await sleep(5);
    }
    await Promise.all(all);
    expect(a.batches.flat()).toEqual(['busy', 'fresh1', 'fresh2', 'old']);
    expect(log.every((d) => !d.outcome.error)).toBe(true);
  });

  it('max_queue_size: the request beyond it fails with STUBHOST_QUEUE_FULL, the queued ones all run', async () => {
    const s = scheduler({ priorityLevels: 2, defaultPriorityLevel: 2, policyOf: policies({ 2: { maxQueueSize: 2 } }) });
    const a = new FakeTarget('a', 10);
    s.addTarget(a);
    const results = await Promise.all([
      submit(s, 'running', { level: 2 }), submit(s, 'q1', { level: 2 }), submit(s, 'q2', { level: 2 }),
      submit(s, 'over', { level: 2 }), submit(s, 'urgent', { level: 1 }),
    ]);
    const failed = results.filter((r) => r.outcome.error);
    expect(failed.map((r) => r.id)).toEqual(['over']);
    expect((failed[0]!.outcome.error as StubhostError).code).toBe('STUBHOST_QUEUE_FULL');
    expect((failed[0]!.outcome.error as StubhostError).httpStatus).toBe(503);
    expect(failed[0]!.outcome.error!.message).toMatch(/queue full: priority level 2 already holds max_queue_size 2 requests/);
    expect(a.batches.flat().sort()).toEqual(['q1', 'q2', 'running', 'urgent']);
  });

  it('aging: a low-priority request is served after priority_aging_microseconds even under endless urgent traffic', async () => {
    const s = scheduler({ priorityLevels: 2, defaultPriorityLevel: 1, priorityAgingUs: 60_000 });
    const a = new FakeTarget('a', 10);
    s.addTarget(a);
    const log: Done[] = [];
    void submit(s, 'busy', { level: 1 });
    const low = submit(s, 'low', { level: 2, log });
    let stop = false;
    let n = 0;
    // Every urgent request, as it completes, queues another: urgent work never runs out.
    const urgent = (): void => {
      if (stop) return;
      void submit(s, `u${n++}`, { level: 1, log }).then(urgent);
    };
    for (let i = 0; i < 3; i++) urgent();
    const d = await Promise.race([low, sleep(1000).then(() => undefined)]);
    stop = true;
    expect(d, 'the low-priority request starved').toBeDefined();
    expect(d!.timing.queueMs).toBeGreaterThanOrEqual(55);
    expect(d!.timing.queueMs).toBeLessThan(60 + 400); // the aging time plus one execution, plus slack on a loaded box
    expect(n).toBeGreaterThan(3); // urgent requests did overtake it meanwhile
    await s.idle();
  });

  it('without aging, strict priority: the low request waits while urgent traffic lasts', async () => {
    const s = scheduler({ priorityLevels: 2, defaultPriorityLevel: 1 });
    const a = new FakeTarget('a', 2);
    s.addTarget(a);
    let lowDone = false;
    const busy = submit(s, 'busy', { level: 1 });
    const low = submit(s, 'low', { level: 2 }).then(() => (lowDone = true));
    let stop = false;
    let n = 0;
    const urgent = (): void => {
      if (!stop) void submit(s, `u${n++}`, { level: 1 }).then(urgent);
    };
    for (let i = 0; i < 2; i++) urgent();
    await sleep(150);
    expect(lowDone).toBe(false);
    expect(n).toBeGreaterThan(5);
    stop = true;
    await Promise.all([busy, low]);
    expect(a.batches.flat().at(-1)).toBe('low');
  });
});

describe('cancellation', () => {
  it('a queued request whose client leaves is dropped with STUBHOST_CANCELLED and never runs', async () => {
    const pendingSeen: number[] = [];
    const s = scheduler({ onPending: (n) => pendingSeen.push(n) });
    const a = new FakeTarget('a', 'manual');
    s.addTarget(a);
    const busy = submit(s, 'busy');
    const ac = new AbortController();
    const gone = submit(s, 'gone', { signal: ac.signal });
    const stays = submit(s, 'stays');
    expect(s.pending).toBe(2);
    ac.abort(new StubhostError('STUBHOST_CANCELLED', 'client disconnected'));
    const d = await gone;
    expect((d.outcome.error as StubhostError).code).toBe('STUBHOST_CANCELLED');
    expect(d.outcome.error!.message).toMatch(/cancelled while queued \(client disconnected\)/);
    expect(s.pending).toBe(1);
    a.releaseOne();
    await busy;
    await sleep(5);
    a.releaseOne();
    await stays;
    expect(a.batches.flat()).toEqual(['busy', 'stays']);
    expect(pendingSeen.at(-1)).toBe(0);
  });

  it('an already aborted request is refused at once; a timeout-reason abort leaves the queue policy in charge', async () => {
    const s = scheduler({ policyOf: () => ({ ...noPolicy, timeoutAction: 'DELAY', defaultTimeoutUs: 10_000 }) });
    const a = new FakeTarget('a', 'manual');
    s.addTarget(a);
    const busy = submit(s, 'busy');
    const ac = new AbortController();
    ac.abort();
    expect((await submit(s, 'x', { signal: ac.signal })).outcome.error?.message).toMatch(/cancelled/);
    const t = new AbortController();
    const delayed = submit(s, 'delayed', { signal: t.signal });
    await sleep(20);
    t.abort(new StubhostError('STUBHOST_TIMEOUT', 'request timed out'));
    await sleep(5);
    a.releaseOne();
    await busy;
    await sleep(5);
    a.releaseOne();
    expect((await delayed).outcome.error).toBeUndefined();
  });
});

describe('cost of leaving the queue', () => {
  // Each of these took minutes when a removal or an expiry scanned the whole queue (O(N²)).
  const N = 50_000;
  /**
   * Expects `cost(n)` (the ms n removals take) to grow linearly: N against a tenth of the work in
   * the same run, not a wall-clock bound (a loaded machine slows both alike), each the faster of
   * two runs (another process taking the CPU for a moment slows one run, not both). O(N) gives
   * about 10×; a scan per removal (O(N²), which took minutes here) about 100×.
   */
  const expectLinear = async (cost: (n: number) => Promise<number>): Promise<void> => {
    const tenth = Math.min(await cost(N / 10), await cost(N / 10));
    const full = Math.min(await cost(N), await cost(N));
    expect(full / Math.max(tenth, 1)).toBeLessThan(40);
  };

  it(`${N} queued requests cancelled one by one (newest first) settle in O(N) in all; the queue then serves again`, async () => {
    const reason = new StubhostError('STUBHOST_CANCELLED', 'stream cancelled');
    /** Queues n requests behind a running one, cancels them newest first: the time that takes. */
    const cancelQueued = async (n: number): Promise<number> => {
      const s = scheduler({ priorityLevels: 2, defaultPriorityLevel: 2, priorityAgingUs: 60_000_000, policyOf: () => ({ ...noPolicy, defaultTimeoutUs: 60_000_000 }) });
      const a = new FakeTarget('a', 'manual');
      s.addTarget(a);
      const busy = submit(s, 'busy');
      const controllers: AbortController[] = [];
      const settled: Promise<Done>[] = [];
      for (let i = 0; i < n; i++) {
        const ac = new AbortController();
        controllers.push(ac);
        settled.push(submit(s, `q${i}`, { signal: ac.signal, level: (i % 2) + 1 }));
      }
      expect(s.pending).toBe(n);
      const started = performance.now();
      for (let i = n - 1; i >= 0; i--) controllers[i]!.abort(reason);
      const outcomes = await Promise.all(settled);
      const ms = performance.now() - started;
      expect(outcomes.every((d) => (d.outcome.error as StubhostError | undefined)?.code === 'STUBHOST_CANCELLED')).toBe(true);
      expect(s.pending).toBe(0);
      a.releaseOne();
      await busy;
      const next = submit(s, 'next');
      await sleep(5);
      a.releaseOne();
      expect((await next).outcome.error).toBeUndefined();
      expect(a.batches.flat()).toEqual(['busy', 'next']);
      return ms;
    };
    await expectLinear(cancelQueued);
  }, 60_000);

  it(`${N} queued requests timing out (REJECT) are rejected in O(N log N) in all, and fresh work still runs`, async () => {
    const s = scheduler({ policyOf: () => ({ ...noPolicy, defaultTimeoutUs: 30_000 }) });
    const a = new FakeTarget('a', 'manual');
    s.addTarget(a);
    const busy = submit(s, 'busy');
    const settled: Promise<Done>[] = [];
    const started = performance.now();
    for (let i = 0; i < N; i++) settled.push(submit(s, `q${i}`));
    const outcomes = await Promise.all(settled);
    expect(performance.now() - started).toBeLessThan(10_000);
    expect(outcomes.every((d) => (d.outcome.error as StubhostError | undefined)?.code === 'STUBHOST_TIMEOUT')).toBe(true);
    expect(s.pending).toBe(0);
    a.releaseOne();
    await busy;
    const next = submit(s, 'next');
    await sleep(5);
    a.releaseOne();
    expect((await next).outcome.error).toBeUndefined();
  }, 60_000);

  it(`sequence batcher: ${N} queued requests of one sequence cancelled settle in O(N); the sequence goes on`, async () => {
    const config = { control_input: [], state: [], max_sequence_idle_microseconds: 60_000_000 } as unknown as ConstructorParameters<typeof SequenceBatcher>[0]['config'];
    // One reason for every abort: building an Error (its stack) per abort would cost more than the cancellation measured.
    const reason = new StubhostError('STUBHOST_CANCELLED', 'stream cancelled');
    /** Queues n requests of one sequence behind its running START, cancels them all: the time that takes. */
    const cancelQueued = async (n: number): Promise<number> => {
      const sb = new SequenceBatcher({ modelLabel: "model 'seq'", maxBatchSize: 0, config });
      const a = new FakeTarget('a', 'manual');
      sb.addTarget(a);
      const send = (id: string, o: { start?: boolean; end?: boolean; signal?: AbortSignal } = {}): Promise<ExecOutcome> => new Promise((resolve) => {
        const request: InferRequest = { id, modelName: 'seq', inputs: [], parameters: {}, priority: 0, timeoutUs: 0, signal: o.signal, correlationId: 7n, sequenceStart: o.start, sequenceEnd: o.end };
        sb.submit({ request, batchSize: 1, shapeKey: '', level: 1, timeoutUs: 0, finish: (outcome) => resolve(outcome) });
      });
      const first = send('start', { start: true });
      const controllers: AbortController[] = [];
      const settled: Promise<ExecOutcome>[] = [];
      for (let i = 0; i < n; i++) {
        const ac = new AbortController();
        controllers.push(ac);
        settled.push(send(`q${i}`, { signal: ac.signal }));
      }
      expect(sb.pending).toBe(n);
      const started = performance.now();
      for (const ac of controllers) ac.abort(reason);
      const outcomes = await Promise.all(settled);
      const ms = performance.now() - started;
      expect(outcomes.every((o) => (o.error as StubhostError | undefined)?.code === 'STUBHOST_CANCELLED')).toBe(true);
      expect(sb.pending).toBe(0);
      const last = send('end', { end: true });
      a.releaseOne();
      expect((await first).error).toBeUndefined();
      await sleep(5);
      a.releaseOne();
      expect((await last).error).toBeUndefined();
      expect(a.batches.flat()).toEqual(['start', 'end']);
      sb.close('test over');
      return ms;
    };
    await expectLinear(cancelQueued);
  }, 60_000);

  it('a queue timeout beyond the 2^31-1 ms timer limit does not fire early', async () => {
    const s = scheduler({ policyOf: () => ({ ...noPolicy, allowTimeoutOverride: true }) });
    const a = new FakeTarget('a', 'manual');
    s.addTarget(a);
    const busy = submit(s, 'busy');
    // 30 days in µs: setTimeout would clamp it to 1 ms.
    const patient = submit(s, 'patient', { timeoutUs: 30 * 24 * 3600 * 1e6 });
    await sleep(30);
    expect(s.pending).toBe(1);
    a.releaseOne();
    await busy;
    await sleep(5);
    a.releaseOne();
    expect((await patient).outcome.error).toBeUndefined();
  });
});

describe('with a rate limiter', () => {
  it('work waiting for resources stays queued (priorities still apply) and counts as pending', async () => {
    const limiter = new RateLimiter('execution_count', ['R:1']);
    limiter.register('m', [{ name: 'a', spec: { resources: [{ name: 'R', count: 1, global: true }], priority: 1, device: 0 } }]);
    limiter.register('other', [{ name: 'o', spec: { resources: [{ name: 'R', count: 1, global: true }], priority: 1, device: 0 } }]);
    const hold = await limiter.acquire('other', 'o'); // another model holds R
    const s = scheduler({ priorityLevels: 2, defaultPriorityLevel: 2, acquire: (t) => limiter.acquire('m', t.name) });
    const a = new FakeTarget('a', 1);
    s.addTarget(a);
    const all = [submit(s, 'b1', { level: 2 }), submit(s, 'b2', { level: 2 }), submit(s, 'u1', { level: 1 })];
    await sleep(20);
    expect(a.batches).toEqual([]);
    expect(s.pending).toBe(3); // one bound to the instance and waiting, two queued
    hold();
    await Promise.all(all);
    expect(a.batches.flat()).toEqual(['b1', 'u1', 'b2']);
  });
});

describe('RateLimiter', () => {
  const spec = (count: number, priority = 1, global = true, device = 0) => ({ resources: [{ name: 'R', count, global }], priority, device });

  it('a global resource of count 1 is held by one instance at a time, across models', async () => {
    const l = new RateLimiter('execution_count', ['R:1']);
    l.register('m1', [{ name: 'i', spec: spec(1) }]);
    l.register('m2', [{ name: 'i', spec: spec(1) }]);
    const r1 = await l.acquire('m1', 'i');
    let second = false;
    const p = Promise.resolve(l.acquire('m2', 'i')).then((r) => {
      second = true;
      return r;
    });
    await sleep(10);
    expect(second).toBe(false);
    r1();
    (await p)();
    expect(second).toBe(true);
  });

  it('per-device resources do not contend across devices', async () => {
    const l = new RateLimiter('execution_count', ['R:1']);
    l.register('m', [{ name: 'g0', spec: spec(1, 1, false, 0) }, { name: 'g1', spec: spec(1, 1, false, 1) }]);
    const a = await l.acquire('m', 'g0');
    const b = await Promise.race([Promise.resolve(l.acquire('m', 'g1')), sleep(50).then(() => undefined)]);
    expect(b).toBeDefined();
    a();
    b!();
  });

  it('instance priority weights the share: 2:1 under contention', async () => {
    const l = new RateLimiter('execution_count', ['R:1']);
    l.register('m', [{ name: 'p1', spec: spec(1, 1) }, { name: 'p2', spec: spec(1, 2) }]);
    const grants: string[] = [];
    // Each instance queues its next acquire before it releases, as the Scheduler does.
    const loop = async (name: string) => {
      let release = await l.acquire('m', name);
      for (let i = 0; i < 30; i++) {
        grants.push(name);
        await sleep(0);
        const next = l.acquire('m', name);
        release();
        release = await next;
      }
      release();
    };
    void loop('p1');
    void loop('p2');
    await sleep(200);
    const window = grants.slice(0, 30);
    const p1 = window.filter((g) => g === 'p1').length;
    expect(p1 / (30 - p1)).toBeGreaterThan(1.6);
    expect(p1 / (30 - p1)).toBeLessThan(2.5);
  });

  it('an instance asking for more than exists fails clearly; bad --rate-limit-resource values are refused', () => {
    const l = new RateLimiter('execution_count', ['R:2', 'G:1:0']);
    expect(() => l.register('big', [{ name: 'big_0', spec: spec(3) }])).toThrow(
      /model 'big' instance 'big_0' asks for 3 of rate-limiter resource 'R' \(global\), but only 2 exist/,
    );
    expect(() => l.register('dev', [{ name: 'd', spec: { resources: [{ name: 'G', count: 2, global: false }], priority: 1, device: 0 } }])).toThrow(/on device 0, but only 1 exist/);
    expect(() => new RateLimiter('execution_count', ['R'])).toThrow(/expected <name>:<count>\[:<device>\]/);
  });

  it('off: acquire never waits', () => {
    const l = new RateLimiter('off', []);
    l.register('m', [{ name: 'i', spec: spec(100) }]);
    expect(typeof l.acquire('m', 'i')).toBe('function');
  });
});

describe('idle', () => {
  it('resolves when the last queued request times out or is cancelled, with nothing executing', async () => {
    const s = scheduler({ policyOf: () => ({ ...noPolicy, defaultTimeoutUs: 20_000 }) }); // no instances at all
    const late = submit(s, 'late');
    const idle = s.idle();
    expect((await late).outcome.error?.message).toMatch(/timed out/);
    await idle;
    const ac = new AbortController();
    const gone = submit(s, 'gone', { signal: ac.signal });
    const idle2 = s.idle();
    ac.abort();
    await gone;
    await idle2;
  });
});
