/**
 * `npm run bench -- stub [--json]`: requests/s and p50/p99 latency of an identity model (FP32,
 * shape [1, 16]: models/identity_fp32) executed through real stub processes at the StubProcess
 * level (host arena → queue → stub → model.execute → queue → host, no HTTP, no scheduler), with
 * 1 and 2 instances at concurrency 1, 8 and 32, and through one thread-isolated stub (a worker
 * thread of this process, model parameter isolation "thread"), against the same model class
 * called in this process (`await model.execute([request])`) at the same concurrency, measured in
 * the same run.
 *
 * Concurrency c means c loops, each sending one request and awaiting its response; with 2
 * instances loop i uses instance i % 2. Cells are interleaved round by round (ROUNDS rounds of
 * CELL_MS each) so machine noise hits every cell alike; requests/s is the median over rounds,
 * latency percentiles are over every request of every round.
 */
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { StubProcess } from '../../src/instance/stub-process.js';
import { createLogger, logSettings } from '../../src/log/logger.js';
import type { InferRequest } from '../../src/core/types.js';
import { parseModelSettings } from '../../src/core/model-parameters.js';
import { InferenceRequest, Tensor, type Model } from '../../stub/api/index.js';
import { fmt, formatTable, median, nowMs, parseArgs, percentile, progress, report } from './common.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const MODEL_DIR = path.join(ROOT, 'models', 'identity_fp32');
const MODEL_FILE = path.join(MODEL_DIR, '1', 'model.ts');
const ELEMENTS = 16;
const INSTANCES = [1, 2] as const;
const CONCURRENCY = [1, 8, 32] as const;
const ROUNDS = 3;
const CELL_MS = Number(process.env.BENCH_CELL_MS ?? 700);
const WARMUP_REQUESTS = 2000;

interface CellResult {
  rps: number[];
  latenciesMs: number[];
}

/** Runs `concurrency` loops of `call` for `ms`; returns requests/s and every latency. */
async function drive(concurrency: number, ms: number, call: (loop: number) => Promise<unknown>): Promise<{ rps: number; latenciesMs: number[] }> {
  const latenciesMs: number[] = [];
  const started = nowMs();
  const deadline = started + ms;
  await Promise.all(Array.from({ length: concurrency }, async (_, loop) => {
    while (nowMs() < deadline) {
      const t = nowMs();
      await call(loop);
      latenciesMs.push(nowMs() - t);
    }
  }));
  return { rps: latenciesMs.length / ((nowMs() - started) / 1000), latenciesMs };
}

/** push(...xs) overflows the stack for the hundreds of thousands of latencies a cell gathers. */
function appendAll(into: number[], xs: readonly number[]): void {
  for (const x of xs) into.push(x);
}

/** Milliseconds as microseconds, 0.01 µs resolution (in-process calls take well under 1 µs). */
function us(ms: number): number {
  return Math.round(ms * 100_000) / 100;
}

function hostRequest(data: Float32Array): InferRequest {
  return {
    id: '', modelName: 'identity_fp32', parameters: {}, priority: 0, timeoutUs: 0,
    inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [1, ELEMENTS], data }],
  };
}

