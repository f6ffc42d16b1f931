/**
 * The gRPC front-end over a real socket: an in-test InferenceService (add_sub computed in-process,
 * a decoupled model yielding N responses, a model that waits for cancellation) behind GrpcServer
 * on port 0, and a @grpc/grpc-js client made from the same .proto files.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { EventEmitter } from 'node:events';
import { GrpcServer } from '../src/server/grpc/index.js';
import { CallSignal } from '../src/server/grpc/server.js';
import { grpcClient, inference, type TestGrpcClient } from './helpers/grpc.js';
import type { InferenceService, ModelIOContract, ModelStatistics, ResolvedModel } from '../src/core/service.js';
import type { InferRequest, InferResult } from '../src/core/types.js';
import type { CancelSignal } from '../src/core/cancel-signal.js';
import { StubhostError } from '../src/errors.js';

// ---- the service under the server ----

const CONTRACTS: Record<string, ModelIOContract> = {
  add_sub: {
    name: 'add_sub', version: '1', maxBatchSize: 0, decoupled: false,
    inputs: [{ name: 'INPUT0', datatype: 'FP32', dims: [4] }, { name: 'INPUT1', datatype: 'FP32', dims: [4] }],
    outputs: [{ name: 'OUTPUT0', datatype: 'FP32', dims: [4] }, { name: 'OUTPUT1', datatype: 'FP32', dims: [4] }],
  },
  add_batch: {
    name: 'add_batch', version: '1', maxBatchSize: 4, decoupled: false,
    inputs: [{ name: 'X', datatype: 'INT64', dims: [-1] }, { name: 'TAG', datatype: 'BYTES', dims: [1], optional: true }],
    outputs: [{ name: 'Y', datatype: 'INT64', dims: [-1] }],
  },
  repeat: {
    name: 'repeat', version: '1', maxBatchSize: 0, decoupled: true,
    inputs: [{ name: 'N', datatype: 'INT32', dims: [1] }],
    outputs: [{ name: 'OUT', datatype: 'INT32', dims: [1] }],
  },
  slow: {
    name: 'slow', version: '1', maxBatchSize: 0, decoupled: false,
    inputs: [{ name: 'X', datatype: 'UINT8', dims: [1] }],
    outputs: [{ name: 'X', datatype: 'UINT8', dims: [1] }],
  },
};

function contractOf(name: string): ModelIOContract {
  const c = CONTRACTS[name];
  if (!c) throw new StubhostError('STUBHOST_MODEL_NOT_FOUND', `model '${name}' is not found`);
  return c;
}

/** Resolves when the signal aborts. */
function aborted(signal: CancelSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (!signal || signal.aborted) return resolve();
    signal.addEventListener('abort', () => resolve(), { once: true });
  });
}

class TestService implements InferenceService {
  lastRequest: InferRequest | undefined;
  abortedIds: string[] = [];
  loads: { name: string; options?: unknown }[] = [];
  unloads: { name: string; options?: unknown }[] = [];
  log: Record<string, unknown> = { log_info: true, log_verbose_level: 0, log_format: 'default' };

  isLive() { return true; }
  isReady() { return true; }
  serverMetadata() { return { name: 'stubhost', version: '0.1.0', extensions: ['classification', 'sequence', 'model_repository'] }; }
  modelMetadata(name: string) {
    const c = contractOf(name);
    const meta = (s: { name: string; datatype: string; dims: number[] }) =>
      ({ name: s.name, datatype: s.datatype, shape: c.maxBatchSize > 0 ? [-1, ...s.dims] : s.dims });
    return { name, versions: ['1'], platform: 'typescript', inputs: c.inputs.map(meta), outputs: c.outputs.map(meta) };
  }
  modelReady(name: string) { return name in CONTRACTS; }
  modelConfig(name: string) {
    const c = contractOf(name);
    return {
      name, backend: 'typescript', max_batch_size: c.maxBatchSize,
      input: c.inputs.map((s) => ({ name: s.name, data_type: `TYPE_${s.datatype === 'BYTES' ? 'STRING' : s.datatype}`, dims: s.dims, optional: !!s.optional })),
      output: c.outputs.map((s) => ({ name: s.name, data_type: `TYPE_${s.datatype}`, dims: s.dims })),
      instance_group: [{ name: `${name}_0`, kind: 'KIND_CPU', count: 2 }],
      dynamic_batching: c.maxBatchSize > 0 ? { preferred_batch_size: [2, 4], max_queue_delay_microseconds: 100 } : undefined,
      model_transaction_policy: { decoupled: c.decoupled },
      parameters: { mode: { string_value: 'fast' } },
      version_policy: { latest: { num_versions: 1 } },
    };
  }
  resolve(name: string): ResolvedModel {
    return { contract: contractOf(name), infer: (r) => this.infer(r), inferStream: (r) => this.inferStream(r) };
  }
  modelStatistics(name?: string): ModelStatistics[] {
    const d = { count: 3, ns: 1500 };
    return [{
      name: name ?? 'add_sub', version: '1', last_inference: 1700000000000, inference_count: 3, execution_count: 2,
      inference_stats: { success: d, fail: { count: 0, ns: 0 }, queue: d, compute_input: d, compute_infer: d, compute_output: d, cache_hit: { count: 0, ns: 0 }, cache_miss: { count: 0, ns: 0 } },
      response_stats: { 0: { compute_infer: d, compute_output: d, success: d, fail: { count: 0, ns: 0 }, empty_response: { count: 0, ns: 0 }, cancel: { count: 0, ns: 0 } } },
      batch_stats: [{ batch_size: 1, compute_input: d, compute_infer: d, compute_output: d }],
      memory_usage: [],
    }];
  }

