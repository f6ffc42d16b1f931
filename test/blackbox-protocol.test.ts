/**
 * Black box: the KServe v2 protocol as Triton clients speak it, against the CLI.
 * JSON edge cases (nested data, BOOL, INT64 past 2^53 as strings, BYTES, a 0-sized dimension,
 * optional inputs, id echo), the binary tensor extension both ways (chunked upload, header length
 * equal to the body, binary_data_output with a per-output override), bad input as 4xx JSON
 * errors on a keep-alive connection that keeps serving, unload under concurrent load (every
 * request gets an answer or a clean error) and load with a config override, gRPC with a grpc-js
 * client, and the metrics text a strict Prometheus parser accepts (a model name with a quote).
 */
import http from 'node:http';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADD_SUB_TS, makeRepository, postJson, shmFilesOf, startCli, type CliServer } from './helpers/blackbox.js';

const STR_TS = `import { InferenceRequest, InferenceResponse, Tensor } from 'stubhost';
export default class Str {
  async execute(requests: InferenceRequest[]) {
    return requests.map((r) => {
      const t = r.input('IN')!;
      const opt = r.input('OPT');
      const rows = t.shape[0]!;
      return new InferenceResponse({ outputs: [
        new Tensor('OUT', t.strings().map((s) => s.toUpperCase()), t.shape, 'BYTES'),
        new Tensor('N', opt ? BigInt64Array.from(opt.data as BigInt64Array) : new BigInt64Array(rows).fill(-1n), [rows, 1]),
        new Tensor('FLAG', Uint8Array.from({ length: rows }, (_, i) => i % 2), [rows, 1], 'BOOL'),
      ] });
    });
  }
}
`;
const ADD_SUB_CFG = `backend: "typescript"
max_batch_size: 0
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] }, { name: "INPUT1" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] }, { name: "OUTPUT1" data_type: TYPE_FP32 dims: [ 4 ] } ]
`;
const QUOTED = 'q"uo té';
const repo = makeRepository({
  'add_sub/config.pbtxt': ADD_SUB_CFG,
  'add_sub/1/model.ts': ADD_SUB_TS,
  [`${QUOTED}/config.pbtxt`]: ADD_SUB_CFG,
  [`${QUOTED}/1/model.ts`]: ADD_SUB_TS,
  'str/config.pbtxt': `backend: "typescript"
max_batch_size: 8
input [ { name: "IN" data_type: TYPE_STRING dims: [ -1 ] }, { name: "OPT" data_type: TYPE_INT64 dims: [ 1 ] optional: true } ]
output [ { name: "OUT" data_type: TYPE_STRING dims: [ -1 ] }, { name: "N" data_type: TYPE_INT64 dims: [ 1 ] }, { name: "FLAG" data_type: TYPE_BOOL dims: [ 1 ] } ]
dynamic_batching { }
`,
  'str/1/model.ts': STR_TS,
});

let s: CliServer;
beforeAll(async () => {
  s = await startCli(repo.root, ['--model-control-mode', 'explicit', '--load-model', '*']);
}, 40_000);
afterAll(async () => {
  const [code] = await s.stop();
  expect(code).toBe(0);
  expect(shmFilesOf(s.pid)).toEqual([]);
  repo.cleanup();
});

const addSub = (extra: object = {}) => ({ inputs: [
  { name: 'INPUT0', shape: [4], datatype: 'FP32', data: [1, 2, 3, 4] },
  { name: 'INPUT1', shape: [4], datatype: 'FP32', data: [1, 1, 1, 1] },
], ...extra });

/** One request on a given agent; the body may be sent in several chunks (no Content-Length). */
function raw(agent: http.Agent, urlPath: string, body: Buffer | Buffer[], headers: http.OutgoingHttpHeaders = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  const url = new URL(s.http);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, path: urlPath, method: 'POST', agent, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    if (Array.isArray(body)) {
      for (const b of body) req.write(b);
      req.end();
    } else req.end(body);
  });
}

