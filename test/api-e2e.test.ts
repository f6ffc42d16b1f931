/**
 * The model API (README, "The model API") end to end, through real stubs, from model.ts files
 * written in a temporary repository under /tmp that import 'stubhost' — as CommonJS (a folder
 * with no package.json) and as ESM (package.json "type": "module"):
 *
 * - what execute sees: requestId, correlationId (string or bigint, as the client sent it),
 *   parameters (custom ones only), priority, requestedOutputNames, inputs as views of shared
 *   memory; what initialize sees (ModelInitArgs); static autoCompleteConfig honoured;
 * - requested outputs filter the response (also a decoupled model's);
 * - every ModelError code reaches HTTP and gRPC clients with its status, returned or thrown, from
 *   either copy of the API module (instanceof is not relied on);
 * - one response per request, in order, under dynamic batching;
 * - BLS exec()/stream() never throw: failures are error responses carrying the code;
 * - logger.info/warn/error/verbose reach the host log tagged with model and instance.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { GRPC_PROTO_DIR } from '../src/server/grpc/proto.js';
import { logSettings } from '../src/log/logger.js';
import { childPids, http, shmLeftovers, startTestServer, tempRepository, waitFor, type TestServer } from './helpers/server.js';

const CODES = ['INVALID_ARG', 'INTERNAL', 'NOT_FOUND', 'UNAVAILABLE', 'UNSUPPORTED', 'CANCELLED', 'TIMEOUT'] as const;
/** How each ModelError code reaches the client: HTTP status, gRPC status. */
const STATUS: Record<(typeof CODES)[number], [number, number]> = {
  INVALID_ARG: [400, grpc.status.INVALID_ARGUMENT],
  INTERNAL: [500, grpc.status.INTERNAL],
  NOT_FOUND: [404, grpc.status.NOT_FOUND],
  UNAVAILABLE: [503, grpc.status.UNAVAILABLE],
  UNSUPPORTED: [501, grpc.status.UNIMPLEMENTED],
  CANCELLED: [499, grpc.status.CANCELLED],
  TIMEOUT: [504, grpc.status.DEADLINE_EXCEEDED],
};

/** Reports what the model sees, as JSON in INFO; OUT_A = IN + 1, OUT_B = IN * 2. */
const PROBE_TS = `
import { InferenceRequest, InferenceResponse, Tensor, ModelError, logger } from 'stubhost';
import type { Model, ModelInitArgs, ModelConfig } from 'stubhost';

const kind = typeof module !== 'undefined' && typeof require === 'function' ? 'commonjs' : 'esm';

export default class Probe implements Model {
  private args?: ModelInitArgs;
  private batches: number[] = [];

  static autoCompleteConfig(config: ModelConfig): ModelConfig {
    (config as Record<string, unknown>).parameters = { ...(config.parameters ?? {}), completed_by: { string_value: 'autoCompleteConfig' } };
    return config;
  }

  async initialize(args: ModelInitArgs): Promise<void> {
    this.args = args;
    logger.info('probe: initialize', args.modelName);
  }

  async execute(requests: InferenceRequest[]): Promise<InferenceResponse[]> {
    this.batches.push(requests.length);
    logger.info('probe-info %d', requests.length);
    logger.warn('probe-warn');
    logger.error('probe-error');
    logger.verbose('probe-verbose');
    await new Promise((r) => setTimeout(r, 1));
    return requests.map((r) => {
      const x = r.input('IN')!;
      const data = x.data as Float32Array;
      if (r.parameters.fail === true) return new InferenceResponse({ error: new ModelError('probe: asked to fail', 'INVALID_ARG') });
      const a = this.args!;
      const info = {
        kind,
        requestId: r.requestId,
        correlationType: typeof r.correlationId,
        correlationId: r.correlationId === undefined ? null : String(r.correlationId),
        parameters: r.parameters,
        priority: r.priority,
        requested: r.requestedOutputNames,
        inputNames: r.inputs.map((t) => t.name),
        dtype: x.dtype, shape: x.shape, ctor: data.constructor.name,
        shared: data.buffer instanceof SharedArrayBuffer,
        cancelled: r.isCancelled(),
        maxBatch: Math.max(...this.batches),
        init: {
          modelName: a.modelName, modelVersion: a.modelVersion, modelRepository: a.modelRepository,
          instanceName: a.instanceName, instanceKind: a.instanceKind, instanceDeviceId: a.instanceDeviceId,
          configName: a.modelConfig.name, completed: a.modelConfig.parameters?.completed_by?.string_value ?? null,
        },
      };
      return new InferenceResponse({
        outputs: [
          // One INFO row per batch row: the config's dims [1] come after the batch dimension.
          new Tensor('INFO', Array.from({ length: x.shape[0]! }, () => JSON.stringify(info)), [x.shape[0]!, 1]),
          new Tensor('OUT_A', data.map((v) => v + 1), x.shape),
          new Tensor('OUT_B', data.map((v) => v * 2), x.shape),
        ],
      });
    });
  }
}
`;

