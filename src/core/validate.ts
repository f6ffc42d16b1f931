/**
 * The one check of an inference request against the model's IO contract, for every way a request
 * arrives: the HTTP codec, the gRPC codec and BLS calls from stubs (src/server/core.ts), and model
 * warmup (src/model/model-version.ts) — hence here at the bottom, where all of them may import it. It runs
 * before anything reaches a scheduler, so a bad request costs one 400 / INVALID_ARGUMENT, never a
 * model execution. It knows nothing of JSON or protobuf.
 *
 * Every failure is a StubhostError STUBHOST_INVALID_INPUT whose message names the tensor, what
 * was expected and, where there is one, the fix.
 *
 * Also here: serialized tensor bytes ⇄ TensorValue (`tensorFromBytes` / `tensorBytes`), the form
 * shared by HTTP binary data, gRPC raw contents and system shared memory.
 */
import {
  type DataType, type NumericTypedArray, decodeBytesElements, elementCount, elementSize, encodeBytesElements,
  isDataType, viewAs,
} from './dtypes.js';
import type { ModelIOContract } from './service.js';
import type { TensorSpec, TensorValue } from './types.js';
import { StubhostError } from '../errors.js';

export function invalidInput(message: string): StubhostError {
  return new StubhostError('STUBHOST_INVALID_INPUT', message);
}

export function isNonNegativeInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

export function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(',')}]`;
}

/** The shape a client must send for `spec`: led by the batch dimension (-1) when the model batches. */
export function expectedShape(spec: TensorSpec, maxBatchSize: number): number[] {
  return maxBatchSize > 0 ? [-1, ...spec.dims] : [...spec.dims];
}

/** What a request says about one input before its data is looked at (fields unchecked). */
export interface InputHeader {
  name: string;
  datatype: unknown;
  shape: unknown;
}

/** An input header that passed `InputValidator.check`. */
export interface CheckedInput {
  name: string;
  datatype: DataType;
  shape: number[];
  spec: TensorSpec;
}

/**
 * Checks the inputs of one request one at a time, in request order, so a codec can check a
 * header and then decode its data before looking at the next (its errors then come in the
 * order the client wrote the inputs). Call `finish()` after the last one.
 */
export class InputValidator {
  readonly #contract: ModelIOContract;
  readonly #seen = new Set<string>();
  #batch: { size: number; input: string } | undefined;

  constructor(contract: ModelIOContract) {
    this.#contract = contract;
  }

  /** Name, duplicates, datatype, shape (batch dimension included) and batch-size agreement. */
  check(input: InputHeader): CheckedInput {
    const c = this.#contract;
    const { name, datatype, shape } = input;
    let spec: TensorSpec | undefined;
    for (const s of c.inputs) {
      if (s.name === name) {
        spec = s;
        break;
      }
    }
    if (spec === undefined) {
      throw invalidInput(`unexpected input '${name}' for model '${c.name}'; the model's inputs are: ${c.inputs.map((s) => s.name).join(', ') || '(none)'}`);
    }
    if (this.#seen.has(name)) throw invalidInput(`input '${name}' appears more than once; send each input once`);
    this.#seen.add(name);

    if (!isDataType(datatype)) throw invalidInput(`input '${name}': unknown datatype ${JSON.stringify(datatype)}; expected ${spec.datatype}`);
    if (datatype !== spec.datatype) throw invalidInput(`input '${name}': expected datatype ${spec.datatype}, got ${datatype}`);

    if (!Array.isArray(shape) || !allNonNegativeInts(shape)) {
      throw invalidInput(`input '${name}': 'shape' must be an array of non-negative integers, e.g. ${fmtShape(expectedShape(spec, c.maxBatchSize).map((d) => (d < 0 ? 1 : d)))}`);
    }
    checkShape(name, shape, spec, c.maxBatchSize);
    if (c.maxBatchSize > 0) {
      if (this.#batch === undefined) this.#batch = { size: shape[0]!, input: name };
      else if (this.#batch.size !== shape[0]) {
        throw invalidInput(`input '${name}': batch size ${shape[0]} does not match batch size ${this.#batch.size} of input '${this.#batch.input}'; every input needs the same first dimension`);
      }
    }
    return { name, datatype, shape, spec };
  }

  /** Every required input was given. Returns the batch size (0 when the model does not batch). */
  finish(): number {
    const c = this.#contract;
    for (const spec of c.inputs) {
      if (!spec.optional && !this.#seen.has(spec.name)) {
        throw invalidInput(`missing required input '${spec.name}' for model '${c.name}' (datatype ${spec.datatype}, shape ${fmtShape(expectedShape(spec, c.maxBatchSize))})`);
      }
    }
    return this.#batch?.size ?? 0;
  }
}

