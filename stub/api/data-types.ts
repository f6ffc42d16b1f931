/**
 * The typed-array type of each dtype, for the typed model API (spec.ts) and Tensor alike: kept
 * apart from spec.ts, which refers to Tensor, so that Tensor can use them without a cycle.
 */
import type { DataType } from '../../src/core/dtypes.js';

/** The data a tensor of each dtype holds (FP16/BF16 are raw 16-bit words, BOOL one byte each). */
export interface DataByType {
  BOOL: Uint8Array; UINT8: Uint8Array; UINT16: Uint16Array; UINT32: Uint32Array; UINT64: BigUint64Array;
  INT8: Int8Array; INT16: Int16Array; INT32: Int32Array; INT64: BigInt64Array;
  FP16: Uint16Array; BF16: Uint16Array; FP32: Float32Array; FP64: Float64Array;
  BYTES: Uint8Array[];
}

/** `DataOf<'FP32'>` is Float32Array; a union of dtypes gives the union of their data. */
export type DataOf<D extends DataType> = DataByType[D];

/**
 * The dtype `new Tensor(name, data)` infers from a typed array, as it does at run time
 * (Uint8Array is UINT8 and Uint16Array UINT16 unless a dtype is given).
 */
export type DtypeOfArray<A> =
  A extends Float32Array ? 'FP32' : A extends Float64Array ? 'FP64'
    : A extends Int8Array ? 'INT8' : A extends Int16Array ? 'INT16' : A extends Int32Array ? 'INT32' : A extends BigInt64Array ? 'INT64'
      : A extends Uint8Array ? 'UINT8' : A extends Uint16Array ? 'UINT16' : A extends Uint32Array ? 'UINT32' : A extends BigUint64Array ? 'UINT64'
        : never;
