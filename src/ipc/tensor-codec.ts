/**
 * Tensors across the queues: the header (name, dtype, shape, where the bytes are) goes in the
 * msgpack message; the bytes go into the writer's Arena once and are read on the other side as
 * typed-array views of shared memory (no copy). Tiny tensors travel inline in the header: an
 * arena round trip (alloc, free, release) costs more than copying a few hundred bytes.
 */
import type { Arena, Handle, PeerArena } from './arena.js';
import {
  type DataType, type NumericTypedArray, decodeBytesElements, elementCount, elementSize, isDataType,
  typedArrayFor, viewAs, writeBytesElements,
} from '../core/dtypes.js';
import type { TensorValue } from '../core/types.js';
import { tensorByteLength } from '../core/tensor-bytes.js';
import { StubhostError } from '../errors.js';

/** A tensor on the wire: `h` (arena handle) or `d` (inline bytes). */
export interface TensorDesc {
  n: string;
  t: DataType;
  s: number[];
  h?: Handle;
  d?: Uint8Array;
}

export const INLINE_MAX_BYTES = 512;

/**
 * Inline bytes pass through this scratch, viewed as each element type. A small typed array
 * (up to 64 bytes) lives in the V8 heap; reading its `.buffer` moves it out into a malloc'd
 * backing store, which cost ~0.25 µs a tensor. Copying through typed views of the same element
 * type (a memcpy) never touches `.buffer` of either side.
 */
const SCRATCH = new ArrayBuffer(INLINE_MAX_BYTES);
const SCRATCH_BYTES = new Uint8Array(SCRATCH);
const SCRATCH_VIEWS = new Map<unknown, NumericTypedArray>(
  [Uint8Array, Uint16Array, Uint32Array, BigUint64Array, Int8Array, Int16Array, Int32Array, BigInt64Array, Float32Array, Float64Array]
    .map((Ctor) => [Ctor, new Ctor(SCRATCH)]),
);

/**
 * Writes a tensor for the peer. Arena blocks it takes are appended to `blocks`: the caller owns
 * them and frees them when the peer is done (see Arena's ownership notes).
 */
export function writeTensor(arena: Arena, t: Pick<TensorValue, 'name' | 'datatype' | 'shape' | 'data'>, blocks: Handle[]): TensorDesc {
  const size = tensorByteLength(t);
  const desc: TensorDesc = { n: t.name, t: t.datatype, s: t.shape };
  if (size <= INLINE_MAX_BYTES) {
    desc.d = inlineBytes(t, size);
    return desc;
  }
  const block = arena.alloc(size);
  fill(block.bytes, t);
  blocks.push(block.handle);
  desc.h = block.handle;
  return desc;
}

function inlineBytes(t: Pick<TensorValue, 'datatype' | 'data'>, size: number): Uint8Array {
  // Only a typed array of exactly the view's class: `set` between different classes converts values.
  const view = t.datatype === 'BYTES' ? undefined : SCRATCH_VIEWS.get((t.data as NumericTypedArray).constructor);
  if (view) {
    (view as Uint8Array).set(t.data as Uint8Array);
    return SCRATCH_BYTES.slice(0, size);
  }
  const bytes = new Uint8Array(size);
  fill(bytes, t);
  return bytes;
}

function fill(out: Uint8Array, t: Pick<TensorValue, 'datatype' | 'data'>): void {
  if (t.datatype === 'BYTES') writeBytesElements(t.data as Uint8Array[], out);
  else {
    const src = t.data as NumericTypedArray;
    out.set(new Uint8Array(src.buffer, src.byteOffset, src.byteLength));
  }
}

/**
 * The tensor described by `desc`, its data a view of the peer's arena (valid until the peer
 * frees the block). Checks dtype, shape and byte size so a corrupt header is refused here.
 */
export function readTensor(peer: PeerArena, desc: TensorDesc): TensorValue {
  checkHeader(desc);
  return tensorOf(desc, desc.d ?? (desc.h ? peer.view(desc.h) : new Uint8Array(0)), desc.d !== undefined);
}

/**
 * The tensor described by `desc`, in memory that outlives the peer's block: inline bytes as
 * they are (the message decoder copied them already), arena bytes copied once — into
 * `place(size)` when it gives a buffer (numeric tensors), else into process-private memory.
 */
export function readTensorOut(peer: PeerArena, desc: TensorDesc, place?: (byteLength: number) => Uint8Array | undefined): TensorValue {
  if (desc.d || !desc.h) return readTensor(peer, desc);
  checkHeader(desc);
  const src = peer.view(desc.h);
  const dst = place && desc.t !== 'BYTES' && src.byteLength > 0 ? place(src.byteLength) : undefined;
  if (!dst) return copyTensor(tensorOf(desc, src));
  dst.set(src);
  return tensorOf(desc, dst);
}

function checkHeader(desc: TensorDesc): void {
  if (typeof desc.n !== 'string' || !isDataType(desc.t) || !Array.isArray(desc.s) || !isShape(desc.s)) {
    throw new StubhostError('STUBHOST_PROTOCOL', `corrupt tensor header ${JSON.stringify({ n: desc.n, t: desc.t, s: desc.s })}`);
  }
}

/** `inline`: `bytes` are the decoder's copy, not the peer's memory: the data may be a copy of them. */
function tensorOf(desc: TensorDesc, bytes: Uint8Array, inline = false): TensorValue {
  const count = elementCount(desc.s);
  if (desc.t === 'BYTES') {
    const items = decodeBytesElements(bytes, count);
    if (typeof items === 'string') throw new StubhostError('STUBHOST_PROTOCOL', `tensor '${desc.n}': BYTES data ${items}`);
    return { name: desc.n, datatype: 'BYTES', shape: desc.s, data: items };
  }
  const size = elementSize(desc.t);
  if (bytes.byteLength !== count * size) {
    throw new StubhostError('STUBHOST_PROTOCOL', `tensor '${desc.n}': ${bytes.byteLength} bytes for shape [${desc.s.join(', ')}] of ${desc.t} (needs ${count * size})`);
  }
  if (inline && bytes.byteLength <= INLINE_MAX_BYTES) {
    // (A copy, aligned: the decoder's bytes may sit at any offset.)
    SCRATCH_BYTES.set(bytes);
    return { name: desc.n, datatype: desc.t, shape: desc.s, data: (SCRATCH_VIEWS.get(typedArrayFor(desc.t))! as Uint8Array).slice(0, count) };
  }
  // Inline bytes come from the decoder at any offset; typed arrays need element alignment.
  if (bytes.byteOffset % size !== 0) bytes = bytes.slice();
  return { name: desc.n, datatype: desc.t, shape: desc.s, data: viewAs(desc.t, bytes.buffer, bytes.byteOffset, bytes.byteLength) };
}

function isShape(s: unknown[]): boolean {
  for (let i = 0; i < s.length; i++) {
    const d = s[i];
    if (!Number.isInteger(d) || (d as number) < 0) return false;
  }
  return true;
}

/** A copy of a tensor into process-private memory (for data that must outlive its block). */
export function copyTensor(t: TensorValue): TensorValue {
  if (t.datatype === 'BYTES') return { ...t, shape: [...t.shape], data: (t.data as Uint8Array[]).map((b) => b.slice()) };
  return { ...t, shape: [...t.shape], data: (t.data as NumericTypedArray).slice() };
}
