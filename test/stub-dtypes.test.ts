/**
 * Tensors of every Triton dtype through real stubs and back, values checked bit for bit:
 * add_sub for each numeric dtype (one model per dtype, the same model.ts parametrised by the
 * config parameter `dtype`), and a BYTES model. Each dtype is sent twice: a small tensor (inline
 * in the message header) and a large one (through the shared-memory arena).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { childPids, http, shmLeftovers, startTestServer, tempRepository, waitFor, type TestServer } from './helpers/server.js';
import type { DataType, NumericTypedArray } from '../src/core/dtypes.js';
import type { InferRequest, TensorValue } from '../src/core/types.js';

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'models', 'stub');
const MODEL_TS = fs.readFileSync(path.join(FIXTURES, 'add_sub_typed.ts'), 'utf8');

type Numeric = Exclude<DataType, 'BYTES'>;
const NUMERIC: Numeric[] = ['BOOL', 'UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', 'INT32', 'INT64', 'FP16', 'BF16', 'FP32', 'FP64'];
const LARGE = 1024;

function configFor(dtype: Numeric): string {
  const t = `TYPE_${dtype}`;
  return `name: "add_sub_${dtype.toLowerCase()}"
backend: "typescript"
max_batch_size: 0
input [{ name: "INPUT0" data_type: ${t} dims: [ -1 ] }, { name: "INPUT1" data_type: ${t} dims: [ -1 ] }]
output [{ name: "OUTPUT0" data_type: ${t} dims: [ -1 ] }, { name: "OUTPUT1" data_type: ${t} dims: [ -1 ] }]
parameters { key: "dtype" value: { string_value: "${dtype}" } }
`;
}

/** Inputs and the exact outputs expected, with `n` elements (a multiple of 4). */
function caseFor(dtype: Numeric, n: number): { a: NumericTypedArray; b: NumericTypedArray; sum: NumericTypedArray; diff: NumericTypedArray } {
  const tile = <T extends NumericTypedArray>(Ctor: new (xs: number[]) => T, xs: number[]): T => new Ctor(Array.from({ length: n }, (_, i) => xs[i % xs.length]!));
  switch (dtype) {
    case 'BOOL':
      return { a: tile(Uint8Array, [0, 1, 0, 1]), b: tile(Uint8Array, [0, 0, 1, 1]), sum: tile(Uint8Array, [0, 1, 1, 1]), diff: tile(Uint8Array, [0, 1, 1, 0]) };
    case 'FP16':
      // 1 + 2 = 3, 2 + 1, 0.5 + 0.5 = 1, -1 + 0.5 = -0.5; differences -1, 1, 0, -1.5 (raw IEEE half words).
      return {
        a: tile(Uint16Array, [0x3c00, 0x4000, 0x3800, 0xbc00]), b: tile(Uint16Array, [0x4000, 0x3c00, 0x3800, 0x3800]),
        sum: tile(Uint16Array, [0x4200, 0x4200, 0x3c00, 0xb800]), diff: tile(Uint16Array, [0xbc00, 0x3c00, 0x0000, 0xbe00]),
      };
    case 'BF16':
      return {
        a: tile(Uint16Array, [0x3f80, 0x4000, 0x3f00, 0xbf80]), b: tile(Uint16Array, [0x4000, 0x3f80, 0x3f00, 0x3f00]),
        sum: tile(Uint16Array, [0x4040, 0x4040, 0x3f80, 0xbf00]), diff: tile(Uint16Array, [0xbf80, 0x3f80, 0x0000, 0xbfc0]),
      };
    case 'INT64':
    case 'UINT64': {
      const Ctor = dtype === 'INT64' ? BigInt64Array : BigUint64Array;
      const max = dtype === 'INT64' ? 2n ** 63n - 1n : 2n ** 64n - 1n;
      const min = dtype === 'INT64' ? -(2n ** 63n) : 0n;
      const a = new Ctor(n);
      const b = new Ctor(n);
      for (let i = 0; i < n; i++) {
        a[i] = i % 4 === 0 ? max : i % 4 === 1 ? min : BigInt(i) * 1_234_567_890_123n;
        b[i] = i % 4 === 0 ? 1n : i % 4 === 1 ? 1n : BigInt(i * 7 + 3);
      }
      const sum = new Ctor(n);
      const diff = new Ctor(n);
      // Typed-array stores wrap modulo 2^64, as the model's own stores do.
      for (let i = 0; i < n; i++) {
        sum[i] = dtype === 'INT64' ? BigInt.asIntN(64, a[i]! + b[i]!) : BigInt.asUintN(64, a[i]! + b[i]!);
        diff[i] = dtype === 'INT64' ? BigInt.asIntN(64, a[i]! - b[i]!) : BigInt.asUintN(64, a[i]! - b[i]!);
      }
      expect(sum[0]).toBe(min); // max + 1 wrapped
      return { a, b, sum, diff };
    }
    default: {
      const Ctor = {
        UINT8: Uint8Array, UINT16: Uint16Array, UINT32: Uint32Array, INT8: Int8Array, INT16: Int16Array, INT32: Int32Array,
        FP32: Float32Array, FP64: Float64Array,
      }[dtype] as new (n: number) => Float64Array;
      const float = dtype === 'FP32' || dtype === 'FP64';
      const a = new Ctor(n);
      const b = new Ctor(n);
      for (let i = 0; i < n; i++) {
        a[i] = float ? (i - n / 2) * 0.37 + (i % 4 === 0 ? 1e30 : 0) : i * 7919 - 123_456;
        b[i] = float ? (i % 13) * -1.25e-3 : i * 31 + (i % 2 ? 2 ** 31 : -(2 ** 15));
      }
      const sum = new Ctor(n);
      const diff = new Ctor(n);
      for (let i = 0; i < n; i++) {
        sum[i] = a[i]! + b[i]!;
        diff[i] = a[i]! - b[i]!;
      }
      return { a, b, sum, diff };
    }
  }
}

