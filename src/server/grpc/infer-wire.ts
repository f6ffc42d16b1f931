/**
 * ModelInferRequest and ModelInferResponse on the wire, for the inference RPCs: a decoder and an
 * encoder written for these two messages, which give the same objects (decoding) and the same
 * bytes (encoding) as @grpc/proto-loader's protobufjs codec with PROTO_LOADER_OPTIONS, without
 * its intermediate message objects, Longs and generic field loops (a share of the host's CPU on
 * every call, and of its garbage).
 *
 * They cover what clients send and the front-end answers in practice. Anything else (typed
 * `contents`, unknown fields, a wire type a field does not have, two members of one oneof,
 * 64-bit values from 2^53 on or negative, a string with a UTF-16 surrogate in a response, a
 * message cut short, ...) is handed to protobufjs as it arrived, so those results and errors are
 * exactly protobufjs's.
 */
import type * as grpc from '@grpc/grpc-js';
import type { InferInputTensorMsg, InferParameterMsg, ModelInferRequestMsg, ModelInferResponseMsg } from './codec.js';

/** Thrown (never outside this module) when a message is not one the fast path handles. */
const NOT_HANDLED: unique symbol = Symbol('not handled by the fast codec');

function notHandled(): never {
  throw NOT_HANDLED;
}

// Wire types.
const VARINT = 0;
const FIXED64 = 1;
const LENGTH_DELIMITED = 2;

// ---- decoding ----

/** A position in the message being decoded; every read checks the end it is given. */
class WireReader {
  pos = 0;

  constructor(readonly buf: Buffer) {}

  /** A varint that fits 32 bits unsigned (tags, lengths); longer or cut short: not handled. */
  uint32(end: number): number {
    const buf = this.buf;
    let pos = this.pos;
    let value = 0;
    for (let shift = 0; shift < 28; shift += 7) {
      if (pos >= end) notHandled();
      const b = buf[pos++]!;
      value |= (b & 127) << shift;
      if (b < 128) {
        this.pos = pos;
        return value >>> 0;
      }
    }
    if (pos >= end) notHandled();
    const b = buf[pos++]!;
    if (b >= 16) notHandled(); // beyond 32 bits, or a continuation
    this.pos = pos;
    return (value | (b << 28)) >>> 0;
  }

  /** A varint holding an int64 or uint64 in [0, 2^53), as its decimal string (longs: String); else not handled. */
  safeUint64String(end: number): string {
    const buf = this.buf;
    let pos = this.pos;
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      if (pos >= end) notHandled();
      const b = buf[pos++]!;
      value += (b & 127) * scale;
      if (b < 128) {
        if (value > Number.MAX_SAFE_INTEGER) notHandled();
        this.pos = pos;
        return String(value);
      }
      scale *= 128;
    }
    return notHandled();
  }

  /** The end of a length-delimited field that starts here. */
  delimited(end: number): number {
    const len = this.uint32(end);
    const stop = this.pos + len;
    if (stop > end) notHandled();
    return stop;
  }

  string(end: number): string {
    const stop = this.delimited(end);
    const s = this.buf.toString('utf8', this.pos, stop);
    this.pos = stop;
    return s;
  }

  /** A string that names something (model, version, tensor, datatype, parameter key): see internedName. */
  name(end: number): string {
    const stop = this.delimited(end);
    const start = this.pos;
    this.pos = stop;
    return internedName(this.buf, start, stop);
  }

  /** A view of the bytes in the message, as protobufjs's reader gives them (a fresh empty Buffer for none). */
  bytes(end: number): Buffer {
    const stop = this.delimited(end);
    const start = this.pos;
    this.pos = stop;
    return start === stop ? Buffer.alloc(0) : this.buf.subarray(start, stop);
  }

  double(end: number): number {
    if (this.pos + 8 > end) notHandled();
    const v = this.buf.readDoubleLE(this.pos);
    this.pos += 8;
    return v;
  }
}

