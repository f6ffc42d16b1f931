import {
  type DataType, type NumericTypedArray, elementCount, inferDataType, isDataType, typedArrayFor,
} from '../../src/core/dtypes.js';

import type { DataOf, DtypeOfArray } from './data-types.js';
import { tensorHook } from './tensor-hook.js';

export type { DataType };
export type TypedArray = NumericTypedArray;
/** Numeric data as a typed array; BYTES as one Uint8Array per element. */
export type TensorData = NumericTypedArray | Uint8Array[];

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * A named tensor. Inputs a model receives view shared memory and are read-only, valid for the
 * execute call; copy (`data.slice()`) what must outlive it.
 *
 * `Tensor<D, N>` is a tensor of dtype D named N (`Tensor<'FP32'>.data` is a Float32Array);
 * plain `Tensor` is any tensor, `.data` the union of every dtype's data. `new Tensor(...)` infers
 * D from the typed array and N from the name, so a typed model (spec.ts) checks its outputs.
 */
export interface Tensor<D extends DataType = DataType, N extends string = string> {
  readonly name: N;
  readonly dtype: D;
  readonly shape: number[];
  readonly data: DataOf<D>;
  /** BYTES elements decoded as UTF-8. */
  strings(): string[];
  /** Numeric data as plain numbers (INT64/UINT64 converted from BigInt; may lose precision). */
  toArray(): number[];
}

export interface TensorConstructor {
  /** Numeric data; the dtype is the typed array's (Float32Array → FP32, Uint8Array → UINT8, ...). */
  new <N extends string, A extends NumericTypedArray>(name: N, data: A, shape?: number[]): Tensor<DtypeOfArray<A>, N>;
  /** BYTES: one Uint8Array per element, or strings (encoded as UTF-8). */
  new <N extends string>(name: N, data: Uint8Array[] | string[], shape?: number[]): Tensor<'BYTES', N>;
  /** An explicit dtype: FP16/BF16 (Uint16Array), BOOL (Uint8Array), or any dtype with its data. */
  new <N extends string, D extends DataType>(name: N, data: DataOf<D> | (D extends 'BYTES' ? string[] : never), shape: number[] | undefined, dtype: D): Tensor<D, N>;
  /** Any data and dtype, checked at run time. */
  new (name: string, data: NumericTypedArray | Uint8Array[] | string[], shape?: number[], dtype?: DataType): Tensor;
  readonly prototype: Tensor;
}

// A class expression, so instances print as `Tensor` while the exported value carries the
// generic construct signatures above.
const TensorClass = class Tensor {
  readonly name: string;
  readonly dtype: DataType;
  readonly shape: number[];
  readonly data: TensorData;

  /**
   * @param data typed array, `Uint8Array[]` or `string[]` (BYTES)
   * @param shape defaults to `[data.length]`
   * @param dtype inferred from the typed array when omitted; FP16/BF16 (Uint16Array) and BOOL
   *   (Uint8Array) must be given explicitly
   */
  constructor(name: string, data: NumericTypedArray | Uint8Array[] | string[], shape?: number[], dtype?: DataType) {
    if (typeof name !== 'string' || name.length === 0) throw new TypeError('Tensor: name must be a non-empty string');
    const inferred = inferDataType(data);
    if (!inferred) throw new TypeError(`Tensor '${name}': data must be a typed array, Uint8Array[] or string[]`);
    const type = dtype ?? inferred;
    if (!isDataType(type)) throw new TypeError(`Tensor '${name}': unknown dtype '${String(type)}'`);
    if (type === 'BYTES') {
      if (!Array.isArray(data)) throw new TypeError(`Tensor '${name}': BYTES data must be Uint8Array[] or string[]`);
      this.data = (data as unknown[]).map((item, i) => {
        if (typeof item === 'string') return encoder.encode(item);
        if (item instanceof Uint8Array) return item;
        throw new TypeError(`Tensor '${name}': BYTES data must be Uint8Array[] or string[], element ${i} is ${item === null ? 'null' : typeof item}${typeof item === 'number' ? ' (numeric data is a typed array, e.g. Float32Array.from([...]))' : ''}`);
      });
    } else {
      // The dtype table of src/core/dtypes.ts: one typed array per numeric dtype.
      const Ctor = typedArrayFor(type);
      if (!(data instanceof Ctor)) {
        throw new TypeError(`Tensor '${name}': ${type} data must be a ${Ctor.name}, got ${(data as object).constructor.name}`);
      }
      this.data = data as NumericTypedArray;
    }
    this.name = name;
    this.dtype = type;
    this.shape = shape ? [...shape] : [this.data.length];
    if (this.shape.some((d) => !Number.isInteger(d) || d < 0)) throw new TypeError(`Tensor '${name}': shape [${this.shape.join(', ')}] must be non-negative integers`);
    const count = elementCount(this.shape);
    if (count !== this.data.length) {
      throw new TypeError(`Tensor '${name}': shape [${this.shape.join(', ')}] needs ${count} elements, data has ${this.data.length}`);
    }
    tensorHook()?.(this);
  }

  /** BYTES elements decoded as UTF-8. */
  strings(): string[] {
    if (this.dtype !== 'BYTES') throw new TypeError(`Tensor '${this.name}' is ${this.dtype}, not BYTES`);
    return (this.data as Uint8Array[]).map((b) => decoder.decode(b));
  }

  /** Numeric data as plain numbers (INT64/UINT64 converted from BigInt; may lose precision). */
  toArray(): number[] {
    if (this.dtype === 'BYTES') throw new TypeError(`Tensor '${this.name}' is BYTES: use strings()`);
    return Array.from(this.data as ArrayLike<number | bigint>, Number);
  }
};

export const Tensor = TensorClass as unknown as TensorConstructor;
