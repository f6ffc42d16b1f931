/**
 * Thread isolation (model parameter `isolation: "thread"`): the stub runs in a worker thread of
 * the server over the same region, queues and arenas. A thread model answers over HTTP and makes
 * BLS calls; a throw fails only its request; an uncaught exception, an unhandled rejection and
 * process.exit() in model code end the thread only (it restarts, and the server and a
 * process-isolated canary keep serving); a signal to the server's own pid is refused; a long
 * synchronous execute is not a death (the health thread runs apart); a hung execute is
 * terminated by execute_timeout_seconds and the worker replaced; the memory cap is the thread's
 * V8 heap; console output reaches the log tagged; unload leaves no /dev/shm file and no thread.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { childPids, http, shmLeftovers, startRepositoryServer, waitFor, type RepositoryServer } from './helpers/server.js';
import type { ModelInstance } from '../src/instance/model-instance.js';

const THREAD = 'parameters { key: "isolation" value: { string_value: "thread" } }';

const io = (inputs: string[], outputs: string[]) =>
  `input [${inputs.map((n) => `{ name: "${n}" data_type: TYPE_INT32 dims: [ 1 ] }`).join(', ')}]\n` +
  `output [${outputs.map((n) => `{ name: "${n}" data_type: TYPE_INT32 dims: [ 1 ] }`).join(', ')}]\n`;

/**
 * MODE 0 answers Y = X, MAIN (1 on the main thread) and the thread id; the others misbehave:
 * 1 throws, 2 an uncaught exception from a timer, 3 an unhandled rejection, 4 process.exit(7),
 * 5 process.kill(process.pid, 'SIGTERM'), 6 a synchronous busy loop of X ms, 7 a BLS call to
 * `canary`, 8 console.log + a raw stdout write.
 */
const THREADY = `
import { isMainThread, threadId } from 'node:worker_threads';
import { InferenceRequest, InferenceResponse, Tensor } from 'stubhost';

export default class Thready {
  async execute(requests: InferenceRequest[]): Promise<InferenceResponse[]> {
    const out: InferenceResponse[] = [];
    for (const r of requests) {
      const mode = (r.input('MODE')!.data as Int32Array)[0]!;
      let x = (r.input('X')!.data as Int32Array)[0]!;
      if (mode === 1) throw new Error('thrown by execute');
      if (mode === 2) setTimeout(() => { throw new Error('boom from a timer'); }, 1);
      if (mode === 3) void Promise.reject(new Error('nobody handles this rejection'));
      if (mode === 4) setTimeout(() => process.exit(7), 1);
      if (mode === 2 || mode === 3 || mode === 4) return new Promise(() => {});
      if (mode === 5) process.kill(process.pid, 'SIGTERM');
      if (mode === 6) { const end = Date.now() + x; while (Date.now() < end) {} }
      if (mode === 7) {
        const res = await new InferenceRequest({ modelName: 'canary', inputs: [new Tensor('X', Int32Array.of(x))] }).exec();
        if (res.error) throw res.error;
        x = (res.output('Y')!.data as Int32Array)[0]!;
      }
      if (mode === 8) { console.log('THREAD-LOG', x); process.stdout.write('THREAD-STDOUT ' + x + '\\n'); }
      out.push(new InferenceResponse({ outputs: [
        new Tensor('Y', Int32Array.of(x)), new Tensor('MAIN', Int32Array.of(isMainThread ? 1 : 0)), new Tensor('TID', Int32Array.of(threadId)),
      ] }));
    }
    return out;
  }
}
`;

const THREADY_CONFIG = (name: string) => `name: "${name}"\nbackend: "typescript"\nmax_batch_size: 0\n${io(['MODE', 'X'], ['Y', 'MAIN', 'TID'])}${THREAD}\n`;

const CANARY = `
import { InferenceRequest, InferenceResponse, Tensor } from 'stubhost';
export default class Canary {
  execute(requests: InferenceRequest[]) {
    return requests.map((r) => new InferenceResponse({ outputs: [new Tensor('Y', (r.input('X')!.data as Int32Array).map((v) => v + 1))] }));
  }
}
`;

const STUCK = `
import { InferenceRequest, InferenceResponse, Tensor } from 'stubhost';
export default class Stuck {
  execute(requests: InferenceRequest[]) {
    if ((requests[0]!.input('X')!.data as Int32Array)[0] === 1) for (;;) {}
    return requests.map(() => new InferenceResponse({ outputs: [new Tensor('Y', Int32Array.of(0))] }));
  }
}
`;

