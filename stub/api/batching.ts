/**
 * Batching across requests, the model's job in Triton: the dynamic batcher only gathers requests,
 * so a model that wants one big run concatenates their inputs along the first (batch) dimension
 * and hands each request its slice of the outputs.
 */
import { typedArrayFor, type DataType, type NumericTypedArray } from '../../src/core/dtypes.js';
import { ModelError } from './errors.js';
import type { InferenceRequest } from './request.js';
import type { InputName, ModelSpec } from './spec.js';
import { Tensor } from './tensor.js';

/** What concatInputs reads from a request: `InferenceRequest` fits, so does any `{ input(name) }`. */
export interface HasInputs {
  input(name: string): Tensor | undefined;
  readonly requestId?: string;
}

/**
 * Concatenates input `name` of every request along the first dimension, in request order.
 * Every request must carry the input with the same dtype, rank >= 1 and the same non-batch dims.
 * Numeric data is copied once into a new (non-shared) buffer; BYTES elements are not copied (the
 * result lists the requests' element views). Inputs are valid only for the execute call, and so
 * is a BYTES result.
 *
 * @returns the batch tensor and each request's first-dim size, for splitOutput (typed requests:
 *   the input's dtype and name)
 */
export function concatInputs<S extends ModelSpec, K extends InputName<S>>(
  requests: readonly InferenceRequest<S>[],
  name: K,
): { tensor: Tensor<S['inputs'][K]['dtype'], K>; batchSizes: number[] };
export function concatInputs(requests: readonly HasInputs[], name: string): { tensor: Tensor; batchSizes: number[] };
export function concatInputs(requests: readonly HasInputs[], name: string): { tensor: Tensor; batchSizes: number[] } {
  if (requests.length === 0) throw new ModelError(`concatInputs('${name}'): no requests`, 'INVALID_ARG');
  const tensors: Tensor[] = requests.map((r, i) => {
    const t = r.input(name);
    if (!t) throw new ModelError(`concatInputs: request ${label(r, i)} has no input '${name}'`, 'INVALID_ARG');
    if (t.shape.length === 0) throw new ModelError(`concatInputs: input '${name}' of request ${label(r, i)} is a scalar; batching needs a first dimension`, 'INVALID_ARG');
    return t;
  });
  const first = tensors[0]!;
  const inner = first.shape.slice(1);
  for (let i = 1; i < tensors.length; i++) {
    const t = tensors[i]!;
    if (t.dtype !== first.dtype) {
      throw new ModelError(`concatInputs: input '${name}' is ${first.dtype} in request ${label(requests[0]!, 0)} but ${t.dtype} in request ${label(requests[i]!, i)}`, 'INVALID_ARG');
    }
    if (t.shape.length !== first.shape.length || t.shape.some((d, k) => k > 0 && d !== first.shape[k])) {
      throw new ModelError(
        `concatInputs: input '${name}' has shape [${first.shape.join(', ')}] in request ${label(requests[0]!, 0)} but [${t.shape.join(', ')}] in request ${label(requests[i]!, i)}; ` +
          'all dims after the first must agree to batch them (run such requests separately)',
        'INVALID_ARG',
      );
    }
  }
  const batchSizes = tensors.map((t) => t.shape[0]!);
  const total = batchSizes.reduce((a, b) => a + b, 0);
  const shape = [total, ...inner];
  if (first.dtype === 'BYTES') {
    const items: Uint8Array[] = [];
    for (const t of tensors) for (const b of t.data as Uint8Array[]) items.push(b);
    return { tensor: new Tensor(name, items, shape, 'BYTES'), batchSizes };
  }
  const Ctor = typedArrayFor(first.dtype);
  let length = 0;
  for (const t of tensors) length += t.data.length;
  const out = new Ctor(length);
  let pos = 0;
  for (const t of tensors) {
    // set() between two arrays of one type is a memcpy, whatever buffer (shared or not) backs the source.
    (out as unknown as { set(a: ArrayLike<number | bigint>, o: number): void }).set(t.data as NumericTypedArray, pos);
    pos += t.data.length;
  }
  return { tensor: new Tensor(name, out, shape, first.dtype), batchSizes };
}

/**
 * Splits `tensor` along its first dimension into one tensor per request, `batchSizes` as
 * concatInputs returned them. Numeric parts are subarray views of `tensor.data` and BYTES parts
 * share its element views: nothing is copied. The parts keep the tensor's dtype and name types.
 */
export function splitOutput<D extends DataType, N extends string>(tensor: Tensor<D, N>, batchSizes: readonly number[]): Tensor<D, N>[];
export function splitOutput(tensor: Tensor, batchSizes: readonly number[]): Tensor[] {
  if (tensor.shape.length === 0) throw new ModelError(`splitOutput: '${tensor.name}' is a scalar; it has no batch dimension to split`, 'INVALID_ARG');
  const total = batchSizes.reduce((a, b) => a + b, 0);
  if (tensor.shape[0] !== total) {
    throw new ModelError(
      `splitOutput: '${tensor.name}' has first dimension ${tensor.shape[0]} but the requests' batch sizes [${batchSizes.join(', ')}] add up to ${total}`,
      'INTERNAL',
    );
  }
  const inner = tensor.shape.slice(1);
  let stride = 1;
  for (const d of inner) stride *= d;
  const parts: Tensor[] = [];
  let row = 0;
  for (const b of batchSizes) {
    const start = row * stride;
    const end = (row + b) * stride;
    const data = tensor.dtype === 'BYTES'
      ? (tensor.data as Uint8Array[]).slice(start, end)
      : (tensor.data as NumericTypedArray).subarray(start, end);
    parts.push(new Tensor(tensor.name, data as NumericTypedArray | Uint8Array[], [b, ...inner], tensor.dtype));
    row += b;
  }
  return parts;
}

function label(r: HasInputs, i: number): string {
  return r.requestId ? `${i} (id '${r.requestId}')` : String(i);
}
