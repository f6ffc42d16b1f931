/**
 * The model API as plain objects (no stub): Tensor's dtype inference and checks, InferenceRequest
 * and InferenceResponse defaults, ModelError codes and how each reaches HTTP and gRPC clients,
 * errors from a second copy of the API module, and BLS exec()/stream() that never throw.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import * as api from '../stub/api/index.js';
import { InferenceRequest, InferenceResponse, ModelError, Tensor, logger, type DataType, type ModelErrorCode } from '../stub/api/index.js';
import { asModelError } from '../stub/api/errors.js';
import { setRuntime, type StubRuntime } from '../stub/api/runtime.js';
import { ERROR_CODES, MODEL_ERROR_CODES, StubhostError } from '../src/errors.js';

const CODES: ModelErrorCode[] = ['INVALID_ARG', 'INTERNAL', 'NOT_FOUND', 'UNAVAILABLE', 'UNSUPPORTED', 'CANCELLED', 'TIMEOUT'];

afterEach(() => setRuntime(undefined));

describe('exports', () => {
  it('every value the README\'s model API table names is exported from stubhost', () => {
    for (const name of ['Tensor', 'InferenceRequest', 'InferenceResponse', 'ModelError', 'logger', 'ResponseSender']) {
      expect(api, name).toHaveProperty(name);
    }
    expect(Object.keys(api.logger).sort()).toEqual(['error', 'info', 'verbose', 'warn']);
  });
});

describe('Tensor', () => {
  it.each<[string, ArrayLike<unknown>, DataType]>([
    ['Float32Array', new Float32Array(3), 'FP32'], ['Float64Array', new Float64Array(3), 'FP64'],
    ['Int8Array', new Int8Array(3), 'INT8'], ['Int16Array', new Int16Array(3), 'INT16'], ['Int32Array', new Int32Array(3), 'INT32'],
    ['BigInt64Array', new BigInt64Array(3), 'INT64'],
    ['Uint8Array', new Uint8Array(3), 'UINT8'], ['Uint16Array', new Uint16Array(3), 'UINT16'], ['Uint32Array', new Uint32Array(3), 'UINT32'],
    ['BigUint64Array', new BigUint64Array(3), 'UINT64'],
    ['Uint8Array[]', [new Uint8Array([104]), new Uint8Array(0), new Uint8Array([1, 2])], 'BYTES'],
    ['string[]', ['a', '', 'ü'], 'BYTES'],
  ])('%s → %s, shape [data.length]', (_, data, dtype) => {
    const t = new Tensor('T', data as never);
    expect([t.name, t.dtype, t.shape]).toEqual(['T', dtype, [3]]);
  });

  it('numeric data is kept as given (no copy)', () => {
    const data = Float32Array.of(1, 2, 3, 4);
    const t = new Tensor('T', data, [2, 2]);
    expect(t.data).toBe(data);
    expect(t.shape).toEqual([2, 2]);
  });

  it('FP16 and BF16 are Uint16Array with an explicit dtype; BOOL is Uint8Array with dtype BOOL', () => {
    expect(new Tensor('h', Uint16Array.of(0x3c00), [1], 'FP16').dtype).toBe('FP16');
    expect(new Tensor('b', Uint16Array.of(0x3f80), undefined, 'BF16')).toMatchObject({ dtype: 'BF16', shape: [1] });
    expect(new Tensor('o', Uint8Array.of(1, 0, 1), undefined, 'BOOL')).toMatchObject({ dtype: 'BOOL', shape: [3] });
    expect(() => new Tensor('h', Float32Array.of(1), [1], 'FP16')).toThrow(/FP16 data must be a Uint16Array/);
    expect(() => new Tensor('o', Int8Array.of(1), [1], 'BOOL')).toThrow(/BOOL data must be a Uint8Array/);
  });

  it('BYTES: string[] is stored as UTF-8 Uint8Array[], strings() decodes; explicit BYTES works too', () => {
    const t = new Tensor('s', ['héllo', '', '日本'], [3, 1]);
    expect(t.data).toHaveLength(3);
    expect((t.data as Uint8Array[]).every((b) => b instanceof Uint8Array)).toBe(true);
    expect(Array.from((t.data as Uint8Array[])[0]!)).toEqual([...Buffer.from('héllo')]);
    expect(t.strings()).toEqual(['héllo', '', '日本']);
    expect(new Tensor('r', [Uint8Array.of(0x61)], [1], 'BYTES').strings()).toEqual(['a']);
    expect(new Tensor('e', [] as string[])).toMatchObject({ dtype: 'BYTES', shape: [0] });
  });

  it('refuses what it cannot be: shape/data mismatch, wrong typed array for the dtype, unknown dtype, non-BYTES strings()', () => {
    expect(() => new Tensor('x', Float32Array.of(1, 2, 3), [2, 2])).toThrow(/needs 4 elements, data has 3/);
    expect(() => new Tensor('x', Float32Array.of(1), [1], 'INT32')).toThrow(/INT32 data must be a Int32Array/);
    expect(() => new Tensor('x', ['a'], [1], 'FP32')).toThrow(TypeError);
    expect(() => new Tensor('x', Float32Array.of(1), [1], 'FLOAT' as DataType)).toThrow(/unknown dtype 'FLOAT'/);
    expect(() => new Tensor('x', [1, 2] as never)).toThrow(/element 0 is number \(numeric data is a typed array/);
    expect(() => new Tensor('x', ['a', null] as never)).toThrow(/element 1 is null/);
    expect(() => new Tensor('', Float32Array.of(1))).toThrow(/name/);
    expect(() => new Tensor('x', Float32Array.of(1)).strings()).toThrow(/FP32, not BYTES/);
    expect(() => new Tensor('x', Float32Array.of(1), [-1])).toThrow(/non-negative/);
  });

  it('the shape is its own copy: changing the caller\'s array later does not change the tensor', () => {
    const shape = [2];
    const t = new Tensor('x', Int32Array.of(1, 2), shape);
    shape[0] = 5;
    expect(t.shape).toEqual([2]);
  });
});

describe('InferenceRequest (built by model code, for BLS)', () => {
  it('keeps every option; defaults: no requested outputs, no parameters, priority 0', () => {
    const inputs = [new Tensor('X', Float32Array.of(1))];
    const r = new InferenceRequest({
      modelName: 'm', modelVersion: 2, inputs, requestedOutputNames: ['Y'], parameters: { a: 'b', n: 1, f: true },
      correlationId: 9007199254740993n, sequenceStart: true, sequenceEnd: true, priority: 3, timeoutMs: 50, requestId: 'r1',
    });
    expect(r).toMatchObject({
      modelName: 'm', modelVersion: 2, requestedOutputNames: ['Y'], parameters: { a: 'b', n: 1, f: true }, correlationId: 9007199254740993n,
      sequenceStart: true, sequenceEnd: true, priority: 3, timeoutMs: 50, requestId: 'r1',
    });
    expect(r.inputs).toBe(inputs);
    expect(r.input('X')).toBe(inputs[0]);
    expect(r.input('nope')).toBeUndefined();
    const d = new InferenceRequest({ modelName: 'm', inputs: [], correlationId: 'seq' });
    expect(d).toMatchObject({ requestedOutputNames: [], parameters: {}, priority: 0, requestId: '', correlationId: 'seq', modelVersion: undefined, sequenceStart: false, sequenceEnd: false });
    expect(d.isCancelled()).toBe(false);
  });

  it('refuses sequence flags that are not booleans, and a request id that is not a string', () => {
    expect(() => new InferenceRequest({ modelName: 'm', inputs: [], sequenceStart: 1 as never })).toThrow(/sequenceStart must be true or false/);
    expect(() => new InferenceRequest({ modelName: 'm', inputs: [], sequenceEnd: 'yes' as never })).toThrow(/sequenceEnd must be true or false/);
    expect(() => new InferenceRequest({ modelName: 'm', inputs: [], requestId: 5 as never })).toThrow(/requestId must be a string/);
  });

  it('responseSender() belongs to requests execute received: a ModelError otherwise', () => {
    expect(() => new InferenceRequest({ modelName: 'm', inputs: [] }).responseSender()).toThrow(ModelError);
  });

  it('exec() and stream() outside a stub resolve with an UNAVAILABLE error response', async () => {
    const r = new InferenceRequest({ modelName: 'm', inputs: [] });
    const one = await r.exec();
    expect(one.error).toBeInstanceOf(ModelError);
    expect(one.error!.code).toBe('UNAVAILABLE');
    const all: InferenceResponse[] = [];
    for await (const x of r.stream()) all.push(x);
    expect(all.map((x) => x.error?.code)).toEqual(['UNAVAILABLE']);
  });

  it('exec() and stream() never throw: a runtime that fails (at once or mid-stream) gives an error response', async () => {
    const failing = (how: 'sync' | 'first' | 'later'): StubRuntime => ({
      log: () => {},
      sendResponse: () => {},
      bls: (): AsyncIterable<InferenceResponse> => {
        if (how === 'sync') throw new Error('queue closed');
        return (async function* () {
          if (how === 'later') yield new InferenceResponse({ outputs: [new Tensor('Y', Int32Array.of(1))] });
          throw new ModelError('lost the host', 'UNAVAILABLE');
        })();
      },
    });
    for (const how of ['sync', 'first'] as const) {
      setRuntime(failing(how));
      const r = await new InferenceRequest({ modelName: 'm', inputs: [] }).exec();
      expect(r.error, how).toBeInstanceOf(ModelError);
      expect(r.error!.code).toBe(how === 'sync' ? 'INTERNAL' : 'UNAVAILABLE');
    }
    setRuntime(failing('later'));
    const got: InferenceResponse[] = [];
    for await (const x of new InferenceRequest({ modelName: 'm', inputs: [] }).stream()) got.push(x);
    expect(got.map((x) => [x.outputs.length, x.error?.code])).toEqual([[1, undefined], [0, 'UNAVAILABLE']]);
  });

  it('breaking out of stream() early ends the runtime\'s iteration (so the stub can cancel the call)', async () => {
    let finished = false;
    setRuntime({
      log: () => {},
      sendResponse: () => {},
      bls: () => (async function* () {
        try {
          for (let i = 0; ; i++) yield new InferenceResponse({ parameters: { i } });
        } finally {
          finished = true;
        }
      })(),
    });
    for await (const x of new InferenceRequest({ modelName: 'm', inputs: [] }).stream()) if (x.parameters.i === 2) break;
    expect(finished).toBe(true);
  });
});

describe('InferenceResponse', () => {
  it('outputs, output(name), parameters; defaults to no outputs and no error', () => {
    const y = new Tensor('Y', Float32Array.of(1));
    const r = new InferenceResponse({ outputs: [y], parameters: { k: 'v' } });
    expect([r.outputs, r.output('Y'), r.output('Z'), r.error, r.parameters]).toEqual([[y], y, undefined, undefined, { k: 'v' }]);
    expect(new InferenceResponse()).toMatchObject({ outputs: [], parameters: {} });
  });

  it('error: a ModelError is kept; a string becomes a ModelError INTERNAL', () => {
    const e = new ModelError('bad', 'INVALID_ARG');
    expect(new InferenceResponse({ error: e }).error).toBe(e);
    const s = new InferenceResponse({ error: 'plain' }).error!;
    expect(s).toBeInstanceOf(ModelError);
    expect([s.message, s.code]).toEqual(['plain', 'INTERNAL']);
  });
});

describe('ModelError', () => {
  it('is an Error named ModelError, code INTERNAL unless given; every listed code is kept', () => {
    const d = new ModelError('m');
    expect(d).toBeInstanceOf(Error);
    expect([d.name, d.message, d.code]).toEqual(['ModelError', 'm', 'INTERNAL']);
    for (const c of CODES) expect(new ModelError('m', c).code).toBe(c);
    expect(new ModelError('m', 'NOPE' as ModelErrorCode).code).toBe('INTERNAL');
  });

  it('an error from a second copy of the API module (a CommonJS model) keeps its message and code', () => {
    class OtherModelError extends Error {
      constructor(message: string, readonly code: string) {
        super(message);
        this.name = 'ModelError';
      }
    }
    const foreign = new OtherModelError('from the other copy', 'NOT_FOUND');
    expect(foreign instanceof ModelError).toBe(false);
    const e = asModelError(foreign);
    expect([e.message, e.code]).toEqual(['from the other copy', 'NOT_FOUND']);
    expect(asModelError({ message: 'odd', code: 'WHATEVER' }).code).toBe('INTERNAL');
    expect(asModelError(new TypeError('t')).code).toBe('INTERNAL');
  });

  it.each<[ModelErrorCode, number, number]>([
    ['INVALID_ARG', 400, 3 /* INVALID_ARGUMENT */],
    ['INTERNAL', 500, 13 /* INTERNAL */],
    ['NOT_FOUND', 404, 5 /* NOT_FOUND */],
    ['UNAVAILABLE', 503, 14 /* UNAVAILABLE */],
    ['UNSUPPORTED', 501, 12 /* UNIMPLEMENTED */],
    ['CANCELLED', 499, 1 /* CANCELLED */],
    ['TIMEOUT', 504, 4 /* DEADLINE_EXCEEDED */],
  ])('%s reaches clients as HTTP %i, gRPC status %i', (code, httpStatus, grpcStatus) => {
    const catalogued = MODEL_ERROR_CODES[code]!;
    expect(catalogued in ERROR_CODES).toBe(true);
    const e = new StubhostError(catalogued, 'm');
    expect([e.httpStatus, e.grpcStatus]).toEqual([httpStatus, grpcStatus]);
  });

  it('MODEL_ERROR_CODES maps exactly the listed codes', () => {
    expect(Object.keys(MODEL_ERROR_CODES).sort()).toEqual([...CODES].sort());
  });
});

describe('logger outside a stub', () => {
  it('falls back to the console, formatting like console.log', () => {
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const error = vi.spyOn(console, 'error').mockImplementation(() => {});
    logger.info('n=%d', 3);
    logger.verbose('v');
    logger.warn('w');
    logger.error('e', 1);
    expect(log.mock.calls).toEqual([['n=3'], ['v']]);
    expect(warn.mock.calls).toEqual([['w']]);
    expect(error.mock.calls).toEqual([['e 1']]);
    vi.restoreAllMocks();
  });

  it('inside a stub, every level goes to the runtime (the host log)', () => {
    const seen: [string, string][] = [];
    setRuntime({ log: (level, msg) => seen.push([level, msg]), sendResponse: () => {}, bls: () => (async function* () {})() });
    logger.info('i %s', 'x');
    logger.warn('w');
    logger.error('e');
    logger.verbose('v');
    expect(seen).toEqual([['info', 'i x'], ['warn', 'w'], ['error', 'e'], ['verbose', 'v']]);
  });
});