/**
 * The names a client sends (model, version, tensors, datatypes, parameter keys) are the same on
 * every request: a table of recent ones gives each again as the same string, without decoding or
 * allocating it (nor hashing it again where it is looked up). A name's slot comes from its length
 * and four of its bytes, and a hit is its bytes compared once. Short ASCII names only (their
 * bytes are their char codes); ids and string values are not kept.
 */
const NAME_SLOTS = 256;
const NAME_MAX_BYTES = 64;
const names: string[] = new Array<string>(NAME_SLOTS).fill('');

function internedName(buf: Buffer, start: number, stop: number): string {
  const len = stop - start;
  if (len === 0) return '';
  if (len > NAME_MAX_BYTES) return buf.toString('utf8', start, stop);
  const last = stop - 1;
  const slot = (len * 0x9e5 + buf[start]! * 0x3b + buf[last]! * 0x1f1 + buf[start + (len >> 1)]! * 7 + buf[start + (len >> 2)]!) & (NAME_SLOTS - 1);
  const known = names[slot]!;
  if (known.length === len) {
    let i = 0;
    while (i < len && known.charCodeAt(i) === buf[start + i]) i++;
    if (i === len) return known; // `known` is ASCII, so these bytes are too
  }
  for (let i = start; i < stop; i++) if (buf[i]! >= 0x80) return buf.toString('utf8', start, stop);
  const name = buf.toString('latin1', start, stop); // ASCII: the string UTF-8 gives
  names[slot] = name;
  return name;
}

/** One map<string, InferParameter> entry into `map`; a later entry for a key replaces the earlier (as protobufjs). */
function readParameterEntry(r: WireReader, end: number, map: Record<string, InferParameterMsg>): void {
  const stop = r.delimited(end);
  let key = '';
  let value: InferParameterMsg | undefined;
  while (r.pos < stop) {
    const tag = r.uint32(stop);
    if (tag === ((1 << 3) | LENGTH_DELIMITED)) key = r.name(stop);
    else if (tag === ((2 << 3) | LENGTH_DELIMITED)) value = readParameter(r, stop);
    else notHandled();
  }
  // protobufjs keeps a null value (an entry without one), which its conversion then trips on.
  if (value === undefined || key === '__proto__') notHandled();
  map[key] = value;
}

/** InferParameter as proto-loader converts it: the member that is set, and its name as parameter_choice. */
function readParameter(r: WireReader, end: number): InferParameterMsg {
  const stop = r.delimited(end);
  let choice = 0;
  let bool = false;
  let text = '';
  let num = 0;
  while (r.pos < stop) {
    const tag = r.uint32(stop);
    const field = tag >>> 3;
    // A second member of the oneof: protobufjs would keep both; not handled.
    if (choice !== 0 && choice !== field) notHandled();
    switch (tag) {
      case (1 << 3) | VARINT: bool = r.uint32(stop) !== 0; break;
      case (2 << 3) | VARINT:
      case (5 << 3) | VARINT: text = r.safeUint64String(stop); break;
      case (3 << 3) | LENGTH_DELIMITED: text = r.string(stop); break;
      case (4 << 3) | FIXED64: num = r.double(stop); break;
      default: notHandled();
    }
    choice = field;
  }
  switch (choice) {
    case 1: return { bool_param: bool, parameter_choice: 'bool_param' };
    case 2: return { int64_param: text, parameter_choice: 'int64_param' };
    case 3: return { string_param: text, parameter_choice: 'string_param' };
    case 4: return { double_param: num, parameter_choice: 'double_param' };
    case 5: return { uint64_param: text, parameter_choice: 'uint64_param' };
    default: return {};
  }
}

function readInputTensor(r: WireReader, end: number): InferInputTensorMsg {
  const stop = r.delimited(end);
  let name = '';
  let datatype = '';
  const shape: string[] = [];
  const parameters: Record<string, InferParameterMsg> = {};
  while (r.pos < stop) {
    const tag = r.uint32(stop);
    switch (tag) {
      case (1 << 3) | LENGTH_DELIMITED: name = r.name(stop); break;
      case (2 << 3) | LENGTH_DELIMITED: datatype = r.name(stop); break;
      case (3 << 3) | LENGTH_DELIMITED: { // packed
        const dims = r.delimited(stop);
        while (r.pos < dims) shape.push(r.safeUint64String(dims));
        break;
      }
      case (3 << 3) | VARINT: shape.push(r.safeUint64String(stop)); break;
      case (4 << 3) | LENGTH_DELIMITED: readParameterEntry(r, stop, parameters); break;
      default: notHandled(); // `contents` (field 5) among them
    }
  }
  return { shape, parameters, name, datatype, contents: null };
}

