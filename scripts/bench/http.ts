/**
 * `npm run bench -- http [--json] [--seconds <s>] [--cpu-prof <dir>]`: end-to-end infer
 * requests/s, latency and CPU per request of add_sub over HTTP keep-alive, against a bare
 * node:http server that parses the same JSON body and computes the same sums, in the same run.
 *
 *   stubhost   `stubhost serve` (HTTP front-end → scheduler → stub process over shared memory →
 *              back), serving a copy of models/add_sub.
 *   baseline   this file run as `--baseline <port>`: node:http, JSON.parse, the two sums, the same
 *              response JSON. No validation, no scheduling, no IPC.
 *
 * Load: wrk (one thread, `concurrency` keep-alive connections, the POST body from a Lua script)
 * where it is installed; else autocannon's CLI where it resolves; else a closed-loop node:http
 * client in this process. The load generator runs on one CPU and the servers (the stub with its
 * host) on another when there are two (lib/servers.ts). For each concurrency (1, 16, 64) the two
 * servers get alternating rounds; every figure is the median over rounds. CPU µs per request
 * come from /proc: the host process alone, its stub apart, and the whole bare server.
 *
 * --cpu-prof <dir>: the host runs with node --cpu-prof and writes its profile there on exit
 * (read it with `npx tsx scripts/cpuprofile-top.ts <file>`).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { nowMs, percentile } from './common.js';
import {
  type LoadGenerator, type Placement, collect, hasCommand, spawnOn, runServerComparison,
} from './lib/servers.js';

const thisFile = fileURLToPath(import.meta.url);
const repoRoot = path.resolve(path.dirname(thisFile), '../..');

const CONCURRENCY = [1, 16, 64] as const;
const ROUNDS = 3;
const URL_PATH = '/v2/models/add_sub/infer';

const BODY = JSON.stringify({
  inputs: [
    { name: 'INPUT0', datatype: 'FP32', shape: [4], data: [1, 2, 3, 4] },
    { name: 'INPUT1', datatype: 'FP32', shape: [4], data: [0.5, 0.25, 2, -1] },
  ],
});
const EXPECTED_SUM = '[1.5,2.25,5,3]';

// ---------------------------------------------------------------------------------------------
// The baseline server (child process).

function runBaseline(port: number): void {
  const server = http.createServer({ noDelay: true }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const doc = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { inputs: { name: string; shape: number[]; data: number[] }[] };
      const a = Float32Array.from(doc.inputs[0]!.data);
      const b = Float32Array.from(doc.inputs[1]!.data);
      const sum = new Float32Array(a.length);
      const diff = new Float32Array(a.length);
      for (let i = 0; i < a.length; i++) {
        sum[i] = a[i]! + b[i]!;
        diff[i] = a[i]! - b[i]!;
      }
      const shape = JSON.stringify(doc.inputs[0]!.shape);
      const body = `{"model_name":"add_sub","model_version":"1","outputs":[` +
        `{"name":"OUTPUT0","datatype":"FP32","shape":${shape},"data":[${sum.join(',')}]},` +
        `{"name":"OUTPUT1","datatype":"FP32","shape":${shape},"data":[${diff.join(',')}]}]}`;
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  server.listen(port, '127.0.0.1', () => process.stdout.write('listening\n'));
  process.on('disconnect', () => process.exit(0));
}

// ---------------------------------------------------------------------------------------------
// Load generators: each runs `concurrency` keep-alive connections for `seconds`.


/** wrk with a Lua script that sets the POST and prints the figures as one JSON line when done. */
function wrkGenerator(cpu: string | undefined, dir: string): LoadGenerator {
  const script = path.join(dir, 'post.lua');
  fs.writeFileSync(script, [
    'wrk.method = "POST"',
    `wrk.body = ${JSON.stringify(BODY)}`,
    'wrk.headers["Content-Type"] = "application/json"',
    'done = function(summary, latency, requests)',
    '  local e = summary.errors',
    '  io.write(string.format("WRK {\\"requests\\":%d,\\"us\\":%d,\\"p50\\":%f,\\"p99\\":%f,\\"bad\\":%d}\\n",',
    '    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),',
    '    e.status + e.connect + e.read + e.write + e.timeout))',
    'end',
  ].join('\n'));
  return {
    name: 'wrk',
    async run(port, concurrency, seconds) {
      const out = await collect(spawnOn(cpu, 'wrk', ['-t1', `-c${concurrency}`, `-d${seconds}s`, '--timeout', '10s', '-s', script,
        `http://127.0.0.1:${port}${URL_PATH}`], { stdio: ['ignore', 'pipe', 'pipe'] }));
      const line = /^WRK (.*)$/m.exec(out)?.[1];
      if (!line) throw new Error(`wrk printed no result:\n${out}`);
      const r = JSON.parse(line) as { requests: number; us: number; p50: number; p99: number; bad: number };
      if (r.bad > 0) throw new Error(`wrk: ${r.bad} failed requests (non-2xx or socket errors) on port ${port}`);
      return { requests: r.requests, seconds: r.us / 1e6, p50Ms: r.p50 / 1000, p99Ms: r.p99 / 1000 };
    },
  };
}

