/**
 * BLS on stateful models: a model starts, continues and ends sequences on another model with
 * `new InferenceRequest({ correlationId, sequenceStart, sequenceEnd })`, as a client does with
 * sequence_id / sequence_start / sequence_end. Two targets: `direct` with implicit state kept by
 * the host (one instance, one slot: ending a sequence must free it for the next), and `oldest`
 * whose model keeps an accumulator keyed by the sequence id and reads the flags itself.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http, startRepositoryServer, type RepositoryServer } from './helpers/server.js';

/** Sums its input per sequence from the implicit state; CORR echoes the CORRID control input. */
const DIRECT_MODEL = `
import { InferenceRequest, InferenceResponse, Tensor } from 'stubhost';
export default class Accumulate {
  execute(requests: InferenceRequest[]) {
    return requests.map((r) => {
      const x = (r.input('INPUT')!.data as Int32Array)[0]!;
      const start = (r.input('START')!.data as Int32Array)[0]!;
      const state = (r.input('STATE_IN')!.data as Int32Array)[0]!;
      const total = (start ? 0 : state) + x;
      return new InferenceResponse({ outputs: [
        new Tensor('OUTPUT', Int32Array.of(total), [1]),
        new Tensor('STATE_OUT', Int32Array.of(total), [1]),
        new Tensor('CORR', BigUint64Array.of((r.input('CORRID')!.data as BigUint64Array)[0]!), [1]),
      ] });
    });
  }
}`;

const DIRECT_CONFIG = `
name: "acc_direct"
backend: "typescript"
max_batch_size: 0
input [ { name: "INPUT" data_type: TYPE_INT32 dims: [ 1 ] } ]
output [ { name: "OUTPUT" data_type: TYPE_INT32 dims: [ 1 ] }, { name: "CORR" data_type: TYPE_UINT64 dims: [ 1 ] } ]
sequence_batching {
  direct { }
  # Long: a sequence that is not released at its END would hold the only slot for a minute.
  max_sequence_idle_microseconds: 60000000
  control_input [
    { name: "START" control [ { kind: CONTROL_SEQUENCE_START int32_false_true: [ 0, 1 ] } ] },
    { name: "CORRID" control [ { kind: CONTROL_SEQUENCE_CORRID data_type: TYPE_UINT64 } ] }
  ]
  state [ { input_name: "STATE_IN" output_name: "STATE_OUT" data_type: TYPE_INT32 dims: [ 1 ] } ]
}
instance_group [ { count: 1, kind: KIND_CPU } ]
`;

/**
 * Keeps a sum per sequence id in memory, driven by the request's own sequenceStart/sequenceEnd
 * (checked against the START/END control inputs); OPEN is how many sequences it holds.
 */
const OLDEST_MODEL = `
import { InferenceRequest, InferenceResponse, Tensor, ModelError } from 'stubhost';
export default class Accumulate {
  private sums = new Map<string, number>();
  execute(requests: InferenceRequest[]) {
    return requests.map((r) => {
      const key = String(r.correlationId);
      const start = (r.input('START')!.data as Int32Array)[0] === 1;
      const end = (r.input('END')!.data as Int32Array)[0] === 1;
      if (start !== r.sequenceStart || end !== r.sequenceEnd) {
        return new InferenceResponse({ error: new ModelError(\`flags \${r.sequenceStart}/\${r.sequenceEnd} but controls \${start}/\${end}\`) });
      }
      if (r.sequenceStart) this.sums.set(key, 0);
      if (!this.sums.has(key)) return new InferenceResponse({ error: new ModelError(\`sequence \${key} was never started\`) });
      const total = this.sums.get(key)! + (r.input('INPUT')!.data as Int32Array)[0]!;
      this.sums.set(key, total);
      if (r.sequenceEnd) this.sums.delete(key);
      return new InferenceResponse({ outputs: [
        new Tensor('OUTPUT', Int32Array.of(total), [1, 1]),
        new Tensor('OPEN', Int32Array.of(this.sums.size), [1, 1]),
      ] });
    });
  }
}`;

