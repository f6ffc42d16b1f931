/**
 * The helpers on the config a model's static `autoCompleteConfig(config)` receives, as Triton's
 * python backend gives `auto_complete_config` a `pb_utils.ModelConfig` (python_backend
 * src/resources/triton_python_backend_utils.py, class ModelConfig): `setMaxBatchSize`,
 * `setDynamicBatching`, `addInput`, `addOutput`, `setModelTransactionPolicy`, `asDict`, with
 * the same rules and the same error messages. The object stays the plain config as well
 * (fields can still be set directly); the helpers are non-enumerable, so they never travel with
 * the completed config.
 */
import { fromConfigType } from '../../src/core/dtypes.js';
import { ModelError } from './errors.js';
import type { ModelConfig } from './model.js';

/** An input `addInput` takes: Triton's properties, `optional` included. */
export interface AutoCompleteInput {
  name: string;
  data_type: string;
  dims: number[];
  optional?: boolean;
}

/** An output `addOutput` takes. */
export interface AutoCompleteOutput {
  name: string;
  data_type: string;
  dims: number[];
}

/** The config `autoCompleteConfig` receives: the model's config plus Triton's helper methods. */
export interface AutoCompleteModelConfig extends ModelConfig {
  /** The config as a plain object (the same fields; read it, or change it directly). */
  asDict(): ModelConfig;
  /**
   * Sets max_batch_size. Refused when the config already specifies a larger one (Triton: the
   * config wins over what the model code says it supports).
   */
  setMaxBatchSize(maxBatchSize: number): void;
  /** Adds `dynamic_batching {}` unless it is there; refused for sequence_batching and ensemble_scheduling models. */
  setDynamicBatching(): void;
  /**
   * Adds an input, or completes the one of that name the config lists: refused when the config's
   * data_type or (non-empty) dims or optional differ from these.
   */
  addInput(input: AutoCompleteInput): void;
  /** Adds an output, or completes the one of that name the config lists (same rules as addInput). */
  addOutput(output: AutoCompleteOutput): void;
  /** Sets `model_transaction_policy { decoupled }`; refused when the config already says otherwise. */
  setModelTransactionPolicy(policy: { decoupled?: boolean }): void;
}

/** Gives `config` (in place) the helper methods; what autoCompleteConfig returns is copied without them. */
export function withAutoCompleteHelpers(config: ModelConfig): AutoCompleteModelConfig {
  const c = config as AutoCompleteModelConfig;
  const name = (): string => String(c.name);
  const helpers: Omit<AutoCompleteModelConfig, keyof ModelConfig> = {
    asDict: () => c,
    setMaxBatchSize(maxBatchSize: number): void {
      if (!Number.isInteger(maxBatchSize) || maxBatchSize < 0) {
        throw new ModelError(`setMaxBatchSize in auto-complete-config function for model '${name()}': max_batch_size must be a non-negative integer, got ${String(maxBatchSize)}`, 'INVALID_ARG');
      }
      const current = Number(c.max_batch_size ?? 0);
      if (current > maxBatchSize) {
        throw new ModelError(`configuration specified max_batch_size ${current}, but in auto-complete-config function for model '${name()}' specified max_batch_size ${maxBatchSize}`, 'INVALID_ARG');
      }
      c.max_batch_size = maxBatchSize;
    },
    setDynamicBatching(): void {
      const found = c.sequence_batching !== undefined ? 'sequence_batching' : c.ensemble_scheduling !== undefined ? 'ensemble_scheduling' : undefined;
      if (found) {
        throw new ModelError(`Configuration specified scheduling_choice as '${found}', but auto-complete-config function for model '${name()}' tries to set scheduling_choice as 'dynamic_batching'`, 'INVALID_ARG');
      }
      c.dynamic_batching ??= {};
    },
    addInput(input: AutoCompleteInput): void {
      addTensor(c, 'input', input, ['name', 'data_type', 'dims', 'optional']);
    },
    addOutput(output: AutoCompleteOutput): void {
      addTensor(c, 'output', output, ['name', 'data_type', 'dims']);
    },
    setModelTransactionPolicy(policy: { decoupled?: boolean }): void {
      if (!policy || typeof policy !== 'object') throw new ModelError(`setModelTransactionPolicy in auto-complete-config function for model '${name()}' takes { decoupled: boolean }`, 'INVALID_ARG');
      for (const key of Object.keys(policy)) {
        if (key !== 'decoupled') throw new ModelError(`model transaction property in auto-complete-config function for model '${name()}' contains property other than 'decoupled'.`, 'INVALID_ARG');
      }
      const current = (c.model_transaction_policy ??= {});
      if (policy.decoupled === undefined) return;
      if (typeof policy.decoupled !== 'boolean') throw new ModelError(`setModelTransactionPolicy in auto-complete-config function for model '${name()}': decoupled must be true or false`, 'INVALID_ARG');
      if (current.decoupled !== undefined && current.decoupled !== policy.decoupled) {
        throw new ModelError(`trying to change decoupled property in auto-complete-config for model '${name()}', which is already set to '${current.decoupled ? 'True' : 'False'}'.`, 'INVALID_ARG');
      }
      current.decoupled = policy.decoupled;
    },
  };
  for (const [key, fn] of Object.entries(helpers)) {
    Object.defineProperty(c, key, { value: fn, enumerable: false, configurable: true, writable: true });
  }
  return c;
}

