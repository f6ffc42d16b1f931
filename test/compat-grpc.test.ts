/**
 * Compatibility with Triton's gRPC wire behaviour, pinned with the messages tritonclient.grpc
 * sends (raw_input_contents, string versions, empty unregister requests, the standard health
 * service), asserting Triton's status codes and words. Each expectation names the Triton source it
 * follows. The HTTP twin is compat-http.test.ts.
 */
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { grpcClient, health, type TestGrpcClient } from './helpers/grpc.js';
import { startRepositoryServer, type RepositoryServer } from './helpers/server.js';
import { COMPAT_LOADED, TRITON_EXTENSIONS, compatRepository, int32Bytes, ones16, range16 } from './fixtures/compat/repository.js';

let server: RepositoryServer;
let client: TestGrpcClient;
let healthClient: any;

beforeAll(async () => {
  server = await startRepositoryServer(compatRepository(), {
    grpcPort: 0, modelControlMode: 'explicit', loadModels: COMPAT_LOADED, allowClientShm: true,
  });
  expect([...server.failed]).toEqual([]);
  client = grpcClient(server.ports.grpc!);
  healthClient = new health.Health(`127.0.0.1:${server.ports.grpc}`, grpc.credentials.createInsecure());
}, 60_000);

afterAll(async () => {
  client?.close();
  healthClient?.close();
  expect(await server?.stop(3000)).toEqual([]);
});

/** A ModelInferRequest as tritonclient.grpc's infer() builds it: raw contents, in input order. */
function simpleRequest(patch: Record<string, unknown> = {}, batch = 1): Record<string, unknown> {
  return {
    model_name: 'simple',
    inputs: [
      { name: 'INPUT0', datatype: 'INT32', shape: [batch, 16] },
      { name: 'INPUT1', datatype: 'INT32', shape: [batch, 16] },
    ],
    raw_input_contents: [int32Bytes(range16), int32Bytes(ones16)],
    ...patch,
  };
}

async function failure(method: string, req: object): Promise<[number, string]> {
  const err = await client.rpcError(method, req);
  return [err.code, err.details];
}

function check(service: string): Promise<{ code: number; status?: string }> {
  return new Promise((resolve) => {
    healthClient.Check({ service }, (err: grpc.ServiceError | null, res: { status: string }) => resolve(err ? { code: err.code } : { code: grpc.status.OK, status: res.status }));
  });
}

describe('the baseline tritonclient request', () => {
  it('simple answers as Triton does', async () => {
    const res = await client.rpc('ModelInfer', simpleRequest());
    expect(res.outputs.map((o: any) => [o.name, o.datatype, o.shape])).toEqual([['OUTPUT0', 'INT32', ['1', '16']], ['OUTPUT1', 'INT32', ['1', '16']]]);
    expect([...new Int32Array(new Uint8Array(res.raw_output_contents[0]).buffer)]).toEqual(range16.map((v) => v + 1));
  });
});

describe('CUDA shared memory without GPUs (src/grpc/grpc_server.cc, src/shared_memory_manager.cc)', () => {
  it('status lists no region; unregister, all or by name, succeeds; only register fails', async () => {
    expect(await client.rpc('CudaSharedMemoryStatus', {})).toEqual({ regions: {} });
    expect(await client.rpc('CudaSharedMemoryUnregister', {})).toEqual({});
    expect(await client.rpc('CudaSharedMemoryUnregister', { name: 'output0_data' })).toEqual({});
    expect(await failure('CudaSharedMemoryRegister', { name: 'output0_data', raw_handle: Buffer.alloc(64), device_id: 0, byte_size: 64 }))
      .toEqual([grpc.status.INVALID_ARGUMENT, "failed to register CUDA shared memory region: 'output0_data', GPUs not supported"]);
    expect(await failure('CudaSharedMemoryStatus', { name: 'output0_data' })).toEqual([grpc.status.NOT_FOUND, "Unable to find cuda shared memory region: 'output0_data'"]);
    expect(await client.rpc('SystemSharedMemoryUnregister', {})).toEqual({});
  });
});

