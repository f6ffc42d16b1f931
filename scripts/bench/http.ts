/**
 * `npm run bench -- http [--json] [--seconds <s>]`: end-to-end infer requests/s and latency of
 * add_sub over HTTP keep-alive, against a bare node:http server that parses the same JSON body
 * and computes the same sums in-process, measured in the same run.
 *
 *   stubhost   `stubhost serve` as a child process (HTTP front-end → scheduler → stub process over
 *              shared memory → back), serving a copy of models/add_sub.
 *   baseline   this file run as `--baseline <port>`: node:http, JSON.parse, the four sums and
 *              differences, the same response JSON. No validation, no scheduling, no IPC.
 *
 * Both servers are child processes, so the load generator (this process) never shares an event
 * loop with a server. For each concurrency (1, 16, 64) the two are measured in alternating
 * rounds so machine noise hits them alike; requests/s is the median over rounds, p50/p99 come
 * from every latency of every round. On a 2-core machine the client, the host and the stub share
 * the cores, which the baseline does not pay for: the ratio is what a model costs end to end.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { fmt, formatTable, median, nowMs, parseArgs, percentile, progress, report } from './common.js';

const thisFile = fileURLToPath(import.meta.url);
const repoRoot = path.resolve(path.dirname(thisFile), '../..');

const CONCURRENCY = [1, 16, 64] as const;
const ROUNDS = 3;
const WARMUP_MS = 400;

const BODY = Buffer.from(JSON.stringify({
  inputs: [
    { name: 'INPUT0', datatype: 'FP32', shape: [4], data: [1, 2, 3, 4] },
    { name: 'INPUT1', datatype: 'FP32', shape: [4], data: [0.5, 0.25, 2, -1] },
  ],
}));
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
// The load generator.

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

function post(agent: http.Agent, port: number, urlPath: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1', port, path: urlPath, method: 'POST', agent,
      headers: { 'Content-Type': 'application/json', 'Content-Length': BODY.length },
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
    req.end(BODY);
  });
}

interface Sample {
  requests: number;
  seconds: number;
  latenciesMs: number[];
}

/** `concurrency` closed-loop clients on keep-alive connections for `ms`; every reply is checked. */
async function drive(port: number, concurrency: number, ms: number, record: boolean): Promise<Sample> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const urlPath = '/v2/models/add_sub/infer';
  const latenciesMs: number[] = [];
  let requests = 0;
  const start = nowMs();
  const end = start + ms;
  try {
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (nowMs() < end) {
        const t0 = nowMs();
        const text = await post(agent, port, urlPath);
        const t1 = nowMs();
        if (!text.includes(EXPECTED_SUM)) throw new Error(`wrong answer: ${text}`);
        requests++;
        if (record) latenciesMs.push(t1 - t0);
      }
    }));
  } finally {
    agent.destroy();
  }
  return { requests, seconds: (nowMs() - start) / 1000, latenciesMs };
}

async function waitForLine(child: ChildProcess, pattern: RegExp, timeoutMs: number, what: string): Promise<void> {
  let seen = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} did not start within ${timeoutMs / 1000} s:\n${seen}`)), timeoutMs);
    const onData = (c: Buffer) => {
      seen += c.toString();
      if (pattern.test(seen)) {
        clearTimeout(timer);
        child.stdout?.off('data', onData);
        child.stderr?.off('data', onData);
        resolve();
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited with ${code}:\n${seen}`));
    });
  });
}

