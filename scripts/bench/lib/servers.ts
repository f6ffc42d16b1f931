/**
 * What the server benchmarks (http, grpc) share: where each process runs, the servers' CPU time
 * from /proc, starting and stopping servers, and the alternating-rounds comparison.
 *
 * Placement: with two or more CPUs and taskset, the load generator runs on the first CPU and
 * every server on the last (a stub, forked by the host, inherits the host's CPU), so the client
 * never takes CPU from the server it measures. CPU per request is the server's utime + stime
 * (all threads) across one run, over the requests of that run: it counts what the server spends,
 * whatever the client or the rest of the machine does.
 */
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fmt, formatTable, median, nowMs, parseArgs, progress, report } from '../common.js';

// ---- placement ----

export interface Placement {
  /** CPU list for taskset -c, or undefined when nothing is pinned. */
  loadCpu?: string;
  serverCpu?: string;
  /** How the processes are placed, for the report. */
  note: string;
}

/** True if `command` can be started (it may still exit non-zero for these arguments). */
export function hasCommand(command: string, args: string[] = ['--version']): boolean {
  return !spawnSync(command, args, { stdio: 'ignore' }).error;
}

/** The CPUs this process may run on (Linux /proc), else an empty list. */
function allowedCpus(): number[] {
  let status: string;
  try {
    status = fs.readFileSync('/proc/self/status', 'utf8');
  } catch {
    return [];
  }
  const list = /^Cpus_allowed_list:\s*(\S+)\s*$/m.exec(status)?.[1] ?? '';
  const cpus: number[] = [];
  for (const part of list.split(',').filter(Boolean)) {
    const [lo, hi = lo] = part.split('-').map(Number) as [number, number?];
    for (let c = lo; c <= hi!; c++) cpus.push(c);
  }
  return cpus;
}

export function placement(): Placement {
  const cpus = allowedCpus();
  if (cpus.length < 2) return { note: `not pinned: ${cpus.length || 'unknown number of'} CPU(s)` };
  if (!hasCommand('taskset', ['-V'])) return { note: 'not pinned: taskset is missing' };
  const loadCpu = String(cpus[0]);
  const serverCpu = String(cpus[cpus.length - 1]);
  return { loadCpu, serverCpu, note: `load generator on CPU ${loadCpu}, servers (and the stub) on CPU ${serverCpu}` };
}

/** spawn, under taskset when `cpu` is given (taskset execs, so the child's pid is the command's). */
export function spawnOn(cpu: string | undefined, command: string, args: string[], options: SpawnOptions): ChildProcess {
  return cpu === undefined ? spawn(command, args, options) : spawn('taskset', ['-c', cpu, command, ...args], options);
}

// ---- CPU time from /proc ----

let ticksPerSecond: number | undefined;
function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    const out = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout;
    ticksPerSecond = Number(out?.trim()) > 0 ? Number(out.trim()) : 100;
  }
  return ticksPerSecond;
}

