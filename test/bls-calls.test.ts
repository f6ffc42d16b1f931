/**
 * BLS: model code calling other models through the host. Many calls in flight (from one
 * execute and across requests), errors as error responses (unknown model, bad input, target
 * killed, timeout), BLS from initialize, and cancellation of a BLS call when its parent request
 * is cancelled or the calling stub dies.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, http, isAlive, shmLeftovers, waitFor, type TestServer } from './helpers/server.js';

const FIXTURES = path.resolve('test/fixtures/models/bls');

let server: TestServer;
let root: string;

beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'stubhost-bls-'));
  for (const m of ['identity', 'bls_caller', 'bls_warm']) fs.cpSync(path.join(FIXTURES, m), path.join(root, m), { recursive: true });
  server = await startTestServer({ modelRepository: root });
  expect([...server.failed]).toEqual([]);
});

afterAll(async () => {
  await server?.close();
  fs.rmSync(root, { recursive: true, force: true });
  expect(await waitFor(() => shmLeftovers().length === 0, 3000)).toBe(true);
});

interface CallResult { status: number; y: number[]; err: string[]; json: any }

async function caller(x: number[], parameters: Record<string, unknown>, signal?: AbortSignal): Promise<CallResult> {
  const res = await fetch(`${server.url}/v2/models/bls_caller/infer`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, signal,
    body: JSON.stringify({ inputs: [{ name: 'X', datatype: 'FP32', shape: [x.length], data: x }], parameters }),
  });
  const json = await res.json() as any;
  const out = (name: string) => json.outputs?.find((o: any) => o.name === name)?.data;
  return { status: res.status, y: out('Y'), err: out('ERR'), json };
}

const pidOf = (model: string) => server.core.repository.get(model).instanceList[0]!.pid;
const identityFailures = () => Number(server.core.modelStatistics('identity')[0]!.inference_stats.fail.count);
const identityLogs = () => server.logs.filter((l) => l.includes('identity: request'));

describe('many BLS calls in flight', () => {
  it('100 concurrent requests, each fanning out to 8 parallel calls', async () => {
    const results = await Promise.all(Array.from({ length: 100 }, (_, k) => caller([k, k + 0.5], { calls: 8 })));
    results.forEach((r, k) => {
      expect(r.status).toBe(200);
      expect(r.err).toEqual(Array(8).fill(''));
      expect(r.y).toEqual(Array.from({ length: 8 }, (_, i) => [k + i, k + 0.5 + i]).flat());
    });
    // The 800 calls went through identity's scheduler like any request: the dynamic batcher
    // gathered some of them (fewer executions than inferences).
    const stats = server.core.modelStatistics('identity')[0]!;
    expect(Number(stats.inference_count)).toBeGreaterThanOrEqual(800);
    expect(Number(stats.execution_count)).toBeLessThan(Number(stats.inference_count));
  });

  it('sequential calls give the same answers', async () => {
    const r = await caller([1, 2, 3], { calls: 8, mode: 'sequential' });
    expect(r.err).toEqual(Array(8).fill(''));
    expect(r.y).toEqual(Array.from({ length: 8 }, (_, i) => [1 + i, 2 + i, 3 + i]).flat());
  });
});

describe('errors come back as error responses', () => {
  it('a model that does not exist', async () => {
    const r = await caller([1], { target: 'no_such_model', calls: 2 });
    expect(r.status).toBe(200);
    expect(r.err).toHaveLength(2);
    for (const e of r.err) expect(e).toMatch(/^NOT_FOUND: .*'no_such_model' is not found/);
  });

  it('an input the target does not have, and a wrong data type', async () => {
    const name = await caller([1], { input_name: 'NOPE' });
    expect(name.err[0]).toMatch(/^INVALID_ARG: .*NOPE/);
    const dtype = await caller([1], { dtype: 'INT32' });
    expect(dtype.err[0]).toMatch(/^INVALID_ARG: .*INT32/);
  });

  it('a timeout: TIMEOUT error response, and the target sees the call cancelled', async () => {
    server.logs.length = 0;
    const t0 = Date.now();
    const r = await caller([1], { delay_ms: 5000, timeout_ms: 200 });
    const took = Date.now() - t0;
    expect(r.err[0]).toMatch(/^TIMEOUT: BLS call to 'identity' timed out after 200 ms/);
    expect(took).toBeGreaterThanOrEqual(190);
    expect(took).toBeLessThan(2000);
    expect(await waitFor(() => identityLogs().some((l) => l.includes('cancelled after')), 3000)).toBe(true);
  });

  it('the target stub is killed mid-call: an error response, and the caller keeps serving', async () => {
    const callerPid = pidOf('bls_caller');
    const identityPid = pidOf('identity');
    // One call: a second would wait in identity's queue and run on the restarted stub.
    const pending = caller([3], { delay_ms: 5000, calls: 1 });
    await new Promise((r) => setTimeout(r, 300));
    process.kill(identityPid, 'SIGKILL');
    const r = await pending;
    expect(r.status).toBe(200);
    for (const e of r.err) expect(e).toMatch(/^INTERNAL: .*'identity'.*killed by SIGKILL/);
    // The caller did not die, and serves once identity is back.
    expect(pidOf('bls_caller')).toBe(callerPid);
    expect(await waitFor(() => server.core.modelReady('identity') && pidOf('identity') !== identityPid && server.core.repository.get('identity').instanceList[0]!.isHealthy(), 10_000)).toBe(true);
    const again = await caller([3], { calls: 2 });
    expect(again.err).toEqual(['', '']);
    expect(again.y).toEqual([3, 4]);
  });
});

describe('BLS from initialize', () => {
  it('a warm-up call made in initialize', async () => {
    const r = await http(`${server.url}/v2/models/bls_warm/infer`, 'POST', { inputs: [{ name: 'X', datatype: 'FP32', shape: [1], data: [0] }] });
    expect(r.status).toBe(200);
    expect(r.json.outputs[0].data).toEqual([1, 2, 3]);
  });
});

describe('a BLS call is cancelled with its parent', () => {
  it('the client of the parent request disconnects', async () => {
    server.logs.length = 0;
    const failed = identityFailures();
    const ac = new AbortController();
    const pending = caller([1], { delay_ms: 5000, calls: 3 }, ac.signal).catch((e: Error) => e);
    await new Promise((r) => setTimeout(r, 300));
    const t0 = Date.now();
    ac.abort();
    expect(await pending).toBeInstanceOf(Error);
    // The running call sees isCancelled(); the queued ones are dropped from identity's queue.
    expect(await waitFor(() => identityLogs().some((l) => l.includes('cancelled after')) && identityFailures() === failed + 3, 3000)).toBe(true);
    expect(Date.now() - t0).toBeLessThan(3000);
    // The caller serves the next request normally.
    expect((await caller([2], { calls: 1 })).y).toEqual([2]);
  });

  it('the parent request times out (parameter timeout)', async () => {
    server.logs.length = 0;
    const t0 = Date.now();
    const r = await caller([1], { delay_ms: 5000, timeout: 300_000 });
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(r.err[0]).toMatch(/^CANCELLED: /);
    expect(await waitFor(() => identityLogs().some((l) => l.includes('cancelled after')), 3000)).toBe(true);
  });

  it('the calling stub dies', async () => {
    server.logs.length = 0;
    const failed = identityFailures();
    const callerPid = pidOf('bls_caller');
    const pending = caller([1], { delay_ms: 5000, calls: 2 });
    await new Promise((r) => setTimeout(r, 300));
    process.kill(callerPid, 'SIGKILL');
    const r = await pending;
    expect(r.status).toBe(500);
    expect(r.json.error).toMatch(/bls_caller.*killed by SIGKILL/);
    expect(await waitFor(() => identityLogs().some((l) => l.includes('cancelled after')) && identityFailures() === failed + 2, 3000)).toBe(true);
    expect(isAlive(callerPid)).toBe(false);
    expect(await waitFor(() => pidOf('bls_caller') !== callerPid && server.core.repository.get('bls_caller').instanceList[0]!.isHealthy(), 10_000)).toBe(true);
    expect((await caller([5], { calls: 2 })).y).toEqual([5, 6]);
  });
});
