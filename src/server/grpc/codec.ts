/**
 * ModelInferRequest / ModelInferResponse (as @grpc/proto-loader hands them over with keepCase,
 * longs as strings, oneofs named) ⇄ the host's InferRequest / InferResult.
 *
 * Data path: raw_input_contents arrive as Buffers that view the received message; numeric inputs
 * become typed arrays over those bytes, and numeric outputs go back as Buffers over the output's
 * own memory, so tensor bytes are not copied on either side (except to fix alignment).
 */
import type { ModelIOContract } from '../../core/service.js';
import type { InferRequest, InferResult, ParamValue, Parameters, RequestedOutput, TensorValue } from '../../core/types.js';
import { StubhostError } from '../../errors.js';
import { type DataType, type NumericTypedArray, elementSize, typedArrayFor } from '../../core/dtypes.js';
import {
  type CheckedInput, type InputHeader, checkInputHeaders, invalidInput, logRequest, parseModelVersion, validateRequestedOutputs,
} from '../../core/validate.js';
import { tensorBytes, tensorFromBytes } from '../../core/tensor-bytes.js';
import { grpcClassificationCount } from '../../inference/classification.js';
import { type AnswerOptions, type ValueReader, applyRequestParameter, defaultAnswerOptions } from '../request-options.js';
import { type ShmAccess, type ShmRef, checkShmOutput, shmInputBytes, shmRefOf, withoutShmParameters, writeShmOutput } from '../shm-registry.js';

// ---- wire shapes (the subset the front-end reads or writes) ----

export type ParamChoice = 'bool_param' | 'int64_param' | 'string_param' | 'double_param' | 'uint64_param';

export interface InferParameterMsg {
  parameter_choice?: ParamChoice;
  bool_param?: boolean;
  /** int64 / uint64 arrive as decimal strings (longs: String) so no precision is lost. */
  int64_param?: string | number;
  string_param?: string;
  double_param?: number;
  uint64_param?: string | number;
}

export interface InferTensorContentsMsg {
  bool_contents?: boolean[];
  int_contents?: number[];
  int64_contents?: (string | number)[];
  uint_contents?: number[];
  uint64_contents?: (string | number)[];
  fp32_contents?: number[];
  fp64_contents?: number[];
  bytes_contents?: Uint8Array[];
}

export interface InferInputTensorMsg {
  name: string;
  datatype: string;
  shape: (string | number)[];
  parameters?: Record<string, InferParameterMsg>;
  contents?: InferTensorContentsMsg | null;
}

export interface ModelInferRequestMsg {
  model_name: string;
  model_version: string;
  id: string;
  parameters?: Record<string, InferParameterMsg>;
  inputs: InferInputTensorMsg[];
  outputs?: { name: string; parameters?: Record<string, InferParameterMsg> }[];
  raw_input_contents?: Uint8Array[];
}

export interface ModelInferResponseMsg {
  model_name: string;
  model_version: string;
  id: string;
  parameters: Record<string, InferParameterMsg>;
  outputs: { name: string; datatype: string; shape: number[]; parameters: Record<string, InferParameterMsg> }[];
  raw_output_contents: Buffer[];
}

// ---- parameters ----

/** int64/uint64 become numbers when exact, else stay decimal strings (ParamValue has no bigint). */
function paramValue(p: InferParameterMsg): ParamValue | undefined {
  switch (p.parameter_choice) {
    case 'bool_param': return p.bool_param ?? false;
    case 'string_param': return p.string_param ?? '';
    case 'double_param': return p.double_param ?? 0;
    case 'int64_param':
    case 'uint64_param': {
      const raw = p[p.parameter_choice] ?? 0;
      const n = Number(raw);
      return Number.isSafeInteger(n) ? n : String(raw);
    }
    default: return undefined;
  }
}

export function decodeParameters(params: Record<string, InferParameterMsg> | undefined, skip?: Set<string>): Parameters {
  const out: Parameters = {};
  if (!params) return out;
  // for-in, not Object.entries: no array per call (the maps are plain objects, nothing inherited).
  for (const key in params) {
    if (skip?.has(key)) continue;
    const v = paramValue(params[key]!);
    if (v !== undefined) out[key] = v;
  }
  return out;
}

/** True if a decoded map has an entry (most tensors and requests carry no parameters). */
function hasEntries<T>(map: Record<string, T> | undefined): map is Record<string, T> {
  for (const _ in map) return true;
  return false;
}

export function encodeParameter(v: ParamValue): InferParameterMsg {
  if (typeof v === 'boolean') return { bool_param: v };
  if (typeof v === 'string') return { string_param: v };
  return Number.isInteger(v) ? { int64_param: v } : { double_param: v };
}

