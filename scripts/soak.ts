/**
 * Leak soak: starts a real server (real stubs, loopback sockets) and drives a mix of traffic for a
 * bounded time, in rounds. After each round the load stops, in-flight work drains, idle sequences
 * time out, and the script prints what a long-running server must not accumulate: host heap (after
 * gc), the sizes of the schedulers' and stubs' internal collections, host- and stub-side arena
 * usage, the stub's heap, open file descriptors, child processes, /dev/shm files and timers.
 * Anything that grows round after round is a leak.
 *
 *   npx tsx scripts/soak.ts [--seconds 180] [--round 20] [--seed 1] [--kill-ms 9000 | --no-kill] [--snapshots DIR]
 *
 * The mix: HTTP JSON and binary, gRPC ModelInfer and ModelStreamInfer, BLS fan-outs (and BLS to a
 * missing model, BLS timeouts, an early-stopped BLS stream), decoupled streams, sequences
 * (start/continue/end, and abandoned ones that time out), bad inputs, model errors, client
 * disconnects mid-request, request timeouts, queue-full rejections, and a stub SIGKILL now and then.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import v8 from 'node:v8';
import vm from 'node:vm';
import { fileURLToPath } from 'node:url';
import { createHook } from 'node:async_hooks';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

// The stubs get --expose-gc too, so their heap figure is measured after a collection.
process.env.STUBHOST_STUB_NODE_ARGS = `${process.env.STUBHOST_STUB_NODE_ARGS ?? ''} --expose-gc`.trim();

const { startServer } = await import('../src/server/start.js');
const { createLogger, logSettings } = await import('../src/log/logger.js');
const { GRPC_PROTO_DIR } = await import('../src/server/grpc/proto.js');

// Every live timer, unref'd ones included (getActiveResourcesInfo lists only ref'd ones).
const liveTimers = new Set<number>();
createHook({
  init(id, type) {
    if (type === 'Timeout') liveTimers.add(id);
  },
  destroy(id) {
    liveTimers.delete(id);
  },
}).enable();

const here = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(here, '..');

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
}
const TOTAL_S = arg('seconds', 180);
const ROUND_S = arg('round', 20);
let seed = arg('seed', 1);
const NO_KILL = process.argv.includes('--no-kill');
/** Mean time between stub SIGKILLs. */
const KILL_MS = arg('kill-ms', 9000);
/** --snapshots DIR: heap snapshots of the host after the first and the last round, to diff. */
const SNAP_DIR = process.argv.includes('--snapshots') ? process.argv[process.argv.indexOf('--snapshots') + 1]! : undefined;
const rand = (): number => {
  seed = (seed * 1103515245 + 12345) & 0x7fffffff;
  return seed / 0x7fffffff;
};
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
// global.gc, also when node was started without --expose-gc (`npx tsx scripts/soak.ts`).
const gc = (globalThis as { gc?: () => void }).gc ?? ((): (() => void) | undefined => {
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
})();

// ---- the repository -----------------------------------------------------------------------------

