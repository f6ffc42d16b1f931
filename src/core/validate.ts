/**
 * The one check of an inference request against the model's IO contract, for every way a request
 * arrives: the HTTP codec, the gRPC codec and BLS calls from stubs (src/inference/gateway.ts), and model
 * warmup (src/model/model-version.ts) — hence here at the bottom, where all of them may import it. It runs
 * before anything reaches a scheduler, so a bad request costs one 400 / INVALID_ARGUMENT, never a
 * model execution. It knows nothing of JSON or protobuf.
 *
 * Every failure is a StubhostError STUBHOST_INVALID_INPUT. Where Triton refuses the same request,
 * the checks come in Triton's order and the message is Triton's, word for word (core
 * src/infer_request.cc, src/model.cc), since clients and their tests match those strings; the
 * checks Triton does not make name the tensor, what was expected and the fix.
 *
 * Serialized tensor bytes ⇄ TensorValue is ./tensor-bytes.ts.
 */
import { type DataType, isDataType } from './dtypes.js';
import type { ModelIOContract } from './service.js';
import type { TensorSpec } from './types.js';
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

/** An input header that passed the checks. */
export interface CheckedInput {
  name: string;
  datatype: DataType;
  shape: number[];
  spec: TensorSpec;
}

/**
 * Triton's prefix of request errors (core src/infer_request.h LogRequest): the request's id, or
 * `<id_unknown>`. Clients match the whole message, so it is part of the wording.
 */
export function logRequest(requestId: string | undefined): string {
  return `[request id: ${requestId ? requestId : '<id_unknown>'}] `;
}

/**
 * A version string as Triton's src/common.cc GetModelVersionFromString reads it: empty means
 * "the latest" (undefined here); otherwise what std::stol makes of it (leading blanks and a sign
 * allowed, digits up to the first non-digit), refused before the model is looked up.
 */
export function parseModelVersion(version: string | undefined): number | undefined {
  if (version === undefined || version === '') return undefined;
  const m = /^[ \t\n\v\f\r]*([+-]?\d+)/.exec(version);
  let n: bigint | undefined;
  if (m) n = BigInt(m[1]!);
  if (n === undefined || n > 0x7fffffffffffffffn || n < -0x8000000000000000n) {
    throw new StubhostError('STUBHOST_INVALID_ARG',
      `failed to get model version from specified version string '${version}' (details: stol), version should be an integral value > 0`);
  }
  if (n < 0n) {
    throw new StubhostError('STUBHOST_INVALID_ARG', `invalid model version specified '${version}' , version should be an integral value > 0`);
  }
  if (n > BigInt(Number.MAX_SAFE_INTEGER)) {
    // No repository holds such a version; Triton answers that it is not found.
    return Number.MAX_SAFE_INTEGER;
  }
  return Number(n);
}

/**
 * Checks the input headers of one request against the model, in the order Triton's core does
 * (src/infer_request.cc Normalize and ValidateRequestInputs) and with its words: inputs named
 * twice (as AddOriginalInput refuses them), the number of inputs, each name, the batch
 * dimension, the batch size, then each input's datatype and shape. Returns the checked inputs in
 * request order and the batch size (0 when the model does not batch). The shape must be an array
 * of non-negative integers and the datatype one of Triton's, as its front-ends parse them first.
 */
export function checkInputHeaders(
  contract: ModelIOContract, inputs: readonly InputHeader[], requestId = '',
): { checked: CheckedInput[]; batchSize: number } {
  const c = contract;
  const prefix = logRequest(requestId);
  const seen = new Set<string>();
  for (const { name, datatype, shape } of inputs) {
    if (seen.has(name)) throw invalidInput(`${prefix}input '${name}' already exists in request`);
    seen.add(name);
    if (!isDataType(datatype)) throw invalidInput(`invalid datatype for input ${name}: ${JSON.stringify(datatype)} is not one of Triton's datatypes`);
    if (!Array.isArray(shape) || !allNonNegativeInts(shape)) {
      const spec = c.inputs.find((s) => s.name === name);
      const example = spec ? ` e.g. ${fmtShape(expectedShape(spec, c.maxBatchSize).map((d) => (d < 0 ? 1 : d)))}` : '';
      throw invalidInput(`input '${name}': 'shape' must be an array of non-negative integers,${example}`);
    }
  }
  checkInputCount(c, inputs, seen, prefix, true);

  const specs: TensorSpec[] = new Array(inputs.length);
  const batched = c.maxBatchSize > 0;
  let batchSize = 0;
  for (let i = 0; i < inputs.length; i++) {
    const { name } = inputs[i]!;
    const shape = inputs[i]!.shape as number[];
    const spec = c.inputs.find((s) => s.name === name);
    // as Triton's core src/model.cc GetInput (no request prefix there)
    if (spec === undefined) throw invalidInput(`unexpected inference input '${name}' for model '${c.name}'`);
    specs[i] = spec;
    if (!batched) continue;
    if (shape.length === 0) throw invalidInput(`${prefix}input '${name}' has no shape but model requires batch dimension for '${c.name}'`);
    if (i === 0 || batchSize === 0) batchSize = shape[0]!;
    else if (shape[0] !== batchSize) throw invalidInput(`${prefix}input '${name}' batch size does not match other inputs for '${c.name}'`);
  }
  checkInputCount(c, inputs, seen, prefix, false);
  if (batched && batchSize > c.maxBatchSize) {
    throw invalidInput(`${prefix}inference request batch-size must be <= ${c.maxBatchSize} for '${c.name}'`);
  }
  if (batched && inputs.length > 0 && batchSize < 1) {
    // Triton would run a batch of 0; stubhost refuses it rather than execute nothing.
    throw invalidInput(`${prefix}inference request batch-size must be >= 1 for '${c.name}' (the first dimension of every input is the batch size)`);
  }

  const checked: CheckedInput[] = new Array(inputs.length);
  for (let i = 0; i < inputs.length; i++) {
    const { name } = inputs[i]!;
    const datatype = inputs[i]!.datatype as DataType;
    const shape = inputs[i]!.shape as number[];
    const spec = specs[i]!;
    if (datatype !== spec.datatype) {
      throw invalidInput(`${prefix}inference input '${name}' data-type is '${datatype}', but model '${c.name}' expects '${spec.datatype}'`);
    }
    checkShape(name, shape, spec, c, prefix);
    checked[i] = { name, datatype, shape, spec };
  }
  return { checked, batchSize };
}

