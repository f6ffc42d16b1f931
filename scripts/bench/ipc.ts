/**
 * `npm run bench -- ipc [--json]`: the shared-memory IPC core (issue 2) against baselines
 * measured in the same run, interleaved round by round so machine noise hits all of them alike.
 *
 *   (a) roundTripUs        empty message host → stub → host through the region's queues, one at
 *                          a time; the host waits synchronously (it has nothing else pending), the
 *                          peer is an ordinary async consumer (onMessage), as a stub is.
 *       idle round trip    (table only) the same with a 0.3 ms pause before each message, so the
 *                          peer has stopped spinning and sleeps: the watcher-thread + uv_async
 *                          path a request to an idle stub takes.
 *   (b) childProcessIpcUs  the same through Node's child_process IPC (process.send).
 *   (c) futexFloorUs       a bare futex ping-pong between two Node processes (no spinning): the
 *                          cost of one sleeping hand-off each way.
 *   (d) pipelinedMsgsPerSec / childProcessPipelinedMsgsPerSec: echo with 64 messages in flight,
 *                          async on both sides.
 *   (f) sameCoreRoundTripUs  (a) with the bench process and an echo peer both pinned to one CPU
 *                          (taskset; the bench re-pins itself around each measurement), against
 *                          the cross-core idle round trip of the same round: a peer that must be
 *                          woken is what sharing a core costs at best, and spinning must not make
 *                          it worse (target ≤ 1.5×). Skipped, with the reason, without taskset or
 *                          with one CPU only.
 *   (g) asyncRoundTripUs / asyncHostCpuUsPerRoundTrip: (a) with the host receiving on its event
 *                          loop as StubProcess does (onMessage, expectSoon after each send), its
 *                          receive loop parking on the region's doorbell; baseline: the same with
 *                          a region without doorbell, whose host parks on a watcher thread. Host
 *                          CPU (process.cpuUsage: every thread, the watcher's too) per round trip.
 *                          asyncIdle*: the same with a 0.3 ms pause before each message;
 *                          asyncPipelined*: (d) on the same two regions, host CPU per message.
 *   (e) tensorGBps         a 64 MiB Float32 tensor written once into the host's arena, described
 *                          in a msgpack Ping, viewed in place by the peer (which reads one float
 *                          per 4 KiB page plus the last one and answers with their sum), acked;
 *       memcpyGBps         one Buffer.copy of 64 MiB between two warmed buffers.
 *
 * The peers are this same file run as `--peer <kind>` child processes.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import readline from 'node:readline';
import { native } from '../../src/ipc/native.js';
import { Region } from '../../src/ipc/region.js';
import { adoptDoorbell } from '../../src/ipc/doorbell.js';
import { Channel } from '../../src/ipc/channel.js';
import type { Handle } from '../../src/ipc/arena.js';
import type { HostMessage, StubMessage } from '../../src/ipc/protocol.js';
import { readTensor, writeTensor } from '../../src/ipc/tensor-codec.js';
import { sweepRegion } from '../../src/ipc/shm-sweep.js';
import { fmt, formatTable, median, nowMs, parseArgs, progress, report } from './common.js';

const thisFile = fileURLToPath(import.meta.url);
const repoRoot = path.resolve(path.dirname(thisFile), '../..');

const ROUNDS = 7;
/** Queue spin before sleeping, both sides (experiments: BENCH_SPIN_US=0 shows the pure sleeping path). */
const SPIN_US = process.env.BENCH_SPIN_US === undefined ? undefined : Number(process.env.BENCH_SPIN_US);
const RT_ITERATIONS = 2000;
const PIPELINE_MESSAGES = 40_000;
const IN_FLIGHT = 64;
const TENSOR_BYTES = 64 * 1024 * 1024;
const TENSOR_ITERATIONS = 3;
/** Futex word states for (c). */
const PING = 1;
const PONG = 0;
const STOP = 2;

// ---- peers -------------------------------------------------------------------------------

