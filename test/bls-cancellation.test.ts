/**
 * Cancellation as model code sees it: `request.isCancelled()` and `responseSender().isCancelled()`
 * turn true when the HTTP client disconnects or the request's timeout passes, so a slow model
 * that polls them stops early.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestServer, http, shmLeftovers, waitFor, type TestServer } from './helpers/server.js';

let server: TestServer;
let root: string;

beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'stubhost-cancel-'));
  fs.cpSync(path.resolve('test/fixtures/models/bls/slow'), path.join(root, 'slow'), { recursive: true });
  server = await startTestServer({ modelRepository: root });
  expect([...server.failed]).toEqual([]);
});

afterAll(async () => {
  await server?.close();
  fs.rmSync(root, { recursive: true, force: true });
  expect(await waitFor(() => shmLeftovers().length === 0, 3000)).toBe(true);
});

const body = (id: string, parameters: Record<string, unknown> = {}) =>
  JSON.stringify({ id, inputs: [{ name: 'X', datatype: 'FP32', shape: [1], data: [1] }], parameters });
const cancelledLine = (id: string) => server.logs.find((l) => l.includes(`slow: '${id}' cancelled after`));

it('the HTTP client disconnects: isCancelled() turns true in the running execute', async () => {
  const ac = new AbortController();
  const pending = fetch(`${server.url}/v2/models/slow/infer`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: body('gone'), signal: ac.signal,
  }).catch((e: Error) => e);
  await new Promise((r) => setTimeout(r, 300));
  const t0 = Date.now();
  ac.abort();
  expect(await pending).toBeInstanceOf(Error);
  expect(await waitFor(() => cancelledLine('gone') !== undefined, 3000)).toBe(true);
  expect(Date.now() - t0).toBeLessThan(1000);
  expect(cancelledLine('gone')).toContain('sender.isCancelled()=true');
  const ms = Number(/cancelled after (\d+) ms/.exec(cancelledLine('gone')!)![1]);
  expect(ms).toBeGreaterThan(0); // it was running (the first request of a fresh stub starts late)
  expect(ms).toBeLessThan(1500);
});

it('the request times out (parameter timeout, µs): isCancelled() turns true, the model answers CANCELLED', async () => {
  const t0 = Date.now();
  const r = await http(`${server.url}/v2/models/slow/infer`, 'POST', body('late', { timeout: 250_000 }));
  const took = Date.now() - t0;
  expect(r.status).toBe(499);
  expect(r.json.error).toBe('slow: cancelled');
  expect(took).toBeGreaterThanOrEqual(240);
  expect(took).toBeLessThan(1500);
  expect(cancelledLine('late')).toContain('sender.isCancelled()=true');
});

it('several requests in flight: only the one whose client left is cancelled', async () => {
  const ac = new AbortController();
  const leaving = fetch(`${server.url}/v2/models/slow/infer`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: body('leaving'), signal: ac.signal,
  }).catch((e: Error) => e);
  const staying = http(`${server.url}/v2/models/slow/infer`, 'POST', body('staying', { timeout: 1_500_000 }));
  await new Promise((r) => setTimeout(r, 300));
  ac.abort();
  await leaving;
  expect(await waitFor(() => cancelledLine('leaving') !== undefined, 3000)).toBe(true);
  expect(cancelledLine('staying')).toBeUndefined();
  expect((await staying).status).toBe(499); // its own timeout, later
  expect(cancelledLine('staying')).toBeDefined();
});
