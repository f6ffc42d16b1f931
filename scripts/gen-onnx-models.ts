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
 *   simple_sequence.onnx       the graph of Triton's example simple_sequence (docs/examples/
 *                              model_repository): INPUT, START, READY INT32 [?, 1] →
 *                              OUTPUT = READY * (INPUT + START); the first dim unnamed, as there
 *   simple_dyna_sequence.onnx  simple_dyna_sequence's: also END INT32 and CORRID UINT64 →
 *                              OUTPUT = READY * (INPUT + START + END * CORRID)
 *   sequence_implicit.onnx     an accumulator with implicit state, like Triton's QA implicit-state
 *                              models (qa/common/gen_qa_implicit_models.py): INPUT, INPUT_STATE,
 *                              START, READY INT32 [batch, 1] → OUTPUT = OUTPUT_STATE =
 *                              INPUT + INPUT_STATE * (READY and not START)
 *   scalar.onnx         rank-0 X FP32 and K INT64 → Y = X + X, K2 = K + K (rank 0)
 *   per_item.onnx       X FP32 [batch] (one value per batch item) → Y = X + X [batch]
 *   initializer_input.onnx  INPUT0 FP32 [batch, 4] and BIAS FP32 [4], a graph input that is also an
 *                       initializer ([1, 2, 3, 4]) → OUTPUT0 = INPUT0 + BIAS
 *   mixed_types.onnx    input_ids INT64 and attention_mask BOOL [batch, sequence], text STRING [batch]
 *                       → ids (Identity), inverted_mask (Not), text_out (Identity)
 *   fixed_first_dim.onnx    x FP32 [1, seq] → y = x + x [1, seq]: symbolic dim, but cannot batch
 *   reduce_batch.onnx   x FP32 [N, 3] → y = ReduceSum over N [1, 3]: output first dim fixed
 *   unshaped_output.onnx    x FP32 [N, 3] → y = x + x, y declared with no shape (unknown rank)
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

/** A fixed size, a symbolic name, or null: dynamic with no name (neither field set). */
type Dim = number | string | null;

/** `dims` undefined: no shape at all (unknown rank), as some converters write outputs. */
function valueInfo(name: string, elemType: number, dims: Dim[] | undefined): OnnxTypes.IValueInfoProto {
  const dim = (d: Dim): OnnxTypes.TensorShapeProto.IDimension => (d === null ? {} : typeof d === 'number' ? { dimValue: d } : { dimParam: d });
  return { name, type: { tensorType: dims ? { elemType, shape: { dim: dims.map(dim) } } : { elemType } } };
}

function int64Init(name: string, dims: number[], values: number[]): OnnxTypes.ITensorProto {
  return { name, dims, dataType: T.INT64, int64Data: values };
}

const castTo = (input: string, output: string, to: number): OnnxTypes.INodeProto =>
  ({ opType: 'Cast', input: [input], output: [output], name: `cast_${output}`, attribute: [{ name: 'to', i: to, type: onnx.AttributeProto.AttributeType.INT }] });
const op = (opType: string, input: string[], output: string): OnnxTypes.INodeProto => ({ opType, input, output: [output], name: output });

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

function simpleSequence(): Uint8Array {
  const io = (name: string) => valueInfo(name, T.INT32, [null, 1]);
  return model({
    name: 'simple_sequence',
    node: [op('Identity', ['INPUT'], '_INPUT'), op('Add', ['_INPUT', 'START'], 'add'), op('Mul', ['READY', 'add'], 'CAST'), castTo('CAST', 'OUTPUT', T.INT32)],
    input: [io('INPUT'), io('START'), io('READY')],
    output: [io('OUTPUT')],
  });
}

function simpleDynaSequence(): Uint8Array {
  const io = (name: string, type: number = T.INT32) => valueInfo(name, type, [null, 1]);
  return model({
    name: 'simple_dyna_sequence',
    node: [
      op('Identity', ['INPUT'], '_INPUT'), castTo('CORRID', 'corrid_int32', T.INT32), op('Add', ['_INPUT', 'START'], 'add0'),
      op('Mul', ['END', 'corrid_int32'], 'mul0'), op('Add', ['add0', 'mul0'], 'sum0'), op('Mul', ['READY', 'sum0'], 'CAST'),
      castTo('CAST', 'OUTPUT', T.INT32),
    ],
    input: [io('INPUT'), io('START'), io('END'), io('READY'), io('CORRID', T.UINT64)],
    output: [io('OUTPUT')],
  });
}

