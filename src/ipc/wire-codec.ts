/**
 * A fast path for msgpack on the queues: what the protocol's messages are made of (plain objects,
 * arrays, strings, numbers, booleans, null, undefined, Uint8Array), encoded and decoded as
 * msgpackr does with the Channel's options, so either side may read the other's bytes with
 * either decoder. Anything else (bigint, Map, Date, class instances, 64-bit integers, extensions,
 * invalid UTF-8, a `__proto__` key) is left to msgpackr: `encodeFast` returns undefined and
 * `decodeFast` returns NOT_FAST, and the caller runs msgpackr on the whole message.
 *
 * Why: msgpackr's general paths (extension checks, its native string extraction, its buffer
 * management) cost ~1 µs per small message each way; this encodes an `exec-done` in about half
 * that and decodes an `exec` ~15% faster (the strings and objects it builds are most of that).
 */

export const NOT_FAST: unique symbol = Symbol('not fast');

class Unsupported extends Error {}
const UNSUPPORTED = new Unsupported();

// ignoreBOM: a leading U+FEFF is part of the string, as msgpackr reads it.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const utf8Encoder = new TextEncoder();

// ---- encoding -----------------------------------------------------------------------------

const INITIAL_BYTES = 8192;
const KEEP_BYTES = 1024 * 1024;
let out = new Uint8Array(INITIAL_BYTES);
let outView = new DataView(out.buffer);
let outCap = out.byteLength;
let pos = 0;

/** Makes room for `n` more bytes (callers check `pos + n > outCap` first: this runs per value). */
function grow(n: number): void {
  const bigger = new Uint8Array(Math.max(outCap * 2, pos + n));
  bigger.set(out.subarray(0, pos));
  out = bigger;
  outView = new DataView(out.buffer);
  outCap = out.byteLength;
}

/**
 * The message's msgpack bytes, or undefined when it holds something only msgpackr encodes. The
 * bytes are valid until the next call: the caller copies them (MessageQueue.send does).
 */
export function encodeFast(message: unknown): Uint8Array | undefined {
  // A large message grew the buffer: do not keep it for the small ones that follow.
  if (outCap > KEEP_BYTES) {
    out = new Uint8Array(INITIAL_BYTES);
    outView = new DataView(out.buffer);
    outCap = out.byteLength;
  }
  pos = 0;
  try {
    write(message);
  } catch (err) {
    if (err === UNSUPPORTED) return undefined;
    throw err;
  }
  return out.subarray(0, pos);
}

function write(value: unknown): void {
  if (pos + 9 > outCap) grow(9);
  switch (typeof value) {
    case 'string':
      writeString(value);
      return;
    case 'number':
      writeNumber(value);
      return;
    case 'boolean':
      out[pos++] = value ? 0xc3 : 0xc2;
      return;
    case 'undefined':
      // msgpackr's undefined: fixext 1, type 0.
      out[pos++] = 0xd4;
      out[pos++] = 0;
      out[pos++] = 0;
      return;
    case 'object':
      if (value === null) {
        out[pos++] = 0xc0;
        return;
      }
      break;
    default:
      throw UNSUPPORTED;
  }
  const constructor = (value as object).constructor;
  if (constructor === Object) writeObject(value as Record<string, unknown>);
  else if (constructor === Array) writeArray(value as unknown[]);
  else if (constructor === Uint8Array) writeBin(value as Uint8Array);
  else throw UNSUPPORTED;
}

/** msgpackr's choices: uint32 and int32 as integers (fixint below 0x80), everything else float64. */
function writeNumber(value: number): void {
  if (value >>> 0 === value) {
    if (value < 0x80) out[pos++] = value;
    else writeSized(value, 0xcc, 0xcd, 0xce);
  } else if (value >> 0 === value) {
    if (value >= -0x20) out[pos++] = 0x100 + value;
    else if (value >= -0x80) {
      out[pos++] = 0xd0;
      out[pos++] = value + 0x100;
    } else if (value >= -0x8000) {
      out[pos++] = 0xd1;
      outView.setInt16(pos, value);
      pos += 2;
    } else {
      out[pos++] = 0xd2;
      outView.setInt32(pos, value);
      pos += 4;
    }
  } else {
    out[pos++] = 0xcb;
    outView.setFloat64(pos, value);
    pos += 8;
  }
}

function writeString(value: string): void {
  const n = value.length;
  if (n < 0x20) {
    // Short ASCII (names, kinds, dtypes): bytes written straight after a fixstr header.
    if (pos + 1 + n > outCap) grow(1 + n);
    const start = pos + 1;
    let i = 0;
    for (; i < n; i++) {
      const c = value.charCodeAt(i);
      if (c >= 0x80) break;
      out[start + i] = c;
    }
    if (i === n) {
      out[pos] = 0xa0 | n;
      pos = start + n;
      return;
    }
  }
  // UTF-8 (a lone surrogate becomes U+FFFD, as in msgpackr), header sized for the worst case.
  if (pos + 5 + n * 3 > outCap) grow(5 + n * 3);
  const { written } = utf8Encoder.encodeInto(value, out.subarray(pos + 5));
  if (written < 0x20) {
    out[pos] = 0xa0 | written;
    out.copyWithin(pos + 1, pos + 5, pos + 5 + written);
    pos += 1 + written;
  } else if (written < 0x100) {
    out[pos] = 0xd9;
    out[pos + 1] = written;
    out.copyWithin(pos + 2, pos + 5, pos + 5 + written);
    pos += 2 + written;
  } else if (written < 0x10000) {
    out[pos] = 0xda;
    outView.setUint16(pos + 1, written);
    out.copyWithin(pos + 3, pos + 5, pos + 5 + written);
    pos += 3 + written;
  } else {
    out[pos] = 0xdb;
    outView.setUint32(pos + 1, written);
    pos += 5 + written;
  }
}

