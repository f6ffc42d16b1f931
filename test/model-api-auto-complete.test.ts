/**
 * The helpers on the config a static autoCompleteConfig receives, as Triton's python backend's
 * `pb_utils.ModelConfig` (add_input, add_output, set_max_batch_size, set_dynamic_batching,
 * set_model_transaction_policy): through real stubs, the completed config the server reports,
 * requests served with it, and Triton's refusals failing the load with its messages.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { childPids, http, startRepositoryServer, type RepositoryServer } from './helpers/server.js';

const HEAD = `
import { InferenceRequest, InferenceResponse, Tensor } from 'stubhost';
import type { AutoCompleteModelConfig } from 'stubhost';
`;
const IDENTITY_EXECUTE = `
  execute(requests: InferenceRequest[]) {
    return requests.map((r) => new InferenceResponse({ outputs: [new Tensor('Y', (r.input('X')!.data as Float32Array).slice(), r.input('X')!.shape)] }));
  }`;
const model = (body: string): string => `${HEAD}
export default class M {
  static autoCompleteConfig(config: AutoCompleteModelConfig) {
${body}
    return config;
  }
${IDENTITY_EXECUTE}
}
`;

const HELPERS = model(`
    config.setMaxBatchSize(8);
    config.setDynamicBatching();
    config.addInput({ name: 'X', data_type: 'TYPE_FP32', dims: [-1] });
    config.addInput({ name: 'MASK', data_type: 'TYPE_BOOL', dims: [-1], optional: true });
    config.addOutput({ name: 'Y', data_type: 'TYPE_FP32', dims: [-1] });
    if (config.asDict() !== config) throw new Error('asDict is the config itself');`);

/** The config lists X in full and no outputs: addInput accepts X as it is, addOutput adds Y. */
const PARTIAL_CONFIG = `name: "partial"
backend: "typescript"
max_batch_size: 4
input [ { name: "X" data_type: TYPE_FP32 dims: [ 2 ] } ]
`;
const PARTIAL = model(`
    config.addInput({ name: 'X', data_type: 'TYPE_FP32', dims: [2] });
    config.addOutput({ name: 'Y', data_type: 'TYPE_FP32', dims: [2] });
    config.setMaxBatchSize(4);`);

const DECOUPLED = `${HEAD}
export default class M {
  static autoCompleteConfig(config: AutoCompleteModelConfig) {
    config.addInput({ name: 'X', data_type: 'TYPE_FP32', dims: [1] });
    config.addOutput({ name: 'Y', data_type: 'TYPE_FP32', dims: [1] });
    config.setModelTransactionPolicy({ decoupled: true });
    return config;
  }
  execute(requests: InferenceRequest[]) {
    for (const r of requests) {
      const s = r.responseSender();
      s.send(new InferenceResponse({ outputs: [new Tensor('Y', (r.input('X')!.data as Float32Array).slice())] }), { final: true });
    }
  }
}
`;

const withConfig = (name: string, extra: string): string => `name: "${name}"
backend: "typescript"
${extra}
`;

let server: RepositoryServer;

beforeAll(async () => {
  server = await startRepositoryServer({
    helpers: { '1/model.ts': HELPERS },
    partial: { 'config.pbtxt': PARTIAL_CONFIG, '1/model.ts': PARTIAL },
    streamer: { '1/model.ts': DECOUPLED },
    // Triton's refusals, each failing its own load:
    batch_too_small: { 'config.pbtxt': withConfig('batch_too_small', 'max_batch_size: 16'), '1/model.ts': model(`    config.setMaxBatchSize(4);`) },
    dtype_clash: {
      'config.pbtxt': withConfig('dtype_clash', 'max_batch_size: 0\ninput [ { name: "X" data_type: TYPE_INT32 dims: [ -1 ] } ]\noutput [ { name: "Y" data_type: TYPE_FP32 dims: [ -1 ] } ]'),
      '1/model.ts': model(`    config.addInput({ name: 'X', data_type: 'TYPE_FP32', dims: [-1] });`),
    },
    dims_clash: {
      'config.pbtxt': withConfig('dims_clash', 'max_batch_size: 0\ninput [ { name: "X" data_type: TYPE_FP32 dims: [ 3 ] } ]\noutput [ { name: "Y" data_type: TYPE_FP32 dims: [ -1 ] } ]'),
      '1/model.ts': model(`    config.addInput({ name: 'X', data_type: 'TYPE_FP32', dims: [4] });`),
    },
    seq_dynamic: {
      'config.pbtxt': withConfig('seq_dynamic', 'max_batch_size: 1\nsequence_batching { }\ninput [ { name: "X" data_type: TYPE_FP32 dims: [ -1 ] } ]\noutput [ { name: "Y" data_type: TYPE_FP32 dims: [ -1 ] } ]'),
      '1/model.ts': model(`    config.setDynamicBatching();`),
    },
    extra_property: { '1/model.ts': model(`    config.addInput({ name: 'X', data_type: 'TYPE_FP32', dims: [-1], reshape: { shape: [] } } as never);`) },
    missing_dims: { '1/model.ts': model(`    config.addOutput({ name: 'Y', data_type: 'TYPE_FP32' } as never);`) },
    bad_dtype: { '1/model.ts': model(`    config.addInput({ name: 'X', data_type: 'FP32', dims: [-1] });`) },
    decoupled_clash: {
      'config.pbtxt': withConfig('decoupled_clash', 'max_batch_size: 0\nmodel_transaction_policy { decoupled: false }\ninput [ { name: "X" data_type: TYPE_FP32 dims: [ -1 ] } ]\noutput [ { name: "Y" data_type: TYPE_FP32 dims: [ -1 ] } ]'),
      '1/model.ts': model(`    config.setModelTransactionPolicy({ decoupled: true });`),
    },
  }, { strictReadiness: false });
}, 120_000);

