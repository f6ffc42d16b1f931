/**
 * Triton's final-flag semantics on gRPC ModelStreamInfer for decoupled models: a response the
 * model sends together with its final flag is marked `triton_final_response: true` (and no empty
 * response follows); a final flag sent alone becomes the empty final response only when the
 * client asked for it with `triton_enable_empty_final_response`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { grpcClient, type TestGrpcClient } from './helpers/grpc.js';
import { startRepositoryServer, type RepositoryServer } from './helpers/server.js';

const MODEL = `
import { InferenceRequest, InferenceResponse, Tensor } from 'stubhost';
export default class Twice {
  execute(requests: InferenceRequest[]) {
    for (const r of requests) {
      const together = (r.input('TOGETHER')!.data as Int32Array)[0] === 1;
      const sender = r.responseSender();
      sender.send(new InferenceResponse({ outputs: [new Tensor('OUT', Int32Array.of(1))] }));
      if (together) sender.send(new InferenceResponse({ outputs: [new Tensor('OUT', Int32Array.of(2))] }), { final: true });
      else {
        sender.send(new InferenceResponse({ outputs: [new Tensor('OUT', Int32Array.of(2))] }));
        sender.send(undefined, { final: true });
      }
    }
  }
}`;
const CONFIG = `
name: "twice"
backend: "typescript"
max_batch_size: 0
model_transaction_policy { decoupled: true }
input [ { name: "TOGETHER" data_type: TYPE_INT32 dims: [ 1 ] } ]
output [ { name: "OUT" data_type: TYPE_INT32 dims: [ 1 ] } ]
`;

let server: RepositoryServer;
let client: TestGrpcClient;

beforeAll(async () => {
  server = await startRepositoryServer({ twice: { 'config.pbtxt': CONFIG, '1/model.ts': MODEL } }, { grpcPort: 0 });
  client = grpcClient(server.ports.grpc!);
}, 60_000);

afterAll(async () => {
  client?.close();
  expect(await server?.stop(3000)).toEqual([]);
});

function stream(together: boolean, emptyFinal: boolean): Promise<any[]> {
  return client.streamAll([{
    model_name: 'twice',
    inputs: [{ name: 'TOGETHER', datatype: 'INT32', shape: [1] }],
    raw_input_contents: [Buffer.from(Int32Array.of(together ? 1 : 0).buffer)],
    parameters: emptyFinal ? { triton_enable_empty_final_response: { bool_param: true } } : {},
  }]);
}
const finals = (got: any[]) => got.map((m) => m.infer_response.parameters.triton_final_response.bool_param);
const counts = (got: any[]) => got.map((m) => m.infer_response.outputs.length);

describe('decoupled final flag over gRPC', () => {
  it('a response sent with the final flag is itself final; no empty response follows', async () => {
    for (const emptyFinal of [false, true]) {
      const got = await stream(true, emptyFinal);
      expect(finals(got)).toEqual([false, true]);
      expect(counts(got)).toEqual([1, 1]);
    }
  });

  it('a final flag sent alone: an empty final response only when asked for', async () => {
    const asked = await stream(false, true);
    expect(finals(asked)).toEqual([false, false, true]);
    expect(counts(asked)).toEqual([1, 1, 0]);
    const notAsked = await stream(false, false);
    expect(finals(notAsked)).toEqual([false, false]);
  });
});