function runPeer(kind: string, names: string[]): void {
  native.setParentDeathSignal(9);
  if (kind === 'cp') {
    process.on('message', (m) => process.send!(m));
    return;
  }
  if (kind === 'futex') {
    const sab = native.shmOpen(names[0]!);
    native.shmUnlink(names[0]!);
    const word = new Int32Array(sab);
    process.stdout.write('ready\n');
    for (;;) {
      while (Atomics.load(word, 0) === PONG) native.futexWait(sab, 0, PONG, -1);
      if (Atomics.load(word, 0) === STOP) process.exit(0);
      Atomics.store(word, 0, PONG);
      native.futexWake(sab, 0, 1);
    }
  }
  if (kind === 'echo' || kind === 'echo-nobell') {
    const region = Region.attach(names[0]!, { spinMicros: SPIN_US, doorbellFd: kind === 'echo' ? peerDoorbell(0) : undefined });
    region.hostToStub.setRef(true);
    region.hostToStub.onMessage((m) => region.stubToHost.send(m));
    process.stdout.write('ready\n');
    return;
  }
  // 'queue': two raw echo regions (round trip, pipelined) and one Channel for tensors.
  for (const [i, name] of names.slice(0, 2).entries()) {
    const region = Region.attach(name, { spinMicros: SPIN_US, doorbellFd: peerDoorbell(i) });
    region.hostToStub.setRef(true);
    region.hostToStub.onMessage((m) => region.stubToHost.send(m));
  }
  const channel = new Channel<StubMessage, HostMessage>(Region.attach(names[2]!, { doorbellFd: peerDoorbell(2) }), 'stub');
  channel.setRef(true);
  channel.onMessage(
    (msg) => {
      if (msg.k !== 'ping') return;
      let sum = 0;
      for (const d of msg.outs ?? []) {
        const data = readTensor(channel.peer, d).data as Float32Array;
        for (let i = 0; i < data.length; i += 1024) sum += data[i]!;
        sum += data[data.length - 1]!;
      }
      channel.send({ k: 'pong', t: sum });
    },
    (err) => {
      process.stderr.write(`bench peer: ${err.message}\n`);
      process.exit(3);
    },
  );
  process.stdout.write('ready\n');
}

/** The doorbell of the peer's `i`th region: its fd 3 + i (see spawnPeer), as a stub's. */
function peerDoorbell(i: number): number {
  return adoptDoorbell(3 + i, true);
}

/** `doorbells`: the regions' doorbell fds, in the order of `names` (the host waits on them as on a stub's). */
function spawnPeer(kind: string, names: string[], ipc = false, cpu?: number, doorbells: (number | undefined)[] = []): ChildProcess {
  const node = [process.execPath, '--import', 'tsx', thisFile, '--peer', kind, ...names];
  const [command, ...args] = cpu === undefined ? node : ['taskset', '-c', String(cpu), ...node];
  return spawn(command!, args, {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'inherit', ...(ipc ? (['ipc'] as const) : doorbells.map((fd) => fd!))],
  });
}

// ---- CPU pinning (same-core case) --------------------------------------------------------

/** This process's allowed CPUs as taskset's list syntax ("0-1"), from /proc. */
function allowedCpuList(): string {
  const status = fs.readFileSync('/proc/self/status', 'utf8');
  const list = /^Cpus_allowed_list:\s*(\S+)/m.exec(status)?.[1];
  if (!list) throw new Error('no Cpus_allowed_list in /proc/self/status');
  return list;
}

function expandCpuList(list: string): number[] {
  const out: number[] = [];
  for (const part of list.split(',')) {
    const [lo, hi] = part.split('-').map(Number);
    for (let c = lo!; c <= (hi ?? lo!); c++) out.push(c);
  }
  return out;
}