/** X = 1: blocks in native code (execSync) for 3 s, where worker.terminate() cannot reach it. */
const BLOCKED = `
import { execSync } from 'node:child_process';
import { InferenceRequest, InferenceResponse, Tensor } from 'stubhost';
export default class Blocked {
  execute(requests: InferenceRequest[]) {
    if ((requests[0]!.input('X')!.data as Int32Array)[0] === 1) execSync('sleep 3');
    return requests.map(() => new InferenceResponse({ outputs: [new Tensor('Y', Int32Array.of(0))] }));
  }
}
`;

const HOG = `
import { InferenceRequest, InferenceResponse, Tensor } from 'stubhost';
export default class Hog {
  execute(requests: InferenceRequest[]) {
    if ((requests[0]!.input('X')!.data as Int32Array)[0] === 1) {
      const hog: number[][] = [];
      for (;;) hog.push(new Array(1 << 16).fill(hog.length + 0.5));
    }
    return requests.map(() => new InferenceResponse({ outputs: [new Tensor('Y', Int32Array.of(0))] }));
  }
}
`;

const simple = (name: string, extra = '') => `name: "${name}"\nbackend: "typescript"\nmax_batch_size: 0\n${io(['X'], ['Y'])}${extra}\n`;

const MODELS: Record<string, Record<string, string | Uint8Array>> = {
  onnx_thread: {
    'config.pbtxt': `name: "onnx_thread"\nbackend: "onnxruntime"\n${THREAD}\n`,
    '1/model.onnx': fs.readFileSync(path.resolve(import.meta.dirname, 'fixtures/onnx/identity_fp32.onnx')),
  },
  thready: { 'config.pbtxt': THREADY_CONFIG('thready'), '1/model.ts': THREADY },
  // Loaded and unloaded by the cleanup test only.
  thready_late: { 'config.pbtxt': THREADY_CONFIG('thready_late'), '1/model.ts': THREADY },
  canary: { 'config.pbtxt': simple('canary'), '1/model.ts': CANARY },
  stuck: { 'config.pbtxt': simple('stuck', `${THREAD}\nparameters { key: "execute_timeout_seconds" value: { string_value: "1" } }`), '1/model.ts': STUCK },
  blocked: { 'config.pbtxt': simple('blocked', `${THREAD}\nparameters { key: "execute_timeout_seconds" value: { string_value: "1" } }`), '1/model.ts': BLOCKED },
  hog: { 'config.pbtxt': simple('hog', `${THREAD}\nparameters { key: "memory_limit_bytes" value: { string_value: "67108864" } }`), '1/model.ts': HOG },
  bad_isolation: { 'config.pbtxt': simple('bad_isolation', 'parameters { key: "isolation" value: { string_value: "threads" } }'), '1/model.ts': CANARY },
  thread_debug: { 'config.pbtxt': simple('thread_debug', `${THREAD}\nparameters { key: "debug_inspect_port" value: { string_value: "0" } }`), '1/model.ts': CANARY },
};

let server: RepositoryServer;

const int32 = (name: string, v: number) => ({ name, datatype: 'INT32', shape: [1], data: [v] });
const infer = (model: string, inputs: Record<string, number>) =>
  http(`${server.url}/v2/models/${model}/infer`, 'POST', { inputs: Object.entries(inputs).map(([n, v]) => int32(n, v)) });
const out = (r: { json: any }, name: string): number => r.json.outputs.find((o: { name: string }) => o.name === name).data[0];
const thready = (mode: number, x = 0) => infer('thready', { MODE: mode, X: x });
const instanceOf = (model: string): ModelInstance => server.core.repository.get(model).instanceList[0]!;
const threadCount = () => fs.readdirSync('/proc/self/task').length;
const logs = (): any[] => server.logs.map((l) => JSON.parse(l));

async function expectCanary(): Promise<void> {
  const r = await infer('canary', { X: 41 });
  expect([r.status, r.status === 200 ? out(r, 'Y') : r.text]).toEqual([200, 42]);
}

beforeAll(async () => {
  server = await startRepositoryServer(MODELS, {
    modelControlMode: 'explicit',
    loadModels: ['onnx_thread', 'thready', 'canary', 'stuck', 'blocked', 'hog', 'bad_isolation', 'thread_debug'],
  });
}, 60_000);

afterAll(async () => {
  if (!server) return;
  expect(await server.stop(2000)).toEqual([]);
  expect(await waitFor(() => childPids().length === 0, 5000)).toBe(true);
}, 30_000);