const probeConfig = (name: string) => `
name: "${name}"
backend: "typescript"
max_batch_size: 8
dynamic_batching { max_queue_delay_microseconds: 100000 }
input [ { name: "IN", data_type: TYPE_FP32, dims: [ -1 ] } ]
output [
  { name: "INFO", data_type: TYPE_STRING, dims: [ 1 ] },
  { name: "OUT_A", data_type: TYPE_FP32, dims: [ -1 ] },
  { name: "OUT_B", data_type: TYPE_FP32, dims: [ -1 ] }
]
`;

/** Fails with the ModelError code named by CODE: returned as a response, or thrown (MODE 'throw'). */
const ERRS_TS = `
import { InferenceRequest, InferenceResponse, Tensor, ModelError } from 'stubhost';

export default class Errs {
  execute(requests: InferenceRequest[]): InferenceResponse[] {
    const out: InferenceResponse[] = [];
    for (const r of requests) {
      const [code, mode] = r.input('CODE')!.strings();
      if (mode === 'throw') throw new ModelError('errs: thrown ' + code, code as never);
      if (mode === 'string') out.push(new InferenceResponse({ error: 'errs: a string error' }));
      else if (code === 'OK') out.push(new InferenceResponse({ outputs: [new Tensor('OUT', ['ok'])] }));
      else out.push(new InferenceResponse({ error: new ModelError('errs: returned ' + code, code as never) }));
    }
    return out;
  }
}
`;
const ERRS_CONFIG = `
name: "errs"
backend: "typescript"
max_batch_size: 0
input [ { name: "CODE", data_type: TYPE_STRING, dims: [ -1 ] } ]
output [ { name: "OUT", data_type: TYPE_STRING, dims: [ 1 ] } ]
`;

/** No config file at all: autoCompleteConfig supplies inputs, outputs and max_batch_size. */
const AUTO_TS = `
import { InferenceRequest, InferenceResponse, Tensor } from 'stubhost';
import type { ModelConfig, ModelInitArgs } from 'stubhost';

export default class Auto {
  private seen = '';
  static autoCompleteConfig(config: ModelConfig): ModelConfig {
    config.max_batch_size = 0;
    config.input = [{ name: 'X', data_type: 'TYPE_INT32', dims: [-1] }];
    config.output = [{ name: 'Y', data_type: 'TYPE_INT32', dims: [-1] }];
    return config;
  }
  initialize(args: ModelInitArgs): void {
    this.seen = args.modelConfig.input.map((i) => i.name).join(',');
  }
  execute(requests: InferenceRequest[]): InferenceResponse[] {
    return requests.map((r) => {
      const x = r.input('X')!.data as Int32Array;
      if (this.seen !== 'X') return new InferenceResponse({ error: 'initialize saw inputs ' + this.seen });
      return new InferenceResponse({ outputs: [new Tensor('Y', x.map((v) => -v))] });
    });
  }
}
`;

/** Decoupled: two responses with OUT_A and OUT_B each (one from a timer), then the final flag. */
const DEC_TS = `
import { InferenceRequest, InferenceResponse, Tensor } from 'stubhost';

export default class Dec {
  execute(requests: InferenceRequest[]): void {
    for (const r of requests) {
      const v = (r.input('IN')!.data as Float32Array)[0]!;
      const sender = r.responseSender();
      const make = (k: number) => new InferenceResponse({ outputs: [new Tensor('OUT_A', Float32Array.of(v + k)), new Tensor('OUT_B', Float32Array.of(-v - k))] });
      sender.send(make(1));
      setTimeout(() => { sender.send(make(2)); sender.send(undefined, { final: true }); }, 5);
    }
  }
}
`;
const DEC_CONFIG = `
name: "dec"
backend: "typescript"
max_batch_size: 0
model_transaction_policy { decoupled: true }
input [ { name: "IN", data_type: TYPE_FP32, dims: [ 1 ] } ]
output [ { name: "OUT_A", data_type: TYPE_FP32, dims: [ 1 ] }, { name: "OUT_B", data_type: TYPE_FP32, dims: [ 1 ] } ]
`;

