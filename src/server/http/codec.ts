/**
 * KServe v2 / Triton HTTP infer bodies: JSON tensors and Triton's binary tensor extension, in
 * both directions. Pure functions over bytes (no sockets), so they can be tested and reused alone.
 *
 * Every request is checked against the model's IO contract (src/core/validate.ts, shared with gRPC and
 * BLS) while it is decoded, before anything reaches a scheduler or a stub: a bad request costs one
 * 400, never a model execution. Tensors that name a system shared-memory region are read from it,
 * and outputs that name one are written there (../shm-registry.ts).
 * Tensor bytes sent as binary data are viewed in place (no JSON, no per-element work) when the
 * body buffer lets them be aligned; see `bodyAlignment` in server.ts.
 */
import { StubhostError } from '../../errors.js';
import { type DataType, type NumericTypedArray, elementCount, typedArrayFor } from '../../core/dtypes.js';
import type { InferRequest, InferResult, Parameters, RequestedOutput, TensorSpec, TensorValue } from '../../core/types.js';
import type { ModelIOContract } from '../../core/service.js';
import {
  type InputHeader, checkInputHeaders, checkRequestedOutput, fmtShape, invalidInput as invalid, isNonNegativeInt,
} from '../../core/validate.js';
import { tensorBytes, tensorFromBytes } from '../../core/tensor-bytes.js';
import { checkJsonNesting } from '../../core/json-nesting.js';
import { isClassifiable, unsupportedClassType } from '../../inference/classification.js';
import { JSON_VALUES, applyRequestParameter, defaultAnswerOptions } from '../request-options.js';
import { SHM_PARAMETERS, type ShmAccess, checkShmOutput, shmInputBytes, shmRefOf, writeShmOutput } from '../shm-registry.js';

/** Integer ranges checked on JSON data, so 300 never silently wraps to 44 in a UINT8 tensor. */
const INT_RANGE: Partial<Record<DataType, readonly [number, number]>> = {
  INT8: [-128, 127], INT16: [-32768, 32767], INT32: [-2147483648, 2147483647],
  UINT8: [0, 255], UINT16: [0, 65535], UINT32: [0, 4294967295],
};

const utf8Encoder = new TextEncoder();
/** `fatal` so that non-UTF-8 BYTES are detected and sent as binary instead of mangled. */
const utf8Strict = new TextDecoder('utf-8', { fatal: true });

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export interface DecodedInferRequest {
  request: InferRequest;
  /** `binary_data_output`: how outputs are sent when the request names none (or names one without `binary_data`). */
  binaryOutputDefault: boolean;
}

/**
 * Parses the `Inference-Header-Content-Length` header; undefined when absent.
 * Throws STUBHOST_INVALID_INPUT when it is not a non-negative integer.
 */
export function parseHeaderLength(value: string | string[] | undefined): number | undefined {
  if (value === undefined) return undefined;
  const s = Array.isArray(value) ? value[0] : value;
  const n = Number(s);
  if (s === undefined || s.trim() === '' || !isNonNegativeInt(n)) {
    throw invalid(`Inference-Header-Content-Length must be a non-negative integer byte count, got '${String(s)}'`);
  }
  return n;
}

/**
 * Decodes and validates one infer request body.
 *
 * @param body the whole request body
 * @param headerLength `Inference-Header-Content-Length`: the JSON is the first `headerLength`
 *   bytes and the inputs' binary data follows; undefined means the whole body is JSON
 * @param shm the server's registered system shared-memory regions; without it, tensors that name
 *   a region are refused as unsupported
 */
