/**
 * Priority levels, queue policies and cancellation through a real server (HTTP
 * `parameters.priority` / `parameters.timeout`), on one instance kept busy so requests queue.
 * Steps wait for what the server saw (an execution started, a request queued), not for wall
 * time, so a loaded machine that delays HTTP arrivals does not reorder them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http, shmLeftovers, startTestServer, waitFor, type TestServer } from './helpers/server.js';
import { infer, pendingOf, recorderModel, schedRepository, sleep, startsOf } from './fixtures/models/sched/repo.js';

const BUSY_MS = 120;
/** A request that holds the instance this long (the recorder's per-request delay_ms). */
const HOLD = { delay_ms: 600 };

let server: TestServer;
let repo: { root: string; cleanup(): void };

beforeAll(async () => {
  repo = schedRepository({
    // The seed's priority example: two levels, default 2.
    prio: recorderModel('prio', {
      maxBatchSize: 0, delayMs: 60,
      extra: 'dynamic_batching { priority_levels: 2 default_priority_level: 2 }',
    }),
    // Level 1: REJECT after 50 ms, override allowed. Level 2: DELAY after 50 ms, override allowed.
    policy: recorderModel('policy', {
      maxBatchSize: 0, delayMs: BUSY_MS,
      extra: `dynamic_batching {
        priority_levels: 2 default_priority_level: 2
        default_queue_policy { timeout_action: DELAY default_timeout_microseconds: 50000 allow_timeout_override: true }
        priority_queue_policy { key: 1 value: { timeout_action: REJECT default_timeout_microseconds: 50000 allow_timeout_override: true } }
      }`,
    }),
    // At most 2 queued.
    small: recorderModel('small', {
      maxBatchSize: 0, delayMs: BUSY_MS,
      extra: 'dynamic_batching { default_queue_policy { max_queue_size: 2 } }',
    }),
    // Aging: a level-2 request is promoted after 150 ms.
    aging: recorderModel('aging', {
      maxBatchSize: 0, delayMs: 30,
      extra: `dynamic_batching { priority_levels: 2 default_priority_level: 1 }
parameters { key: "priority_aging_microseconds" value: { string_value: "150000" } }`,
    }),
  });
  server = await startTestServer({ modelRepository: repo.root, stubTimeoutMs: 10_000 }); // health timing is not under test here
  expect([...server.failed]).toEqual([]);
}, 60_000);

/** Sends a request that occupies the instance and waits until it runs; `.done` is its result. */
async function occupy(model: string, parameters: Record<string, unknown> = {}, value = 0) {
  const before = startsOf(repo.root, model);
  const done = infer(server.url, model, { parameters: { ...HOLD, ...parameters }, value });
  expect(await waitFor(() => startsOf(repo.root, model) > before, 5000, 5)).toBe(true);
  return { done };
}

/** Sends a request and waits until the scheduler has queued it; `.done` is its result. */
async function enqueue(model: string, opts: Parameters<typeof infer>[2] = {}) {
  const before = pendingOf(server, model);
  const done = infer(server.url, model, opts);
  expect(await waitFor(() => pendingOf(server, model) > before, 5000, 2)).toBe(true);
  return { done };
}

afterAll(async () => {
  await server?.close();
  repo?.cleanup();
  expect(shmLeftovers()).toEqual([]);
});

describe('priorities', () => {
  it('priority-1 requests overtake priority-2 ones sent before them while the model is busy', async () => {
    // The seed's client: request i has priority 1 when i is even, else 2, all sent while the
    // instance executes an earlier request. The model returns its execution counter.
    const busy = await occupy('prio');
    const sent: Promise<{ i: number; order: number; status: number }>[] = [];
    for (let i = 0; i < 10; i++) {
      const priority = i % 2 === 0 ? 1 : 2;
      const { done } = await enqueue('prio', { id: String(i), parameters: { priority } }); // arrival order = send order
      sent.push(done.then((r) => ({ i, order: r.order, status: r.status })));
    }
    expect((await busy.done).order).toBe(0);
    const done = await Promise.all(sent);
    expect(done.every((d) => d.status === 200)).toBe(true);
    const byOrder = [...done].sort((a, b) => a.order - b.order).map((d) => d.i);
    // Every priority-1 request (even i) ran before every priority-2 one, each level in arrival order.
    expect(byOrder).toEqual([0, 2, 4, 6, 8, 1, 3, 5, 7, 9]);
  });

  it('a priority outside 1..priority_levels (or 0) runs at the default level', async () => {
    const r = await infer(server.url, 'prio', { parameters: { priority: 9 } });
    expect(r.status).toBe(200);
  });

  it('aging bounds starvation: a priority-2 request runs within the aging time under endless priority-1 load', async () => {
    let stop = false;
    const flood = (async () => {
      const inflight = new Set<Promise<unknown>>();
      while (!stop) {
        while (inflight.size < 3) {
          const p = infer(server.url, 'aging', { parameters: { priority: 1 } }).finally(() => inflight.delete(p));
          inflight.add(p);
        }
        await Promise.race(inflight);
      }
      await Promise.all(inflight);
    })();
    await sleep(50);
    const low = infer(server.url, 'aging', { parameters: { priority: 2 } });
    const r = await Promise.race([low, sleep(4000).then(() => undefined)]);
    stop = true;
    await flood;
    expect(r, 'the priority-2 request starved').toBeDefined();
    expect(r!.status).toBe(200);
    expect(r!.ms).toBeGreaterThanOrEqual(140); // urgent traffic overtook it for the aging window
    // No tight upper bound: a loaded machine slows everything; without aging it never runs while the flood lasts.
  });
});

