/**
 * Unit tests of the request validation (src/core/validate.ts) both front-ends (and BLS) run
 * before a request reaches the server core, apart from any socket. The file keeps its grpc- name from
 * when the validator lived in src/server/grpc/.
 */
import { describe, expect, it } from 'vitest';
import { validateInferInputs, validateRequestedOutputs } from '../src/core/validate.js';
import { tensorFromBytes } from '../src/core/tensor-bytes.js';
import type { ModelIOContract } from '../src/core/service.js';
import { StubhostError } from '../src/errors.js';

const batching: ModelIOContract = {
  name: 'm', version: '1', maxBatchSize: 8, decoupled: false,
  inputs: [
    { name: 'A', datatype: 'FP32', dims: [2, -1] },
    { name: 'OPT', datatype: 'BYTES', dims: [1], optional: true },
  ],
  outputs: [{ name: 'Y', datatype: 'FP32', dims: [2] }],
};

function errorOf(fn: () => unknown): StubhostError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(StubhostError);
    return err as StubhostError;
  }
  throw new Error('expected an error');
}

describe('validateInferInputs', () => {
  it('accepts wildcard dims, a batch dimension, and leaves optional inputs out', () => {
    expect(validateInferInputs(batching, [{ name: 'A', datatype: 'FP32', shape: [3, 2, 7] }])).toBe(3);
  });

  it('rejects a batch above max_batch_size and a zero batch', () => {
    expect(errorOf(() => validateInferInputs(batching, [{ name: 'A', datatype: 'FP32', shape: [9, 2, 1] }])).message)
      .toBe("[request id: <id_unknown>] inference request batch-size must be <= 8 for 'm'");
    expect(errorOf(() => validateInferInputs(batching, [{ name: 'A', datatype: 'FP32', shape: [0, 2, 1] }])).code)
      .toBe('STUBHOST_INVALID_INPUT');
  });

  it('rejects negative or fractional request dimensions', () => {
    expect(errorOf(() => validateInferInputs(batching, [{ name: 'A', datatype: 'FP32', shape: [1, 2, -1] }])).message)
      .toContain("input 'A': 'shape' must be an array of non-negative integers");
  });

  it('non-batching models take dims exactly', () => {
    const c: ModelIOContract = { ...batching, maxBatchSize: 0 };
    expect(validateInferInputs(c, [{ name: 'A', datatype: 'FP32', shape: [2, 5] }])).toBe(0);
    expect(errorOf(() => validateInferInputs(c, [{ name: 'A', datatype: 'FP32', shape: [1, 2, 5] }])).message)
      .toBe("[request id: <id_unknown>] unexpected shape for input 'A' for model 'm'. Expected [2,-1], got [1,2,5]. ");
  });

  it('requested outputs must exist once', () => {
    validateRequestedOutputs(batching, ['Y']);
    expect(errorOf(() => validateRequestedOutputs(batching, ['Z'])).message).toBe("unexpected inference output 'Z' for model 'm'");
    expect(errorOf(() => validateRequestedOutputs(batching, ['Y', 'Y'], 'r7')).message).toBe("[request id: r7] output 'Y' already exists in request");
  });
});

describe('tensorFromBytes', () => {
  it('views aligned bytes without copying', () => {
    const backing = new ArrayBuffer(16);
    new Float32Array(backing).set([1, 2, 3, 4]);
    const t = tensorFromBytes({ name: 'A', datatype: 'FP32', shape: [2, 2] }, new Uint8Array(backing));
    expect(t.data).toBeInstanceOf(Float32Array);
    expect((t.data as Float32Array).buffer).toBe(backing);
    expect(Array.from(t.data as Float32Array)).toEqual([1, 2, 3, 4]);
  });

  it('copies unaligned bytes so a typed array can view them', () => {
    const backing = new Uint8Array(17);
    new DataView(backing.buffer).setFloat64(1, 2.5, true);
    new DataView(backing.buffer).setFloat64(9, -1, true);
    const t = tensorFromBytes({ name: 'A', datatype: 'FP64', shape: [2] }, backing.subarray(1));
    expect(Array.from(t.data as Float64Array)).toEqual([2.5, -1]);
    expect((t.data as Float64Array).buffer).not.toBe(backing.buffer);
  });

  it('FP16 and BOOL keep their raw words', () => {
    const fp16 = tensorFromBytes({ name: 'H', datatype: 'FP16', shape: [2] }, Uint8Array.of(0, 0x3c, 0, 0xc0));
    expect(Array.from(fp16.data as Uint16Array)).toEqual([0x3c00, 0xc000]);
    const b = tensorFromBytes({ name: 'B', datatype: 'BOOL', shape: [3] }, Uint8Array.of(1, 0, 1));
    expect(Array.from(b.data as Uint8Array)).toEqual([1, 0, 1]);
  });

  it('checks the byte size against shape and dtype', () => {
    expect(errorOf(() => tensorFromBytes({ name: 'A', datatype: 'INT32', shape: [3] }, new Uint8Array(8))).message)
      .toBe("input 'A': binary data has 8 bytes but shape [3] of INT32 needs 12 (3 elements x 4 bytes)");
  });

  it('splits BYTES elements and checks their count and prefixes', () => {
    const bytes = Uint8Array.of(2, 0, 0, 0, 104, 105, 0, 0, 0, 0);
    const t = tensorFromBytes({ name: 'S', datatype: 'BYTES', shape: [2] }, bytes);
    expect((t.data as Uint8Array[]).map((b) => Buffer.from(b).toString())).toEqual(['hi', '']);
    expect(errorOf(() => tensorFromBytes({ name: 'S', datatype: 'BYTES', shape: [3] }, bytes)).message)
      .toContain('holds 2 elements where the shape needs 3');
    expect(errorOf(() => tensorFromBytes({ name: 'S', datatype: 'BYTES', shape: [1] }, Uint8Array.of(9, 0, 0, 0, 1))).message)
      .toContain('claims 9 bytes');
  });
});
