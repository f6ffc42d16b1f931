/**
 * The optional isReady() hook, as Triton's python backend `is_ready`: asked on model readiness
 * (HTTP /v2/models/{m}/ready, gRPC ModelReady) and on server readiness with strict readiness;
 * false, a throw, a non-boolean or no answer within 5 s make the model not ready for that check;
 * concurrent checks share one call; readiness only (requests are still served); a model without
 * the hook is answered without asking its stub.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { childPids, http, startRepositoryServer, type RepositoryServer } from './helpers/server.js';
import { grpcClient, type TestGrpcClient } from './helpers/grpc.js';

const flags = fs.mkdtempSync(path.join(os.tmpdir(), 'stubhost-ready-flags-'));
const flag = (name: string): string => path.join(flags, name);

/** Ready while its flag file says "ready"; "throw", "string" and "hang" do what they say. */
const HOOKED_TS = `
import fs from 'node:fs';
import { InferenceRequest, InferenceResponse, Tensor } from 'stubhost';

export default class Hooked {
  async isReady(): Promise<boolean> {
    const mode = fs.readFileSync(${JSON.stringify(flag('hooked'))}, 'utf8').trim();
    if (mode === 'throw') throw new Error('the database is gone');
    if (mode === 'string') return 'yes' as unknown as boolean;
    if (mode === 'hang') return new Promise<boolean>(() => {});
    return mode === 'ready';
  }
  execute(requests: InferenceRequest[]) {
    return requests.map(() => new InferenceResponse({ outputs: [new Tensor('OUT', Float32Array.of(0))] }));
  }
}`;

/** A synchronous hook. */
const SYNC_TS = `
import fs from 'node:fs';
import { InferenceRequest, InferenceResponse, Tensor } from 'stubhost';
export default class Sync {
  isReady() { return fs.existsSync(${JSON.stringify(flag('sync'))}); }
  execute(requests: InferenceRequest[]) { return requests.map(() => new InferenceResponse({ outputs: [new Tensor('OUT', Float32Array.of(0))] })); }
}`;

/** isReady takes a while; OUT = the calls so far. */
const COUNTED_TS = `
import { InferenceRequest, InferenceResponse, Tensor } from 'stubhost';
export default class Counted {
  private calls = 0;
  async isReady() {
    this.calls++;
    await new Promise((r) => setTimeout(r, 200));
    return true;
  }
  execute(requests: InferenceRequest[]) { return requests.map(() => new InferenceResponse({ outputs: [new Tensor('OUT', Float32Array.of(this.calls))] })); }
}`;

const PLAIN_TS = `
import { InferenceRequest, InferenceResponse, Tensor } from 'stubhost';
export default class Plain {
  execute(requests: InferenceRequest[]) { return requests.map(() => new InferenceResponse({ outputs: [new Tensor('OUT', Float32Array.of(0))] })); }
}`;

const config = (name: string, count = 1): string => `name: "${name}"
backend: "typescript"
max_batch_size: 0
input [ { name: "IN" data_type: TYPE_FP32 dims: [ 1 ] } ]
output [ { name: "OUT" data_type: TYPE_FP32 dims: [ 1 ] } ]
instance_group [ { count: ${count} kind: KIND_CPU } ]
`;

let server: RepositoryServer;
let grpc: TestGrpcClient;

beforeAll(async () => {
  fs.writeFileSync(flag('hooked'), 'ready');
  fs.writeFileSync(flag('sync'), '');
  server = await startRepositoryServer({
    hooked: { 'config.pbtxt': config('hooked', 2), '1/model.ts': HOOKED_TS },
    sync: { 'config.pbtxt': config('sync'), '1/model.ts': SYNC_TS },
    plain: { 'config.pbtxt': config('plain'), '1/model.ts': PLAIN_TS },
    counted: { 'config.pbtxt': config('counted'), '1/model.ts': COUNTED_TS },
  }, { grpcPort: 0 });
  grpc = grpcClient(server.ports.grpc!);
}, 120_000);