/** Why the same-core case cannot run here, or undefined when it can. */
function sameCoreUnavailable(): string | undefined {
  const probe = spawnSync('taskset', ['--version'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) return 'taskset not found (Debian/Ubuntu: apt-get install util-linux)';
  if (expandCpuList(allowedCpuList()).length < 2) return 'this process may use one CPU only: every case is same-core';
  return undefined;
}

/** Pins every thread of this process to `cpus` (taskset list syntax). */
function pinSelf(cpus: string): void {
  const r = spawnSync('taskset', ['-a', '-p', '-c', cpus, String(process.pid)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`taskset -a -p -c ${cpus} ${process.pid} failed: ${r.stderr || r.error?.message}`);
}

async function waitReady(child: ChildProcess): Promise<void> {
  const lines = readline.createInterface({ input: child.stdout! });
  const exited = once(child, 'exit').then(([code]) => {
    throw new Error(`bench peer exited early (code ${code})`);
  });
  const ready = (async () => {
    for await (const line of lines) if (line === 'ready') return;
  })();
  await Promise.race([ready, exited]);
}

// ---- measurements ------------------------------------------------------------------------

function futexRoundTripUs(sab: SharedArrayBuffer, n: number): number {
  const word = new Int32Array(sab);
  const t0 = nowMs();
  for (let i = 0; i < n; i++) {
    Atomics.store(word, 0, PING);
    native.futexWake(sab, 0, 1);
    while (Atomics.load(word, 0) === PING) native.futexWait(sab, 0, PING, -1);
  }
  return ((nowMs() - t0) * 1000) / n;
}

function queueRoundTripUs(region: Region, n: number): number {
  const empty = new Uint8Array(0);
  const t0 = nowMs();
  for (let i = 0; i < n; i++) {
    region.hostToStub.sendSync(empty);
    if (!region.stubToHost.receiveSync(5000)) throw new Error('queue round trip: no answer within 5 s');
  }
  return ((nowMs() - t0) * 1000) / n;
}

/** Round trips that each start after a pause long enough for both sides to stop spinning. */
function idleQueueRoundTripUs(region: Region, n: number, pauseMs: number): number {
  const empty = new Uint8Array(0);
  const nap = new Int32Array(new SharedArrayBuffer(4));
  let total = 0;
  for (let i = 0; i < n; i++) {
    Atomics.wait(nap, 0, 0, pauseMs);
    const t0 = nowMs();
    region.hostToStub.sendSync(empty);
    if (!region.stubToHost.receiveSync(5000)) throw new Error('queue round trip: no answer within 5 s');
    total += nowMs() - t0;
  }
  return (total * 1000) / n;
}

async function childProcessRoundTripUs(child: ChildProcess, n: number): Promise<number> {
  let resolveOne: () => void = () => {};
  const onMessage = () => resolveOne();
  child.on('message', onMessage);
  const t0 = nowMs();
  for (let i = 0; i < n; i++) {
    await new Promise<void>((resolve) => {
      resolveOne = resolve;
      child.send(i);
    });
  }
  const us = ((nowMs() - t0) * 1000) / n;
  child.off('message', onMessage);
  return us;
}

/** Echo with `inFlight` outstanding: a reply releases the next send. Returns messages/s. */
async function pipelined(send: () => void, subscribe: (onReply: () => void) => () => void, total: number, inFlight: number): Promise<number> {
  let sent = 0;
  let received = 0;
  let unsubscribe = () => {};
  const t0 = nowMs();
  await new Promise<void>((resolve) => {
    unsubscribe = subscribe(() => {
      received++;
      if (sent < total) {
        sent++;
        send();
      }
      if (received === total) resolve();
    });
    for (; sent < Math.min(inFlight, total); sent++) send();
  });
  unsubscribe();
  return total / ((nowMs() - t0) / 1000);
}

function tensorGBps(channel: Channel<HostMessage, StubMessage>, src: Float32Array, expected: number, n: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = nowMs();
    const blocks: Handle[] = [];
    const desc = writeTensor(channel.arena, { name: 'x', datatype: 'FP32', shape: [src.length], data: src }, blocks);
    channel.send({ k: 'ping', t: i, outs: [desc] });
    const pong = channel.receiveSync(10_000);
    const ms = nowMs() - t0;
    for (const h of blocks) channel.arena.free(h);
    if (!pong || pong.k !== 'pong') throw new Error('tensor hand-off: no answer within 10 s');
    if (pong.t !== expected) throw new Error(`tensor hand-off: peer read ${pong.t}, expected ${expected}`);
    out.push(src.byteLength / (ms / 1000) / 1e9);
  }
  return out;
}

function memcpyGBps(src: Buffer, dst: Buffer, n: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = nowMs();
    src.copy(dst);
    const ms = nowMs() - t0;
    out.push(src.byteLength / (ms / 1000) / 1e9);
  }
  return out;
}

