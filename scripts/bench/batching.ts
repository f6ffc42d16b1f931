/**
 * `npm run bench -- batching [--json] [--seconds N]`: what the dynamic batcher buys on a model
 * whose cost is mostly per call. models/batch_concat (a dense layer over concatenated requests,
 * plus `per_call_ms` = 2 ms of synchronous work per execute, whatever the batch size) is served
 * twice by one server in this process, from one model.ts:
 *
 *   batched    its config as shipped: dynamic_batching, preferred 16/32, max delay 1 ms
 *   unbatched  the same config without dynamic_batching: one request per execute
 *
 * Closed-loop HTTP clients (JSON, keep-alive; 32 in flight) drive each in turn, interleaved over
 * several rounds so machine noise hits both alike. Reported: requests/s (median of the rounds),
 * p50/p99 latency over all rounds, the mean batch size from the model's statistics, and the
 * ratio batched / unbatched (target >= 4).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { startServer, type RunningServer } from '../../src/server/start.js';
import { createLogger, logSettings } from '../../src/log/logger.js';
import { fmt, formatTable, median, parseArgs, percentile, progress, report } from './common.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CONCURRENCY = 32;
const ROUNDS = 3;
const WARMUP_MS = 700;

/** A temporary repository holding batch_concat twice: with and without dynamic batching. */
function makeRepository(): { root: string; cleanup(): void } {
  const src = path.join(repoRoot, 'models', 'batch_concat');
  const config = fs.readFileSync(path.join(src, 'config.pbtxt'), 'utf8');
  const model = fs.readFileSync(path.join(src, '1', 'model.ts'), 'utf8');
  const unbatched = config.replace(/dynamic_batching\s*\{[^}]*\}/, '');
  if (unbatched === config) throw new Error('models/batch_concat/config.pbtxt has no dynamic_batching block to remove');
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'stubhost-bench-batching-'));
  for (const [name, text] of [['batched', config], ['unbatched', unbatched]] as const) {
    fs.mkdirSync(path.join(root, name, '1'), { recursive: true });
    fs.writeFileSync(path.join(root, name, 'config.pbtxt'), text.replace(/name:\s*"batch_concat"/, `name: "${name}"`));
    fs.writeFileSync(path.join(root, name, '1', 'model.ts'), model);
  }
  // The stub resolves `--import tsx` from the model folder: give the temporary tree node_modules.
  fs.symlinkSync(path.join(repoRoot, 'node_modules'), path.join(root, 'node_modules'));
  return { root, cleanup: () => fs.rmSync(root, { recursive: true, force: true }) };
}

interface Phase {
  requests: number;
  errors: number;
  seconds: number;
  latenciesMs: number[];
}

/** `concurrency` closed loops of POST /infer for `ms` milliseconds. */
async function drive(port: number, model: string, ms: number, agent: http.Agent): Promise<Phase> {
  const row = Array.from({ length: 16 }, (_, i) => i / 16);
  const body = Buffer.from(JSON.stringify({ inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [1, 16], data: row }] }));
  const latencies: number[] = [];
  let errors = 0;
  const one = () =>
    new Promise<void>((resolve) => {
      const t0 = performance.now();
      const req = http.request(
        { host: '127.0.0.1', port, path: `/v2/models/${model}/infer`, method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': body.length } },
        (res) => {
          res.resume();
          res.on('end', () => {
            if (res.statusCode === 200) latencies.push(performance.now() - t0);
            else errors++;
            resolve();
          });
        },
      );
      req.on('error', () => {
        errors++;
        resolve();
      });
      req.end(body);
    });
  const start = performance.now();
  const end = start + ms;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < end) await one();
    }),
  );
  return { requests: latencies.length, errors, seconds: (performance.now() - start) / 1000, latenciesMs: latencies };
}

async function statsOf(port: number, model: string): Promise<{ inference: number; executions: number }> {
  const res = await fetch(`http://127.0.0.1:${port}/v2/models/${model}/stats`);
  const s = ((await res.json()) as { model_stats: { inference_count: number; execution_count: number }[] }).model_stats[0]!;
  return { inference: s.inference_count, executions: s.execution_count };
}

export default async function main(argv: string[]): Promise<void> {
  const args = parseArgs(argv);
  const i = args.rest.indexOf('--seconds');
  const phaseMs = i >= 0 ? Number(args.rest[i + 1]) * 1000 : 4000;
  logSettings.sink = () => {}; // the server's own log would interleave with the report
  const repo = makeRepository();
  let server: RunningServer | undefined;
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  try {
    progress('starting the server (batched, unbatched)');
    server = await startServer({ modelRepository: repo.root, httpPort: 0, logger: createLogger() });
    if (server.failed.size > 0) throw new Error(`models failed to load: ${[...server.failed].map(([m, e]) => `${m}: ${e}`).join('; ')}`);
    const port = server.ports.http!;
    for (const model of ['unbatched', 'batched']) await drive(port, model, WARMUP_MS, agent);

    const results: Record<string, { rps: number[]; lat: number[]; errors: number; before: { inference: number; executions: number } }> = {};
    for (const model of ['unbatched', 'batched']) results[model] = { rps: [], lat: [], errors: 0, before: await statsOf(port, model) };
    for (let r = 0; r < ROUNDS; r++) {
      for (const model of r % 2 === 0 ? ['unbatched', 'batched'] : ['batched', 'unbatched']) {
        const p = await drive(port, model, phaseMs, agent);
        const acc = results[model]!;
        acc.rps.push(p.requests / p.seconds);
        for (const l of p.latenciesMs) acc.lat.push(l);
        acc.errors += p.errors;
        progress(`round ${r + 1}/${ROUNDS} ${model}: ${fmt(p.requests / p.seconds)} req/s`);
      }
    }
    const rows: string[][] = [];
    const summary: Record<string, number> = {};
    for (const model of ['unbatched', 'batched']) {
      const acc = results[model]!;
      const after = await statsOf(port, model);
      const meanBatch = (after.inference - acc.before.inference) / Math.max(1, after.executions - acc.before.executions);
      const rps = median(acc.rps);
      const p50 = percentile(acc.lat, 50);
      const p99 = percentile(acc.lat, 99);
      rows.push([model, fmt(rps), fmt(p50), fmt(p99), fmt(meanBatch), String(acc.errors)]);
      Object.assign(summary, { [`${model}Rps`]: rps, [`${model}P50Ms`]: p50, [`${model}P99Ms`]: p99, [`${model}MeanBatch`]: meanBatch, [`${model}Errors`]: acc.errors });
    }
    summary.speedup = summary.batchedRps! / summary.unbatchedRps!;
    summary.concurrency = CONCURRENCY;
    const text = [
      `batching: models/batch_concat (2 ms per call + a 16x4 dense layer per row), ${CONCURRENCY} requests in flight over HTTP/JSON, ${ROUNDS} rounds of ${phaseMs / 1000} s each`,
      '',
      formatTable(['model', 'req/s', 'p50 ms', 'p99 ms', 'mean batch', 'errors'], rows),
      '',
      `speedup (batched / unbatched req/s): ${fmt(summary.speedup)}x (target >= 4x)`,
    ].join('\n');
    report(args, text, summary);
  } finally {
    agent.destroy();
    await server?.close();
    repo.cleanup();
  }
}