afterAll(async () => {
  grpc?.close();
  const left = await server?.stop(3000);
  fs.rmSync(flags, { recursive: true, force: true });
  expect(left).toEqual([]);
  expect(childPids()).toEqual([]);
});

const modelReady = async (name: string): Promise<number> => (await http(`${server.url}/v2/models/${name}/ready`)).status;
const serverReady = async (): Promise<number> => (await http(`${server.url}/v2/health/ready`)).status;
const infer = (name: string) => http(`${server.url}/v2/models/${name}/infer`, 'POST', { inputs: [{ name: 'IN', datatype: 'FP32', shape: [1], data: [1] }] });
const setMode = (mode: string): void => fs.writeFileSync(flag('hooked'), mode);

describe('isReady()', () => {
  it('true: the model and the server are ready (HTTP and gRPC)', async () => {
    setMode('ready');
    expect(await modelReady('hooked')).toBe(200);
    expect(await serverReady()).toBe(200);
    expect((await grpc.rpc('ModelReady', { name: 'hooked' })).ready).toBe(true);
    expect((await grpc.rpc('ServerReady', {})).ready).toBe(true);
  });

  it('false: the model is not ready, nor the server (strict readiness); requests are still served; true again: ready again', async () => {
    setMode('no');
    expect(await modelReady('hooked')).toBe(400);
    expect((await grpc.rpc('ModelReady', { name: 'hooked' })).ready).toBe(false);
    expect(await serverReady()).toBe(400);
    expect((await grpc.rpc('ServerReady', {})).ready).toBe(false);
    expect((await infer('hooked')).status).toBe(200);
    // Other models are unaffected.
    expect(await modelReady('plain')).toBe(200);
    setMode('ready');
    expect(await modelReady('hooked')).toBe(200);
    expect(await serverReady()).toBe(200);
  });

  it('a synchronous hook works the same', async () => {
    expect(await modelReady('sync')).toBe(200);
    fs.rmSync(flag('sync'));
    expect(await modelReady('sync')).toBe(400);
    fs.writeFileSync(flag('sync'), '');
    expect(await modelReady('sync')).toBe(200);
  });

  it('a throw, or a value that is not a boolean, is not ready (the reason goes to the verbose log)', async () => {
    setMode('throw');
    expect(await modelReady('hooked')).toBe(400);
    setMode('string');
    expect(await modelReady('hooked')).toBe(400);
    setMode('ready');
    expect(await modelReady('hooked')).toBe(200);
  });

  it('no answer within 5 s: not ready for that check; the stub keeps serving', async () => {
    setMode('hang');
    const started = Date.now();
    expect(await modelReady('hooked')).toBe(400);
    expect(Date.now() - started).toBeLessThan(30_000);
    expect((await infer('hooked')).status).toBe(200);
    setMode('ready');
    // The hung call never answers; the next check makes a new one.
    expect(await modelReady('hooked')).toBe(200);
  }, 60_000);

  it('checks that arrive while a call runs share it: one isReady() call', async () => {
    const calls = async (): Promise<number> => (await infer('counted')).json.outputs[0].data[0];
    const inst = server.core.repository.get('counted').instanceList[0]!;
    const before = await calls();
    const answers = await Promise.all(Array.from({ length: 5 }, () => inst.checkReady()));
    expect(answers).toEqual([true, true, true, true, true]);
    expect(await calls()).toBe(before + 1);
    // Over HTTP too: checks that meet a running call get its answer.
    expect((await Promise.all(Array.from({ length: 5 }, () => modelReady('counted')))).every((s) => s === 200)).toBe(true);
    expect(await calls()).toBeLessThanOrEqual(before + 6);
  });

  it('a model without the hook is answered without a call to its stub', async () => {
    const inst = server.core.repository.get('plain').instanceList[0]!;
    expect(inst.hasReadyHook).toBe(false);
    expect(server.core.modelReady('plain')).toBe(true); // a boolean, not a Promise
    expect(server.core.repository.get('hooked').instanceList[0]!.hasReadyHook).toBe(true);
  });
});
