/**
 * loadModel / unloadModel / isModelReady from model code, as Triton's python backend
 * pb_utils.load_model / unload_model / is_model_ready, through real stubs and the host:
 * - explicit mode: load from the repository, with a config override, with files (an upload,
 *   whose private folder goes at unload), unload (with its dependents), readiness of any model;
 * - failures reach model code as ModelErrors with the repository API's words: an unknown model,
 *   a model loading or unloading itself, and — outside explicit mode — Triton's refusal;
 * - not during autoCompleteConfig (as Triton).
 * Each suite checks that a canary model still answers and that nothing is left behind.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { childPids, http, startRepositoryServer, type RepositoryServer } from './helpers/server.js';
import { uploadLeftovers } from '../src/repository/upload.js';

const REFUSED = 'explicit model load / unload is not allowed if polling is enabled';

const IDENTITY_TS = `
import { InferenceRequest, InferenceResponse, Tensor } from 'stubhost';
export default class Identity {
  execute(requests: InferenceRequest[]) {
    return requests.map((r) => new InferenceResponse({ outputs: [new Tensor('OUT', (r.input('IN')!.data as Float32Array).slice(), r.input('IN')!.shape)] }));
  }
}`;
const IDENTITY_CONFIG = (name: string): string => `name: "${name}"
backend: "typescript"
max_batch_size: 0
input [ { name: "IN" data_type: TYPE_FP32 dims: [ -1 ] } ]
output [ { name: "OUT" data_type: TYPE_FP32 dims: [ -1 ] } ]
`;
const identityOverride = (name: string, extra: Record<string, unknown> = {}): string => JSON.stringify({
  name, backend: 'typescript', max_batch_size: 0,
  input: [{ name: 'IN', data_type: 'TYPE_FP32', dims: [-1] }],
  output: [{ name: 'OUT', data_type: 'TYPE_FP32', dims: [-1] }],
  ...extra,
});

/** CMD is JSON {op, name, ...}; TEXT = JSON of the result or {error, code}. */
const MANAGER_TS = `
import { InferenceRequest, InferenceResponse, Tensor, loadModel, unloadModel, isModelReady } from 'stubhost';

const IDENTITY = ${JSON.stringify(IDENTITY_TS)};

export default class Manager {
  async execute(requests: InferenceRequest[]) {
    return Promise.all(requests.map(async (r) => {
      const cmd = JSON.parse(r.input('CMD')!.strings()[0]!);
      let out: unknown;
      try {
        if (cmd.op === 'ready') out = { ready: await isModelReady(cmd.name, cmd.version) };
        else if (cmd.op === 'load') out = await loadModel(cmd.name, { config: cmd.config }) ?? 'loaded';
        else if (cmd.op === 'upload') out = await loadModel(cmd.name, { config: cmd.config, files: { 'file:1/model.ts': new TextEncoder().encode(IDENTITY) } }) ?? 'loaded';
        else if (cmd.op === 'unload') out = await unloadModel(cmd.name, { unloadDependents: cmd.dependents }) ?? 'unloaded';
      } catch (err) {
        out = { error: (err as Error).message, code: (err as { code?: string }).code };
      }
      return new InferenceResponse({ outputs: [new Tensor('TEXT', [JSON.stringify(out)])] });
    }));
  }
}`;
const MANAGER_CONFIG = `name: "manager"
backend: "typescript"
max_batch_size: 0
input [ { name: "CMD" data_type: TYPE_STRING dims: [ 1 ] } ]
output [ { name: "TEXT" data_type: TYPE_STRING dims: [ 1 ] } ]
`;

/** Tries to load a model from autoCompleteConfig: refused, as Triton does. */
const EARLY_TS = `
import { InferenceRequest, InferenceResponse, Tensor, loadModel } from 'stubhost';
import type { AutoCompleteModelConfig } from 'stubhost';
export default class Early {
  static async autoCompleteConfig(config: AutoCompleteModelConfig) {
    await loadModel('target');
    return config;
  }
  execute(requests: InferenceRequest[]) { return requests.map(() => new InferenceResponse({ outputs: [] })); }
}`;

const ENSEMBLE_CONFIG = `name: "pipeline"
platform: "ensemble"
max_batch_size: 0
input [ { name: "IN" data_type: TYPE_FP32 dims: [ -1 ] } ]
output [ { name: "OUT" data_type: TYPE_FP32 dims: [ -1 ] } ]
ensemble_scheduling { step [ { model_name: "target" model_version: -1 input_map { key: "IN" value: "IN" } output_map { key: "OUT" value: "OUT" } } ] }
`;

const MODELS = {
  manager: { 'config.pbtxt': MANAGER_CONFIG, '1/model.ts': MANAGER_TS },
  target: { 'config.pbtxt': IDENTITY_CONFIG('target'), '1/model.ts': IDENTITY_TS },
  canary: { 'config.pbtxt': IDENTITY_CONFIG('canary'), '1/model.ts': IDENTITY_TS },
  pipeline: { 'config.pbtxt': ENSEMBLE_CONFIG },
  early: { 'config.pbtxt': IDENTITY_CONFIG('early'), '1/model.ts': EARLY_TS },
};

const command = async (server: RepositoryServer, cmd: Record<string, unknown>): Promise<any> => {
  const r = await http(`${server.url}/v2/models/manager/infer`, 'POST', { inputs: [{ name: 'CMD', datatype: 'BYTES', shape: [1], data: [JSON.stringify(cmd)] }] });
  expect(r.status, r.text).toBe(200);
  return JSON.parse(r.json.outputs[0].data[0]);
};
const inferStatus = async (server: RepositoryServer, model: string): Promise<number> =>
  (await http(`${server.url}/v2/models/${model}/infer`, 'POST', { inputs: [{ name: 'IN', datatype: 'FP32', shape: [2], data: [1, 2] }] })).status;