const repo = fs.mkdtempSync(path.join(os.tmpdir(), 'stubhost-soak-'));
for (const m of ['add_sub', 'identity_fp32', 'string_upper', 'repeat', 'batch_concat']) {
  fs.cpSync(path.join(ROOT, 'models', m), path.join(repo, m), { recursive: true });
}
for (const m of ['bls_caller', 'identity', 'bls_stream']) {
  fs.cpSync(path.join(ROOT, 'test/fixtures/models/bls', m), path.join(repo, m), { recursive: true });
}
const write = (rel: string, text: string): void => {
  fs.mkdirSync(path.dirname(path.join(repo, rel)), { recursive: true });
  fs.writeFileSync(path.join(repo, rel), text);
};
write('ens/config.pbtxt', `
name: "ens"
platform: "ensemble"
max_batch_size: 0
input [ { name: "A" data_type: TYPE_FP32 dims: [ 4 ] }, { name: "B" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "X" data_type: TYPE_FP32 dims: [ 4 ] }, { name: "Y" data_type: TYPE_FP32 dims: [ 4 ] } ]
ensemble_scheduling { step [
  { model_name: "add_sub" model_version: -1 input_map { key: "INPUT0" value: "A" } input_map { key: "INPUT1" value: "B" }
    output_map { key: "OUTPUT0" value: "s" } output_map { key: "OUTPUT1" value: "d" } },
  { model_name: "add_sub" model_version: -1 input_map { key: "INPUT0" value: "s" } input_map { key: "INPUT1" value: "d" }
    output_map { key: "OUTPUT0" value: "X" } output_map { key: "OUTPUT1" value: "Y" } }
] }
`);
fs.mkdirSync(path.join(repo, 'ens/1'), { recursive: true });
write('accumulate/config.pbtxt', `
name: "accumulate"
backend: "typescript"
max_batch_size: 0
input [ { name: "INPUT" data_type: TYPE_INT32 dims: [ 1 ] } ]
output [ { name: "OUTPUT" data_type: TYPE_INT32 dims: [ 1 ] } ]
sequence_batching {
  max_sequence_idle_microseconds: 500000
  control_input [ { name: "START" control [ { kind: CONTROL_SEQUENCE_START int32_false_true: [ 0, 1 ] } ] } ]
  state [ { input_name: "STATE_IN" output_name: "STATE_OUT" data_type: TYPE_INT32 dims: [ 1 ] } ]
}
instance_group [ { count: 1, kind: KIND_CPU } ]
`);
write('accumulate/1/model.ts', `
import { InferenceRequest, InferenceResponse, Tensor } from 'stubhost';
export default class Accumulate {
  execute(requests: InferenceRequest[]) {
    return requests.map((r) => {
      const x = (r.input('INPUT')!.data as Int32Array)[0]!;
      const start = (r.input('START')!.data as Int32Array)[0]!;
      const state = (r.input('STATE_IN')!.data as Int32Array)[0]!;
      const total = (start ? 0 : state) + x;
      return new InferenceResponse({ outputs: [new Tensor('OUTPUT', Int32Array.of(total), [1]), new Tensor('STATE_OUT', Int32Array.of(total), [1])] });
    });
  }
}`);
// mode: ok | error (an error response) | throw (execute throws); delay_ms polls isCancelled().
write('flaky/config.pbtxt', `
name: "flaky"
backend: "typescript"
max_batch_size: 4
input [ { name: "X" data_type: TYPE_FP32 dims: [ -1 ] } ]
output [ { name: "Y" data_type: TYPE_FP32 dims: [ -1 ] } ]
dynamic_batching {
  max_queue_delay_microseconds: 0
  default_queue_policy { max_queue_size: 4 timeout_action: REJECT allow_timeout_override: true }
}
instance_group [ { count: 1, kind: KIND_CPU } ]
`);
write('flaky/1/model.ts', `
import { InferenceRequest, InferenceResponse, Tensor, ModelError } from 'stubhost';
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
export default class Flaky {
  async execute(requests: InferenceRequest[]) {
    if (requests.some((r) => r.parameters.mode === 'throw')) throw new Error('flaky: thrown on purpose');
    const delay = Math.max(0, ...requests.map((r) => Number(r.parameters.delay_ms ?? 0)));
    const t0 = Date.now();
    while (Date.now() - t0 < delay && !requests.every((r) => r.isCancelled())) await sleep(5);
    return requests.map((r) => r.parameters.mode === 'error'
      ? new InferenceResponse({ error: new ModelError('flaky: error on purpose', 'INVALID_ARG') })
      : new InferenceResponse({ outputs: [new Tensor('Y', (r.input('X')!.data as Float32Array).slice(), r.input('X')!.shape)] }));
  }
}`);

// ---- the server ---------------------------------------------------------------------------------

const logCounts = new Map<string, number>();
logSettings.format = 'json';
logSettings.sink = (line) => {
  try {
    const o = JSON.parse(line) as { level?: string };
    logCounts.set(o.level ?? '?', (logCounts.get(o.level ?? '?') ?? 0) + 1);
  } catch {
    /* not JSON */
  }
};
const server = await startServer({ modelRepository: repo, arenaMaxBytes: 16 * 1024 * 1024, httpPort: 0, httpAddress: '127.0.0.1', grpcPort: 0, logger: createLogger() });
if (server.failed.size > 0) {
  console.error('soak: models failed to load:', Object.fromEntries(server.failed));
  await server.close();
  process.exit(1);
}
const base = `http://127.0.0.1:${server.ports.http}`;
const newAgent = (): http.Agent => new http.Agent({ keepAlive: true, maxSockets: 32 });
// Replaced after each round, so idle keep-alive sockets (of this very process) do not count as fds.
let agent = newAgent();

