/**
 * Checks an inference request against the model's IO contract before it reaches a scheduler,
 * the way Triton's core does: unknown, missing or duplicate inputs, data types, shapes (with the
 * batch dimension when max_batch_size > 0), byte sizes and BYTES length prefixes. Every failure
 * is a StubhostError STUBHOST_INVALID_INPUT whose message names the tensor and the model.
 *
 * Written for the gRPC front-end; it knows nothing of protobuf, so the HTTP front-end can share
 * it (the plan is to merge it with src/server/http/codec.ts).
 */
import {
  decodeBytesElements, elementCount, elementSize, isDataType, viewAs,
  type DataType,
} from '../../core/dtypes.js';
import type { ModelIOContract } from '../../core/service.js';
import type { TensorSpec, TensorValue } from '../../core/types.js';
import { StubhostError } from '../../errors.js';

/** What a request says about one input before its data is looked at. */
export interface InputHeader {
  name: string;
  datatype: string;
  shape: number[];
}

function invalid(message: string): StubhostError {
  return new StubhostError('STUBHOST_INVALID_INPUT', message);
}

function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(',')}]`;
}

/** The shape a request must send for `spec`: the config dims, led by the batch dimension (-1) when batching. */
export function expectedRequestShape(spec: TensorSpec, maxBatchSize: number): number[] {
  return maxBatchSize > 0 ? [-1, ...spec.dims] : [...spec.dims];
}

/**
 * Validates input names, data types and shapes against the contract. Returns the batch size
 * (0 when the model does not batch).
 */
export function validateInferInputs(contract: ModelIOContract, inputs: readonly InputHeader[]): number {
  const model = contract.name;
  const specs = new Map(contract.inputs.map((s) => [s.name, s]));
  const seen = new Set<string>();
  let batchSize = -1;

  for (const input of inputs) {
    const spec = specs.get(input.name);
    if (!spec) throw invalid(`unexpected inference input '${input.name}' for model '${model}'`);
    if (seen.has(input.name)) throw invalid(`input '${input.name}' is given more than once for model '${model}'`);
    seen.add(input.name);

    if (!isDataType(input.datatype)) {
      throw invalid(`inference input '${input.name}' has unknown data-type '${input.datatype}' for model '${model}'`);
    }
    if (input.datatype !== spec.datatype) {
      throw invalid(`inference input '${input.name}' data-type is '${input.datatype}', but model '${model}' expects '${spec.datatype}'`);
    }
    for (const d of input.shape) {
      if (!Number.isSafeInteger(d) || d < 0) {
        throw invalid(`inference input '${input.name}' for model '${model}' has an invalid shape ${fmtShape(input.shape)}: dimensions must be non-negative integers`);
      }
    }

    const expected = expectedRequestShape(spec, contract.maxBatchSize);
    const matches = input.shape.length === expected.length && expected.every((d, i) => d === -1 || d === input.shape[i]);
    if (!matches) {
      throw invalid(`unexpected shape for input '${input.name}' for model '${model}'. Expected ${fmtShape(expected)}, got ${fmtShape(input.shape)}`);
    }

    if (contract.maxBatchSize > 0) {
      const b = input.shape[0]!;
      if (b < 1 || b > contract.maxBatchSize) {
        throw invalid(`inference request batch-size must be between 1 and ${contract.maxBatchSize} for model '${model}', input '${input.name}' has ${b}`);
      }
      if (batchSize === -1) batchSize = b;
      else if (b !== batchSize) {
        throw invalid(`input '${input.name}' batch size ${b} does not match the other inputs (${batchSize}) for model '${model}'`);
      }
    }
  }

  const missing = contract.inputs.filter((s) => !s.optional && !seen.has(s.name)).map((s) => s.name);
  if (missing.length > 0) {
    const required = contract.inputs.filter((s) => !s.optional).length;
    throw invalid(
      `expected ${required} inputs but got ${inputs.length} inputs for model '${model}'. ` +
      `Got input(s) [${inputs.map((i) => `'${i.name}'`).join(', ')}], but missing required input(s) ` +
      `[${missing.map((n) => `'${n}'`).join(', ')}]. Please provide all required input(s).`,
    );
  }
  return Math.max(batchSize, 0);
}

/** Requested output names must exist in the config and appear once. */
export function validateRequestedOutputs(contract: ModelIOContract, names: readonly string[]): void {
  const known = new Set(contract.outputs.map((o) => o.name));
  const seen = new Set<string>();
  for (const name of names) {
    if (!known.has(name)) throw invalid(`unexpected inference output '${name}' for model '${contract.name}'`);
    if (seen.has(name)) throw invalid(`output '${name}' is requested more than once for model '${contract.name}'`);
    seen.add(name);
  }
}

/**
 * Makes a TensorValue from the serialized bytes of one (already validated) input: numeric data
 * becomes a typed array over `bytes` (copied only when the offset is not a multiple of the
 * element size, which typed arrays cannot view), BYTES becomes one view per element.
 */
export function tensorFromBytes(header: InputHeader & { datatype: DataType }, bytes: Uint8Array, modelName: string): TensorValue {
  const { name, datatype, shape } = header;
  const count = elementCount(shape);
  if (datatype === 'BYTES') {
    const items = decodeBytesElements(bytes, count);
    if (typeof items === 'string') {
      throw invalid(`input '${name}' for model '${modelName}': BYTES data ${items}`);
    }
    return { name, datatype, shape, data: items };
  }
  const size = elementSize(datatype);
  const expected = count * size;
  if (bytes.byteLength !== expected) {
    throw invalid(`unexpected total byte size ${bytes.byteLength} for input '${name}' for model '${modelName}', expecting ${expected} (shape ${fmtShape(shape)}, ${datatype})`);
  }
  let src = bytes;
  if (src.byteOffset % size !== 0) {
    src = new Uint8Array(bytes.byteLength);
    src.set(bytes);
  }
  return { name, datatype, shape, data: viewAs(datatype, src.buffer, src.byteOffset, src.byteLength) };
}

export { invalid as invalidInputError };
