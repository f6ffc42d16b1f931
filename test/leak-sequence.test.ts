/**
 * Leak checks for the sequence batcher: after sequences that end, sequences abandoned until they
 * time out, and a sequence restarted by a new START while its earlier requests still waited, the
 * batcher holds nothing (sequences, retired ones, backlog, bound slots) and every request was
 * answered.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http, shmLeftovers, startTestServer, tempRepository, waitFor, type TestServer } from './helpers/server.js';

const MODEL = `
import { InferenceRequest, InferenceResponse, Tensor } from 'stubhost';
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
export default class Accumulate {
  async execute(requests: InferenceRequest[]) {
    await sleep(Math.max(0, ...requests.map((r) => Number(r.parameters.delay_ms ?? 0))));
    return requests.map((r) => {
      const x = (r.input('INPUT')!.data as Int32Array)[0]!;
      const start = (r.input('START')!.data as Int32Array)[0]!;
      const state = (r.input('STATE_IN')!.data as Int32Array)[0]!;
      const total = (start ? 0 : state) + x;
      return new InferenceResponse({ outputs: [new Tensor('OUTPUT', Int32Array.of(total), [1]), new Tensor('STATE_OUT', Int32Array.of(total), [1])] });
    });
  }
}`;

const CONFIG = `
name: "acc"
backend: "typescript"
max_batch_size: 0
input [ { name: "INPUT" data_type: TYPE_INT32 dims: [ 1 ] } ]
output [ { name: "OUTPUT" data_type: TYPE_INT32 dims: [ 1 ] } ]
sequence_batching {
  max_sequence_idle_microseconds: 300000
  control_input [ { name: "START" control [ { kind: CONTROL_SEQUENCE_START int32_false_true: [ 0, 1 ] } ] } ]
  state [ { input_name: "STATE_IN" output_name: "STATE_OUT" data_type: TYPE_INT32 dims: [ 1 ] } ]
}
instance_group [ { count: 1, kind: KIND_CPU } ]
`;

let server: TestServer;
let repo: ReturnType<typeof tempRepository>;

beforeAll(async () => {
  repo = tempRepository({ acc: { 'config.pbtxt': CONFIG, '1/model.ts': MODEL } });
  server = await startTestServer({ modelRepository: repo.root });
  expect([...server.failed]).toEqual([]);
}, 60_000);

afterAll(async () => {
  await server?.close();
  repo?.cleanup();
  expect(await waitFor(() => shmLeftovers().length === 0, 3000)).toBe(true);
});

async function send(value: number, params: Record<string, unknown>): Promise<{ status: number; out?: number }> {
  try {
    const res = await fetch(`${server.url}/v2/models/acc/infer`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, signal: AbortSignal.timeout(4000),
      body: JSON.stringify({ parameters: params, inputs: [{ name: 'INPUT', shape: [1], datatype: 'INT32', data: [value] }] }),
    });
    const json = await res.json() as any;
    return { status: res.status, out: json.outputs?.[0]?.data?.[0] };
  } catch {
    return { status: -1 }; // no answer within 4 s
  }
}

const batcher = (): any => (server.core.repository.get('acc') as any).scheduler;
const held = (): number[] => {
  const b = batcher();
  return [b.sequences.size, b.retired?.size ?? 0, b.backlog.length, [...b.bound.values()].reduce((a: number, n: number) => a + n, 0)];
};

describe('the sequence batcher leaves nothing behind', () => {
  it('after ended and abandoned sequences', async () => {
    for (let id = 1; id <= 5; id++) {
      expect((await send(1, { sequence_id: id, sequence_start: true })).status).toBe(200);
      expect((await send(2, { sequence_id: id, sequence_end: id % 2 === 0 })).status).toBe(200);
    }
    // 1, 3 and 5 were abandoned: released after 300 ms idle.
    expect(await waitFor(() => held().every((n) => n === 0), 3000)).toBe(true);
  });

  it('after a sequence is restarted by a new START while its earlier requests wait', async () => {
    const first = send(1, { sequence_id: 77, sequence_start: true, delay_ms: 200 });
    await new Promise((r) => setTimeout(r, 50));
    const waiting = [send(2, { sequence_id: 77 }), send(3, { sequence_id: 77 })];
    await new Promise((r) => setTimeout(r, 20));
    const restarted = send(10, { sequence_id: 77, sequence_start: true });
    await new Promise((r) => setTimeout(r, 20));
    const ended = send(5, { sequence_id: 77, sequence_end: true });
    const results = await Promise.all([first, ...waiting, restarted, ended]);
    // Every request is answered: the earlier ones still run (in order), then the new sequence.
    expect(results.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
    expect(results.map((r) => r.out)).toEqual([1, 3, 6, 10, 15]);
    expect(await waitFor(() => held().every((n) => n === 0), 3000)).toBe(true);
    // The model still serves new sequences.
    expect((await send(4, { sequence_id: 78, sequence_start: true, sequence_end: true })).out).toBe(4);
  }, 20_000);
});