export default async function main(argv: string[]): Promise<void> {
  const args = parseArgs(argv);
  logSettings.sink = (line, level) => {
    if (level === 'error' || level === 'warn') process.stderr.write(`${line}\n`);
  };
  const logger = createLogger({ bench: 'stub' });
  const data = Float32Array.from({ length: ELEMENTS }, (_, i) => i * 0.5);

  // ---- the stubs ------------------------------------------------------------------------------
  progress('starting 2 stub processes and 1 stub thread (identity_fp32)');
  const stubs = [0, 1, 2].map((i) => new StubProcess({
    isolation: i === 2 ? 'thread' : 'process',
    modelName: 'identity_fp32',
    modelVersion: 1,
    instanceName: `identity_fp32_0_${i}`,
    logger,
    init: {
      modelName: 'identity_fp32', modelVersion: 1, modelRepository: path.dirname(MODEL_DIR), modelDir: MODEL_DIR, modelFile: MODEL_FILE,
      backend: 'typescript', modelConfig: { name: 'identity_fp32', max_batch_size: 8, input: [], output: [] }, settings: parseModelSettings(undefined),
      instanceName: `identity_fp32_0_${i}`, instanceKind: 'KIND_CPU', instanceDeviceId: 0,
    },
  }));
  try {
    await Promise.all(stubs.map((s) => s.start()));
    const thread = stubs[2]!;
    for (const s of [stubs[0]!, thread]) {
      const check = await s.execute([hostRequest(data)]);
      const echoed = check[0]?.outputs?.[0]?.data as Float32Array | undefined;
      if (!echoed || echoed.length !== ELEMENTS || echoed.some((v, i) => v !== data[i])) throw new Error(`identity_fp32 did not echo its input: ${JSON.stringify(check[0]?.error?.message ?? echoed)}`);
    }

    // ---- the in-process baseline: the same class, called directly ------------------------------
    const mod = (await import(pathToFileURL(MODEL_FILE).href)) as { default: new () => Model };
    const model = new mod.default();
    await model.initialize?.({
      modelConfig: { name: 'identity_fp32', max_batch_size: 8, input: [], output: [] }, modelName: 'identity_fp32', modelVersion: 1,
      modelRepository: path.dirname(MODEL_DIR), instanceName: 'in-process', instanceKind: 'KIND_CPU', instanceDeviceId: 0,
    });
    const inProcess = async (): Promise<void> => {
      const responses = await model.execute([new InferenceRequest({ modelName: 'identity_fp32', inputs: [new Tensor('INPUT0', data, [1, ELEMENTS])] })]);
      if (!responses || responses.length !== 1) throw new Error('in-process execute returned no response');
    };
    const via = (pick: (loop: number) => StubProcess) => async (loop: number): Promise<void> => {
      const [outcome] = await pick(loop).execute([hostRequest(data)]);
      if (!outcome || outcome.error) throw new Error(`stub execute failed: ${outcome?.error?.message}`);
    };
    const viaStub = (n: number) => via((loop) => stubs[loop % n]!);
    const viaThread = via(() => thread);

    progress(`warm-up: ${WARMUP_REQUESTS} requests per stub and in-process`);
    for (let i = 0; i < WARMUP_REQUESTS; i++) await inProcess();
    await drive(8, 300, viaStub(2));
    await drive(8, 300, viaThread);
    for (const s of stubs) for (let i = 0; i < WARMUP_REQUESTS / 4; i++) await s.execute([hostRequest(data)]);

    // ---- interleaved rounds ---------------------------------------------------------------------
    const cells = new Map<string, CellResult>();
    const cell = (key: string): CellResult => {
      let c = cells.get(key);
      if (!c) cells.set(key, (c = { rps: [], latenciesMs: [] }));
      return c;
    };
    for (let round = 0; round < ROUNDS; round++) {
      for (const c of CONCURRENCY) {
        const base = await drive(c, CELL_MS, inProcess);
        cell(`inproc_c${c}`).rps.push(base.rps);
        appendAll(cell(`inproc_c${c}`).latenciesMs, base.latenciesMs);
        for (const n of INSTANCES) {
          const r = await drive(c, CELL_MS, viaStub(n));
          cell(`stub_i${n}_c${c}`).rps.push(r.rps);
          appendAll(cell(`stub_i${n}_c${c}`).latenciesMs, r.latenciesMs);
        }
        const t = await drive(c, CELL_MS, viaThread);
        cell(`thread_i1_c${c}`).rps.push(t.rps);
        appendAll(cell(`thread_i1_c${c}`).latenciesMs, t.latenciesMs);
      }
      progress(`round ${round + 1}/${ROUNDS}`);
    }

    // ---- report -----------------------------------------------------------------------------------
    const result: Record<string, number> = {};
    const rows: string[][] = [];
    for (const c of CONCURRENCY) {
      const base = cells.get(`inproc_c${c}`)!;
      const baseRps = median(base.rps);
      result[`inproc_c${c}_rps`] = Math.round(baseRps);
      result[`inproc_c${c}_p50_us`] = us(percentile(base.latenciesMs, 50));
      result[`inproc_c${c}_p99_us`] = us(percentile(base.latenciesMs, 99));
      rows.push([`in-process`, String(c), fmt(baseRps), fmt(percentile(base.latenciesMs, 50) * 1000), fmt(percentile(base.latenciesMs, 99) * 1000), '1']);
      for (const [label, key] of [...INSTANCES.map((n) => [`stub × ${n}`, `stub_i${n}_c${c}`]), ['thread stub × 1', `thread_i1_c${c}`]] as const) {
        const r = cells.get(key)!;
        const rps = median(r.rps);
        result[`${key}_rps`] = Math.round(rps);
        result[`${key}_p50_us`] = us(percentile(r.latenciesMs, 50));
        result[`${key}_p99_us`] = us(percentile(r.latenciesMs, 99));
        result[`${key}_ratio`] = Number((rps / baseRps).toFixed(4));
        rows.push([label, String(c), fmt(rps), fmt(percentile(r.latenciesMs, 50) * 1000), fmt(percentile(r.latenciesMs, 99) * 1000), fmt(rps / baseRps)]);
      }
    }
    const text = [
      `identity_fp32 (FP32 [1, ${ELEMENTS}]) through StubProcess.execute (stub processes, and a stub thread) vs the same class in-process; ` +
        `${ROUNDS} interleaved rounds of ${CELL_MS} ms per cell, requests/s = median of rounds`,
      '',
      formatTable(['path', 'concurrency', 'requests/s', 'p50 µs', 'p99 µs', 'vs in-process'], rows),
    ].join('\n');
    report(args, text, result);
  } finally {
    await Promise.all(stubs.map((s) => s.close()));
  }
}