export function decodeInferRequest(
  body: Uint8Array,
  headerLength: number | undefined,
  contract: ModelIOContract,
  target: { modelName: string; modelVersion?: number },
  shm?: ShmAccess,
): DecodedInferRequest {
  if (headerLength !== undefined && headerLength > body.byteLength) {
    throw invalid(`Inference-Header-Content-Length is ${headerLength} but the body has only ${body.byteLength} bytes`);
  }
  const jsonEnd = headerLength ?? body.byteLength;
  let doc: unknown;
  checkJsonNesting(body, headerLength === undefined ? 'the infer request' : 'the infer request header', jsonEnd);
  try {
    // The text straight from the body (a Buffer from the HTTP layer): no view made for the JSON part.
    doc = JSON.parse(body instanceof Buffer ? body.toString('utf8', 0, jsonEnd) : Buffer.from(body.buffer, body.byteOffset, jsonEnd).toString('utf8'));
  } catch (err) {
    throw invalid(`malformed JSON in the infer request${headerLength !== undefined ? ' header' : ''}: ${(err as Error).message}`);
  }
  if (!isObject(doc)) throw invalid('the infer request must be a JSON object with an \'inputs\' array');

  let id = '';
  if (doc.id !== undefined) {
    if (typeof doc.id !== 'string') throw invalid(`'id' must be a string, got ${typeof doc.id}`);
    id = doc.id;
  }

  const request: InferRequest = {
    id, modelName: target.modelName, modelVersion: target.modelVersion,
    inputs: [], parameters: {}, priority: 0, timeoutUs: 0,
  };
  const answer = defaultAnswerOptions();
  if (doc.parameters !== undefined) {
    const params = checkParameters(doc.parameters, 'request');
    for (const key in params) {
      const value = params[key]!;
      if (!applyRequestParameter(request, answer, key, value, JSON_VALUES)) request.parameters[key] = value;
    }
  }
  const binaryOutputDefault = answer.binaryDataOutput;

  const inputs = doc.inputs ?? [];
  if (!Array.isArray(inputs)) throw invalid(`'inputs' must be an array of tensors`);
  for (let i = 0; i < inputs.length; i++) {
    const raw = inputs[i];
    if (!isObject(raw) || typeof raw.name !== 'string') throw invalid(`each entry of 'inputs' must be an object with a string 'name'`);
  }
  // The parsed entries are the headers checkInputHeaders reads (name, datatype, shape): no copy of them.
  const headers = inputs as InputHeader[];
  let outputList: Record<string, unknown>[] | undefined;
  if (doc.outputs !== undefined) {
    if (!Array.isArray(doc.outputs)) throw invalid(`'outputs' must be an array of {name, parameters}`);
    outputList = doc.outputs as Record<string, unknown>[];
    for (const raw of outputList) {
      if (!isObject(raw) || typeof raw.name !== 'string') throw invalid(`each entry of 'outputs' must be an object with a string 'name'`);
    }
  }
  // Triton's core checks the requested outputs before the inputs (src/infer_request.cc Normalize).
  let outputSpecs: TensorSpec[] | undefined;
  if (outputList !== undefined) {
    outputSpecs = [];
    const wanted = new Set<string>();
    for (const raw of outputList) outputSpecs.push(checkRequestedOutput(contract, raw.name as string, wanted, id));
  }
  const { checked } = checkInputHeaders(contract, headers, id);
  let binaryPos = jsonEnd;
  for (let i = 0; i < inputs.length; i++) {
    const raw = inputs[i] as Record<string, unknown>;
    const input = checked[i]!;
    const { name, datatype, shape } = input;

    let tensor: TensorValue = { name, datatype, shape, data: [] };
    let binarySize: number | undefined;
    let shmRef: ReturnType<typeof shmRefOf>;
    if (raw.parameters !== undefined) {
      const params = checkParameters(raw.parameters, `input '${name}'`);
      shmRef = shmRefOf(params, `input '${name}'`);
      for (const key in params) {
        const value = params[key]!;
        if (key === 'binary_data_size') {
          if (!isNonNegativeInt(value)) throw invalid(`input '${name}': 'binary_data_size' must be a non-negative integer, got ${JSON.stringify(value)}`);
          binarySize = value;
        } else if (!SHM_PARAMETERS.has(key)) {
          (tensor.parameters ??= {})[key] = value;
        }
      }
    }

    if (shmRef !== undefined) {
      if (raw.data !== undefined || binarySize !== undefined) {
        throw invalid(`input '${name}': has shared_memory_region and also ${raw.data !== undefined ? "'data'" : "'binary_data_size'"}; send the data one way`);
      }
      const bytes = shmInputBytes(shm, shmRef, name);
      tensor = { ...tensorFromBytes(input, bytes, `data in shared memory region '${shmRef.region}'`, { model: contract.name, requestId: id }), parameters: tensor.parameters };
    } else if (binarySize !== undefined) {
      if (raw.data !== undefined) throw invalid(`input '${name}': has both 'data' and 'binary_data_size'; send one of them`);
      if (headerLength === undefined) {
        // as Triton's src/http_server.cc (which names the header so)
        throw invalid(`must specify valid 'Infer-Header-Content-Length' in request header and 'binary_data_size' when passing inputs in binary data format`);
      }
      if (binaryPos + binarySize > body.byteLength) {
        // as Triton's src/http_server.cc: the bytes still missing
        throw invalid(`unexpected size for input '${name}', expecting ${binaryPos + binarySize - body.byteLength} additional bytes for model '${contract.name}'`);
      }
      tensor.data = tensorFromBytes(input, body.subarray(binaryPos, binaryPos + binarySize), 'binary data', { model: contract.name, requestId: id }).data;
      binaryPos += binarySize;
    } else {
      if (!Array.isArray(raw.data)) {
        throw invalid(`input '${name}': 'data' must be an array (flat or nested), or give 'parameters.binary_data_size' and send the bytes after the JSON`);
      }
      tensor.data = fromJson(name, datatype, shape, elementCount(shape), raw.data);
    }
    // Only the shared-memory path can leave the key with no value: a delete costs a slow path.
    if ('parameters' in tensor && tensor.parameters === undefined) delete tensor.parameters;
    request.inputs.push(tensor);
  }
  if (binaryPos !== body.byteLength) {
    // as Triton's src/http_server.cc
    throw invalid(`unexpected additional input data for model '${contract.name}'`);
  }

  if (outputList !== undefined) {
    const outputs: RequestedOutput[] = [];
    for (let i = 0; i < outputList.length; i++) {
      const raw = outputList[i]!;
      const name = raw.name as string;
      const spec = outputSpecs![i]!;
      const out: RequestedOutput = { name, binary: binaryOutputDefault };
      if (raw.parameters !== undefined) {
        const params = checkParameters(raw.parameters, `output '${name}'`);
        const ref = shmRefOf(params, `output '${name}'`);
        // As Triton's ValidateOutputParameter (src/http_server.cc), before the region is looked up.
        if (ref !== undefined && 'classification' in params) throw invalid(`Output can't set both 'shared_memory_region' and 'classification'`);
        if (ref !== undefined) checkShmOutput(shm, ref, name);
        for (const key in params) {
          const value = params[key]!;
          if (key === 'binary_data') {
            if (typeof value !== 'boolean') throw invalid(`output '${name}': 'binary_data' must be true or false`);
            out.binary = value;
          } else {
            // As Triton's CheckClassificationOutput (src/http_server.cc): an unsigned integer; 0 means none.
            if (key === 'classification') {
              if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
                throw new StubhostError('STUBHOST_INTERNAL', `Unable to set 'classification': attempt to access JSON non-unsigned-integer as unsigned-integer`);
              }
              if (!isClassifiable(spec.datatype)) throw unsupportedClassType(spec.datatype);
              if (value === 0) continue;
            }
            (out.parameters ??= {})[key] = value;
          }
        }
      }
      outputs.push(out);
    }
    request.outputs = outputs;
  }
  return { request, binaryOutputDefault };
}

