/**
 * Stateful models through the sequence batcher: control inputs, implicit state, ordering within a
 * sequence, interleaved sequences, and the errors a client gets for bad sequence requests.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http, startRepositoryServer, type RepositoryServer } from './helpers/server.js';

const MODEL = `
import { InferenceRequest, InferenceResponse, Tensor } from 'stubhost';
export default class Accumulate {
  execute(requests: InferenceRequest[]) {
    return requests.map((r) => {
      const x = (r.input('INPUT')!.data as Int32Array)[0]!;
      const start = (r.input('START')!.data as Int32Array)[0]!;
      const state = (r.input('STATE_IN')!.data as Int32Array)[0]!;
      const corr = (r.input('CORRID')!.data as BigUint64Array)[0]!;
      const total = (start ? 0 : state) + x;
      return new InferenceResponse({ outputs: [
        new Tensor('OUTPUT', Int32Array.of(total), [1]),
        new Tensor('STATE_OUT', Int32Array.of(total), [1]),
        new Tensor('CORR', BigUint64Array.of(corr), [1]),
      ] });
    });
  }
}`;

const CONFIG = `
name: "accumulate"
backend: "typescript"
max_batch_size: 0
input [ { name: "INPUT" data_type: TYPE_INT32 dims: [ 1 ] } ]
output [ { name: "OUTPUT" data_type: TYPE_INT32 dims: [ 1 ] }, { name: "CORR" data_type: TYPE_UINT64 dims: [ 1 ] } ]
sequence_batching {
  max_sequence_idle_microseconds: 2000000
  control_input [
    { name: "START" control [ { kind: CONTROL_SEQUENCE_START int32_false_true: [ 0, 1 ] } ] },
    { name: "CORRID" control [ { kind: CONTROL_SEQUENCE_CORRID data_type: TYPE_UINT64 } ] }
  ]
  state [ { input_name: "STATE_IN" output_name: "STATE_OUT" data_type: TYPE_INT32 dims: [ 1 ] } ]
}
instance_group [ { count: 2, kind: KIND_CPU } ]
`;

describe('sequence batcher', () => {
  let server: RepositoryServer;

  beforeAll(async () => {
    server = await startRepositoryServer({ accumulate: { 'config.pbtxt': CONFIG, '1/model.ts': MODEL } });
  }, 60_000);

  afterAll(async () => {
    expect(await server?.stop()).toEqual([]);
  });

  const send = (value: number, params: Record<string, unknown>) =>
    http(`${server.url}/v2/models/accumulate/infer`, 'POST', {
      parameters: params,
      inputs: [{ name: 'INPUT', shape: [1], datatype: 'INT32', data: [value] }],
    });

  it('keeps state across the requests of a sequence and separates sequences', async () => {
    expect((await send(5, { sequence_id: 11, sequence_start: true })).json.outputs[0].data).toEqual([5]);
    expect((await send(7, { sequence_id: 22, sequence_start: true })).json.outputs[0].data).toEqual([7]);
    expect((await send(3, { sequence_id: 11 })).json.outputs[0].data).toEqual([8]);
    expect((await send(1, { sequence_id: 22 })).json.outputs[0].data).toEqual([8]);
    const last = await send(2, { sequence_id: 11, sequence_end: true });
    expect(last.status).toBe(200);
    expect(last.json.outputs.find((o: { name: string }) => o.name === 'OUTPUT').data).toEqual([10]);
    expect(last.json.outputs.find((o: { name: string }) => o.name === 'CORR').data).toEqual([11]);
    // State outputs are the host's business, not the client's.
    expect(last.json.outputs.map((o: { name: string }) => o.name)).not.toContain('STATE_OUT');
  });

  it('runs the requests of one sequence in order even when sent at once', async () => {
    const first = send(1, { sequence_id: 33, sequence_start: true });
    const rest = [2, 3, 4, 5].map((v) => send(v, { sequence_id: 33, sequence_end: v === 5 }));
    const results = await Promise.all([first, ...rest]);
    expect(results.map((r) => r.json.outputs[0].data[0])).toEqual([1, 3, 6, 10, 15]);
  });

  it('refuses a request without a correlation id, and one that continues an unknown sequence', async () => {
    const noId = await send(1, {});
    expect(noId.status).toBe(400);
    expect(noId.json.error).toMatch(/^inference request to model '\w+' must specify a non-zero or non-empty correlation ID$/);
    const noStart = await send(1, { sequence_id: 999 });
    expect(noStart.status).toBe(400);
    expect(noStart.json.error).toMatch(/^inference request for sequence 999 to model '\w+' must specify the START flag on the first request of the sequence$/);
  });
});
