/**
 * The sequence batcher on its own, with fake instances (no processes) and fake timers: the rate
 * limiter gates its executions as it does the dynamic batcher's, and a queued request whose
 * client cancels it leaves its sequence's queue and is answered at once.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { RateLimiter } from '../src/scheduler/rate-limiter.js';
import { SequenceBatcher, type SequenceBatcherOptions } from '../src/scheduler/sequence-batcher.js';
import type { ExecOutcome, ExecutionTarget, Job } from '../src/execution/contract.js';
import type { InferRequest } from '../src/core/types.js';
import { StubhostError } from '../src/errors.js';

/** A fake instance: records each batch (request ids) and holds it until released. */
class HeldTarget implements ExecutionTarget {
  batches: string[][] = [];
  running = 0;
  private gates: (() => void)[] = [];
  constructor(readonly name: string, private readonly log?: { running: number; max: number }) {}
  canAccept(): boolean {
    return true;
  }
  async run(jobs: Job[]): Promise<void> {
    this.batches.push(jobs.map((j) => j.request.id));
    this.running++;
    if (this.log) this.log.max = Math.max(this.log.max, ++this.log.running);
    await new Promise<void>((r) => this.gates.push(r));
    this.running--;
    if (this.log) this.log.running--;
    for (const j of jobs) j.finish({ outputs: [] }, { queueMs: 0, computeMs: 0, batchSize: jobs.length });
  }
  /** Lets the oldest held batch finish. */
  releaseOne(): void {
    this.gates.shift()?.();
  }
}

const config = { control_input: [], state: [], max_sequence_idle_microseconds: 60_000_000 } as unknown as SequenceBatcherOptions['config'];

function batcher(opts: Partial<SequenceBatcherOptions> = {}): SequenceBatcher {
  return new SequenceBatcher({ modelLabel: "model 'seq'", maxBatchSize: 0, config, ...opts });
}

/** Submits one request of sequence `corr`; resolves with its outcome. */
function send(sb: SequenceBatcher, id: string, corr: bigint, o: { start?: boolean; end?: boolean; signal?: AbortSignal } = {}): Promise<ExecOutcome> {
  const request: InferRequest = {
    id, modelName: 'seq', inputs: [], parameters: {}, priority: 0, timeoutUs: 0, signal: o.signal, correlationId: corr, sequenceStart: o.start, sequenceEnd: o.end,
  };
  return new Promise((resolve) => sb.submit({ request, batchSize: 1, shapeKey: '', level: 1, timeoutUs: 0, finish: (outcome) => resolve(outcome) }));
}

/** Lets pending promise callbacks run (the fake timers hold every timer). */
const settle = () => vi.advanceTimersByTimeAsync(0);

const needsR = { resources: [{ name: 'R', count: 1, global: true }], priority: 1, device: 0 };

describe('sequence batcher with the rate limiter', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('a sequence request waits for its instance\'s resources, counted as pending, then runs', async () => {
    const limiter = new RateLimiter('execution_count', ['R:1']);
    limiter.register('seq', [{ name: 'a', spec: needsR }]);
    limiter.register('other', [{ name: 'o', spec: needsR }]);
    const hold = await limiter.acquire('other', 'o'); // another model holds R
    const sb = batcher({ acquire: (t) => limiter.acquire('seq', t.name) });
    const a = new HeldTarget('a');
    sb.addTarget(a);
    const first = send(sb, 's1', 1n, { start: true, end: true });
    await settle();
    expect(a.batches).toEqual([]);
    expect(sb.pending).toBe(1);
    hold();
    await settle();
    expect(a.batches).toEqual([['s1']]);
    expect(sb.pending).toBe(0);
    a.releaseOne();
    expect((await first).error).toBeUndefined();
    await sb.idle();
    sb.close('test over');
  });

  it('two sequence models whose instances share one resource never execute at once', async () => {
    const limiter = new RateLimiter('execution_count', ['R:1']);
    limiter.register('m1', [{ name: 'a', spec: needsR }]);
    limiter.register('m2', [{ name: 'b', spec: needsR }]);
    const log = { running: 0, max: 0 };
    const s1 = batcher({ modelLabel: "model 'm1'", acquire: (t) => limiter.acquire('m1', t.name) });
    const s2 = batcher({ modelLabel: "model 'm2'", acquire: (t) => limiter.acquire('m2', t.name) });
    const a = new HeldTarget('a', log);
    const b = new HeldTarget('b', log);
    s1.addTarget(a);
    s2.addTarget(b);
    const done = [
      send(s1, 'a1', 1n, { start: true }), send(s1, 'a2', 1n), send(s1, 'a3', 1n, { end: true }),
      send(s2, 'b1', 2n, { start: true }), send(s2, 'b2', 2n), send(s2, 'b3', 2n, { end: true }),
    ];
    for (let i = 0; i < 6; i++) {
      await settle();
      expect(log.running).toBe(1);
      a.releaseOne();
      b.releaseOne();
    }
    const outcomes = await Promise.all(done);
    expect(outcomes.every((o) => o.error === undefined)).toBe(true);
    expect(log.max).toBe(1);
    expect(a.batches.flat()).toEqual(['a1', 'a2', 'a3']);
    expect(b.batches.flat()).toEqual(['b1', 'b2', 'b3']);
    s1.close('test over');
    s2.close('test over');
  });

  it('a request cancelled while its instance waits for resources is answered, not run; its sequence goes on', async () => {
    const limiter = new RateLimiter('execution_count', ['R:1']);
    limiter.register('seq', [{ name: 'a', spec: needsR }]);
    limiter.register('other', [{ name: 'o', spec: needsR }]);
    const hold = await limiter.acquire('other', 'o');
    const sb = batcher({ acquire: (t) => limiter.acquire('seq', t.name) });
    const a = new HeldTarget('a');
    sb.addTarget(a);
    const ac = new AbortController();
    const first = send(sb, 'start', 5n, { start: true, signal: ac.signal });
    const last = send(sb, 'end', 5n, { end: true });
    await settle();
    ac.abort(new StubhostError('STUBHOST_CANCELLED', 'client disconnected'));
    hold();
    const cancelled = await first;
    expect((cancelled.error as StubhostError).code).toBe('STUBHOST_CANCELLED');
    expect(cancelled.error!.message).toContain('client disconnected');
    await settle();
    expect(a.batches).toEqual([['end']]);
    a.releaseOne();
    expect((await last).error).toBeUndefined();
    await sb.idle();
    sb.close('test over');
  });
});

