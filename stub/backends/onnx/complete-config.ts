/**
 * Completes a model config from an ONNX file's graph and checks it against the graph, as Triton's
 * onnxruntime backend does (onnxruntime_backend src/onnxruntime.cc: ModelState::AutoCompleteConfig,
 * AutoCompleteMaxBatch and AutoCompleteIO; ModelInstanceState::ValidateInputs and ValidateOutputs):
 *
 * - max_batch_size: the model can batch when every graph input and output has a dynamic first
 *   dim. Triton auto-completes only when the config does not list both inputs and outputs, and
 *   then sets a max_batch_size of 0 (protobuf cannot tell 0 from absent) to the default, 4, on a
 *   model that can batch, adding `dynamic_batching {}` when no batcher is set. One deviation, in
 *   the direction of loading: a config that lists a tensor with its full dims (batch dim
 *   included) and no max_batch_size keeps 0, which is what its dims say (Triton would set 4 and
 *   then refuse those dims). max_batch_size > 0 on a model that cannot batch is an error.
 * - inputs and outputs the config omits come from the graph: names as in the file, dynamic dims
 *   -1, TYPE_* data types, the batch dim left out when max_batch_size > 0. A tensor with no dims
 *   left (a scalar, or one value per batch item) gets `dims: [ 1 ]`, and with max_batch_size > 0
 *   `reshape { shape: [ ] }` (AutoCompleteIO). Listed tensors are checked against the graph
 *   (name, data type, dims or reshape shape) and get missing fields filled; a scalar accepts only
 *   dims of 1s (ValidateInputs: "scalar tensor ... should only provide 1").
 * - every graph input must be fed: by `input`, or, for a sequence model, by a control input or an
 *   implicit state (sequence-tensors.ts); those are not auto-completed into `input` (Triton would
 *   add them and then count them twice), and state outputs not into `output` (the sequence
 *   batcher keeps them). Graph inputs that are initializers are not required (onnxruntime leaves
 *   them out of the session's inputs); Triton lets a config list them as optional inputs to
 *   override them, which onnxruntime-node cannot do (it drops feeds that are not session inputs),
 *   so listing one is refused rather than ignored.
 */
import { fromConfigType, toConfigType } from '../../../src/core/dtypes.js';
import type { ModelConfig } from '../../api/model.js';
import type { GraphIO } from './graph-io.js';
import { ioSpec, list, type IOSpec } from './io-spec.js';
import { sequenceTensors, type SequenceTensors } from './sequence-tensors.js';

/** Triton's default for auto-completed models that can batch (--backend-config default-max-batch-size). */
export const DEFAULT_MAX_BATCH_SIZE = 4;

type ConfigIO = { name: string; data_type?: string; dims?: number[]; reshape?: { shape: number[] }; optional?: boolean; [k: string]: unknown };

export function completeConfig(config: ModelConfig, io: GraphIO, file: string): ModelConfig {
  const c = structuredClone(config) as ModelConfig;
  const inputs = io.inputs.map((v) => ioSpec(v, 'input', file));
  const outputs = io.outputs.map((v) => ioSpec(v, 'output', file));
  const initializerInputs = new Set((io.initializerInputs ?? []).map((v) => v.name));
  const givenIn = (c.input ?? []) as ConfigIO[];
  const givenOut = (c.output ?? []) as ConfigIO[];

  const blocker = [...inputs, ...outputs].find((s) => !s.dims || s.dims.length === 0 || s.dims[0] !== -1);
  const canBatch = blocker === undefined;
  const batchInputs = Array.isArray(c.batch_input) ? c.batch_input.length : 0;
  const listsBoth = givenIn.length + batchInputs > 0 && givenOut.length > 0;
  const given = Number(c.max_batch_size ?? 0);
  let mbs: number;
  if (given === 0 && !listsBoth && !writesFullDims([...givenIn, ...givenOut], [...inputs, ...outputs])) {
    mbs = canBatch ? DEFAULT_MAX_BATCH_SIZE : 0;
    const batchers = ['dynamic_batching', 'sequence_batching', 'ensemble_scheduling'];
    if (mbs > 1 && !batchers.some((k) => c[k] !== undefined && c[k] !== null)) c.dynamic_batching = {};
  } else {
    mbs = given;
    if (mbs > 0 && !canBatch) {
      const why = !blocker!.dims ? 'has no shape in the file' : blocker!.dims.length === 0 ? 'is a scalar' : `has first dimension ${blocker!.dims[0]}`;
      throw new Error(
        `${file}: max_batch_size is ${mbs} but the model cannot batch: '${blocker!.name}' ${why} ` +
          '(every input and output needs a dynamic first dimension); set max_batch_size: 0 and give full dims',
      );
    }
  }
  c.max_batch_size = mbs;
  if (!c.backend) c.backend = 'onnxruntime';

  const seq = sequenceTensors(c.sequence_batching, inputs, outputs, mbs, file);
  c.input = completeInputs(givenIn, inputs, seq, initializerInputs, mbs, file) as ModelConfig['input'];
  c.output = (givenOut.length === 0
    ? outputs.filter((s) => !seq.stateOutputs.has(s.name)).map((s) => autoIO(s, 'output', mbs, file))
    : givenOut.map((g) => checkIO(g, outputs, 'output', mbs, file))) as ModelConfig['output'];
  return c;
}

/** Whether a listed tensor has as many dims as the graph's, batch dim included. */
function writesFullDims(given: ConfigIO[], specs: IOSpec[]): boolean {
  return given.some((g) => {
    const s = specs.find((m) => m.name === g.name);
    return !g.reshape && Array.isArray(g.dims) && g.dims.length > 0 && s?.dims !== undefined && s.dims.length === g.dims.length;
  });
}