function readRequestedOutput(r: WireReader, end: number): NonNullable<ModelInferRequestMsg['outputs']>[number] {
  const stop = r.delimited(end);
  let name = '';
  const parameters: Record<string, InferParameterMsg> = {};
  while (r.pos < stop) {
    const tag = r.uint32(stop);
    if (tag === ((1 << 3) | LENGTH_DELIMITED)) name = r.name(stop);
    else if (tag === ((2 << 3) | LENGTH_DELIMITED)) readParameterEntry(r, stop, parameters);
    else notHandled();
  }
  return { parameters, name };
}

function readInferRequest(buf: Buffer): ModelInferRequestMsg {
  const r = new WireReader(buf);
  const end = buf.length;
  let model_name = '';
  let model_version = '';
  let id = '';
  const parameters: Record<string, InferParameterMsg> = {};
  const inputs: InferInputTensorMsg[] = [];
  const outputs: NonNullable<ModelInferRequestMsg['outputs']> = [];
  const raw_input_contents: Buffer[] = [];
  while (r.pos < end) {
    const tag = r.uint32(end);
    switch (tag) {
      case (1 << 3) | LENGTH_DELIMITED: model_name = r.name(end); break;
      case (2 << 3) | LENGTH_DELIMITED: model_version = r.name(end); break;
      case (3 << 3) | LENGTH_DELIMITED: id = r.string(end); break;
      case (4 << 3) | LENGTH_DELIMITED: readParameterEntry(r, end, parameters); break;
      case (5 << 3) | LENGTH_DELIMITED: inputs.push(readInputTensor(r, end)); break;
      case (6 << 3) | LENGTH_DELIMITED: outputs.push(readRequestedOutput(r, end)); break;
      case (7 << 3) | LENGTH_DELIMITED: raw_input_contents.push(r.bytes(end)); break;
      default: notHandled();
    }
  }
  // proto-loader's key order (defaults first), so both paths give objects of one shape.
  return { inputs, outputs, raw_input_contents, parameters, model_name, model_version, id };
}

/** ModelInferRequest bytes → the object proto-loader's deserializer gives; `fallback` is that deserializer. */
export function decodeModelInferRequest(buf: Buffer, fallback: (buf: Buffer) => ModelInferRequestMsg): ModelInferRequestMsg {
  if (!Buffer.isBuffer(buf)) return fallback(buf);
  try {
    return readInferRequest(buf);
  } catch (err) {
    if (err !== NOT_HANDLED) throw err;
    return fallback(buf);
  }
}

// ---- encoding ----

/** Bytes of a varint (unsigned, below 2^53). */
function varintSize(n: number): number {
  let size = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

/** UTF-8 length of a string without UTF-16 surrogates (with one: not handled, see the module comment). */
function utf8Size(s: string): number {
  let size = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) size += 1;
    else if (c >= 0xd800 && c <= 0xdfff) notHandled();
    else size += 2;
  }
  return size;
}

/** A string the encoder may have to write: a string, or absent (protobufjs skips null and undefined). */
function optionalString(v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') notHandled(); // protobufjs would String() it
  return v;
}

/**
 * A plain object (what the front-end builds). protobufjs's fromObject also takes arrays, and
 * instances of its own message classes as they are: those are left to it.
 */
function plainObject(v: unknown): object {
  if (typeof v !== 'object' || v === null) notHandled();
  const proto: unknown = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) notHandled();
  return v;
}

/** A non-negative integer below 2^53 (what int64 shapes and counts are here); else not handled. */
function safeUint(v: unknown): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) notHandled();
  return v;
}

