/**
 * concatInputs / splitOutput (stub/api/batching.ts): the helpers a model uses to batch across
 * requests, for every dtype, without copies on the split side.
 */
import { describe, expect, it } from 'vitest';
import { concatInputs, splitOutput, Tensor, ModelError } from '../stub/api/index.js';

const req = (...inputs: Tensor[]) => ({ input: (n: string) => inputs.find((t) => t.name === n) });

describe('concatInputs', () => {
  it('concatenates FP32 along the first dim in request order and splits back as views', () => {
    const a = new Tensor('X', new Float32Array([1, 2, 3]), [1, 3]);
    const b = new Tensor('X', new Float32Array([4, 5, 6, 7, 8, 9]), [2, 3]);
    const c = new Tensor('X', new Float32Array([10, 11, 12]), [1, 3]);
    const { tensor, batchSizes } = concatInputs([req(a), req(b), req(c)], 'X');
    expect(batchSizes).toEqual([1, 2, 1]);
    expect(tensor.shape).toEqual([4, 3]);
    expect(tensor.dtype).toBe('FP32');
    expect(Array.from(tensor.data as Float32Array)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    const parts = splitOutput(tensor, batchSizes);
    expect(parts.map((p) => p.shape)).toEqual([[1, 3], [2, 3], [1, 3]]);
    expect(Array.from(parts[1]!.data as Float32Array)).toEqual([4, 5, 6, 7, 8, 9]);
    for (const p of parts) expect((p.data as Float32Array).buffer).toBe((tensor.data as Float32Array).buffer);
  });

  it('copies inputs that view a SharedArrayBuffer into an ordinary buffer', () => {
    const shared = new Int32Array(new SharedArrayBuffer(32), 8, 4);
    shared.set([1, 2, 3, 4]);
    const { tensor } = concatInputs([req(new Tensor('X', shared.subarray(0, 2), [1, 2])), req(new Tensor('X', shared.subarray(2), [1, 2]))], 'X');
    expect((tensor.data as Int32Array).buffer).toBeInstanceOf(ArrayBuffer);
    expect(Array.from(tensor.data as Int32Array)).toEqual([1, 2, 3, 4]);
  });

  it.each([
    ['INT64', () => new BigInt64Array([1n, -2n]), () => new BigInt64Array([3n, 4n])],
    ['UINT64', () => new BigUint64Array([1n, 2n]), () => new BigUint64Array([3n, 4n])],
    ['FP64', () => new Float64Array([0.5, 1.5]), () => new Float64Array([2.5, 3.5])],
    ['INT8', () => new Int8Array([-1, 2]), () => new Int8Array([3, -4])],
    ['UINT16', () => new Uint16Array([1, 2]), () => new Uint16Array([3, 4])],
    ['FP16', () => new Uint16Array([0x3c00, 0x4000]), () => new Uint16Array([0x4200, 0x4400])],
    ['BOOL', () => new Uint8Array([1, 0]), () => new Uint8Array([0, 1])],
  ] as const)('%s round-trips', (dtype, mkA, mkB) => {
    const a = new Tensor('X', mkA() as never, [1, 2], dtype);
    const b = new Tensor('X', mkB() as never, [1, 2], dtype);
    const { tensor, batchSizes } = concatInputs([req(a), req(b)], 'X');
    expect(tensor.dtype).toBe(dtype);
    expect(tensor.shape).toEqual([2, 2]);
    const [pa, pb] = splitOutput(tensor, batchSizes);
    expect(Array.from(pa!.data as ArrayLike<unknown>)).toEqual(Array.from(a.data as ArrayLike<unknown>));
    expect(Array.from(pb!.data as ArrayLike<unknown>)).toEqual(Array.from(b.data as ArrayLike<unknown>));
    expect(pb!.dtype).toBe(dtype);
  });

  it('BYTES: concatenates element views and splits them back without copying', () => {
    const a = new Tensor('S', ['a', 'bb'], [1, 2]);
    const b = new Tensor('S', ['ccc', '', 'e', 'ff'], [2, 2]);
    const { tensor, batchSizes } = concatInputs([req(a), req(b)], 'S');
    expect(tensor.shape).toEqual([3, 2]);
    expect(tensor.strings()).toEqual(['a', 'bb', 'ccc', '', 'e', 'ff']);
    expect((tensor.data as Uint8Array[])[2]).toBe((b.data as Uint8Array[])[0]);
    const [pa, pb] = splitOutput(tensor, batchSizes);
    expect(pa!.strings()).toEqual(['a', 'bb']);
    expect(pb!.strings()).toEqual(['ccc', '', 'e', 'ff']);
    expect(pb!.shape).toEqual([2, 2]);
  });

  it('names the input, both shapes and the request when non-batch dims disagree', () => {
    const a = new Tensor('X', new Float32Array(6), [1, 6]);
    const b = new Tensor('X', new Float32Array(6), [2, 3]);
    expect(() => concatInputs([req(a), req(b)], 'X')).toThrow(/input 'X' has shape \[1, 6\] in request 0 but \[2, 3\] in request 1/);
    const c = new Tensor('X', new Float32Array(3), [1, 3]);
    expect(() => concatInputs([req(b), req(c), req(new Tensor('X', new Float32Array(4), [1, 4]))], 'X')).toThrow(ModelError);
  });

  it('reports a missing input, a dtype mismatch and a scalar', () => {
    const a = new Tensor('X', new Float32Array(2), [1, 2]);
    expect(() => concatInputs([req(a), req()], 'X')).toThrow(/request 1 has no input 'X'/);
    expect(() => concatInputs([req(a), req(new Tensor('X', new Int32Array(2), [1, 2]))], 'X')).toThrow(/FP32 .* but INT32/);
    expect(() => concatInputs([req(new Tensor('X', new Float32Array(1), []))], 'X')).toThrow(/scalar/);
    expect(() => concatInputs([], 'X')).toThrow(/no requests/);
  });
});

describe('splitOutput', () => {
  it('rejects batch sizes that do not add up to the first dim', () => {
    const t = new Tensor('Y', new Float32Array(8), [4, 2]);
    expect(() => splitOutput(t, [1, 2])).toThrow(/first dimension 4 .* add up to 3/);
  });

  it('handles zero-sized parts and higher ranks', () => {
    const t = new Tensor('Y', Float32Array.from({ length: 12 }, (_, i) => i), [3, 2, 2]);
    const parts = splitOutput(t, [0, 2, 1]);
    expect(parts.map((p) => p.shape)).toEqual([[0, 2, 2], [2, 2, 2], [1, 2, 2]]);
    expect(Array.from(parts[2]!.data as Float32Array)).toEqual([8, 9, 10, 11]);
  });
});
