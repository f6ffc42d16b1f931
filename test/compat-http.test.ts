/**
 * Compatibility with Triton's HTTP wire behaviour, pinned with the requests tritonclient.http and
 * Triton's example clients send (binary tensors after an Inference-Header-Content-Length JSON
 * header, empty POST bodies for unregister), asserting Triton's status codes and words. Each
 * expectation names the Triton source it follows. The gRPC twin is compat-grpc.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http, startRepositoryServer, type RepositoryServer } from './helpers/server.js';
import { COMPAT_LOADED, TRITON_EXTENSIONS, compatRepository, int32Bytes, ones16, range16 } from './fixtures/compat/repository.js';

let server: RepositoryServer;

beforeAll(async () => {
  server = await startRepositoryServer(compatRepository(), {
    modelControlMode: 'explicit', loadModels: COMPAT_LOADED, allowClientShm: true,
  });
  expect([...server.failed]).toEqual([]);
}, 60_000);

afterAll(async () => {
  expect(await server?.stop(3000)).toEqual([]);
});

interface Reply { status: number; json: any }

/** A request as tritonclient.http's infer() sends it with binary_data=True. */
async function binaryInfer(model: string, inputs: { name: string; shape: number[]; datatype: string; bytes: Buffer }[], opts: {
  version?: string; id?: string; parameters?: Record<string, unknown>; outputs?: string[];
} = {}): Promise<Reply> {
  const header: Record<string, unknown> = {
    inputs: inputs.map((t) => ({ name: t.name, shape: t.shape, datatype: t.datatype, parameters: { binary_data_size: t.bytes.length } })),
  };
  if (opts.id !== undefined) header.id = opts.id;
  if (opts.parameters) header.parameters = opts.parameters;
  if (opts.outputs) header.outputs = opts.outputs.map((name) => ({ name, parameters: { binary_data: false } }));
  const json = Buffer.from(JSON.stringify(header));
  const path = opts.version === undefined ? `/v2/models/${model}/infer` : `/v2/models/${model}/versions/${opts.version}/infer`;
  const res = await fetch(`${server.url}${path}`, {
    method: 'POST',
    headers: { 'Inference-Header-Content-Length': String(json.length), 'Content-Type': 'application/octet-stream' },
    body: Buffer.concat([json, ...inputs.map((t) => t.bytes)]),
  });
  const length = Number(res.headers.get('inference-header-content-length') ?? -1);
  const body = Buffer.from(await res.arrayBuffer());
  return { status: res.status, json: JSON.parse((length >= 0 ? body.subarray(0, length) : body).toString() || 'null') };
}

const simpleInputs = (a = range16, b = ones16, batch = 1) => [
  { name: 'INPUT0', shape: [batch, 16], datatype: 'INT32', bytes: int32Bytes(a) },
  { name: 'INPUT1', shape: [batch, 16], datatype: 'INT32', bytes: int32Bytes(b) },
];

const post = (path: string, body?: unknown) => http(`${server.url}${path}`, 'POST', body);
const get = (path: string) => http(`${server.url}${path}`);

describe('the baseline tritonclient request', () => {
  it('simple answers as Triton does', async () => {
    const r = await binaryInfer('simple', simpleInputs(), { outputs: ['OUTPUT0'] });
    expect(r.status).toBe(200);
    expect(r.json.outputs).toEqual([{ name: 'OUTPUT0', datatype: 'INT32', shape: [1, 16], data: range16.map((v) => v + 1) }]);
  });
});

describe('CUDA shared memory without GPUs (src/http_server.cc HandleCudaSharedMemory, src/shared_memory_manager.cc)', () => {
  it('status is an empty list; unregister, all or by name, succeeds; only register fails', async () => {
    expect(await get('/v2/cudasharedmemory/status')).toMatchObject({ status: 200, json: [] });
    // tritonclient's unregister_cuda_shared_memory() posts an empty body.
    expect((await post('/v2/cudasharedmemory/unregister')).status).toBe(200);
    expect((await post('/v2/cudasharedmemory/region/output0_data/unregister')).status).toBe(200);
    const reg = await post('/v2/cudasharedmemory/region/output0_data/register', { raw_handle: { b64: 'AAAA' }, device_id: 0, byte_size: 64 });
    expect([reg.status, reg.json]).toEqual([400, { error: "failed to register CUDA shared memory region: 'output0_data', GPUs not supported" }]);
    const one = await get('/v2/cudasharedmemory/region/output0_data/status');
    expect([one.status, one.json]).toEqual([404, { error: "Unable to find cuda shared memory region: 'output0_data'" }]);
    // The system shared-memory twin of the cleanup examples do first.
    expect((await post('/v2/systemsharedmemory/unregister')).status).toBe(200);
    expect(await get('/v2/systemsharedmemory/status')).toMatchObject({ status: 200, json: [] });
  });
});