const pkgDef = protoLoader.loadSync('grpc_service.proto', { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true, includeDirs: [GRPC_PROTO_DIR] });
const inference = (grpc.loadPackageDefinition(pkgDef) as any).inference;
const grpcc = new inference.GRPCInferenceService(`127.0.0.1:${server.ports.grpc}`, grpc.credentials.createInsecure());

// ---- traffic ------------------------------------------------------------------------------------

const counts = new Map<string, { ok: number; err: number }>();
function note(kind: string, ok: boolean): void {
  const c = counts.get(kind) ?? { ok: 0, err: 0 };
  if (ok) c.ok++;
  else c.err++;
  counts.set(kind, c);
}

function post(pathname: string, body: Buffer | string, headers: Record<string, string | number> = {}, abortAfterMs?: number): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve) => {
    const req = http.request(`${base}${pathname}`, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.on('error', () => resolve({ status: -1, body: Buffer.alloc(0) }));
    });
    req.on('error', () => resolve({ status: -1, body: Buffer.alloc(0) }));
    if (abortAfterMs !== undefined) setTimeout(() => req.destroy(), abortAfterMs);
    req.end(body);
  });
}
const json = (model: string, payload: unknown, abortAfterMs?: number) => post(`/v2/models/${model}/infer`, JSON.stringify(payload), {}, abortAfterMs);
const f32 = (n: number) => Array.from({ length: n }, (_, i) => i * 0.5);

function grpcUnary(method: string, req: object, deadlineMs?: number): Promise<boolean> {
  return new Promise((resolve) => {
    const opts: grpc.CallOptions = deadlineMs ? { deadline: Date.now() + deadlineMs } : {};
    grpcc[method](req, new grpc.Metadata(), opts, (err: unknown) => resolve(!err));
  });
}
const raw = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/** One stream: several repeat requests (and one to add_sub), cancelled midway now and then. */
function grpcStream(): Promise<boolean> {
  return new Promise((resolve) => {
    const call = grpcc.ModelStreamInfer();
    let ok = true;
    call.on('data', (m: { error_message: string }) => {
      if (m.error_message) ok = false;
    });
    call.on('error', () => resolve(false));
    call.on('end', () => resolve(ok));
    const n = 1 + Math.floor(rand() * 4);
    for (let i = 0; i < n; i++) {
      const len = Math.floor(rand() * 5);
      const delays = rand() < 0.3 ? [{ name: 'DELAY', datatype: 'UINT32', shape: [len], contents: { uint_contents: Array(len).fill(20) } }] : [];
      call.write({ model_name: 'repeat', id: `s${i}`, inputs: [{ name: 'IN', datatype: 'INT32', shape: [len], contents: { int_contents: Array.from({ length: len }, (_, k) => k) } }, ...delays],
        parameters: { triton_enable_empty_final_response: { bool_param: true }, ...(rand() < 0.5 ? { timeout: { int64_param: 60_000_000 } } : {}) } });
    }
    call.write({ model_name: 'add_sub', inputs: [
      { name: 'INPUT0', datatype: 'FP32', shape: [4], contents: { fp32_contents: [1, 2, 3, 4] } },
      { name: 'INPUT1', datatype: 'FP32', shape: [4], contents: { fp32_contents: [1, 1, 1, 1] } }] });
    if (rand() < 0.2) setTimeout(() => call.cancel(), 30);
    else call.end();
  });
}

