/**
 * Implicit state's initial_state, as Triton's sequence batcher: at the start of every sequence the
 * state input is the initial_state (zero_data, or data_file from the model's initial_state/
 * folder) rather than plain zeros; over HTTP and gRPC. A bad initial_state fails the load with
 * Triton's words (core src/sequence_batch_scheduler/sequence_batch_scheduler.cc), and a data_file
 * cannot leave its folder.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http, startRepositoryServer, type RepositoryServer } from './helpers/server.js';
import { grpcClient, type TestGrpcClient } from './helpers/grpc.js';
import { CANARY, IDENTITY_TS, expectCanary, fp32Of, stopAndCheckLeaks } from './helpers/compat.js';

const ACC_TS = `
import { InferenceRequest, InferenceResponse, Tensor } from 'stubhost';
export default class Acc {
  execute(requests: InferenceRequest[]) {
    return requests.map((r) => {
      const x = r.input('IN')!.data as Float32Array;
      const acc = r.input('ACC_IN')!;
      const cnt = r.input('CNT_IN')!;
      const sum = x.map((v, i) => v + (acc.data as Float32Array)[i]!);
      return new InferenceResponse({ outputs: [
        new Tensor('OUT', sum, [1, 3]),
        new Tensor('ACC_OUT', sum.slice(), [1, 3]),
        new Tensor('COUNT', (cnt.data as Int32Array).slice(), cnt.shape),
        new Tensor('CNT_OUT', (cnt.data as Int32Array).map((v) => v + 1), cnt.shape),
      ] });
    });
  }
}`;

const accConfig = (name: string, accInit: string, cntInit = 'initial_state { name: "zeros" data_type: TYPE_INT32 dims: [ 2 ] zero_data: true }'): string => `
name: "${name}"
backend: "typescript"
max_batch_size: 2
input [ { name: "IN" data_type: TYPE_FP32 dims: [ 3 ] } ]
output [ { name: "OUT" data_type: TYPE_FP32 dims: [ 3 ] }, { name: "COUNT" data_type: TYPE_INT32 dims: [ -1 ] } ]
sequence_batching {
  state [
    { input_name: "ACC_IN" output_name: "ACC_OUT" data_type: TYPE_FP32 dims: [ 3 ] ${accInit} },
    { input_name: "CNT_IN" output_name: "CNT_OUT" data_type: TYPE_INT32 dims: [ -1 ] ${cntInit} }
  ]
}
`;
const fromFile = (file: string, extra = '') => `initial_state { name: "start" data_type: TYPE_FP32 dims: [ 3 ] data_file: "${file}" ${extra} }`;
const START = new Uint8Array(Float32Array.of(10, 20, 30).buffer);

let server: RepositoryServer;
let grpc: TestGrpcClient;

const bad = (name: string, accInit: string, files: Record<string, string | Uint8Array> = {}) =>
  ({ [name]: { 'config.pbtxt': accConfig(name, accInit), '1/model.ts': ACC_TS, ...files } });

beforeAll(async () => {
  server = await startRepositoryServer({
    canary: CANARY,
    acc: { 'config.pbtxt': accConfig('acc', fromFile('start.bin')), 'initial_state/start.bin': START, '1/model.ts': ACC_TS },
    ...bad('missing_file', fromFile('nothing.bin')),
    ...bad('escaping_file', fromFile('../config.pbtxt')),
    ...bad('short_file', fromFile('short.bin'), { 'initial_state/short.bin': new Uint8Array(8) }),
    ...bad('wrong_type', 'initial_state { name: "s" data_type: TYPE_INT32 dims: [ 3 ] zero_data: true }'),
    ...bad('wrong_dims', 'initial_state { name: "s" data_type: TYPE_FP32 dims: [ 4 ] zero_data: true }'),
    ...bad('wrong_rank', 'initial_state { name: "s" data_type: TYPE_FP32 dims: [ 3, 1 ] zero_data: true }'),
    ...bad('no_name', 'initial_state { data_type: TYPE_FP32 dims: [ 3 ] zero_data: true }'),
    ...bad('two_initial', 'initial_state [ { name: "a" data_type: TYPE_FP32 dims: [ 3 ] zero_data: true }, { name: "b" data_type: TYPE_FP32 dims: [ 3 ] zero_data: true } ]'),
    unused: { 'config.pbtxt': CANARY['config.pbtxt'].replace('"canary"', '"unused"'), '1/model.ts': IDENTITY_TS },
  }, { grpcPort: 0 });
  grpc = grpcClient(server.ports.grpc!);
}, 120_000);

afterAll(async () => {
  await stopAndCheckLeaks(server, grpc);
}, 60_000);

const send = (x: number[], params: Record<string, unknown>) =>
  http(`${server.url}/v2/models/acc/infer`, 'POST', { parameters: params, inputs: [{ name: 'IN', shape: [1, 3], datatype: 'FP32', data: x }] });
const out = (r: Awaited<ReturnType<typeof send>>, name: string) => r.json.outputs.find((o: { name: string }) => o.name === name).data;

describe('initial_state', () => {
  it('HTTP: every sequence starts from the data_file and the zero_data, then carries its own state', async () => {
    const a1 = await send([1, 2, 3], { sequence_id: 1, sequence_start: true });
    expect(a1.status, a1.text).toBe(200);
    expect(out(a1, 'OUT')).toEqual([11, 22, 33]);
    expect(out(a1, 'COUNT')).toEqual([0, 0]);
    const a2 = await send([1, 1, 1], { sequence_id: 1 });
    expect(out(a2, 'OUT')).toEqual([12, 23, 34]);
    expect(out(a2, 'COUNT')).toEqual([1, 1]);
    // A second sequence, and the first one started again, begin from the initial state.
    const b1 = await send([0, 0, 0], { sequence_id: 2, sequence_start: true });
    expect(out(b1, 'OUT')).toEqual([10, 20, 30]);
    const a3 = await send([0, 0, 0], { sequence_id: 1, sequence_start: true, sequence_end: true });
    expect(out(a3, 'OUT')).toEqual([10, 20, 30]);
    expect(out(a3, 'COUNT')).toEqual([0, 0]);
    await send([0, 0, 0], { sequence_id: 2, sequence_end: true });
  });

  it('gRPC: the same over a stream with sequence parameters', async () => {
    const req = (x: number[], start: boolean, end: boolean) => ({
      model_name: 'acc',
      parameters: { sequence_id: { int64_param: 7 }, sequence_start: { bool_param: start }, sequence_end: { bool_param: end } },
      inputs: [{ name: 'IN', datatype: 'FP32', shape: [1, 3], contents: { fp32_contents: x } }],
      outputs: [{ name: 'OUT' }],
    });
    const got = await grpc.streamAll([req([1, 1, 1], true, false), req([2, 2, 2], false, true)]);
    expect(got.map((m) => m.error_message)).toEqual(['', '']);
    expect(got.map((m) => fp32Of(m.infer_response.raw_output_contents[0]))).toEqual([[11, 21, 31], [13, 23, 33]]);
    await expectCanary(server, grpc);
  });

  it("a bad initial_state fails that model's load with Triton's words", async () => {
    const index = (await http(`${server.url}/v2/repository/index`, 'POST', {})).json as { name: string; state: string; reason?: string }[];
    const reason = (name: string) => {
      const e = index.find((m) => m.name === name)!;
      expect(e.state).toBe('UNAVAILABLE');
      return e.reason!;
    };
    const field = 'sequence_batching.state[0].initial_state';
    expect(reason('missing_file')).toMatch(new RegExp(`${field.replace(/[[\].]/g, '\\$&')}: data_file "nothing.bin" cannot be read \\(ENOENT\\)`));
    expect(reason('escaping_file')).toMatch(/data_file: "\.\.\/config\.pbtxt" leads outside the model's initial_state\/ folder/);
    expect(reason('short_file')).toContain('initial_state setting expects 12 bytes, but the data provided from short.binonly has 8 bytes.');
    expect(reason('wrong_type')).toContain("The data type used for 'initial_state' field of state 'ACC_IN' does not match the state data type.");
    expect(reason('wrong_dims')).toContain("'initial_state' dim for input name 'ACC_IN' doesn't match 'state' dim description. 4 != 3");
    expect(reason('wrong_rank')).toContain("Number of dimensions in 'initial_state' doesn't match the size of 'state' dimensions for state input 'ACC_IN'. 2 != 1");
    expect(reason('no_name')).toContain("Field 'name' must be set when using initial_state for state input 'ACC_IN'.");
    expect(reason('two_initial')).toContain("initial_state field for state input 'ACC_IN' must contain exactly one or zero element. Found '2' elements.");
    await expectCanary(server, grpc);
  });
});
