/**
 * Unit tests of the request validation the gRPC front-end runs before a request reaches the core
 * (src/server/grpc/validate.ts), apart from any socket.
 */
import { describe, expect, it } from 'vitest';
import { tensorFromBytes, validateInferInputs, validateRequestedOutputs } from '../src/server/grpc/validate.js';
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
      .toContain('batch-size must be between 1 and 8');
    expect(errorOf(() => validateInferInputs(batching, [{ name: 'A', datatype: 'FP32', shape: [0, 2, 1] }])).code)
      .toBe('STUBHOST_INVALID_INPUT');
  });

  it('rejects negative or fractional request dimensions', () => {
    expect(errorOf(() => validateInferInputs(batching, [{ name: 'A', datatype: 'FP32', shape: [1, 2, -1] }])).message)
      .toContain('dimensions must be non-negative integers');
  });

  it('non-batching models take dims exactly', () => {
    const c: ModelIOContract = { ...batching, maxBatchSize: 0 };
    expect(validateInferInputs(c, [{ name: 'A', datatype: 'FP32', shape: [2, 5] }])).toBe(0);
    expect(errorOf(() => validateInferInputs(c, [{ name: 'A', datatype: 'FP32', shape: [1, 2, 5] }])).message)
      .toBe("unexpected shape for input 'A' for model 'm'. Expected [2,-1], got [1,2,5]");
  });

  it('requested outputs must exist once', () => {
    validateRequestedOutputs(batching, ['Y']);
    expect(errorOf(() => validateRequestedOutputs(batching, ['Z'])).message).toContain("unexpected inference output 'Z'");
    expect(errorOf(() => validateRequestedOutputs(batching, ['Y', 'Y'])).message).toContain('more than once');
  });
});

describe('tensorFromBytes', () => {
  it('views aligned bytes without copying', () => {
    const backing = new ArrayBuffer(16);
    new Float32Array(backing).set([1, 2, 3, 4]);
    const t = tensorFromBytes({ name: 'A', datatype: 'FP32', shape: [2, 2] }, new Uint8Array(backing), 'm');
    expect(t.data).toBeInstanceOf(Float32Array);
    expect((t.data as Float32Array).buffer).toBe(backing);
    expect(Array.from(t.data as Float32Array)).toEqual([1, 2, 3, 4]);
  });

  it('copies unaligned bytes so a typed array can view them', () => {
    const backing = new Uint8Array(17);
    new DataView(backing.buffer).setFloat64(1, 2.5, true);
    new DataView(backing.buffer).setFloat64(9, -1, true);
    const t = tensorFromBytes({ name: 'A', datatype: 'FP64', shape: [2] }, backing.subarray(1), 'm');
    expect(Array.from(t.data as Float64Array)).toEqual([2.5, -1]);
    expect((t.data as Float64Array).buffer).not.toBe(backing.buffer);
  });

  it('FP16 and BOOL keep their raw words', () => {
    const fp16 = tensorFromBytes({ name: 'H', datatype: 'FP16', shape: [2] }, Uint8Array.of(0, 0x3c, 0, 0xc0), 'm');
    expect(Array.from(fp16.data as Uint16Array)).toEqual([0x3c00, 0xc000]);
    const b = tensorFromBytes({ name: 'B', datatype: 'BOOL', shape: [3] }, Uint8Array.of(1, 0, 1), 'm');
    expect(Array.from(b.data as Uint8Array)).toEqual([1, 0, 1]);
  });

  it('checks the byte size against shape and dtype', () => {
    expect(errorOf(() => tensorFromBytes({ name: 'A', datatype: 'INT32', shape: [3] }, new Uint8Array(8), 'm')).message)
      .toContain('unexpected total byte size 8 for input \'A\' for model \'m\', expecting 12');
  });

  it('splits BYTES elements and checks their count and prefixes', () => {
    const bytes = Uint8Array.of(2, 0, 0, 0, 104, 105, 0, 0, 0, 0);
    const t = tensorFromBytes({ name: 'S', datatype: 'BYTES', shape: [2] }, bytes, 'm');
    expect((t.data as Uint8Array[]).map((b) => Buffer.from(b).toString())).toEqual(['hi', '']);
    expect(errorOf(() => tensorFromBytes({ name: 'S', datatype: 'BYTES', shape: [3] }, bytes, 'm')).message)
      .toContain('holds 2 elements where the shape needs 3');
    expect(errorOf(() => tensorFromBytes({ name: 'S', datatype: 'BYTES', shape: [1] }, Uint8Array.of(9, 0, 0, 0, 1), 'm')).message)
      .toContain('claims 9 bytes');
  });
});
