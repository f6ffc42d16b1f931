/**
 * Triton's response cache: `--cache-config local,size=<bytes>` and `response_cache { enable: true }`.
 * A request seen before is answered from the cache without running the model (over HTTP and
 * gRPC alike); the key covers the model, version, inputs (names, datatypes, shapes, bytes), the
 * request's parameters and the outputs it names; the cache is an LRU bounded in bytes; hits and
 * misses show in statistics (cache_hit, cache_miss) and metrics (nv_cache_*) with Triton's names;
 * decoupled and sequence models cannot enable it (Triton's words); a model enabling it on a server
 * without a cache serves uncached, and the load says so; the flag's errors are Triton's.
 */
import { execFile } from 'node:child_process';
import os from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http, startRepositoryServer, type RepositoryServer } from './helpers/server.js';
import { grpcClient, type TestGrpcClient } from './helpers/grpc.js';
import { BIN } from './helpers/blackbox.js';
import { CANARY, expectCanary, fp32Of, stopAndCheckLeaks } from './helpers/compat.js';

const COUNTED_TS = `
import { InferenceRequest, InferenceResponse, Tensor } from 'stubhost';
export default class Counted {
  calls = 0;
  execute(requests: InferenceRequest[]) {
    return requests.map((r) => {
      const x = r.input('IN')!;
      return new InferenceResponse({ outputs: [
        new Tensor('OUT', (x.data as Float32Array).slice(), x.shape),
        new Tensor('CALLS', Int32Array.of(++this.calls), [1]),
      ] });
    });
  }
}`;
const countedConfig = (name: string, extra = 'response_cache { enable: true }') => `name: "${name}"
backend: "typescript"
max_batch_size: 0
input [ { name: "IN" data_type: TYPE_FP32 dims: [ -1, -1 ] } ]
output [ { name: "OUT" data_type: TYPE_FP32 dims: [ -1, -1 ] }, { name: "CALLS" data_type: TYPE_INT32 dims: [ 1 ] } ]
${extra}
`;
const ENSEMBLE = `name: "ens_cached"
platform: "ensemble"
max_batch_size: 0
input [ { name: "IN" data_type: TYPE_FP32 dims: [ -1, -1 ] } ]
output [ { name: "OUT" data_type: TYPE_FP32 dims: [ -1, -1 ] }, { name: "CALLS" data_type: TYPE_INT32 dims: [ 1 ] } ]
ensemble_scheduling { step [ { model_name: "uncached" model_version: -1 input_map { key: "IN" value: "IN" } output_map [ { key: "OUT" value: "OUT" }, { key: "CALLS" value: "CALLS" } ] } ] }
response_cache { enable: true }
`;
const DECOUPLED = `${countedConfig('dec_cached')}model_transaction_policy { decoupled: true }\n`;
const SEQUENCE = `${countedConfig('seq_cached')}sequence_batching { }\n`;

/** Room for two entries of 100 floats (about 700 bytes each), not three. */
const CACHE_BYTES = 2000;

let server: RepositoryServer;
let grpc: TestGrpcClient;

beforeAll(async () => {
  server = await startRepositoryServer({
    canary: CANARY,
    counted: { 'config.pbtxt': countedConfig('counted'), '1/model.ts': COUNTED_TS },
    lru: { 'config.pbtxt': countedConfig('lru'), '1/model.ts': COUNTED_TS },
    uncached: { 'config.pbtxt': countedConfig('uncached', ''), '1/model.ts': COUNTED_TS },
    ens_cached: { 'config.pbtxt': ENSEMBLE },
    dec_cached: { 'config.pbtxt': DECOUPLED, '1/model.ts': COUNTED_TS },
    seq_cached: { 'config.pbtxt': SEQUENCE, '1/model.ts': COUNTED_TS },
  }, { grpcPort: 0, responseCacheBytes: CACHE_BYTES, modelControlMode: 'explicit', loadModels: ['*'] });
  grpc = grpcClient(server.ports.grpc!);
}, 120_000);

afterAll(async () => {
  await stopAndCheckLeaks(server, grpc);
}, 60_000);

/** The CALLS output of a request to `model`: the model's execution count when it answered. */
async function calls(model: string, data: number[], shape = [1, data.length], extra: Record<string, unknown> = {}): Promise<number> {
  const r = await http(`${server.url}/v2/models/${model}/infer`, 'POST', { inputs: [{ name: 'IN', shape, datatype: 'FP32', data }], ...extra });
  expect(r.status, r.text).toBe(200);
  const out = (r.json.outputs as { name: string; data: number[] }[]);
  if (out.some((o) => o.name === 'OUT')) expect(out.find((o) => o.name === 'OUT')!.data).toEqual(data);
  return out.find((o) => o.name === 'CALLS')?.data[0] ?? -1;
}
const stats = async (model: string) => (await http(`${server.url}/v2/models/${model}/stats`)).json.model_stats[0];
const metricsText = async () => (await fetch(`http://127.0.0.1:${server.ports.metrics}/metrics`)).text();
const metric = (text: string, name: string, model?: string): number | undefined => {
  const re = new RegExp(`^${name}${model ? `\\{model="${model}",version="1"\\}` : ''} ([0-9.e+-]+)$`, 'm');
  const m = re.exec(text);
  return m ? Number(m[1]) : undefined;
};