describe('contents together with raw_input_contents (src/grpc/infer_handler.cc InferGRPCToInput)', () => {
  it('is refused input by input, naming the input and the model', async () => {
    const req = simpleRequest({
      inputs: [
        { name: 'INPUT0', datatype: 'INT32', shape: [1, 16], contents: { int_contents: range16 } },
        { name: 'INPUT1', datatype: 'INT32', shape: [1, 16] },
      ],
      raw_input_contents: [int32Bytes(ones16)],
    });
    expect(await failure('ModelInfer', req)).toEqual([grpc.status.INVALID_ARGUMENT, "contents field must not be specified when using raw_input_contents for 'INPUT0' for model 'simple'"]);
  });

  it('contents alone are served', async () => {
    const res = await client.rpc('ModelInfer', simpleRequest({
      inputs: [
        { name: 'INPUT0', datatype: 'INT32', shape: [1, 16], contents: { int_contents: range16 } },
        { name: 'INPUT1', datatype: 'INT32', shape: [1, 16], contents: { int_contents: ones16 } },
      ],
      raw_input_contents: [],
    }));
    expect([...new Int32Array(new Uint8Array(res.raw_output_contents[1]).buffer)]).toEqual(range16.map((v) => v - 1));
  });
});

describe('a model_version that is not an integer (src/common.cc GetModelVersionFromString)', () => {
  const words = "failed to get model version from specified version string 'wrong_specification' (details: stol), version should be an integral value > 0";

  it('INVALID_ARGUMENT before the model is looked up, on every RPC that takes a version', async () => {
    expect(await failure('ModelInfer', simpleRequest({ model_version: 'wrong_specification' }))).toEqual([grpc.status.INVALID_ARGUMENT, words]);
    expect(await failure('ModelInfer', simpleRequest({ model_name: 'no_such_model', model_version: 'wrong_specification' }))).toEqual([grpc.status.INVALID_ARGUMENT, words]);
    for (const method of ['ModelMetadata', 'ModelReady', 'ModelConfig', 'ModelStatistics']) {
      expect(await failure(method, { name: 'simple', version: 'wrong_specification' }), method).toEqual([grpc.status.INVALID_ARGUMENT, words]);
    }
  });

  it('over ModelStreamInfer the words come back in error_message', async () => {
    const got = await client.streamAll([simpleRequest({ id: 'v', model_version: 'wrong_specification' })]);
    expect(got.map((m) => m.error_message)).toEqual([words]);
  });
});

describe('gRPC health (src/grpc/grpc_server.cc RegisterHealthCheck)', () => {
  it('Check answers SERVING while the server is ready, whatever service is named', async () => {
    expect(await check('')).toEqual({ code: grpc.status.OK, status: 'SERVING' });
    expect(await check('inference.GRPCInferenceService')).toEqual({ code: grpc.status.OK, status: 'SERVING' });
    expect(await check('anything')).toEqual({ code: grpc.status.OK, status: 'SERVING' });
  });

  it('Watch is not served (Triton\'s health.proto has Check only)', async () => {
    const code = await new Promise<number>((resolve) => {
      const call = new grpc.Client(`127.0.0.1:${server.ports.grpc}`, grpc.credentials.createInsecure()).makeServerStreamRequest(
        '/grpc.health.v1.Health/Watch', () => Buffer.alloc(0), (b: Buffer) => b, {},
      );
      call.on('error', (err: grpc.ServiceError) => resolve(err.code));
      call.on('data', () => {});
    });
    expect(code).toBe(grpc.status.UNIMPLEMENTED);
  });
});

describe('a decoupled model on ModelInfer (src/grpc/infer_handler.cc ModelInferHandler::Execute)', () => {
  it('is refused with UNIMPLEMENTED before the model runs; the stream serves it', async () => {
    const stats = async () => (await client.rpc('ModelStatistics', { name: 'repeat_int32' })).model_stats[0];
    const before = await stats();
    const req = { model_name: 'repeat_int32', inputs: [{ name: 'IN', datatype: 'INT32', shape: [3] }], raw_input_contents: [int32Bytes([1, 2, 3])] };
    expect(await failure('ModelInfer', req)).toEqual([grpc.status.UNIMPLEMENTED, "ModelInfer RPC doesn't support models with decoupled transaction policy"]);
    const after = await stats();
    expect([after.execution_count, after.inference_stats.fail.count]).toEqual([before.execution_count, before.inference_stats.fail.count]);

    const got = await client.streamAll([{ ...req, id: 's' }]);
    expect(got.filter((m) => !m.error_message)).toHaveLength(3);
    // Triton's per-response statistics (map<string, InferResponseStatistics> response_stats).
    const rs = (await stats()).response_stats;
    for (const key of ['0', '1', '2']) {
      expect(Number(rs[key].success.count) - Number(before.response_stats[key]?.success.count ?? 0), key).toBe(1);
    }
  });
});

