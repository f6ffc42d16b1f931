/**
 * The graph tensors a sequence model's config feeds and takes through `sequence_batching` rather
 * than `input` / `output`: control inputs (START, END, READY, CORRID) and implicit state
 * (`state { input_name output_name }`). The sequence batcher adds them to every request (see
 * src/scheduler/sequence-batcher.ts) and keeps the state outputs, so they are graph inputs and
 * outputs the config need not list. Checked against the graph as Triton's onnxruntime backend
 * does (onnxruntime_backend src/onnxruntime.cc: ValidateBooleanSequenceControl,
 * ValidateTypedSequenceControl, the state inputs added to the expected input count, and the
 * state outputs checked in ValidateOutputs).
 */
import { fromConfigType, toConfigType, type DataType } from '../../../src/core/dtypes.js';
import type { IOSpec } from './io-spec.js';

export interface SequenceTensors {
  /** Control and state input names: graph inputs fed by the sequence batcher. */
  inputs: Set<string>;
  /** State output names: graph outputs the sequence batcher keeps. */
  stateOutputs: Set<string>;
}

interface ControlLike {
  kind?: string;
  int32_false_true?: number[];
  fp32_false_true?: number[];
  bool_false_true?: boolean[];
  data_type?: string;
}

interface SequenceBatchingLike {
  control_input?: { name?: string; control?: ControlLike[] }[];
  state?: { input_name?: string; output_name?: string; data_type?: string }[];
}

/** The data type the sequence batcher gives a control tensor (as its controlTensor does). */
function controlType(c: ControlLike): DataType {
  if (c.kind === 'CONTROL_SEQUENCE_CORRID') {
    const t = c.data_type && c.data_type !== 'TYPE_INVALID' ? fromConfigType(c.data_type) : undefined;
    return t ?? 'UINT64';
  }
  if ((c.fp32_false_true?.length ?? 0) === 2) return 'FP32';
  if ((c.bool_false_true?.length ?? 0) === 2) return 'BOOL';
  return 'INT32';
}

/**
 * The control and state tensors of `sequenceBatching`, checked against the graph; none when the
 * config has no sequence batcher. Throws an error naming `file`, the tensor and the fix.
 */
export function sequenceTensors(
  sequenceBatching: unknown,
  graphInputs: IOSpec[],
  graphOutputs: IOSpec[],
  mbs: number,
  file: string,
): SequenceTensors {
  const out: SequenceTensors = { inputs: new Set(), stateOutputs: new Set() };
  if (!sequenceBatching || typeof sequenceBatching !== 'object') return out;
  const sb = sequenceBatching as SequenceBatchingLike;
  const names = (specs: IOSpec[]) => specs.map((s) => `'${s.name}'`).join(', ');

  for (const ci of sb.control_input ?? []) {
    const name = ci.name ?? '';
    for (const c of ci.control ?? []) {
      const spec = graphInputs.find((s) => s.name === name);
      // Triton's words: "configuration specified sequence control '<name>', but model does not provide that input".
      if (!spec) {
        throw new Error(`${file}: configuration specified sequence control '${name}', but model does not provide that input; the model's inputs are ${names(graphInputs)}`);
      }
      // Control tensors have shape [1] without the batch dim, as Triton requires.
      if (spec.dims) {
        const debatched = mbs > 0 ? spec.dims.slice(1) : spec.dims;
        if (debatched.length !== 1 || debatched[0] !== 1) {
          throw new Error(`${file}: sequence control '${name}' in model has dims [${debatched.join(', ')}] but dims [1] is expected${mbs > 0 ? ' (after the batch dim)' : ''}`);
        }
      }
      const want = controlType(c);
      if (spec.dtype !== want) {
        throw new Error(
          `${file}: sequence control '${name}', the model expects data-type ${toConfigType(spec.dtype)} but the model configuration specifies data-type ${toConfigType(want)}` +
            (c.kind === 'CONTROL_SEQUENCE_CORRID' ? ' (control data_type)' : ' (int32_false_true, fp32_false_true or bool_false_true)'),
        );
      }
      out.inputs.add(name);
    }
  }

  for (const st of sb.state ?? []) {
    const stateType = st.data_type && st.data_type !== 'TYPE_INVALID' ? fromConfigType(st.data_type) : undefined;
    const input = graphInputs.find((s) => s.name === st.input_name);
    if (!input) {
      throw new Error(`${file}: sequence_batching state input_name '${st.input_name}' is not an input of the model; the model's inputs are ${names(graphInputs)}`);
    }
    const output = graphOutputs.find((s) => s.name === st.output_name);
    if (!output) {
      throw new Error(`${file}: sequence_batching state output_name '${st.output_name}' is not an output of the model; the model's outputs are ${names(graphOutputs)}`);
    }
    for (const [kind, spec] of [['input', input], ['output', output]] as const) {
      if (stateType && spec.dtype !== stateType) {
        throw new Error(`${file}: configuration expects datatype ${toConfigType(stateType)} for ${kind} state '${spec.name}', model provides ${toConfigType(spec.dtype)}`);
      }
    }
    out.inputs.add(input.name);
    out.stateOutputs.add(output.name);
  }
  return out;
}