function checkParameters(value: unknown, where: string): Parameters {
  if (!isObject(value)) throw invalid(`${where}: 'parameters' must be an object`);
  for (const key in value) {
    const v = value[key];
    if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') {
      throw invalid(`${where}: parameter '${key}' must be a string, number or boolean`);
    }
  }
  return value as Parameters;
}

function badElement(name: string, datatype: DataType, leaves: unknown[], i: number, what: string): StubhostError {
  return invalid(`input '${name}': element ${i} of 'data' is ${JSON.stringify(leaves[i]) ?? String(leaves[i])}; ${datatype} data must be ${what}`);
}

export function fromJson(name: string, datatype: DataType, shape: number[], count: number, data: unknown[]): TensorValue['data'] {
  // As Triton: JSON numbers cannot say which 16-bit float they mean (1.0 and 1 are one number).
  if (datatype === 'FP16' || datatype === 'BF16') {
    // as Triton's src/http_server.cc ReadDataFromJson, word for word
    throw invalid(`receiving ${datatype} data via JSON is not supported. Please use the binary data format for input ${name}`);
  }
  // Nested arrays (as Triton accepts) are flattened; a flat array is used as is.
  const leaves: unknown[] = data.length > 0 && Array.isArray(data[0]) ? (data.flat(Infinity as 1) as unknown[]) : data;
  if (leaves.length !== count) {
    throw invalid(`input '${name}': 'data' has ${leaves.length} elements but shape ${fmtShape(shape)} needs ${count}`);
  }

  switch (datatype) {
    case 'BYTES': {
      const out: Uint8Array[] = new Array(count);
      for (let i = 0; i < count; i++) {
        const v = leaves[i];
        if (typeof v !== 'string') throw badElement(name, datatype, leaves, i, 'strings');
        out[i] = utf8Encoder.encode(v);
      }
      return out;
    }
    case 'BOOL': {
      const out = new Uint8Array(count);
      for (let i = 0; i < count; i++) {
        const v = leaves[i];
        if (typeof v !== 'boolean') throw badElement(name, datatype, leaves, i, 'true or false');
        out[i] = v ? 1 : 0;
      }
      return out;
    }
    case 'INT64':
    case 'UINT64': {
      const out = datatype === 'INT64' ? new BigInt64Array(count) : new BigUint64Array(count);
      const bits = 64;
      for (let i = 0; i < count; i++) {
        const v = leaves[i];
        let b: bigint;
        // Strings are accepted too: JSON numbers lose precision past 2^53.
        if (typeof v === 'number' && Number.isSafeInteger(v)) b = BigInt(v);
        else if (typeof v === 'string' && /^-?\d+$/.test(v)) b = BigInt(v);
        else throw badElement(name, datatype, leaves, i, 'integers');
        const fits = datatype === 'INT64' ? BigInt.asIntN(bits, b) === b : BigInt.asUintN(bits, b) === b;
        if (!fits) throw badElement(name, datatype, leaves, i, `integers in the ${datatype} range`);
        out[i] = b;
      }
      return out;
    }
    case 'FP32':
    case 'FP64': {
      const out = new (typedArrayFor(datatype))(count) as Float32Array | Float64Array;
      for (let i = 0; i < count; i++) {
        const v = leaves[i];
        if (typeof v !== 'number') throw badElement(name, datatype, leaves, i, 'numbers');
        out[i] = v;
      }
      return out;
    }
    default: {
      const [lo, hi] = INT_RANGE[datatype]!;
      const out = new (typedArrayFor(datatype))(count) as Exclude<NumericTypedArray, BigInt64Array | BigUint64Array>;
      for (let i = 0; i < count; i++) {
        const v = leaves[i];
        if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) {
          throw badElement(name, datatype, leaves, i, `integers in ${lo}..${hi}`);
        }
        out[i] = v;
      }
      return out;
    }
  }
}

