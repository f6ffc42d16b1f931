/**
 * What stubhost leaves out of Triton's ModelConfig is refused at load, naming the field and
 * saying "not supported by stubhost" — never loaded with the feature silently missing. Through the
 * repository (the index shows why) and through load requests over HTTP and gRPC (Triton's answer
 * for a config that does not validate: INTERNAL "failed to poll from model repository", the cause
 * in the log). Defaults, as Triton's config endpoint prints them, still load.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http, startRepositoryServer, type RepositoryServer } from './helpers/server.js';
import { grpcClient, type TestGrpcClient } from './helpers/grpc.js';
import { CANARY, IDENTITY_TS, expectCanary, identityConfig, stopAndCheckLeaks } from './helpers/compat.js';

const base = {
  name: 'target', backend: 'typescript', max_batch_size: 0,
  input: [{ name: 'IN', data_type: 'TYPE_FP32', dims: [-1] }],
  output: [{ name: 'OUT', data_type: 'TYPE_FP32', dims: [-1] }],
};
const seq = { control_input: [], state: [] };

/** [field path as reported, config additions]. */
const CASES: [string, Record<string, unknown>][] = [
  ['batch_input', { max_batch_size: 4, batch_input: [{ kind: 'BATCH_ELEMENT_COUNT', target_name: ['N'], data_type: 'TYPE_INT32', source_input: ['IN'] }] }],
  ['batch_output', { max_batch_size: 4, batch_output: [{ target_name: ['OUT'], kind: 'BATCH_SCATTER_WITH_INPUT_SHAPE', source_input: ['IN'] }] }],
  ['input[0].allow_ragged_batch', { input: [{ ...base.input[0], allow_ragged_batch: true }] }],
  ['sequence_batching.iterative_sequence', { sequence_batching: { ...seq, iterative_sequence: true } }],
  ['model_metrics', { model_metrics: { metric_control: [{ metric_identifier: { family: 'nv_inference_first_response_histogram_ms' }, histogram_options: { buckets: [1, 10] } }] } }],
  ['metric_tags', { metric_tags: { team: 'a' } }],
  ['runtime', { runtime: 'libtriton_custom.so' }],
  ['cc_model_filenames', { cc_model_filenames: { '7.5': 'model_t4.plan' } }],
  ['model_operations.op_library_filename', { model_operations: { op_library_filename: ['libcustom_ops.so'] } }],
  ['model_repository_agents', { model_repository_agents: { agents: [{ name: 'checksum', parameters: {} }] } }],
  ['output[0].is_shape_tensor', { output: [{ ...base.output[0], is_shape_tensor: true }] }],
  ['input[0].is_non_linear_format_io', { input: [{ ...base.input[0], is_non_linear_format_io: true }] }],
  ['instance_group[0].passive', { instance_group: [{ kind: 'KIND_CPU', count: 1, passive: true }] }],
  ['instance_group[0].secondary_devices', { instance_group: [{ kind: 'KIND_CPU', count: 1, secondary_devices: [{ kind: 'KIND_NVDLA', device_id: 0 }] }] }],
  ['instance_group[0].profile', { instance_group: [{ kind: 'KIND_CPU', count: 1, profile: ['0'] }] }],
  ['instance_group[0].host_policy', { instance_group: [{ kind: 'KIND_CPU', count: 1, host_policy: 'numa0' }] }],
  ['optimization.cuda', { optimization: { cuda: { graphs: true } } }],
  ['optimization.priority', { optimization: { priority: 'PRIORITY_MAX' } }],
  ['optimization.eager_batching', { optimization: { eager_batching: true } }],
  ['optimization.gather_kernel_buffer_threshold', { optimization: { gather_kernel_buffer_threshold: 4 } }],
  ['sequence_batching.state[0].use_growable_memory', {
    sequence_batching: { ...seq, state: [{ input_name: 'IN', output_name: 'OUT', data_type: 'TYPE_FP32', dims: [-1], use_growable_memory: true }] },
  }],
];

