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

function startMessage(): void {
  // A large message grew the buffer: do not keep it for the small ones that follow.
  if (outCap > KEEP_BYTES) {
    out = new Uint8Array(INITIAL_BYTES);
    outView = new DataView(out.buffer);
    outCap = out.byteLength;
  }
  pos = 0;
}

/**
 * The message's msgpack bytes, or undefined when it holds something only msgpackr encodes. The
 * bytes are valid until the next call: the caller copies them (MessageQueue.send does).
 */
export function encodeFast(message: unknown): Uint8Array | undefined {
  startMessage();
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
  writeArrayHeader(n);
  for (let i = 0; i < n; i++) write(array[i]);
}

function writeArrayHeader(n: number): void {
  if (pos + 5 > outCap) grow(5);
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
  return decodeWith(read, bytes, length);
}

function decodeWith(reader: () => unknown, bytes: Uint8Array, length: number): unknown {
  if (length === 0) return NOT_FAST;
  src = bytes;
  srcView = undefined;
  at = 0;
  end = length;
  try {
    const value = reader();
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

// ---- schema paths: exec and exec-done -----------------------------------------------------

/*
 * The two messages every request costs, one each way: `exec` (host → stub) and `exec-done`
 * (stub → host), written and read knowing their layout (protocol.ts, wire-request.ts,
 * tensor-codec.ts). Same bytes and same values as the generic path (hence as msgpackr): the
 * writers still walk each object's own keys in their order, as msgpackr does, and the readers
 * still build each object key by key in wire order; what the layout saves is the work around
 * that: keys written from their bytes and matched by their bytes (no string made, no store under
 * a computed key, which V8 does through a slow generic lookup), nested requests, responses and
 * tensors written and read without the per-value dispatch. A key the layout does not name, or a
 * value of another kind than it says, goes through the generic path for that entry, so nothing
 * changes meaning.
 */

const hasOwn = Object.prototype.hasOwnProperty;

/** A short ASCII key as msgpack writes it: its fixstr header, then its bytes. */
function keyBytes(key: string): Uint8Array {
  return Uint8Array.from([0xa0 | key.length, ...Array.from(key, (c) => c.charCodeAt(0))]);
}

const K_REQS = keyBytes('reqs');
const K_RS = keyBytes('rs');
const K_INS = keyBytes('ins');
const K_OUTS = keyBytes('outs');
const K_N = keyBytes('n');
const K_T = keyBytes('t');
const K_S = keyBytes('s');
const K_D = keyBytes('d');
const K_H = keyBytes('h');
const K_B = keyBytes('b');
const K_RID = keyBytes('rid');
const K_ID = keyBytes('id');
const K_MODEL = keyBytes('model');
const K_VERSION = keyBytes('version');
/** The two kinds as msgpack strings (the value of `k`, the first key of both messages). */
const EXEC = keyBytes('exec');
const EXEC_DONE = keyBytes('exec-done');

/**
 * The message's msgpack bytes as encodeFast writes them (undefined: msgpackr's to encode), the
 * hot kinds through their schema path. Valid until the next call, as encodeFast's.
 */
export function encodeMessage(message: unknown): Uint8Array | undefined {
  const kind = typeof message === 'object' && message !== null ? (message as { k?: unknown }).k : undefined;
  if (kind !== 'exec' && kind !== 'exec-done') return encodeFast(message);
  startMessage();
  try {
    writeTop(message as Record<string, unknown>);
  } catch (err) {
    if (err === UNSUPPORTED) return undefined;
    throw err;
  }
  return out.subarray(0, pos);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && v.constructor === Object;
}

function isPlainArray(v: unknown): v is unknown[] {
  return Array.isArray(v) && v.constructor === Array;
}

function putKey(key: Uint8Array): void {
  const n = key.length;
  if (pos + n > outCap) grow(n);
  for (let i = 0; i < n; i++) out[pos + i] = key[i]!;
  pos += n;
}

/** A one-letter key: its fixstr header and its byte. */
function putKey1(c: number): void {
  if (pos + 2 > outCap) grow(2);
  out[pos] = 0xa1;
  out[pos + 1] = c;
  pos += 2;
}

/** A value that is most likely a string or a number (else: write). */
function writeScalar(v: unknown): void {
  if (typeof v === 'string') writeString(v);
  else if (typeof v === 'number') {
    if (pos + 9 > outCap) grow(9);
    writeNumber(v);
  } else write(v);
}

/** A map's header with room for its count, which `closeMap` writes (msgpackr's map 16). */
function openMap(): number {
  if (pos + 3 > outCap) grow(3);
  out[pos] = 0xde;
  pos += 3;
  return pos - 2;
}

function closeMap(sizeAt: number, size: number): void {
  if (size > 0xffff) throw UNSUPPORTED;
  out[sizeAt] = size >>> 8;
  out[sizeAt + 1] = size & 0xff;
}

/** An entry the layout does not name: as writeObject writes it. */
function writeEntry(key: string, value: unknown): void {
  if (key === 'hasOwnProperty') throw UNSUPPORTED;
  writeString(key);
  write(value);
}

function writeTop(m: Record<string, unknown>): void {
  if (m.constructor !== Object) throw UNSUPPORTED;
  const sizeAt = openMap();
  let size = 0;
  for (const key in m) {
    if (!hasOwn.call(m, key)) continue;
    const v = m[key];
    if (key === 'k') {
      putKey1(0x6b);
      writeScalar(v);
    } else if (key === 'b') {
      putKey1(0x62);
      writeScalar(v);
    } else if (key === 'reqs' && isPlainArray(v)) {
      putKey(K_REQS);
      writeArrayHeader(v.length);
      for (let i = 0; i < v.length; i++) {
        const r = v[i];
        if (isPlainObject(r)) writeRequestMap(r);
        else write(r);
      }
    } else if (key === 'rs' && isPlainArray(v)) {
      putKey(K_RS);
      writeArrayHeader(v.length);
      for (let i = 0; i < v.length; i++) {
        const r = v[i];
        if (isPlainObject(r)) writeResponseMap(r);
        else write(r);
      }
    } else writeEntry(key, v);
    size++;
  }
  closeMap(sizeAt, size);
}

function writeRequestMap(r: Record<string, unknown>): void {
  const sizeAt = openMap();
  let size = 0;
  for (const key in r) {
    if (!hasOwn.call(r, key)) continue;
    const v = r[key];
    switch (key) {
      case 'rid':
        putKey(K_RID);
        writeScalar(v);
        break;
      case 'model':
        putKey(K_MODEL);
        writeScalar(v);
        break;
      case 'version':
        putKey(K_VERSION);
        writeScalar(v);
        break;
      case 'ins':
        putKey(K_INS);
        writeTensorList(v);
        break;
      default: writeEntry(key, v);
    }
    size++;
  }
  closeMap(sizeAt, size);
}

function writeResponseMap(r: Record<string, unknown>): void {
  const sizeAt = openMap();
  let size = 0;
  for (const key in r) {
    if (!hasOwn.call(r, key)) continue;
    const v = r[key];
    if (key === 'outs') {
      putKey(K_OUTS);
      writeTensorList(v);
    } else writeEntry(key, v);
    size++;
  }
  closeMap(sizeAt, size);
}

function writeTensorList(v: unknown): void {
  if (!isPlainArray(v)) {
    write(v);
    return;
  }
  writeArrayHeader(v.length);
  for (let i = 0; i < v.length; i++) {
    const d = v[i];
    if (isPlainObject(d)) writeTensorMap(d);
    else write(d);
  }
}

function writeTensorMap(d: Record<string, unknown>): void {
  const sizeAt = openMap();
  let size = 0;
  for (const key in d) {
    if (!hasOwn.call(d, key)) continue;
    const v = d[key];
    switch (key) {
      case 'n':
        putKey1(0x6e);
        writeScalar(v);
        break;
      case 't':
        putKey1(0x74);
        writeScalar(v);
        break;
      case 's':
        putKey1(0x73);
        if (isPlainArray(v)) writeSmallUints(v);
        else write(v);
        break;
      case 'd':
        putKey1(0x64);
        if (v instanceof Uint8Array && v.constructor === Uint8Array) writeBin(v);
        else write(v);
        break;
      case 'h':
        putKey1(0x68);
        if (isPlainArray(v)) writeSmallUints(v);
        else write(v);
        break;
      default: writeEntry(key, v);
    }
    size++;
  }
  closeMap(sizeAt, size);
}

/** A shape or a handle: an array of (mostly small) unsigned integers. */
function writeSmallUints(a: unknown[]): void {
  const n = a.length;
  writeArrayHeader(n);
  for (let i = 0; i < n; i++) {
    const e = a[i];
    if (typeof e === 'number' && e >>> 0 === e && e < 0x80 && pos < outCap) out[pos++] = e;
    else write(e);
  }
}

/**
 * The message in the first `length` bytes of `bytes` as decodeFast reads it (NOT_FAST:
 * msgpackr's to decode or to refuse), the hot kinds through their schema path.
 */
export function decodeMessage(bytes: Uint8Array, length = bytes.byteLength): unknown {
  // Both hot kinds start with a map 16 whose first key is `k`: `de nn nn a1 6b`, then the kind.
  if (length > 12 && bytes[0] === 0xde && bytes[3] === 0xa1 && bytes[4] === 0x6b) {
    if (startsWith(bytes, length, 5, EXEC)) return decodeWith(readExecTop, bytes, length);
    if (startsWith(bytes, length, 5, EXEC_DONE)) return decodeWith(readExecDoneTop, bytes, length);
  }
  return decodeFast(bytes, length);
}

/** Whether the message's bytes (not what follows them in a reused buffer) have `key` at `offset`. */
function startsWith(bytes: Uint8Array, length: number, offset: number, key: Uint8Array): boolean {
  if (offset + key.length > length) return false;
  for (let i = 0; i < key.length; i++) if (bytes[offset + i] !== key[i]) return false;
  return true;
}

/** Consumes `key` (header and bytes) if it is next. */
function takeKey(key: Uint8Array): boolean {
  const n = key.length;
  if (at + n > end) return false;
  for (let i = 0; i < n; i++) if (src[at + i] !== key[i]) return false;
  at += n;
  return true;
}

/** An entry the layout does not name: as readMap reads it. */
function readEntry(object: Record<string, unknown>): void {
  need(1);
  const b = src[at++]!;
  let key: string;
  if (b >= 0xa0 && b < 0xc0) key = readString(b & 0x1f);
  else if (b === 0xd9) {
    need(1);
    key = readString(src[at++]!);
  } else throw UNSUPPORTED;
  if (key === '__proto__') throw UNSUPPORTED;
  object[key] = read();
}

/** The entry count of the map that is next (its header consumed), or -1 (nothing consumed) for any other value. */
function mapHeader(): number {
  if (at >= end) return -1;
  const b = src[at]!;
  let n: number;
  if ((b & 0xf0) === 0x80) {
    at++;
    n = b & 0x0f;
  } else if (b === 0xde && at + 3 <= end) {
    at++;
    n = u16();
  } else return -1;
  if (n > (end - at) / 2) throw UNSUPPORTED;
  return n;
}

/** The length of the array that is next (its header consumed), or -1 (nothing consumed) for any other value. */
function arrayHeader(): number {
  if (at >= end) return -1;
  const b = src[at]!;
  let n: number;
  if ((b & 0xf0) === 0x90) {
    at++;
    n = b & 0x0f;
  } else if (b === 0xdc && at + 3 <= end) {
    at++;
    n = u16();
  } else return -1;
  if (n > end - at) throw UNSUPPORTED;
  return n;
}

function readStr(): unknown {
  need(1);
  const b = src[at]!;
  if (b < 0xa0 || b >= 0xc0) return read();
  at++;
  return readString(b & 0x1f);
}

function readExecTop(): unknown {
  const n = (src[1]! << 8) | src[2]!;
  // An empty map followed by what would be its first key: the generic reader's to refuse.
  if (n === 0) return read();
  at = 5 + EXEC.length;
  if (n - 1 > (end - at) / 2) throw UNSUPPORTED;
  const m: Record<string, unknown> = { k: 'exec' };
  for (let i = 1; i < n; i++) {
    if (takeKey(K_B)) m['b'] = read();
    else if (takeKey(K_REQS)) m['reqs'] = readRequests();
    else readEntry(m);
  }
  return m;
}

function readExecDoneTop(): unknown {
  const n = (src[1]! << 8) | src[2]!;
  // An empty map followed by what would be its first key: the generic reader's to refuse.
  if (n === 0) return read();
  at = 5 + EXEC_DONE.length;
  if (n - 1 > (end - at) / 2) throw UNSUPPORTED;
  const m: Record<string, unknown> = { k: 'exec-done' };
  for (let i = 1; i < n; i++) {
    if (takeKey(K_B)) m['b'] = read();
    else if (takeKey(K_RS)) m['rs'] = readResponses();
    else readEntry(m);
  }
  return m;
}

// readRequests, readResponses and readTensors are one loop over different element readers,
// written out three times rather than taking the reader as an argument: each call stays direct
// (inlinable) on the hottest decode of the host and the stub.
function readRequests(): unknown {
  const n = arrayHeader();
  if (n < 0) return read();
  const list: unknown[] = new Array(n);
  for (let i = 0; i < n; i++) list[i] = readRequest();
  return list;
}

/** Keys in the order encodeRequest writes them; the rarer ones are left to readEntry. */
function readRequest(): unknown {
  const n = mapHeader();
  if (n < 0) return read();
  const r: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) {
    if (takeKey(K_RID)) r['rid'] = read();
    else if (takeKey(K_MODEL)) r['model'] = readStr();
    else if (takeKey(K_INS)) r['ins'] = readTensors();
    else if (takeKey(K_ID)) r['id'] = readStr();
    else if (takeKey(K_VERSION)) r['version'] = read();
    else readEntry(r);
  }
  return r;
}

function readResponses(): unknown {
  const n = arrayHeader();
  if (n < 0) return read();
  const list: unknown[] = new Array(n);
  for (let i = 0; i < n; i++) list[i] = readResponse();
  return list;
}

function readResponse(): unknown {
  const n = mapHeader();
  if (n < 0) return read();
  const r: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) {
    if (takeKey(K_OUTS)) r['outs'] = readTensors();
    else readEntry(r);
  }
  return r;
}

function readTensors(): unknown {
  const n = arrayHeader();
  if (n < 0) return read();
  const list: unknown[] = new Array(n);
  for (let i = 0; i < n; i++) list[i] = readTensorMap();
  return list;
}

function readTensorMap(): unknown {
  const n = mapHeader();
  if (n < 0) return read();
  const d: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) {
    if (takeKey(K_N)) d['n'] = readStr();
    else if (takeKey(K_T)) d['t'] = readStr();
    else if (takeKey(K_S)) d['s'] = readSmallUints();
    else if (takeKey(K_D)) d['d'] = read();
    else if (takeKey(K_H)) d['h'] = readSmallUints();
    else readEntry(d);
  }
  return d;
}

/** A shape or a handle: an array of (mostly small) unsigned integers. */
function readSmallUints(): unknown {
  const n = arrayHeader();
  if (n < 0) return read();
  const a: unknown[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const b = at < end ? src[at]! : 0xc1;
    if (b < 0x80) {
      at++;
      a[i] = b;
    } else a[i] = read();
  }
  return a;
}