/**
 * Triton's core src/infer_request.cc ValidateRequestInputs, word for word. Triton checks only the
 * count; `countOnly` false also refuses a required input left out while the count is right (an
 * optional one given instead), with the same words, rather than run the model without it.
 */
function checkInputCount(c: ModelIOContract, inputs: readonly InputHeader[], given: Set<string>, prefix: string, countOnly: boolean): void {
  let required = 0;
  let requiredGiven = 0;
  for (const s of c.inputs) {
    if (s.optional) continue;
    required++;
    if (given.has(s.name)) requiredGiven++;
  }
  if (inputs.length <= c.inputs.length && inputs.length >= required && (countOnly || requiredGiven === required)) return;
  // The lists are built only for the error: the check above runs for every request.
  const missing = c.inputs.filter((s) => !s.optional && !given.has(s.name)).map((s) => `'${s.name}'`);
  const got = inputs.map((t) => `'${t.name}'`);
  // Triton builds the missing list by dropping its last character, so an empty one prints as ']'.
  const missingList = missing.length > 0 ? `[${missing.join(',')}]` : ']';
  const tail = `inputs for model '${c.name}'. Got input(s) [${got.join(',')}], but missing required input(s) ${missingList}. Please provide all required input(s).`;
  if (c.inputs.length === required) {
    throw invalidInput(`${prefix}expected ${c.inputs.length} inputs but got ${inputs.length} ${tail}`);
  }
  throw invalidInput(`${prefix}expected number of inputs between ${required} and ${c.inputs.length} but got ${inputs.length} ${tail}`);
}

/** Triton's shape check (core src/infer_request.cc Normalize), on the shape without its batch dimension. */
function checkShape(name: string, shape: number[], spec: TensorSpec, c: ModelIOContract, prefix: string): void {
  const batched = c.maxBatchSize > 0;
  const off = batched ? 1 : 0;
  let match = shape.length - off === spec.dims.length;
  for (let i = 0; match && i < spec.dims.length; i++) {
    const d = spec.dims[i]!;
    if (d !== -1 && d !== shape[i + off]) match = false;
  }
  if (match) return;
  const note = batched
    ? 'NOTE: Setting a non-zero max_batch_size in the model config requires a batch dimension to be prepended to each input shape. If you want to specify the full shape including the batch dim in your input dims config, try setting max_batch_size to zero. See the model configuration docs for more info on max_batch_size.'
    : '';
  throw invalidInput(`${prefix}unexpected shape for input '${name}' for model '${c.name}'. Expected ${fmtShape(expectedShape(spec, c.maxBatchSize))}, got ${fmtShape(shape)}. ${note}`);
}

function allNonNegativeInts(shape: unknown[]): boolean {
  for (let i = 0; i < shape.length; i++) if (!isNonNegativeInt(shape[i])) return false;
  return true;
}

/** Validates every input header of a request at once. Returns the batch size (0 when the model does not batch). */
export function validateInferInputs(contract: ModelIOContract, inputs: readonly InputHeader[], requestId = ''): number {
  return checkInputHeaders(contract, inputs, requestId).batchSize;
}

/**
 * One requested output: it must exist in the config (Triton's core src/model.cc GetOutput words)
 * and be named once (`seen` collects the names of one request). Returns its spec.
 */
export function checkRequestedOutput(contract: ModelIOContract, name: string, seen: Set<string>, requestId = ''): TensorSpec {
  const spec = contract.outputs.find((s) => s.name === name);
  if (spec === undefined) throw invalidInput(`unexpected inference output '${name}' for model '${contract.name}'`);
  if (seen.has(name)) throw invalidInput(`${logRequest(requestId)}output '${name}' already exists in request`);
  seen.add(name);
  return spec;
}

export function validateRequestedOutputs(contract: ModelIOContract, names: readonly string[], requestId = ''): void {
  const seen = new Set<string>();
  for (const name of names) checkRequestedOutput(contract, name, seen, requestId);
}
