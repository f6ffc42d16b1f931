/** models/batch_concat, the example of batching across requests with concatInputs / splitOutput. */
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { shmLeftovers, startTestServer, type TestServer } from './helpers/server.js';

let server: TestServer;

beforeAll(async () => {
  server = await startTestServer({ modelRepository: path.resolve('models'), modelControlMode: 'explicit', loadModels: ['batch_concat'], stubTimeoutMs: 10_000 });
  expect([...server.failed]).toEqual([]);
}, 60_000);

afterAll(async () => {
  await server?.close();
  expect(shmLeftovers()).toEqual([]);
});

/** What the model computes: x · W + b with its deterministic weights. */
function expected(row: number[]): number[] {
  return [0, 1, 2, 3].map((j) => row.reduce((acc, x, i) => acc + x * (((i * 4 + j) % 7) - 3) / 10, j));
}

it('concatenates a dynamic batch, runs once and gives every request its own rows', async () => {
  const rowsOf = (k: number, n: number) => Array.from({ length: n }, (_, r) => Array.from({ length: 16 }, (_, i) => (k + 1) * 0.5 + r - i * 0.25));
  const requests = Array.from({ length: 12 }, (_, k) => rowsOf(k, 1 + (k % 3)));
  const results = await Promise.all(requests.map(async (rows) => {
    const res = await fetch(`${server.url}/v2/models/batch_concat/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [rows.length, 16], data: rows.flat() }] }),
    });
    expect(res.status).toBe(200);
    return (await res.json()) as { outputs: { shape: number[]; data: number[] }[]; parameters: { batch_requests: number; batch_rows: number } };
  }));
  results.forEach((r, k) => {
    const rows = requests[k]!;
    expect(r.outputs[0]!.shape).toEqual([rows.length, 4]);
    const want = rows.flatMap(expected);
    r.outputs[0]!.data.forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 3));
  });
  // Concurrent requests shared executions.
  expect(Math.max(...results.map((r) => r.parameters.batch_requests))).toBeGreaterThan(1);
  expect(results.every((r) => r.parameters.batch_rows <= 32)).toBe(true);
});