export interface EncodedInferResponse {
  /**
   * The JSON part; the whole body when `binary` is empty. A string, not bytes: Node sends a
   * string body in one write with the header, without a Buffer made for it.
   */
  json: string;
  /** The UTF-8 length of `json`. */
  jsonByteLength: number;
  /** Binary output data, in the order of the outputs in the JSON; sent after it. */
  binary: Uint8Array[];
  /** Total body length: json plus every binary section. */
  byteLength: number;
}

export interface EncodeOptions {
  /** The outputs the request named; undefined or empty: every output of the result. */
  requested?: RequestedOutput[];
  /** `binary_data_output` of the request. */
  binaryDefault: boolean;
  /** Where outputs requested in shared memory are written (decodeInferRequest checked their regions). */
  shm?: ShmAccess;
}

/**
 * Encodes a result as Triton does: outputs asked for as binary go after the JSON with
 * `parameters.binary_data_size`; BYTES that are not valid UTF-8 go as binary whatever was asked,
 * because JSON cannot carry them. Outputs requested in shared memory are written there and sent
 * with `shared_memory_region` / `shared_memory_byte_size` and no data.
 */
export function encodeInferResponse(result: InferResult, opts: EncodeOptions): EncodedInferResponse {
  const requested = opts.requested !== undefined && opts.requested.length > 0 ? opts.requested : undefined;
  const binary: Uint8Array[] = [];
  let byteLength = 0;
  const parts: string[] = [];
  for (const output of result.outputs) {
    let want: RequestedOutput | undefined;
    if (requested !== undefined) {
      want = undefined;
      for (const r of requested) {
        if (r.name === output.name) {
          want = r;
          break;
        }
      }
      if (want === undefined) continue; // the core may return more than was asked; the client gets what it named
    }
    // Classification (with labels) is applied by the inference layer for both protocols (src/inference/classification.ts).
    const tensor = output;

    const ref = shmRefOf(want?.parameters, `output '${tensor.name}'`);
    if (ref !== undefined) {
      const params = writeShmOutput(opts.shm, tensor, ref);
      parts.push(`{"name":${jsonString(tensor.name)},"datatype":"${tensor.datatype}","shape":${numberList(tensor.shape)},"parameters":${JSON.stringify(params)}}`);
      continue;
    }

    let asBinary = want?.binary ?? opts.binaryDefault;
    let data: string | undefined;
    if (!asBinary) {
      data = jsonData(tensor);
      if (data === undefined) asBinary = true;
    }
    let params = tensor.parameters;
    if (asBinary) {
      const bytes = tensorBytes(tensor);
      binary.push(bytes);
      byteLength += bytes.byteLength;
      params = { ...params, binary_data_size: bytes.byteLength };
    }
    let s = `{"name":${jsonString(tensor.name)},"datatype":"${tensor.datatype}","shape":${numberList(tensor.shape)}`;
    if (params !== undefined) s += `,"parameters":${JSON.stringify(params)}`;
    if (data !== undefined) s += `,"data":${data}`;
    parts.push(s + '}');
  }
  let json = `{"model_name":${jsonString(result.modelName)},"model_version":${jsonString(result.modelVersion)}`;
  if (result.id !== '') json += `,"id":${jsonString(result.id)}`; // Triton omits an empty id
  if (result.parameters !== undefined && Object.keys(result.parameters).length > 0) json += `,"parameters":${JSON.stringify(result.parameters)}`;
  json += ',"outputs":[';
  for (let i = 0; i < parts.length; i++) json += i === 0 ? parts[i] : `,${parts[i]}`;
  json += ']}';
  const jsonByteLength = Buffer.byteLength(json, 'utf8');
  return { json, jsonByteLength, binary, byteLength: byteLength + jsonByteLength };
}