/** BLS from model code: every call's outcome as JSON; nothing here may throw. */
const BLS_TS = `
import { InferenceRequest, InferenceResponse, Tensor } from 'stubhost';

type Outcome = { error: null | { code: string; message: string; isError: boolean }; outputs: Record<string, unknown> };
const outcome = (r: InferenceResponse): Outcome => ({
  error: r.error ? { code: r.error.code, message: r.error.message, isError: r.error instanceof Error } : null,
  outputs: Object.fromEntries(r.outputs.map((t) => [t.name, t.dtype === 'BYTES' ? t.strings() : Array.from(t.data as Float32Array)])),
});

export default class BlsProbe {
  async execute(requests: InferenceRequest[]): Promise<InferenceResponse[]> {
    const out: InferenceResponse[] = [];
    for (const _ of requests) {
      const results: Record<string, unknown> = {};
      const run = async (name: string, f: () => Promise<Outcome | Outcome[]>) => {
        try { results[name] = await f(); } catch (err) { results[name] = { threw: String(err) }; }
      };
      const IN = () => [new Tensor('IN', Float32Array.of(1, 2), [1, 2])];
      await run('missing', async () => outcome(await new InferenceRequest({ modelName: 'nope', inputs: IN() }).exec()));
      await run('missingStream', async () => {
        const all: Outcome[] = [];
        for await (const r of new InferenceRequest({ modelName: 'nope', inputs: IN() }).stream()) all.push(outcome(r));
        return all;
      });
      await run('notATensor', async () => outcome(await new InferenceRequest({ modelName: 'probe_cjs', inputs: [{ name: 'IN' } as never] }).exec()));
      await run('badVersion', async () => outcome(await new InferenceRequest({ modelName: 'probe_cjs', modelVersion: 7, inputs: IN() }).exec()));
      await run('bigint', async () => outcome(await new InferenceRequest({
        modelName: 'probe_cjs', modelVersion: 1, inputs: IN(), requestedOutputNames: ['INFO', 'OUT_B'],
        parameters: { k: 'v', n: 3, b: true }, correlationId: 42n, priority: 2, timeoutMs: 5000,
      }).exec()));
      await run('string', async () => outcome(await new InferenceRequest({ modelName: 'probe_esm', inputs: IN(), correlationId: 'seq-a' }).exec()));
      for (const code of ${JSON.stringify(CODES)}) {
        await run('code_' + code, async () => outcome(await new InferenceRequest({ modelName: 'errs', inputs: [new Tensor('CODE', [code])] }).exec()));
      }
      await run('decoupled', async () => {
        const all: Outcome[] = [];
        for await (const r of new InferenceRequest({ modelName: 'dec', inputs: [new Tensor('IN', Float32Array.of(10))], requestedOutputNames: ['OUT_B'] }).stream()) all.push(outcome(r));
        return all;
      });
      out.push(new InferenceResponse({ outputs: [new Tensor('RESULTS', [JSON.stringify(results)])] }));
    }
    return out;
  }
}
`;
const BLS_CONFIG = `
name: "bls_probe"
backend: "typescript"
max_batch_size: 0
input [ { name: "GO", data_type: TYPE_INT32, dims: [ 1 ] } ]
output [ { name: "RESULTS", data_type: TYPE_STRING, dims: [ 1 ] } ]
`;