let seqId = 1_000;
async function sequence(abandon: boolean): Promise<boolean> {
  const id = seqId++;
  const send = (v: number, p: Record<string, unknown>) => json('accumulate', { parameters: { sequence_id: id, ...p }, inputs: [{ name: 'INPUT', shape: [1], datatype: 'INT32', data: [v] }] });
  let ok = (await send(1, { sequence_start: true })).status === 200;
  const n = 1 + Math.floor(rand() * 3);
  for (let i = 0; i < n; i++) ok = (await send(1, {})).status === 200 && ok;
  if (!abandon) ok = (await send(1, { sequence_end: true })).status === 200 && ok;
  return ok;
}

const actions: [string, number, () => Promise<boolean>][] = [
  ['http-json add_sub', 10, async () => (await json('add_sub', { parameters: rand() < 0.3 ? { timeout: 60_000_000 } : {}, inputs: [
    { name: 'INPUT0', shape: [4], datatype: 'FP32', data: [1, 2, 3, 4] }, { name: 'INPUT1', shape: [4], datatype: 'FP32', data: [1, 1, 1, 1] }] })).status === 200],
  ['http-binary identity_fp32', 10, async () => {
    // Tensors over 512 bytes go through the arenas; under the 16 MiB cap, one over 2 MiB gets a dedicated segment.
    const n = rand() < 0.02 ? 700_000 : 1 + Math.floor(rand() * 8192);
    const data = new Float32Array(f32(n));
    const header = Buffer.from(JSON.stringify({ inputs: [{ name: 'INPUT0', shape: [1, n], datatype: 'FP32', parameters: { binary_data_size: n * 4 } }],
      outputs: [{ name: 'OUTPUT0', parameters: { binary_data: true } }] }));
    const r = await post('/v2/models/identity_fp32/infer', Buffer.concat([header, raw(data)]), { 'content-type': 'application/octet-stream', 'inference-header-content-length': header.length });
    return r.status === 200;
  }],
  ['http string_upper', 4, async () => (await json('string_upper', { inputs: [{ name: 'INPUT0', shape: [3], datatype: 'BYTES', data: ['abc', 'déf', 'x'.repeat(rand() < 0.5 ? 10 : 2000)] }] })).status === 200],
  ['http batch_concat', 4, async () => {
    const rows = 1 + Math.floor(rand() * 32);
    return (await json('batch_concat', { inputs: [{ name: 'INPUT0', shape: [rows, 16], datatype: 'FP32', data: f32(rows * 16) }] })).status === 200;
  }],
  ['http ensemble', 4, async () => (await json('ens', { inputs: [
    { name: 'A', shape: [4], datatype: 'FP32', data: [1, 2, 3, 4] }, { name: 'B', shape: [4], datatype: 'FP32', data: [1, 1, 1, 1] }] })).status === 200],
  ['grpc ModelInfer', 8, () => grpcUnary('ModelInfer', { model_name: 'add_sub', inputs: [
    { name: 'INPUT0', datatype: 'FP32', shape: [4] }, { name: 'INPUT1', datatype: 'FP32', shape: [4] }],
    raw_input_contents: [raw(Float32Array.of(1, 2, 3, 4)), raw(Float32Array.of(4, 3, 2, 1))] })],
  ['grpc ModelStreamInfer', 5, grpcStream],
  ['bls fan-out', 5, async () => {
    const n = rand() < 0.5 ? 3 : 300;
    return (await json('bls_caller', { parameters: { target: 'identity', calls: 1 + Math.floor(rand() * 6) },
      inputs: [{ name: 'X', shape: [n], datatype: 'FP32', data: f32(n) }] })).status === 200;
  }],
  ['bls missing model', 2, async () => (await json('bls_caller', { parameters: { target: 'nope', calls: 2 },
    inputs: [{ name: 'X', shape: [3], datatype: 'FP32', data: [1, 2, 3] }] })).status === 200],
  ['bls bad input', 1, async () => (await json('bls_caller', { parameters: { target: 'identity', calls: 2, input_name: 'WRONG' },
    inputs: [{ name: 'X', shape: [3], datatype: 'FP32', data: [1, 2, 3] }] })).status === 200],
  ['bls timeout', 1, async () => (await json('bls_caller', { parameters: { target: 'identity', calls: 2, timeout_ms: 20, delay_ms: 200 },
    inputs: [{ name: 'X', shape: [300], datatype: 'FP32', data: f32(300) }] })).status === 200],
  ['bls stream', 2, async () => (await json('bls_stream', { parameters: rand() < 0.5 ? { stop_after: 2 } : {},
    inputs: [{ name: 'N', shape: [1], datatype: 'INT32', data: [1 + Math.floor(rand() * 5)] }] })).status === 200],
  ['bls caller disconnect', 1, async () => (await json('bls_caller', { parameters: { target: 'identity', calls: 3, delay_ms: 300 },
    inputs: [{ name: 'X', shape: [1], datatype: 'FP32', data: [1] }] }, 40)).status === -1],
  ['sequence', 4, () => sequence(false)],
  ['sequence abandoned', 1, () => sequence(true)],
  ['sequence restarted', 1, async () => {
    // A new START for an id whose earlier requests still wait: those run first, then the new one.
    const id = seqId++;
    const send = (p: Record<string, unknown>) => json('accumulate', { parameters: { sequence_id: id, ...p }, inputs: [{ name: 'INPUT', shape: [1], datatype: 'INT32', data: [1] }] });
    const rs = await Promise.all([send({ sequence_start: true }), send({}), send({}), send({ sequence_start: true }), send({ sequence_end: true })]);
    return rs.every((r) => r.status === 200);
  }],
  ['bad input', 3, async () => (await json(pick(['add_sub', 'identity_fp32', 'nope']), { inputs: [{ name: 'INPUT0', shape: [3], datatype: 'INT32', data: [1, 2, 3] }] })).status === 400],
  ['model error', 2, async () => (await json('flaky', { parameters: { mode: pick(['error', 'throw']) },
    inputs: [{ name: 'X', shape: [1, 2], datatype: 'FP32', data: [1, 2] }] })).status >= 400],
  ['http disconnect', 2, async () => (await json('flaky', { parameters: { delay_ms: 500 }, inputs: [{ name: 'X', shape: [1, 2], datatype: 'FP32', data: [1, 2] }] }, 20 + rand() * 60)).status === -1],
  ['grpc deadline', 1, () => grpcUnary('ModelInfer', { model_name: 'flaky', parameters: { delay_ms: { int64_param: 500 } },
    inputs: [{ name: 'X', datatype: 'FP32', shape: [1, 1], contents: { fp32_contents: [1] } }] }, 30).then((ok) => !ok)],
  ['http decoupled repeat', 2, async () => (await json('repeat', { parameters: rand() < 0.5 ? { timeout: 60_000_000 } : {},
    inputs: [{ name: 'IN', shape: [1], datatype: 'INT32', data: [7] }] })).status === 200],
  ['request timeout', 2, async () => (await json('flaky', { parameters: { delay_ms: 200, timeout: 30_000 }, inputs: [{ name: 'X', shape: [1, 2], datatype: 'FP32', data: [1, 2] }] })).status !== -1],
  ['queue full burst', 1, async () => {
    const rs = await Promise.all(Array.from({ length: 10 }, () => json('flaky', { parameters: { delay_ms: 30 }, inputs: [{ name: 'X', shape: [1, 1], datatype: 'FP32', data: [1] }] })));
    return rs.some((r) => r.status === 503 || r.status === 429 || r.status >= 400);
  }],
];
const totalWeight = actions.reduce((n, a) => n + a[1], 0);
function pickAction(): [string, number, () => Promise<boolean>] {
  let x = rand() * totalWeight;
  for (const a of actions) if ((x -= a[1]) < 0) return a;
  return actions[0]!;
}

