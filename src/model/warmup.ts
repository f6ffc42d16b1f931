/**
 * A model's warmup samples (config model_warmup, Triton's ModelWarmup): the inputs of each, built
 * from zeros, random data or a file in the model's warmup/ folder and checked against the
 * model's inputs. ModelVersion (model-version.ts) runs them before the version is READY.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { ModelConfig } from '../config/load.js';
import { confinedPath } from '../config/model-paths.js';
import { fromConfigType, typedArrayFor } from '../core/dtypes.js';
import type { ModelIOContract } from '../core/service.js';
import type { TensorValue } from '../core/types.js';
import { validateInferInputs } from '../core/validate.js';
import { tensorFromBytes } from '../core/tensor-bytes.js';
import { StubhostError } from '../errors.js';

type WarmupConfig = NonNullable<ModelConfig['model_warmup']>[number];

export interface WarmupContext {
  /** The model and its folder, as config errors name them. */
  where: string;
  modelDir: string;
  config: ModelConfig;
  contract: ModelIOContract;
}

/** Sample `index`'s inputs and how often it runs; a sample that does not fit the model is a config error. */
export function warmupSample(sample: WarmupConfig, index: number, ctx: WarmupContext): { inputs: TensorValue[]; repeat: number } {
  const where = `${ctx.where}: model_warmup[${index}]${sample.name ? ` '${sample.name}'` : ''}`;
  const batched = ctx.config.max_batch_size > 0;
  const batch = Math.max(1, sample.batch_size || 1);
  const inputs: TensorValue[] = [];
  for (const [name, spec] of Object.entries(sample.inputs)) {
    const datatype = fromConfigType(spec.data_type ?? 'TYPE_FP32')!;
    const dims = spec.dims.map((d) => (d < 0 ? 1 : d));
    const shape = batched ? [batch, ...dims] : dims;
    const count = shape.reduce((a, b) => a * b, 1);
    const data = spec.input_data_file
      ? warmupFileData(ctx.modelDir, where, name, spec.input_data_file, datatype, dims, batched ? batch : 1)
      : warmupData(datatype, count, spec.random_data === true);
    inputs.push({ name, datatype, shape, data });
  }
  // As Triton: a sample must match the model's inputs (a config error, not a model crash).
  try {
    validateInferInputs(ctx.contract, inputs);
  } catch (err) {
    throw new StubhostError('STUBHOST_CONFIG', `${where}: ${(err as Error).message}; make the warmup inputs match the model's inputs`);
  }
  return { inputs, repeat: Math.max(1, sample.count || 1) };
}

/**
 * Triton's `input_data_file`: raw row-major bytes of one sample (BYTES as 4-byte length
 * prefixes and bytes) in the model's `warmup/` folder, repeated for each batch row.
 */
function warmupFileData(modelDir: string, where: string, input: string, file: string, datatype: TensorValue['datatype'], dims: number[], batch: number): TensorValue['data'] {
  const field = `${where}.inputs['${input}'].input_data_file`;
  const base = path.join(modelDir, 'warmup');
  const full = confinedPath(base, base, file, field, "the model's warmup/ folder");
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(fs.readFileSync(full));
  } catch (err) {
    throw new StubhostError('STUBHOST_CONFIG', `${field}: cannot read ${full} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); put the file in the model's warmup/ folder`);
  }
  let one: TensorValue;
  try {
    one = tensorFromBytes({ name: input, datatype, shape: dims }, bytes, `warmup file ${file}`);
  } catch (err) {
    throw new StubhostError('STUBHOST_CONFIG', `${field}: ${(err as Error).message}`);
  }
  if (batch === 1) return one.data;
  if (Array.isArray(one.data)) return Array.from({ length: batch }, () => one.data as Uint8Array[]).flat();
  const src = one.data as Exclude<TensorValue['data'], Uint8Array[]>;
  const out = new (src.constructor as new (n: number) => typeof src)(src.length * batch);
  for (let b = 0; b < batch; b++) (out as Uint8Array).set(src as Uint8Array, b * src.length);
  return out;
}

function warmupData(datatype: TensorValue['datatype'], count: number, random: boolean): TensorValue['data'] {
  if (datatype === 'BYTES') return Array.from({ length: count }, () => new Uint8Array(random ? [65] : []));
  const data = new (typedArrayFor(datatype))(count);
  // random_data: floats get random values; every other type stays zero.
  if (random && (datatype === 'FP32' || datatype === 'FP64')) for (let i = 0; i < count; i++) data[i] = Math.random();
  return data;
}