  async infer(request: InferRequest): Promise<InferResult> {
    let last: InferResult | undefined;
    for await (const r of this.inferStream(request)) last = r;
    if (!last) throw new StubhostError('STUBHOST_INTERNAL', 'no response');
    return last;
  }

  async *inferStream(request: InferRequest): AsyncIterable<InferResult> {
    this.lastRequest = request;
    const base = { modelName: request.modelName, modelVersion: '1', id: request.id };
    const input = (n: string) => request.inputs.find((t) => t.name === n)!;
    switch (request.modelName) {
      case 'add_sub': {
        const a = input('INPUT0').data as Float32Array, b = input('INPUT1').data as Float32Array;
        yield {
          ...base, parameters: { computed_by: 'test' },
          outputs: [
            { name: 'OUTPUT0', datatype: 'FP32', shape: [4], data: a.map((x, i) => x + b[i]!) },
            { name: 'OUTPUT1', datatype: 'FP32', shape: [4], data: a.map((x, i) => x - b[i]!), parameters: { note: 'diff' } },
          ],
        };
        return;
      }
      case 'add_batch': {
        const x = input('X');
        const y = (x.data as BigInt64Array).map((v) => v + 1n);
        yield { ...base, outputs: [{ name: 'Y', datatype: 'INT64', shape: x.shape, data: y }] };
        return;
      }
      case 'repeat': {
        const n = (input('N').data as Int32Array)[0]!;
        if (n < 0) throw new StubhostError('STUBHOST_MODEL_ERROR', 'repeat: N must not be negative');
        const forever = n === 1000;
        for (let i = 0; forever || i < n; i++) {
          if (request.signal?.aborted) { this.abortedIds.push(request.id); return; }
          if (i === 2 && n === 99) throw new StubhostError('STUBHOST_MODEL_ERROR', 'repeat: failed after 2 responses');
          yield { ...base, outputs: [{ name: 'OUT', datatype: 'INT32', shape: [1], data: Int32Array.of(i) }] };
          await new Promise((r) => setTimeout(r, forever ? 20 : 1));
        }
        return;
      }
      case 'slow': {
        await aborted(request.signal);
        this.abortedIds.push(request.id);
        throw new StubhostError('STUBHOST_CANCELLED', 'cancelled');
      }
    }
  }

  repositoryIndex(readyOnly?: boolean) {
    const all = Object.keys(CONTRACTS).map((name) => ({ name, version: '1', state: 'READY', reason: '' }));
    return readyOnly ? all : [...all, { name: 'broken', version: '1', state: 'UNAVAILABLE', reason: 'load failed' }];
  }
  async loadModel(name: string, options?: { config?: string; files?: Record<string, Uint8Array> }) {
    if (name === 'missing') throw new StubhostError('STUBHOST_MODEL_NOT_FOUND', `failed to load 'missing', no version is available`);
    this.loads.push({ name, options });
  }
  async unloadModel(name: string, options?: { unloadDependents?: boolean }) { this.unloads.push({ name, options }); }
  logSettings(update?: Record<string, unknown>) {
    if (update) Object.assign(this.log, update);
    return { ...this.log };
  }
}

// ---- client helpers ----

let service: TestService;
let server: GrpcServer;
let grpcc: TestGrpcClient;
let client: any;
let port: number;

const rpc = <T = any>(method: string, req: object, options: grpc.CallOptions = {}): Promise<T> => grpcc.rpc<T>(method, req, options);
const rpcError = (method: string, req: object): Promise<grpc.ServiceError> => grpcc.rpcError(method, req);

