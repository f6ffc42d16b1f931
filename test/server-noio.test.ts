/**
 * A TypeScript model with no config file and no autoCompleteConfig declares no inputs or outputs:
 * its load fails with a message saying how to fix it (every request would otherwise be refused),
 * and the other models serve.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http, startRepositoryServer, type RepositoryServer } from './helpers/server.js';

let server: RepositoryServer;

beforeAll(async () => {
  server = await startRepositoryServer({
    bare: { '1/model.ts': 'export default class M { execute(r: unknown[]) { return r.map(() => ({ outputs: [] })); } }' },
    echo: {
      'config.pbtxt': 'backend: "typescript"\ninput [{ name: "X" data_type: TYPE_INT32 dims: [ 1 ] }]\noutput [{ name: "Y" data_type: TYPE_INT32 dims: [ 1 ] }]\n',
      '1/model.ts': `import { InferenceRequest, InferenceResponse, Tensor } from 'stubhost';
export default class Echo { execute(rs: InferenceRequest[]) { return rs.map((r) => new InferenceResponse({ outputs: [new Tensor('Y', (r.input('X')!.data as Int32Array).slice())] })); } }`,
    },
  });
}, 60_000);

afterAll(async () => {
  expect(await server?.stop()).toEqual([]);
});

describe('a model with no inputs and no outputs', () => {
  it('fails its load, naming the fix; the others serve', async () => {
    expect(server.failed.get('bare')).toMatch(/declares no inputs and no outputs; list them in config\.pbtxt .* or complete them in the model's static autoCompleteConfig/);
    const index = (await http(`${server.url}/v2/repository/index`, 'POST', {})).json;
    expect(index.find((m: { name: string }) => m.name === 'bare')).toMatchObject({ state: 'UNAVAILABLE' });
    const r = await http(`${server.url}/v2/models/echo/infer`, 'POST', { inputs: [{ name: 'X', shape: [1], datatype: 'INT32', data: [5] }] });
    expect(r.json.outputs[0].data).toEqual([5]);
  });
});