describe('JSON tensors', () => {
  it('nested data, INT64 past 2^53 as strings, BYTES, BOOL out, optional input left out, id echoed', async () => {
    const r = await postJson(`${s.http}/v2/models/str/infer`, { id: 'req-7', inputs: [
      { name: 'IN', shape: [2, 2], datatype: 'BYTES', data: [['a', 'b'], ['c', 'dé']] },
      { name: 'OPT', shape: [2, 1], datatype: 'INT64', data: ['9223372036854775807', '-9007199254740993'] },
    ] });
    expect(r.status).toBe(200);
    expect(r.json.id).toBe('req-7');
    const out = Object.fromEntries(r.json.outputs.map((o: { name: string }) => [o.name, o]));
    expect(out.OUT).toEqual({ name: 'OUT', datatype: 'BYTES', shape: [2, 2], data: ['A', 'B', 'C', 'DÉ'] });
    expect(out.FLAG.data).toEqual([false, true]);
    // 64-bit integers are written exactly in the response text, as Triton's writer does.
    expect(r.text).toContain('"data":[9223372036854775807,-9007199254740993]');

    const noOpt = await postJson(`${s.http}/v2/models/str/infer`, { inputs: [{ name: 'IN', shape: [1, 0], datatype: 'BYTES', data: [] }] });
    expect(noOpt.status).toBe(200);
    expect(noOpt.json.id).toBeUndefined();
    expect(noOpt.json.outputs.find((o: { name: string }) => o.name === 'OUT')).toEqual({ name: 'OUT', datatype: 'BYTES', shape: [1, 0], data: [] });
    expect(noOpt.json.outputs.find((o: { name: string }) => o.name === 'N').data).toEqual([-1]);
  });

  it('bad inputs are 4xx with an error naming the thing, and the same connection keeps serving', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    let connections = 0;
    const connect = (agent as any).createConnection.bind(agent);
    (agent as any).createConnection = (...args: unknown[]) => {
      connections++;
      return connect(...args);
    };
    const post = async (model: string, body: unknown, headers: http.OutgoingHttpHeaders = {}) => {
      const r = await raw(agent, `/v2/models/${model}/infer`, Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)), headers);
      return { status: r.status, json: JSON.parse(r.body.toString() || 'null') };
    };
    const bad: [string, unknown, number, RegExp][] = [
      ['str', { inputs: [{ name: 'IN', shape: [1, 2 ** 40], datatype: 'BYTES', data: [] }] }, 400, /'data' has 0 elements but shape \[1,1099511627776\]/],
      ['str', { inputs: [{ name: 'IN', shape: [1, -1], datatype: 'BYTES', data: ['x'] }] }, 400, /'shape' must be an array of non-negative integers/],
      ['str', { inputs: [{ name: 'IN', shape: [9, 1], datatype: 'BYTES', data: Array(9).fill('x') }] }, 400, /inference request batch-size must be <= 8 for 'str'/],
      ['str', { inputs: [{ name: 'IN', shape: [1, 1], datatype: 'FP32', data: [1] }] }, 400, /inference input 'IN' data-type is 'FP32', but model 'str' expects 'BYTES'/],
      ['str', { inputs: [{ name: 'IN', shape: [1, 1], datatype: 'BYTES', data: ['x'] }], outputs: [{ name: 'ZZ' }] }, 400, /unexpected inference output 'ZZ' for model 'str'/],
      ['str', { inputs: [{ name: 'OPT', shape: [1, 1], datatype: 'INT64', data: [1] }] }, 400, /missing required input\(s\) \['IN'\]/],
      ['str', '{"inputs": [', 400, /malformed JSON/],
      ['add_sub', addSub(), 200, /./],
      ['nope', addSub(), 404, /unknown model: 'nope'/],
    ];
    for (let round = 0; round < 20; round++) {
      for (const [model, body, status, message] of bad) {
        const r = await post(model, body, round % 2 === 0 ? { 'content-type': 'application/json' } : {});
        expect(r.status, JSON.stringify(body).slice(0, 80)).toBe(status);
        if (status !== 200) expect(r.json.error).toMatch(message);
      }
    }
    expect(connections).toBe(1); // 180 requests, errors among them, over one keep-alive connection
    agent.destroy();
  });
});

