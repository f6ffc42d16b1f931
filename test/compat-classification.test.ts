/**
 * Triton's classification extension over HTTP and gRPC, with labels: an output requested with
 * `classification: N` comes back as BYTES "score:index:label" for the top N of each batch row
 * (labels from the output's label_filename, read once at load from the model's folder), with
 * Triton's errors for bad values, and label files that cannot be read or leave the folder refused
 * at load. As Triton's server src/classification.cc, src/http_server.cc, src/grpc/infer_handler.h.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http, startRepositoryServer, type RepositoryServer } from './helpers/server.js';
import { grpcClient, type TestGrpcClient } from './helpers/grpc.js';
import { CANARY, decodeBytesElements, expectCanary, fp32Of, stopAndCheckLeaks } from './helpers/compat.js';

const SCORES_TS = `
import { InferenceRequest, InferenceResponse, Tensor } from 'stubhost';
export default class Scores {
  execute(requests: InferenceRequest[]) {
    return requests.map((r) => {
      const x = r.input('IN')!;
      const f = x.data as Float32Array;
      return new InferenceResponse({ outputs: [
        new Tensor('SCORES', f.slice(), x.shape),
        new Tensor('INTS', Int32Array.from(f, (v) => Math.round(v * 10)), x.shape),
        new Tensor('NAMES', Array.from({ length: x.shape[0]! }, () => 'n'), [x.shape[0]!, 1]),
      ] });
    });
  }
}`;
const SCORES_CONFIG = `name: "scores"
backend: "typescript"
max_batch_size: 4
input [ { name: "IN" data_type: TYPE_FP32 dims: [ 5 ] } ]
output [
  { name: "SCORES" data_type: TYPE_FP32 dims: [ 5 ] label_filename: "labels.txt" },
  { name: "INTS" data_type: TYPE_INT32 dims: [ 5 ] },
  { name: "NAMES" data_type: TYPE_STRING dims: [ 1 ] }
]
`;
// Four labels for five classes; the third is empty (left out, as Triton's label provider does).
const LABELS = 'cat\ndog\n\nbird\n';
const FLAT_CONFIG = `name: "flat"
backend: "typescript"
max_batch_size: 0
input [ { name: "IN" data_type: TYPE_FP32 dims: [ -1 ] } ]
output [ { name: "OUT" data_type: TYPE_FP32 dims: [ -1 ] label_filename: "meta/flat_labels.txt" } ]
`;
const FLAT_TS = CANARY['1/model.ts'];

const ROWS = [[0.1, 0.9, 0.5, 0.7, 0.3], [0.6, 0.2, 0.8, 0.05, 0.95]];

let server: RepositoryServer;
let grpc: TestGrpcClient;

beforeAll(async () => {
  server = await startRepositoryServer({
    canary: CANARY,
    scores: { 'config.pbtxt': SCORES_CONFIG, 'labels.txt': LABELS, '1/model.ts': SCORES_TS },
    flat: { 'config.pbtxt': FLAT_CONFIG, 'meta/flat_labels.txt': 'zero\none\ntwo', '1/model.ts': FLAT_TS },
    no_label_file: { 'config.pbtxt': FLAT_CONFIG.replace('"flat"', '"no_label_file"'), '1/model.ts': FLAT_TS },
    escaping_labels: { 'config.pbtxt': FLAT_CONFIG.replace('"flat"', '"escaping_labels"').replace('meta/flat_labels.txt', '../canary/config.pbtxt'), '1/model.ts': FLAT_TS },
  }, { grpcPort: 0 });
  grpc = grpcClient(server.ports.grpc!);
}, 120_000);

afterAll(async () => {
  await stopAndCheckLeaks(server, grpc);
}, 60_000);

const httpInfer = (model: string, body: unknown) => http(`${server.url}/v2/models/${model}/infer`, 'POST', body);
const scoresInput = { name: 'IN', datatype: 'FP32', shape: [2, 5], data: ROWS.flat() };

describe('HTTP', () => {
  it('returns the top N of each batch row as "score:index:label", six decimals, labels left out where there is none', async () => {
    const r = await httpInfer('scores', { inputs: [scoresInput], outputs: [{ name: 'SCORES', parameters: { classification: 3 } }] });
    expect(r.status, r.text).toBe(200);
    expect(r.json.outputs).toEqual([{
      name: 'SCORES', datatype: 'BYTES', shape: [2, 3],
      data: ['0.900000:1:dog', '0.700000:3:bird', '0.500000:2', '0.950000:4', '0.800000:2', '0.600000:0:cat'],
    }]);
  });

  it('integer outputs print plain integers; N above the row size gives the whole row; binary output works', async () => {
    const res = await fetch(`${server.url}/v2/models/scores/infer`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        inputs: [{ ...scoresInput, shape: [1, 5], data: ROWS[0] }],
        outputs: [{ name: 'INTS', parameters: { classification: 9 } }, { name: 'SCORES', parameters: { classification: 1, binary_data: true } }],
      }),
    });
    expect(res.status).toBe(200);
    const body = Buffer.from(await res.arrayBuffer());
    const headerLength = Number(res.headers.get('inference-header-content-length'));
    const doc = JSON.parse(body.subarray(0, headerLength).toString());
    const byName = (n: string) => doc.outputs.find((o: { name: string }) => o.name === n);
    expect(byName('INTS')).toEqual({ name: 'INTS', datatype: 'BYTES', shape: [1, 5], data: ['9:1', '7:3', '5:2', '3:4', '1:0'] });
    expect(byName('SCORES')).toEqual({ name: 'SCORES', datatype: 'BYTES', shape: [1, 1], parameters: { binary_data_size: 4 + '0.900000:1:dog'.length } });
    expect(decodeBytesElements(body.subarray(headerLength))).toEqual(['0.900000:1:dog']);
  });

  it('a model without batching ranks the whole tensor; labels come from a file in a subfolder', async () => {
    const r = await httpInfer('flat', { inputs: [{ name: 'IN', datatype: 'FP32', shape: [4], data: [3, 1, 2, 5] }], outputs: [{ name: 'OUT', parameters: { classification: 2 } }] });
    expect(r.status, r.text).toBe(200);
    expect(r.json.outputs).toEqual([{ name: 'OUT', datatype: 'BYTES', shape: [2], data: ['5.000000:3', '3.000000:0:zero'] }]);
  });

  it('classification 0 is no classification, as Triton', async () => {
    const r = await httpInfer('flat', { inputs: [{ name: 'IN', datatype: 'FP32', shape: [2], data: [3, 1] }], outputs: [{ name: 'OUT', parameters: { classification: 0 } }] });
    expect(r.status, r.text).toBe(200);
    expect(r.json.outputs).toEqual([{ name: 'OUT', datatype: 'FP32', shape: [2], data: [3, 1] }]);
  });

  it("refuses what Triton refuses, with Triton's words", async () => {
    const neg = await httpInfer('scores', { inputs: [scoresInput], outputs: [{ name: 'SCORES', parameters: { classification: -1 } }] });
    expect(neg.status).toBe(500);
    expect(neg.json.error).toBe("Unable to set 'classification': attempt to access JSON non-unsigned-integer as unsigned-integer");
    const bytes = await httpInfer('scores', { inputs: [scoresInput], outputs: [{ name: 'NAMES', parameters: { classification: 1 } }] });
    expect(bytes.status).toBe(400);
    expect(bytes.json.error).toBe("class result not available for output due to unsupported type 'BYTES'");
    const shm = await httpInfer('scores', { inputs: [scoresInput], outputs: [{ name: 'SCORES', parameters: { classification: 1, shared_memory_region: 'r', shared_memory_byte_size: 64 } }] });
    expect(shm.status).toBe(400);
    expect(shm.json.error).toBe("Output can't set both 'shared_memory_region' and 'classification'");
    await expectCanary(server);
  });
});

describe('gRPC', () => {
  const request = (outputs: object[]) => ({
    model_name: 'scores',
    inputs: [{ name: 'IN', datatype: 'FP32', shape: [2, 5], contents: { fp32_contents: ROWS.flat() } }],
    outputs,
  });

  it('the classification parameter (int64_param) gives the same strings as HTTP in raw_output_contents', async () => {
    const r = await grpc.rpc('ModelInfer', request([{ name: 'SCORES', parameters: { classification: { int64_param: 3 } } }, { name: 'INTS' }]));
    expect(r.outputs.map((o: { name: string; datatype: string; shape: string[] }) => [o.name, o.datatype, o.shape.map(Number)])).toEqual([
      ['SCORES', 'BYTES', [2, 3]],
      ['INTS', 'INT32', [2, 5]],
    ]);
    expect(decodeBytesElements(r.raw_output_contents[0])).toEqual(['0.900000:1:dog', '0.700000:3:bird', '0.500000:2', '0.950000:4', '0.800000:2', '0.600000:0:cat']);
    expect(Array.from(new Int32Array(Uint8Array.from(r.raw_output_contents[1]).buffer))).toEqual(ROWS.flat().map((v) => Math.round(Math.fround(v) * 10)));
  });

  it('on a stream too', async () => {
    const got = await grpc.streamAll([request([{ name: 'SCORES', parameters: { classification: { int64_param: 1 } } }])]);
    expect(got).toHaveLength(1);
    expect(got[0].error_message).toBe('');
    expect(decodeBytesElements(got[0].infer_response.raw_output_contents[0])).toEqual(['0.900000:1:dog', '0.950000:4']);
  });

  it("refuses a wrong type or value with Triton's INVALID_ARGUMENT words", async () => {
    const type = await grpc.rpcError('ModelInfer', request([{ name: 'SCORES', parameters: { classification: { double_param: 2 } } }]));
    expect(type.code).toBe(3);
    expect(type.details).toBe("invalid value type for 'classification' parameter, expected int64_param");
    const zero = await grpc.rpcError('ModelInfer', request([{ name: 'SCORES', parameters: { classification: { int64_param: 0 } } }]));
    expect(zero.code).toBe(3);
    expect(zero.details).toBe("invalid value for 'classification' parameter, expected >= 0");
    const bytes = await grpc.rpcError('ModelInfer', request([{ name: 'NAMES', parameters: { classification: { int64_param: 1 } } }]));
    expect(bytes.code).toBe(3);
    expect(bytes.details).toBe("class result not available for output due to unsupported type 'BYTES'");
    const plain = await grpc.rpc('ModelInfer', request([{ name: 'SCORES' }]));
    expect(fp32Of(plain.raw_output_contents[0])).toEqual(ROWS.flat().map((v) => Math.fround(v)));
    await expectCanary(server, grpc);
  });
});

describe('label files at load', () => {
  it('a missing label file or one outside the model folder fails that model only, naming the field', async () => {
    const index = (await http(`${server.url}/v2/repository/index`, 'POST', {})).json as { name: string; state: string; reason?: string }[];
    const missing = index.find((e) => e.name === 'no_label_file')!;
    expect(missing.state).toBe('UNAVAILABLE');
    expect(missing.reason).toMatch(/output\[0\] 'OUT' label_filename: cannot read "meta\/flat_labels.txt" \(ENOENT\)/);
    const escaping = index.find((e) => e.name === 'escaping_labels')!;
    expect(escaping.state).toBe('UNAVAILABLE');
    expect(escaping.reason).toMatch(/label_filename: "\.\.\/canary\/config\.pbtxt" leads outside the model's folder/);
    await expectCanary(server, grpc);
  });
});