describe('a model_version that is not an integer (src/common.cc GetModelVersionFromString)', () => {
  const words = (v: string) => `failed to get model version from specified version string '${v}' (details: stol), version should be an integral value > 0`;

  it('infer: 400 with Triton\'s words, before the model is looked up', async () => {
    for (const model of ['simple', 'no_such_model']) {
      const r = await binaryInfer(model, simpleInputs(), { version: 'wrong_specification' });
      expect([r.status, r.json], model).toEqual([400, { error: words('wrong_specification') }]);
    }
  });

  it('metadata, ready, config and statistics read the version the same way', async () => {
    for (const suffix of ['', '/ready', '/config', '/stats']) {
      const r = await get(`/v2/models/simple/versions/wrong_specification${suffix}`);
      expect([r.status, r.json], suffix).toEqual([400, { error: words('wrong_specification') }]);
    }
    const negative = await get('/v2/models/simple/versions/-1');
    expect([negative.status, negative.json]).toEqual([400, { error: "invalid model version specified '-1' , version should be an integral value > 0" }]);
    // std::stol reads the digits up to the first non-digit.
    expect((await binaryInfer('simple', simpleInputs(), { version: '1abc' })).json.model_version).toBe('1');
  });
});

describe('a decoupled model on the unary endpoint (src/http_server.cc CheckTransactionPolicy)', () => {
  const stats = async () => (await get('/v2/models/repeat_int32/stats')).json.model_stats[0];

  it('/infer is refused with 501 before the model runs', async () => {
    const before = await stats();
    const r = await binaryInfer('repeat_int32', [{ name: 'IN', shape: [3], datatype: 'INT32', bytes: int32Bytes([1, 2, 3]) }]);
    expect([r.status, r.json]).toEqual([501, { error: "HTTP end point doesn't support models with decoupled transaction policy" }]);
    const after = await stats();
    expect([after.execution_count, after.inference_stats.fail.count]).toEqual([before.execution_count, before.inference_stats.fail.count]);
  });

  it('non-streaming generate: the one response, or Triton\'s error with status 200', async () => {
    const one = await post('/v2/models/repeat_int32/generate', { IN: [5] });
    expect([one.status, one.json.OUT]).toEqual([200, 5]);
    const several = await post('/v2/models/repeat_int32/generate', { IN: [1, 2] });
    expect([several.status, several.json]).toEqual([200, {
      error: 'generate expects model to produce exactly 1 response, use generate stream for model that generates various number of responses',
    }]);
  });
});

describe('shapes of replies', () => {
  it('server metadata lists Triton\'s extensions (core src/server.cc)', async () => {
    expect((await get('/v2')).json.extensions).toEqual(TRITON_EXTENSIONS);
  });

  it('the repository index leaves out what Triton leaves out (core src/tritonserver.cc)', async () => {
    const index = (await post('/v2/repository/index')).json as Record<string, string>[];
    expect(index.find((e) => e.name === 'never_loaded')).toEqual({ name: 'never_loaded' });
    expect(index.find((e) => e.name === 'simple')).toEqual({ name: 'simple', version: '1', state: 'READY' });
    expect((await post('/v2/repository/index', { ready: true })).json.map((e: { name: string }) => e.name).sort()).toEqual([...COMPAT_LOADED].sort());
  });

  it('statistics carry response_stats per response index, and measured compute_input / compute_output', async () => {
    expect((await binaryInfer('simple', simpleInputs())).status).toBe(200);
    const simple = (await get('/v2/models/simple/stats')).json.model_stats[0];
    // Triton's fields in Triton's order (core src/tritonserver.cc); stubhost adds stalled_executes after them.
    expect(Object.keys(simple)).toEqual(['name', 'version', 'last_inference', 'inference_count', 'execution_count', 'inference_stats', 'response_stats', 'batch_stats', 'memory_usage', 'stalled_executes']);
    expect(simple.response_stats).toEqual({});
    for (const phase of ['compute_input', 'compute_infer', 'compute_output']) {
      expect(simple.inference_stats[phase].count, phase).toBeGreaterThan(0);
      expect(simple.inference_stats[phase].ns, phase).toBeGreaterThan(0);
    }

    const before = (await get('/v2/models/repeat_int32/stats')).json.model_stats[0].response_stats;
    const res = await fetch(`${server.url}/v2/models/repeat_int32/generate_stream`, { method: 'POST', body: JSON.stringify({ IN: [7, 8, 9] }) });
    expect((await res.text()).match(/^data: /gm)).toHaveLength(3);
    const after = (await get('/v2/models/repeat_int32/stats')).json.model_stats[0].response_stats;
    const count = (s: any, key: string, field: string): number => s?.[key]?.[field]?.count ?? 0;
    for (const key of ['0', '1', '2']) {
      expect(count(after, key, 'success') - count(before, key, 'success'), key).toBe(1);
      expect(count(after, key, 'compute_output') - count(before, key, 'compute_output'), key).toBe(1);
      expect(Object.keys(after[key])).toEqual(['compute_infer', 'compute_output', 'success', 'fail', 'empty_response', 'cancel']);
    }
    // The final flag sent alone after the third response is Triton's empty response at index 3.
    expect(count(after, '3', 'empty_response') - count(before, '3', 'empty_response')).toBe(1);
  });
});