describe('binary tensor extension', () => {
  const f32 = (a: number[]): Buffer => Buffer.from(new Float32Array(a).buffer);
  const agent = new http.Agent({ keepAlive: false });

  it('chunked upload with the header split across chunks; binary and JSON outputs mixed', async () => {
    const head = JSON.stringify({
      inputs: [
        { name: 'INPUT0', shape: [4], datatype: 'FP32', parameters: { binary_data_size: 16 } },
        { name: 'INPUT1', shape: [4], datatype: 'FP32', parameters: { binary_data_size: 16 } },
      ],
      outputs: [{ name: 'OUTPUT0', parameters: { binary_data: true } }, { name: 'OUTPUT1', parameters: { binary_data: false } }],
    }) + '   ';
    const full = Buffer.concat([Buffer.from(head), f32([1, 2, 3, 4]), f32([1, 1, 1, 1])]);
    const r = await raw(agent, '/v2/models/add_sub/infer', [full.subarray(0, 7), full.subarray(7, head.length + 3), full.subarray(head.length + 3)],
      { 'Inference-Header-Content-Length': head.length, 'Transfer-Encoding': 'chunked' });
    expect(r.status).toBe(200);
    const hl = Number(r.headers['inference-header-content-length']);
    const json = JSON.parse(r.body.subarray(0, hl).toString());
    expect(json.outputs[0]).toEqual({ name: 'OUTPUT0', datatype: 'FP32', shape: [4], parameters: { binary_data_size: 16 } });
    expect(json.outputs[1].data).toEqual([0, 1, 2, 3]);
    expect([...new Float32Array(new Uint8Array(r.body.subarray(hl)).buffer)]).toEqual([2, 3, 4, 5]);
  });

  it('header length equal to the body (no binary part), and binary_data_output with a per-output override', async () => {
    const body = Buffer.from(JSON.stringify(addSub({ parameters: { binary_data_output: true }, outputs: [{ name: 'OUTPUT0' }, { name: 'OUTPUT1', parameters: { binary_data: false } }] })));
    const r = await raw(agent, '/v2/models/add_sub/infer', body, { 'Inference-Header-Content-Length': body.length });
    expect(r.status).toBe(200);
    const hl = Number(r.headers['inference-header-content-length']);
    expect(r.body.length).toBe(hl + 16);
    const json = JSON.parse(r.body.subarray(0, hl).toString());
    expect(json.outputs[0].parameters).toEqual({ binary_data_size: 16 });
    expect(json.outputs[1].data).toEqual([0, 1, 2, 3]);

    const past = await raw(agent, '/v2/models/add_sub/infer', body, { 'Inference-Header-Content-Length': body.length + 1 });
    expect(past.status).toBe(400);
    expect(JSON.parse(past.body.toString()).error).toMatch(/Inference-Header-Content-Length is \d+ but the body has only/);
  });
});

describe('repository under load', () => {
  it('unload while 8 clients send: every request gets 200 or a clean JSON error; load with a config override', async () => {
    const seen = new Map<string, number>();
    let stop = false;
    const client = async (): Promise<void> => {
      while (!stop) {
        const r = await postJson(`${s.http}/v2/models/add_sub/infer`, addSub()).catch((e: Error) => ({ status: -1, json: { error: e.message }, text: '' }));
        const key = r.status === 200 ? '200' : `${r.status}`;
        seen.set(key, (seen.get(key) ?? 0) + 1);
        if (r.status === 200) expect(r.json.outputs[0].data).toEqual([2, 3, 4, 5]);
        else expect(typeof r.json?.error, JSON.stringify(r.json)).toBe('string');
      }
    };
    const clients = Array.from({ length: 8 }, client);
    await new Promise((r) => setTimeout(r, 200));
    expect((await postJson(`${s.http}/v2/repository/models/add_sub/unload`, {})).status).toBe(200);
    await new Promise((r) => setTimeout(r, 100));
    const config = JSON.stringify({ backend: 'typescript', max_batch_size: 0,
      input: [{ name: 'INPUT0', data_type: 'TYPE_FP32', dims: [4] }, { name: 'INPUT1', data_type: 'TYPE_FP32', dims: [4] }],
      output: [{ name: 'OUTPUT0', data_type: 'TYPE_FP32', dims: [4] }, { name: 'OUTPUT1', data_type: 'TYPE_FP32', dims: [4] }],
      instance_group: [{ count: 2, kind: 'KIND_CPU' }] });
    expect((await postJson(`${s.http}/v2/repository/models/add_sub/load`, { parameters: { config } })).status).toBe(200);
    await new Promise((r) => setTimeout(r, 200));
    stop = true;
    await Promise.all(clients);
    expect(seen.has('-1')).toBe(false); // no reset connections
    expect([...seen.keys()].every((k) => ['200', '404', '503'].includes(k)), JSON.stringify([...seen])).toBe(true);
    expect(seen.get('200')).toBeGreaterThan(0);
    const cfg = await (await fetch(`${s.http}/v2/models/add_sub/config`)).json();
    expect(cfg.instance_group[0].count).toBe(2);
  });
});

