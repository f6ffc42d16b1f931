/**
 * Model control of ensembles as Triton's (core src/model_repository_manager/model_repository_manager.cc):
 * loading an ensemble loads its composing models too, and unloading it with the parameter
 * `unload_dependents` (HTTP and gRPC) also unloads the composing models that were loaded only
 * along with it — not the ones loaded explicitly, nor ones another loaded ensemble still uses.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http, startRepositoryServer, type RepositoryServer } from './helpers/server.js';
import { grpcClient, type TestGrpcClient } from './helpers/grpc.js';
import { CANARY, IDENTITY_TS, expectCanary, identityConfig, stopAndCheckLeaks } from './helpers/compat.js';

const step = (model: string, from: string, to: string) =>
  `{ model_name: "${model}" model_version: -1 input_map { key: "IN" value: "${from}" } output_map { key: "OUT" value: "${to}" } }`;
const ensemble = (name: string, steps: string[]) => ({
  'config.pbtxt': `name: "${name}"
platform: "ensemble"
max_batch_size: 0
input [ { name: "IN" data_type: TYPE_FP32 dims: [ -1 ] } ]
output [ { name: "OUT" data_type: TYPE_FP32 dims: [ -1 ] } ]
ensemble_scheduling { step [ ${steps.join(', ')} ] }
`,
});
const identity = (name: string) => ({ 'config.pbtxt': identityConfig(name), '1/model.ts': IDENTITY_TS });

let server: RepositoryServer;
let grpc: TestGrpcClient;

beforeAll(async () => {
  server = await startRepositoryServer({
    canary: CANARY,
    step_a: identity('step_a'),
    step_b: identity('step_b'),
    shared: identity('shared'),
    broken: { 'config.pbtxt': identityConfig('broken', 'max_batch_size: -3'), '1/model.ts': IDENTITY_TS },
    ens1: ensemble('ens1', [step('step_a', 'IN', 'T'), step('step_b', 'T', 'OUT')]),
    ens2: ensemble('ens2', [step('shared', 'IN', 'OUT')]),
    ens3: ensemble('ens3', [step('shared', 'IN', 'OUT')]),
    nested: ensemble('nested', [step('ens1', 'IN', 'OUT')]),
    ens_bad: ensemble('ens_bad', [step('broken', 'IN', 'OUT')]),
  }, { grpcPort: 0, modelControlMode: 'explicit', loadModels: ['canary'] });
  grpc = grpcClient(server.ports.grpc!);
}, 120_000);

afterAll(async () => {
  await stopAndCheckLeaks(server, grpc);
}, 60_000);

const ready = async (): Promise<string[]> =>
  ((await http(`${server.url}/v2/repository/index`, 'POST', { ready: true })).json as { name: string }[]).map((e) => e.name).sort();
const load = (m: string) => http(`${server.url}/v2/repository/models/${m}/load`, 'POST', {});
const unload = (m: string, parameters?: Record<string, unknown>) =>
  http(`${server.url}/v2/repository/models/${m}/unload`, 'POST', parameters ? { parameters } : {});
const infer = (m: string) => http(`${server.url}/v2/models/${m}/infer`, 'POST', { inputs: [{ name: 'IN', shape: [2], datatype: 'FP32', data: [1, 2] }] });

describe('ensembles and their composing models', () => {
  it('HTTP: loading an ensemble loads its steps; a plain unload leaves them, unload_dependents takes them along', async () => {
    expect((await load('ens1')).status).toBe(200);
    expect(await ready()).toEqual(['canary', 'ens1', 'step_a', 'step_b']);
    expect((await infer('ens1')).json.outputs[0].data).toEqual([1, 2]);
    expect((await unload('ens1')).status).toBe(200);
    expect(await ready()).toEqual(['canary', 'step_a', 'step_b']);

    expect((await load('ens1')).status).toBe(200);
    expect((await unload('ens1', { unload_dependents: true })).status).toBe(200);
    expect(await ready()).toEqual(['canary']);
    await expectCanary(server, grpc);
  });

  it('a composing model loaded explicitly stays; so does one that another loaded ensemble uses (gRPC)', async () => {
    expect((await load('step_a')).status).toBe(200);
    await grpc.rpc('RepositoryModelLoad', { model_name: 'ens1' });
    expect(await ready()).toEqual(['canary', 'ens1', 'step_a', 'step_b']);
    await grpc.rpc('RepositoryModelUnload', { model_name: 'ens1', parameters: { unload_dependents: { bool_param: true } } });
    expect(await ready()).toEqual(['canary', 'step_a']);
    expect((await unload('step_a')).status).toBe(200);

    await grpc.rpc('RepositoryModelLoad', { model_name: 'ens2' });
    await grpc.rpc('RepositoryModelLoad', { model_name: 'ens3' });
    expect(await ready()).toEqual(['canary', 'ens2', 'ens3', 'shared']);
    await grpc.rpc('RepositoryModelUnload', { model_name: 'ens2', parameters: { unload_dependents: { bool_param: true } } });
    expect(await ready()).toEqual(['canary', 'ens3', 'shared']);
    expect((await infer('ens3')).status).toBe(200);
    await grpc.rpc('RepositoryModelUnload', { model_name: 'ens3', parameters: { unload_dependents: { bool_param: true } } });
    expect(await ready()).toEqual(['canary']);
    await expectCanary(server, grpc);
  });

  it('nested ensembles load and unload all the way down', async () => {
    expect((await load('nested')).status).toBe(200);
    expect(await ready()).toEqual(['canary', 'ens1', 'nested', 'step_a', 'step_b']);
    expect((await infer('nested')).json.outputs[0].data).toEqual([1, 2]);
    expect((await unload('nested', { unload_dependents: true })).status).toBe(200);
    expect(await ready()).toEqual(['canary']);
  });

  it("a composing model that fails to load fails the ensemble with Triton's words; bad parameter types are refused", async () => {
    const r = await load('ens_bad');
    expect(r.status).toBe(400);
    expect(r.json.error).toMatch(/^ensemble 'ens_bad' depends on 'broken' which has no loaded version\. Model 'broken' loading failed with error: .*max_batch_size/);
    expect(await ready()).toEqual(['canary']);
    const badHttp = await unload('canary', { unload_dependents: 'yes' });
    expect(badHttp.status).toBe(400);
    const badGrpc = await grpc.rpcError('RepositoryModelUnload', { model_name: 'canary', parameters: { unload_dependents: { string_param: 'yes' } } });
    expect(badGrpc.code).toBe(3);
    await expectCanary(server, grpc);
  });
});