describe('shapes of replies', () => {
  it('server metadata lists Triton\'s extensions', async () => {
    expect((await client.rpc('ServerMetadata', {})).extensions).toEqual(TRITON_EXTENSIONS);
  });

  it('the repository index: a model never loaded is only its name', async () => {
    const { models } = await client.rpc('RepositoryIndex', {});
    expect(models.find((m: any) => m.name === 'never_loaded')).toEqual({ name: 'never_loaded', version: '', state: '', reason: '' });
    expect(models.find((m: any) => m.name === 'simple')).toEqual({ name: 'simple', version: '1', state: 'READY', reason: '' });
  });

  it('statistics: compute_input and compute_output are measured', async () => {
    await client.rpc('ModelInfer', simpleRequest());
    const s = (await client.rpc('ModelStatistics', { name: 'simple' })).model_stats[0];
    for (const phase of ['compute_input', 'compute_infer', 'compute_output']) expect(Number(s.inference_stats[phase].ns), phase).toBeGreaterThan(0);
  });
});

describe('wording of the common errors (core src/infer_request.cc, src/model.cc)', () => {
  const P = '[request id: <id_unknown>] ';
  const cases: [string, Record<string, unknown>, string][] = [
    ['batch size over max_batch_size', simpleRequest({
      inputs: [{ name: 'INPUT0', datatype: 'INT32', shape: [9, 16] }, { name: 'INPUT1', datatype: 'INT32', shape: [9, 16] }],
      raw_input_contents: [int32Bytes(new Array(144).fill(0)), int32Bytes(new Array(144).fill(0))],
    }), `${P}inference request batch-size must be <= 8 for 'simple'`],
    ['shape mismatch', simpleRequest({
      inputs: [{ name: 'INPUT0', datatype: 'INT32', shape: [1, 8] }, { name: 'INPUT1', datatype: 'INT32', shape: [1, 16] }],
    }), `${P}unexpected shape for input 'INPUT0' for model 'simple'. Expected [-1,16], got [1,8]. NOTE: Setting a non-zero max_batch_size in the model config requires a batch dimension to be prepended to each input shape. If you want to specify the full shape including the batch dim in your input dims config, try setting max_batch_size to zero. See the model configuration docs for more info on max_batch_size.`],
    ['missing input', simpleRequest({ inputs: [{ name: 'INPUT0', datatype: 'INT32', shape: [1, 16] }], raw_input_contents: [int32Bytes(range16)] }),
      `${P}expected 2 inputs but got 1 inputs for model 'simple'. Got input(s) ['INPUT0'], but missing required input(s) ['INPUT1']. Please provide all required input(s).`],
    ['unexpected input', simpleRequest({ inputs: [{ name: 'INPUT0', datatype: 'INT32', shape: [1, 16] }, { name: 'INPUT7', datatype: 'INT32', shape: [1, 16] }] }),
      "unexpected inference input 'INPUT7' for model 'simple'"],
    ['wrong datatype', simpleRequest({ inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [1, 16] }, { name: 'INPUT1', datatype: 'INT32', shape: [1, 16] }] }),
      `${P}inference input 'INPUT0' data-type is 'FP32', but model 'simple' expects 'INT32'`],
    ['byte size mismatch', simpleRequest({ id: 'r1', raw_input_contents: [int32Bytes(range16.slice(1)), int32Bytes(ones16)] }),
      "[request id: r1] input byte size mismatch for input 'INPUT0' for model 'simple'. Expected 64, got 60"],
    ['an input without data', simpleRequest({ raw_input_contents: [int32Bytes(range16)] }),
      "unable to find data for input tensor 'INPUT1' for model 'simple' in request."],
    ['unexpected output', simpleRequest({ outputs: [{ name: 'OUTPUT9' }] }), "unexpected inference output 'OUTPUT9' for model 'simple'"],
  ];
  it.each(cases)('%s: INVALID_ARGUMENT with Triton\'s message', async (_label, req, message) => {
    expect(await failure('ModelInfer', req)).toEqual([grpc.status.INVALID_ARGUMENT, message]);
  });

  it('sequence batcher flags over ModelStreamInfer, as tritonclient sends sequences', async () => {
    const seq = (id: string, value: number, params: Record<string, unknown>) => ({
      model_name: 'simple_sequence', id,
      inputs: [{ name: 'INPUT', datatype: 'INT32', shape: [1, 1] }], raw_input_contents: [int32Bytes([value])],
      parameters: params,
    });
    const got = await client.streamAll([
      seq('no-id', 1, {}),
      seq('no-start', 1, { sequence_id: { int64_param: '4343' } }),
    ]);
    const byId = Object.fromEntries(got.map((m) => [m.infer_response.id, m.error_message]));
    expect(byId).toEqual({
      'no-id': "inference request to model 'simple_sequence' must specify a non-zero or non-empty correlation ID",
      'no-start': "inference request for sequence 4343 to model 'simple_sequence' must specify the START flag on the first request of the sequence",
    });
  });
});