/** Awaits inside execute with other executions in flight on the same stub; checks its input view did not change. */
const HOLD_TS = `
import { InferenceRequest, InferenceResponse, Tensor } from 'stubhost';

export default class Hold {
  async execute(requests: InferenceRequest[]): Promise<InferenceResponse[]> {
    const views = requests.map((r) => r.input('IN')!.data as Float32Array);
    const before = views.map((v) => v.slice());
    await new Promise((r) => setTimeout(r, 30));
    return views.map((v, i) => new InferenceResponse({
      outputs: [new Tensor('SAME', Int32Array.of(v.every((x, j) => x === before[i]![j]) ? 1 : 0)), new Tensor('FIRST', Float32Array.of(v[0]!))],
    }));
  }
}
`;
const HOLD_CONFIG = `
name: "hold"
backend: "typescript"
max_batch_size: 0
parameters { key: "max_inflight_per_instance" value: { string_value: "4" } }
input [ { name: "IN", data_type: TYPE_FP32, dims: [ -1 ] } ]
output [ { name: "SAME", data_type: TYPE_INT32, dims: [ 1 ] }, { name: "FIRST", data_type: TYPE_FP32, dims: [ 1 ] } ]
`;

const ESM = JSON.stringify({ type: 'module' });
const repo = tempRepository({
  probe_cjs: { 'config.pbtxt': probeConfig('probe_cjs'), '1/model.ts': PROBE_TS },
  probe_esm: { 'config.pbtxt': probeConfig('probe_esm'), 'package.json': ESM, '1/model.ts': PROBE_TS },
  errs: { 'config.pbtxt': ERRS_CONFIG, '1/model.ts': ERRS_TS },
  errs_esm: { 'config.pbtxt': ERRS_CONFIG.replace('"errs"', '"errs_esm"'), 'package.json': ESM, '1/model.ts': ERRS_TS },
  auto: { '1/model.ts': AUTO_TS },
  auto_inplace: { '1/model.ts': AUTO_TS.replace('    return config;\n  }\n  initialize', '  }\n  initialize').replace('static autoCompleteConfig(config: ModelConfig): ModelConfig {', 'static autoCompleteConfig(config: ModelConfig): any {') },
  dec: { 'config.pbtxt': DEC_CONFIG, '1/model.ts': DEC_TS },
  hold: { 'config.pbtxt': HOLD_CONFIG, '1/model.ts': HOLD_TS },
  bls_probe: { 'config.pbtxt': BLS_CONFIG, 'package.json': ESM, '1/model.ts': BLS_TS },
});

const pkgDef = protoLoader.loadSync('grpc_service.proto', {
  keepCase: true, longs: String, enums: String, defaults: true, oneofs: true, includeDirs: [GRPC_PROTO_DIR],
});
const inference = (grpc.loadPackageDefinition(pkgDef) as any).inference;

let server: TestServer;
let client: any;
const savedLevel = logSettings.level;

beforeAll(async () => {
  expect(repo.root.startsWith('/tmp/')).toBe(true);
  logSettings.level = 'verbose';
  server = await startTestServer({ modelRepository: repo.root, grpcPort: 0 });
  expect([...server.failed]).toEqual([]);
  client = new inference.GRPCInferenceService(`127.0.0.1:${server.ports.grpc}`, grpc.credentials.createInsecure());
}, 90_000);

afterAll(async () => {
  client?.close();
  await server?.close();
  logSettings.level = savedLevel;
  repo.cleanup();
  expect(await waitFor(() => childPids().length === 0, 3000)).toBe(true);
  expect(shmLeftovers()).toEqual([]);
});

const infer = (model: string, body: unknown) => http(`${server.url}/v2/models/${model}/infer`, 'POST', body);
const output = (json: any, name: string) => json.outputs?.find((o: { name: string }) => o.name === name)?.data;
const probeBody = (values: number[], extra: object = {}) => ({ inputs: [{ name: 'IN', datatype: 'FP32', shape: [1, values.length], data: values }], ...extra });

function grpcInfer(request: object): Promise<{ code: number; details: string; response?: any }> {
  return new Promise((resolve) => {
    client.ModelInfer(request, (err: grpc.ServiceError | null, response: any) => {
      resolve(err ? { code: err.code, details: err.details } : { code: 0, details: '', response });
    });
  });
}

