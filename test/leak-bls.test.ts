/**
 * Leak checks for BLS: after many BLS calls of every outcome (answered, refused at once for an
 * unknown model or bad inputs, timed out, parent cancelled), nothing stays behind for them, on the
 * host (the stub handle's BLS relay and requests in flight, the target's scheduler) or in the calling stub (its BLS calls,
 * live requests, arena blocks).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, shmLeftovers, waitFor, type TestServer } from './helpers/server.js';

const FIXTURES = path.resolve('test/fixtures/models/bls');

let server: TestServer;
let root: string;

beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'stubhost-leak-bls-'));
  for (const m of ['identity', 'bls_caller']) fs.cpSync(path.join(FIXTURES, m), path.join(root, m), { recursive: true });
  server = await startTestServer({ modelRepository: root });
  expect([...server.failed]).toEqual([]);
}, 60_000);

afterAll(async () => {
  await server?.close();
  fs.rmSync(root, { recursive: true, force: true });
  expect(await waitFor(() => shmLeftovers().length === 0, 3000)).toBe(true);
});

async function caller(parameters: Record<string, unknown>, signal?: AbortSignal, x: number[] = [1, 2]): Promise<number> {
  try {
    const res = await fetch(`${server.url}/v2/models/bls_caller/infer`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, signal,
      body: JSON.stringify({ inputs: [{ name: 'X', datatype: 'FP32', shape: [x.length], data: x }], parameters }),
    });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return -1;
  }
}

const stubOf = (model: string): any => (server.core.repository.get(model).instanceList[0] as any).stub;

describe('BLS leaves nothing behind', () => {
  it('the relay\'s calls, the stub\'s calls and both arenas are empty again after calls of every outcome', async () => {
    const statuses = await Promise.all([
      ...Array.from({ length: 20 }, () => caller({ target: 'identity', calls: 3 })),
      // Refused before the handler returns: unknown model, and inputs the target does not take.
      ...Array.from({ length: 20 }, () => caller({ target: 'no_such_model', calls: 3 })),
      ...Array.from({ length: 20 }, () => caller({ target: 'identity', calls: 3, input_name: 'WRONG' })),
      ...Array.from({ length: 5 }, () => caller({ target: 'identity', calls: 2, timeout_ms: 20, delay_ms: 200 })),
      ...Array.from({ length: 5 }, () => caller({ target: 'identity', calls: 2, delay_ms: 300 }, AbortSignal.timeout(40))),
    ]);
    expect(statuses.slice(0, 65).every((s) => s === 200)).toBe(true);
    const host = stubOf('bls_caller');
    // Calls still running in identity after their parent went away finish within its delay.
    expect(await waitFor(() => host.relay.size === 0 && host.requests.inflight === 0, 5000)).toBe(true);
    expect(host.relay.size).toBe(0);
    const stub = await host.debugStats();
    expect(stub).toBeDefined();
    expect(stub.sizes).toMatchObject({ live: 0, blsCalls: 0, cancelledBeforeStart: 0, execQueue: 0, executing: 0 });
    expect(await waitFor(async () => (await host.debugStats()).arena.usedBytes === 0 && host.channel.arena.stats.usedBytes === 0, 3000)).toBe(true);
    // A cancelled call's identity job settles a moment after the caller forgot it (isCancelled is polled).
    const sched = (server.core.repository.get('identity') as any).scheduler;
    const schedHolds = (): number[] => [sched.unsettledJobs, sched.pending, sched.held.size];
    await waitFor(() => schedHolds().every((n) => n === 0), 3000);
    expect(schedHolds()).toEqual([0, 0, 0]);
    expect(await waitFor(() => stubOf('identity').channel.arena.stats.usedBytes === 0, 3000)).toBe(true);
  }, 20_000);

  it('outputs placed straight into the calling stub\'s arena are right, and every block comes back, also for calls timed out or cancelled', async () => {
    // 4 KiB tensors: past the inline size, so the callee's outputs go through the arenas.
    const x = Array.from({ length: 1024 }, (_, k) => k);
    const res = await fetch(`${server.url}/v2/models/bls_caller/infer`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ inputs: [{ name: 'X', datatype: 'FP32', shape: [x.length], data: x }], parameters: { target: 'identity', calls: 3 } }),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { outputs: { name: string; data: (number | string)[] }[] };
    expect(body.outputs.find((o) => o.name === 'ERR')!.data).toEqual(['', '', '']);
    const y = body.outputs.find((o) => o.name === 'Y')!.data;
    expect(y).toEqual([0, 1, 2].flatMap((i) => x.map((v) => v + i)));
    await Promise.all([
      ...Array.from({ length: 10 }, () => caller({ target: 'identity', calls: 3 }, undefined, x)),
      ...Array.from({ length: 5 }, () => caller({ target: 'identity', calls: 2, timeout_ms: 20, delay_ms: 200 }, undefined, x)),
      ...Array.from({ length: 5 }, () => caller({ target: 'identity', calls: 2, delay_ms: 300 }, AbortSignal.timeout(40), x)),
    ]);
    const host = stubOf('bls_caller');
    expect(await waitFor(() => host.relay.size === 0 && host.requests.inflight === 0, 5000)).toBe(true);
    expect(await waitFor(async () => (await host.debugStats()).arena.usedBytes === 0 && host.channel.arena.stats.usedBytes === 0, 3000)).toBe(true);
    expect(await waitFor(() => stubOf('identity').channel.arena.stats.usedBytes === 0, 3000)).toBe(true);
  }, 20_000);
});