function checkShape(name: string, shape: number[], spec: TensorSpec, maxBatchSize: number): void {
  const batched = maxBatchSize > 0;
  const rank = spec.dims.length + (batched ? 1 : 0);
  // The expected shape is formatted only for a message (no closure: tsx would __name it per call).
  if (shape.length !== rank) {
    throw invalidInput(`input '${name}': expected shape ${fmtShape(expectedShape(spec, maxBatchSize))}${batched ? ' (first dimension is the batch size)' : ''}, got ${fmtShape(shape)} of rank ${shape.length} instead of ${rank}`);
  }
  if (batched && (shape[0]! < 1 || shape[0]! > maxBatchSize)) {
    throw invalidInput(`input '${name}': batch size ${shape[0]} (first dimension of ${fmtShape(shape)}) must be 1..${maxBatchSize}, the model's max_batch_size`);
  }
  const off = batched ? 1 : 0;
  for (let i = 0; i < spec.dims.length; i++) {
    const d = spec.dims[i]!;
    if (d !== -1 && d !== shape[i + off]) {
      throw invalidInput(`input '${name}': expected shape ${fmtShape(expectedShape(spec, maxBatchSize))}, got ${fmtShape(shape)} (dimension ${i + off} is ${shape[i + off]}, must be ${d})`);
    }
  }
}

function allNonNegativeInts(shape: unknown[]): boolean {
  for (let i = 0; i < shape.length; i++) if (!isNonNegativeInt(shape[i])) return false;
  return true;
}

/** Validates every input header of a request at once. Returns the batch size (0 when the model does not batch). */
export function validateInferInputs(contract: ModelIOContract, inputs: readonly InputHeader[]): number {
  const v = new InputValidator(contract);
  for (const input of inputs) v.check(input);
  return v.finish();
}

/**
 * One requested output: it must exist in the config and be named once (`seen` collects the names
 * of one request). Returns its spec.
 */
export function checkRequestedOutput(contract: ModelIOContract, name: string, seen: Set<string>): TensorSpec {
  const spec = contract.outputs.find((s) => s.name === name);
  if (spec === undefined) {
    throw invalidInput(`unknown output '${name}' requested from model '${contract.name}'; the model's outputs are: ${contract.outputs.map((s) => s.name).join(', ') || '(none)'}`);
  }
  if (seen.has(name)) throw invalidInput(`output '${name}' is requested more than once`);
  seen.add(name);
  return spec;
}

export function validateRequestedOutputs(contract: ModelIOContract, names: readonly string[]): void {
  const seen = new Set<string>();
  for (const name of names) checkRequestedOutput(contract, name, seen);
}

/**
 * Makes a TensorValue from the serialized bytes of one checked input: numeric data becomes a
 * typed array over `bytes` (copied only when the offset is not a multiple of the element size,
 * which typed arrays cannot view), BYTES becomes one view per element.
 *
 * @param source where the bytes came from, for messages ("binary data", "raw_input_contents", …)
 */
export function tensorFromBytes(
  input: { name: string; datatype: DataType; shape: number[] }, bytes: Uint8Array, source = 'binary data',
): TensorValue {
  const { name, datatype, shape } = input;
  const count = elementCount(shape);
  if (datatype === 'BYTES') {
    const items = decodeBytesElements(bytes, count);
    if (typeof items === 'string') {
      throw invalidInput(`input '${name}': bad BYTES ${source}: ${items}; each element is a 4-byte little-endian length followed by that many bytes, ${count} elements for shape ${fmtShape(shape)}`);
    }
    return { name, datatype, shape, data: items };
  }
  const size = elementSize(datatype);
  if (bytes.byteLength !== count * size) {
    throw invalidInput(`input '${name}': ${source} has ${bytes.byteLength} bytes but shape ${fmtShape(shape)} of ${datatype} needs ${count * size} (${count} elements x ${size} bytes)`);
  }
  let src = bytes;
  if (src.byteOffset % size !== 0) {
    src = new Uint8Array(bytes.byteLength);
    src.set(bytes);
  }
  return { name, datatype, shape, data: viewAs(datatype, src.buffer, src.byteOffset, src.byteLength) };
}

/** The serialized bytes of a tensor: numeric data viewed in place, BYTES length-prefixed. */
export function tensorBytes(t: TensorValue): Uint8Array {
  if (t.datatype === 'BYTES' || Array.isArray(t.data)) return encodeBytesElements(t.data as Uint8Array[]);
  const d = t.data as NumericTypedArray;
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}