/**
 * JSON.stringify(s), without its call for the usual names and ids (printable ASCII with nothing
 * to escape), which are only quoted.
 */
function jsonString(s: string): string {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) return JSON.stringify(s);
  }
  return `"${s}"`;
}

/**
 * `[a,b,...]` as join(',') prints them (BigInts without the `n`, NaN/Infinity as Triton's
 * RapidJSON writer does): a loop, which costs less than join on small typed arrays.
 */
function numberList(values: ArrayLike<number | bigint>): string {
  const n = values.length;
  if (n === 0) return '[]';
  let s = `[${values[0]}`;
  for (let i = 1; i < n; i++) s += `,${values[i]}`;
  return `${s}]`;
}

/** The JSON `data` of a tensor, or undefined when it cannot be JSON (BYTES that are not UTF-8). */
function jsonData(t: TensorValue): string | undefined {
  if (t.datatype === 'BYTES') {
    const items = t.data as Uint8Array[];
    const strings: string[] = new Array(items.length);
    try {
      for (let i = 0; i < items.length; i++) strings[i] = utf8Strict.decode(items[i]);
    } catch {
      return undefined;
    }
    return JSON.stringify(strings);
  }
  // FP16/BF16 have no JSON form (see fromJson): such outputs go as binary data.
  if (t.datatype === 'FP16' || t.datatype === 'BF16') return undefined;
  const data = t.data as NumericTypedArray;
  if (t.datatype === 'BOOL') return JSON.stringify(Array.from(data as Uint8Array, (v) => v !== 0));
  return numberList(data);
}