function sequenceImplicit(): Uint8Array {
  const io = (name: string) => valueInfo(name, T.INT32, ['batch', 1]);
  return model({
    name: 'sequence_implicit',
    node: [
      castTo('START', 'start_bool', T.BOOL), op('Not', ['start_bool'], 'not_start'), castTo('READY', 'ready_bool', T.BOOL),
      op('And', ['not_start', 'ready_bool'], 'keep'), castTo('keep', 'keep_int32', T.INT32),
      op('Mul', ['INPUT_STATE', 'keep_int32'], 'kept_state'), op('Add', ['INPUT', 'kept_state'], 'OUTPUT'),
      op('Identity', ['OUTPUT'], 'OUTPUT_STATE'),
    ],
    input: [io('INPUT'), io('INPUT_STATE'), io('START'), io('READY')],
    output: [io('OUTPUT'), io('OUTPUT_STATE')],
  });
}

function scalar(): Uint8Array {
  return model({
    name: 'scalar',
    node: [op('Add', ['X', 'X'], 'Y'), op('Add', ['K', 'K'], 'K2')],
    input: [valueInfo('X', T.FLOAT, []), valueInfo('K', T.INT64, [])],
    output: [valueInfo('Y', T.FLOAT, []), valueInfo('K2', T.INT64, [])],
  });
}

function perItem(): Uint8Array {
  return model({
    name: 'per_item',
    node: [op('Add', ['X', 'X'], 'Y')],
    input: [valueInfo('X', T.FLOAT, ['batch'])],
    output: [valueInfo('Y', T.FLOAT, ['batch'])],
  });
}

function initializerInput(): Uint8Array {
  return model({
    name: 'initializer_input',
    node: [op('Add', ['INPUT0', 'BIAS'], 'OUTPUT0')],
    initializer: [floatInit('BIAS', [4], Float32Array.of(1, 2, 3, 4))],
    input: [valueInfo('INPUT0', T.FLOAT, ['batch', 4]), valueInfo('BIAS', T.FLOAT, [4])],
    output: [valueInfo('OUTPUT0', T.FLOAT, ['batch', 4])],
  });
}

function mixedTypes(): Uint8Array {
  return model({
    name: 'mixed_types',
    node: [op('Identity', ['input_ids'], 'ids'), op('Not', ['attention_mask'], 'inverted_mask'), op('Identity', ['text'], 'text_out')],
    input: [valueInfo('input_ids', T.INT64, ['batch', 'sequence']), valueInfo('attention_mask', T.BOOL, ['batch', 'sequence']), valueInfo('text', T.STRING, ['batch'])],
    output: [valueInfo('ids', T.INT64, ['batch', 'sequence']), valueInfo('inverted_mask', T.BOOL, ['batch', 'sequence']), valueInfo('text_out', T.STRING, ['batch'])],
  });
}

function fixedFirstDim(): Uint8Array {
  return model({
    name: 'fixed_first_dim',
    node: [op('Add', ['x', 'x'], 'y')],
    input: [valueInfo('x', T.FLOAT, [1, 'seq'])],
    output: [valueInfo('y', T.FLOAT, [1, 'seq'])],
  });
}

function reduceBatch(): Uint8Array {
  return model({
    name: 'reduce_batch',
    node: [{ opType: 'ReduceSum', input: ['x', 'axes'], output: ['y'], name: 'reduce', attribute: [{ name: 'keepdims', i: 1, type: onnx.AttributeProto.AttributeType.INT }] }],
    initializer: [int64Init('axes', [1], [0])],
    input: [valueInfo('x', T.FLOAT, ['N', 3])],
    output: [valueInfo('y', T.FLOAT, [1, 3])],
  });
}

function unshapedOutput(): Uint8Array {
  return model({
    name: 'unshaped_output',
    node: [op('Add', ['x', 'x'], 'y')],
    input: [valueInfo('x', T.FLOAT, ['N', 3])],
    output: [valueInfo('y', T.FLOAT, undefined)],
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
  write(path.join(FIXTURES, 'simple_sequence.onnx'), simpleSequence());
  write(path.join(FIXTURES, 'simple_dyna_sequence.onnx'), simpleDynaSequence());
  write(path.join(FIXTURES, 'sequence_implicit.onnx'), sequenceImplicit());
  write(path.join(FIXTURES, 'scalar.onnx'), scalar());
  write(path.join(FIXTURES, 'per_item.onnx'), perItem());
  write(path.join(FIXTURES, 'initializer_input.onnx'), initializerInput());
  write(path.join(FIXTURES, 'mixed_types.onnx'), mixedTypes());
  write(path.join(FIXTURES, 'fixed_first_dim.onnx'), fixedFirstDim());
  write(path.join(FIXTURES, 'reduce_batch.onnx'), reduceBatch());
  write(path.join(FIXTURES, 'unshaped_output.onnx'), unshapedOutput());
  write(path.join(root, 'models/mlp_onnx/1/model.onnx'), mlpBytes);
  write(path.join(root, 'models/mlp_ts/1/model.onnx'), mlpBytes);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) generate();
