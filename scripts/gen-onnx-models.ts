/**
 * Writes the small ONNX models the onnxruntime backend's tests and examples use, with onnx-proto
 * (no network, no Python). Deterministic: running it again gives byte-identical files, which are
 * checked in.
 *
 *   npx tsx scripts/gen-onnx-models.ts
 *
 * test/fixtures/onnx/
 *   mlp.onnx            INPUT0 FP32 [batch, 16] → MatMul+Add+Relu+MatMul+Add → OUTPUT0 FP32 [batch, 4]
 *   add_sub.onnx        INPUT0, INPUT1 FP32 [batch, 4] → OUTPUT0 = a + b, OUTPUT1 = a - b
 *   add_fixed.onnx      INPUT0, INPUT1 FP32 [2, 3] → OUTPUT0 = a + b (cannot batch: first dim fixed)
 *   identity_<t>.onnx   INPUT0 [batch, 4] → OUTPUT0, for fp32 fp64 fp16 int8 int32 int64 uint8 bool string
 * models/mlp_onnx/1/model.onnx and models/mlp_ts/1/model.onnx: copies of mlp.onnx.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import onnxProto from 'onnx-proto';
import type { onnx as OnnxTypes } from 'onnx-proto';

const { onnx } = onnxProto;
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const FIXTURES = path.join(root, 'test/fixtures/onnx');

const T = onnx.TensorProto.DataType;

type Dim = number | string;

function valueInfo(name: string, elemType: number, dims: Dim[]): OnnxTypes.IValueInfoProto {
  return {
    name,
    type: { tensorType: { elemType, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } },
  };
}

function floatInit(name: string, dims: number[], values: Float32Array): OnnxTypes.ITensorProto {
  return { name, dims, dataType: T.FLOAT, rawData: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) };
}

/** Weights from a fixed formula, so the file and the expected outputs never change. */
function weights(n: number, seed: number, scale: number): Float32Array {
  const w = new Float32Array(n);
  for (let i = 0; i < n; i++) w[i] = Math.sin(seed * 7.13 + i * 0.731) * scale;
  return w;
}

function model(graph: OnnxTypes.IGraphProto): Uint8Array {
  return onnx.ModelProto.encode({
    irVersion: 8,
    producerName: 'stubhost scripts/gen-onnx-models.ts',
    opsetImport: [{ domain: '', version: 13 }],
    graph,
  }).finish();
}

function mlp(): Uint8Array {
  return model({
    name: 'mlp',
    node: [
      { opType: 'MatMul', input: ['INPUT0', 'W1'], output: ['h0'], name: 'matmul1' },
      { opType: 'Add', input: ['h0', 'B1'], output: ['h1'], name: 'add1' },
      { opType: 'Relu', input: ['h1'], output: ['h2'], name: 'relu' },
      { opType: 'MatMul', input: ['h2', 'W2'], output: ['h3'], name: 'matmul2' },
      { opType: 'Add', input: ['h3', 'B2'], output: ['OUTPUT0'], name: 'add2' },
    ],
    initializer: [
      floatInit('W1', [16, 32], weights(16 * 32, 1, 0.5)),
      floatInit('B1', [32], weights(32, 2, 0.1)),
      floatInit('W2', [32, 4], weights(32 * 4, 3, 0.5)),
      floatInit('B2', [4], weights(4, 4, 0.1)),
    ],
    input: [valueInfo('INPUT0', T.FLOAT, ['batch', 16])],
    output: [valueInfo('OUTPUT0', T.FLOAT, ['batch', 4])],
  });
}

function addSub(): Uint8Array {
  return model({
    name: 'add_sub',
    node: [
      { opType: 'Add', input: ['INPUT0', 'INPUT1'], output: ['OUTPUT0'], name: 'add' },
      { opType: 'Sub', input: ['INPUT0', 'INPUT1'], output: ['OUTPUT1'], name: 'sub' },
    ],
    input: [valueInfo('INPUT0', T.FLOAT, ['batch', 4]), valueInfo('INPUT1', T.FLOAT, ['batch', 4])],
    output: [valueInfo('OUTPUT0', T.FLOAT, ['batch', 4]), valueInfo('OUTPUT1', T.FLOAT, ['batch', 4])],
  });
}

function addFixed(): Uint8Array {
  return model({
    name: 'add_fixed',
    node: [{ opType: 'Add', input: ['INPUT0', 'INPUT1'], output: ['OUTPUT0'], name: 'add' }],
    input: [valueInfo('INPUT0', T.FLOAT, [2, 3]), valueInfo('INPUT1', T.FLOAT, [2, 3])],
    output: [valueInfo('OUTPUT0', T.FLOAT, [2, 3])],
  });
}

export const IDENTITY_TYPES: Record<string, number> = {
  fp32: T.FLOAT, fp64: T.DOUBLE, fp16: T.FLOAT16, int8: T.INT8, int32: T.INT32, int64: T.INT64,
  uint8: T.UINT8, bool: T.BOOL, string: T.STRING,
};

function identity(elemType: number): Uint8Array {
  return model({
    name: 'identity',
    node: [{ opType: 'Identity', input: ['INPUT0'], output: ['OUTPUT0'], name: 'identity' }],
    input: [valueInfo('INPUT0', elemType, ['batch', 4])],
    output: [valueInfo('OUTPUT0', elemType, ['batch', 4])],
  });
}

function write(file: string, bytes: Uint8Array): void {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, bytes);
  console.log(`${path.relative(root, file)}  ${bytes.byteLength} bytes`);
}

export function generate(): void {
  const mlpBytes = mlp();
  write(path.join(FIXTURES, 'mlp.onnx'), mlpBytes);
  write(path.join(FIXTURES, 'add_sub.onnx'), addSub());
  write(path.join(FIXTURES, 'add_fixed.onnx'), addFixed());
  for (const [name, type] of Object.entries(IDENTITY_TYPES)) write(path.join(FIXTURES, `identity_${name}.onnx`), identity(type));
  write(path.join(root, 'models/mlp_onnx/1/model.onnx'), mlpBytes);
  write(path.join(root, 'models/mlp_ts/1/model.onnx'), mlpBytes);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) generate();
