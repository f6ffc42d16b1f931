/**
 * Instance pools and stub logging through real stubs: instance_group count 4 gives four stub
 * processes that all serve under concurrency, and what a model logs (logger.* and console.*)
 * reaches the host's log in order, tagged with model and instance.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { childPids, http, shmLeftovers, startTestServer, waitFor, type TestServer } from './helpers/server.js';

const BASIC = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'models', 'stub', 'basic');
let server: TestServer;

beforeAll(async () => {
  server = await startTestServer({ modelRepository: BASIC, modelControlMode: 'explicit', loadModels: ['four', 'logs', 'kinds'] });
  expect([...server.failed]).toEqual([]);
}, 60_000);

afterAll(async () => {
  await server?.close();
  expect(await waitFor(() => childPids().length === 0, 3000)).toBe(true);
  expect(shmLeftovers()).toEqual([]);
});

describe('instance_group count 4', () => {
  it('starts four stub processes, and concurrent requests use all of them', async () => {
    const instances = server.core.repository.get('four').instanceList;
    expect(instances.map((i) => i.name)).toEqual(['four_0_0', 'four_0_1', 'four_0_2', 'four_0_3']);
    const pids = instances.map((i) => i.pid);
    expect(new Set(pids).size).toBe(4);
    expect(pids.every((p) => childPids().includes(p))).toBe(true);

    const rs = await Promise.all(Array.from({ length: 32 }, () => http(`${server.url}/v2/models/four/infer`, 'POST', {
      inputs: [{ name: 'DELAY_MS', datatype: 'INT32', shape: [1], data: [40] }],
    })));
    expect(rs.map((r) => r.status)).toEqual(rs.map(() => 200));
    const seen = new Map<string, number>();
    for (const r of rs) {
      const pid = r.json.outputs.find((o: { name: string }) => o.name === 'PID').data[0] as number;
      const name = r.json.outputs.find((o: { name: string }) => o.name === 'INSTANCE').data[0] as string;
      // The instance that answered is the one the host started under that name.
      expect(pid).toBe(instances.find((i) => i.name === name)!.pid);
      seen.set(name, (seen.get(name) ?? 0) + 1);
    }
    expect([...seen.keys()].sort()).toEqual(['four_0_0', 'four_0_1', 'four_0_2', 'four_0_3']);
  });

  it('the four ran in parallel: 16 requests of 150 ms take about 4 rounds, not 16', async () => {
    const started = performance.now();
    await Promise.all(Array.from({ length: 16 }, () => server.core.infer({
      id: '', modelName: 'four', parameters: {}, priority: 0, timeoutUs: 0,
      inputs: [{ name: 'DELAY_MS', datatype: 'INT32', shape: [1], data: Int32Array.of(150) }],
    })));
    const elapsed = performance.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(590);
    expect(elapsed).toBeLessThan(16 * 150 * 0.6);
  });
});

describe('instance kinds', () => {
  it('KIND_GPU (one instance per listed gpu), KIND_MODEL and KIND_CPU start, with kind and device id passed to initialize', async () => {
    const instances = server.core.repository.get('kinds').instanceList;
    expect(instances.map((i) => i.name)).toEqual(['kinds_0_0_0', 'kinds_0_1_0', 'on_model_0', 'kinds_2_0']);
    const rs = await Promise.all(Array.from({ length: 12 }, () => server.core.infer({
      id: '', modelName: 'kinds', parameters: {}, priority: 0, timeoutUs: 0,
      inputs: [{ name: 'DELAY_MS', datatype: 'INT32', shape: [1], data: Int32Array.of(60) }],
    })));
    const dec = new TextDecoder();
    const seen = new Map<string, [string, number]>();
    for (const r of rs) {
      const get = (name: string) => r.outputs.find((t) => t.name === name)!.data;
      seen.set(dec.decode((get('INSTANCE') as Uint8Array[])[0]), [dec.decode((get('KIND') as Uint8Array[])[0]), (get('DEVICE') as Int32Array)[0]!]);
    }
    expect(Object.fromEntries(seen)).toEqual({
      kinds_0_0_0: ['KIND_GPU', 0],
      kinds_0_1_0: ['KIND_GPU', 1],
      on_model_0: ['KIND_MODEL', 0],
      kinds_2_0: ['KIND_CPU', 0],
    });
  });
});

describe('logs from the model', () => {
  it('logger.* and console.* reach the host log in order, tagged with model and instance', async () => {
    const r = await http(`${server.url}/v2/models/logs/infer`, 'POST', { inputs: [{ name: 'N', datatype: 'INT32', shape: [1], data: [5] }] });
    expect(r.status).toBe(200);
    const expected: [string, string][] = [];
    for (let i = 0; i < 5; i++) expected.push(['info', `logger line ${i}`], ['info', `console line ${i}`]);
    expected.push(['warn', 'logger warning'], ['error', 'console error']);
    const wanted = new Set(expected.map(([, m]) => m));
    const fromModel = () => server.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.model === 'logs');
    expect(await waitFor(() => fromModel().filter((l) => wanted.has(l.msg as string)).length >= expected.length, 2000)).toBe(true);
    const lines = fromModel();
    expect(lines.find((l) => l.msg === 'logs: initialized')).toMatchObject({ level: 'info', instance: 'logs_0_0' });
    const got = lines.filter((l) => wanted.has(l.msg as string));
    expect(got.map((l) => [l.level, l.msg])).toEqual(expected);
    for (const l of got) expect(l.instance).toBe('logs_0_0');
  });
});