const OLDEST_CONFIG = `
name: "acc_oldest"
backend: "typescript"
max_batch_size: 4
input [ { name: "INPUT" data_type: TYPE_INT32 dims: [ 1 ] } ]
output [ { name: "OUTPUT" data_type: TYPE_INT32 dims: [ 1 ] }, { name: "OPEN" data_type: TYPE_INT32 dims: [ 1 ] } ]
sequence_batching {
  oldest { max_candidate_sequences: 8 }
  max_sequence_idle_microseconds: 60000000
  control_input [
    { name: "START" control [ { kind: CONTROL_SEQUENCE_START int32_false_true: [ 0, 1 ] } ] },
    { name: "END" control [ { kind: CONTROL_SEQUENCE_END int32_false_true: [ 0, 1 ] } ] }
  ]
}
instance_group [ { count: 1, kind: KIND_CPU } ]
`;

/**
 * Drives sequences on `target` with BLS. mode `whole`: one sequence over X from one execute
 * (start on the first call, end on the last); `step`: one call per client request, the flags
 * from the client's parameters `start` / `end`; `interleave`: two sequences at once, `corr` over
 * X and `corr2` over X reversed, their calls in flight together. The sequence id is an integer
 * unless `corr_type` is "string". Y: the target's OUTPUT per call; AUX: its other output; ERR.
 */
const DRIVER_MODEL = `
import { InferenceRequest, InferenceResponse, Tensor } from 'stubhost';
export default class SequenceDriver {
  async execute(requests: InferenceRequest[]) {
    return Promise.all(requests.map((r) => this.one(r)));
  }
  private async one(r: InferenceRequest) {
    const p = r.parameters;
    const target = String(p.target);
    const id = (v: unknown) => (p.corr_type === 'string' ? String(v) : BigInt(String(v)));
    const xs = Array.from(r.input('X')!.data as Int32Array);
    const aux = target === 'acc_direct' ? 'CORR' : 'OPEN';
    const call = (correlationId: string | bigint, x: number, sequenceStart: boolean, sequenceEnd: boolean) =>
      new InferenceRequest({
        modelName: target,
        inputs: [new Tensor('INPUT', Int32Array.of(x), target === 'acc_direct' ? [1] : [1, 1])],
        correlationId, sequenceStart, sequenceEnd,
      }).exec();
    const run = async (correlationId: string | bigint, values: number[]) => {
      const out = [];
      for (let i = 0; i < values.length; i++) out.push(await call(correlationId, values[i]!, i === 0, i === values.length - 1));
      return out;
    };
    let responses: InferenceResponse[];
    if (p.mode === 'step') responses = [await call(id(p.corr), xs[0]!, p.start === true, p.end === true)];
    else if (p.mode === 'interleave') {
      const [a, b] = await Promise.all([run(id(p.corr), xs), run(id(p.corr2), [...xs].reverse())]);
      responses = [...a, ...b];
    } else responses = await run(id(p.corr), xs);
    const y = responses.map((resp) => (resp.error ? -1 : Number(resp.output('OUTPUT')!.data[0])));
    const extra = responses.map((resp) => (resp.error ? '' : String(resp.output(aux)!.data[0])));
    const err = responses.map((resp) => (resp.error ? resp.error.message : ''));
    return new InferenceResponse({ outputs: [
      new Tensor('Y', Int32Array.from(y), [y.length]),
      new Tensor('AUX', extra, [extra.length]),
      new Tensor('ERR', err, [err.length]),
    ] });
  }
}`;

const DRIVER_CONFIG = `
name: "seq_driver"
backend: "typescript"
max_batch_size: 0
input [ { name: "X" data_type: TYPE_INT32 dims: [ -1 ] } ]
output [
  { name: "Y" data_type: TYPE_INT32 dims: [ -1 ] },
  { name: "AUX" data_type: TYPE_STRING dims: [ -1 ] },
  { name: "ERR" data_type: TYPE_STRING dims: [ -1 ] }
]
`;

let server: RepositoryServer;

beforeAll(async () => {
  server = await startRepositoryServer({
    acc_direct: { 'config.pbtxt': DIRECT_CONFIG, '1/model.ts': DIRECT_MODEL },
    acc_oldest: { 'config.pbtxt': OLDEST_CONFIG, '1/model.ts': OLDEST_MODEL },
    seq_driver: { 'config.pbtxt': DRIVER_CONFIG, '1/model.ts': DRIVER_MODEL },
  });
  expect([...server.failed]).toEqual([]);
}, 90_000);

