/**
 * The output contract, with real stubs: responses that break the config (wrong datatype, wrong
 * element count or shape, an undeclared output name, a wrong batch size, a bad response in a
 * decoupled stream) fail their request with a 500 naming the model, the output, what was
 * expected and what was found, and the place in model.ts that built the tensor; each kind is
 * logged once. A correct model is unaffected, -1 dims are wildcards, a canary keeps answering,
 * and nothing is left behind. An ensemble's outputs are checked against the ensemble's own config
 * (the step models keep theirs), naming the step that produced a bad one.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { childPids, http, startRepositoryServer, waitFor, type RepositoryServer } from './helpers/server.js';

const FIXTURES = path.resolve(import.meta.dirname, 'fixtures/models/contract');
const MODELS = ['canary', 'shapes', 'batched', 'streamer'];

function fixture(name: string): Record<string, string> {
  return {
    'config.pbtxt': fs.readFileSync(path.join(FIXTURES, name, 'config.pbtxt'), 'utf8'),
    '1/model.ts': fs.readFileSync(path.join(FIXTURES, name, '1/model.ts'), 'utf8'),
  };
}

/** The 1-based line of the fixture line carrying `marker`. */
function lineOf(model: string, marker: string): number {
  return fs.readFileSync(path.join(FIXTURES, model, '1/model.ts'), 'utf8').split('\n').findIndex((l) => l.includes(marker)) + 1;
}

/** An ensemble of one step: its tensors keep the step model's names. */
function ensemble(name: string, step: string, opts: { maxBatch?: number; input: string; outputs: string[] }): Record<string, string> {
  const outs = opts.outputs.map((o) => o.split(' ')).map(([n, t, dims]) => `{ name: "${n}" data_type: ${t} dims: ${dims} }`);
  const input = opts.input.split(' ');
  return {
    'config.pbtxt': `name: "${name}"\nplatform: "ensemble"\nmax_batch_size: ${opts.maxBatch ?? 0}
input [ { name: "${input[0]}" data_type: ${input[1]} dims: ${input[2]} } ]
output [ ${outs.join(', ')} ]
ensemble_scheduling { step [ { model_name: "${step}" model_version: -1 input_map { key: "${input[0]}" value: "${input[0]}" }
  ${opts.outputs.map((o) => `output_map { key: "${o.split(' ')[0]}" value: "${o.split(' ')[0]}" }`).join(' ')} } ] }
`,
  };
}

const ENSEMBLES = {
  ens_ok: ensemble('ens_ok', 'canary', { input: 'X TYPE_INT32 [1]', outputs: ['Y TYPE_INT32 [1]'] }),
  ens_dtype: ensemble('ens_dtype', 'canary', { input: 'X TYPE_INT32 [1]', outputs: ['Y TYPE_FP32 [1]'] }),
  ens_shape: ensemble('ens_shape', 'shapes', { input: 'MODE TYPE_STRING [1]', outputs: ['OUT TYPE_INT32 [-1]', 'ANY TYPE_FP32 [2,2]'] }),
  ens_batch: ensemble('ens_batch', 'shapes', { maxBatch: 4, input: 'MODE TYPE_STRING [1]', outputs: ['ANY TYPE_FP32 [-1]'] }),
};

let server: RepositoryServer;
const shapes = (mode: string) => http(`${server.url}/v2/models/shapes/infer`, 'POST', { inputs: [{ name: 'MODE', datatype: 'BYTES', shape: [1], data: [mode] }] });
const contractLogs = (): any[] => server.logs.map((l) => JSON.parse(l)).filter((l) => String(l.msg).startsWith('output contract:'));

async function expectCanary(): Promise<void> {
  const r = await http(`${server.url}/v2/models/canary/infer`, 'POST', { inputs: [{ name: 'X', datatype: 'INT32', shape: [1], data: [41] }] });
  expect([r.status, r.json?.outputs?.[0]?.data]).toEqual([200, [42]]);
}