describe('queue policies', () => {
  it('REJECT: a level-1 request that waits past its timeout answers 504 with a clear message', async () => {
    const busy = await occupy('policy', { priority: 1 });
    const r = await infer(server.url, 'policy', { parameters: { priority: 1 } });
    expect(r.status).toBe(504);
    const waited = Number(/request timed out in the queue after (\d+) ms/.exec(r.error ?? '')?.[1]);
    expect(r.error).toMatch(/^model 'policy' version 1: request timed out in the queue after \d+ ms/);
    expect(waited).toBeGreaterThanOrEqual(49);
    expect(waited).toBeLessThan(HOLD.delay_ms); // rejected while the instance was still busy
    expect((await busy.done).status).toBe(200);
  });

  it('allow_timeout_override: the request timeout parameter replaces the default', async () => {
    const busy = await occupy('policy', { priority: 1 });
    const [patient, hasty] = await Promise.all([
      infer(server.url, 'policy', { parameters: { priority: 1, timeout: 5_000_000 } }),
      infer(server.url, 'policy', { parameters: { priority: 1, timeout: 10_000 } }),
    ]);
    expect(patient.status).toBe(200);
    expect(hasty.status).toBe(504);
    // patient outlived the 50 ms default, so the override lengthens; hasty's 504 shows it
    // shortens too. (No upper bound on its wait: a loaded machine fires the 10 ms timer late.)
    expect(hasty.error).toMatch(/request timed out in the queue after \d+ ms/);
    await busy.done;
  });

  it('DELAY: a level-2 request past its timeout is not rejected; fresh level-2 requests go first', async () => {
    const busy = await occupy('policy', { priority: 2 });
    const old = await enqueue('policy', { parameters: { priority: 2 } }); // delayed at 50 ms
    await sleep(80);
    const fresh = await enqueue('policy', { parameters: { priority: 2, timeout: 5_000_000 } });
    const [b, o, f] = await Promise.all([busy.done, old.done, fresh.done]);
    expect([b.status, o.status, f.status]).toEqual([200, 200, 200]);
    expect(f.order).toBe(b.order + 1);
    expect(o.order).toBe(b.order + 2);
  });

  it('max_queue_size: the overflow answers 503 "queue full", every queued request still succeeds with its own data', async () => {
    const running = await occupy('small', {}, 100);
    const queued = [(await enqueue('small', { value: 1 })).done, (await enqueue('small', { value: 2 })).done];
    const over = await Promise.all([infer(server.url, 'small', { value: 3 }), infer(server.url, 'small', { value: 4 })]);
    for (const r of over) {
      expect(r.status).toBe(503);
      expect(r.error).toMatch(/queue full: priority level 1 already holds max_queue_size 2 requests; retry later/);
    }
    const ok = await Promise.all([running.done, ...queued]);
    expect(ok.map((r) => [r.status, r.out[0]])).toEqual([[200, 100], [200, 1], [200, 2]]);
    const stats = (await http(`${server.url}/v2/models/small/stats`)).json.model_stats[0];
    expect(stats.inference_stats.fail.count).toBe(2);
    expect(stats.inference_stats.success.count).toBe(3);
  });
});

describe('cancellation', () => {
  it('a queued request whose client disconnects leaves the queue and never executes', async () => {
    const metricsText = async () => (await http(`http://127.0.0.1:${server.ports.metrics}/metrics`)).text;
    const busy = await occupy('small', {}, 1);
    const ac = new AbortController();
    const gone = (await enqueue('small', { value: 2, signal: ac.signal })).done.catch((e: Error) => e);
    ac.abort();
    expect(await gone).toBeInstanceOf(Error);
    expect(await waitFor(() => pendingOf(server, 'small') === 0, 2000, 5)).toBe(true);
    const canceled = await waitFor(async () => /nv_inference_request_failure\{[^}]*model="small"[^}]*reason="CANCELED"[^}]*\} 1/.test(await metricsText()), 2000);
    expect(canceled).toBe(true);
    const b = await busy.done;
    const next = await infer(server.url, 'small', { value: 3 });
    expect(next.order).toBe(b.order + 1); // the cancelled request took no execution
  });
});