/** Fields of /proc/<pid>/stat after the command name (which may hold spaces or parentheses). */
function statFields(pid: number): string[] | undefined {
  try {
    const text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return text.slice(text.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** utime + stime of every thread of `pid`, in µs; 0 once it is gone. */
export function cpuMicros(pid: number): number {
  const f = statFields(pid);
  // stat(5): after the name, state is field 3, utime 14 and stime 15, so indices 11 and 12 here.
  return f ? ((Number(f[11]) + Number(f[12])) * 1e6) / clockTicks() : 0;
}

/** Every process below `pid` (a host's stubs, and theirs). */
export function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const ppid = Number(statFields(Number(name))?.[1]);
    if (!Number.isFinite(ppid)) continue;
    const list = children.get(ppid) ?? [];
    list.push(Number(name));
    children.set(ppid, list);
  }
  const out: number[] = [];
  const walk = (p: number): void => {
    for (const c of children.get(p) ?? []) {
      out.push(c);
      walk(c);
    }
  };
  walk(pid);
  return out;
}

// ---- server processes ----

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** Resolves once `child` prints a line matching `pattern`; rejects if it exits or takes too long. */
export async function waitForLine(child: ChildProcess, pattern: RegExp, timeoutMs: number, what: string): Promise<void> {
  let seen = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} did not start within ${timeoutMs / 1000} s:\n${seen}`)), timeoutMs);
    const onData = (c: Buffer) => {
      seen += c.toString();
      if (pattern.test(seen)) {
        clearTimeout(timer);
        child.stdout?.off('data', onData);
        child.stderr?.off('data', onData);
        child.stdout?.resume();
        child.stderr?.resume();
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

/** SIGTERM (so a host finalizes its stubs, releases shared memory, writes a --cpu-prof), SIGKILL after 10 s. */
export async function stop(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

// ---- the comparison ----

/** One run of the load generator against one server. */
/** A load generator: `run` keeps `concurrency` requests (connections or calls in flight) going for `seconds`. */
export type LoadGenerator = { name: string; run: (port: number, concurrency: number, seconds: number) => Promise<RunResult> };

/** A load generator's stdout once it exits 0; its output in the error otherwise. */
export function collect(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr?.on('data', (c: Buffer) => (err += c.toString()));
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`load generator exited with ${code}: ${err}${out}`))));
  });
}

export interface RunResult {
  requests: number;
  seconds: number;
  p50Ms: number;
  p99Ms: number;
}

export interface MeasuredServer {
  name: string;
  pid: number;
  /** Also count the CPU of its descendants (stubhost's stubs), reported apart. */
  hasChildren: boolean;
}

export interface Cell {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  /** The server process's CPU µs per request. */
  cpuUs: number;
  /** Its descendants' CPU µs per request (0 without). */
  childCpuUs: number;
}

/**
 * A few seconds at 16 connections per server before anything is measured, so the JIT has
 * compiled the request path: measured first and at its low rate, concurrency 1 would otherwise
 * pay the optimizing compiler's CPU (its threads count in the server's CPU time).
 */
export async function warmUp(servers: readonly MeasuredServer[], run: (server: MeasuredServer, concurrency: number, seconds: number) => Promise<RunResult>): Promise<void> {
  for (const s of servers) {
    progress(`warming up ${s.name}`);
    await run(s, 16, 3);
  }
}

/**
 * For one concurrency: a warm-up run per server, then `rounds` rounds in which each server gets
 * one run, in alternating order so noise hits both alike. Each figure is the median over rounds.
 */
export async function compare(
  servers: readonly MeasuredServer[], concurrency: number, rounds: number, seconds: number,
  run: (server: MeasuredServer, concurrency: number, seconds: number) => Promise<RunResult>,
): Promise<Map<string, Cell>> {
  const per = new Map(servers.map((s) => [s.name, [] as Cell[]]));
  for (const s of servers) await run(s, concurrency, Math.min(1, seconds));
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? servers : [...servers].reverse();
    for (const s of order) {
      const kids = s.hasChildren ? descendants(s.pid) : [];
      const cpu0 = cpuMicros(s.pid);
      const kids0 = kids.reduce((t, p) => t + cpuMicros(p), 0);
      const res = await run(s, concurrency, seconds);
      const cpu1 = cpuMicros(s.pid);
      const kids1 = kids.reduce((t, p) => t + cpuMicros(p), 0);
      if (res.requests === 0) throw new Error(`${s.name}: no request completed at concurrency ${concurrency}`);
      per.get(s.name)!.push({
        rps: res.requests / res.seconds, p50Ms: res.p50Ms, p99Ms: res.p99Ms,
        cpuUs: (cpu1 - cpu0) / res.requests, childCpuUs: (kids1 - kids0) / res.requests,
      });
    }
    progress(`concurrency ${concurrency}: round ${r + 1}/${rounds}`);
  }
  const out = new Map<string, Cell>();
  for (const [name, cells] of per) {
    const m = (k: keyof Cell) => median(cells.map((c) => c[k]));
    out.set(name, { rps: m('rps'), p50Ms: m('p50Ms'), p99Ms: m('p99Ms'), cpuUs: m('cpuUs'), childCpuUs: m('childCpuUs') });
  }
  return out;
}

/** The table row and JSON fields of one concurrency: stubhost against the baseline. */
export function rowAndFields(concurrency: number, sh: Cell, bl: Cell): { row: string[]; fields: Record<string, number> } {
  const c = concurrency;
  return {
    row: [
      String(c), fmt(sh.rps), fmt(sh.p50Ms), fmt(sh.p99Ms), fmt(sh.cpuUs), fmt(sh.childCpuUs),
      fmt(bl.rps), fmt(bl.p50Ms), fmt(bl.p99Ms), fmt(bl.cpuUs), fmt(sh.rps / bl.rps, 2), fmt(sh.cpuUs / bl.cpuUs, 2),
    ],
    fields: {
      [`c${c}RequestsPerSec`]: sh.rps, [`c${c}P50Ms`]: sh.p50Ms, [`c${c}P99Ms`]: sh.p99Ms,
      [`c${c}HostCpuUsPerRequest`]: sh.cpuUs, [`c${c}StubCpuUsPerRequest`]: sh.childCpuUs,
      [`c${c}BaselineRequestsPerSec`]: bl.rps, [`c${c}BaselineP50Ms`]: bl.p50Ms, [`c${c}BaselineP99Ms`]: bl.p99Ms,
      [`c${c}BaselineCpuUsPerRequest`]: bl.cpuUs,
      [`c${c}Ratio`]: sh.rps / bl.rps, [`c${c}HostCpuRatio`]: sh.cpuUs / bl.cpuUs,
    },
  };
}

export const TABLE_HEADER = [
  'conc', 'stubhost req/s', 'p50 ms', 'p99 ms', 'host µs/req', 'stub µs/req',
  'baseline req/s', 'p50 ms', 'p99 ms', 'base µs/req', 'ratio', 'cpu ratio',
] as const;

export const TABLE_LEGEND =
  'ratio = stubhost req/s ÷ baseline req/s (target ≥ 0.5 at 16 and 64); cpu ratio = host CPU µs per request ÷ the baseline\'s (target ≤ 2); ' +
  'µs/req = utime+stime of the process over one run ÷ its requests (stub: the host\'s child processes)';

/** What differs between the HTTP and the gRPC comparison; everything else is `runServerComparison`. */
export interface ComparisonSpec {
  /** 'http' or 'grpc': names the temporary folder. */
  protocol: string;
  repoRoot: string;
  /** The benchmark's own file, run as `--baseline <port>` for the bare server. */
  benchFile: string;
  /** Describes the baseline in the progress line ("the bare node:http baseline"). */
  baselineName: string;
  /** `stubhost serve` flags that open the protocol's port (and close the others) on a port. */
  serveFlags(port: number): string[];
  loadGenerator(place: Placement, dir: string): LoadGenerator;
  /** Fails unless the server at the port gives the right answer. */
  checkAnswer(port: number, who: string): Promise<void>;
  levels: readonly number[];
  rounds: number;
  /** The table's heading: its first line (after the figures of the run) and the baseline line. */
  heading(gen: string, seconds: number, runNote: string): string;
}

/**
 * `npm run bench -- http|grpc`: stubhost serving a copy of models/add_sub against the bench's
 * bare server, both pinned to the server CPU, under `spec`'s load generator on the other; a warm
 * up, then alternating rounds per level; `--seconds`, `--cpu-prof <dir>` and `--json` as flags.
 */
export async function runServerComparison(argv: string[], spec: ComparisonSpec): Promise<void> {
  const args = parseArgs(argv);
  const flag = (name: string) => {
    const i = args.rest.indexOf(name);
    return i >= 0 ? args.rest[i + 1] : undefined;
  };
  const seconds = Number(flag('--seconds') ?? 3);
  if (!Number.isFinite(seconds) || seconds <= 0) throw new Error('--seconds <s>: a positive number of seconds per round');
  const cpuProfDir = flag('--cpu-prof');
  const started = nowMs();
  const place = placement();

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `stubhost-bench-${spec.protocol}-`));
  const repo = path.join(dir, 'models');
  fs.cpSync(path.join(spec.repoRoot, 'models/add_sub'), path.join(repo, 'add_sub'), { recursive: true });
  let host: ChildProcess | undefined;
  let base: ChildProcess | undefined;
  try {
    const gen = spec.loadGenerator(place, dir);
    const [hostPort, basePort] = [await freePort(), await freePort()];
    progress(`stubhost on port ${hostPort}, ${spec.baselineName} on ${basePort}; load: ${gen.name}; ${place.note}`);
    const profFlags = cpuProfDir ? ['--cpu-prof', '--cpu-prof-dir', path.resolve(cpuProfDir)] : [];
    host = spawnOn(place.serverCpu, process.execPath, [...profFlags, path.join(spec.repoRoot, 'bin/stubhost.js'), 'serve', '--model-repository', repo,
      ...spec.serveFlags(hostPort), '--allow-metrics', 'false', '--log-format', 'json'],
    { cwd: spec.repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    base = spawnOn(place.serverCpu, process.execPath, ['--import', 'tsx', spec.benchFile, '--baseline', String(basePort)],
      { cwd: spec.repoRoot, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    await Promise.all([
      waitForLine(host, /model\(s\) ready/, 60_000, 'stubhost'),
      waitForLine(base, /listening/, 30_000, 'the baseline server'),
    ]);
    await spec.checkAnswer(hostPort, 'stubhost');
    await spec.checkAnswer(basePort, 'the baseline');

    const servers: MeasuredServer[] = [
      { name: 'stubhost', pid: host.pid!, hasChildren: true },
      { name: 'baseline', pid: base.pid!, hasChildren: false },
    ];
    const runOn = (s: MeasuredServer, level: number, secs: number) => gen.run(s.name === 'stubhost' ? hostPort : basePort, level, secs);
    const rows: string[][] = [];
    const result: Record<string, number> = { pinned: place.serverCpu === undefined ? 0 : 1, secondsPerRound: seconds };
    await warmUp(servers, runOn);
    for (const level of spec.levels) {
      const cells = await compare(servers, level, spec.rounds, seconds, runOn);
      const { row, fields } = rowAndFields(level, cells.get('stubhost')!, cells.get('baseline')!);
      rows.push(row);
      Object.assign(result, fields);
    }
    const runNote = `${((nowMs() - started) / 1000).toFixed(1)} s, ${os.cpus().length} cores; ${place.note}; load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`;
    report(args, `${spec.heading(gen.name, seconds, runNote)}\n${TABLE_LEGEND}\n${formatTable(TABLE_HEADER, rows)}`, result);
  } finally {
    await stop(host);
    base?.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
