/**
 * Reads an ONNX file's graph inputs and outputs (names, element types, dims) without building a
 * session: a protobuf walk that decodes only ModelProto.graph.{input, output, initializer names}
 * and skips nodes and weight bytes. On the PP-OCRv4 files this is several times cheaper than an
 * InferenceSession with optimisations disabled (which parses and checks the whole graph), and it
 * needs no protobuf library at run time (onnx-proto is a dev dependency, used by the generator).
 *
 * Field numbers are onnx.proto's (ModelProto.graph = 7; GraphProto.initializer = 5, input = 11,
 * output = 12; ValueInfoProto.name = 1, type = 2; TypeProto.tensor_type = 1;
 * TypeProto.Tensor.elem_type = 1, shape = 2; TensorShapeProto.dim = 1; Dimension.dim_value = 1,
 * dim_param = 2; TensorProto.name = 8).
 */
import { readFileSync } from 'node:fs';

export interface GraphValue {
  name: string;
  /** ONNX TensorProto.DataType number (1 = FLOAT ...); 0 when the value is not a tensor. */
  elemType: number;
  /** Dims with -1 for symbolic or unknown ones; undefined when the file gives no shape (unknown rank). */
  dims?: number[];
  /** Symbolic names of dynamic dims, for messages (`p2o.DynamicDimension.0`). */
  dimParams?: (string | undefined)[];
}

export interface GraphIO {
  /** The inputs a caller must feed: graph inputs that are not initializers. */
  inputs: GraphValue[];
  outputs: GraphValue[];
  /**
   * Graph inputs that are also initializers (IR version 4 and later): onnxruntime's "overridable
   * initializers". They have a default (the initializer); a caller may feed them to override it.
   */
  initializerInputs: GraphValue[];
  irVersion: number;
}

const WIRE_VARINT = 0;
const WIRE_I64 = 1;
const WIRE_LEN = 2;
const WIRE_I32 = 5;

class Reader {
  pos: number;
  constructor(readonly buf: Uint8Array, start = 0, readonly end = buf.byteLength) {
    this.pos = start;
  }

  done(): boolean {
    return this.pos >= this.end;
  }

  varint(): number {
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new Error(`truncated varint at byte ${this.pos}`);
      const b = this.buf[this.pos++]!;
      // Numbers above 2^53 lose precision; dims and lengths never get there in a valid file.
      result += (b & 0x7f) * mul;
      mul *= 128;
      if ((b & 0x80) === 0) return result;
    }
    throw new Error(`malformed varint at byte ${this.pos}`);
  }

  /** A length-delimited field: returns [start, end) and moves past it. */
  span(): [number, number] {
    const len = this.varint();
    const start = this.pos;
    const end = start + len;
    if (end > this.end) throw new Error(`field of ${len} bytes at byte ${start} runs past the end of its message (byte ${this.end})`);
    this.pos = end;
    return [start, end];
  }

  skip(wire: number): void {
    switch (wire) {
      case WIRE_VARINT:
        this.varint();
        return;
      case WIRE_I64:
        this.pos += 8;
        break;
      case WIRE_LEN:
        this.span();
        return;
      case WIRE_I32:
        this.pos += 4;
        break;
      default:
        throw new Error(`unsupported protobuf wire type ${wire} at byte ${this.pos}`);
    }
    if (this.pos > this.end) throw new Error('truncated fixed-width field');
  }

  sub([start, end]: [number, number]): Reader {
    return new Reader(this.buf, start, end);
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: false });

function str(r: Reader, span: [number, number]): string {
  return utf8.decode(r.buf.subarray(span[0], span[1]));
}

/** Calls `fn(field, wire, reader)` for each field; fn must consume the field's value. */
function fields(r: Reader, fn: (field: number, wire: number) => boolean): void {
  while (!r.done()) {
    const tag = r.varint();
    const field = Math.floor(tag / 8);
    const wire = tag & 7;
    if (field === 0) throw new Error(`field number 0 at byte ${r.pos}`);
    if (!fn(field, wire)) r.skip(wire);
  }
}