// ---- driver ------------------------------------------------------------------------------

export default async function run(argv: string[]): Promise<void> {
  const args = parseArgs(argv);
  const started = nowMs();
  const base = `/stubhost-${process.pid}-bench-`;
  const children: ChildProcess[] = [];
  const regions: Region[] = [];
  let channel: Channel<HostMessage, StubMessage> | undefined;
  try {
    // With doorbells, as StubProcess makes them: the host's async waits (pipelined) use them.
    const rt = Region.create(`${base}rt`, { spinMicros: SPIN_US, doorbell: true });
    const pipe = Region.create(`${base}pipe`, { spinMicros: SPIN_US, doorbell: true });
    const tensorRegion = Region.create(`${base}tensor`, { doorbell: true });
    regions.push(rt, pipe, tensorRegion);
    channel = new Channel<HostMessage, StubMessage>(tensorRegion, 'host');
    const futexName = `${base}futex`;
    const futexSab = native.shmCreate(futexName, 64);

    progress('starting peers');
    const queuePeer = spawnPeer('queue', [rt.name, pipe.name, tensorRegion.name], false, undefined, [rt.doorbellFd, pipe.doorbellFd, tensorRegion.doorbellFd]);
    const futexPeer = spawnPeer('futex', [futexName]);
    const cpPeer = spawnPeer('cp', [], true);
    children.push(queuePeer, futexPeer, cpPeer);
    // Same-core: an echo peer pinned to the last CPU we may use; we pin ourselves there per round.
    const sameCoreSkipped = sameCoreUnavailable();
    const cpuList = allowedCpuList();
    const sameCpu = expandCpuList(cpuList).at(-1)!;
    let same: Region | undefined;
    if (!sameCoreSkipped) {
      same = Region.create(`${base}same`, { spinMicros: SPIN_US, doorbell: true });
      regions.push(same);
      const samePeer = spawnPeer('echo', [same.name], false, sameCpu, [same.doorbellFd]);
      children.push(samePeer);
      await waitReady(samePeer);
    } else progress(`same-core case skipped: ${sameCoreSkipped}`);
    const onSameCore = <T>(fn: () => T): T => {
      pinSelf(String(sameCpu));
      same!.publishCpu('host');
      try {
        return fn();
      } finally {
        pinSelf(cpuList);
        same!.publishCpu('host');
      }
    };
    // (g): one region with a doorbell, one without (the host parks on a watcher thread).
    const abell = Region.create(`${base}abell`, { spinMicros: SPIN_US, doorbell: true });
    const awatch = Region.create(`${base}awatch`, { spinMicros: SPIN_US });
    regions.push(abell, awatch);
    const abellPeer = spawnPeer('echo', [abell.name], false, undefined, [abell.doorbellFd]);
    const awatchPeer = spawnPeer('echo-nobell', [awatch.name]);
    children.push(abellPeer, awatchPeer);
    const asyncEcho = (region: Region) => {
      let onReply: () => void = () => {};
      region.stubToHost.setRef(true);
      region.stubToHost.onMessage(() => onReply());
      const empty = new Uint8Array(0);
      const send = () => region.hostToStub.send(empty);
      const subscribe = (fn: () => void) => {
        onReply = fn;
        return () => (onReply = () => {});
      };
      /** `n` round trips; `pauseMs` before each; → [µs per round trip, host CPU µs per round trip]. */
      const roundTrips = async (n: number, pauseMs = 0): Promise<[number, number]> => {
        const nap = new Int32Array(new SharedArrayBuffer(4));
        let total = 0;
        const cpu0 = process.cpuUsage();
        for (let i = 0; i < n; i++) {
          if (pauseMs > 0) Atomics.wait(nap, 0, 0, pauseMs);
          const t0 = nowMs();
          await new Promise<void>((resolve) => {
            onReply = resolve;
            region.hostToStub.send(empty);
            region.stubToHost.expectSoon();
          });
          total += nowMs() - t0;
        }
        const cpu = process.cpuUsage(cpu0);
        // The pauses (Atomics.wait) sleep: they cost no CPU.
        return [(total * 1000) / n, (cpu.user + cpu.system) / n];
      };
      /** Pipelined echo (as (d)) → [messages/s, host CPU µs per message]. */
      const pipelinedEcho = async (): Promise<[number, number]> => {
        const cpu0 = process.cpuUsage();
        const rate = await pipelined(send, subscribe, PIPELINE_MESSAGES, IN_FLIGHT);
        const cpu = process.cpuUsage(cpu0);
        return [rate, (cpu.user + cpu.system) / PIPELINE_MESSAGES];
      };
      return { roundTrips, pipelinedEcho };
    };
    const bellEcho = asyncEcho(abell);
    const watchEcho = asyncEcho(awatch);
    await Promise.all([waitReady(queuePeer), waitReady(futexPeer), waitReady(abellPeer), waitReady(awatchPeer)]);
    native.shmUnlink(futexName);
    await childProcessRoundTripUs(cpPeer, 10); // the cp peer has no ready line: its first echo is one

    const message = new Uint8Array(8);
    let onPipeReply: () => void = () => {};
    pipe.stubToHost.setRef(true);
    pipe.stubToHost.onMessage(() => onPipeReply());
    const queueSubscribe = (fn: () => void) => {
      onPipeReply = fn;
      return () => (onPipeReply = () => {});
    };
    const cpSubscribe = (fn: () => void) => {
      cpPeer.on('message', fn);
      return () => void cpPeer.off('message', fn);
    };

    const src = new Float32Array(TENSOR_BYTES / 4);
    for (let i = 0; i < src.length; i++) src[i] = (i % 1000) * 0.5;
    let expected = 0;
    for (let i = 0; i < src.length; i += 1024) expected += src[i]!;
    expected += src[src.length - 1]!;
    const copyFrom = Buffer.from(src.buffer);
    const copyTo = Buffer.alloc(TENSOR_BYTES, 1);

    // Warm-up: JIT, first mappings, the arena's dedicated segment and its pages.
    progress('warming up');
    futexRoundTripUs(futexSab, 200);
    queueRoundTripUs(rt, 500);
    if (same) onSameCore(() => queueRoundTripUs(same!, 500));
    await childProcessRoundTripUs(cpPeer, 200);
    await pipelined(() => pipe.hostToStub.send(message), queueSubscribe, 5000, IN_FLIGHT);
    await pipelined(() => cpPeer.send(0), cpSubscribe, 5000, IN_FLIGHT);
    tensorGBps(channel, src, expected, 2);
    memcpyGBps(copyFrom, copyTo, 2);
    await bellEcho.roundTrips(500);
    await watchEcho.roundTrips(500);
    await bellEcho.pipelinedEcho();
    await watchEcho.pipelinedEcho();

    const r = { same: [] as number[], idle: [] as number[], futex: [] as number[], rt: [] as number[], cp: [] as number[], pipe: [] as number[], cpPipe: [] as number[], tensor: [] as number[], memcpy: [] as number[],
      aBell: [] as number[], aBellCpu: [] as number[], aWatch: [] as number[], aWatchCpu: [] as number[],
      aiBell: [] as number[], aiBellCpu: [] as number[], aiWatch: [] as number[], aiWatchCpu: [] as number[],
      pBell: [] as number[], pBellCpu: [] as number[], pWatch: [] as number[], pWatchCpu: [] as number[] };
    for (let round = 0; round < ROUNDS; round++) {
      r.futex.push(futexRoundTripUs(futexSab, RT_ITERATIONS));
      r.rt.push(queueRoundTripUs(rt, RT_ITERATIONS));
      r.idle.push(idleQueueRoundTripUs(rt, 300, 0.3));
      if (same) r.same.push(onSameCore(() => queueRoundTripUs(same!, RT_ITERATIONS)));
      r.cp.push(await childProcessRoundTripUs(cpPeer, RT_ITERATIONS));
      r.pipe.push(await pipelined(() => pipe.hostToStub.send(message), queueSubscribe, PIPELINE_MESSAGES, IN_FLIGHT));
      r.cpPipe.push(await pipelined(() => cpPeer.send(0), cpSubscribe, PIPELINE_MESSAGES, IN_FLIGHT));
      r.tensor.push(median(tensorGBps(channel, src, expected, TENSOR_ITERATIONS)));
      r.memcpy.push(median(memcpyGBps(copyFrom, copyTo, TENSOR_ITERATIONS)));
      // Alternate which goes first, so neither always runs right after the other's warm caches.
      const bell = [bellEcho, r.aBell, r.aBellCpu, r.aiBell, r.aiBellCpu, r.pBell, r.pBellCpu] as const;
      const watch = [watchEcho, r.aWatch, r.aWatchCpu, r.aiWatch, r.aiWatchCpu, r.pWatch, r.pWatchCpu] as const;
      for (const [echo, us, cpu, idleUs, idleCpu, pipeRate, pipeCpu] of round % 2 === 0 ? [bell, watch] : [watch, bell]) {
        const [a, b] = await echo.roundTrips(RT_ITERATIONS);
        us.push(a);
        cpu.push(b);
        const [c, d] = await echo.roundTrips(300, 0.3);
        idleUs.push(c);
        idleCpu.push(d);
        const [e, f] = await echo.pipelinedEcho();
        pipeRate.push(e);
        pipeCpu.push(f);
      }
      progress(
        `round ${round + 1}/${ROUNDS}: rt ${fmt(r.rt.at(-1)!)} µs (idle ${fmt(r.idle.at(-1)!)}, same-core ${same ? fmt(r.same.at(-1)!) : '-'}), futex ${fmt(r.futex.at(-1)!)} µs, cp ${fmt(r.cp.at(-1)!)} µs, ` +
          `pipelined ${fmt(r.pipe.at(-1)!)}/s vs cp ${fmt(r.cpPipe.at(-1)!)}/s, tensor ${fmt(r.tensor.at(-1)!)} GB/s vs memcpy ${fmt(r.memcpy.at(-1)!)} GB/s`,
      );
    }

    const result = {
      roundTripUs: median(r.rt),
      childProcessIpcUs: median(r.cp),
      futexFloorUs: median(r.futex),
      pipelinedMsgsPerSec: median(r.pipe),
      childProcessPipelinedMsgsPerSec: median(r.cpPipe),
      tensorGBps: median(r.tensor),
      memcpyGBps: median(r.memcpy),
      idleRoundTripUs: median(r.idle),
      ...(same ? { sameCoreRoundTripUs: median(r.same) } : {}),
      asyncRoundTripUs: median(r.aBell),
      asyncHostCpuUsPerRoundTrip: median(r.aBellCpu),
      asyncWatcherRoundTripUs: median(r.aWatch),
      asyncWatcherHostCpuUsPerRoundTrip: median(r.aWatchCpu),
      asyncIdleRoundTripUs: median(r.aiBell),
      asyncIdleHostCpuUsPerRoundTrip: median(r.aiBellCpu),
      asyncIdleWatcherRoundTripUs: median(r.aiWatch),
      asyncIdleWatcherHostCpuUsPerRoundTrip: median(r.aiWatchCpu),
      asyncPipelinedMsgsPerSec: median(r.pBell),
      asyncPipelinedHostCpuUsPerMsg: median(r.pBellCpu),
      asyncWatcherPipelinedMsgsPerSec: median(r.pWatch),
      asyncWatcherPipelinedHostCpuUsPerMsg: median(r.pWatchCpu),
    };
    const row = (what: string, value: number, unit: string, baseline: string, ratio: number, target: string, ok: boolean) =>
      [what, `${fmt(value)} ${unit}`, baseline, fmt(ratio, 2), target, ok ? 'ok' : 'MISSED'];
    const rows = [
      row('round trip vs futex floor', result.roundTripUs, 'µs', `${fmt(result.futexFloorUs)} µs`, result.roundTripUs / result.futexFloorUs, '≤ 1.5', result.roundTripUs <= 1.5 * result.futexFloorUs),
      row('round trip vs child_process', result.roundTripUs, 'µs', `${fmt(result.childProcessIpcUs)} µs`, result.roundTripUs / result.childProcessIpcUs, '≤ 0.75', result.roundTripUs <= 0.75 * result.childProcessIpcUs),
      row(`pipelined (${IN_FLIGHT} in flight)`, result.pipelinedMsgsPerSec, 'msg/s', `${fmt(result.childProcessPipelinedMsgsPerSec)} msg/s`, result.pipelinedMsgsPerSec / result.childProcessPipelinedMsgsPerSec, '≥ 4', result.pipelinedMsgsPerSec >= 4 * result.childProcessPipelinedMsgsPerSec),
      row('64 MiB tensor hand-off', result.tensorGBps, 'GB/s', `${fmt(result.memcpyGBps)} GB/s`, result.tensorGBps / result.memcpyGBps, '≥ 0.4', result.tensorGBps >= 0.4 * result.memcpyGBps),
    ];
    const idle = result.idleRoundTripUs;
    if (result.sameCoreRoundTripUs !== undefined) {
      const sc = result.sameCoreRoundTripUs;
      rows.push(row(`same-core round trip vs cross-core idle (CPU ${sameCpu})`, sc, 'µs', `${fmt(idle)} µs`, sc / idle, '≤ 1.5', sc <= 1.5 * idle));
    } else rows.push([`same-core round trip`, 'skipped', sameCoreSkipped ?? '', '', '≤ 1.5', '']);
    const info = (what: string, value: number, unit: string, baseline: number) => [what, `${fmt(value)} ${unit}`, `${fmt(baseline)} ${unit}`, fmt(value / baseline, 2), 'info', ''];
    rows.push(info('async round trip: doorbell vs watcher', result.asyncRoundTripUs, 'µs', result.asyncWatcherRoundTripUs));
    rows.push(info('  host CPU per round trip', result.asyncHostCpuUsPerRoundTrip, 'µs', result.asyncWatcherHostCpuUsPerRoundTrip));
    rows.push(info('async idle round trip: doorbell vs watcher', result.asyncIdleRoundTripUs, 'µs', result.asyncIdleWatcherRoundTripUs));
    rows.push(info('  host CPU per round trip', result.asyncIdleHostCpuUsPerRoundTrip, 'µs', result.asyncIdleWatcherHostCpuUsPerRoundTrip));
    rows.push(info('pipelined: doorbell vs watcher', result.asyncPipelinedMsgsPerSec, 'msg/s', result.asyncWatcherPipelinedMsgsPerSec));
    rows.push(info('  host CPU per message', result.asyncPipelinedHostCpuUsPerMsg, 'µs', result.asyncWatcherPipelinedHostCpuUsPerMsg));
    rows.push(['idle round trip (peer asleep)', `${fmt(idle)} µs`, `${fmt(result.futexFloorUs)} µs`, fmt(idle / result.futexFloorUs, 2), 'info', '']);
    const text =
      `IPC benchmark: medians of ${ROUNDS} interleaved rounds (${((nowMs() - started) / 1000).toFixed(1)} s)\n` +
      formatTable(['measure', 'stubhost', 'baseline', 'ratio', 'target', ''], rows);
    report(args, text, result);

    futexSabStop(futexSab);
  } finally {
    for (const c of children) c.kill('SIGKILL');
    channel?.close();
    for (const region of regions) {
      region.close();
      region.unlink();
      sweepRegion(region.name);
    }
  }
}

function futexSabStop(sab: SharedArrayBuffer): void {
  Atomics.store(new Int32Array(sab), 0, STOP);
  native.futexWake(sab, 0, 1);
}

if (process.argv[2] === '--peer' && path.resolve(process.argv[1] ?? '') === thisFile) {
  runPeer(process.argv[3]!, process.argv.slice(4));
}