const f32 = (...v: number[]) => Buffer.from(Float32Array.from(v).buffer);
const i32 = (...v: number[]) => Buffer.from(Int32Array.from(v).buffer);
const i64 = (...v: bigint[]) => Buffer.from(BigInt64Array.from(v).buffer);
const bytesTensor = (...items: string[]) => {
  const parts = items.flatMap((s) => { const b = Buffer.from(s); const len = Buffer.alloc(4); len.writeUInt32LE(b.length); return [len, b]; });
  return Buffer.concat(parts);
};
const asF32 = (b: Buffer) => Array.from(new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)));
const asI32 = (b: Buffer) => Array.from(new Int32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)));

function addSubRequest(extra: Record<string, unknown> = {}) {
  return {
    model_name: 'add_sub', id: 'req-1',
    inputs: [
      { name: 'INPUT0', datatype: 'FP32', shape: [4] },
      { name: 'INPUT1', datatype: 'FP32', shape: [4] },
    ],
    raw_input_contents: [f32(1, 2, 3, 4), f32(10, 20, 30, 40)],
    ...extra,
  };
}

beforeAll(async () => {
  service = new TestService();
  server = new GrpcServer(service, { port: 0, host: '127.0.0.1', shutdownGraceMs: 200 });
  port = await server.start();
  expect(port).toBeGreaterThan(0);
  grpcc = grpcClient(port);
  client = grpcc.raw;
});

afterAll(async () => {
  client?.close();
  await server.close();
  await server.close(); // safe twice
});

describe('health, metadata, config, repository', () => {
  it('ServerLive / ServerReady / ModelReady', async () => {
    expect(await rpc('ServerLive', {})).toEqual({ live: true });
    expect(await rpc('ServerReady', {})).toEqual({ ready: true });
    expect(await rpc('ModelReady', { name: 'add_sub' })).toEqual({ ready: true });
    expect(await rpc('ModelReady', { name: 'nope', version: '3' })).toEqual({ ready: false });
  });

  it('ServerMetadata and ModelMetadata', async () => {
    expect(await rpc('ServerMetadata', {})).toEqual({ name: 'stubhost', version: '0.1.0', extensions: ['classification', 'sequence', 'model_repository'] });
    const m = await rpc('ModelMetadata', { name: 'add_batch' });
    expect(m.platform).toBe('typescript');
    expect(m.inputs[0]).toEqual({ name: 'X', datatype: 'INT64', shape: ['-1', '-1'] });
    const err = await rpcError('ModelMetadata', { name: 'nope' });
    expect(err.code).toBe(grpc.status.NOT_FOUND);
    expect(err.details).toContain("model 'nope' is not found");
  });

  it('ModelConfig returns Triton ModelConfig fields', async () => {
    const { config } = await rpc('ModelConfig', { name: 'add_batch' });
    expect(config.name).toBe('add_batch');
    expect(config.backend).toBe('typescript');
    expect(config.max_batch_size).toBe(4);
    expect(config.input[0]).toMatchObject({ name: 'X', data_type: 'TYPE_INT64', dims: ['-1'] });
    expect(config.input[1]).toMatchObject({ name: 'TAG', data_type: 'TYPE_STRING', optional: true });
    expect(config.instance_group[0]).toMatchObject({ kind: 'KIND_CPU', count: 2 });
    expect(config.scheduling_choice).toBe('dynamic_batching');
    expect(config.dynamic_batching).toMatchObject({ preferred_batch_size: [2, 4], max_queue_delay_microseconds: '100' });
    expect(config.parameters.mode).toEqual({ string_value: 'fast' });
    expect(config.version_policy.latest).toEqual({ num_versions: 1 });
    const dec = await rpc('ModelConfig', { name: 'repeat' });
    expect(dec.config.model_transaction_policy).toEqual({ decoupled: true });
  });

  it('ModelStatistics', async () => {
    const { model_stats } = await rpc('ModelStatistics', { name: 'add_sub' });
    expect(model_stats).toHaveLength(1);
    expect(model_stats[0]).toMatchObject({ name: 'add_sub', version: '1', inference_count: '3', execution_count: '2', last_inference: '1700000000000' });
    expect(model_stats[0].inference_stats.success).toEqual({ count: '3', ns: '1500' });
    expect(model_stats[0].batch_stats[0].batch_size).toBe('1');
    // Triton's map<string, InferResponseStatistics> response_stats = 9.
    expect(model_stats[0].response_stats['0'].success).toEqual({ count: '3', ns: '1500' });
    expect(model_stats[0].response_stats['0'].empty_response).toEqual({ count: '0', ns: '0' });
  });

  it('RepositoryIndex, RepositoryModelLoad, RepositoryModelUnload', async () => {
    const all = await rpc('RepositoryIndex', {});
    expect(all.models.map((m: any) => m.name)).toContain('broken');
    const ready = await rpc('RepositoryIndex', { ready: true });
    expect(ready.models.map((m: any) => m.name)).not.toContain('broken');

    await rpc('RepositoryModelLoad', { model_name: 'add_sub' });
    await rpc('RepositoryModelLoad', {
      model_name: 'add_sub',
      parameters: { config: { string_param: '{"max_batch_size":2}' }, 'file:1/model.ts': { bytes_param: Buffer.from('export {}') } },
    });
    expect(service.loads[0]).toEqual({ name: 'add_sub', options: undefined });
    const opts = service.loads[1]!.options as { config: string; files: Record<string, Uint8Array> };
    expect(opts.config).toBe('{"max_batch_size":2}');
    expect(Buffer.from(opts.files['1/model.ts']!).toString()).toBe('export {}');

    const fileOnly = await rpcError('RepositoryModelLoad', { model_name: 'x', parameters: { 'file:1/m.ts': { bytes_param: Buffer.from('') } } });
    expect(fileOnly.code).toBe(grpc.status.INVALID_ARGUMENT);
    const missing = await rpcError('RepositoryModelLoad', { model_name: 'missing' });
    expect(missing.code).toBe(grpc.status.NOT_FOUND);

    await rpc('RepositoryModelUnload', { model_name: 'add_sub', parameters: { unload_dependents: { bool_param: true } } });
    expect(service.unloads[0]).toEqual({ name: 'add_sub', options: { unloadDependents: true } });
  });

  it('LogSettings reads and updates', async () => {
    const cur = await rpc('LogSettings', {});
    expect(cur.settings.log_info).toMatchObject({ bool_param: true });
    const upd = await rpc('LogSettings', { settings: { log_verbose_level: { uint32_param: 2 }, log_format: { string_param: 'ISO8601' } } });
    expect(upd.settings.log_verbose_level).toMatchObject({ uint32_param: 2 });
    expect(upd.settings.log_format).toMatchObject({ string_param: 'ISO8601' });
    expect(service.log.log_verbose_level).toBe(2);
  });

  it('RPCs stubhost does not serve answer UNIMPLEMENTED', async () => {
    const err = await rpcError('TraceSetting', {});
    expect(err.code).toBe(grpc.status.UNIMPLEMENTED);
  });
});