export default async function main(argv: string[]): Promise<void> {
  const args = parseArgs(argv);
  const i = args.rest.indexOf('--seconds');
  const roundMs = i >= 0 ? Number(args.rest[i + 1]) * 1000 : 2000;
  if (!Number.isFinite(roundMs) || roundMs <= 0) throw new Error('--seconds <s>: a positive number of seconds per round');
  const started = nowMs();

  const repo = fs.mkdtempSync(path.join(os.tmpdir(), 'stubhost-bench-http-'));
  fs.cpSync(path.join(repoRoot, 'models/add_sub'), path.join(repo, 'add_sub'), { recursive: true });
  const children: ChildProcess[] = [];
  try {
    const [hostPort, basePort] = [await freePort(), await freePort()];
    progress(`starting stubhost (port ${hostPort}) and the bare node:http baseline (port ${basePort})`);
    const host = spawn(process.execPath, [path.join(repoRoot, 'bin/stubhost.js'), 'serve', '--model-repository', repo,
      '--http-port', String(hostPort), '--http-address', '127.0.0.1', '--allow-grpc', 'false', '--allow-metrics', 'false', '--log-format', 'json'],
    { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(host);
    const base = spawn(process.execPath, ['--import', 'tsx', thisFile, '--baseline', String(basePort)],
      { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    children.push(base);
    await Promise.all([
      waitForLine(host, /model\(s\) ready/, 30_000, 'stubhost'),
      waitForLine(base, /listening/, 15_000, 'the baseline server'),
    ]);
    for (const c of children) {
      c.stdout?.resume();
      c.stderr?.resume();
    }

    const rows: string[][] = [];
    const result: Record<string, number> = {};
    for (const c of CONCURRENCY) {
      const rps: Record<'stubhost' | 'baseline', number[]> = { stubhost: [], baseline: [] };
      const lat: Record<'stubhost' | 'baseline', number[]> = { stubhost: [], baseline: [] };
      for (const [name, port] of [['stubhost', hostPort], ['baseline', basePort]] as const) await drive(port, c, WARMUP_MS, false);
      for (let r = 0; r < ROUNDS; r++) {
        // Alternate which goes first so neither always runs on a warmer (or hotter) machine.
        const order = r % 2 === 0 ? (['stubhost', 'baseline'] as const) : (['baseline', 'stubhost'] as const);
        for (const name of order) {
          const s = await drive(name === 'stubhost' ? hostPort : basePort, c, roundMs, true);
          rps[name].push(s.requests / s.seconds);
          for (const l of s.latenciesMs) lat[name].push(l);
        }
        progress(`concurrency ${c}: round ${r + 1}/${ROUNDS}`);
      }
      const sh = { rps: median(rps.stubhost), p50: percentile(lat.stubhost, 50), p99: percentile(lat.stubhost, 99) };
      const bl = { rps: median(rps.baseline), p50: percentile(lat.baseline, 50), p99: percentile(lat.baseline, 99) };
      rows.push([String(c), fmt(sh.rps), fmt(sh.p50), fmt(sh.p99), fmt(bl.rps), fmt(bl.p50), fmt(bl.p99), fmt(sh.rps / bl.rps, 2)]);
      Object.assign(result, {
        [`c${c}RequestsPerSec`]: sh.rps, [`c${c}P50Ms`]: sh.p50, [`c${c}P99Ms`]: sh.p99,
        [`c${c}BaselineRequestsPerSec`]: bl.rps, [`c${c}BaselineP50Ms`]: bl.p50, [`c${c}BaselineP99Ms`]: bl.p99,
        [`c${c}Ratio`]: sh.rps / bl.rps,
      });
    }
    const text =
      `HTTP infer benchmark: add_sub (2 × FP32[4], JSON) over keep-alive, ${ROUNDS} alternating rounds of ${roundMs / 1000} s per concurrency ` +
      `(${((nowMs() - started) / 1000).toFixed(1)} s, ${os.cpus().length} cores)\n` +
      `ratio = stubhost req/s ÷ bare node:http req/s computing the same sums in-process\n` +
      formatTable(['concurrency', 'stubhost req/s', 'p50 ms', 'p99 ms', 'baseline req/s', 'p50 ms', 'p99 ms', 'ratio'], rows);
    report(args, text, result);
  } finally {
    const host = children[0];
    if (host && host.exitCode === null) {
      // SIGTERM so the stub is finalized and its shared memory released.
      host.kill('SIGTERM');
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          host.kill('SIGKILL');
          resolve();
        }, 5000);
        host.once('exit', () => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    for (const c of children.slice(1)) c.kill('SIGKILL');
    fs.rmSync(repo, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--baseline' && path.resolve(process.argv[1] ?? '') === thisFile) {
  runBaseline(Number(process.argv[3]));
}
