/**
 * The scheduler's per-request path (src/scheduler/scheduler.ts, scheduler-base.ts): a queued job
 * reaches its instance as it is, with the arrival read as its enqueue time and the dispatch read
 * as its batch's start; a target's runThen is driven without promises; and the fast path (a
 * request dispatched straight from submit when nothing is queued) is taken only where the queue
 * would have sent the request at once anyway.
 */
import { describe, expect, it } from 'vitest';
import { Scheduler, type SchedulerOptions } from '../src/scheduler/scheduler.js';
import type { QueuePolicy } from '../src/scheduler/priority-queue.js';
import type { ExecOutcome, ExecutionTarget, Job, JobTiming, RunningBatch } from '../src/execution/contract.js';
import type { InferRequest } from '../src/core/types.js';
import { StubhostError } from '../src/errors.js';

const noPolicy: QueuePolicy = { timeoutAction: 'REJECT', defaultTimeoutUs: 0, allowTimeoutOverride: false, maxQueueSize: 0 };

function scheduler(opts: Partial<SchedulerOptions> = {}): Scheduler {
  return new Scheduler({ modelLabel: "model 'm'", maxBatchSize: 0, priorityLevels: 1, defaultPriorityLevel: 1, policyOf: () => noPolicy, ...opts });
}

/** A callback-style target: holds each batch until finishOne(); run() must not be used. */
class ThenTarget implements ExecutionTarget {
  readonly held: RunningBatch[] = [];
  readonly batches: string[][] = [];
  accepting = true;
  constructor(readonly name: string, readonly depth = 1) {}
  canAccept(): boolean {
    return this.accepting;
  }
  run(): Promise<unknown> {
    throw new Error('run() used although runThen exists');
  }
  runThen(batch: RunningBatch): void {
    this.batches.push(batch.jobs.map((j) => j.request.id));
    this.held.push(batch);
  }
  /** Finishes the oldest held batch, its end read at `endedAt`. */
  finishOne(endedAt = performance.now()): void {
    const batch = this.held.shift()!;
    const timing: JobTiming = { queueMs: 0, computeMs: endedAt - batch.startedAt, batchSize: batch.jobs.length, endedAt };
    for (const j of batch.jobs) j.finish({ outputs: [] }, timing);
    batch.done();
  }
}

interface Done {
  id: string;
  outcome: ExecOutcome;
  timing: JobTiming;
}

function submit(s: Scheduler, id: string, o: { level?: number; batchSize?: number; arrivedAt?: number; timeoutUs?: number; signal?: AbortSignal } = {}): Promise<Done> {
  const request: InferRequest = { id, modelName: 'm', inputs: [], parameters: {}, priority: 0, timeoutUs: 0, signal: o.signal };
  return new Promise((resolve) => {
    s.submit({
      request, batchSize: o.batchSize ?? 1, shapeKey: '', level: o.level ?? 1, timeoutUs: o.timeoutUs ?? 0, arrivedAt: o.arrivedAt,
      finish: (outcome, timing) => resolve({ id, outcome, timing }),
    });
  });
}

const db = (preferred: number[], delayUs: number) => ({ preferredBatchSizes: preferred, maxQueueDelayUs: delayUs, preserveOrdering: false });

describe('a job on its way to its instance', () => {
  it('the target gets the queued job with the arrival read as its enqueue time; its batch starts at the dispatching read', async () => {
    const s = scheduler();
    const a = new ThenTarget('a');
    s.addTarget(a);
    const arrivedAt = performance.now();
    const d = submit(s, 'x', { arrivedAt });
    const batch = a.held[0]!;
    expect(batch.jobs[0]!.enqueuedAt).toBe(arrivedAt);
    // Dispatched from submit: the arrival read is also the batch's start (no read of its own).
    expect(batch.startedAt).toBe(arrivedAt);
    a.finishOne(arrivedAt + 3);
    const { timing } = await d;
    expect(timing).toMatchObject({ queueMs: 0, computeMs: 3, batchSize: 1, endedAt: arrivedAt + 3 });
  });

  it("queue time and queue timeouts count from the caller's arrival read", async () => {
    const s = scheduler({ policyOf: () => ({ ...noPolicy, defaultTimeoutUs: 500_000 }) });
    const a = new ThenTarget('a');
    s.addTarget(a);
    const busy = submit(s, 'busy');
    // Arrived a second ago (the caller read the clock then): its 500 ms queue timeout has passed.
    const late = submit(s, 'late', { arrivedAt: performance.now() - 1000 });
    const d = await late;
    expect((d.outcome.error as StubhostError).code).toBe('STUBHOST_TIMEOUT');
    expect(d.timing.queueMs).toBeGreaterThanOrEqual(1000);
    a.finishOne();
    await busy;
  });

  it('runThen: the batch being done frees the instance and dispatches the next queued job at once, with no promise', async () => {
    const s = scheduler();
    const a = new ThenTarget('a');
    s.addTarget(a);
    const first = submit(s, '1');
    const second = submit(s, '2');
    expect([a.batches, s.pending, s.inflight]).toEqual([[['1']], 1, 1]);
    a.finishOne();
    // Synchronously: the next batch is already on the instance.
    expect([a.batches, s.pending, s.inflight]).toEqual([[['1'], ['2']], 0, 1]);
    a.finishOne();
    expect(s.inflight).toBe(0);
    expect((await first).id).toBe('1');
    expect((await second).id).toBe('2');
    await s.idle();
  });

  it('a batch done with an error fails the jobs it did not finish', async () => {
    const s = scheduler();
    const a = new ThenTarget('a');
    s.addTarget(a);
    const d = submit(s, 'x');
    a.held.shift()!.done(new StubhostError('STUBHOST_STUB_DIED', 'gone'));
    expect(((await d).outcome.error as StubhostError).code).toBe('STUBHOST_STUB_DIED');
    expect(s.inflight).toBe(0);
  });
});