let stopLoad = false;
let inflight = 0;
async function worker(): Promise<void> {
  while (!stopLoad) {
    const [kind, , run] = pickAction();
    inflight++;
    try {
      note(kind, await run());
    } catch {
      note(kind, false);
    } finally {
      inflight--;
    }
  }
}

// ---- measuring ----------------------------------------------------------------------------------

const core = server.core as any;
function versions(): any[] {
  return core.repository.loadedVersions() as any[];
}
function childCount(): number {
  let n = 0;
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === process.pid && fields[0] !== 'Z') n++;
    } catch {
      /* gone */
    }
  }
  return n;
}

type Sample = Record<string, number>;
async function sample(): Promise<Sample> {
  gc?.();
  await sleep(50);
  gc?.();
  const s: Sample = {};
  s['host.heapUsed'] = process.memoryUsage().heapUsed;
  s['host.rss'] = process.memoryUsage().rss;
  s['host.fds'] = fs.readdirSync('/proc/self/fd').length;
  s['host.children'] = childCount();
  s['host.shmFiles'] = fs.readdirSync('/dev/shm').filter((n) => n.startsWith(`stubhost-${process.pid}-`)).length;
  const res = process.getActiveResourcesInfo();
  s['host.timers'] = res.filter((r) => r === 'Timeout').length;
  s['host.timersAll'] = liveTimers.size;
  s['host.handles'] = res.length;
  s['shm.regions'] = (server.shm as any).regions?.size ?? 0;
  const add = (k: string, v: number): void => {
    s[k] = (s[k] ?? 0) + v;
  };
  for (const mv of versions()) {
    const sch = mv.scheduler;
    const tag = mv.name;
    if (sch) {
      if (sch.unsettled) {
        add(`${tag}.sched.unsettled`, sch.unsettled.size);
        add(`${tag}.sched.held`, sch.held.size);
        add(`${tag}.sched.listeners`, sch.listeners.size);
        add(`${tag}.sched.queue`, sch.queue.size);
        add(`${tag}.sched.idleWaiters`, sch.idleWaiters.length);
        add(`${tag}.sched.busy`, [...sch.busy.values()].reduce((a: number, b: number) => a + b, 0));
        add(`${tag}.sched.inflight`, sch.inflightJobs + sch.waitingJobs);
      } else if (sch.sequences) {
        add(`${tag}.seq.sequences`, sch.sequences.size);
        add(`${tag}.seq.backlog`, sch.backlog.length);
        add(`${tag}.seq.bound`, [...sch.bound.values()].reduce((a: number, b: number) => a + b, 0));
        add(`${tag}.seq.idleWaiters`, sch.idleWaiters.length);
        add(`${tag}.seq.inflight`, sch.inflightJobs);
      }
    }
    for (const inst of mv.instanceList ?? []) {
      const sp = inst.stub;
      if (!sp) continue;
      add(`${tag}.stubproc.batches`, sp.batches.size);
      add(`${tag}.stubproc.streams`, sp.streams.size);
      add(`${tag}.stubproc.blsCancels`, sp.blsCancels.size);
      add(`${tag}.stubproc.debugWaiters`, sp.debugWaiters.length);
      add(`${tag}.inst.running`, inst.running);
      if (sp.channel) {
        const a = sp.channel.arena.stats;
        add(`${tag}.hostArena.usedBytes`, a.usedBytes);
        add(`${tag}.hostArena.segments`, a.segments);
        add(`${tag}.hostPeer.mapped`, sp.channel.peer.mapped.size);
        add(`${tag}.host.pendingRelease`, sp.channel.pendingRelease.length);
      }
      const d = await sp.debugStats?.();
      if (d) {
        add(`${tag}.stub.heapUsed`, d.heapUsed);
        add(`${tag}.stubArena.usedBytes`, d.arena.usedBytes);
        add(`${tag}.stubArena.segments`, d.arena.segments);
        add(`${tag}.stubPeer.mapped`, d.peerMapped);
        for (const [k, v] of Object.entries(d.sizes)) add(`${tag}.stub.${k}`, v as number);
      } else add(`${tag}.stub.noAnswer`, 1);
    }
  }
  return s;
}