describe.each(['probe_cjs', 'probe_esm'])('%s: what execute and initialize see', (model) => {
  const kind = model === 'probe_cjs' ? 'commonjs' : 'esm';

  it('a model.ts in /tmp imports stubhost; ModelInitArgs carry the model, version, repository and instance', async () => {
    const r = await infer(model, probeBody([1, 2]));
    expect(r.status, r.text).toBe(200);
    const info = JSON.parse(output(r.json, 'INFO')[0]);
    expect(info.kind).toBe(kind);
    expect(info.init).toEqual({
      modelName: model, modelVersion: 1, modelRepository: repo.root,
      instanceName: `${model}_0_0`, instanceKind: 'KIND_CPU', instanceDeviceId: 0,
      configName: model, completed: 'autoCompleteConfig',
    });
  });

  it('static autoCompleteConfig is honoured: the config the server reports is the completed one', async () => {
    const r = await http(`${server.url}/v2/models/${model}/config`);
    expect(r.status).toBe(200);
    expect(r.json.parameters.completed_by).toEqual({ string_value: 'autoCompleteConfig' });
  });

  it('inputs: the client\'s tensors as typed-array views of shared memory; defaults with no parameters', async () => {
    const r = await infer(model, probeBody([1, 2, 3]));
    expect(r.status, r.text).toBe(200);
    const info = JSON.parse(output(r.json, 'INFO')[0]);
    expect(info).toMatchObject({
      requestId: '', correlationType: 'undefined', correlationId: null, parameters: {}, priority: 0, requested: [],
      inputNames: ['IN'], dtype: 'FP32', shape: [1, 3], ctor: 'Float32Array', cancelled: false,
    });
    expect(output(r.json, 'OUT_A')).toEqual([2, 3, 4]);
    expect(output(r.json, 'OUT_B')).toEqual([2, 4, 6]);
    // Tiny tensors travel inline in the message (src/ipc/tensor-codec.ts); larger ones are views of the arena.
    const big = Array.from({ length: 1000 }, (_, i) => i);
    const b = await infer(model, probeBody(big));
    expect(b.status, b.text).toBe(200);
    expect(JSON.parse(output(b.json, 'INFO')[0])).toMatchObject({ shape: [1, 1000], ctor: 'Float32Array', shared: true });
    expect(output(b.json, 'OUT_A')).toEqual(big.map((v) => v + 1));
  });

  it('HTTP: id, sequence_id (number → bigint, string → string), priority and custom parameters arrive as sent', async () => {
    const r = await infer(model, probeBody([1], { id: 'req-7', parameters: { sequence_id: 42, priority: 1, color: 'red', n: 3, flag: true, timeout: 5_000_000 } }));
    expect(r.status, r.text).toBe(200);
    const info = JSON.parse(output(r.json, 'INFO')[0]);
    expect(info).toMatchObject({ requestId: 'req-7', correlationType: 'bigint', correlationId: '42', priority: 1, parameters: { color: 'red', n: 3, flag: true } });
    expect(Object.keys(info.parameters).sort()).toEqual(['color', 'flag', 'n']);
    const s = await infer(model, probeBody([1], { parameters: { sequence_id: 'session-a' } }));
    expect(JSON.parse(output(s.json, 'INFO')[0])).toMatchObject({ correlationType: 'string', correlationId: 'session-a' });
  });

  it('gRPC: sequence_id as uint64 and as string, priority and custom parameters arrive as sent', async () => {
    const call = (sequence_id: object) => grpcInfer({
      model_name: model, id: 'g-1',
      inputs: [{ name: 'IN', datatype: 'FP32', shape: [1, 2], contents: { fp32_contents: [1, 2] } }],
      parameters: { sequence_id, priority: { uint64_param: '1' }, color: { string_param: 'blue' }, n: { int64_param: '5' }, flag: { bool_param: true } },
    });
    const asInfo = (res: any) => {
      const i = res.response.outputs.findIndex((o: any) => o.name === 'INFO');
      const raw: Buffer = res.response.raw_output_contents[i];
      return JSON.parse(raw.subarray(4).toString('utf8'));
    };
    const num = await call({ uint64_param: '18446744073709551615' });
    expect(num.code, num.details).toBe(0);
    expect(asInfo(num)).toMatchObject({ requestId: 'g-1', correlationType: 'bigint', correlationId: '18446744073709551615', priority: 1, parameters: { color: 'blue', n: 5, flag: true } });
    const str = await call({ string_param: 'session-b' });
    expect(asInfo(str)).toMatchObject({ correlationType: 'string', correlationId: 'session-b' });
  });

  it('requested outputs: the model sees their names and the response carries only those', async () => {
    const r = await infer(model, probeBody([5], { outputs: [{ name: 'OUT_B' }, { name: 'INFO' }] }));
    expect(r.status, r.text).toBe(200);
    expect(r.json.outputs.map((o: any) => o.name).sort()).toEqual(['INFO', 'OUT_B']);
    expect(JSON.parse(output(r.json, 'INFO')[0]).requested).toEqual(['OUT_B', 'INFO']);
    expect(output(r.json, 'OUT_B')).toEqual([10]);
  });

  it('one response per request, in order: 8 concurrent requests batched together each get their own answer', async () => {
    const values = [0, 1, 2, 3, 4, 5, 6, 7];
    const rs = await Promise.all(values.map((v) => infer(model, probeBody([v, v], { id: `b${v}`, parameters: v === 3 ? { fail: true } : {} }))));
    let maxBatch = 0;
    rs.forEach((r, i) => {
      if (i === 3) {
        expect([r.status, r.json.error]).toEqual([400, 'probe: asked to fail']);
        return;
      }
      expect(r.status, r.text).toBe(200);
      expect(r.json.id).toBe(`b${i}`);
      expect(output(r.json, 'OUT_A')).toEqual([i + 1, i + 1]);
      const info = JSON.parse(output(r.json, 'INFO')[0]);
      expect(info.requestId).toBe(`b${i}`);
      maxBatch = Math.max(maxBatch, info.maxBatch);
    });
    expect(maxBatch).toBeGreaterThan(1);
  });

  it('logger.info/warn/error/verbose reach the host log with model and instance names', async () => {
    const r = await infer(model, probeBody([1]));
    expect(r.status).toBe(200);
    const lines = () => server.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.model === model && String(l.msg).startsWith('probe-'));
    expect(await waitFor(() => new Set(lines().map((l) => l.level)).size === 4, 3000)).toBe(true);
    const byLevel = new Map(lines().map((l) => [l.level, l]));
    expect(byLevel.get('info')).toMatchObject({ msg: expect.stringMatching(/^probe-info \d+$/), instance: `${model}_0_0` });
    expect(byLevel.get('warn')).toMatchObject({ msg: 'probe-warn', instance: `${model}_0_0` });
    expect(byLevel.get('error')).toMatchObject({ msg: 'probe-error', instance: `${model}_0_0` });
    expect(byLevel.get('verbose')).toMatchObject({ msg: 'probe-verbose', instance: `${model}_0_0` });
  });
});

