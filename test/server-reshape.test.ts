/**
 * Config `reshape`: clients send and receive the config's dims; the model sees the reshaped
 * shape (batch dimension kept when the model batches).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http, startRepositoryServer, type RepositoryServer } from './helpers/server.js';

const MODEL = `
import { InferenceRequest, InferenceResponse, Tensor } from 'stubhost';
export default class ShapeEcho {
  execute(requests: InferenceRequest[]) {
    return requests.map((r) => {
      const t = r.input('IN')!;
      // Echo the data with the shape the model saw, and report that shape (batched: once per row,
      // as the config's dims [-1] come after the batch dimension).
      const rows = t.shape.length === 3 ? t.shape[0]! : 0;
      const seen = rows > 0 ? new Tensor('SEEN', Int32Array.from({ length: rows * 3 }, (_, i) => t.shape[i % 3]!), [rows, 3]) : new Tensor('SEEN', Int32Array.from(t.shape));
      return new InferenceResponse({ outputs: [
        new Tensor('OUT', (t.data as Float32Array).slice(), t.shape),
        seen,
      ] });
    });
  }
}`;
const config = (maxBatch: number) => `
backend: "typescript"
max_batch_size: ${maxBatch}
input [ { name: "IN" data_type: TYPE_FP32 dims: [ 4 ] reshape: { shape: [ 2, 2 ] } } ]
output [
  { name: "OUT" data_type: TYPE_FP32 dims: [ 4 ] reshape: { shape: [ 2, 2 ] } },
  { name: "SEEN" data_type: TYPE_INT32 dims: [ -1 ] }
]
`;

let server: RepositoryServer;

beforeAll(async () => {
  server = await startRepositoryServer({
    flat: { 'config.pbtxt': config(0), '1/model.ts': MODEL },
    batched: { 'config.pbtxt': config(4), '1/model.ts': MODEL },
  });
}, 60_000);

afterAll(async () => {
  expect(await server?.stop()).toEqual([]);
});

const out = (json: any, name: string) => json.outputs.find((o: any) => o.name === name);

describe('reshape', () => {
  it('the model sees [2, 2]; the client sends and receives [4]', async () => {
    const r = await http(`${server.url}/v2/models/flat/infer`, 'POST', { inputs: [{ name: 'IN', shape: [4], datatype: 'FP32', data: [1, 2, 3, 4] }] });
    expect(r.status).toBe(200);
    expect(out(r.json, 'SEEN').data).toEqual([2, 2]);
    expect(out(r.json, 'OUT')).toMatchObject({ shape: [4], data: [1, 2, 3, 4] });
  });

  it('with a batch dimension: the model sees [b, 2, 2], the client gets [b, 4]', async () => {
    const r = await http(`${server.url}/v2/models/batched/infer`, 'POST', { inputs: [{ name: 'IN', shape: [2, 4], datatype: 'FP32', data: [1, 2, 3, 4, 5, 6, 7, 8] }] });
    expect(r.status).toBe(200);
    expect(out(r.json, 'SEEN')).toMatchObject({ shape: [2, 3], data: [2, 2, 2, 2, 2, 2] });
    expect(out(r.json, 'OUT')).toMatchObject({ shape: [2, 4], data: [1, 2, 3, 4, 5, 6, 7, 8] });
  });

  it('a request in the reshaped form is refused: clients use the config dims', async () => {
    const r = await http(`${server.url}/v2/models/flat/infer`, 'POST', { inputs: [{ name: 'IN', shape: [2, 2], datatype: 'FP32', data: [1, 2, 3, 4] }] });
    expect(r.status).toBe(400);
  });
});