describe('wording of the common errors (core src/infer_request.cc, src/model.cc; src/http_server.cc)', () => {
  const P = '[request id: <id_unknown>] ';
  const cases: [string, () => Promise<Reply>, string][] = [
    ['batch size over max_batch_size', () => binaryInfer('simple', simpleInputs(new Array(16 * 9).fill(0), new Array(16 * 9).fill(0), 9)),
      `${P}inference request batch-size must be <= 8 for 'simple'`],
    ['shape mismatch', () => binaryInfer('simple', [
      { name: 'INPUT0', shape: [1, 8], datatype: 'INT32', bytes: int32Bytes(new Array(8).fill(0)) },
      { name: 'INPUT1', shape: [1, 16], datatype: 'INT32', bytes: int32Bytes(ones16) },
    ]), `${P}unexpected shape for input 'INPUT0' for model 'simple'. Expected [-1,16], got [1,8]. NOTE: Setting a non-zero max_batch_size in the model config requires a batch dimension to be prepended to each input shape. If you want to specify the full shape including the batch dim in your input dims config, try setting max_batch_size to zero. See the model configuration docs for more info on max_batch_size.`],
    ['missing input', () => binaryInfer('simple', simpleInputs().slice(0, 1)),
      `${P}expected 2 inputs but got 1 inputs for model 'simple'. Got input(s) ['INPUT0'], but missing required input(s) ['INPUT1']. Please provide all required input(s).`],
    ['unexpected input', () => binaryInfer('simple', [simpleInputs()[0]!, { ...simpleInputs()[1]!, name: 'INPUT7' }]),
      "unexpected inference input 'INPUT7' for model 'simple'"],
    ['one input too many', () => binaryInfer('simple', [...simpleInputs(), { ...simpleInputs()[1]!, name: 'INPUT7' }]),
      `${P}expected 2 inputs but got 3 inputs for model 'simple'. Got input(s) ['INPUT0','INPUT1','INPUT7'], but missing required input(s) ]. Please provide all required input(s).`],
    ['wrong datatype', () => binaryInfer('simple', [{ ...simpleInputs()[0]!, datatype: 'FP32' }, simpleInputs()[1]!]),
      `${P}inference input 'INPUT0' data-type is 'FP32', but model 'simple' expects 'INT32'`],
    ['byte size mismatch', () => binaryInfer('simple', [{ ...simpleInputs()[0]!, bytes: int32Bytes(new Array(15).fill(0)) }, simpleInputs()[1]!]),
      `${P}input byte size mismatch for input 'INPUT0' for model 'simple'. Expected 64, got 60`],
    ['the request id in the prefix', () => binaryInfer('simple', simpleInputs().slice(0, 1), { id: 'my-request' }),
      "[request id: my-request] expected 2 inputs but got 1 inputs for model 'simple'. Got input(s) ['INPUT0'], but missing required input(s) ['INPUT1']. Please provide all required input(s)."],
    ['unexpected output', () => binaryInfer('simple', simpleInputs(), { outputs: ['OUTPUT9'] }), "unexpected inference output 'OUTPUT9' for model 'simple'"],
  ];
  it.each(cases)('%s: 400 with Triton\'s message', async (_label, send, message) => {
    const r = await send();
    expect([r.status, r.json]).toEqual([400, { error: message }]);
  });

  const seq = (value: number, parameters: Record<string, unknown>, batch = 1) =>
    binaryInfer('simple_sequence', [{ name: 'INPUT', shape: [batch, 1], datatype: 'INT32', bytes: int32Bytes(new Array(batch).fill(value)) }], { parameters });

  it('sequence batcher flags (core src/sequence_batch_scheduler/)', async () => {
    expect(await seq(1, {})).toEqual({ status: 400, json: { error: "inference request to model 'simple_sequence' must specify a non-zero or non-empty correlation ID" } });
    expect(await seq(1, { sequence_id: 4242 })).toEqual({ status: 400, json: {
      error: "inference request for sequence 4242 to model 'simple_sequence' must specify the START flag on the first request of the sequence",
    } });
    expect(await seq(1, { sequence_id: 'corr-a' })).toEqual({ status: 400, json: {
      error: "inference request for sequence corr-a to model 'simple_sequence' must specify the START flag on the first request of the sequence",
    } });
    expect(await seq(1, { sequence_id: 7, sequence_start: true }, 2)).toEqual({ status: 400, json: {
      error: "inference request to model 'simple_sequence' must specify batch-size 1 due to requirements of sequence batcher",
    } });
    // A well-formed sequence is served; after its END the id is unknown again.
    expect((await seq(2, { sequence_id: 7, sequence_start: true })).json.outputs[0].data).toEqual([2]);
    expect((await seq(3, { sequence_id: 7, sequence_end: true })).json.outputs[0].data).toEqual([5]);
    expect((await seq(1, { sequence_id: 7 })).json.error).toMatch(/^inference request for sequence 7 to model 'simple_sequence' must specify the START flag/);
  });
});