describe('ModelInfer', () => {
  it('computes add_sub over raw_input_contents and returns raw_output_contents', async () => {
    const res = await rpc('ModelInfer', addSubRequest());
    expect(res).toMatchObject({ model_name: 'add_sub', model_version: '1', id: 'req-1' });
    expect(res.parameters.computed_by).toMatchObject({ string_param: 'test' });
    expect(res.outputs.map((o: any) => [o.name, o.datatype, o.shape])).toEqual([['OUTPUT0', 'FP32', ['4']], ['OUTPUT1', 'FP32', ['4']]]);
    expect(res.outputs[1].parameters.note).toMatchObject({ string_param: 'diff' });
    expect(asF32(res.raw_output_contents[0])).toEqual([11, 22, 33, 44]);
    expect(asF32(res.raw_output_contents[1])).toEqual([-9, -18, -27, -36]);
    expect(service.lastRequest!.inputs[0]!.data).toBeInstanceOf(Float32Array);
  });

  it('accepts typed contents and sends only the requested outputs', async () => {
    const res = await rpc('ModelInfer', {
      model_name: 'add_sub', model_version: '1',
      inputs: [
        { name: 'INPUT0', datatype: 'FP32', shape: [4], contents: { fp32_contents: [1, 1, 1, 1] } },
        { name: 'INPUT1', datatype: 'FP32', shape: [4], contents: { fp32_contents: [0.5, 1.5, 2.5, 3.5] } },
      ],
      outputs: [{ name: 'OUTPUT1' }],
    });
    expect(res.outputs.map((o: any) => o.name)).toEqual(['OUTPUT1']);
    expect(asF32(res.raw_output_contents[0])).toEqual([0.5, -0.5, -1.5, -2.5]);
    expect(service.lastRequest!.modelVersion).toBe(1);
    expect(service.lastRequest!.outputs).toEqual([{ name: 'OUTPUT1' }]);
  });

  it('maps priority, timeout, sequence parameters onto the request; keeps custom ones', async () => {
    await rpc('ModelInfer', addSubRequest({
      parameters: {
        priority: { int64_param: 2 }, timeout: { uint64_param: 5000 },
        sequence_id: { uint64_param: '18446744073709551615' }, sequence_start: { bool_param: true }, sequence_end: { bool_param: false },
        custom: { string_param: 'x' }, ratio: { double_param: 0.25 }, n: { int64_param: 7 },
      },
    }));
    const r = service.lastRequest!;
    expect(r.priority).toBe(2);
    expect(r.timeoutUs).toBe(5000);
    expect(r.correlationId).toBe(18446744073709551615n);
    expect(r.sequenceStart).toBe(true);
    expect(r.sequenceEnd).toBe(false);
    expect(r.parameters).toEqual({ custom: 'x', ratio: 0.25, n: 7 });

    await rpc('ModelInfer', addSubRequest({ parameters: { sequence_id: { string_param: 'session-a' } } }));
    expect(service.lastRequest!.correlationId).toBe('session-a');

    const bad = await rpcError('ModelInfer', addSubRequest({ parameters: { priority: { string_param: 'high' } } }));
    expect(bad.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(bad.details).toContain("'priority'");
  });

  it('batches with INT64 and BYTES inputs', async () => {
    const res = await rpc('ModelInfer', {
      model_name: 'add_batch',
      inputs: [{ name: 'X', datatype: 'INT64', shape: [2, 3] }, { name: 'TAG', datatype: 'BYTES', shape: [2, 1] }],
      raw_input_contents: [i64(1n, 2n, 3n, 4n, 5n, 2n ** 60n), bytesTensor('a', 'héllo')],
    });
    expect(res.outputs[0].shape).toEqual(['2', '3']);
    const out = res.raw_output_contents[0] as Buffer;
    expect(Array.from(new BigInt64Array(out.buffer.slice(out.byteOffset, out.byteOffset + out.byteLength)))).toEqual([2n, 3n, 4n, 5n, 6n, 2n ** 60n + 1n]);
    const tag = service.lastRequest!.inputs[1]!.data as Uint8Array[];
    expect(tag.map((b) => Buffer.from(b).toString())).toEqual(['a', 'héllo']);
  });

  const invalid: [string, Record<string, unknown>, string][] = [
    // Triton's words (core src/infer_request.cc, src/model.cc; src/grpc/infer_handler.cc; src/common.cc).
    ['unknown input', { inputs: [addSubRequest().inputs[0], { name: 'EXTRA', datatype: 'FP32', shape: [4] }], raw_input_contents: [f32(1, 2, 3, 4), f32(1, 2, 3, 4)] }, "unexpected inference input 'EXTRA' for model 'add_sub'"],
    ['one input too many', { inputs: [...addSubRequest().inputs, { name: 'EXTRA', datatype: 'FP32', shape: [4] }], raw_input_contents: [f32(1, 2, 3, 4), f32(1, 2, 3, 4), f32(1, 2, 3, 4)] }, "[request id: req-1] expected 2 inputs but got 3 inputs for model 'add_sub'. Got input(s) ['INPUT0','INPUT1','EXTRA'], but missing required input(s) ]. Please provide all required input(s)."],
    ['missing input', { inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [4] }], raw_input_contents: [f32(1, 2, 3, 4)] }, "[request id: req-1] expected 2 inputs but got 1 inputs for model 'add_sub'. Got input(s) ['INPUT0'], but missing required input(s) ['INPUT1']. Please provide all required input(s)."],
    ['duplicate input', { inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [4] }, { name: 'INPUT0', datatype: 'FP32', shape: [4] }] }, "[request id: req-1] input 'INPUT0' already exists in request"],
    ['wrong datatype', { inputs: [{ name: 'INPUT0', datatype: 'INT32', shape: [4] }, { name: 'INPUT1', datatype: 'FP32', shape: [4] }] }, "[request id: req-1] inference input 'INPUT0' data-type is 'INT32', but model 'add_sub' expects 'FP32'"],
    ['unknown datatype', { inputs: [{ name: 'INPUT0', datatype: 'FLOAT', shape: [4] }, { name: 'INPUT1', datatype: 'FP32', shape: [4] }] }, 'invalid datatype for input INPUT0'],
    ['wrong shape', { inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [1, 4] }, { name: 'INPUT1', datatype: 'FP32', shape: [4] }] }, "[request id: req-1] unexpected shape for input 'INPUT0' for model 'add_sub'. Expected [4], got [1,4]. "],
    ['byte size', { raw_input_contents: [f32(1, 2, 3), f32(1, 2, 3, 4)] }, "[request id: req-1] input byte size mismatch for input 'INPUT0' for model 'add_sub'. Expected 16, got 12"],
    ['raw count', { raw_input_contents: [f32(1, 2, 3, 4)] }, "unable to find data for input tensor 'INPUT1' for model 'add_sub' in request."],
    ['raw and contents', { inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [4], contents: { fp32_contents: [1, 2, 3, 4] } }, { name: 'INPUT1', datatype: 'FP32', shape: [4] }] }, "contents field must not be specified when using raw_input_contents for 'INPUT0' for model 'add_sub'"],
    ['no data', { inputs: addSubRequest().inputs, raw_input_contents: [] }, "unable to find data for input tensor 'INPUT0' for model 'add_sub' in request."],
    ['contents count', { inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [4], contents: { fp32_contents: [1] } }, { name: 'INPUT1', datatype: 'FP32', shape: [4], contents: { fp32_contents: [1, 2, 3, 4] } }], raw_input_contents: [] }, "[request id: req-1] input byte size mismatch for input 'INPUT0' for model 'add_sub'. Expected 16, got 4"],
    ['contents of another datatype', { inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [4], contents: { int_contents: [1, 2, 3, 4] } }, { name: 'INPUT1', datatype: 'FP32', shape: [4], contents: { fp32_contents: [1, 2, 3, 4] } }], raw_input_contents: [] }, "unexpected explicit tensor data for input tensor 'INPUT0' for model 'add_sub' of type 'INT32', expected datatype 'FP32'"],
    ['raw contents left over', { raw_input_contents: [f32(1, 2, 3, 4), f32(1, 2, 3, 4), f32(1, 2, 3, 4)] }, 'expected 2 raw_input_contents'],
    ['unknown output', { outputs: [{ name: 'OUTPUT9' }] }, "unexpected inference output 'OUTPUT9' for model 'add_sub'"],
    ['bad version', { model_version: 'latest' }, "failed to get model version from specified version string 'latest' (details: stol), version should be an integral value > 0"],
  ];
  it.each(invalid)('rejects %s with INVALID_ARGUMENT', async (_label, patch, message) => {
    const err = await rpcError('ModelInfer', addSubRequest(patch));
    expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err.details).toContain(message);
  });

  it('rejects batch and BYTES errors on a batching model', async () => {
    const tooBig = await rpcError('ModelInfer', { model_name: 'add_batch', inputs: [{ name: 'X', datatype: 'INT64', shape: [5, 1] }], raw_input_contents: [i64(1n, 2n, 3n, 4n, 5n)] });
    expect(tooBig.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(tooBig.details).toBe("[request id: <id_unknown>] inference request batch-size must be <= 4 for 'add_batch'");
    const noBatchDim = await rpcError('ModelInfer', { model_name: 'add_batch', inputs: [{ name: 'X', datatype: 'INT64', shape: [3] }], raw_input_contents: [i64(1n, 2n, 3n)] });
    expect(noBatchDim.details).toContain("[request id: <id_unknown>] unexpected shape for input 'X' for model 'add_batch'. Expected [-1,-1], got [3]. NOTE: Setting a non-zero max_batch_size");
    const mismatch = await rpcError('ModelInfer', {
      model_name: 'add_batch',
      inputs: [{ name: 'X', datatype: 'INT64', shape: [2, 1] }, { name: 'TAG', datatype: 'BYTES', shape: [1, 1] }],
      raw_input_contents: [i64(1n, 2n), bytesTensor('a')],
    });
    expect(mismatch.details).toBe("[request id: <id_unknown>] input 'TAG' batch size does not match other inputs for 'add_batch'");
    const badPrefix = bytesTensor('abc').subarray(0, 5);
    const bytesErr = await rpcError('ModelInfer', {
      model_name: 'add_batch',
      inputs: [{ name: 'X', datatype: 'INT64', shape: [1, 1] }, { name: 'TAG', datatype: 'BYTES', shape: [1, 1] }],
      raw_input_contents: [i64(1n), badPrefix],
    });
    expect(bytesErr.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(bytesErr.details).toContain("input 'TAG': bad BYTES raw_input_contents: element 0 claims 3 bytes");
  });

  it('carries tensors larger than grpc-js\'s 4 MiB default, and back', async () => {
    const big = new inference.GRPCInferenceService(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': -1, 'grpc.max_send_message_length': -1,
    });
    try {
      const n = 1_100_000; // 8.8 MB of INT64
      const x = new BigInt64Array(n).map((_, i) => BigInt(i));
      const res = await new Promise<any>((resolve, reject) => big.ModelInfer({
        model_name: 'add_batch', inputs: [{ name: 'X', datatype: 'INT64', shape: [1, n] }], raw_input_contents: [Buffer.from(x.buffer)],
      }, (err: Error | null, r: any) => (err ? reject(err) : resolve(r))));
      const out = res.raw_output_contents[0] as Buffer;
      expect(out.byteLength).toBe(n * 8);
      expect(out.readBigInt64LE((n - 1) * 8)).toBe(BigInt(n));
      expect((service.lastRequest!.inputs[0]!.data as BigInt64Array)[n - 1]).toBe(BigInt(n - 1));
    } finally {
      big.close();
    }
  });

  it('maps an unknown model to NOT_FOUND', async () => {
    const err = await rpcError('ModelInfer', addSubRequest({ model_name: 'ghost' }));
    expect(err.code).toBe(grpc.status.NOT_FOUND);
    expect(err.details).toBe("model 'ghost' is not found");
  });

  it('client cancellation aborts the request signal', async () => {
    const call = client.ModelInfer(
      { model_name: 'slow', id: 'cancel-me', inputs: [{ name: 'X', datatype: 'UINT8', shape: [1] }], raw_input_contents: [Buffer.of(1)] },
      (err: grpc.ServiceError | null) => { expect(err?.code).toBe(grpc.status.CANCELLED); },
    );
    await waitFor(() => service.lastRequest?.id === 'cancel-me');
    call.cancel();
    await waitFor(() => service.abortedIds.includes('cancel-me'));
  });

  it('a passed deadline aborts the request signal too', async () => {
    const err = await new Promise<grpc.ServiceError>((resolve) => {
      client.ModelInfer(
        { model_name: 'slow', id: 'deadline', inputs: [{ name: 'X', datatype: 'UINT8', shape: [1] }], raw_input_contents: [Buffer.of(1)] },
        new grpc.Metadata(), { deadline: Date.now() + 100 },
        (e: grpc.ServiceError) => resolve(e),
      );
    });
    expect(err.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    await waitFor(() => service.abortedIds.includes('deadline'));
  });
});