/**
 * The response, sized, then written in one pass into one buffer. `sizes` holds the length of
 * every nested message in the order they are written, so the write pass need not size again.
 */
class ResponseWriter {
  readonly sizes: number[] = [];
  buf: Buffer = Buffer.alloc(0);
  pos = 0;

  // -- sizing: each returns the bytes of the field(s), tag included --

  stringField(s: string | undefined): number {
    if (s === undefined) return 0;
    const n = utf8Size(s);
    return 1 + varintSize(n) + n;
  }

  /** A map<string, InferParameter> field's entries. */
  parameterMap(map: unknown): number {
    if (map === undefined || map === null) return 0;
    plainObject(map);
    let total = 0;
    for (const key in map) {
      if (key === '__proto__') notHandled();
      const value = plainObject((map as Record<string, unknown>)[key]);
      const keyBytes = utf8Size(key);
      const param = this.parameter(value as InferParameterMsg);
      const entry = 1 + varintSize(keyBytes) + keyBytes + 1 + varintSize(param) + param;
      this.sizes.push(entry, param);
      total += 1 + varintSize(entry) + entry;
    }
    return total;
  }

  /** An InferParameter's body: the one member set, as protobufjs's fromObject + encode write it. */
  parameter(p: InferParameterMsg): number {
    let members = 0;
    let size = 0;
    if (p.bool_param !== undefined && p.bool_param !== null) {
      if (typeof p.bool_param !== 'boolean') notHandled();
      members++;
      size = 2;
    }
    if (p.int64_param !== undefined && p.int64_param !== null) {
      members++;
      size = 1 + varintSize(safeUint(p.int64_param));
    }
    if (p.string_param !== undefined && p.string_param !== null) {
      members++;
      size = this.stringField(optionalString(p.string_param));
    }
    if (p.double_param !== undefined && p.double_param !== null) {
      if (typeof p.double_param !== 'number') notHandled();
      members++;
      size = 9;
    }
    if (p.uint64_param !== undefined && p.uint64_param !== null) notHandled();
    if (members > 1) notHandled();
    return size;
  }

  outputTensor(t: unknown): number {
    const o = plainObject(t) as ModelInferResponseMsg['outputs'][number] & { contents?: unknown };
    if (o.contents !== undefined && o.contents !== null) notHandled();
    let size = this.stringField(optionalString(o.name)) + this.stringField(optionalString(o.datatype));
    const shape: unknown = o.shape;
    if (shape !== undefined && shape !== null) {
      if (!Array.isArray(shape)) notHandled();
      if (shape.length > 0) {
        let dims = 0;
        for (const d of shape) dims += varintSize(safeUint(d));
        this.sizes.push(dims);
        size += 1 + varintSize(dims) + dims;
      }
    }
    return size + this.parameterMap(o.parameters);
  }

  /** Sizes the whole response (filling `sizes`); returns its length. */
  sizeResponse(m: ModelInferResponseMsg): number {
    let size = this.stringField(optionalString(m.model_name)) + this.stringField(optionalString(m.model_version))
      + this.stringField(optionalString(m.id)) + this.parameterMap(m.parameters);
    const outputs: unknown = m.outputs;
    if (outputs !== undefined && outputs !== null) {
      if (!Array.isArray(outputs)) notHandled();
      for (const t of outputs) {
        const slot = this.sizes.length;
        this.sizes.push(0);
        const body = this.outputTensor(t);
        this.sizes[slot] = body;
        size += 1 + varintSize(body) + body;
      }
    }
    const raw: unknown = m.raw_output_contents;
    if (raw !== undefined && raw !== null) {
      if (!Array.isArray(raw)) notHandled();
      for (const b of raw) {
        if (!(b instanceof Uint8Array)) notHandled(); // protobufjs would base64-decode a string
        size += 1 + varintSize(b.length) + b.length;
      }
    }
    return size;
  }

  // -- writing, in the order sizing went --

  #next = 0;