afterAll(async () => {
  const left = await server?.stop(3000);
  expect(left).toEqual([]);
  expect(childPids()).toEqual([]);
});

const infer = (name: string, body: unknown) => http(`${server.url}/v2/models/${name}/infer`, 'POST', body);

describe('autoCompleteConfig helpers', () => {
  it('setMaxBatchSize, setDynamicBatching, addInput (optional too), addOutput complete a model with no config file', async () => {
    const c = await http(`${server.url}/v2/models/helpers/config`);
    expect(c.status).toBe(200);
    expect(c.json).toMatchObject({
      max_batch_size: 8,
      dynamic_batching: {},
      input: [{ name: 'X', data_type: 'TYPE_FP32', dims: [-1] }, { name: 'MASK', data_type: 'TYPE_BOOL', dims: [-1], optional: true }],
      output: [{ name: 'Y', data_type: 'TYPE_FP32', dims: [-1] }],
    });
    // The helpers themselves never reach the config.
    expect(Object.keys(c.json)).not.toContain('addInput');
    const r = await infer('helpers', { inputs: [{ name: 'X', datatype: 'FP32', shape: [2, 3], data: [1, 2, 3, 4, 5, 6] }] });
    expect(r.status, r.text).toBe(200);
    expect(r.json.outputs[0]).toMatchObject({ name: 'Y', shape: [2, 3], data: [1, 2, 3, 4, 5, 6] });
  });

  it('an input the config lists in full is accepted unchanged; a missing output is added', async () => {
    const c = await http(`${server.url}/v2/models/partial/config`);
    expect(c.json).toMatchObject({ max_batch_size: 4, input: [{ name: 'X', dims: [2] }], output: [{ name: 'Y', dims: [2] }] });
    expect([c.json.input.length, c.json.output.length]).toEqual([1, 1]);
    const r = await infer('partial', { inputs: [{ name: 'X', datatype: 'FP32', shape: [1, 2], data: [7, 8] }] });
    expect([r.status, r.json.outputs?.[0]?.data]).toEqual([200, [7, 8]]);
  });

  it('setModelTransactionPolicy({ decoupled: true }) makes the model decoupled', async () => {
    const c = await http(`${server.url}/v2/models/streamer/config`);
    expect(c.json.model_transaction_policy).toEqual({ decoupled: true });
    // Decoupled: refused on /infer as Triton does, served on /generate.
    const r = await infer('streamer', { inputs: [{ name: 'X', datatype: 'FP32', shape: [1], data: [5] }] });
    expect([r.status, r.json.error]).toEqual([501, "HTTP end point doesn't support models with decoupled transaction policy"]);
    const g = await http(`${server.url}/v2/models/streamer/generate`, 'POST', { X: [5] });
    expect(g.status, g.text).toBe(200);
    expect(Object.values(g.json).some((v) => JSON.stringify(v) === '[5]' || v === 5)).toBe(true);
  });

  it.each([
    ['batch_too_small', "configuration specified max_batch_size 16, but in auto-complete-config function for model 'batch_too_small' specified max_batch_size 4"],
    ['dtype_clash', "unable to load model 'dtype_clash', configuration expects datatype TYPE_INT32 for input 'X', model provides TYPE_FP32"],
    ['dims_clash', "model 'dims_clash', tensor 'X': the model expects dims [4] but the model configuration specifies dims [3]"],
    ['seq_dynamic', "Configuration specified scheduling_choice as 'sequence_batching', but auto-complete-config function for model 'seq_dynamic' tries to set scheduling_choice as 'dynamic_batching'"],
    ['extra_property', "input 'X' in auto-complete-config function for model 'extra_property' contains property other than 'name', 'data_type', 'dims' and 'optional'."],
    ['missing_dims', "output 'Y' in auto-complete-config function for model 'missing_dims' is missing 'dims' property."],
    ['bad_dtype', "input 'X' in auto-complete-config function for model 'bad_dtype': data_type must be a config type such as 'TYPE_FP32', got \"FP32\""],
    ['decoupled_clash', "trying to change decoupled property in auto-complete-config for model 'decoupled_clash', which is already set to 'False'."],
  ])('%s: the load fails with Triton\'s message', async (name, message) => {
    expect(server.failed.get(name)).toContain(message);
    const ready = await http(`${server.url}/v2/models/${name}/ready`);
    expect(ready.status).toBe(400);
    // The other models keep serving.
    const r = await infer('helpers', { inputs: [{ name: 'X', datatype: 'FP32', shape: [1, 1], data: [1] }] });
    expect(r.status).toBe(200);
  });
});