async function waitFor(cond: () => boolean, timeoutMs = 3000): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) throw new Error('waitFor timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

function repeatRequest(n: number, id: string, extra: Record<string, unknown> = {}) {
  return { model_name: 'repeat', id, inputs: [{ name: 'N', datatype: 'INT32', shape: [1] }], raw_input_contents: [i32(n)], ...extra };
}
const emptyFinal = { parameters: { triton_enable_empty_final_response: { bool_param: true } } };

/** Opens a stream, writes `requests`, half-closes, and collects every response until the server ends. */
function streamAll(requests: object[]): Promise<any[]> {
  return grpcc.streamAll(requests);
}

describe('ModelStreamInfer', () => {
  it('a non-decoupled model sends one response marked final', async () => {
    const got = await streamAll([addSubRequest({ id: 's1' })]);
    expect(got).toHaveLength(1);
    expect(got[0].error_message).toBe('');
    expect(got[0].infer_response.id).toBe('s1');
    expect(got[0].infer_response.parameters.triton_final_response).toMatchObject({ bool_param: true });
    expect(asF32(got[0].infer_response.raw_output_contents[0])).toEqual([11, 22, 33, 44]);
  });

  it('a decoupled model streams many responses, then the empty final one when asked', async () => {
    const got = await streamAll([repeatRequest(3, 'many', emptyFinal)]);
    expect(got).toHaveLength(4);
    expect(got.slice(0, 3).map((m) => asI32(m.infer_response.raw_output_contents[0])[0])).toEqual([0, 1, 2]);
    expect(got.slice(0, 3).every((m) => m.infer_response.parameters.triton_final_response.bool_param === false)).toBe(true);
    const last = got[3].infer_response;
    expect(last).toMatchObject({ id: 'many', model_name: 'repeat', outputs: [], raw_output_contents: [] });
    expect(last.parameters.triton_final_response).toMatchObject({ bool_param: true });
  });

  it('zero responses: only the empty final response, or nothing at all', async () => {
    const withFinal = await streamAll([repeatRequest(0, 'zero', emptyFinal)]);
    expect(withFinal).toHaveLength(1);
    expect(withFinal[0].infer_response.parameters.triton_final_response.bool_param).toBe(true);
    expect(await streamAll([repeatRequest(0, 'zero-silent')])).toEqual([]);
  });

  it('one response from a decoupled model', async () => {
    const got = await streamAll([repeatRequest(1, 'one')]);
    expect(got).toHaveLength(1);
    expect(asI32(got[0].infer_response.raw_output_contents[0])).toEqual([0]);
  });

  it('errors go in error_message and the stream keeps serving', async () => {
    const got = await streamAll([
      addSubRequest({ id: 'bad', raw_input_contents: [f32(1), f32(2)] }),
      repeatRequest(99, 'midway'),
      repeatRequest(2, 'after'),
    ]);
    const bad = got.find((m) => m.infer_response?.id === 'bad' && m.error_message);
    expect(bad.error_message).toBe("[request id: bad] input byte size mismatch for input 'INPUT0' for model 'add_sub'. Expected 16, got 4");
    const midway = got.filter((m) => m.infer_response?.id === 'midway');
    expect(midway).toHaveLength(3);
    expect(midway[2].error_message).toBe('repeat: failed after 2 responses');
    expect(got.filter((m) => m.infer_response?.id === 'after' && !m.error_message)).toHaveLength(2);
  });

  it('requests on one stream run concurrently', async () => {
    const got = await streamAll([repeatRequest(5, 'a'), repeatRequest(5, 'b')]);
    const ids = got.map((m) => m.infer_response.id);
    expect(ids.filter((i) => i === 'a')).toHaveLength(5);
    expect(ids.filter((i) => i === 'b')).toHaveLength(5);
    // Interleaved, not one request after the other.
    expect(ids.indexOf('b')).toBeLessThan(ids.lastIndexOf('a'));
  });

  it('cancelling the stream aborts every request in flight', async () => {
    const call = client.ModelStreamInfer();
    const got: any[] = [];
    call.on('data', (m: any) => got.push(m));
    const ended = new Promise<grpc.ServiceError>((resolve) => call.on('error', resolve));
    call.write(repeatRequest(1000, 'forever-1'));
    call.write(repeatRequest(1000, 'forever-2'));
    await waitFor(() => got.length >= 4);
    call.cancel();
    expect((await ended).code).toBe(grpc.status.CANCELLED);
    await waitFor(() => service.abortedIds.includes('forever-1') && service.abortedIds.includes('forever-2'));
  });
});

describe('GrpcServer lifecycle', () => {
  it('close() cancels streams still open after the grace period, and is safe twice', async () => {
    const svc = new TestService();
    const s = new GrpcServer(svc, { port: 0, host: '127.0.0.1', shutdownGraceMs: 100 });
    const p = await s.start();
    const c = new inference.GRPCInferenceService(`127.0.0.1:${p}`, grpc.credentials.createInsecure());
    const call = c.ModelStreamInfer();
    const got: any[] = [];
    call.on('data', (m: any) => got.push(m));
    const failed = new Promise<grpc.ServiceError>((resolve) => call.on('error', resolve));
    call.write(repeatRequest(1000, 'open-at-close'));
    await waitFor(() => got.length >= 1);
    const t0 = Date.now();
    await Promise.all([s.close(), s.close()]);
    expect(Date.now() - t0).toBeLessThan(2000);
    expect((await failed).code).not.toBe(grpc.status.OK);
    await waitFor(() => svc.abortedIds.includes('open-at-close'));
    c.close();
  });

  it('start() reports a port it cannot bind', async () => {
    const s = new GrpcServer(new TestService(), { port, host: '127.0.0.1' });
    await expect(s.start()).rejects.toMatchObject({ code: 'STUBHOST_UNAVAILABLE' });
    await s.close();
  });
});

describe('CallSignal (a ModelInfer call\'s cancellation)', () => {
  /** What CallSignal reads of a grpc-js unary call: 'cancelled' and its flag, set before the event. */
  class FakeCall extends EventEmitter {
    cancelled = false;
    cancel(): void {
      this.cancelled = true;
      this.emit('cancelled', 'cancelled');
    }
  }
  const make = () => {
    const call = new FakeCall();
    return { call, signal: new CallSignal(call as unknown as grpc.ServerUnaryCall<any, any>) };
  };
  const nextTick = () => new Promise<void>((resolve) => process.nextTick(resolve));

  it('listens to the call only once something listens to it', () => {
    const { call, signal } = make();
    expect(call.listenerCount('cancelled')).toBe(0);
    const events: unknown[] = [];
    signal.addEventListener('abort', (e) => events.push(e.target));
    signal.addEventListener('abort', () => events.push('second'));
    expect(call.listenerCount('cancelled')).toBe(1);
    call.cancel();
    expect(signal.aborted).toBe(true);
    expect(signal.reason).toMatchObject({ code: 'STUBHOST_CANCELLED' });
    expect(events).toEqual([signal, 'second']);
  });

  it('a call already cancelled when the signal is made gives an aborted signal', () => {
    const call = new FakeCall();
    call.cancelled = true;
    const signal = new CallSignal(call as unknown as grpc.ServerUnaryCall<any, any>);
    expect(signal.aborted).toBe(true);
    expect(signal.reason).toMatchObject({ code: 'STUBHOST_CANCELLED' });
  });

  it('a call cancelled before anything listened aborts the signal on the next tick after the first listener', async () => {
    const { call, signal } = make();
    call.cancel();
    let fired = 0;
    signal.addEventListener('abort', () => fired++);
    expect(fired).toBe(0); // not inside addEventListener
    await nextTick();
    expect(signal.aborted).toBe(true);
    expect(fired).toBe(1);
  });

  it('the call ending after the request was answered aborts nothing', async () => {
    const { call, signal } = make();
    let fired = 0;
    signal.addEventListener('abort', () => fired++);
    signal.answered();
    call.cancel(); // grpc-js emits 'cancelled' as every call ends
    await nextTick();
    expect(signal.aborted).toBe(false);
    expect(fired).toBe(0);
  });
});