describe('inputs are valid for the call', () => {
  it('an execute that awaits, with others in flight on the same stub, still reads its own input data', async () => {
    const rs = await Promise.all(Array.from({ length: 12 }, (_, k) => infer('hold', {
      inputs: [{ name: 'IN', datatype: 'FP32', shape: [1000], data: Array.from({ length: 1000 }, () => k) }],
    })));
    rs.forEach((r, k) => {
      expect(r.status, r.text).toBe(200);
      expect([output(r.json, 'SAME'), output(r.json, 'FIRST')]).toEqual([[1], [k]]);
    });
  });
});

describe('autoCompleteConfig with no config file', () => {
  it.each(['auto', 'auto_inplace'])('%s: supplies inputs, outputs and max_batch_size (returned, or completed in place); initialize sees the completed config', async (model) => {
    const c = await http(`${server.url}/v2/models/${model}/config`);
    expect(c.status).toBe(200);
    expect(c.json).toMatchObject({ max_batch_size: 0, input: [{ name: 'X', data_type: 'TYPE_INT32', dims: [-1] }], output: [{ name: 'Y', data_type: 'TYPE_INT32', dims: [-1] }] });
    const r = await infer(model, { inputs: [{ name: 'X', datatype: 'INT32', shape: [3], data: [1, -2, 3] }] });
    expect(r.status, r.text).toBe(200);
    expect(output(r.json, 'Y')).toEqual([-1, 2, -3]);
  });
});