export function encodeParameters(params: Parameters | undefined): Record<string, InferParameterMsg> {
  const out: Record<string, InferParameterMsg> = {};
  if (params) for (const k in params) out[k] = encodeParameter(params[k]!);
  return out;
}

function badParam(name: string, want: string): StubhostError {
  return new StubhostError('STUBHOST_INVALID_ARG', `invalid value type for '${name}' parameter, expected ${want}`);
}

function intParam(name: string, p: InferParameterMsg): bigint {
  if (p.parameter_choice !== 'int64_param' && p.parameter_choice !== 'uint64_param') throw badParam(name, 'int64_param or uint64_param');
  const v = BigInt(p[p.parameter_choice] ?? 0);
  if (v < 0n) throw new StubhostError('STUBHOST_INVALID_ARG', `'${name}' parameter must not be negative, got ${v}`);
  return v;
}

function boolParam(name: string, p: InferParameterMsg): boolean {
  if (p.parameter_choice !== 'bool_param') throw badParam(name, 'bool_param');
  return p.bool_param ?? false;
}

/** Typed InferParameters for the request options (../request-options.ts), with Triton's gRPC words for a wrong type. */
const GRPC_VALUES: ValueReader<InferParameterMsg> = {
  uint: intParam,
  bool: boolParam,
  sequenceId: (p) => (p.parameter_choice === 'string_param' ? p.string_param ?? '' : intParam('sequence_id', p)),
};

// ---- tensors ----

/** int64 dims arrive as decimal strings; anything not a safe non-negative integer is refused by the validator. */
function toDims(shape: readonly (string | number)[]): number[] {
  // A loop into a literal, not map(Number): map's array went from small integers to doubles
  // (a runtime call) on every request; the literal's allocation site learns its kind once.
  const dims: number[] = [];
  for (let i = 0; i < shape.length; i++) dims.push(Number(shape[i]));
  return dims;
}

/** Which datatype each typed contents field carries, as Triton's src/grpc/infer_handler.cc reads them. */
const CONTENTS_FIELDS: readonly (readonly [keyof InferTensorContentsMsg, (dt: string) => string])[] = [
  ['bool_contents', () => 'BOOL'],
  ['int_contents', (dt) => (dt === 'INT8' || dt === 'INT16' ? dt : 'INT32')],
  ['int64_contents', () => 'INT64'],
  ['uint_contents', (dt) => (dt === 'UINT8' || dt === 'UINT16' ? dt : 'UINT32')],
  ['uint64_contents', () => 'UINT64'],
  ['fp32_contents', () => 'FP32'],
  ['fp64_contents', () => 'FP64'],
  ['bytes_contents', () => 'BYTES'],
];

/** The typed contents field of each numeric datatype (the reverse of CONTENTS_FIELDS). */
const CONTENTS_FIELD_OF: Record<Exclude<DataType, 'BYTES' | 'FP16' | 'BF16'>, keyof InferTensorContentsMsg> = {
  BOOL: 'bool_contents', INT8: 'int_contents', INT16: 'int_contents', INT32: 'int_contents', INT64: 'int64_contents',
  UINT8: 'uint_contents', UINT16: 'uint_contents', UINT32: 'uint_contents', UINT64: 'uint64_contents',
  FP32: 'fp32_contents', FP64: 'fp64_contents',
};
const toBigInt = (v: unknown): bigint => BigInt(v as string | number);
const boolToByte = (v: unknown): number => (v ? 1 : 0);

/**
 * Typed `contents` (the slower, non-raw form) → TensorValue; FP16/BF16 exist only as raw bytes.
 * The checks and their words are Triton's: src/grpc/infer_handler.cc InferGRPCToInputHelper for
 * the field, core src/infer_request.cc for the size.
 */