describe('gRPC with a grpc-js client', () => {
  const def = protoLoader.loadSync('grpc_service.proto', {
    includeDirs: [path.resolve(import.meta.dirname, '../src/server/grpc/proto')], keepCase: true, longs: String, enums: String, defaults: true, oneofs: true,
  });
  const inference = (grpc.loadPackageDefinition(def) as any).inference;
  let client: any;
  beforeAll(() => {
    client = new inference.GRPCInferenceService(`127.0.0.1:${s.grpcPort}`, grpc.credentials.createInsecure());
  });
  afterAll(() => client?.close());
  const rpc = (m: string, req: object): Promise<any> => new Promise((resolve, reject) => client[m](req, (e: grpc.ServiceError | null, v: unknown) => (e ? reject(e) : resolve(v))));

  it('ServerReady, ModelMetadata, ModelConfig, RepositoryIndex, ModelInfer, unknown version', async () => {
    expect(await rpc('ServerReady', {})).toEqual({ ready: true });
    const meta = await rpc('ModelMetadata', { name: 'str', version: '' });
    expect(meta.inputs.map((i: { name: string; shape: string[] }) => [i.name, i.shape])).toEqual([['IN', ['-1', '-1']], ['OPT', ['-1', '1']]]);
    const cfg = await rpc('ModelConfig', { name: 'str', version: '' });
    expect(cfg.config.max_batch_size).toBe(8);
    expect(cfg.config.input[1].optional).toBe(true);
    const idx = await rpc('RepositoryIndex', { repository_name: '', ready: true });
    expect(idx.models.map((m: { name: string }) => m.name)).toEqual(expect.arrayContaining(['add_sub', 'str', QUOTED]));
    const f32 = (a: number[]) => Buffer.from(new Float32Array(a).buffer);
    const res = await rpc('ModelInfer', { model_name: QUOTED, id: 'g1', inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [4] }, { name: 'INPUT1', datatype: 'FP32', shape: [4] }], raw_input_contents: [f32([1, 2, 3, 4]), f32([1, 1, 1, 1])] });
    expect(res.id).toBe('g1');
    expect([...new Float32Array(new Uint8Array(res.raw_output_contents[0]).buffer)]).toEqual([2, 3, 4, 5]);
    await expect(rpc('ModelInfer', { model_name: 'add_sub', model_version: '9', inputs: [] })).rejects.toMatchObject({ code: grpc.status.NOT_FOUND, details: expect.stringMatching(/version 9 is not found/) });
    await expect(rpc('ModelInfer', { model_name: 'add_sub', inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [4] }], raw_input_contents: [f32([1, 2, 3, 4])] }))
      .rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringMatching(/missing required input\(s\) \['INPUT1'\]/) });
  });
});

describe('metrics', () => {
  it('Prometheus text: HELP and TYPE before each family, escaped label values, numeric samples', async () => {
    await postJson(`${s.http}/v2/models/${encodeURIComponent(QUOTED)}/infer`, addSub());
    const res = await fetch(`${s.metrics}/metrics`);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    const typed = new Map<string, string>();
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*",?)*\})? (-?[0-9.e+-]+|NaN|[+-]Inf)$/;
    for (const line of text.split('\n')) {
      if (line === '') continue;
      const m = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
      if (m) {
        if (m[1] === 'TYPE') typed.set(m[2]!, m[3]!);
        continue;
      }
      const sm = sample.exec(line);
      expect(sm, line).not.toBeNull();
      const family = sm![1]!.replace(/_(bucket|sum|count)$/, '');
      expect(typed.has(sm![1]!) || typed.has(family), `TYPE before ${line}`).toBe(true);
    }
    expect(text).toMatch(/^nv_inference_request_success\{model="q\\"uo té",version="1"\} [1-9]/m);
    for (const name of ['nv_inference_request_success', 'nv_inference_request_failure', 'nv_inference_count', 'nv_inference_exec_count',
      'nv_inference_request_duration_us', 'nv_inference_queue_duration_us', 'nv_inference_compute_input_duration_us',
      'nv_inference_compute_infer_duration_us', 'nv_inference_compute_output_duration_us']) {
      expect(typed.get(name), name).toBe('counter');
    }
  });
});
