/**
 * Triton data types and how each one is held in memory.
 *
 * Shared by the host and the stub (it knows neither side): the wire name (`FP32`), the config
 * name (`TYPE_FP32`), the element size and the typed-array constructor that views its bytes.
 */

export const DATA_TYPES = [
  'BOOL', 'UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', 'INT32', 'INT64',
  'FP16', 'BF16', 'FP32', 'FP64', 'BYTES',
] as const;

/** A KServe v2 / Triton wire data type name, e.g. `FP32`. */
export type DataType = (typeof DATA_TYPES)[number];

export type NumericTypedArray =
  | Uint8Array | Uint16Array | Uint32Array | BigUint64Array
  | Int8Array | Int16Array | Int32Array | BigInt64Array
  | Float32Array | Float64Array;

type TypedArrayCtor = {
  new (buffer: ArrayBufferLike, byteOffset: number, length: number): NumericTypedArray;
  new (length: number): NumericTypedArray;
  readonly BYTES_PER_ELEMENT: number;
};

/** The typed array that views each numeric dtype; FP16/BF16 are raw 16-bit words, BOOL is one byte. */
const ARRAY_OF: Record<Exclude<DataType, 'BYTES'>, TypedArrayCtor> = {
  BOOL: Uint8Array, UINT8: Uint8Array, UINT16: Uint16Array, UINT32: Uint32Array, UINT64: BigUint64Array,
  INT8: Int8Array, INT16: Int16Array, INT32: Int32Array, INT64: BigInt64Array,
  FP16: Uint16Array, BF16: Uint16Array, FP32: Float32Array, FP64: Float64Array,
};

const DATA_TYPE_SET: ReadonlySet<string> = new Set(DATA_TYPES);

export function isDataType(value: unknown): value is DataType {
  return typeof value === 'string' && DATA_TYPE_SET.has(value);
}

/** Bytes per element, or 0 for BYTES (variable length). */
export function elementSize(dtype: DataType): number {
  return dtype === 'BYTES' ? 0 : ARRAY_OF[dtype].BYTES_PER_ELEMENT;
}

export function typedArrayFor(dtype: Exclude<DataType, 'BYTES'>): TypedArrayCtor {
  return ARRAY_OF[dtype];
}

/** A view of `byteLength` bytes at `byteOffset` as the dtype's typed array (no copy). */
export function viewAs(dtype: Exclude<DataType, 'BYTES'>, buffer: ArrayBufferLike, byteOffset: number, byteLength: number): NumericTypedArray {
  const Ctor = ARRAY_OF[dtype];
  return new Ctor(buffer, byteOffset, byteLength / Ctor.BYTES_PER_ELEMENT);
}

/** The dtype a typed array stands for when the caller gives none (README, "The model API"). */
export function inferDataType(data: unknown): DataType | undefined {
  if (data instanceof Float32Array) return 'FP32';
  if (data instanceof Float64Array) return 'FP64';
  if (data instanceof Int8Array) return 'INT8';
  if (data instanceof Int16Array) return 'INT16';
  if (data instanceof Int32Array) return 'INT32';
  if (data instanceof BigInt64Array) return 'INT64';
  if (data instanceof Uint8Array) return 'UINT8';
  if (data instanceof Uint16Array) return 'UINT16';
  if (data instanceof Uint32Array) return 'UINT32';
  if (data instanceof BigUint64Array) return 'UINT64';
  if (Array.isArray(data)) return 'BYTES';
  return undefined;
}

/** `TYPE_FP32` → `FP32`; `TYPE_STRING` is Triton's config name for BYTES. */
export function fromConfigType(configType: string): DataType | undefined {
  if (configType === 'TYPE_STRING') return 'BYTES';
  const name = configType.startsWith('TYPE_') ? configType.slice(5) : '';
  return isDataType(name) ? name : undefined;
}

/** `FP32` → `TYPE_FP32`; BYTES is `TYPE_STRING`, as Triton writes it. */
export function toConfigType(dtype: DataType): string {
  return dtype === 'BYTES' ? 'TYPE_STRING' : `TYPE_${dtype}`;
}

/** Number of elements of a fully known shape (the empty shape is a scalar: 1). */
export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * BYTES tensors on the wire and in shared memory: each element is a 4-byte little-endian length
 * followed by that many bytes (Triton's layout, so the same bytes serve HTTP binary data and IPC).
 */
export function encodeBytesElements(items: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(bytesElementsSize(items));
  writeBytesElements(items, out);
  return out;
}

export function bytesElementsSize(items: readonly Uint8Array[]): number {
  let total = 0;
  for (const it of items) total += 4 + it.byteLength;
  return total;
}

/** Writes the serialized form into `out` (which must be `bytesElementsSize(items)` long). */
export function writeBytesElements(items: readonly Uint8Array[], out: Uint8Array): void {
  const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
  let pos = 0;
  for (const it of items) {
    dv.setUint32(pos, it.byteLength, true);
    out.set(it, pos + 4);
    pos += 4 + it.byteLength;
  }
}

/**
 * Splits serialized BYTES into views of `bytes` (no copy). Returns an error message instead of
 * throwing when a length prefix runs past the end or the count does not match `expectedCount`.
 */
export function decodeBytesElements(bytes: Uint8Array, expectedCount?: number): Uint8Array[] | string {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const items: Uint8Array[] = [];
  let pos = 0;
  while (pos < bytes.byteLength) {
    if (pos + 4 > bytes.byteLength) return `truncated length prefix at byte ${pos} of ${bytes.byteLength}`;
    const len = dv.getUint32(pos, true);
    if (pos + 4 + len > bytes.byteLength) {
      return `element ${items.length} claims ${len} bytes at byte ${pos} but only ${bytes.byteLength - pos - 4} remain`;
    }
    items.push(bytes.subarray(pos + 4, pos + 4 + len));
    pos += 4 + len;
  }
  if (expectedCount !== undefined && items.length !== expectedCount) {
    return `holds ${items.length} elements where the shape needs ${expectedCount}`;
  }
  return items;
}