describe('response cache', () => {
  it('answers a repeated request from the cache without running the model; the key covers inputs, shapes, parameters and outputs', async () => {
    expect(await calls('counted', [1, 2, 3, 4])).toBe(1);
    expect(await calls('counted', [1, 2, 3, 4])).toBe(1); // hit: the model did not run
    expect(await calls('counted', [1, 2, 3, 5])).toBe(2); // other bytes
    expect(await calls('counted', [1, 2, 3, 4], [2, 2])).toBe(3); // same bytes, other shape
    expect(await calls('counted', [1, 2, 3, 4], [1, 4], { parameters: { flavour: 'x' } })).toBe(4); // a parameter the model sees
    expect(await calls('counted', [1, 2, 3, 4], [1, 4], { parameters: { flavour: 'x' } })).toBe(4);
    expect(await calls('counted', [1, 2, 3, 4], [1, 4], { outputs: [{ name: 'CALLS' }] })).toBe(5); // other outputs named
    expect(await calls('counted', [1, 2, 3, 4], [1, 4], { parameters: { priority: 1, binary_data_output: false } })).toBe(1); // not the model's business
    expect(await calls('uncached', [1, 2, 3, 4])).toBe(1);
    expect(await calls('uncached', [1, 2, 3, 4])).toBe(2); // no response_cache: always runs
  });

  it('gRPC requests share the cache with HTTP ones', async () => {
    const r = await grpc.rpc('ModelInfer', { model_name: 'counted', inputs: [{ name: 'IN', datatype: 'FP32', shape: [1, 4], contents: { fp32_contents: [1, 2, 3, 4] } }] });
    expect(fp32Of(r.raw_output_contents[0])).toEqual([1, 2, 3, 4]);
    expect(Array.from(new Int32Array(Uint8Array.from(r.raw_output_contents[1]).buffer))).toEqual([1]);
    await expectCanary(server, grpc);
  });

  it("counts hits and misses in statistics as Triton's (HTTP and gRPC), and in nv_cache_* metrics", async () => {
    const s = await stats('counted');
    // 9 requests so far: 5 misses (executions) and 4 hits.
    expect(s.inference_stats.success.count).toBe(9);
    expect(s.inference_stats.cache_hit.count).toBe(4);
    expect(s.inference_stats.cache_miss.count).toBe(5);
    expect(s.inference_stats.cache_hit.ns).toBeGreaterThan(0);
    expect(s.inference_stats.cache_miss.ns).toBeGreaterThan(0);
    expect(s.execution_count).toBe(5);
    expect(s.inference_count).toBe(5);
    expect(s.inference_stats.compute_infer.count).toBe(5);
    const g = await grpc.rpc('ModelStatistics', { name: 'counted' });
    expect(g.model_stats[0].inference_stats.cache_hit.count).toBe('4');
    expect(g.model_stats[0].inference_stats.cache_miss.count).toBe('5');
    const un = await stats('uncached');
    expect([un.inference_stats.cache_hit.count, un.inference_stats.cache_miss.count]).toEqual([0, 0]);

    const text = await metricsText();
    expect(metric(text, 'nv_cache_num_hits_per_model', 'counted')).toBe(4);
    expect(metric(text, 'nv_cache_num_misses_per_model', 'counted')).toBe(5);
    expect(metric(text, 'nv_cache_hit_duration_per_model', 'counted')).toBeGreaterThan(0);
    expect(metric(text, 'nv_cache_miss_duration_per_model', 'counted')).toBeGreaterThan(0);
    expect(metric(text, 'nv_cache_num_hits_per_model', 'uncached')).toBeUndefined(); // only models that use the cache
    expect(text).toContain('# HELP nv_cache_num_hits_per_model Number of cache hits per model');
    expect(metric(text, 'nv_cache_num_entries')).toBeGreaterThan(0);
    expect(metric(text, 'nv_cache_num_lookups')).toBeGreaterThanOrEqual(9);
    expect(metric(text, 'nv_inference_count', 'counted')).toBe(5);
    expect(metric(text, 'nv_inference_request_success', 'counted')).toBe(9);
  });

  it('is an LRU bounded in bytes; a response larger than the whole cache is not stored', async () => {
    const a = Array.from({ length: 100 }, (_, i) => i);
    const b = a.map((v) => v + 1000);
    const c = a.map((v) => v + 2000);
    const evictionsBefore = metric(await metricsText(), 'nv_cache_num_evictions') ?? 0;
    expect(await calls('lru', a)).toBe(1);
    expect(await calls('lru', b)).toBe(2);
    expect(await calls('lru', a)).toBe(1); // hit; a is now the most recently used
    expect(await calls('lru', c)).toBe(3); // stored, evicting b (the least recently used)
    expect(await calls('lru', a)).toBe(1);
    expect(await calls('lru', b)).toBe(4); // b was evicted
    expect(metric(await metricsText(), 'nv_cache_num_evictions')).toBeGreaterThan(evictionsBefore);
    const big = Array.from({ length: 1000 }, (_, i) => i);
    expect(await calls('lru', big)).toBe(5);
    expect(await calls('lru', big)).toBe(6); // never stored
    const util = metric(await metricsText(), 'nv_cache_util')!;
    expect(util).toBeGreaterThan(0);
    expect(util).toBeLessThanOrEqual(1);
  });

  it('an ensemble with response_cache is answered whole from the cache: its steps do not run', async () => {
    const first = await calls('ens_cached', [7, 8]);
    expect(await calls('ens_cached', [7, 8])).toBe(first);
    expect(await calls('uncached', [9, 9])).toBe(first + 1); // the step ran once for the ensemble
    expect((await stats('ens_cached')).inference_stats.cache_hit.count).toBe(1);
  });

  it('a reloaded model never gets the answers of its earlier load', async () => {
    const before = await calls('counted', [5, 5]);
    expect(before).toBeGreaterThan(1);
    expect(await calls('counted', [5, 5])).toBe(before);
    expect((await http(`${server.url}/v2/repository/models/counted/load`, 'POST', {})).status).toBe(200);
    expect(await calls('counted', [5, 5])).toBe(1); // a new stub ran it
  });

  it("decoupled and sequence models cannot enable it: Triton's words, only they fail", async () => {
    const index = (await http(`${server.url}/v2/repository/index`, 'POST', {})).json as { name: string; state: string; reason?: string }[];
    const reason = (m: string) => index.find((e) => e.name === m)!;
    expect(reason('dec_cached').state).toBe('UNAVAILABLE');
    expect(reason('dec_cached').reason).toContain("Response Cache does not currently support model dec_cached with 'decoupled' transaction policy. Please disable the response cache.");
    expect(reason('seq_cached').reason).toContain('Response Cache does not currently support model seq_cached with sequence batching scheduler. Please disable the response cache.');
    await expectCanary(server, grpc);
  });
});