describe('sequence batcher: queued cancellation', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('a cancelled queued request leaves its sequence\'s queue and is answered at once; the rest of the sequence runs', async () => {
    const sb = batcher();
    const a = new HeldTarget('a');
    sb.addTarget(a);
    const first = send(sb, 'start', 9n, { start: true });
    const ac = new AbortController();
    const middle = send(sb, 'middle', 9n, { signal: ac.signal });
    const last = send(sb, 'end', 9n, { end: true });
    await settle();
    expect(a.batches).toEqual([['start']]);
    expect(sb.pending).toBe(2);
    ac.abort(new StubhostError('STUBHOST_CANCELLED', 'stream cancelled'));
    const answered = await middle; // answered while 'start' still runs
    expect((answered.error as StubhostError).code).toBe('STUBHOST_CANCELLED');
    expect(answered.error!.message).toBe("model 'seq': request cancelled while queued (stream cancelled)");
    expect(sb.pending).toBe(1);
    a.releaseOne();
    expect((await first).error).toBeUndefined();
    await settle();
    a.releaseOne();
    expect((await last).error).toBeUndefined();
    expect(a.batches.flat()).toEqual(['start', 'end']);
    await sb.idle();
    sb.close('test over');
  });

  it('a request whose signal was aborted before submit is answered at once and never queued', async () => {
    const sb = batcher();
    const a = new HeldTarget('a');
    sb.addTarget(a);
    const first = send(sb, 'start', 3n, { start: true });
    await settle();
    const ac = new AbortController();
    ac.abort('gone');
    const late = await send(sb, 'late', 3n, { signal: ac.signal });
    expect((late.error as StubhostError).code).toBe('STUBHOST_CANCELLED');
    expect(late.error!.message).toContain('(gone)');
    expect(sb.pending).toBe(0);
    a.releaseOne();
    await first;
    expect(a.batches.flat()).toEqual(['start']);
    sb.close('test over');
  });

  it('idle() resolves once the last queued request is cancelled and the running one finishes', async () => {
    const sb = batcher();
    const a = new HeldTarget('a');
    sb.addTarget(a);
    const first = send(sb, 'start', 4n, { start: true });
    const ac = new AbortController();
    const queued = send(sb, 'next', 4n, { signal: ac.signal });
    await settle();
    let idle = false;
    void sb.idle().then(() => (idle = true));
    ac.abort('bye');
    await queued;
    await settle();
    expect(idle).toBe(false); // 'start' still runs
    a.releaseOne();
    await first;
    await settle();
    expect(idle).toBe(true);
    sb.close('test over');
  });

  it('close fails every queued request with the reason', async () => {
    const sb = batcher();
    const a = new HeldTarget('a');
    sb.addTarget(a);
    const first = send(sb, 'start', 6n, { start: true });
    const queued = send(sb, 'next', 6n);
    await settle();
    sb.close('model is unloaded');
    const failed = await queued;
    expect((failed.error as StubhostError).code).toBe('STUBHOST_UNAVAILABLE');
    expect(failed.error!.message).toBe("model 'seq': model is unloaded");
    expect(sb.pending).toBe(0);
    a.releaseOne();
    expect((await first).error).toBeUndefined();
    const after = await send(sb, 'after', 7n, { start: true });
    expect(after.error!.message).toBe("model 'seq' is unloading");
  });
});