function writeObject(object: Record<string, unknown>): void {
  // map 16 with the count patched in afterwards, as msgpackr: for-in over own keys.
  out[pos++] = 0xde;
  const sizeAt = pos;
  pos += 2;
  let size = 0;
  for (const key in object) {
    if (!Object.prototype.hasOwnProperty.call(object, key)) continue;
    // msgpackr calls the object's own hasOwnProperty: an object that has one is msgpackr's.
    if (key === 'hasOwnProperty') throw UNSUPPORTED;
    writeString(key);
    write(object[key]);
    size++;
  }
  if (size > 0xffff) throw UNSUPPORTED;
  outView.setUint16(sizeAt, size);
}

function writeArray(array: unknown[]): void {
  const n = array.length;
  if (n < 0x10) out[pos++] = 0x90 | n;
  else if (n < 0x10000) {
    out[pos++] = 0xdc;
    outView.setUint16(pos, n);
    pos += 2;
  } else {
    out[pos++] = 0xdd;
    outView.setUint32(pos, n);
    pos += 4;
  }
  for (let i = 0; i < n; i++) write(array[i]);
}

/** An unsigned `n` after the opcode of its size class: 8-, 16- or 32-bit big-endian (uint, bin). */
function writeSized(n: number, op8: number, op16: number, op32: number): void {
  if (n < 0x100) {
    out[pos++] = op8;
    out[pos++] = n;
  } else if (n < 0x10000) {
    out[pos++] = op16;
    outView.setUint16(pos, n);
    pos += 2;
  } else {
    out[pos++] = op32;
    outView.setUint32(pos, n);
    pos += 4;
  }
}

function writeBin(bytes: Uint8Array): void {
  const n = bytes.byteLength;
  if (pos + 5 + n > outCap) grow(5 + n);
  writeSized(n, 0xc4, 0xc5, 0xc6);
  out.set(bytes, pos);
  pos += n;
}

// ---- decoding -----------------------------------------------------------------------------

let src: Uint8Array = new Uint8Array(0);
/** A DataView of `src`, made only for the values that need one (most messages have none). */
let srcView: DataView | undefined;
let at = 0;
let end = 0;

function view(): DataView {
  return (srcView ??= new DataView(src.buffer, src.byteOffset, src.byteLength));
}

function u16(): number {
  const v = (src[at]! << 8) | src[at + 1]!;
  at += 2;
  return v;
}

function u32(): number {
  const v = src[at]! * 0x1000000 + ((src[at + 1]! << 16) | (src[at + 2]! << 8) | src[at + 3]!);
  at += 4;
  return v;
}

/**
 * The message in the first `length` bytes of `bytes` (process-private memory: bin values are
 * copied out of it; a length, so a reused buffer needs no view per message), or NOT_FAST
 * when it holds something only msgpackr decodes or is malformed (msgpackr then says why).
 */
export function decodeFast(bytes: Uint8Array, length = bytes.byteLength): unknown {
  if (length === 0) return NOT_FAST;
  src = bytes;
  srcView = undefined;
  at = 0;
  end = length;
  try {
    const value = read();
    return at === end ? value : NOT_FAST;
  } catch (err) {
    if (err === UNSUPPORTED || err instanceof RangeError || err instanceof TypeError) return NOT_FAST;
    throw err;
  } finally {
    src = EMPTY;
    srcView = undefined;
  }
}

const EMPTY = new Uint8Array(0);

function need(n: number): void {
  if (at + n > end) throw UNSUPPORTED;
}