describe('without --cache-config', () => {
  it('a model enabling the cache serves uncached, as Triton, and the load says so; no nv_cache_* metrics', async () => {
    const plain = await startRepositoryServer({ counted: { 'config.pbtxt': countedConfig('counted'), '1/model.ts': COUNTED_TS }, canary: CANARY });
    try {
      expect(plain.logs.some((l) => l.includes("enables response_cache but the server has no response cache") && l.includes('--cache-config local,size=<bytes>'))).toBe(true);
      const infer = () => http(`${plain.url}/v2/models/counted/infer`, 'POST', { inputs: [{ name: 'IN', shape: [1, 1], datatype: 'FP32', data: [1] }] });
      const callsOf = (r: Awaited<ReturnType<typeof infer>>) => r.json.outputs.find((o: { name: string }) => o.name === 'CALLS').data[0];
      expect(callsOf(await infer())).toBe(1);
      expect(callsOf(await infer())).toBe(2);
      const text = await (await fetch(`http://127.0.0.1:${plain.ports.metrics}/metrics`)).text();
      expect(text).not.toContain('nv_cache_');
    } finally {
      expect(await plain.stop(5000)).toEqual([]);
    }
  }, 120_000);
});

describe('--cache-config', () => {
  const run = (args: string[]) => new Promise<{ code: number | null; stderr: string }>((resolve) => {
    execFile(process.execPath, [BIN, 'serve', '--model-repository', os.tmpdir(), ...args], { encoding: 'utf8', timeout: 90_000 }, (err, _out, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stderr });
    });
  });

  it("refuses what Triton refuses with Triton's words, and caches other than local", async () => {
    const cases: [string, string][] = [
      ['size=100', 'No cache specified. --cache-config option format is <cache name>,<setting>=<value>. Got size=100'],
      ['local,size', "--cache-config option format is '<cache name>,<setting>=<value>'. Got local,size"],
      ['local,size=', "--cache-config option format is '<cache name>,<setting>=<value>'. Got local,size="],
      ['redis,host=localhost', "the cache 'redis' is not supported by stubhost; it has the 'local' cache only"],
      ['local,bytes=100', "the local cache has no setting 'bytes'"],
      ['local,size=lots', 'size must be a whole number of bytes > 0'],
    ];
    const results = await Promise.all(cases.map(([arg]) => run(['--cache-config', arg])));
    results.forEach((r, i) => {
      expect(r.code, cases[i]![0]).toBe(2);
      expect(r.stderr).toContain(cases[i]![1]);
    });
  }, 120_000);
});