function fmt(k: string, v: number): string {
  return /heapUsed|rss|Bytes/.test(k) ? `${(v / 1024 / 1024).toFixed(2)}M` : String(v);
}

// ---- the run ------------------------------------------------------------------------------------

const started = Date.now();
const deadline = started + TOTAL_S * 1000;
const samples: Sample[] = [];
let kills = 0;
console.log(`soak: ${TOTAL_S} s in rounds of ${ROUND_S} s; repository ${repo}; http ${server.ports.http}, grpc ${server.ports.grpc}`);
// Warm-up round (JIT, first segments, lazily created things), not counted as the baseline.
const run = async (seconds: number): Promise<void> => {
  stopLoad = false;
  const workers = Array.from({ length: 12 }, () => worker());
  const killer = (async () => {
    while (!stopLoad && !NO_KILL) {
      await sleep(KILL_MS * (0.5 + rand()));
      if (stopLoad) break;
      const insts = versions().flatMap((mv) => [...(mv.instanceList ?? [])]).filter((i: any) => i.state === 'ready');
      if (insts.length === 0) continue;
      pick(insts).kill('SIGKILL');
      kills++;
    }
  })();
  await sleep(seconds * 1000);
  stopLoad = true;
  await Promise.all(workers);
  await killer;
  agent.destroy();
  agent = newAgent();
  // Let restarts finish, sequences go idle (0.5 s) and releases flow back.
  for (let i = 0; i < 100; i++) {
    if (versions().every((mv) => (mv.instanceList ?? []).every((inst: any) => inst.state === 'ready'))) break;
    await sleep(100);
  }
  await sleep(1500);
};