function request(model: string, inputs: TensorValue[]): InferRequest {
  return { id: '', modelName: model, inputs, parameters: {}, priority: 0, timeoutUs: 0 };
}

const repo = tempRepository({
  ...Object.fromEntries(NUMERIC.map((d) => [`add_sub_${d.toLowerCase()}`, { 'config.pbtxt': configFor(d), '1/model.ts': MODEL_TS }])),
  upper: {
    'config.pbtxt': fs.readFileSync(path.join(FIXTURES, 'basic', 'upper', 'config.pbtxt')),
    '1/model.ts': fs.readFileSync(path.join(FIXTURES, 'basic', 'upper', '1', 'model.ts')),
  },
});
let server: TestServer;

beforeAll(async () => {
  server = await startTestServer({ modelRepository: repo.root });
  expect([...server.failed]).toEqual([]);
}, 60_000);

afterAll(async () => {
  await server?.close();
  repo.cleanup();
  expect(await waitFor(() => childPids().length === 0, 3000)).toBe(true);
  expect(shmLeftovers()).toEqual([]);
});

describe('add_sub over every numeric dtype', () => {
  it.each(NUMERIC)('%s, inline and through the arena, exact', async (dtype) => {
    const model = `add_sub_${dtype.toLowerCase()}`;
    for (const n of [4, LARGE]) {
      const c = caseFor(dtype, n);
      const result = await server.core.infer(request(model, [
        { name: 'INPUT0', datatype: dtype, shape: [n], data: c.a },
        { name: 'INPUT1', datatype: dtype, shape: [n], data: c.b },
      ]));
      const out0 = result.outputs.find((t) => t.name === 'OUTPUT0')!;
      const out1 = result.outputs.find((t) => t.name === 'OUTPUT1')!;
      expect([out0.datatype, out1.datatype]).toEqual([dtype, dtype]);
      expect([out0.shape, out1.shape]).toEqual([[n], [n]]);
      expect(out0.data.constructor).toBe(c.sum.constructor);
      // Element-wise identity (Object.is: -0 and NaN count) with a readable first mismatch.
      const mismatch = (got: NumericTypedArray, want: NumericTypedArray): string | undefined => {
        for (let i = 0; i < n; i++) if (!Object.is(got[i], want[i])) return `[${i}] got ${got[i]} want ${want[i]}`;
        return got.length === n ? undefined : `length ${got.length}`;
      };
      expect(mismatch(out0.data as NumericTypedArray, c.sum)).toBeUndefined();
      expect(mismatch(out1.data as NumericTypedArray, c.diff)).toBeUndefined();
    }
  });

  it('FP16 over HTTP: binary data in and out, the same raw words; JSON data is refused, as by Triton', async () => {
    const c = caseFor('FP16', 4);
    const a = Buffer.from((c.a as Uint16Array).buffer.slice(0));
    const b = Buffer.from((c.b as Uint16Array).buffer.slice(0));
    const header = Buffer.from(JSON.stringify({
      inputs: [
        { name: 'INPUT0', datatype: 'FP16', shape: [4], parameters: { binary_data_size: a.length } },
        { name: 'INPUT1', datatype: 'FP16', shape: [4], parameters: { binary_data_size: b.length } },
      ],
      outputs: [{ name: 'OUTPUT0' }],
    }));
    const res = await fetch(`${server.url}/v2/models/add_sub_fp16/infer`, {
      method: 'POST', headers: { 'Inference-Header-Content-Length': String(header.length) }, body: Buffer.concat([header, a, b]),
    });
    expect(res.status).toBe(200);
    const body = Buffer.from(await res.arrayBuffer());
    const jsonLength = Number(res.headers.get('inference-header-content-length'));
    // FP16 has no JSON form, so the output comes back as binary data even though JSON was asked for.
    const head = JSON.parse(body.subarray(0, jsonLength).toString());
    expect(head.outputs[0]).toMatchObject({ name: 'OUTPUT0', datatype: 'FP16', shape: [4], parameters: { binary_data_size: 8 } });
    const words = body.subarray(jsonLength);
    expect(Array.from(new Uint16Array(words.buffer.slice(words.byteOffset, words.byteOffset + 8)))).toEqual(Array.from(c.sum as Uint16Array));
    const json = await http(`${server.url}/v2/models/add_sub_fp16/infer`, 'POST', {
      inputs: [
        { name: 'INPUT0', datatype: 'FP16', shape: [4], data: Array.from(c.a as Uint16Array) },
        { name: 'INPUT1', datatype: 'FP16', shape: [4], data: Array.from(c.b as Uint16Array) },
      ],
    });
    expect(json.status).toBe(400);
    expect(json.json.error).toMatch(/receiving FP16 data via JSON is not supported/);
  });
});