describe('explicit mode', () => {
  let server: RepositoryServer;
  beforeAll(async () => {
    server = await startRepositoryServer(MODELS, { modelControlMode: 'explicit', loadModels: ['manager', 'canary'] });
  }, 120_000);
  afterAll(async () => {
    const left = await server?.stop(3000);
    expect(left).toEqual([]);
    expect(childPids()).toEqual([]);
    expect(uploadLeftovers()).toEqual([]);
  });

  it('isModelReady, loadModel, unloadModel: the repository changes as model code asks', async () => {
    expect(await command(server, { op: 'ready', name: 'target' })).toEqual({ ready: false });
    expect(await command(server, { op: 'load', name: 'target' })).toBe('loaded');
    expect(await command(server, { op: 'ready', name: 'target' })).toEqual({ ready: true });
    expect(await command(server, { op: 'ready', name: 'target', version: '1' })).toEqual({ ready: true });
    expect(await command(server, { op: 'ready', name: 'target', version: '7' })).toEqual({ ready: false });
    expect(await inferStatus(server, 'target')).toBe(200);
    expect(await command(server, { op: 'unload', name: 'target' })).toBe('unloaded');
    expect(await command(server, { op: 'ready', name: 'target' })).toEqual({ ready: false });
    expect(await inferStatus(server, 'target')).toBe(404);
    expect(await inferStatus(server, 'canary')).toBe(200);
  });

  it('a config override is the config the model loads with', async () => {
    expect(await command(server, { op: 'load', name: 'target', config: identityOverride('target', { parameters: { loaded_by: { string_value: 'manager' } } }) })).toBe('loaded');
    const c = await http(`${server.url}/v2/models/target/config`);
    expect(c.json.parameters).toEqual({ loaded_by: { string_value: 'manager' } });
    expect(await command(server, { op: 'unload', name: 'target' })).toBe('unloaded');
  });

  it('files: a model given inline loads from a private folder, removed at unload', async () => {
    expect(await command(server, { op: 'upload', name: 'inline', config: identityOverride('inline') })).toBe('loaded');
    expect(await inferStatus(server, 'inline')).toBe(200);
    expect(uploadLeftovers().length).toBe(1);
    expect(await command(server, { op: 'unload', name: 'inline' })).toBe('unloaded');
    expect(uploadLeftovers()).toEqual([]);
  });

  it('unloadDependents: an ensemble\'s composing models loaded along with it go with it (Triton\'s unload_dependents)', async () => {
    expect(await command(server, { op: 'unload', name: 'target' })).toBe('unloaded');
    // Loading the ensemble loads its composing model along with it, as Triton's model control does.
    expect(await command(server, { op: 'load', name: 'pipeline' })).toBe('loaded');
    expect(await inferStatus(server, 'pipeline')).toBe(200);
    expect(await command(server, { op: 'unload', name: 'pipeline', dependents: true })).toBe('unloaded');
    expect(await command(server, { op: 'ready', name: 'pipeline' })).toEqual({ ready: false });
    expect(await command(server, { op: 'ready', name: 'target' })).toEqual({ ready: false });
  });

  it('failures are ModelErrors with the repository API\'s words', async () => {
    expect(await command(server, { op: 'load', name: 'nowhere' })).toEqual({ error: "failed to load 'nowhere', failed to poll from model repository", code: 'INTERNAL' });
    expect(await command(server, { op: 'load', name: 'manager' })).toEqual({
      error: "model 'manager' cannot load itself from its own code (the load would wait for the call that makes it); use the repository API (/v2/repository/models/manager/load)",
      code: 'INVALID_ARG',
    });
    expect(await command(server, { op: 'ready', name: '' })).toEqual({ error: "isModelReady: give the model's name", code: 'INVALID_ARG' });
    expect(await inferStatus(server, 'canary')).toBe(200);
  });

  it('not during autoCompleteConfig, as Triton', async () => {
    const r = await http(`${server.url}/v2/repository/models/early/load`, 'POST', {});
    expect(r.status).toBe(400);
    expect(r.json.error).toContain("loadModel('target') is not supported during autoCompleteConfig (as in Triton's python backend)");
  });
});

describe('outside explicit mode', () => {
  let server: RepositoryServer;
  beforeAll(async () => {
    server = await startRepositoryServer({ manager: MODELS.manager, target: MODELS.target, canary: MODELS.canary });
  }, 120_000);
  afterAll(async () => {
    const left = await server?.stop(3000);
    expect(left).toEqual([]);
    expect(childPids()).toEqual([]);
  });

  it('load and unload are refused with Triton\'s message; isModelReady works', async () => {
    expect(await command(server, { op: 'unload', name: 'target' })).toEqual({ error: REFUSED, code: 'UNAVAILABLE' });
    expect(await command(server, { op: 'load', name: 'target' })).toEqual({ error: REFUSED, code: 'UNAVAILABLE' });
    // The same words for a model naming itself: the mode is checked first.
    expect(await command(server, { op: 'load', name: 'manager' })).toEqual({ error: REFUSED, code: 'UNAVAILABLE' });
    expect(await command(server, { op: 'ready', name: 'target' })).toEqual({ ready: true });
    expect(await inferStatus(server, 'target')).toBe(200);
    expect(await inferStatus(server, 'canary')).toBe(200);
  });
});