type TensorEntry = { name: string; data_type: string; dims: number[]; optional?: boolean };

function addTensor(c: ModelConfig, kind: 'input' | 'output', tensor: TensorEntry, allowed: readonly string[]): void {
  const model = String(c.name);
  if (!tensor || typeof tensor !== 'object') throw new ModelError(`${kind} in auto-complete-config function for model '${model}' must be an object { name, data_type, dims }`, 'INVALID_ARG');
  const label = typeof tensor.name === 'string' ? tensor.name : String(tensor.name);
  for (const key of Object.keys(tensor)) {
    if (!allowed.includes(key)) {
      const list = allowed.map((k) => `'${k}'`);
      throw new ModelError(`${kind} '${label}' in auto-complete-config function for model '${model}' contains property other than ${list.slice(0, -1).join(', ')} and ${list.at(-1)}.`, 'INVALID_ARG');
    }
  }
  if (tensor.name === undefined) throw new ModelError(`${kind} in auto-complete-config function for model '${model}' is missing 'name' property.`, 'INVALID_ARG');
  for (const prop of ['data_type', 'dims'] as const) {
    if (tensor[prop] === undefined) throw new ModelError(`${kind} '${label}' in auto-complete-config function for model '${model}' is missing '${prop}' property.`, 'INVALID_ARG');
  }
  // Beyond Triton's checks: the types the host's config validation would refuse later, said here.
  if (typeof tensor.data_type !== 'string' || fromConfigType(tensor.data_type) === undefined) {
    throw new ModelError(`${kind} '${label}' in auto-complete-config function for model '${model}': data_type must be a config type such as 'TYPE_FP32', got ${JSON.stringify(tensor.data_type)}`, 'INVALID_ARG');
  }
  if (!Array.isArray(tensor.dims) || !tensor.dims.every((d) => Number.isInteger(d) && d >= -1)) {
    throw new ModelError(`${kind} '${label}' in auto-complete-config function for model '${model}': dims must be an array of integers (-1 for any size), got ${JSON.stringify(tensor.dims)}`, 'INVALID_ARG');
  }
  const list = ((c as Record<string, unknown>)[kind] ??= []) as TensorEntry[];
  const current = list.find((t) => t.name === tensor.name);
  if (!current) {
    list.push({ ...tensor, dims: [...tensor.dims] });
    return;
  }
  if (current.data_type && current.data_type !== 'TYPE_INVALID' && current.data_type !== tensor.data_type) {
    throw new ModelError(`unable to load model '${model}', configuration expects datatype ${current.data_type} for ${kind} '${tensor.name}', model provides ${tensor.data_type}`, 'INVALID_ARG');
  }
  if (current.dims && current.dims.length > 0 && !sameDims(current.dims, tensor.dims)) {
    throw new ModelError(`model '${model}', tensor '${tensor.name}': the model expects dims ${fmt(tensor.dims)} but the model configuration specifies dims ${fmt(current.dims)}`, 'INVALID_ARG');
  }
  if (current.optional !== undefined && tensor.optional !== undefined && current.optional !== tensor.optional) {
    throw new ModelError(`model '${model}', tensor '${tensor.name}': the model expects optional ${tensor.optional ? 'True' : 'False'} but the model configuration specifies optional ${current.optional ? 'True' : 'False'}`, 'INVALID_ARG');
  }
  current.data_type = tensor.data_type;
  current.dims = [...tensor.dims];
  if (tensor.optional !== undefined) current.optional = tensor.optional;
}

function sameDims(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Dims as Triton's message prints a python list. */
function fmt(dims: readonly number[]): string {
  return `[${dims.join(', ')}]`;
}
