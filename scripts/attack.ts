/**
 * Attack soak: a real server (real stubs, loopback sockets) under bounded floods from hostile
 * clients, beside normal traffic to a canary model. Each round runs every attack once:
 *   - connection flood: idle connections up to the HTTP cap, and more (closed as accepted);
 *   - slow-loris: chunked bodies that never end, headers that never end (closed after the timeouts);
 *   - oversize: HTTP bodies over the body limit (413), a gRPC message over its limit (RESOURCE_EXHAUSTED);
 *   - deep JSON: bodies nested 100,000 levels (400);
 *   - cancel storm: a gRPC stream with thousands of queued requests, cancelled at once;
 *   - registration flood: many system shared-memory registrations of one file, then unregistered
 *     (skipped, and said so, when the server refuses client shared memory).
 * After each round the script prints what must not grow — host fds, RSS, heap after gc, the
 * schedulers' live collections, registered regions, /dev/shm files, child processes — and the
 * canary's latency during the round.
 *
 *   npx tsx scripts/attack.ts [--seconds 60] [--round 10] [--storm 5000]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import http from 'node:http';
import v8 from 'node:v8';
import vm from 'node:vm';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

const { startServer } = await import('../src/server/start.js');
const { createLogger, logSettings } = await import('../src/log/logger.js');
const { GRPC_PROTO_DIR } = await import('../src/server/grpc/proto.js');

const here = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(here, '..');
function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
}
const TOTAL_S = arg('seconds', 60);
const ROUND_S = arg('round', 10);
const STORM = arg('storm', 5000);
const HTTP_CAP = 200;
const TIMEOUT_MS = 1500;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const gc = (globalThis as { gc?: () => void }).gc ?? ((): (() => void) => {
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
})();

// ---- the server ---------------------------------------------------------------------------------

const repo = fs.mkdtempSync(path.join(os.tmpdir(), 'stubhost-attack-'));
const gate = fs.readFileSync(path.join(ROOT, 'test/fixtures/models/dos/gate.ts'), 'utf8');
for (const [name, hold] of [['canary', 0], ['hold', 1]] as const) {
  fs.mkdirSync(path.join(repo, name, '1'), { recursive: true });
  fs.writeFileSync(path.join(repo, name, '1/model.ts'), gate);
  fs.writeFileSync(path.join(repo, name, 'config.pbtxt'), `name: "${name}"
backend: "typescript"
max_batch_size: 0
input [ { name: "INPUT0", data_type: TYPE_FP32, dims: [ -1 ] } ]
output [ { name: "OUT", data_type: TYPE_FP32, dims: [ -1 ] }, { name: "CANCELLED", data_type: TYPE_INT32, dims: [ 1 ] } ]
instance_group [ { count: 1, kind: KIND_CPU } ]
parameters [ { key: "hold", value: { string_value: "${hold}" } }, { key: "instance_prefetch", value: { string_value: "0" } } ]
`);
}
const logCounts = new Map<string, number>();
/** Warning and error messages (numbers blanked), with how often each came. */
const complaints = new Map<string, number>();
logSettings.format = 'json';
logSettings.sink = (line, level) => {
  logCounts.set(level, (logCounts.get(level) ?? 0) + 1);
  if (level === 'warn' || level === 'error') {
    const msg = `${level}: ${String((JSON.parse(line) as { msg: unknown }).msg).replace(/\d+/g, 'N').slice(0, 160)}`;
    complaints.set(msg, (complaints.get(msg) ?? 0) + 1);
  }
};
const server = await startServer({
  modelRepository: repo, httpPort: 0, grpcPort: 0, metricsPort: undefined, stubTimeoutMs: 10_000, logger: createLogger(),
  httpMaxConnections: HTTP_CAP, grpcMaxConnections: 100, httpRequestTimeoutMs: TIMEOUT_MS, httpHeadersTimeoutMs: TIMEOUT_MS,
});
const HTTP_PORT = server.ports.http!;
const GRPC_PORT = server.ports.grpc!;
const pkg = protoLoader.loadSync('grpc_service.proto', { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true, includeDirs: [GRPC_PROTO_DIR] });
const inference = (grpc.loadPackageDefinition(pkg) as any).inference;
const grpcc = new inference.GRPCInferenceService(`127.0.0.1:${GRPC_PORT}`, grpc.credentials.createInsecure());
const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });

// ---- clients ------------------------------------------------------------------------------------

function post(pathname: string, body: string | Buffer, headers: Record<string, string | number> = {}): Promise<number> {
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port: HTTP_PORT, path: pathname, method: 'POST', agent, headers: { 'content-type': 'application/json', ...headers } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', () => resolve(0));
    req.end(body);
  });
}
const inferBody = (v: number): string => JSON.stringify({ inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [1], data: [v] }] });

/** Normal traffic: one canary request after another; latencies of this round. */
let latencies: number[] = [];
let canaryFailures = 0;
let stopCanary = false;
async function canary(): Promise<void> {
  while (!stopCanary) {
    const t0 = performance.now();
    const status = await post('/v2/models/canary/infer', inferBody(1));
    latencies.push(performance.now() - t0);
    if (status !== 200) canaryFailures++;
    await sleep(20);
  }
}

