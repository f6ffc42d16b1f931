/**
 * ModelInferRequest/Response ⇄ InferRequest/InferResult conversion (src/server/grpc/codec.ts),
 * without a socket: zero-copy views, BYTES, parameters.
 */
import { describe, expect, it } from 'vitest';
import { decodeInferRequest, encodeInferResponse } from '../src/server/grpc/codec.js';
import type { ModelIOContract } from '../src/core/service.js';

const contract: ModelIOContract = {
  name: 'm', version: '2', maxBatchSize: 0, decoupled: false,
  inputs: [{ name: 'A', datatype: 'INT32', dims: [2] }, { name: 'S', datatype: 'BYTES', dims: [-1] }],
  outputs: [{ name: 'Y', datatype: 'INT32', dims: [2] }, { name: 'T', datatype: 'BYTES', dims: [1] }],
};

describe('decodeInferRequest', () => {
  it('numeric inputs view the message bytes when aligned', () => {
    const message = Buffer.alloc(64);
    const a = message.subarray(8, 16);
    a.writeInt32LE(7, 0);
    a.writeInt32LE(-3, 4);
    const s = Buffer.from([1, 0, 0, 0, 120]);
    const { request, enableEmptyFinalResponse } = decodeInferRequest({
      model_name: 'm', model_version: '2', id: 'r',
      inputs: [{ name: 'A', datatype: 'INT32', shape: ['2'] }, { name: 'S', datatype: 'BYTES', shape: ['1'] }],
      raw_input_contents: [a, s],
      parameters: { triton_enable_empty_final_response: { parameter_choice: 'bool_param', bool_param: true }, big: { parameter_choice: 'int64_param', int64_param: '9007199254740993' } },
    }, contract);
    const data = request.inputs[0]!.data as Int32Array;
    expect(Array.from(data)).toEqual([7, -3]);
    expect(data.buffer).toBe(message.buffer);
    expect((request.inputs[1]!.data as Uint8Array[]).map((b) => Array.from(b))).toEqual([[120]]);
    expect(request.modelVersion).toBe(2);
    expect(enableEmptyFinalResponse).toBe(true);
    // Too large for a number: kept exact as a string.
    expect(request.parameters).toEqual({ big: '9007199254740993' });
  });

  it('a numeric input at an offset its typed array cannot view is copied, values unchanged', () => {
    const message = Buffer.alloc(64);
    const a = message.subarray(9, 17);
    a.writeInt32LE(7, 0);
    a.writeInt32LE(-3, 4);
    const s = Buffer.from([1, 0, 0, 0, 120]);
    const { request } = decodeInferRequest({
      model_name: 'm', model_version: '', id: '',
      inputs: [{ name: 'A', datatype: 'INT32', shape: ['2'] }, { name: 'S', datatype: 'BYTES', shape: ['1'] }],
      raw_input_contents: [a, s],
    }, contract);
    const data = request.inputs[0]!.data as Int32Array;
    expect(Array.from(data)).toEqual([7, -3]);
    expect(data.byteOffset % 4).toBe(0);
    a.writeInt32LE(1, 0);
    expect(data[0]).toBe(7); // a copy, not a view
  });

  it('a misaligned input of the wrong size is refused with the size words', () => {
    const a = Buffer.alloc(16).subarray(1, 7);
    expect(() => decodeInferRequest({
      model_name: 'm', model_version: '', id: 'r1',
      inputs: [{ name: 'A', datatype: 'INT32', shape: ['2'] }, { name: 'S', datatype: 'BYTES', shape: ['1'] }],
      raw_input_contents: [a, Buffer.from([1, 0, 0, 0, 120])],
    }, contract)).toThrow("input byte size mismatch for input 'A' for model 'm'. Expected 8, got 6");
  });
});

describe('encodeInferResponse', () => {
  it('numeric outputs are sent from their own memory; BYTES are length-prefixed', () => {
    const y = Int32Array.of(1, 2);
    const res = encodeInferResponse({
      modelName: 'm', modelVersion: '2', id: 'r', parameters: { done: true, p: 0.5 },
      outputs: [
        { name: 'Y', datatype: 'INT32', shape: [2], data: y },
        { name: 'T', datatype: 'BYTES', shape: [1], data: [Buffer.from('ok')] },
      ],
    });
    expect(res.raw_output_contents[0]!.buffer).toBe(y.buffer);
    expect([...res.raw_output_contents[1]!]).toEqual([2, 0, 0, 0, 111, 107]);
    expect(res.parameters).toEqual({ done: { bool_param: true }, p: { double_param: 0.5 } });
    expect(res.outputs[0]).toEqual({ name: 'Y', datatype: 'INT32', shape: [2], parameters: {} });
  });
});