describe.each(['errs', 'errs_esm'])('%s: every ModelError code reaches the client with its status', (model) => {
  it.each(CODES)('%s returned as a response, and thrown from execute', async (code) => {
    const [httpStatus, grpcStatus] = STATUS[code];
    const returned = await infer(model, { inputs: [{ name: 'CODE', datatype: 'BYTES', shape: [1], data: [code] }] });
    expect([returned.status, returned.json.error]).toEqual([httpStatus, `errs: returned ${code}`]);
    const thrown = await infer(model, { inputs: [{ name: 'CODE', datatype: 'BYTES', shape: [2], data: [code, 'throw'] }] });
    expect(thrown.status).toBe(httpStatus);
    expect(thrown.json.error).toContain(`errs: thrown ${code}`);
    const g = await grpcInfer({ model_name: model, inputs: [{ name: 'CODE', datatype: 'BYTES', shape: [1], contents: { bytes_contents: [Buffer.from(code)] } }] });
    expect([g.code, g.details]).toEqual([grpcStatus, `errs: returned ${code}`]);
  });

  it('an error given as a string is INTERNAL (500); a success still works', async () => {
    const s = await infer(model, { inputs: [{ name: 'CODE', datatype: 'BYTES', shape: [2], data: ['x', 'string'] }] });
    expect([s.status, s.json.error]).toEqual([500, 'errs: a string error']);
    const ok = await infer(model, { inputs: [{ name: 'CODE', datatype: 'BYTES', shape: [1], data: ['OK'] }] });
    expect([ok.status, output(ok.json, 'OUT')]).toEqual([200, ['ok']]);
  });
});

describe('decoupled: responseSender()', () => {
  it('gRPC stream: every response, in order, with only the requested outputs', async () => {
    const got: any[] = await new Promise((resolve, reject) => {
      const all: any[] = [];
      const call = client.ModelStreamInfer();
      call.on('data', (m: any) => all.push(m));
      call.on('error', reject);
      call.on('end', () => resolve(all));
      call.write({ model_name: 'dec', id: 's1', inputs: [{ name: 'IN', datatype: 'FP32', shape: [1], contents: { fp32_contents: [10] } }], outputs: [{ name: 'OUT_A' }] });
      call.end();
    });
    expect(got.map((m) => m.error_message)).toEqual(['', '']);
    expect(got.map((m) => m.infer_response.outputs.map((o: any) => o.name))).toEqual([['OUT_A'], ['OUT_A']]);
    const f32 = (b: Buffer) => new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength))[0];
    expect(got.map((m) => f32(m.infer_response.raw_output_contents[0]))).toEqual([11, 12]);
  });
});

describe('BLS from model code: exec() and stream() answer with error responses, never throw', () => {
  let results: Record<string, any>;
  beforeAll(async () => {
    const r = await infer('bls_probe', { inputs: [{ name: 'GO', datatype: 'INT32', shape: [1], data: [1] }] });
    expect(r.status, r.text).toBe(200);
    results = JSON.parse(output(r.json, 'RESULTS')[0]);
  });

  it('a model that does not exist: NOT_FOUND, from exec() and as the one item of stream()', () => {
    expect(results.missing.error).toMatchObject({ code: 'NOT_FOUND', isError: true });
    expect(results.missingStream).toHaveLength(1);
    expect(results.missingStream[0].error.code).toBe('NOT_FOUND');
  });

  it('an input that is not a Tensor, and a version that does not exist: error responses', () => {
    expect(results.notATensor.error).toMatchObject({ isError: true });
    expect(results.notATensor.error.message).toMatch(/not a Tensor/);
    expect(results.badVersion.error).toMatchObject({ isError: true });
    expect(['NOT_FOUND', 'UNAVAILABLE']).toContain(results.badVersion.error.code);
  });

  it('correlationId (bigint or string), parameters, priority and requested outputs reach the called model as given', () => {
    expect(results.bigint.error).toBeNull();
    expect(Object.keys(results.bigint.outputs).sort()).toEqual(['INFO', 'OUT_B']);
    expect(results.bigint.outputs.OUT_B).toEqual([2, 4]);
    const seen = JSON.parse(results.bigint.outputs.INFO[0]);
    expect(seen).toMatchObject({ correlationType: 'bigint', correlationId: '42', priority: 2, parameters: { k: 'v', n: 3, b: true }, requested: ['INFO', 'OUT_B'] });
    expect(JSON.parse(results.string.outputs.INFO[0])).toMatchObject({ correlationType: 'string', correlationId: 'seq-a', kind: 'esm' });
  });

  it.each(CODES)('the called model\'s ModelError code %s comes back as that code', (code) => {
    expect(results[`code_${code}`].error).toMatchObject({ code, message: `errs: returned ${code}`, isError: true });
  });

  it('stream() on a decoupled model: both responses, only the requested output', () => {
    expect(results.decoupled).toEqual([
      { error: null, outputs: { OUT_B: [-11] } },
      { error: null, outputs: { OUT_B: [-12] } },
    ]);
  });
});