function connect(): Promise<net.Socket | undefined> {
  return new Promise((resolve) => {
    const s = net.connect(HTTP_PORT, '127.0.0.1');
    s.once('connect', () => resolve(s));
    s.once('error', () => resolve(undefined));
  });
}
const closed = (s: net.Socket): Promise<void> => new Promise((r) => (s.destroyed ? r() : s.once('close', () => r())));

const results = new Map<string, string>();

async function connectionFlood(): Promise<void> {
  const open: net.Socket[] = [];
  for (let i = 0; i < HTTP_CAP + 100; i++) {
    const s = await connect();
    if (s) open.push(s);
  }
  await sleep(200);
  const dropped = open.filter((s) => s.destroyed || s.readableEnded).length;
  for (const s of open) s.destroy();
  results.set('connection flood', `${open.length} connected, ${dropped} closed by the cap of ${HTTP_CAP}`);
}

async function slowLoris(): Promise<void> {
  const socks = (await Promise.all(Array.from({ length: 20 }, connect))).filter((s): s is net.Socket => s !== undefined);
  const t0 = performance.now();
  socks.forEach((s, i) => {
    s.on('data', () => {});
    s.on('error', () => {});
    if (i % 2 === 0) s.write('POST /v2/models/canary/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{"in\r\n');
    else s.write('GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Slow: ');
  });
  await Promise.all(socks.map(closed));
  results.set('slow-loris', `${socks.length} closed by the server after ${Math.round(performance.now() - t0)} ms`);
}

async function oversize(): Promise<void> {
  // Declared too large: refused from the header, the body is never read.
  const big = await new Promise<number>((resolve) => {
    const req = http.request({ host: '127.0.0.1', port: HTTP_PORT, path: '/v2/models/canary/infer', method: 'POST', headers: { 'content-length': 65 * 1024 * 1024 + 1 } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
      req.destroy();
    });
    req.on('error', () => resolve(0));
    req.write(Buffer.alloc(64 * 1024));
  });
  const code = await new Promise<number>((resolve) => {
    const b = Buffer.alloc(80 * 1024 * 1024);
    grpcc.ModelInfer({ model_name: 'canary', inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [b.length / 4] }], raw_input_contents: [b] }, (err: grpc.ServiceError | null) => resolve(err?.code ?? 0));
  });
  results.set('oversize', `HTTP 65 MiB body → ${big}, gRPC 80 MiB → status ${code}${code === grpc.status.RESOURCE_EXHAUSTED ? ' (RESOURCE_EXHAUSTED)' : ''}`);
}

async function deepJson(): Promise<void> {
  const deep = '['.repeat(100_000) + ']'.repeat(100_000);
  const statuses = new Map<number, number>();
  for (const [route, body] of [
    ['/v2/models/canary/infer', `{"inputs":${deep}}`], ['/v2/models/canary/generate', `{"INPUT0":${deep}}`],
    ['/v2/logging', `{"x":${deep}}`], ['/v2/repository/index', `{"ready":${deep}}`],
  ] as const) {
    for (let i = 0; i < 5; i++) {
      const s = await post(route, body);
      statuses.set(s, (statuses.get(s) ?? 0) + 1);
    }
  }
  results.set('deep JSON', [...statuses].map(([s, n]) => `${n}× ${s}`).join(', '));
}

async function cancelStorm(): Promise<void> {
  const release = path.join(repo, 'release');
  const holding = post('/v2/models/hold/infer', inferBody(1));
  const mv = (server.core as any).repository.get('hold');
  while (mv.stats.pending !== 0 || (mv.scheduler?.inflight ?? 0) === 0) await sleep(5);
  const call = grpcc.ModelStreamInfer();
  call.on('error', () => {});
  call.on('data', () => {});
  const msg = { model_name: 'hold', inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [1], contents: { fp32_contents: [2] } }] };
  for (let i = 0; i < STORM; i++) call.write(msg);
  while (mv.stats.pending < STORM) await sleep(5);
  const t0 = performance.now();
  call.cancel();
  const canaryStatus = await post('/v2/models/canary/infer', inferBody(3));
  const canaryMs = performance.now() - t0;
  while (mv.stats.pending > 0) await sleep(1);
  const drainedMs = performance.now() - t0;
  fs.writeFileSync(release, '');
  await holding;
  fs.rmSync(release);
  results.set('cancel storm', `${STORM} queued, cancelled: queue empty after ${drainedMs.toFixed(0)} ms, a canary answered ${canaryStatus} after ${canaryMs.toFixed(0)} ms`);
}