await run(Math.min(ROUND_S, 10));
samples.push(await sample());
if (SNAP_DIR) console.log(`heap snapshot: ${v8.writeHeapSnapshot(path.join(SNAP_DIR, 'soak-first.heapsnapshot'))}`);
let round = 0;
while (Date.now() + ROUND_S * 1000 <= deadline) {
  round++;
  await run(ROUND_S);
  const s = await sample();
  samples.push(s);
  const total = [...counts.values()].reduce((n, c) => n + c.ok + c.err, 0);
  console.log(`round ${round} (${Math.round((Date.now() - started) / 1000)} s): requests ${total}, kills ${kills}, host heap ${fmt('heapUsed', s['host.heapUsed']!)}, fds ${s['host.fds']}, children ${s['host.children']}, timers ${s['host.timers']}`);
}

// ---- report -------------------------------------------------------------------------------------

if (SNAP_DIR) {
  gc?.();
  console.log(`heap snapshot: ${v8.writeHeapSnapshot(path.join(SNAP_DIR, 'soak-last.heapsnapshot'))}`);
}

const first = samples[0]!;
const last = samples[samples.length - 1]!;
const keys = [...new Set([...Object.keys(first), ...Object.keys(last)])].sort();
console.log('\nmeasure'.padEnd(44) + 'start'.padStart(12) + 'end'.padStart(12) + '   per round');
for (const k of keys) {
  const series = samples.map((s) => s[k] ?? 0);
  const grows = series.length > 2 && series.every((v, i) => i === 0 || v >= series[i - 1]!) && series[series.length - 1]! > series[0]!;
  const any = series.some((v) => v !== 0);
  if (!any) continue;
  console.log(`${k.padEnd(43)}${fmt(k, first[k] ?? 0).padStart(12)}${fmt(k, last[k] ?? 0).padStart(12)}   ${series.map((v) => fmt(k, v)).join(' ')}${grows && !/rss/.test(k) ? '   <-- grows every round' : ''}`);
}
const zeroNow = keys.filter((k) => /sched\.|seq\.|stubproc\.|stub\.(live|blsCalls|cancelledBeforeStart|execQueue|executing|lentOfOpenCalls)|\.usedBytes|pendingRelease|inst\.running/.test(k) && (last[k] ?? 0) !== 0);
console.log(`\nrequests by kind (ok/other):`);
for (const [k, c] of [...counts.entries()].sort()) console.log(`  ${k.padEnd(28)} ${c.ok}/${c.err}`);
console.log(`stub SIGKILLs: ${kills}; log lines by level: ${JSON.stringify(Object.fromEntries(logCounts))}`);
console.log(zeroNow.length === 0 ? 'idle check: every per-request collection and arena is back to 0' : `idle check: NOT back to 0: ${zeroNow.map((k) => `${k}=${last[k]}`).join(', ')}`);

grpcc.close();
agent.destroy();
await server.close();
fs.rmSync(repo, { recursive: true, force: true });
const leftovers = fs.readdirSync('/dev/shm').filter((n) => n.startsWith(`stubhost-${process.pid}-`));
console.log(`after close: children ${childCount()}, shm files ${leftovers.length}`);
process.exit(0);
