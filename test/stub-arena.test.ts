/**
 * Shared-memory blocks go back after use on both sides: with a small arena cap (the model
 * parameter shm_max_bytes, applied to the host's and the stub's arena), hundreds of requests with
 * megabyte-sized inputs and outputs succeed — a block that was never released would fill the cap
 * within a few requests. Past the cap, only the request that does not fit fails, clearly.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRepositoryServer, type RepositoryServer } from './helpers/server.js';

const MODEL = `
import { InferenceRequest, InferenceResponse, Tensor } from 'stubhost';
export default class Double {
  execute(requests: InferenceRequest[]) {
    return requests.map((r) => {
      const x = r.input('IN')!.data as Float32Array;
      const y = new Float32Array(x.length);
      for (let i = 0; i < x.length; i++) y[i] = x[i]! * 2;
      return new InferenceResponse({ outputs: [new Tensor('OUT', y, r.input('IN')!.shape)] });
    });
  }
}`;
const CONFIG = `
backend: "typescript"
max_batch_size: 0
input [ { name: "IN" data_type: TYPE_FP32 dims: [ -1 ] } ]
output [ { name: "OUT" data_type: TYPE_FP32 dims: [ -1 ] } ]
parameters { key: "shm_max_bytes" value { string_value: "8388608" } }
`;

let server: RepositoryServer;

beforeAll(async () => {
  server = await startRepositoryServer({ double: { 'config.pbtxt': CONFIG, '1/model.ts': MODEL } });
}, 60_000);

afterAll(async () => {
  expect(await server?.stop()).toEqual([]);
});

const request = (n: number) => ({
  id: '', modelName: 'double', parameters: {}, priority: 0, timeoutUs: 0,
  inputs: [{ name: 'IN', datatype: 'FP32' as const, shape: [n], data: new Float32Array(n).fill(1.5) }],
});

describe('arena blocks are released', () => {
  it('300 requests of 1 MiB in and out under an 8 MiB cap on each side', async () => {
    const n = 256 * 1024; // 1 MiB of FP32
    for (let round = 0; round < 30; round++) {
      const results = await Promise.all(Array.from({ length: 10 }, () => server.core.infer(request(n))));
      for (const r of results) {
        const out = r.outputs[0]!.data as Float32Array;
        expect([out.length, out[0], out[n - 1]]).toEqual([n, 3, 3]);
      }
    }
  }, 60_000);

  it('a tensor larger than the cap fails that request only, naming the cap', async () => {
    await expect(server.core.infer(request(3 * 1024 * 1024))).rejects.toThrow(/arena .* is full: .*8388608-byte cap/);
    const ok = await server.core.infer(request(1024));
    expect((ok.outputs[0]!.data as Float32Array)[0]).toBe(3);
  });
});