function readValueInfo(r: Reader): GraphValue {
  const v: GraphValue = { name: '', elemType: 0 };
  fields(r, (field, wire) => {
    if (field === 1 && wire === WIRE_LEN) v.name = str(r, r.span());
    else if (field === 2 && wire === WIRE_LEN) readType(r.sub(r.span()), v);
    else return false;
    return true;
  });
  return v;
}

function readType(r: Reader, v: GraphValue): void {
  fields(r, (field, wire) => {
    if (field !== 1 || wire !== WIRE_LEN) return false;
    const t = r.sub(r.span());
    fields(t, (f, w) => {
      if (f === 1 && w === WIRE_VARINT) v.elemType = t.varint();
      else if (f === 2 && w === WIRE_LEN) readShape(t.sub(t.span()), v);
      else return false;
      return true;
    });
    return true;
  });
}

function readShape(r: Reader, v: GraphValue): void {
  const dims: number[] = [];
  const params: (string | undefined)[] = [];
  fields(r, (field, wire) => {
    if (field !== 1 || wire !== WIRE_LEN) return false;
    const d = r.sub(r.span());
    let value = -1;
    let param: string | undefined;
    fields(d, (f, w) => {
      if (f === 1 && w === WIRE_VARINT) value = d.varint();
      else if (f === 2 && w === WIRE_LEN) param = str(d, d.span());
      else return false;
      return true;
    });
    // dim_value 0 with a dim_param, or neither set, is a dynamic dimension.
    dims.push(param !== undefined ? -1 : value);
    params.push(param);
    return true;
  });
  v.dims = dims;
  v.dimParams = params;
}

function readTensorName(r: Reader): string {
  let name = '';
  fields(r, (field, wire) => {
    if (field !== 8 || wire !== WIRE_LEN) return false;
    name = str(r, r.span());
    return true;
  });
  return name;
}

/** Parses graph inputs/outputs from the bytes of an ONNX ModelProto. Throws on malformed data. */
export function parseGraphIO(bytes: Uint8Array): GraphIO {
  const model = new Reader(bytes);
  let irVersion = 0;
  let graph: [number, number] | undefined;
  fields(model, (field, wire) => {
    if (field === 1 && wire === WIRE_VARINT) irVersion = model.varint();
    else if (field === 7 && wire === WIRE_LEN) graph = model.span();
    else return false;
    return true;
  });
  if (!graph) throw new Error('no graph in the file (ModelProto.graph is missing)');
  const g = model.sub(graph);
  const inputs: GraphValue[] = [];
  const outputs: GraphValue[] = [];
  const initializers = new Set<string>();
  fields(g, (field, wire) => {
    if (wire !== WIRE_LEN) return false;
    if (field === 11) inputs.push(readValueInfo(g.sub(g.span())));
    else if (field === 12) outputs.push(readValueInfo(g.sub(g.span())));
    else if (field === 5) initializers.add(readTensorName(g.sub(g.span())));
    else return false;
    return true;
  });
  if (outputs.length === 0) throw new Error('the graph declares no outputs');
  // Graph inputs that are initializers are not inputs a caller must feed (onnxruntime's
  // GetInputs leaves them out). From IR version 4 on they are overridable: a caller may feed
  // them. Before IR version 4 every initializer had to be listed as a graph input, and
  // onnxruntime treats those as constants.
  return {
    inputs: inputs.filter((v) => !initializers.has(v.name)),
    outputs,
    initializerInputs: irVersion >= 4 ? inputs.filter((v) => initializers.has(v.name)) : [],
    irVersion,
  };
}

/** Reads and parses `file`; errors name the file and say what is wrong with it. */
export function readGraphIO(file: string): GraphIO {
  const bytes = readFileSync(file);
  try {
    return parseGraphIO(bytes);
  } catch (err) {
    throw new Error(`${file} is not a valid ONNX model (${(err as Error).message})`);
  }
}