function read(): unknown {
  need(1);
  const b = src[at++]!;
  if (b < 0x80) return b;
  if (b < 0x90) return readMap(b & 0x0f);
  if (b < 0xa0) return readArray(b & 0x0f);
  if (b < 0xc0) return readString(b & 0x1f);
  if (b >= 0xe0) return b - 0x100;
  let v: number;
  switch (b) {
    case 0xc0: return null;
    case 0xc2: return false;
    case 0xc3: return true;
    case 0xc4: need(1); return readBin(src[at++]!);
    case 0xc5: need(2); return readBin(u16());
    case 0xc6: need(4); return readBin(u32());
    case 0xca: need(4); v = view().getFloat32(at); at += 4; return v;
    case 0xcb: need(8); v = view().getFloat64(at); at += 8; return v;
    case 0xcc: need(1); return src[at++]!;
    case 0xcd: need(2); return u16();
    case 0xce: need(4); return u32();
    case 0xd0: need(1); v = view().getInt8(at); at += 1; return v;
    case 0xd1: need(2); v = view().getInt16(at); at += 2; return v;
    case 0xd2: need(4); v = view().getInt32(at); at += 4; return v;
    case 0xd4:
      // fixext 1 of type 0: msgpackr's undefined (any other extension is msgpackr's).
      need(2);
      if (src[at] !== 0) throw UNSUPPORTED;
      at += 2;
      return undefined;
    case 0xd9: need(1); return readString(src[at++]!);
    case 0xda: need(2); return readString(u16());
    case 0xdb: need(4); return readString(u32());
    case 0xdc: need(2); return readArray(u16());
    case 0xdd: need(4); return readArray(u32());
    case 0xde: need(2); return readMap(u16());
    case 0xdf: need(4); return readMap(u32());
    default: throw UNSUPPORTED;
  }
}

function readMap(n: number): Record<string, unknown> {
  if (n > (end - at) / 2) throw UNSUPPORTED;
  const object: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) {
    need(1);
    const b = src[at++]!;
    let key: string;
    if (b >= 0xa0 && b < 0xc0) key = readString(b & 0x1f);
    else if (b === 0xd9) {
      need(1);
      key = readString(src[at++]!);
    } else throw UNSUPPORTED;
    // msgpackr renames this key; leave that to it.
    if (key === '__proto__') throw UNSUPPORTED;
    object[key] = read();
  }
  return object;
}

function readArray(n: number): unknown[] {
  if (n > end - at) throw UNSUPPORTED;
  const array: unknown[] = new Array(n);
  for (let i = 0; i < n; i++) array[i] = read();
  return array;
}

function readBin(n: number): Uint8Array {
  need(n);
  const bytes = src.slice(at, at + n);
  at += n;
  return bytes;
}

/** Short ASCII strings recur (keys, kinds, names): small caches keyed by their bytes. */
const CACHE_MAX_BYTES = 24;
const cacheStrings: (string | undefined)[] = new Array(1024);
const cacheBytes: (Uint8Array | undefined)[] = new Array(1024);

/**
 * Up to 8 ASCII bytes (most keys and names) are two words: compared as such against a cache
 * slot, without a loop over a cached copy.
 */
const WORD_SLOTS = 1024;
const wordLength = new Int32Array(WORD_SLOTS).fill(-1);
const wordHigh = new Int32Array(WORD_SLOTS);
const wordLow = new Int32Array(WORD_SLOTS);
const wordStrings: string[] = new Array<string>(WORD_SLOTS).fill('');

function readString(n: number): string {
  need(n);
  const start = at;
  at += n;
  if (n === 0) return '';
  if (n <= 8) {
    let high = 0;
    let low = 0;
    let bits = 0;
    const mid = start + (n < 4 ? n : 4);
    for (let i = start; i < mid; i++) {
      const c = src[i]!;
      bits |= c;
      high = (high << 8) | c;
    }
    for (let i = mid; i < start + n; i++) {
      const c = src[i]!;
      bits |= c;
      low = (low << 8) | c;
    }
    if (bits < 0x80) {
      // Both words multiplied: names that differ only in their last byte ('INPUT0', 'INPUT1')
      // took one slot in turns when `low` went in unmixed, and were made anew on every read.
      const slot = Math.imul(Math.imul(high ^ n, 0x9e3779b1) ^ low, 0x85ebca6b) >>> 22;
      if (wordLength[slot] === n && wordHigh[slot] === high && wordLow[slot] === low) return wordStrings[slot]!;
      const s = asciiString(start, n);
      wordLength[slot] = n;
      wordHigh[slot] = high;
      wordLow[slot] = low;
      wordStrings[slot] = s;
      return s;
    }
  }
  return readLongerString(start, n);
}

function asciiString(start: number, n: number): string {
  let s = '';
  for (let i = start; i < start + n; i++) s += String.fromCharCode(src[i]!);
  return s;
}

function readLongerString(start: number, n: number): string {
  if (n <= CACHE_MAX_BYTES) {
    let h = n;
    let ascii = true;
    for (let i = start; i < start + n; i++) {
      const c = src[i]!;
      if (c >= 0x80) {
        ascii = false;
        break;
      }
      h = (Math.imul(h, 31) + c) | 0;
    }
    if (ascii) {
      const slot = h & 1023;
      const known = cacheBytes[slot];
      if (known && known.byteLength === n) {
        let same = true;
        for (let i = 0; i < n; i++) {
          if (known[i] !== src[start + i]) {
            same = false;
            break;
          }
        }
        if (same) return cacheStrings[slot]!;
      }
      const s = asciiString(start, n);
      cacheBytes[slot] = src.slice(start, start + n);
      cacheStrings[slot] = s;
      return s;
    }
  }
  // Valid UTF-8 reads the same in every decoder; invalid bytes are msgpackr's to replace.
  try {
    return utf8.decode(src.subarray(start, start + n));
  } catch {
    throw UNSUPPORTED;
  }
}