  nextSize(): number {
    return this.sizes[this.#next++]!;
  }

  byte(b: number): void {
    this.buf[this.pos++] = b;
  }

  varint(n: number): void {
    while (n >= 128) {
      this.buf[this.pos++] = (n % 128) | 128;
      n = Math.floor(n / 128);
    }
    this.buf[this.pos++] = n;
  }

  writeString(tag: number, s: string | undefined | null): void {
    if (s === undefined || s === null) return;
    this.byte(tag);
    const n = utf8Size(s);
    this.varint(n);
    if (n === s.length) {
      // ASCII (no surrogates here): byte per char, cheaper than a native call for short strings.
      for (let i = 0; i < n; i++) this.buf[this.pos + i] = s.charCodeAt(i);
    } else {
      this.buf.write(s, this.pos, n, 'utf8');
    }
    this.pos += n;
  }

  writeParameterMap(tag: number, map: Record<string, InferParameterMsg> | undefined | null): void {
    if (map === undefined || map === null) return;
    for (const key in map) {
      const entry = this.nextSize();
      const param = this.nextSize();
      this.byte(tag);
      this.varint(entry);
      this.writeString(10, key);
      this.byte(18);
      this.varint(param);
      const p = map[key]!;
      if (p.bool_param !== undefined && p.bool_param !== null) {
        this.byte(8);
        this.byte(p.bool_param ? 1 : 0);
      } else if (p.int64_param !== undefined && p.int64_param !== null) {
        this.byte(16);
        this.varint(p.int64_param as number);
      } else if (p.string_param !== undefined && p.string_param !== null) {
        this.writeString(26, p.string_param);
      } else if (p.double_param !== undefined && p.double_param !== null) {
        this.byte(33);
        this.buf.writeDoubleLE(p.double_param, this.pos);
        this.pos += 8;
      }
    }
  }

  writeResponse(m: ModelInferResponseMsg): void {
    this.writeString(10, m.model_name);
    this.writeString(18, m.model_version);
    this.writeString(26, m.id);
    this.writeParameterMap(34, m.parameters);
    if (m.outputs) {
      for (const o of m.outputs) {
        this.byte(42);
        this.varint(this.nextSize());
        this.writeString(10, o.name);
        this.writeString(18, o.datatype);
        if (o.shape && o.shape.length > 0) {
          this.byte(26);
          this.varint(this.nextSize());
          for (const d of o.shape) this.varint(d);
        }
        this.writeParameterMap(34, o.parameters);
      }
    }
    if (m.raw_output_contents) {
      for (const b of m.raw_output_contents) {
        this.byte(50);
        this.varint(b.length);
        this.buf.set(b, this.pos);
        this.pos += b.length;
      }
    }
  }
}

/** ModelInferResponse object → the bytes proto-loader's serializer writes; `fallback` is that serializer. */
export function encodeModelInferResponse(m: ModelInferResponseMsg, fallback: (m: ModelInferResponseMsg) => Buffer): Buffer {
  const w = new ResponseWriter();
  let size: number;
  try {
    size = w.sizeResponse(plainObject(m) as ModelInferResponseMsg);
  } catch (err) {
    if (err !== NOT_HANDLED) throw err;
    return fallback(m);
  }
  w.buf = Buffer.allocUnsafe(size);
  w.writeResponse(m);
  return w.buf;
}

/**
 * The inference service definition with the inference RPCs' ModelInferRequest decoded, and
 * ModelInfer's response encoded, by this module (the others as proto-loader made them).
 */
export function withFastInferCodec(def: grpc.ServiceDefinition): grpc.ServiceDefinition {
  const infer = def.ModelInfer!;
  const stream = def.ModelStreamInfer!;
  const decodeSlow = infer.requestDeserialize as (buf: Buffer) => ModelInferRequestMsg;
  const encodeSlow = infer.responseSerialize as (m: ModelInferResponseMsg) => Buffer;
  const requestDeserialize = (buf: Buffer): ModelInferRequestMsg => decodeModelInferRequest(buf, decodeSlow);
  return {
    ...def,
    ModelInfer: { ...infer, requestDeserialize, responseSerialize: (m: ModelInferResponseMsg) => encodeModelInferResponse(m, encodeSlow) },
    ModelStreamInfer: { ...stream, requestDeserialize },
  };
}
