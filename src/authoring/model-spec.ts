/**
 * A model's inputs and outputs as its execute sees them, derived from a validated config: the
 * config's input/output lists, plus what the sequence batcher adds (control inputs, implicit
 * state in and out). What `stubhost types` writes its types from.
 */
import type { ModelConfig } from '../config/schema.js';
import { fromConfigType, type DataType } from '../core/dtypes.js';

export interface TensorShape {
  name: string;
  dtype: DataType;
  /** What execute sees: -1 (the batch) first when max_batch_size > 0, then reshape or dims. */
  shape: number[];
  optional: boolean;
  /** Where it comes from, for a comment (`TYPE_FP32 dims [4]`, `sequence control START`). */
  origin: string;
}

export interface ModelIO {
  name: string;
  maxBatchSize: number;
  decoupled: boolean;
  inputs: TensorShape[];
  outputs: TensorShape[];
}

function dtypeOf(configType: string | undefined, fallback: DataType): DataType {
  return (configType === undefined ? undefined : fromConfigType(configType)) ?? fallback;
}

export function modelIO(config: ModelConfig): ModelIO {
  const batch = config.max_batch_size > 0 ? [-1] : [];
  const dimsText = (dims: readonly number[]) => `[${dims.join(', ')}]`;
  const io = (t: { name: string; data_type?: string; dims: number[]; reshape?: { shape: number[] } }, optional: boolean): TensorShape => ({
    name: t.name,
    dtype: dtypeOf(t.data_type, 'FP32'),
    shape: [...batch, ...(t.reshape ? t.reshape.shape : t.dims)],
    optional,
    origin: `${t.data_type ?? 'TYPE_FP32'} dims ${dimsText(t.dims)}${t.reshape ? ` reshape ${dimsText(t.reshape.shape)}` : ''}`,
  });
  const inputs = config.input.map((t) => io(t, t.optional));
  const outputs = config.output.map((t) => io(t, false));
  const sb = config.sequence_batching;
  if (sb) {
    // As the sequence batcher builds them (src/scheduler/sequence-batcher.ts controlTensor): one element per request.
    for (const ci of sb.control_input) {
      for (const c of ci.control) {
        const dtype: DataType = c.kind === 'CONTROL_SEQUENCE_CORRID' ? dtypeOf(c.data_type, 'UINT64')
          : c.fp32_false_true.length === 2 ? 'FP32' : c.bool_false_true.length === 2 ? 'BOOL' : 'INT32';
        inputs.push({ name: ci.name, dtype, shape: [...batch, 1], optional: false, origin: `sequence control ${c.kind.replace('CONTROL_SEQUENCE_', '')}` });
      }
    }
    for (const st of sb.state) {
      const dtype = dtypeOf(st.data_type, 'FP32');
      inputs.push({ name: st.input_name, dtype, shape: [...batch, ...st.dims], optional: false, origin: `sequence state (the previous ${st.output_name})` });
      outputs.push({ name: st.output_name, dtype, shape: [...batch, ...st.dims], optional: false, origin: `sequence state (the next ${st.input_name})` });
    }
  }
  return { name: config.name, maxBatchSize: config.max_batch_size, decoupled: config.model_transaction_policy?.decoupled === true, inputs, outputs };
}