describe('a thread-isolated model', () => {
  it('answers over HTTP from a worker thread of the server, in the server process', async () => {
    const r = await thready(0, 5);
    expect(r.status, r.text).toBe(200);
    expect([out(r, 'Y'), out(r, 'MAIN')]).toEqual([5, 0]);
    const inst = instanceOf('thready');
    expect(inst.pid).toBe(process.pid);
    expect(inst.where).toBe(`thread ${out(r, 'TID')}`);
    // No stub process for it: only the process-isolated canary has one. (The other children
    // are tsx's esbuild services, which a thread stub loading a model.ts starts too.)
    const stubs = childPids().filter((pid) => fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('dist/stub/main.js'));
    expect(stubs).toEqual([instanceOf('canary').pid]);
    const others = childPids().filter((pid) => !stubs.includes(pid)).map((pid) => fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim());
    expect(new Set(others)).toEqual(new Set(['esbuild']));
  });

  it('an ONNX model without code serves from a thread too (onnxruntime-node in a worker)', async () => {
    const r = await http(`${server.url}/v2/models/onnx_thread/infer`, 'POST', { inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] }] });
    expect([r.status, r.json.outputs?.[0]?.data]).toEqual([200, [1, 2, 3, 4]]);
    expect(instanceOf('onnx_thread').where).toMatch(/^thread \d+$/);
  });

  it('makes BLS calls (to a process-isolated model)', async () => {
    const r = await thready(7, 9);
    expect([r.status, r.status === 200 ? out(r, 'Y') : r.text]).toEqual([200, 10]);
  });

  it('a throw in execute fails only that request', async () => {
    const [bad, good] = await Promise.all([thready(1), thready(0, 3)]);
    expect(bad.status).toBe(500);
    expect(bad.json.error).toMatch(/^model 'thready' instance 'thready_0_0': execute threw: thrown by execute/);
    // Source-mapped, relative to the model folder, as from a process stub.
    expect(bad.json.error).toMatch(/at Thready\.execute \(1\/model\.ts:\d+:\d+\)/);
    expect([good.status, out(good, 'Y')]).toEqual([200, 3]);
    expect(instanceOf('thready').restarts).toBe(0);
  });

  it('console output reaches the log tagged with model and instance', async () => {
    const r = await thready(8, 77);
    expect(r.status).toBe(200);
    const tagged = (text: string) => logs().find((l) => typeof l.msg === 'string' && l.msg.includes(text));
    expect(await waitFor(() => tagged('THREAD-LOG 77') !== undefined && tagged('THREAD-STDOUT 77') !== undefined, 5000)).toBe(true);
    for (const text of ['THREAD-LOG 77', 'THREAD-STDOUT 77']) expect(tagged(text)).toMatchObject({ level: 'info', model: 'thready', instance: 'thready_0_0' });
  });

  it('a signal to the server\'s own pid is refused: the request fails, nothing else happens', async () => {
    const r = await thready(5);
    expect(r.status).toBe(500);
    expect(r.json.error).toMatch(/process\.kill\(\d+, "SIGTERM"\) is refused: this model runs in a thread of the server/);
    expect(instanceOf('thready').restarts).toBe(0);
    await expectCanary();
  });
});

describe('faults end the thread only', () => {
  it.each([
    [2, /uncaught exception: Error: boom from a timer \(exited with code 1\)$/],
    [3, /unhandled promise rejection: Error: nobody handles this rejection \(exited with code 1\)$/],
    [4, /model code called process\.exit\(7\) \(exited with code 7\)$/],
  ])('mode %i: the request fails naming the cause; the thread restarts; the canary serves', async (mode, cause) => {
    const inst = instanceOf('thready');
    const where = inst.where;
    const restarts = inst.restarts;
    const r = await thready(mode);
    expect(r.status).toBe(500);
    expect(r.json.error).toContain(`model 'thready' version 1 instance 'thready_0_0' (${where}): `);
    expect(r.json.error).toMatch(cause);
    await expectCanary();
    expect(await waitFor(() => inst.state === 'ready' && inst.restarts === restarts + 1, 10_000)).toBe(true);
    expect(inst.where).not.toBe(where);
    const after = await thready(0, 11);
    expect([after.status, out(after, 'Y'), `thread ${out(after, 'TID')}`]).toEqual([200, 11, inst.where]);
  }, 20_000);
});

