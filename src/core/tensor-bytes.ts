/**
 * Serialized tensor bytes ⇄ TensorValue, the form shared by HTTP binary data, gRPC raw contents,
 * system shared memory and initial sequence state: numeric data as its little-endian element
 * bytes (viewed in place where alignment allows), BYTES as 4-byte length-prefixed elements.
 * The size checks of a client's bytes are worded as Triton's core words them (src/infer_request.cc).
 */
import {
  type DataType, type NumericTypedArray, bytesElementsSize, decodeBytesElements, elementCount, elementSize, encodeBytesElements, viewAs,
} from './dtypes.js';
import type { TensorValue } from './types.js';
import { fmtShape, invalidInput, logRequest } from './validate.js';

/**
 * Makes a TensorValue from the serialized bytes of one checked input: numeric data becomes a
 * typed array over `bytes` (copied only when the offset is not a multiple of the element size,
 * which typed arrays cannot view), BYTES becomes one view per element.
 *
 * @param source where the bytes came from, for messages ("binary data", "raw_input_contents", …)
 * @param request the model and request id: with them, size errors are worded as Triton's core
 *   words them (src/infer_request.cc), since clients match those
 */
export function tensorFromBytes(
  input: { name: string; datatype: DataType; shape: number[] }, bytes: Uint8Array, source = 'binary data',
  request?: { model: string; requestId?: string },
): TensorValue {
  const { name, datatype, shape } = input;
  const count = elementCount(shape);
  if (datatype === 'BYTES') {
    if (request !== undefined) checkBytesElements(name, bytes, count, request);
    const items = decodeBytesElements(bytes, count);
    if (typeof items === 'string') {
      throw invalidInput(`input '${name}': bad BYTES ${source}: ${items}; each element is a 4-byte little-endian length followed by that many bytes, ${count} elements for shape ${fmtShape(shape)}`);
    }
    return { name, datatype, shape, data: items };
  }
  const size = elementSize(datatype);
  if (bytes.byteLength !== count * size) {
    if (request !== undefined) {
      throw invalidInput(`${logRequest(request.requestId)}input byte size mismatch for input '${name}' for model '${request.model}'. Expected ${count * size}, got ${bytes.byteLength}`);
    }
    throw invalidInput(`input '${name}': ${source} has ${bytes.byteLength} bytes but shape ${fmtShape(shape)} of ${datatype} needs ${count * size} (${count} elements x ${size} bytes)`);
  }
  let src = bytes;
  if (src.byteOffset % size !== 0) {
    src = new Uint8Array(bytes.byteLength);
    src.set(bytes);
  }
  return { name, datatype, shape, data: viewAs(datatype, src.buffer, src.byteOffset, src.byteLength) };
}

/**
 * Triton's element count check of serialized BYTES (core src/infer_request.cc
 * ValidateBytesInputs, one buffer), with its words.
 */
function checkBytesElements(name: string, bytes: Uint8Array, count: number, request: { model: string; requestId?: string }): void {
  const prefix = logRequest(request.requestId);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = 0;
  let checked = 0;
  while (pos < bytes.byteLength) {
    if (bytes.byteLength - pos < 4) {
      throw invalidInput(`${prefix}incomplete string length indicator for inference input '${name}' for model '${request.model}', expecting 4 bytes but only ${bytes.byteLength - pos} bytes available. Please make sure the string length indicator is in one buffer.`);
    }
    const len = dv.getUint32(pos, true);
    checked++;
    if (checked > count) {
      throw invalidInput(`${prefix}unexpected number of string elements ${checked} for inference input '${name}' for model '${request.model}', expecting ${count}`);
    }
    pos += 4 + len;
  }
  if (checked !== count) {
    throw invalidInput(`${prefix}expected ${count} string elements for inference input '${name}' for model '${request.model}', got ${checked}`);
  }
}

/** The serialized bytes of a tensor: numeric data viewed in place, BYTES length-prefixed. */
export function tensorBytes(t: TensorValue): Uint8Array {
  if (t.datatype === 'BYTES' || Array.isArray(t.data)) return encodeBytesElements(t.data as Uint8Array[]);
  const d = t.data as NumericTypedArray;
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}

/** The length of tensorBytes(t), without serializing it. */
export function tensorByteLength(t: Pick<TensorValue, 'datatype' | 'data'>): number {
  if (t.datatype === 'BYTES' || Array.isArray(t.data)) return bytesElementsSize(t.data as Uint8Array[]);
  return (t.data as NumericTypedArray).byteLength;
}
