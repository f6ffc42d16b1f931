/**
 * Acceptance over real HTTP against a real server with real stubs: every KServe v2 endpoint, JSON
 * and binary tensors giving the same results, bad requests answered with 4xx and a message while
 * the server stays healthy, config errors, model-name checks and metrics. Uses copies of the
 * example models in models/ (add_sub, identity_fp32, string_upper) plus a broken config.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http, shmLeftovers, startTestServer, tempRepository, type TestServer } from './helpers/server.js';
import { binaryBody, bytesOf, parseInferReply, request } from './fixtures/http/client.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const MAX_BODY = 1024 * 1024;

let repo: { root: string; cleanup(): void };
let server: TestServer;
let port: number;

function copyModel(from: string, name = path.basename(from)): void {
  fs.cpSync(from, path.join(repo.root, name), { recursive: true });
}

beforeAll(async () => {
  repo = tempRepository({});
  for (const m of ['add_sub', 'identity_fp32', 'string_upper']) copyModel(path.join(ROOT, 'models', m));
  copyModel(path.join(ROOT, 'test/fixtures/repos/broken/bad_field'));
  server = await startTestServer({ modelRepository: repo.root, modelControlMode: 'explicit', loadModels: ['*'], maxBodyBytes: MAX_BODY });
  port = server.ports.http!;
}, 60_000);

afterAll(async () => {
  await server?.close();
  repo?.cleanup();
  expect(shmLeftovers()).toEqual([]);
});

const addSubJson = {
  inputs: [
    { name: 'INPUT0', datatype: 'FP32', shape: [4], data: [1, 2, 3, 4] },
    { name: 'INPUT1', datatype: 'FP32', shape: [4], data: [0.5, 0.5, 0.5, 0.5] },
  ],
};

async function infer(model: string, body: unknown, version?: string): Promise<{ status: number; json: any; text: string }> {
  return http(`${server.url}/v2/models/${model}${version ? `/versions/${version}` : ''}/infer`, 'POST', body);
}

async function expectHealthy(): Promise<void> {
  expect((await http(`${server.url}/v2/health/live`)).status).toBe(200);
  expect((await http(`${server.url}/v2/models/add_sub/ready`)).status).toBe(200);
  const r = await infer('add_sub', addSubJson);
  expect(r.status).toBe(200);
}

describe('health, metadata, config', () => {
  it('live is 200; ready is 400 while a model has failed to load (strict readiness, as Triton)', async () => {
    expect((await http(`${server.url}/v2/health/live`)).status).toBe(200);
    expect((await http(`${server.url}/v2/health/ready`)).status).toBe(400);
  });

  it('/v2 is the server metadata with its extensions', async () => {
    const r = await http(`${server.url}/v2`);
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ name: 'stubhost', version: expect.any(String) });
    // Triton's list, in its order (core src/server.cc, built without tracing).
    expect(r.json.extensions).toEqual([
      'classification', 'sequence', 'model_repository', 'model_repository(unload_dependents)', 'schedule_policy',
      'model_configuration', 'system_shared_memory', 'cuda_shared_memory', 'binary_tensor_data', 'parameters', 'statistics', 'logging',
    ]);
  });

  it('model metadata, with and without a version; the batch dimension shows as -1', async () => {
    const r = await http(`${server.url}/v2/models/add_sub`);
    expect(r.status).toBe(200);
    expect(r.json).toEqual({
      name: 'add_sub', versions: ['1'], platform: 'typescript',
      inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [4] }, { name: 'INPUT1', datatype: 'FP32', shape: [4] }],
      outputs: [{ name: 'OUTPUT0', datatype: 'FP32', shape: [4] }, { name: 'OUTPUT1', datatype: 'FP32', shape: [4] }],
    });
    expect((await http(`${server.url}/v2/models/add_sub/versions/1`)).json.versions).toEqual(['1']);
    const id = await http(`${server.url}/v2/models/identity_fp32`);
    expect(id.json.inputs).toEqual([{ name: 'INPUT0', datatype: 'FP32', shape: [-1, -1] }]);
    const s = await http(`${server.url}/v2/models/string_upper`);
    expect(s.json.inputs).toEqual([{ name: 'INPUT0', datatype: 'BYTES', shape: [-1] }]);
  });

  it('model ready per model and version', async () => {
    expect((await http(`${server.url}/v2/models/add_sub/ready`)).status).toBe(200);
    expect((await http(`${server.url}/v2/models/add_sub/versions/1/ready`)).status).toBe(200);
    expect((await http(`${server.url}/v2/models/add_sub/versions/2/ready`)).status).not.toBe(200);
    expect((await http(`${server.url}/v2/models/bad_field/ready`)).status).not.toBe(200);
    expect((await http(`${server.url}/v2/models/nope/ready`)).status).not.toBe(200);
  });

  it('config is the completed config in Triton JSON shape', async () => {
    const r = await http(`${server.url}/v2/models/identity_fp32/config`);
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({
      name: 'identity_fp32', backend: 'typescript', max_batch_size: 8,
      version_policy: { latest: { num_versions: 1 } },
      input: [{ name: 'INPUT0', data_type: 'TYPE_FP32', dims: [-1], format: 'FORMAT_NONE', optional: false }],
      output: [{ name: 'OUTPUT0', data_type: 'TYPE_FP32', dims: [-1] }],
      dynamic_batching: { max_queue_delay_microseconds: 100, preferred_batch_size: [] },
      instance_group: [{ name: 'identity_fp32_0', kind: 'KIND_CPU', count: 1, gpus: [] }],
      parameters: {}, model_warmup: [],
    });
    const add = await http(`${server.url}/v2/models/add_sub/versions/1/config`);
    expect(add.json).toMatchObject({ name: 'add_sub', max_batch_size: 0 });
    expect(add.json.dynamic_batching).toBeUndefined();
  });
});

describe('infer', () => {
  it('add_sub over JSON', async () => {
    const r = await infer('add_sub', addSubJson);
    expect(r.status).toBe(200);
    expect(r.json).toEqual({
      model_name: 'add_sub', model_version: '1',
      outputs: [
        { name: 'OUTPUT0', datatype: 'FP32', shape: [4], data: [1.5, 2.5, 3.5, 4.5] },
        { name: 'OUTPUT1', datatype: 'FP32', shape: [4], data: [0.5, 1.5, 2.5, 3.5] },
      ],
    });
    const v = await infer('add_sub', { id: 'req-7', ...addSubJson }, '1');
    expect(v.json.id).toBe('req-7');
  });

  it('JSON and binary tensors (in and out, mixed) give identical results', async () => {
    const a = Float32Array.from([1.25, -2, 3e6, 0.1]);
    const b = Float32Array.from([4, 5.5, -6, 0.2]);
    const viaJson = await infer('add_sub', {
      inputs: [
        { name: 'INPUT0', datatype: 'FP32', shape: [4], data: Array.from(a) },
        { name: 'INPUT1', datatype: 'FP32', shape: [4], data: Array.from(b) },
      ],
    });
    expect(viaJson.status).toBe(200);
    const { body, headerLength } = binaryBody({
      inputs: [
        { name: 'INPUT0', datatype: 'FP32', shape: [4], parameters: { binary_data_size: 16 } },
        { name: 'INPUT1', datatype: 'FP32', shape: [4], data: Array.from(b) },
      ],
      outputs: [{ name: 'OUTPUT0', parameters: { binary_data: true } }, { name: 'OUTPUT1', parameters: { binary_data: false } }],
    }, [bytesOf(a)]);
    const r = await request(port, 'POST', '/v2/models/add_sub/infer', body, { 'Inference-Header-Content-Length': headerLength, 'Content-Type': 'application/octet-stream' });
    expect(r.status).toBe(200);
    const { doc, binary } = parseInferReply(r);
    expect(doc.outputs[0]).toMatchObject({ name: 'OUTPUT0', shape: [4], parameters: { binary_data_size: 16 } });
    const out0 = new Float32Array(new Uint8Array(binary.get('OUTPUT0')!).buffer);
    expect(Array.from(out0)).toEqual(viaJson.json.outputs[0].data);
    expect(doc.outputs[1].data).toEqual(viaJson.json.outputs[1].data);

    // binary_data_output: every output binary when none is named.
    const all = binaryBody({
      inputs: [
        { name: 'INPUT0', datatype: 'FP32', shape: [4], parameters: { binary_data_size: 16 } },
        { name: 'INPUT1', datatype: 'FP32', shape: [4], parameters: { binary_data_size: 16 } },
      ],
      parameters: { binary_data_output: true },
    }, [bytesOf(a), bytesOf(b)]);
    const r2 = await request(port, 'POST', '/v2/models/add_sub/infer', all.body, { 'Inference-Header-Content-Length': all.headerLength });
    expect(r2.status).toBe(200);
    const p2 = parseInferReply(r2);
    expect(p2.doc.outputs.map((o: any) => o.data)).toEqual([undefined, undefined]);
    for (const [i, name] of ['OUTPUT0', 'OUTPUT1'].entries()) {
      expect(Array.from(new Float32Array(new Uint8Array(p2.binary.get(name)!).buffer))).toEqual(viaJson.json.outputs[i].data);
    }
  });

  it('identity_fp32 with a batch dimension, JSON and binary', async () => {
    const data = [1, 2, 3, 4, 5, 6];
    const j = await infer('identity_fp32', { inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [2, 3], data }] });
    expect(j.json.outputs).toEqual([{ name: 'OUTPUT0', datatype: 'FP32', shape: [2, 3], data }]);
    const { body, headerLength } = binaryBody({
      inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [2, 3], parameters: { binary_data_size: 24 } }],
      parameters: { binary_data_output: true },
    }, [bytesOf(Float32Array.from(data))]);
    const r = await request(port, 'POST', '/v2/models/identity_fp32/infer', body, { 'Inference-Header-Content-Length': headerLength });
    const p = parseInferReply(r);
    expect(p.doc.outputs[0].shape).toEqual([2, 3]);
    expect(Array.from(new Float32Array(new Uint8Array(p.binary.get('OUTPUT0')!).buffer))).toEqual(data);
  });

  it('identity_fp32: concurrent requests are batched and each gets its own data back', async () => {
    const before = (await http(`${server.url}/v2/models/identity_fp32/stats`)).json.model_stats[0];
    const results = await Promise.all(Array.from({ length: 24 }, (_, i) =>
      infer('identity_fp32', { inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [1, 3], data: [i, i + 0.5, -i - 1] }] })));
    results.forEach((r, i) => {
      expect(r.status).toBe(200);
      expect(r.json.outputs[0].data).toEqual([i, i + 0.5, -i - 1]);
    });
    const after = (await http(`${server.url}/v2/models/identity_fp32/stats`)).json.model_stats[0];
    expect(after.inference_count - before.inference_count).toBe(24);
    expect(after.execution_count - before.execution_count).toBeLessThanOrEqual(24);
  });

  it('string_upper: BYTES over JSON and binary (length-prefixed) agree', async () => {
    const words = ['hello', 'Straße', '', 'mixed Case 123'];
    const j = await infer('string_upper', { inputs: [{ name: 'INPUT0', datatype: 'BYTES', shape: [4], data: words }] });
    expect(j.status).toBe(200);
    expect(j.json.outputs[0]).toEqual({ name: 'OUTPUT0', datatype: 'BYTES', shape: [4], data: words.map((w) => w.toUpperCase()) });
    const parts = words.map((w) => {
      const s = Buffer.from(w);
      const len = Buffer.alloc(4);
      len.writeUInt32LE(s.length);
      return Buffer.concat([len, s]);
    });
    const bytes = Buffer.concat(parts);
    const { body, headerLength } = binaryBody({
      inputs: [{ name: 'INPUT0', datatype: 'BYTES', shape: [4], parameters: { binary_data_size: bytes.length } }],
      outputs: [{ name: 'OUTPUT0', parameters: { binary_data: true } }],
    }, [bytes]);
    const r = await request(port, 'POST', '/v2/models/string_upper/infer', body, { 'Inference-Header-Content-Length': headerLength });
    expect(r.status).toBe(200);
    const out = parseInferReply(r).binary.get('OUTPUT0')!;
    const decoded: string[] = [];
    for (let pos = 0; pos < out.length;) {
      const n = out.readUInt32LE(pos);
      decoded.push(out.subarray(pos + 4, pos + 4 + n).toString('utf8'));
      pos += 4 + n;
    }
    expect(decoded).toEqual(j.json.outputs[0].data);
  });
});

describe('bad requests: 4xx with a message, and the server stays healthy', () => {
  const cases: [string, string, () => Promise<{ status: number; json: any }>, RegExp][] = [
    ['malformed JSON', 'add_sub', () => infer('add_sub', '{"inputs": [ {'), /malformed JSON/],
    ['wrong dtype', 'add_sub', () => infer('add_sub', { inputs: [{ ...addSubJson.inputs[0], datatype: 'INT32' }, addSubJson.inputs[1]] }), /inference input 'INPUT0' data-type is 'INT32', but model 'add_sub' expects 'FP32'/],
    ['wrong shape', 'add_sub', () => infer('add_sub', { inputs: [{ ...addSubJson.inputs[0], shape: [5], data: [1, 2, 3, 4, 5] }, addSubJson.inputs[1]] }), /unexpected shape for input 'INPUT0' for model 'add_sub'\. Expected \[4\], got \[5\]/],
    ['data count != shape', 'add_sub', () => infer('add_sub', { inputs: [{ ...addSubJson.inputs[0], data: [1, 2, 3] }, addSubJson.inputs[1]] }), /3 elements/],
    ['missing input', 'add_sub', () => infer('add_sub', { inputs: [addSubJson.inputs[0]] }), /missing required input\(s\) \['INPUT1'\]/],
    ['unknown input', 'add_sub', () => infer('add_sub', { inputs: [addSubJson.inputs[0], { name: 'INPUT9', datatype: 'FP32', shape: [4], data: [1, 2, 3, 4] }] }), /unexpected inference input 'INPUT9'/],
    ['unknown output', 'add_sub', () => infer('add_sub', { ...addSubJson, outputs: [{ name: 'NOPE' }] }), /unexpected inference output 'NOPE'/],
    ['batch over max_batch_size', 'identity_fp32', () => infer('identity_fp32', { inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [9, 1], data: new Array(9).fill(0) }] }), /inference request batch-size must be <= 8/],
    ['unknown model', 'nope', () => infer('nope', addSubJson), /nope/],
    ['unknown version', 'add_sub', () => infer('add_sub', addSubJson, '7'), /version 7/],
    ['non-numeric version', 'add_sub', () => infer('add_sub', addSubJson, 'x'), /version/],
    ['a model that failed to load', 'bad_field', () => infer('bad_field', {}), /bad_field/],
  ];
  for (const [what, , run, message] of cases) {
    it(what, async () => {
      const r = await run();
      expect(r.status, JSON.stringify(r.json)).toBeGreaterThanOrEqual(400);
      expect(r.status).toBeLessThan(500);
      expect(r.json.error).toMatch(message);
    });
  }

  it('a BYTES tensor with a bad length prefix', async () => {
    const bytes = Buffer.alloc(8);
    bytes.writeUInt32LE(1000, 0); // claims 1000 bytes, has 4
    const { body, headerLength } = binaryBody({
      inputs: [{ name: 'INPUT0', datatype: 'BYTES', shape: [1], parameters: { binary_data_size: 8 } }],
    }, [bytes]);
    const r = await request(port, 'POST', '/v2/models/string_upper/infer', body, { 'Inference-Header-Content-Length': headerLength });
    expect(r.status).toBe(400);
    expect(JSON.parse(r.body.toString()).error).toMatch(/BYTES/);
  });

  it('binary_data_size past the end of the body, and a header length past the body', async () => {
    const { body, headerLength } = binaryBody({
      inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [4], parameters: { binary_data_size: 16 } }, addSubJson.inputs[1]],
    }, [new Uint8Array(8)]);
    let r = await request(port, 'POST', '/v2/models/add_sub/infer', body, { 'Inference-Header-Content-Length': headerLength });
    expect(r.status).toBe(400);
    expect(JSON.parse(r.body.toString()).error).toBe("unexpected size for input 'INPUT0', expecting 8 additional bytes for model 'add_sub'");
    r = await request(port, 'POST', '/v2/models/add_sub/infer', body, { 'Inference-Header-Content-Length': body.length + 10 });
    expect(r.status).toBe(400);
  });

  it('an oversized body gets 413 without being read', async () => {
    const big = Buffer.alloc(MAX_BODY + 1, 0x20);
    const r = await request(port, 'POST', '/v2/models/add_sub/infer', big, { 'Content-Type': 'application/json' });
    expect(r.status).toBe(413);
    expect(JSON.parse(r.body.toString()).error).toMatch(/exceeds the limit/);
  });

  it('unknown routes and methods', async () => {
    expect((await http(`${server.url}/v2/nothing`)).status).toBe(404);
    const r = await http(`${server.url}/v2/models/add_sub/infer`, 'GET');
    expect(r.status).toBe(405);
    expect(r.json.error).toMatch(/POST/);
  });

  it('the server is still healthy after all of that', async () => {
    await expectHealthy();
  });
});

describe('statistics', () => {
  it('/stats has Triton\'s shape and counts that move', async () => {
    const before = (await http(`${server.url}/v2/models/add_sub/stats`)).json;
    expect(before.model_stats).toHaveLength(1);
    const s0 = before.model_stats[0];
    expect(s0).toMatchObject({ name: 'add_sub', version: '1' });
    for (const k of ['success', 'fail', 'queue', 'compute_input', 'compute_infer', 'compute_output', 'cache_hit', 'cache_miss']) {
      expect(s0.inference_stats[k]).toEqual({ count: expect.any(Number), ns: expect.any(Number) });
      expect(Number.isInteger(s0.inference_stats[k].ns)).toBe(true);
    }
    for (let i = 0; i < 3; i++) expect((await infer('add_sub', addSubJson)).status).toBe(200);
    expect((await infer('add_sub', { inputs: [addSubJson.inputs[0]] })).status).toBe(400);
    const s1 = (await http(`${server.url}/v2/models/add_sub/versions/1/stats`)).json.model_stats[0];
    expect(s1.inference_stats.success.count - s0.inference_stats.success.count).toBe(3);
    expect(s1.inference_count - s0.inference_count).toBe(3);
    expect(s1.execution_count - s0.execution_count).toBe(3);
    expect(s1.inference_stats.success.ns).toBeGreaterThan(s0.inference_stats.success.ns);
    expect(s1.last_inference).toBeGreaterThanOrEqual(s0.last_inference);
    expect(s1.batch_stats[0]).toMatchObject({ batch_size: 1, compute_infer: { count: expect.any(Number) } });

    const all = (await http(`${server.url}/v2/models/stats`)).json.model_stats.map((m: any) => m.name).sort();
    expect(all).toEqual(['add_sub', 'identity_fp32', 'string_upper']);
    expect((await http(`${server.url}/v2/models/nope/stats`)).status).toBe(404);
  });

  it('metrics on the metrics port: nv_inference_* labelled with model and version', async () => {
    const text = await (await fetch(`http://127.0.0.1:${server.ports.metrics}/metrics`)).text();
    const value = (line: string): number => {
      const m = new RegExp(`^${line.replace(/[{}"]/g, (c) => `\\${c}`)} (\\S+)$`, 'm').exec(text);
      return m ? Number(m[1]) : NaN;
    };
    expect(value('nv_inference_request_success{model="add_sub",version="1"}')).toBeGreaterThanOrEqual(4);
    expect(value('nv_inference_count{model="add_sub",version="1"}')).toBeGreaterThanOrEqual(4);
    expect(value('nv_inference_exec_count{model="add_sub",version="1"}')).toBeGreaterThanOrEqual(4);
    expect(value('nv_inference_request_duration_us{model="add_sub",version="1"}')).toBeGreaterThan(0);
    // Every instance reports its stub's health from the start, not only after a failure.
    expect(text).toMatch(/^stubhost_stub_healthy\{model="add_sub",instance="add_sub_0(_0)?"\} 1$/m);
    for (const name of ['nv_inference_request_failure', 'nv_inference_queue_duration_us', 'nv_inference_compute_input_duration_us',
      'nv_inference_compute_infer_duration_us', 'nv_inference_compute_output_duration_us']) {
      expect(text).toMatch(new RegExp(`^${name}\\{model="add_sub",version="1"`, 'm'));
    }
    expect(text).toMatch(/stub/);
  });
});

describe('repository', () => {
  it('index lists every model with its state; the broken one with the file and the field', async () => {
    const r = await http(`${server.url}/v2/repository/index`, 'POST', {});
    expect(r.status).toBe(200);
    const byName = Object.fromEntries(r.json.map((e: any) => [e.name, e]));
    expect(Object.keys(byName).sort()).toEqual(['add_sub', 'bad_field', 'identity_fp32', 'string_upper']);
    expect(byName.add_sub).toMatchObject({ version: '1', state: 'READY' });
    expect(byName.bad_field.state).toBe('UNAVAILABLE');
    expect(byName.bad_field.reason).toContain(path.join('bad_field', 'config.pbtxt'));
    expect(byName.bad_field.reason).toMatch(/max_batch_size/);
    const ready = await http(`${server.url}/v2/repository/index`, 'POST', { ready: true });
    expect(ready.json.map((e: any) => e.name).sort()).toEqual(['add_sub', 'identity_fp32', 'string_upper']);
    expect(server.failed.get('bad_field')).toMatch(/max_batch_size/);
  });

  it('unload, then load with a config override in the body', async () => {
    const model = `${server.url}/v2/repository/models/identity_fp32`;
    expect((await http(`${model}/unload`, 'POST', {})).status).toBe(200);
    expect((await http(`${server.url}/v2/models/identity_fp32/ready`)).status).not.toBe(200);
    const gone = await infer('identity_fp32', { inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [1, 1], data: [1] }] });
    expect(gone.status).toBeGreaterThanOrEqual(400);
    expect(gone.json.error).toMatch(/identity_fp32/);
    const index = (await http(`${server.url}/v2/repository/index`, 'POST')).json;
    expect(index.find((e: any) => e.name === 'identity_fp32')).toMatchObject({ state: 'UNAVAILABLE', reason: 'unloaded' });

    const override = {
      name: 'identity_fp32', backend: 'typescript', max_batch_size: 2,
      input: [{ name: 'INPUT0', data_type: 'TYPE_FP32', dims: [3] }],
      output: [{ name: 'OUTPUT0', data_type: 'TYPE_FP32', dims: [3] }],
    };
    expect((await http(`${model}/load`, 'POST', { parameters: { config: JSON.stringify(override) } })).status).toBe(200);
    const cfg = (await http(`${server.url}/v2/models/identity_fp32/config`)).json;
    expect(cfg).toMatchObject({ max_batch_size: 2, input: [{ dims: [3] }] });
    expect(cfg.dynamic_batching).toBeUndefined();
    expect((await infer('identity_fp32', { inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [2, 3], data: [1, 2, 3, 4, 5, 6] }] })).status).toBe(200);
    const tooBig = await infer('identity_fp32', { inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [3, 3], data: new Array(9).fill(1) }] });
    expect(tooBig.status).toBe(400);

    // A bad override fails the load as in Triton (500, "failed to poll"), the field is named in
    // the server log, and the loaded version keeps serving.
    const bad = await http(`${model}/load`, 'POST', { parameters: { config: JSON.stringify({ ...override, max_batch_size: 'lots' }) } });
    expect(bad.status).toBe(500);
    expect(bad.json.error).toBe("failed to load 'identity_fp32', failed to poll from model repository");
    expect(server.logs.some((l) => l.includes("Poll failed for model directory 'identity_fp32'") && l.includes('max_batch_size'))).toBe(true);
    expect((await http(`${server.url}/v2/models/identity_fp32/ready`)).status).toBe(200);

    // Back to the file's config.
    expect((await http(`${model}/load`, 'POST')).status).toBe(200);
    expect((await http(`${server.url}/v2/models/identity_fp32/config`)).json.max_batch_size).toBe(8);

    // The reloaded version still has its metrics and they move (the old one's teardown must not take them).
    expect((await infer('identity_fp32', { inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [1, 1], data: [1] }] })).status).toBe(200);
    await new Promise((r) => setTimeout(r, 300)); // the old version finishes draining
    expect((await infer('identity_fp32', { inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [1, 1], data: [1] }] })).status).toBe(200);
    const text = await (await fetch(`http://127.0.0.1:${server.ports.metrics}/metrics`)).text();
    expect(text).toMatch(/^nv_inference_request_success\{model="identity_fp32",version="1"\} [1-9]/m);
  });

  it('loading an unknown model or a broken one fails as in Triton, the cause in the log', async () => {
    const r = await http(`${server.url}/v2/repository/models/nope/load`, 'POST');
    expect(r.status).toBe(500);
    expect(r.json.error).toBe("failed to load 'nope', failed to poll from model repository");
    expect(server.logs.some((l) => l.includes("failed to poll model 'nope': model not found in any model repository."))).toBe(true);
    const b = await http(`${server.url}/v2/repository/models/bad_field/load`, 'POST');
    expect(b.status).toBe(500);
    expect(b.json.error).toBe("failed to load 'bad_field', failed to poll from model repository");
    expect(server.logs.some((l) => /Poll failed for model directory 'bad_field': .*config\.pbtxt.*max_batch_size/.test(l))).toBe(true);
  });

  it('model names with path traversal are refused', async () => {
    for (const name of ['..', '%2E%2E', '..%2Fadd_sub', '..%2F..%2Fetc', 'a%2Fb', '.hidden', '%00x']) {
      for (const op of ['load', 'unload']) {
        // node:http sends the path as written; fetch would resolve the '..' itself.
        const r = await request(port, 'POST', `/v2/repository/models/${name}/${op}`);
        const text = r.body.toString();
        expect(r.status, `${op} ${name}: ${text}`).toBe(400);
        expect(JSON.parse(text).error).toMatch(/model name|outside|malformed/);
      }
    }
    const link = path.join(repo.root, 'escape');
    fs.symlinkSync(path.join(ROOT, 'models'), link);
    try {
      const r = await http(`${server.url}/v2/repository/models/escape/load`, 'POST');
      expect(r.status).toBe(400);
      expect(r.json.error).toMatch(/outside the model repository/);
    } finally {
      fs.rmSync(link);
    }
    await expectHealthy();
  });
});

describe('readiness after unload', () => {
  it('unloading the failed model makes the server ready', async () => {
    expect((await http(`${server.url}/v2/repository/models/bad_field/unload`, 'POST')).status).toBe(200);
    expect((await http(`${server.url}/v2/health/ready`)).status).toBe(200);
  });
});

describe('logging', () => {
  it('GET shows the settings, POST changes them', async () => {
    const r = await http(`${server.url}/v2/logging`);
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ log_info: true, log_warning: true, log_error: true, log_verbose_level: 0 });
    const p = await http(`${server.url}/v2/logging`, 'POST', { log_verbose_level: 1 });
    expect(p.json.log_verbose_level).toBe(1);
    expect((await http(`${server.url}/v2/logging`, 'POST', { log_verbose_level: 0 })).json.log_verbose_level).toBe(0);
    const bad = await http(`${server.url}/v2/logging`, 'POST', { log_verbose_level: -1 });
    // Triton's answer (its JSON reader's error, INTERNAL): see test/compat-logging.test.ts.
    expect(bad.status).toBe(500);
    expect(bad.json.error).toBe('attempt to access JSON non-unsigned-integer as unsigned-integer');
  });
});