describe('fast path: dispatched straight from submit', () => {
  it('taken when nothing is queued and an instance has room: the request never counts as queued', () => {
    const seen: number[] = [];
    const s = scheduler({ onPending: (n) => seen.push(n) });
    const a = new ThenTarget('a');
    s.addTarget(a);
    void submit(s, 'x');
    expect(a.batches).toEqual([['x']]);
    expect(seen).not.toContain(1);
    // The instance is busy now: the next one queues.
    void submit(s, 'y');
    expect([a.batches.length, s.pending]).toEqual([1, 1]);
    a.finishOne();
    a.finishOne();
  });

  it('never overtakes queued work: with a job queued, a new arrival queues behind it even when an instance has room', () => {
    const s = scheduler();
    const a = new ThenTarget('a');
    a.accepting = false;
    s.addTarget(a);
    void submit(s, 'first');
    expect(s.pending).toBe(1);
    a.accepting = true;
    void submit(s, 'second');
    // The queue went first: 'first' was dispatched, 'second' waits for the instance.
    expect(a.batches).toEqual([['first']]);
    expect(s.pending).toBe(1);
    a.finishOne();
    expect(a.batches).toEqual([['first'], ['second']]);
    a.finishOne();
  });

  it('priorities hold: while the instance is busy, the urgent arrival goes before the earlier low-priority one', () => {
    const s = scheduler({ priorityLevels: 2, defaultPriorityLevel: 2 });
    const a = new ThenTarget('a');
    s.addTarget(a);
    void submit(s, 'running', { level: 2 });
    void submit(s, 'low', { level: 2 });
    void submit(s, 'urgent', { level: 1 });
    a.finishOne();
    a.finishOne();
    a.finishOne();
    expect(a.batches).toEqual([['running'], ['urgent'], ['low']]);
  });

  it('not taken when the dynamic batcher would wait for company (max_queue_delay, batch below the preferred size)', () => {
    const s = scheduler({ maxBatchSize: 8, dynamicBatching: db([4], 10_000_000) });
    const a = new ThenTarget('a');
    s.addTarget(a);
    void submit(s, '1');
    expect([a.batches, s.pending]).toEqual([[], 1]);
    void submit(s, '2');
    void submit(s, '3');
    expect(a.batches).toEqual([]);
    void submit(s, '4');
    // The preferred size is reached: one batch of four, at once.
    expect([a.batches, s.pending]).toEqual([[['1', '2', '3', '4']], 0]);
    a.finishOne();
  });

  it('taken with dynamic batching when the request would go at once anyway: no queue delay, or it fills the batch alone', () => {
    const noDelay = scheduler({ maxBatchSize: 8, dynamicBatching: db([4], 0) });
    const a = new ThenTarget('a');
    noDelay.addTarget(a);
    const seen: number[] = [];
    void submit(noDelay, 'x');
    expect(a.batches).toEqual([['x']]);
    a.finishOne();

    const filled = scheduler({ maxBatchSize: 8, dynamicBatching: db([4], 10_000_000), onPending: (n) => seen.push(n) });
    const b = new ThenTarget('b');
    filled.addTarget(b);
    void submit(filled, 'four', { batchSize: 4 });
    expect(b.batches).toEqual([['four']]);
    expect(seen).not.toContain(1);
    b.finishOne();
  });

  it('with a rate limiter that makes the batch wait, the request counts as pending until its instance holds the resources', async () => {
    let grant!: (release: () => void) => void;
    const s = scheduler({ acquire: () => new Promise((resolve) => (grant = resolve)) });
    const a = new ThenTarget('a');
    s.addTarget(a);
    const d = submit(s, 'x');
    expect([a.batches, s.pending]).toEqual([[], 1]);
    let released = false;
    grant(() => (released = true));
    await Promise.resolve();
    expect([a.batches, s.pending]).toEqual([[['x']], 0]);
    a.finishOne();
    expect(released).toBe(true);
    await d;
  });
});