function tensorFromContents(input: CheckedInput, c: InferTensorContentsMsg, request: { model: string; requestId: string }): TensorValue {
  const { name, datatype, shape } = input;
  let filled = false;
  for (const [field, carries] of CONTENTS_FIELDS) {
    if ((c[field]?.length ?? 0) === 0) continue;
    if (filled) {
      throw invalidInput(`unexpected explicit tensor data for input tensor '${name}' for model '${request.model}', binary data was already supplied.`);
    }
    filled = true;
    const dt = carries(datatype);
    if (dt !== datatype) {
      throw invalidInput(`unexpected explicit tensor data for input tensor '${name}' for model '${request.model}' of type '${dt}', expected datatype '${datatype}'`);
    }
  }
  let count = 1;
  for (const d of shape) count *= d;
  const pick = <T>(values: T[] | undefined): T[] => {
    const list = values ?? [];
    if (list.length !== count) {
      if (datatype === 'BYTES') {
        throw invalidInput(`${logRequest(request.requestId)}expected ${count} string elements for inference input '${name}' for model '${request.model}', got ${list.length}`);
      }
      const size = elementSize(datatype);
      throw invalidInput(`${logRequest(request.requestId)}input byte size mismatch for input '${name}' for model '${request.model}'. Expected ${count * size}, got ${list.length * size}`);
    }
    return list;
  };
  if (datatype === 'FP16' || datatype === 'BF16') {
    throw invalidInput(`input '${name}': ${datatype} data must be sent in raw_input_contents (there is no typed contents field for it)`);
  }
  if (datatype === 'BYTES') return { name, datatype, shape, data: pick(c.bytes_contents) };
  // The typed array of each dtype is the one table of src/core/dtypes.ts.
  const values = pick(c[CONTENTS_FIELD_OF[datatype]] as (string | number | boolean)[] | undefined);
  const Ctor = typedArrayFor(datatype) as unknown as { from(values: ArrayLike<unknown>, map: (v: unknown) => number | bigint): NumericTypedArray };
  const data = Ctor.from(values, datatype === 'INT64' || datatype === 'UINT64' ? toBigInt : datatype === 'BOOL' ? boolToByte : Number);
  return { name, datatype, shape, data };
}

/** The parameters of an output that has none (frozen: shared by every such output). */
const NO_PARAMETERS: Record<string, InferParameterMsg> = Object.freeze({});

/** The requested outputs of a request that names none (never written to). */
const NO_OUTPUTS: RequestedOutput[] = [];

/**
 * Raw contents a typed array can view: as they are when their offset in the message suits the
 * element size, else copied into Node's buffer pool (aligned to 8 bytes), which for small tensors
 * costs no allocation of its own as the copy tensorFromBytes would make does.
 */
function aligned(bytes: Uint8Array, datatype: DataType): Uint8Array {
  if (datatype === 'BYTES' || bytes.byteOffset % elementSize(datatype) === 0) return bytes;
  const copy = Buffer.allocUnsafe(bytes.byteLength);
  copy.set(bytes);
  return copy;
}

export interface DecodedInferRequest {
  request: InferRequest;
  /** The client asked for Triton's empty final response on decoupled streams. */
  enableEmptyFinalResponse: boolean;
}

/**
 * ModelInferRequest → InferRequest, validated against `contract` (throws StubhostError).
 * The returned request has no signal; the caller attaches the call's. `shm`: the server's system
 * shared-memory regions; without it, tensors that name a region are refused as unsupported.
 */
