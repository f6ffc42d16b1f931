/** Infer over HTTP: JSON and binary tensors, every dtype, outputs, and every validation error. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HttpServer } from '../src/server/http/server.js';
import { encodeBytesElements } from '../src/core/dtypes.js';
import { TestService } from './fixtures/http/service.js';
import { binaryBody, bytesOf, json, parseInferReply, request } from './fixtures/http/client.js';

let service: TestService;
let server: HttpServer;
let port: number;

beforeAll(async () => {
  service = new TestService();
  server = new HttpServer(service, { port: 0, host: '127.0.0.1' });
  port = await server.start();
});

afterAll(async () => {
  await server.close();
});

const A = [1, 2, 3, 4, 5, 6, 7, 8];
const B = [0.5, 0.25, 1, 1, 2, 2, 3, 3];

function postInfer(model: string, body: string | Uint8Array, headerLength?: number) {
  const headers = headerLength === undefined ? {} : { 'Inference-Header-Content-Length': headerLength };
  return request(port, 'POST', `/v2/models/${model}/infer`, body, headers);
}

describe('add_sub: JSON and binary give the same result', () => {
  it('JSON in, JSON out (nested data, request fields passed on)', async () => {
    const r = await postInfer('add_sub', JSON.stringify({
      id: 'req-1',
      parameters: { priority: 2, timeout: 5000, sequence_id: 42, sequence_start: true, sequence_end: false, custom: 'x' },
      inputs: [
        { name: 'INPUT0', datatype: 'FP32', shape: [2, 4], data: [A.slice(0, 4), A.slice(4)] },
        { name: 'INPUT1', datatype: 'FP32', shape: [2, 4], data: B },
      ],
    }));
    expect(r.status).toBe(200);
    expect(r.headers['inference-header-content-length']).toBeUndefined();
    expect(json(r)).toEqual({
      model_name: 'add_sub', model_version: '1', id: 'req-1',
      outputs: [
        { name: 'OUTPUT0', datatype: 'FP32', shape: [2, 4], data: A.map((a, i) => a + B[i]!) },
        { name: 'OUTPUT1', datatype: 'FP32', shape: [2, 4], data: A.map((a, i) => a - B[i]!) },
      ],
    });
    const req = service.requests.at(-1)!;
    expect(req).toMatchObject({
      id: 'req-1', modelName: 'add_sub', priority: 2, timeoutUs: 5000, correlationId: 42n,
      sequenceStart: true, sequenceEnd: false, parameters: { custom: 'x' },
    });
    expect(req.modelVersion).toBeUndefined();
  });

  it('binary in, binary out, identical numbers; views are aligned', async () => {
    const a = new Float32Array(A);
    const b = new Float32Array(B);
    const { body, headerLength } = binaryBody({
      inputs: [
        { name: 'INPUT0', datatype: 'FP32', shape: [2, 4], parameters: { binary_data_size: a.byteLength } },
        { name: 'INPUT1', datatype: 'FP32', shape: [2, 4], parameters: { binary_data_size: b.byteLength } },
      ],
      outputs: [{ name: 'OUTPUT0', parameters: { binary_data: true } }, { name: 'OUTPUT1', parameters: { binary_data: false } }],
    }, [bytesOf(a), bytesOf(b)]);
    const r = await request(port, 'POST', '/v2/models/add_sub/versions/1/infer', body, { 'Inference-Header-Content-Length': headerLength });
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('application/octet-stream');
    const { doc, binary } = parseInferReply(r);
    expect(doc.outputs[0]).toEqual({ name: 'OUTPUT0', datatype: 'FP32', shape: [2, 4], parameters: { binary_data_size: 32 } });
    const sum = new Float32Array(new Uint8Array(binary.get('OUTPUT0')!).buffer);
    expect(Array.from(sum)).toEqual(A.map((x, i) => x + B[i]!));
    expect(doc.outputs[1].data).toEqual(A.map((x, i) => x - B[i]!));
    const req = service.requests.at(-1)!;
    expect(req.modelVersion).toBe(1);
    const view = req.inputs[0]!.data as Float32Array;
    expect(view).toBeInstanceOf(Float32Array);
    expect(view.buffer.byteLength).toBeGreaterThanOrEqual(body.length); // a view into the body, not a copy
  });

  it('binary_data_output makes every output binary; an output may opt out', async () => {
    const doc = (outputs?: unknown) => JSON.stringify({
      parameters: { binary_data_output: true },
      inputs: [
        { name: 'INPUT0', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] },
        { name: 'INPUT1', datatype: 'FP32', shape: [1, 4], data: [1, 1, 1, 1] },
      ],
      ...(outputs === undefined ? {} : { outputs }),
    });
    const all = parseInferReply(await postInfer('add_sub', doc()));
    expect([...all.binary.keys()]).toEqual(['OUTPUT0', 'OUTPUT1']);
    const some = parseInferReply(await postInfer('add_sub', doc([{ name: 'OUTPUT1', parameters: { binary_data: false } }])));
    expect(some.binary.size).toBe(0);
    expect(some.doc.outputs).toEqual([{ name: 'OUTPUT1', datatype: 'FP32', shape: [1, 4], data: [0, 1, 2, 3] }]);
    expect(service.requests.at(-1)!.outputs).toEqual([{ name: 'OUTPUT1', binary: false }]);
  });

  it('a mix of JSON and binary inputs, misaligned binary data is copied', async () => {
    const b = new Float32Array([1, 1, 1, 1]);
    const head = { inputs: [
      { name: 'INPUT0', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] },
      { name: 'INPUT1', datatype: 'FP32', shape: [1, 4], parameters: { binary_data_size: 16 } },
    ] };
    // Any header length works: the server aligns the binary section, the codec copies when it cannot view.
    for (const pad of [0, 1, 2, 3]) {
      const text = JSON.stringify(head) + ' '.repeat(pad);
      const body = Buffer.concat([Buffer.from(text), Buffer.from(bytesOf(b))]);
      const r = await postInfer('add_sub', body, text.length);
      expect(r.status).toBe(200);
      expect(json(r).outputs[0].data).toEqual([2, 3, 4, 5]);
    }
  });
});

describe('data types', () => {
  it('every numeric type round-trips through JSON', async () => {
    const inputs = [
      { name: 'IN_BOOL', datatype: 'BOOL', shape: [3], data: [true, false, true] },
      { name: 'IN_UINT8', datatype: 'UINT8', shape: [2], data: [0, 255] },
      { name: 'IN_UINT16', datatype: 'UINT16', shape: [1], data: [65535] },
      { name: 'IN_UINT32', datatype: 'UINT32', shape: [1], data: [4294967295] },
      { name: 'IN_UINT64', datatype: 'UINT64', shape: [2], data: [0, 9007199254740991] },
      { name: 'IN_INT8', datatype: 'INT8', shape: [2], data: [-128, 127] },
      { name: 'IN_INT16', datatype: 'INT16', shape: [1], data: [-32768] },
      { name: 'IN_INT32', datatype: 'INT32', shape: [2], data: [[-5], [7]] },
      { name: 'IN_INT64', datatype: 'INT64', shape: [2], data: [-9007199254740991, '-9223372036854775808'] },
      { name: 'IN_FP32', datatype: 'FP32', shape: [1], data: [0.5] },
      { name: 'IN_FP64', datatype: 'FP64', shape: [1], data: [0.1] },
    ];
    const r = await postInfer('echo', JSON.stringify({ inputs }));
    expect(r.status).toBe(200);
    const byName = new Map(json(r).outputs.map((o: { name: string }) => [o.name, o]));
    for (const input of inputs) {
      const out = byName.get(`OUT_${input.datatype}`) as { data: unknown[]; shape: number[] };
      const expected = input.name === 'IN_INT64' ? [-9007199254740991, -9223372036854775808] : input.data.flat();
      expect(out.data, input.datatype).toEqual(expected);
      expect(out.shape).toEqual(input.shape);
    }
    const req = service.requests.at(-1)!;
    const int64 = req.inputs.find((t) => t.name === 'IN_INT64')!.data;
    expect(int64).toBeInstanceOf(BigInt64Array);
    expect((int64 as BigInt64Array)[1]).toBe(-(2n ** 63n));
    expect(req.inputs.find((t) => t.name === 'IN_UINT64')!.data).toBeInstanceOf(BigUint64Array);
    expect(req.inputs.find((t) => t.name === 'IN_BOOL')!.data).toEqual(new Uint8Array([1, 0, 1]));
    // The response text carries 64-bit integers exactly.
    expect(r.body.toString()).toContain('"data":[-9007199254740991,-9223372036854775808]');
  });

  it('binary INT64 and BOOL equal their JSON form', async () => {
    const i64 = new BigInt64Array([-1n, 2n ** 62n]);
    const bool = new Uint8Array([1, 0]);
    const { body, headerLength } = binaryBody({ inputs: [
      { name: 'IN_BOOL', datatype: 'BOOL', shape: [2], parameters: { binary_data_size: 2 } },
      { name: 'IN_INT64', datatype: 'INT64', shape: [2], parameters: { binary_data_size: 16 } },
    ] }, [bool, bytesOf(i64)]);
    const r = await postInfer('echo', body, headerLength);
    expect(json(r).outputs).toEqual([
      { name: 'OUT_BOOL', datatype: 'BOOL', shape: [2], data: [true, false] },
      { name: 'OUT_INT64', datatype: 'INT64', shape: [2], data: [-1, 4611686018427387904] },
    ]);
  });

  it('BYTES round trip: JSON strings, binary with length prefixes, non-UTF-8 sent as binary', async () => {
    const words = ['hello', '', 'héllo wörld'];
    const jr = await postInfer('echo', JSON.stringify({ inputs: [{ name: 'IN_BYTES', datatype: 'BYTES', shape: [3], data: words }] }));
    expect(json(jr).outputs[0]).toEqual({ name: 'OUT_BYTES', datatype: 'BYTES', shape: [3], data: words });

    const items = [...words.map((w) => new TextEncoder().encode(w)), new Uint8Array([0xff, 0xfe, 0x00])];
    const packed = encodeBytesElements(items);
    const { body, headerLength } = binaryBody({ inputs: [
      { name: 'IN_BYTES', datatype: 'BYTES', shape: [4], parameters: { binary_data_size: packed.byteLength } },
    ] }, [packed]);
    const br = await postInfer('echo', body, headerLength);
    expect(br.status).toBe(200);
    const { doc, binary } = parseInferReply(br);
    // JSON was asked for, but 0xff 0xfe is not UTF-8: Triton-style fallback to binary.
    expect(doc.outputs[0].parameters.binary_data_size).toBe(packed.byteLength);
    expect(Buffer.compare(binary.get('OUT_BYTES')!, Buffer.from(packed))).toBe(0);
  });
  // Classification is the server core's (both protocols): test/compat-classification.test.ts.
});

describe('validation: bad requests never reach the model', () => {
  const ok0 = { name: 'INPUT0', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] };
  const ok1 = { name: 'INPUT1', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] };
  const cases: [string, unknown, RegExp][] = [
    // Triton's words (core src/infer_request.cc, src/model.cc).
    ['unknown input', { inputs: [ok0, { ...ok1, name: 'INPUT9' }] }, /^unexpected inference input 'INPUT9' for model 'add_sub'$/],
    ['input too many', { inputs: [ok0, ok1, { ...ok1, name: 'INPUT9' }] }, /^\[request id: <id_unknown>\] expected 2 inputs but got 3 inputs for model 'add_sub'\. Got input\(s\) \['INPUT0','INPUT1','INPUT9'\], but missing required input\(s\) \]\. Please provide all required input\(s\)\.$/],
    ['missing input', { inputs: [ok0] }, /^\[request id: <id_unknown>\] expected 2 inputs but got 1 inputs for model 'add_sub'\. Got input\(s\) \['INPUT0'\], but missing required input\(s\) \['INPUT1'\]\. Please provide all required input\(s\)\.$/],
    ['duplicate input', { inputs: [ok0, ok1, ok0] }, /^\[request id: <id_unknown>\] input 'INPUT0' already exists in request$/],
    ['dtype mismatch', { inputs: [{ ...ok0, datatype: 'INT32' }, ok1] }, /^\[request id: <id_unknown>\] inference input 'INPUT0' data-type is 'INT32', but model 'add_sub' expects 'FP32'$/],
    ['unknown dtype', { inputs: [{ ...ok0, datatype: 'FLOAT' }, ok1] }, /invalid datatype for input INPUT0/],
    ['rank mismatch', { inputs: [{ ...ok0, shape: [1] }, ok1] }, /^\[request id: <id_unknown>\] unexpected shape for input 'INPUT0' for model 'add_sub'\. Expected \[-1,4\], got \[1\]\. NOTE: Setting a non-zero max_batch_size/],
    ['dim mismatch', { inputs: [{ ...ok0, shape: [1, 2] }, ok1] }, /unexpected shape for input 'INPUT0' for model 'add_sub'\. Expected \[-1,4\], got \[1,2\]\./],
    ['batch too large', { inputs: [{ ...ok0, shape: [9, 4], data: new Array(36).fill(0) }, { ...ok1, shape: [9, 4], data: new Array(36).fill(0) }] }, /^\[request id: <id_unknown>\] inference request batch-size must be <= 8 for 'add_sub'$/],
    ['batch zero', { inputs: [{ ...ok0, shape: [0, 4], data: [] }, { ...ok1, shape: [0, 4], data: [] }] }, /batch-size must be >= 1/],
    ['batch sizes differ', { inputs: [{ ...ok0, shape: [2, 4], data: new Array(8).fill(0) }, ok1] }, /^\[request id: <id_unknown>\] input 'INPUT1' batch size does not match other inputs for 'add_sub'$/],
    ['bad shape', { inputs: [{ ...ok0, shape: [1, -4] }, ok1] }, /input 'INPUT0': 'shape' must be an array of non-negative integers/],
    ['too few elements', { inputs: [{ ...ok0, data: [1, 2, 3] }, ok1] }, /input 'INPUT0': 'data' has 3 elements but shape \[1,4\] needs 4/],
    ['wrong element type', { inputs: [{ ...ok0, data: [1, 'x', 3, 4] }, ok1] }, /input 'INPUT0': element 1 of 'data' is "x"; FP32 data must be numbers/],
    ['missing data', { inputs: [{ ...ok0, data: undefined }, ok1] }, /input 'INPUT0': 'data' must be an array/],
    ['unknown output', { inputs: [ok0, ok1], outputs: [{ name: 'OUTPUT7' }] }, /^unexpected inference output 'OUTPUT7' for model 'add_sub'$/],
    ['duplicate output', { inputs: [ok0, ok1], outputs: [{ name: 'OUTPUT0' }, { name: 'OUTPUT0' }] }, /^\[request id: <id_unknown>\] output 'OUTPUT0' already exists in request$/],
    ['bad priority', { parameters: { priority: -1 }, inputs: [ok0, ok1] }, /parameter 'priority' must be a non-negative integer/],
    ['bad timeout', { parameters: { timeout: 'soon' }, inputs: [ok0, ok1] }, /parameter 'timeout' must be a non-negative integer \(microseconds\)/],
    ['bad sequence flag', { parameters: { sequence_start: 1 }, inputs: [ok0, ok1] }, /parameter 'sequence_start' must be true or false/],
    ['object parameter', { parameters: { x: { y: 1 } }, inputs: [ok0, ok1] }, /parameter 'x' must be a string, number or boolean/],
    ['numeric id', { id: 7, inputs: [ok0, ok1] }, /'id' must be a string/],
    ['not an object', [1, 2], /must be a JSON object/],
    ['inputs not an array', { inputs: {} }, /'inputs' must be an array/],
    ['binary size without header', { inputs: [{ ...ok0, data: undefined, parameters: { binary_data_size: 16 } }, ok1] }, /must specify valid 'Infer-Header-Content-Length' in request header and 'binary_data_size'/],
  ];
  it.each(cases)('%s', async (_label, doc, message) => {
    const before = service.requests.length;
    const r = await postInfer('add_sub', JSON.stringify(doc));
    expect(r.status).toBe(400);
    expect(json(r).error).toMatch(message);
    expect(service.requests.length).toBe(before);
  });

  const intCases: [string, string, unknown, RegExp][] = [
    ['UINT8 overflow', 'UINT8', 300, /element 0 of 'data' is 300; UINT8 data must be integers in 0\.\.255/],
    ['INT32 fraction', 'INT32', 1.5, /INT32 data must be integers/],
    ['INT64 out of range', 'INT64', '9223372036854775808', /INT64 data must be integers in the INT64 range/],
    ['UINT64 negative', 'UINT64', -1, /UINT64 data must be integers in the UINT64 range/],
    ['BOOL as number', 'BOOL', 1, /BOOL data must be true or false/],
    ['BYTES as number', 'BYTES', 1, /BYTES data must be strings/],
    ['FP16 in JSON (as Triton: binary only)', 'FP16', 1, /^receiving FP16 data via JSON is not supported\. Please use the binary data format for input IN_FP16$/],
    ['BF16 in JSON (as Triton: binary only)', 'BF16', 1, /receiving BF16 data via JSON is not supported/],
  ];
  it.each(intCases)('%s', async (_label, dtype, value, message) => {
    const r = await postInfer('echo', JSON.stringify({ inputs: [{ name: `IN_${dtype}`, datatype: dtype, shape: [1], data: [value] }] }));
    expect(r.status).toBe(400);
    expect(json(r).error).toMatch(message);
  });

  it('binary byte size vs shape, past the end, trailing bytes, both data and binary', async () => {
    const send = async (doc: unknown, buffers: Uint8Array[]) => {
      const { body, headerLength } = binaryBody(doc, buffers);
      const r = await postInfer('echo', body, headerLength);
      expect(r.status).toBe(400);
      return json(r).error as string;
    };
    const in32 = (size: number, extra = {}) => ({ name: 'IN_FP32', datatype: 'FP32', shape: [2], parameters: { binary_data_size: size }, ...extra });
    expect(await send({ inputs: [in32(4)] }, [new Uint8Array(4)]))
      .toBe(`[request id: <id_unknown>] input byte size mismatch for input 'IN_FP32' for model 'echo'. Expected 8, got 4`);
    expect(await send({ inputs: [in32(8)] }, [new Uint8Array(6)])).toBe(`unexpected size for input 'IN_FP32', expecting 2 additional bytes for model 'echo'`);
    expect(await send({ inputs: [in32(8)] }, [new Uint8Array(12)])).toBe(`unexpected additional input data for model 'echo'`);
    expect(await send({ inputs: [in32(8, { data: [1, 2] })] }, [new Uint8Array(8)])).toMatch(/has both 'data' and 'binary_data_size'/);
  });

  it('BYTES binary with a bad length prefix or count', async () => {
    const send = async (shape: number[], bytes: Uint8Array) => {
      const { body, headerLength } = binaryBody({ inputs: [
        { name: 'IN_BYTES', datatype: 'BYTES', shape, parameters: { binary_data_size: bytes.byteLength } },
      ] }, [bytes]);
      const r = await postInfer('echo', body, headerLength);
      expect(r.status).toBe(400);
      return json(r).error as string;
    };
    const bad = new Uint8Array([10, 0, 0, 0, 0x61, 0x62]); // claims 10 bytes, has 2
    expect(await send([1], bad)).toMatch(/input 'IN_BYTES': bad BYTES binary data: element 0 claims 10 bytes .*4-byte little-endian length/);
    // Triton's words for these (core src/infer_request.cc ValidateBytesInputs)
    expect(await send([1], new Uint8Array([1, 0]))).toBe("[request id: <id_unknown>] incomplete string length indicator for inference input 'IN_BYTES' for model 'echo', expecting 4 bytes but only 2 bytes available. Please make sure the string length indicator is in one buffer.");
    expect(await send([3], encodeBytesElements([new Uint8Array([1])]))).toBe("[request id: <id_unknown>] expected 3 string elements for inference input 'IN_BYTES' for model 'echo', got 1");
    expect(await send([1], encodeBytesElements([new Uint8Array([1]), new Uint8Array([2])]))).toBe("[request id: <id_unknown>] unexpected number of string elements 2 for inference input 'IN_BYTES' for model 'echo', expecting 1");
  });

  it('bad Inference-Header-Content-Length', async () => {
    const doc = JSON.stringify({ inputs: [] });
    let r = await postInfer('echo', doc, 1000);
    expect([r.status, json(r).error]).toEqual([400, `Inference-Header-Content-Length is 1000 but the body has only ${doc.length} bytes`]);
    r = await request(port, 'POST', '/v2/models/echo/infer', doc, { 'Inference-Header-Content-Length': 'abc' });
    expect(json(r).error).toMatch(/must be a non-negative integer byte count/);
  });

  it('shared-memory inputs are refused as unsupported', async () => {
    const r = await postInfer('echo', JSON.stringify({ inputs: [
      { name: 'IN_FP32', datatype: 'FP32', shape: [1], parameters: { shared_memory_region: 'r', shared_memory_byte_size: 4 } },
    ] }));
    expect(r.status).toBe(400);
    expect(json(r).error).toMatch(/shared-memory inputs are not supported/);
  });
});
