/**
 * BLS outputs during execute are views of shared memory (no copy), valid until that execute
 * returns — like the execute's inputs — and may be passed on as the caller's own outputs; outside
 * an execute (initialize) they are private copies the model may keep.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http, startRepositoryServer, type RepositoryServer } from './helpers/server.js';

const IDENTITY = `
import { InferenceRequest, InferenceResponse, Tensor } from 'stubhost';
export default class Identity {
  execute(requests: InferenceRequest[]) {
    return requests.map((r) => new InferenceResponse({ outputs: [new Tensor('OUT', (r.input('IN')!.data as Float32Array).slice(), r.input('IN')!.shape)] }));
  }
}`;

const CALLER = `
import { InferenceRequest, InferenceResponse, Tensor } from 'stubhost';
export default class Caller {
  private initShared = -1;
  async initialize() {
    const r = await new InferenceRequest({ modelName: 'identity', inputs: [new Tensor('IN', new Float32Array(1024).fill(7))] }).exec();
    this.initShared = r.error ? -2 : (r.output('OUT')!.data.buffer instanceof SharedArrayBuffer ? 1 : 0);
  }
  async execute(requests: InferenceRequest[]) {
    return Promise.all(requests.map(async (req) => {
      const x = req.input('X')!;
      const r = await new InferenceRequest({ modelName: 'identity', inputs: [new Tensor('IN', x.data as Float32Array, x.shape)] }).exec();
      if (r.error) return new InferenceResponse({ error: r.error });
      const out = r.output('OUT')!;
      return new InferenceResponse({ outputs: [
        new Tensor('Y', out.data as Float32Array, out.shape),
        new Tensor('SHARED', Int32Array.of(out.data.buffer instanceof SharedArrayBuffer ? 1 : 0, this.initShared)),
      ] });
    }));
  }
}`;

const config = (name: string, inputs: string, outputs: string) => `
name: "${name}"
backend: "typescript"
max_batch_size: 0
input [ ${inputs} ]
output [ ${outputs} ]
`;

let server: RepositoryServer;

beforeAll(async () => {
  server = await startRepositoryServer({
    identity: {
      'config.pbtxt': config('identity', '{ name: "IN" data_type: TYPE_FP32 dims: [ -1 ] }', '{ name: "OUT" data_type: TYPE_FP32 dims: [ -1 ] }'),
      '1/model.ts': IDENTITY,
    },
    caller: {
      'config.pbtxt': config('caller', '{ name: "X" data_type: TYPE_FP32 dims: [ -1 ] }', '{ name: "Y" data_type: TYPE_FP32 dims: [ -1 ] }, { name: "SHARED" data_type: TYPE_INT32 dims: [ 2 ] }'),
      '1/model.ts': CALLER,
    },
  }, { modelControlMode: 'explicit', loadModels: ['identity'] });
  // The caller's initialize calls identity, so it loads once identity is ready.
  expect((await http(`${server.url}/v2/repository/models/caller/load`, 'POST', {})).status).toBe(200);
}, 60_000);

afterAll(async () => {
  expect(await server?.stop(3000)).toEqual([]);
});

describe('BLS outputs', () => {
  it('are shared-memory views during execute, copies in initialize; passing one on as an output works', async () => {
    const data = Array.from({ length: 2048 }, (_, i) => i * 0.5);
    const results = await Promise.all(Array.from({ length: 20 }, () => http(`${server.url}/v2/models/caller/infer`, 'POST', {
      inputs: [{ name: 'X', shape: [data.length], datatype: 'FP32', data }],
    })));
    for (const r of results) {
      expect(r.status).toBe(200);
      const out = (name: string) => r.json.outputs.find((o: { name: string }) => o.name === name).data;
      expect(out('Y')).toEqual(data);
      expect(out('SHARED')).toEqual([1, 0]);
    }
  });
});