export function decodeInferRequest(msg: ModelInferRequestMsg, contract: ModelIOContract, shm?: ShmAccess): DecodedInferRequest {
  const model = contract.name;
  // Triton reads the version before it looks the model up (src/common.cc GetModelVersionFromString).
  const modelVersion = parseModelVersion(msg.model_version);

  // As Triton's core (src/infer_request.cc Normalize): requested outputs first, then the inputs.
  const requested = msg.outputs;
  const outputs: RequestedOutput[] = requested === undefined || requested.length === 0 ? NO_OUTPUTS : requested.map((o) => {
    const params = decodeParameters(o.parameters);
    const classes = grpcClassificationCount(o.parameters?.classification, shmRefOf(params, `output '${o.name}'`) !== undefined);
    if (classes !== undefined) params.classification = classes; // applied by the inference layer (src/inference/classification.ts)
    return hasEntries(params) ? { name: o.name, parameters: params } : { name: o.name };
  });
  if (outputs.length > 0) validateRequestedOutputs(contract, outputs.map((o) => o.name), msg.id);
  const headers: InputHeader[] = new Array(msg.inputs.length);
  for (let i = 0; i < headers.length; i++) {
    const t = msg.inputs[i]!;
    headers[i] = { name: t.name, datatype: t.datatype, shape: toDims(t.shape) };
  }
  const { checked } = checkInputHeaders(contract, headers, msg.id);
  // Each input's parameters, and the shared-memory region they name, for all inputs before any
  // data is read (Triton's order of refusals); the arrays exist only if an input has parameters.
  let inputParams: Parameters[] | undefined;
  let shmRefs: (ShmRef | undefined)[] | undefined;
  for (let i = 0; i < msg.inputs.length; i++) {
    const t = msg.inputs[i]!;
    if (!hasEntries(t.parameters)) continue;
    inputParams ??= new Array(msg.inputs.length);
    shmRefs ??= new Array(msg.inputs.length);
    inputParams[i] = decodeParameters(t.parameters);
    shmRefs[i] = shmRefOf(inputParams[i], `input '${t.name}'`);
  }

  // As Triton's src/grpc/infer_handler.cc InferGRPCToInput: input by input, the ones not in shared
  // memory take the next raw_input_contents entry, and contents may not be given alongside raw
  // contents. What is left over is refused, as Triton's frontend does.
  const raw = msg.raw_input_contents ?? [];
  const sizeContext = { model, requestId: msg.id };
  let rawIndex = 0;
  const inputs: TensorValue[] = new Array(msg.inputs.length);
  for (let i = 0; i < inputs.length; i++) {
    const t = msg.inputs[i]!;
    const input = checked[i]!;
    const ref = shmRefs?.[i];
    let tensor: TensorValue;
    if (ref !== undefined) {
      if (t.contents) {
        throw invalidInput(`unexpected 'content' provided when using shared memory for input tensor '${t.name}' for model '${msg.model_name}'`);
      }
      tensor = tensorFromBytes(input, shmInputBytes(shm, ref, t.name), `data in shared memory region '${ref.region}'`, sizeContext);
    } else if (t.contents && raw.length > 0) {
      throw invalidInput(`contents field must not be specified when using raw_input_contents for '${t.name}' for model '${msg.model_name}'`);
    } else if (t.contents) {
      tensor = tensorFromContents(input, t.contents, sizeContext);
    } else if (raw.length > rawIndex) {
      tensor = tensorFromBytes(input, aligned(raw[rawIndex++]!, input.datatype), 'raw_input_contents', sizeContext);
    } else {
      throw invalidInput(`unable to find data for input tensor '${t.name}' for model '${msg.model_name}' in request.`);
    }
    const params = withoutShmParameters(inputParams?.[i]);
    if (params !== undefined) tensor.parameters = params;
    inputs[i] = tensor;
  }
  if (rawIndex < raw.length) {
    // Triton ignores entries left over; they mean client and server disagree on which input is which.
    throw invalidInput(`expected ${rawIndex} raw_input_contents (one per input not in shared memory) for model '${model}', got ${raw.length}`);
  }
  for (const o of outputs) {
    const ref = shmRefOf(o.parameters, `output '${o.name}'`);
    if (ref !== undefined) checkShmOutput(shm, ref, o.name);
  }

  const request: InferRequest = {
    id: msg.id,
    modelName: msg.model_name,
    modelVersion,
    inputs,
    outputs: outputs.length > 0 ? outputs : undefined,
    parameters: {},
    priority: 0,
    timeoutUs: 0,
  };
  const p = msg.parameters;
  if (!hasEntries(p)) return { request, enableEmptyFinalResponse: false };
  const answer: AnswerOptions = defaultAnswerOptions();
  for (const key in p) {
    const param = p[key]!;
    if (applyRequestParameter(request, answer, key, param, GRPC_VALUES)) continue;
    const v = paramValue(param);
    if (v !== undefined) request.parameters[key] = v;
  }
  return { request, enableEmptyFinalResponse: answer.emptyFinalResponse };
}

/** The output's bytes as a Buffer: numeric data viewed in place (one view, not two). */
function rawBytesOf(t: TensorValue): Buffer {
  const d = t.data;
  const b = t.datatype === 'BYTES' || !ArrayBuffer.isView(d) ? tensorBytes(t) : d;
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

/**
 * InferResult → ModelInferResponse with raw_output_contents. When the request named outputs, only
 * those are sent (in the result's order), whatever the model produced. Outputs requested in shared
 * memory are written there and sent with `shared_memory_region` / `shared_memory_byte_size` and an
 * empty raw_output_contents entry, so entries still line up with outputs (as Triton does).
 */
export function encodeInferResponse(
  result: InferResult, request?: Pick<InferRequest, 'outputs'>, shm?: ShmAccess,
): ModelInferResponseMsg {
  let tensors = result.outputs;
  const requested = request?.outputs;
  // Most requests name no outputs: then there is nothing to filter or look up.
  const wanted = requested !== undefined && requested.length > 0 ? new Map(requested.map((o) => [o.name, o])) : undefined;
  if (wanted !== undefined) tensors = tensors.filter((t) => wanted.has(t.name));
  const outputs: ModelInferResponseMsg['outputs'] = [];
  const raw: Buffer[] = [];
  for (const t of tensors) {
    const ref = wanted === undefined ? undefined : shmRefOf(wanted.get(t.name)?.parameters, `output '${t.name}'`);
    let params = t.parameters;
    if (ref !== undefined) {
      params = writeShmOutput(shm, t, ref);
      raw.push(Buffer.alloc(0));
    } else {
      raw.push(rawBytesOf(t));
    }
    outputs.push({ name: t.name, datatype: t.datatype, shape: t.shape, parameters: params === undefined ? NO_PARAMETERS : encodeParameters(params) });
  }
  return {
    model_name: result.modelName,
    model_version: result.modelVersion,
    id: result.id,
    parameters: encodeParameters(result.parameters),
    outputs,
    raw_output_contents: raw,
  };
}