describe('BYTES', () => {
  it('strings in, upper-cased strings out (UTF-8, empty, long, many)', async () => {
    const words = ['hello', '', 'straße', 'ünïcödé ✓', 'x'.repeat(5000), ...Array.from({ length: 200 }, (_, i) => `item ${i}`)];
    const enc = new TextEncoder();
    const result = await server.core.infer(request('upper', [{ name: 'TEXT', datatype: 'BYTES', shape: [words.length], data: words.map((w) => enc.encode(w)) }]));
    const out = result.outputs[0]!;
    expect(out).toMatchObject({ name: 'UPPER', datatype: 'BYTES', shape: [words.length] });
    const dec = new TextDecoder();
    expect((out.data as Uint8Array[]).map((b) => dec.decode(b))).toEqual(words.map((w) => w.toUpperCase()));
  });

  it('over HTTP JSON', async () => {
    const r = await http(`${server.url}/v2/models/upper/infer`, 'POST', { inputs: [{ name: 'TEXT', datatype: 'BYTES', shape: [2], data: ['abc', 'déf'] }] });
    expect(r.status).toBe(200);
    expect(r.json.outputs[0]).toMatchObject({ name: 'UPPER', datatype: 'BYTES', shape: [2], data: ['ABC', 'DÉF'] });
  });
});