/** autocannon's CLI in its own process (JSON output). */
function autocannonGenerator(cpu: string | undefined, cli: string): LoadGenerator {
  return {
    name: 'autocannon',
    async run(port, concurrency, seconds) {
      const out = await collect(spawnOn(cpu, process.execPath, [cli, '-j', '-c', String(concurrency), '-d', String(seconds),
        '-m', 'POST', '-H', 'Content-Type=application/json', '-b', BODY, `http://127.0.0.1:${port}${URL_PATH}`],
      { stdio: ['ignore', 'pipe', 'pipe'] }));
      const r = JSON.parse(out.trim().split('\n').pop()!) as {
        requests: { total: number }; duration: number; latency: { p50: number; p99: number }; non2xx: number; errors: number;
      };
      if (r.non2xx + r.errors > 0) throw new Error(`autocannon: ${r.non2xx + r.errors} failed requests on port ${port}`);
      return { requests: r.requests.total, seconds: r.duration, p50Ms: r.latency.p50, p99Ms: r.latency.p99 };
    },
  };
}

/** The last resort: a closed-loop node:http client in this process (pinned to the load CPU). */
function inProcessGenerator(cpu: string | undefined): LoadGenerator {
  if (cpu !== undefined) spawnSync('taskset', ['-a', '-cp', cpu, String(process.pid)], { stdio: 'ignore' });
  const body = Buffer.from(BODY);
  const post = (agent: http.Agent, port: number): Promise<string> => new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1', port, path: URL_PATH, method: 'POST', agent,
      headers: { 'Content-Type': 'application/json', 'Content-Length': body.length },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode !== 200) reject(new Error(`HTTP ${res.statusCode}: ${text}`));
        else resolve(text);
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
  return {
    name: 'in-process node:http client',
    async run(port, concurrency, seconds) {
      const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
      const latencies: number[] = [];
      const start = nowMs();
      const end = start + seconds * 1000;
      try {
        await Promise.all(Array.from({ length: concurrency }, async () => {
          while (nowMs() < end) {
            const t0 = nowMs();
            const text = await post(agent, port);
            latencies.push(nowMs() - t0);
            if (!text.includes(EXPECTED_SUM)) throw new Error(`wrong answer: ${text}`);
          }
        }));
      } finally {
        agent.destroy();
      }
      return { requests: latencies.length, seconds: (nowMs() - start) / 1000, p50Ms: percentile(latencies, 50), p99Ms: percentile(latencies, 99) };
    },
  };
}

function loadGenerator(place: Placement, dir: string): LoadGenerator {
  if (hasCommand('wrk', ['-v'])) return wrkGenerator(place.loadCpu, dir);
  try {
    const cli = createRequire(import.meta.url).resolve('autocannon/autocannon.js');
    return autocannonGenerator(place.loadCpu, cli);
  } catch {
    return inProcessGenerator(place.loadCpu);
  }
}

/** One request by hand: the load generators count statuses, not answers. */
async function checkAnswer(port: number, what: string): Promise<void> {
  const res = await fetch(`http://127.0.0.1:${port}${URL_PATH}`, { method: 'POST', body: BODY, headers: { 'Content-Type': 'application/json' } });
  const text = await res.text();
  if (res.status !== 200 || !text.includes(EXPECTED_SUM)) throw new Error(`${what} answered HTTP ${res.status}: ${text}`);
}

export default async function main(argv: string[]): Promise<void> {
  await runServerComparison(argv, {
    protocol: 'http',
    repoRoot,
    benchFile: thisFile,
    baselineName: 'the bare node:http baseline',
    serveFlags: (port) => ['--http-port', String(port), '--http-address', '127.0.0.1', '--allow-grpc', 'false'],
    loadGenerator,
    checkAnswer,
    levels: CONCURRENCY,
    rounds: ROUNDS,
    heading: (gen, seconds, runNote) =>
      `HTTP infer benchmark: add_sub (2 × FP32[4], JSON) over keep-alive, load by ${gen}, ${ROUNDS} alternating rounds of ${seconds} s per concurrency (${runNote})\n` +
      'baseline = a bare node:http server parsing the same JSON and computing the same sums',
  });
}

if (process.argv[2] === '--baseline' && path.resolve(process.argv[1] ?? '') === thisFile) {
  runBaseline(Number(process.argv[3]));
}