let server: RepositoryServer;
let grpc: TestGrpcClient;

beforeAll(async () => {
  server = await startRepositoryServer({
    canary: CANARY,
    target: { 'config.pbtxt': identityConfig('target'), '1/model.ts': IDENTITY_TS },
    ragged_on_disk: {
      'config.pbtxt': `${identityConfig('ragged_on_disk').replace('max_batch_size: 0', 'max_batch_size: 4').replace('dims: [ -1 ] }', 'dims: [ -1 ] allow_ragged_batch: true }')}
batch_input [ { kind: BATCH_ACCUMULATED_ELEMENT_COUNT target_name: "INDEX" data_type: TYPE_FP32 source_input: "IN" } ]`,
      '1/model.ts': IDENTITY_TS,
    },
  }, { grpcPort: 0, modelControlMode: 'explicit', loadModels: ['canary', 'ragged_on_disk'] });
  grpc = grpcClient(server.ports.grpc!);
}, 120_000);

afterAll(async () => {
  await stopAndCheckLeaks(server, grpc);
}, 60_000);

describe('refused at load, naming the field', () => {
  it('a model on disk: fails alone, the index says which fields and why', async () => {
    const index = (await http(`${server.url}/v2/repository/index`, 'POST', {})).json as { name: string; state: string; reason?: string }[];
    const e = index.find((m) => m.name === 'ragged_on_disk')!;
    expect(e.state).toBe('UNAVAILABLE');
    expect(e.reason).toMatch(/input\[0\]\.allow_ragged_batch: is not supported by stubhost \(ragged batching\); remove it/);
    expect(e.reason).toMatch(/batch_input: is not supported by stubhost \(ragged batching \(batch inputs\)\); remove it/);
    await expectCanary(server, grpc);
  });

  it.each(CASES)('%s (HTTP load with a config)', async (field, extra) => {
    const before = server.logs.length;
    const r = await http(`${server.url}/v2/repository/models/target/load`, 'POST', { parameters: { config: JSON.stringify({ ...base, ...extra }) } });
    expect(r.status).toBe(500);
    expect(r.json.error).toBe("failed to load 'target', failed to poll from model repository");
    const logged = server.logs.slice(before).join('\n');
    expect(logged).toContain(`${field}: is not supported by stubhost (`);
  });

  it('over gRPC: INTERNAL with the same words; defaults as the config endpoint prints them still load', async () => {
    const e = await grpc.rpcError('RepositoryModelLoad', {
      model_name: 'target', parameters: { config: { string_param: JSON.stringify({ ...base, sequence_batching: { ...seq, iterative_sequence: true } }) } },
    });
    expect(e.code).toBe(13);
    expect(e.details).toBe("failed to load 'target', failed to poll from model repository");

    const defaults = {
      ...base, batch_input: [], batch_output: [], runtime: '', metric_tags: {}, cc_model_filenames: {},
      input: [{ ...base.input[0], allow_ragged_batch: false, is_shape_tensor: false, is_non_linear_format_io: false }],
      instance_group: [{ kind: 'KIND_CPU', count: 1, passive: false, secondary_devices: [], profile: [], host_policy: '' }],
      optimization: { priority: 'PRIORITY_DEFAULT', eager_batching: false, gather_kernel_buffer_threshold: 0, input_pinned_memory: { enable: true } },
    };
    await grpc.rpc('RepositoryModelLoad', { model_name: 'target', parameters: { config: { string_param: JSON.stringify(defaults) } } });
    const r = await http(`${server.url}/v2/models/target/infer`, 'POST', { inputs: [{ name: 'IN', shape: [1], datatype: 'FP32', data: [7] }] });
    expect(r.status, r.text).toBe(200);
    // The config endpoint's output loads again unchanged.
    const config = (await http(`${server.url}/v2/models/target/config`)).json;
    const again = await http(`${server.url}/v2/repository/models/target/load`, 'POST', { parameters: { config: JSON.stringify(config) } });
    expect(again.status, again.text).toBe(200);
    await expectCanary(server, grpc);
  });
});