beforeAll(async () => {
  server = await startRepositoryServer({ ...Object.fromEntries(MODELS.map((m) => [m, fixture(m)])), ...ENSEMBLES });
  expect([...server.failed]).toEqual([]);
}, 60_000);

afterAll(async () => {
  if (!server) return;
  expect(await server.stop(2000)).toEqual([]);
  expect(await waitFor(() => childPids().length === 0, 5000)).toBe(true);
}, 30_000);

describe('output contract', () => {
  it('a correct response is unaffected; -1 dims take any size', async () => {
    const ok = await shapes('ok');
    expect(ok.status).toBe(200);
    expect(ok.json.outputs.map((o: any) => [o.name, o.datatype, o.shape])).toEqual([['OUT', 'INT32', [4]], ['ANY', 'FP32', [3, 2]]]);
    const wildcard = await shapes('wildcard');
    // [2, 3] breaks dims [-1, 2]: the fixed dim is checked.
    expect(wildcard.status).toBe(500);
    expect(wildcard.json.error).toContain("output 'ANY' breaks the model's config: expected shape [-1, 2] (dims [-1, 2]), found [2, 3]");
  });

  it('a wrong datatype: 500 naming model, output, expected and found, and the line in model.ts', async () => {
    const r = await shapes('dtype');
    expect(r.status).toBe(500);
    const line = lineOf('shapes', 'DTYPE_LINE');
    expect(r.json.error).toMatch(new RegExp(
      `^model 'shapes' version 1: output 'OUT' breaks the model's config: expected datatype INT32, found FP32; returned by the Tensor built at 1/model\\.ts:${line}:\\d+ `,
    ));
    expect(r.json.error).toMatch(/1\/model\.ts:\d+:\d+ \(fix the output or the config's output \[\.\.\.\]\)$/);
    await expectCanary();
  });

  it('too few elements for the declared dims: 500 with expected and found shapes', async () => {
    const r = await shapes('count');
    expect(r.status).toBe(500);
    expect(r.json.error).toContain("model 'shapes' version 1: output 'OUT' breaks the model's config: expected shape [4] (dims [4]), found [3]");
    expect(r.json.error).toContain(`1/model.ts:${lineOf('shapes', 'COUNT_LINE')}:`);
    // A plain object whose data does not fill its shape is refused in the stub, by name.
    const plain = await shapes('plain');
    expect(plain.status).toBe(500);
    expect(plain.json.error).toContain("output 'OUT' has shape [4], which needs 4 elements, but its data has 3");
    await expectCanary();
  });

  it('an output name the config does not declare: 500 listing the declared ones', async () => {
    const r = await shapes('undeclared');
    expect(r.status).toBe(500);
    expect(r.json.error).toContain("output 'EXTRA' breaks the model's config: the config declares no output 'EXTRA' (expected one of 'OUT', 'ANY', found 'EXTRA')");
    expect(r.json.error).toContain(`1/model.ts:${lineOf('shapes', 'EXTRA_LINE')}:`);
    await expectCanary();
  });

  it('each kind of violation is logged once per model, with the message', async () => {
    const before = contractLogs().length;
    for (let i = 0; i < 3; i++) expect((await shapes('dtype')).status).toBe(500);
    expect(contractLogs().length).toBe(before);
    const kinds = contractLogs().map((l) => `${l.violation}:${l.output}`);
    expect(kinds.filter((k) => k === 'datatype:OUT')).toHaveLength(1);
    expect(kinds).toEqual(expect.arrayContaining(['datatype:OUT', 'shape:OUT', 'undeclared output:EXTRA']));
    expect(contractLogs().every((l) => l.level === 'error' && l.model === 'shapes')).toBe(true);
    // The model still serves correct responses.
    expect((await shapes('ok')).status).toBe(200);
  });

  it('the batch dimension: an output must carry as many rows as the request', async () => {
    const x = { name: 'X', datatype: 'FP32', shape: [3, 2], data: [1, 2, 3, 4, 5, 6] };
    const ok = await http(`${server.url}/v2/models/batched/infer`, 'POST', { inputs: [x] });
    expect([ok.status, ok.json.outputs[0].shape]).toEqual([200, [3, 2]]);
    const bad = await http(`${server.url}/v2/models/batched/infer`, 'POST', { inputs: [x], parameters: { drop_row: true } });
    expect(bad.status).toBe(500);
    expect(bad.json.error).toContain("model 'batched' version 1: output 'Y' breaks the model's config: expected shape [3, 2]: the request's batch size is 3, found [2, 2] (batch 2)");
    await expectCanary();
  });

  it('a decoupled stream: the response that breaks the contract fails the stream', async () => {
    const request = {
      id: 's', modelName: 'streamer', inputs: [{ name: 'N', datatype: 'INT32' as const, shape: [1], data: Int32Array.of(3) }],
      parameters: {}, priority: 0, timeoutUs: 0,
    };
    const got: number[] = [];
    let error: Error | undefined;
    try {
      for await (const r of server.core.inferStream(request)) got.push(Number((r.outputs[0]!.data as Int32Array)[0]));
    } catch (err) {
      error = err as Error;
    }
    expect(got).toEqual([0]);
    expect(error?.message).toContain("model 'streamer' version 1: output 'OUT' breaks the model's config: expected datatype INT32, found FP64");
    expect(error?.message).toContain(`1/model.ts:${lineOf('streamer', 'STREAM_LINE')}:`);
    // One response over HTTP (/generate: /infer refuses decoupled models, as Triton's): fine when it conforms.
    const one = await http(`${server.url}/v2/models/streamer/generate`, 'POST', { N: [1] });
    expect(one.status, one.text).toBe(200);
    expect(one.json.OUT).toEqual(0); // generate answers a one-element tensor as its value
    await expectCanary();
  });

  describe('an ensemble, against its own config', () => {
    const infer = (model: string, inputs: unknown[]) => http(`${server.url}/v2/models/${model}/infer`, 'POST', { inputs });
    const mode = (shape: number[]) => ({ name: 'MODE', datatype: 'BYTES', shape, data: Array(shape.reduce((a, b) => a * b, 1)).fill('ok') });

    it('outputs that match it pass', async () => {
      const r = await infer('ens_ok', [{ name: 'X', datatype: 'INT32', shape: [1], data: [41] }]);
      expect([r.status, r.json?.outputs?.[0]?.data]).toEqual([200, [42]]);
    });

    it('a datatype the ensemble does not declare: 500 naming the ensemble, the output, expected, found and the step', async () => {
      const r = await infer('ens_dtype', [{ name: 'X', datatype: 'INT32', shape: [1], data: [41] }]);
      expect(r.status).toBe(500);
      expect(r.json.error).toBe("ensemble 'ens_dtype' version 1: output 'Y' breaks the model's config: expected datatype FP32, found INT32; returned by step 0 ('canary') output 'Y' (fix the output or the config's output [...])");
      expect(contractLogs().some((l) => l.model === 'ens_dtype' && l.violation === 'datatype' && l.output === 'Y')).toBe(true);
      await expectCanary();
    });

    it('shapes: -1 takes any size, a fixed dim is checked', async () => {
      const r = await infer('ens_shape', [mode([1])]);
      expect(r.status).toBe(500);
      // OUT [4] passes dims [-1]; ANY [3, 2] breaks dims [2, 2].
      expect(r.json.error).toContain("ensemble 'ens_shape' version 1: output 'ANY' breaks the model's config: expected shape [2, 2] (dims [2, 2]), found [3, 2]; returned by step 0 ('shapes') output 'ANY'");
    });

    it('the batch dimension: as many rows as the request', async () => {
      const ok = await infer('ens_batch', [mode([3, 1])]);
      expect([ok.status, ok.json?.outputs?.[0]?.shape]).toEqual([200, [3, 2]]);
      const bad = await infer('ens_batch', [mode([2, 1])]);
      expect(bad.status).toBe(500);
      expect(bad.json.error).toContain("ensemble 'ens_batch' version 1: output 'ANY' breaks the model's config: expected shape [2, -1]: the request's batch size is 2, found [3, 2] (batch 3)");
      await expectCanary();
    });
  });
});
