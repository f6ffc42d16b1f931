/**
 * The rate limiter through a real server (`rateLimit: 'execution_count'`, as `--rate-limit
 * execution_count --rate-limit-resource R:1 --rate-limit-resource W:1`): two models sharing a
 * global resource of count 1 never execute at the same time; instance priorities share a
 * resource 2:1; a model asking for more than exists fails its load, naming the resource.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http, shmLeftovers, startTestServer, type TestServer } from './helpers/server.js';
import { infer, recorderModel, schedRepository, type Recorded } from './fixtures/models/sched/repo.js';

const R = (count: number, extra = '') => `rate_limiter { resources [ { name: "R" global: true count: ${count} } ] ${extra} }`;

let server: TestServer;
let repo: { root: string; cleanup(): void };

beforeAll(async () => {
  repo = schedRepository({
    // Two instances each, so without the limiter four executions could overlap.
    shared_a: recorderModel('shared_a', { delayMs: 15, instanceGroup: `{ count: 2, kind: KIND_CPU, ${R(1)} }` }),
    shared_b: recorderModel('shared_b', { delayMs: 15, instanceGroup: `{ count: 2, kind: KIND_CPU, ${R(1)} }` }),
    // Control: no rate_limiter, so it runs alongside anything.
    free: recorderModel('free', { delayMs: 15, instanceGroup: '{ count: 2, kind: KIND_CPU }' }),
    // One per-device resource W (count 1 on device 0), two instances of priority 1 and 2.
    weighted: recorderModel('weighted', {
      delayMs: 10,
      instanceGroup: `{ name: "hi", count: 1, kind: KIND_CPU, rate_limiter { resources [ { name: "W" count: 1 } ] priority: 1 } },
        { name: "lo", count: 1, kind: KIND_CPU, rate_limiter { resources [ { name: "W" count: 1 } ] priority: 2 } }`,
    }),
    greedy: recorderModel('greedy', { instanceGroup: `{ count: 1, kind: KIND_CPU, ${R(2)} }` }),
  });
  server = await startTestServer({ modelRepository: repo.root, stubTimeoutMs: 10_000, rateLimit: 'execution_count', rateLimitResources: ['R:1', 'W:1'] });
}, 60_000);

afterAll(async () => {
  await server?.close();
  repo?.cleanup();
  expect(shmLeftovers()).toEqual([]);
});

/** Pairs of executions (distinct calls) whose [start, end] intervals overlap by more than `slackMs`. */
function overlaps(rs: (Recorded & { model: string })[], slackMs = 1): string[] {
  const calls = new Map<string, [number, number]>();
  for (const r of rs) calls.set(`${r.model}/${r.instance}/${r.order}`, r.span);
  const list = [...calls.entries()].sort((a, b) => a[1][0] - b[1][0]);
  const bad: string[] = [];
  for (let i = 1; i < list.length; i++) {
    for (let j = 0; j < i; j++) {
      if (list[j]![1][1] - list[i]![1][0] > slackMs) bad.push(`${list[j]![0]} [${list[j]![1]}] overlaps ${list[i]![0]} [${list[i]![1]}]`);
    }
  }
  return bad;
}

async function burst(model: string, n: number): Promise<(Recorded & { model: string })[]> {
  const rs = await Promise.all(Array.from({ length: n }, () => infer(server.url, model)));
  for (const r of rs) expect(r.status, r.error).toBe(200);
  return rs.map((r) => ({ ...r, model }));
}

describe('rate limiter', () => {
  it('a model asking for more of a resource than exists fails its load, naming model, instance and resource', () => {
    expect(server.failed.get('greedy')).toMatch(/model 'greedy' instance '[^']+' asks for 2 of rate-limiter resource 'R' \(global\), but only 1 exist/);
    expect([...server.failed.keys()]).toEqual(['greedy']);
  });

  it('two models sharing a global resource of count 1 never execute at the same time', async () => {
    const [a, b] = await Promise.all([burst('shared_a', 16), burst('shared_b', 16)]);
    const all = [...a, ...b];
    expect(new Set(all.map((r) => `${r.model}/${r.instance}`)).size).toBe(4); // both instances of each model took work
    expect(overlaps(all)).toEqual([]);
    // The control model, without the resource, does overlap with itself: the check can fail.
    const free = await burst('free', 8);
    expect(overlaps(free).length).toBeGreaterThan(0);
  });

  it('instance priorities: a priority-1 instance gets about twice the executions of a priority-2 one under contention', async () => {
    const rs = await burst('weighted', 36);
    const hi = rs.filter((r) => r.instance === 'hi_0').length;
    const lo = rs.filter((r) => r.instance === 'lo_0').length;
    expect(hi + lo).toBe(36);
    expect(hi / lo).toBeGreaterThan(1.5);
    expect(hi / lo).toBeLessThan(3);
    expect(overlaps(rs)).toEqual([]);
    const stats = (await http(`${server.url}/v2/models/weighted/stats`)).json.model_stats[0];
    // Time spent waiting for the resource is queue time.
    expect(stats.inference_stats.queue.ns / stats.inference_stats.queue.count).toBeGreaterThan(5e6);
  });
});