function completeInputs(given: ConfigIO[], inputs: IOSpec[], seq: SequenceTensors, initializerInputs: Set<string>, mbs: number, file: string): ConfigIO[] {
  const fed = inputs.filter((s) => !seq.inputs.has(s.name));
  if (given.length === 0) return fed.map((s) => autoIO(s, 'input', mbs, file));
  for (const g of given) {
    if (seq.inputs.has(g.name)) {
      throw new Error(`${file}: config input '${g.name}' is a sequence control or state input (sequence_batching); the sequence batcher feeds it, so remove it from input`);
    }
    if (initializerInputs.has(g.name)) {
      throw new Error(
        `${file}: config input '${g.name}' is an initializer of the graph (a graph input with a built-in value); ` +
          'onnxruntime-node cannot override initializers, so remove it from input (the model uses its built-in value)',
      );
    }
    if (g.optional === true && fed.some((s) => s.name === g.name)) {
      throw new Error(`${file}: config input '${g.name}' is optional, but the graph needs it in every run (in an ONNX model only initializers can be left out); remove optional: true`);
    }
  }
  const out = given.map((g) => checkIO(g, fed, 'input', mbs, file));
  const missing = fed.filter((s) => !given.some((g) => g.name === s.name));
  if (missing.length > 0) {
    throw new Error(
      `${file}: the config lists inputs but not ${list(missing)}; onnxruntime needs every input of the graph` +
        ' (list them in input, or, for a sequence model, as sequence_batching control_input or state)',
    );
  }
  return out;
}

function debatched(s: IOSpec, mbs: number): number[] {
  return mbs > 0 ? s.dims!.slice(1) : [...s.dims!];
}

/** A tensor the config leaves out, as Triton's AutoCompleteIO writes it. */
function autoIO(s: IOSpec, kind: string, mbs: number, file: string): ConfigIO {
  if (!s.dims) {
    // An output the file declares without a shape still comes back with the shape onnxruntime
    // computes. Triton reads an unknown rank as rank 0 and writes dims [1]; -1 says the size is
    // unknown. An input needs its real dims (clients are checked against them), so it must be listed.
    if (kind === 'output') return { name: s.name, data_type: toConfigType(s.dtype), dims: [-1] };
    throw new Error(`${file}: ${kind} '${s.name}' has no shape in the file; list it in the config with its dims`);
  }
  const dims = debatched(s, mbs);
  const io: ConfigIO = { name: s.name, data_type: toConfigType(s.dtype), dims: dims.length > 0 ? dims : [1] };
  // Empty dims are not a valid config: a scalar is dims [1]; batched, the model sees [batch].
  if (dims.length === 0 && mbs > 0) io.reshape = { shape: [] };
  return io;
}

/** A tensor the config lists: checked against the graph, missing data type and dims filled. */
function checkIO(g: ConfigIO, specs: IOSpec[], kind: string, mbs: number, file: string): ConfigIO {
  const s = specs.find((m) => m.name === g.name);
  if (!s) throw new Error(`${file}: config ${kind} '${g.name}' is not an ${kind} of the model; the model's ${kind}s are ${list(specs)}`);
  if (g.data_type && g.data_type !== 'TYPE_INVALID' && fromConfigType(g.data_type) !== s.dtype) {
    throw new Error(`${file}: config ${kind} '${g.name}' says data_type ${g.data_type}, the model has ${toConfigType(s.dtype)}`);
  }
  const io: ConfigIO = { ...g, data_type: toConfigType(s.dtype) };
  const listed = Array.isArray(g.dims) && g.dims.length > 0;
  if (!s.dims) {
    if (!listed) throw new Error(`${file}: ${kind} '${s.name}' has no shape in the file; give its dims in the config`);
    return io;
  }
  const want = debatched(s, mbs);
  const where = `${file}: config ${kind} '${g.name}'`;
  if (want.length === 0) {
    if (mbs > 0) {
      // Graph shape [batch]: one value per batch item, which Triton's config writes as dims [1]
      // with an empty reshape.
      if (g.reshape && g.reshape.shape.length > 0) {
        throw new Error(`${where} has reshape [${g.reshape.shape.join(', ')}], but the model takes one value per batch item (shape [batch]); use reshape: { shape: [ ] }`);
      }
      if (!g.reshape && listed) {
        throw new Error(`${where} has dims [${g.dims!.join(', ')}], but the model takes one value per batch item (shape [batch]); use dims: [ 1 ] with reshape: { shape: [ ] }`);
      }
      return { ...io, dims: listed ? g.dims : [1], reshape: { shape: [] } };
    }
    const shown = g.reshape ? g.reshape.shape : listed ? g.dims! : [];
    if (shown.some((d) => d !== 1)) {
      throw new Error(`${where}: the model's '${g.name}' is a scalar, so the config may only give dims of 1 (as Triton: dims: [ 1 ]); found [${shown.join(', ')}]`);
    }
    return listed ? io : { ...io, dims: [1] };
  }
  if (!listed && !g.reshape) return { ...io, dims: want };
  const compared = g.reshape ? g.reshape.shape : g.dims!;
  if (compared.length !== want.length || compared.some((d, k) => want[k] !== -1 && d !== -1 && d !== want[k])) {
    throw new Error(
      `${where} has ${g.reshape ? 'reshape' : 'dims'} [${compared.join(', ')}], the model has [${want.join(', ')}]` +
        (mbs > 0 ? ` without the batch dim (max_batch_size ${mbs})` : ' (max_batch_size 0: the batch dim, if any, is part of dims)'),
    );
  }
  return io;
}