afterAll(async () => {
  // Every stub gone with its regions and arenas.
  expect(await server?.stop(3000)).toEqual([]);
}, 30_000);

interface Driven { status: number; y: number[]; aux: string[]; err: string[]; body: string }

async function drive(x: number[], parameters: Record<string, unknown>): Promise<Driven> {
  const res = await http(`${server.url}/v2/models/seq_driver/infer`, 'POST', {
    inputs: [{ name: 'X', datatype: 'INT32', shape: [x.length], data: x }],
    parameters,
  });
  const out = (name: string) => res.json?.outputs?.find((o: { name: string }) => o.name === name)?.data;
  return { status: res.status, y: out('Y'), aux: out('AUX'), err: out('ERR'), body: res.text };
}

const noErrors = (n: number) => Array(n).fill('');

describe('direct, implicit state kept by the host', () => {
  it('starts, continues and ends a sequence from one execute', async () => {
    const r = await drive([5, 3, 2, 10], { target: 'acc_direct', corr: 101 });
    expect(r.status, r.body).toBe(200);
    expect(r.err).toEqual(noErrors(4));
    expect(r.y).toEqual([5, 8, 10, 20]);
    // The integer id reached the CORRID control input.
    expect(r.aux).toEqual(['101', '101', '101', '101']);
  }, 30_000);

  it('starts, continues and ends a sequence across client requests; the ended sequence is gone', async () => {
    const step = (x: number, flags: Record<string, boolean>) => drive([x], { target: 'acc_direct', corr: 202, mode: 'step', ...flags });
    expect((await step(7, { start: true })).y).toEqual([7]);
    expect((await step(4, {})).y).toEqual([11]);
    const last = await step(1, { end: true });
    expect(last.err).toEqual(['']);
    expect(last.y).toEqual([12]);
    const after = await step(1, {});
    expect(after.y).toEqual([-1]);
    expect(after.err[0]).toMatch(/sequence 202 .* must specify the START flag/);
  }, 30_000);

  it('ending frees the only slot: sequences one after another, each starting at once', async () => {
    // One instance, max_batch_size 0: one slot. Without the END releasing it, the second
    // sequence would wait for the first to go idle (a minute).
    for (const corr of [301, 302, 303]) {
      const r = await drive([corr - 300, 1], { target: 'acc_direct', corr });
      expect(r.err).toEqual(noErrors(2));
      expect(r.y).toEqual([corr - 300, corr - 299]);
    }
  }, 30_000);

  it('a START without an id is refused with the sequence batcher\'s error', async () => {
    const r = await drive([1], { target: 'acc_direct', corr: 0, mode: 'step', start: true });
    expect(r.status).toBe(200);
    expect(r.err[0]).toMatch(/correlation ID/);
  }, 30_000);
});

describe('oldest, an accumulator keyed by the sequence id in the model', () => {
  it('two sequences interleaved from one execute, each with its own sum; both end', async () => {
    const r = await drive([1, 2, 3, 4], { target: 'acc_oldest', corr: 11, corr2: 12, mode: 'interleave' });
    expect(r.status, r.body).toBe(200);
    expect(r.err).toEqual(noErrors(8));
    expect(r.y).toEqual([1, 3, 6, 10, 4, 7, 9, 10]);
    // The model saw both ENDs (sequenceEnd and its END control agreed): it holds nothing now.
    expect(await drive([5], { target: 'acc_oldest', corr: 13 }).then((d) => d.aux)).toEqual(['0']);
  }, 30_000);

  it('string sequence ids, interleaved across client requests', async () => {
    const step = (corr: string, x: number, flags: Record<string, boolean>) =>
      drive([x], { target: 'acc_oldest', corr, corr_type: 'string', mode: 'step', ...flags });
    expect((await step('alpha', 10, { start: true })).y).toEqual([10]);
    expect((await step('beta', 100, { start: true })).y).toEqual([100]);
    expect((await step('alpha', 5, {})).aux).toEqual(['2']);
    const beta = await step('beta', 1, { end: true });
    expect(beta.y).toEqual([101]);
    expect(beta.aux).toEqual(['1']);
    const alpha = await step('alpha', 1, { end: true });
    expect(alpha.err).toEqual(['']);
    expect(alpha.y).toEqual([16]);
    expect(alpha.aux).toEqual(['0']);
  }, 30_000);
});
