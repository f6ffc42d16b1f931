import {
  type DataType, type NumericTypedArray, elementCount, inferDataType, isDataType,
} from '../../src/core/dtypes.js';

export type { DataType };
export type TypedArray = NumericTypedArray;
/** Numeric data as a typed array; BYTES as one Uint8Array per element. */
export type TensorData = NumericTypedArray | Uint8Array[];

const encoder = new TextEncoder();
const decoder = new TextDecoder();

const NUMERIC_CTORS: Record<string, readonly unknown[]> = {
  BOOL: [Uint8Array], UINT8: [Uint8Array], UINT16: [Uint16Array], UINT32: [Uint32Array], UINT64: [BigUint64Array],
  INT8: [Int8Array], INT16: [Int16Array], INT32: [Int32Array], INT64: [BigInt64Array],
  FP16: [Uint16Array], BF16: [Uint16Array], FP32: [Float32Array], FP64: [Float64Array],
};

/**
 * A named tensor. Inputs a model receives view shared memory and are read-only, valid for the
 * execute call; copy (`data.slice()`) what must outlive it.
 */
export class Tensor {
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
      const allowed = NUMERIC_CTORS[type]!;
      if (!allowed.some((C) => data instanceof (C as new () => unknown))) {
        throw new TypeError(`Tensor '${name}': ${type} data must be a ${(allowed[0] as { name: string }).name}, got ${(data as object).constructor.name}`);
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
}
