/**
 * Triton's classification extension, for both protocols: an output requested with the parameter
 * `classification: N` comes back as a BYTES tensor of the top N entries of each batch row,
 * "<score>:<index>" plus ":<label>" when the output's label file names that index.
 *
 * As Triton's server src/classification.cc (TopkClassifications, AddClassResults) and the callers
 * in src/http_server.cc and src/grpc/infer_handler.h: scores sorted descending, printed with
 * std::to_string (six decimals for floats, plain integers otherwise); a model with
 * max_batch_size > 0 ranks each row of the first dimension on its own, shape [batch, N'];
 * otherwise the whole tensor, shape [N'], with N' = min(N, elements per row).
 */
import { StubhostError } from '../errors.js';
import type { NumericTypedArray } from '../core/dtypes.js';
import type { InferResult, OutputLabels, RequestedOutput, TensorValue } from '../core/types.js';

const utf8 = new TextEncoder();

const CLASSIFIABLE = new Set(['UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', 'INT32', 'INT64', 'FP32', 'FP64']);

/** Triton's refusal of a type TopkClassifications has no case for (BOOL, FP16, BF16, BYTES). */
export function unsupportedClassType(datatype: string): StubhostError {
  return new StubhostError('STUBHOST_INVALID_ARG', `class result not available for output due to unsupported type '${datatype}'`);
}

export function isClassifiable(datatype: string): boolean {
  return CLASSIFIABLE.has(datatype);
}

/** C's printf("%f") of a double, which std::to_string(float|double) prints. */
export function formatScore(v: number): string {
  if (Number.isNaN(v)) return v < 0 ? '-nan' : 'nan';
  if (!Number.isFinite(v)) return v < 0 ? '-inf' : 'inf';
  const sign = v < 0 || Object.is(v, -0) ? '-' : '';
  const a = Math.abs(v);
  // toFixed switches to exponent notation from 1e21 on; %f never does.
  if (a >= 1e21) return `${sign}${BigInt(Math.round(a)).toString()}.000000`;
  return sign + a.toFixed(6);
}

/** The top `k` entries of each row of `t` as Triton's classification strings. */
export function classifyTensor(t: TensorValue, k: number, batched: boolean, labels?: readonly string[]): TensorValue {
  if (!isClassifiable(t.datatype)) throw unsupportedClassType(t.datatype);
  const data = t.data as NumericTypedArray;
  const rows = batched && t.shape.length > 0 ? t.shape[0]! : 0;
  const perRow = rows === 0 ? data.length : data.length / rows;
  const take = Math.min(k, perRow);
  const isFloat = t.datatype === 'FP32' || t.datatype === 'FP64';
  const out: Uint8Array[] = [];
  const idx = new Array<number>(perRow);
  for (let r = 0; r < Math.max(1, rows); r++) {
    const base = r * perRow;
    for (let i = 0; i < perRow; i++) idx[i] = i;
    const value = (i: number): number => Number(data[base + i]!);
    // Ties keep the lower index first (std::sort leaves their order unspecified).
    idx.sort((a, b) => value(b) - value(a) || a - b);
    for (let j = 0; j < take; j++) {
      const i = idx[j]!;
      const v = data[base + i]!;
      let s = `${isFloat ? formatScore(v as number) : String(v)}:${i}`;
      const label = labels?.[i];
      if (label) s += `:${label}`;
      out.push(utf8.encode(s));
    }
  }
  return { name: t.name, datatype: 'BYTES', shape: rows > 0 ? [rows, take] : [take], data: out };
}

/** The requested class count of an output, or undefined when it was not asked for as classification. */
function classCount(o: RequestedOutput): number | undefined {
  const k = o.parameters?.classification;
  return typeof k === 'number' ? k : undefined;
}

/**
 * `result` with every output the request asked for as classification replaced by its top-k
 * strings (labels from the model's label files). Results without such outputs pass unchanged.
 */
export function applyClassification(
  result: InferResult, requested: readonly RequestedOutput[] | undefined, maxBatchSize: number, labels: OutputLabels,
): InferResult {
  if (requested === undefined) return result;
  let wanted: Map<string, number> | undefined;
  for (const o of requested) {
    const k = classCount(o);
    if (k !== undefined) (wanted ??= new Map()).set(o.name, k);
  }
  if (wanted === undefined) return result;
  const outputs = result.outputs.map((t) => {
    const k = wanted!.get(t.name);
    return k === undefined ? t : classifyTensor(t, k, maxBatchSize > 0, labels.get(t.name));
  });
  return { ...result, outputs };
}

/**
 * A gRPC requested output's `classification` parameter, checked as Triton's src/grpc/grpc_utils.cc
 * (ParseClassificationParams) and src/grpc/infer_handler.h do: an int64_param > 0, and not
 * together with shared memory. Returns the count (undefined when absent).
 */
export function grpcClassificationCount(
  param: { parameter_choice?: string; int64_param?: string | number } | undefined, inSharedMemory: boolean,
): number | undefined {
  if (param === undefined) return undefined;
  if (param.parameter_choice !== 'int64_param') {
    throw new StubhostError('STUBHOST_INVALID_ARG', `invalid value type for 'classification' parameter, expected int64_param`);
  }
  const n = Number(param.int64_param ?? 0);
  if (!(n > 0)) throw new StubhostError('STUBHOST_INVALID_ARG', `invalid value for 'classification' parameter, expected >= 0`);
  if (inSharedMemory) throw new StubhostError('STUBHOST_INVALID_ARG', `output can't set both 'shared_memory_region' and 'classification'`);
  return Math.min(n, 2 ** 32 - 1);
}