async function registrationFlood(): Promise<void> {
  const name = `stubhost-attack-client-${process.pid}`;
  const file = `/dev/shm/${name}`;
  fs.writeFileSync(file, Buffer.alloc(4096));
  let ok = 0;
  let refused = '';
  for (let i = 0; i < 2000; i++) {
    const res = await new Promise<{ status: number; body: string }>((resolve) => {
      const req = http.request({ host: '127.0.0.1', port: HTTP_PORT, path: `/v2/systemsharedmemory/region/r${i}/register`, method: 'POST', agent, headers: { 'content-type': 'application/json' } }, (r) => {
        let body = '';
        r.on('data', (c) => (body += c));
        r.on('end', () => resolve({ status: r.statusCode ?? 0, body }));
      });
      req.on('error', () => resolve({ status: 0, body: '' }));
      req.end(JSON.stringify({ key: `/${name}`, offset: 0, byte_size: 4096 }));
    });
    if (res.status === 200) ok++;
    else {
      refused = `${res.status} ${res.body.slice(0, 120)}`;
      break;
    }
  }
  await post('/v2/systemsharedmemory/unregister', '');
  fs.rmSync(file, { force: true });
  results.set('registration flood', ok === 0 ? `skipped: the server refuses registration (${refused})` : `${ok} registered${refused ? ` then refused (${refused})` : ''}, all unregistered`);
}

// ---- measuring ----------------------------------------------------------------------------------

function children(): number {
  let n = 0;
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const st = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
      if (Number(f[1]) === process.pid && f[0] !== 'Z') n++;
    } catch { /* gone */ }
  }
  return n;
}

type Sample = Record<string, number>;
async function sample(): Promise<Sample> {
  gc();
  await sleep(50);
  gc();
  const s: Sample = {
    fds: fs.readdirSync('/proc/self/fd').length,
    rssMiB: process.memoryUsage().rss / 2 ** 20,
    heapMiB: process.memoryUsage().heapUsed / 2 ** 20,
    children: children(),
    shmFiles: fs.readdirSync('/dev/shm').filter((n) => n.startsWith(`stubhost-${process.pid}-`) || n.startsWith('stubhost-attack-')).length,
    shmRegions: (server.shm as any).regions?.size ?? 0,
  };
  for (const mv of (server.core as any).repository.loadedVersions() as any[]) {
    const sch = mv.scheduler;
    if (!sch?.unsettled) continue;
    s[`${mv.name}.queue+listeners+unsettled`] = sch.queue.size + sch.listeners.size + sch.unsettled.size;
  }
  return s;
}
const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? 0 : s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

// ---- the run ------------------------------------------------------------------------------------

console.log(`attack: ${TOTAL_S} s in rounds of ${ROUND_S} s; HTTP cap ${HTTP_CAP}, request/header timeout ${TIMEOUT_MS} ms, storm ${STORM}`);
const started = Date.now();
const samples: Sample[] = [await sample()];
let round = 0;
while (Date.now() - started + ROUND_S * 1000 <= TOTAL_S * 1000 || round === 0) {
  round++;
  const roundStart = Date.now();
  latencies = [];
  canaryFailures = 0;
  stopCanary = false;
  const normal = [canary(), canary()];
  for (const attack of [connectionFlood, slowLoris, oversize, deepJson, cancelStorm, registrationFlood]) await attack();
  while (Date.now() - roundStart < ROUND_S * 1000) await sleep(50);
  stopCanary = true;
  await Promise.all(normal);
  const s = await sample();
  samples.push(s);
  console.log(`\nround ${round} (${Math.round((Date.now() - started) / 1000)} s): canary ${latencies.length} requests, ${canaryFailures} failed, latency p50 ${pct(latencies, 50).toFixed(1)} ms, p99 ${pct(latencies, 99).toFixed(1)} ms, max ${pct(latencies, 100).toFixed(1)} ms`);
  for (const [k, v] of results) console.log(`  ${k.padEnd(20)} ${v}`);
  console.log(`  ${Object.entries(s).map(([k, v]) => `${k} ${Number.isInteger(v) ? v : v.toFixed(1)}`).join(', ')}`);
}

console.log('\nmust not grow'.padEnd(36) + 'before'.padStart(10) + '   per round');
for (const k of Object.keys(samples.at(-1)!)) {
  const series = samples.map((s) => s[k] ?? 0);
  const grows = series.length > 2 && series.every((v, i) => i === 0 || v >= series[i - 1]!) && series.at(-1)! > series[1]!;
  console.log(`${k.padEnd(35)}${series[0]!.toFixed(Number.isInteger(series[0]) ? 0 : 1).padStart(10)}   ${series.slice(1).map((v) => (Number.isInteger(v) ? String(v) : v.toFixed(1))).join(' ')}${grows && !/rss/i.test(k) ? '   <-- grows every round' : ''}`);
}
console.log(`log lines by level: ${JSON.stringify(Object.fromEntries(logCounts))}`);
for (const [msg, n] of complaints) console.log(`  ${n}× ${msg}`);
grpcc.close();
agent.destroy();
await server.close();
fs.rmSync(repo, { recursive: true, force: true });
console.log(`after close: children ${children()}, shm files of this process ${fs.readdirSync('/dev/shm').filter((n) => n.startsWith(`stubhost-${process.pid}-`)).length}`);
process.exit(0);