describe('hangs', () => {
  it('a 2.5-second synchronous execute is not a death: the health thread beats apart from it', async () => {
    const inst = instanceOf('thready');
    const restarts = inst.restarts;
    const r = await thready(6, 2500);
    expect([r.status, out(r, 'Y')]).toEqual([200, 2500]);
    expect([inst.restarts, inst.isHealthy()]).toEqual([restarts, true]);
  }, 15_000);

  it('execute_timeout_seconds terminates a spinning thread and the worker is replaced', async () => {
    const inst = instanceOf('stuck');
    const where = inst.where;
    const r = await infer('stuck', { X: 1 });
    expect(r.status).toBe(500);
    expect(r.json.error).toBe(`model 'stuck' version 1 instance 'stuck_0_0' (${where}): execute ran longer than the execute timeout of 1000 ms (terminated)`);
    await expectCanary();
    expect(await waitFor(() => inst.state === 'ready' && inst.restarts === 1, 10_000)).toBe(true);
    expect(inst.where).not.toBe(where);
    const after = await infer('stuck', { X: 0 });
    expect([after.status, out(after, 'Y')]).toEqual([200, 0]);
  }, 20_000);

  it('a thread blocked in native code, which terminate() cannot stop, is given up on after 1 s: its requests fail, the instance restarts', async () => {
    const inst = instanceOf('blocked');
    const where = inst.where;
    const threadsBefore = threadCount();
    const started = performance.now();
    const r = await infer('blocked', { X: 1 });
    expect(r.status).toBe(500);
    expect(r.json.error).toBe(`model 'blocked' version 1 instance 'blocked_0_0' (${where}): execute ran longer than the execute timeout of 1000 ms (terminated)`);
    // Answered before the native call returned (3 s): the execute timeout plus the terminate grace.
    expect(performance.now() - started).toBeLessThan(2900);
    expect(logs().find((l) => l.model === 'blocked' && l.level === 'warn' && /did not stop within 1000 ms of worker\.terminate\(\)/.test(l.msg))?.msg).toContain(where);
    await expectCanary();
    expect(await waitFor(() => inst.state === 'ready' && inst.restarts === 1, 10_000)).toBe(true);
    const after = await infer('blocked', { X: 0 });
    expect([after.status, out(after, 'Y')]).toEqual([200, 0]);
    // Once execSync returns, the old thread ends: nothing of it stays.
    expect(await waitFor(() => threadCount() <= threadsBefore, 10_000)).toBe(true);
  }, 20_000);
});

describe('memory', () => {
  it('memory_limit_bytes is the thread\'s V8 heap limit: a heap past it ends the thread, naming the cap', async () => {
    const inst = instanceOf('hog');
    const r = await infer('hog', { X: 1 });
    expect(r.status).toBe(500);
    expect(r.json.error).toMatch(/^model 'hog' version 1 instance 'hog_0_0' \(thread \d+\): exceeded its memory limit of 67108864 bytes \(the V8 heap limit of a thread stub: .*\) \(exited with code 1\)$/);
    await expectCanary();
    expect(await waitFor(() => inst.state === 'ready' && inst.restarts === 1, 10_000)).toBe(true);
    const after = await infer('hog', { X: 0 });
    expect(after.status).toBe(200);
  }, 20_000);
});

describe('config', () => {
  it('an isolation that is neither process nor thread fails the load naming the file, the field and the values', () => {
    expect(server.failed.get('bad_isolation')).toMatch(
      /bad_isolation\/config\.pbtxt: parameters\.isolation\.string_value: "threads" is not an isolation; use "process" \(the default: a child process per instance\) or "thread"/,
    );
  });

  it('thread isolation with debug_inspect_port fails the load', () => {
    expect(server.failed.get('thread_debug')).toMatch(/thread_debug\/config\.pbtxt: parameters\.isolation\.string_value: "thread" cannot be combined with debug_inspect_port/);
  });
});

describe('unload', () => {
  it('leaves no /dev/shm file and no thread behind', async () => {
    const shmBefore = shmLeftovers().length;
    const threadsBefore = threadCount();
    const childrenBefore = childPids().length;
    await server.core.repository.loadModel('thready_late');
    const r = await infer('thready_late', { MODE: 7, X: 1 });
    expect([r.status, out(r, 'Y')]).toEqual([200, 2]);
    expect(threadCount()).toBeGreaterThan(threadsBefore);
    await server.core.repository.unloadModel('thready_late');
    // Its thread, its health thread, its queue watchers, tsx's hooks thread and esbuild service.
    expect(await waitFor(() => threadCount() <= threadsBefore && shmLeftovers().length === shmBefore && childPids().length === childrenBefore, 5000)).toBe(true);
    await expectCanary();
  }, 20_000);
});
