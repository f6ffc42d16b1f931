/**
 * The IPC core with two real processes: the test process is the host, test/fixtures/ipc-peer.ts
 * the stub side. Every test kills its peer and checks /dev/shm in afterEach.
 */
import { randomBytes } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { Region } from '../src/ipc/region.js';
import { Channel } from '../src/ipc/channel.js';
import type { Handle } from '../src/ipc/arena.js';
import type { HostMessage, Pong, StubMessage } from '../src/ipc/protocol.js';
import { readTensor, writeTensor, type TensorDesc } from '../src/ipc/tensor-codec.js';
import { StubhostError } from '../src/errors.js';
import { encodeChecked, endOfStream, killAll, messagesOf, shmFiles, spawnPeer, uniqueRegionName } from './fixtures/ipc-helpers.js';

const MiB = 1024 * 1024;
const KiB = 1024;
let children: ChildProcess[] = [];
let cleanups: (() => void)[] = [];

afterEach(async () => {
  await killAll(children);
  for (const c of cleanups.splice(0).reverse()) c();
  expect(shmFiles()).toEqual([]);
});

/** A host region whose cleanup (close, remove the name if the peer never attached) is registered. */
function hostRegion(tag: string, options?: Parameters<typeof Region.create>[1]): Region {
  const region = Region.create(uniqueRegionName(tag), options);
  cleanups.push(() => {
    region.close();
    region.unlink();
  });
  return region;
}

function hostChannel(region: Region, arena: { segmentBytes?: number; maxBytes?: number }): Channel<HostMessage, StubMessage> {
  const channel = new Channel<HostMessage, StubMessage>(region, 'host', { arena });
  cleanups.push(() => channel.close());
  channel.setRef(true);
  return channel;
}

function peer(region: Region, mode: string, options: Record<string, unknown> = {}): ChildProcess {
  const child = spawnPeer(region.name, mode, options);
  children.push(child);
  return child;
}

/** A deterministic PRNG (xorshift32) in [0, 1): the same sizes on every run. */
function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x100000000;
  };
}

const decode = (m: Uint8Array) => new TextDecoder().decode(m);

describe('two processes: raw queues', () => {
  it('delivers 1,000,000 messages of random sizes in order, none lost or corrupted', { timeout: 120_000 }, async () => {
    const region = hostRegion('million');
    peer(region, 'check');
    const inbox = messagesOf(region.stubToHost);
    expect(decode(await inbox.next(20_000))).toBe('ready');

    const count = 1_000_000;
    const rand = prng(42);
    const pool = randomBytes(64 * KiB);
    const scratch = new Uint8Array(8 * KiB);
    const queue = region.hostToStub;
    let bytes = 0;
    let multiSlot = 0;
    const t0 = performance.now();
    for (let seq = 0; seq < count; seq++) {
      const r = rand();
      // Mostly small headers, some up to one slot, 1% spanning two to five 1 KiB slots.
      const size = r < 0.9 ? 8 + Math.floor(rand() * 200) : r < 0.99 ? 208 + Math.floor(rand() * 800) : 1017 + Math.floor(rand() * 4000);
      if (size > 1016) multiSlot++;
      bytes += size;
      queue.send(encodeChecked(scratch, seq, size, pool, Math.floor(rand() * (pool.byteLength - size))));
      // Batches with async backpressure: never more than a ring's worth waiting locally.
      if (queue.backlog > 256) await queue.drained();
    }
    queue.send(endOfStream());
    const summary = JSON.parse(decode(await inbox.next(60_000))) as { received: number; bytes: number; errors: number; firstError?: string; next: number };
    const seconds = (performance.now() - t0) / 1000;
    console.log(`1,000,000 messages (${(bytes / MiB).toFixed(0)} MiB, ${multiSlot} multi-slot) in ${seconds.toFixed(1)} s`);
    expect(multiSlot).toBeGreaterThan(5000);
    expect(summary).toEqual({ received: count, bytes, errors: 0, next: count });
  });

  it('holds a full queue with a slow consumer: nothing dropped, the sender sleeps instead of spinning', { timeout: 30_000 }, async () => {
    const region = hostRegion('backpressure', { slotCount: 16, slotSize: 256 });
    peer(region, 'check', { startDelayMs: 1500, busyMicrosPerMessage: 100 });
    const inbox = messagesOf(region.stubToHost);
    expect(decode(await inbox.next(20_000))).toBe('ready');

    const queue = region.hostToStub;
    const pool = randomBytes(4 * KiB);
    const scratch = new Uint8Array(256);
    const count = 2000;
    for (let seq = 0; seq < count; seq++) queue.send(encodeChecked(scratch, seq, 100 + (seq % 100), pool, seq));
    expect(queue.backlog).toBe(count - 16);

    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, 700));
    const cpu = process.cpuUsage(cpu0);
    const wallMs = performance.now() - t0;
    const cpuMs = (cpu.user + cpu.system) / 1000;
    console.log(`blocked sender: ${cpuMs.toFixed(1)} ms CPU in ${wallMs.toFixed(0)} ms`);
    expect(queue.backlog).toBe(count - 16); // the consumer has not started: still blocked, still queued
    expect(cpuMs).toBeLessThan(0.15 * wallMs);

    await queue.drained();
    queue.send(endOfStream());
    const summary = JSON.parse(decode(await inbox.next(20_000))) as { received: number; errors: number };
    expect(summary).toMatchObject({ received: count, errors: 0, next: count });
  });
});

describe('two processes: arena', () => {
  it('grows under pressure, survives the cap, and frees everything with allocations racing on both sides', { timeout: 60_000 }, async () => {
    const region = hostRegion('arena');
    // A 6 MiB cap with up to ~60 MiB wanted in flight: the host hits STUBHOST_ARENA_FULL and
    // retries once pongs free space; only a refusal with nothing in flight would be a failure.
    const channel = hostChannel(region, { segmentBytes: 1 * MiB, maxBytes: 6 * MiB });
    peer(region, 'echo', { segmentBytes: 1 * MiB });

    const pool = randomBytes(4 * MiB);
    const rand = prng(7);
    const total = 600;
    const inFlightMax = 24;
    interface Sent { blocks: Handle[]; parts: { offset: number; size: number }[] }
    const inFlight = new Map<number, Sent>();
    let nextT = 0;
    let done = 0;
    let arenaFull = 0;
    let peakSegments = 0;
    let peakBytes = 0;
    let dedicatedSeen = 0;
    let finish!: (err?: Error) => void;
    const finished = new Promise<void>((resolve, reject) => (finish = (err) => (err ? reject(err) : resolve())));

    const pickSize = () => {
      const r = rand();
      if (r < 0.05) return Math.floor(rand() * 512); // inline
      if (r < 0.75) return 600 + Math.floor(rand() * 64 * KiB);
      if (r < 0.95) return 64 * KiB + Math.floor(rand() * 336 * KiB);
      return 600 * KiB + Math.floor(rand() * 1400 * KiB); // dedicated segment (> half of 1 MiB)
    };

    const sendOne = (): boolean => {
      const t = nextT;
      const sent: Sent = { blocks: [], parts: [] };
      const outs: TensorDesc[] = [];
      const r = prng(1000 + t); // sizes depend on t only, so a retry asks for the same
      const n = 1 + Math.floor(r() * 3);
      try {
        for (let i = 0; i < n; i++) {
          const size = pickSize();
          const offset = Math.floor(r() * (pool.byteLength - size));
          if (size > 512 * KiB) dedicatedSeen++;
          outs.push(writeTensor(channel.arena, { name: `t${i}`, datatype: 'UINT8', shape: [size], data: pool.subarray(offset, offset + size) }, sent.blocks));
          sent.parts.push({ offset, size });
        }
      } catch (err) {
        for (const h of sent.blocks) channel.arena.free(h);
        if (err instanceof StubhostError && err.code === 'STUBHOST_ARENA_FULL') {
          arenaFull++;
          if (inFlight.size === 0) finish(new Error(`arena full with nothing in flight: ${err.message}`));
          return false;
        }
        throw err;
      }
      const stats = channel.arena.stats;
      peakSegments = Math.max(peakSegments, stats.segments);
      peakBytes = Math.max(peakBytes, stats.totalBytes);
      inFlight.set(t, sent);
      nextT++;
      channel.send({ k: 'ping', t, outs });
      return true;
    };
    const pump = () => {
      while (nextT < total && inFlight.size < inFlightMax && sendOne());
    };

    channel.onMessage(
      (msg) => {
        if (msg.k === 'hello') return pump();
        if (msg.k !== 'pong') return;
        const pong = msg as Pong;
        const sent = inFlight.get(pong.t);
        if (!sent) return finish(new Error(`pong for unknown ping ${pong.t}`));
        inFlight.delete(pong.t);
        const outs = pong.outs ?? [];
        if (outs.length !== sent.parts.length) return finish(new Error(`ping ${pong.t}: ${outs.length} tensors back, sent ${sent.parts.length}`));
        for (const [i, d] of outs.entries()) {
          const { offset, size } = sent.parts[i]!;
          const got = readTensor(channel.peer, d).data as Uint8Array;
          if (Buffer.compare(got, pool.subarray(offset, offset + size)) !== 0) return finish(new Error(`ping ${pong.t} tensor ${i}: bytes differ`));
        }
        // Our blocks: the peer has read them. Its blocks: we have read them, so it may free.
        for (const h of sent.blocks) channel.arena.free(h);
        const hs = outs.flatMap((d) => (d.h ? [d.h] : []));
        if (hs.length > 0) channel.send({ k: 'release', hs });
        done++;
        if (done === total) finish();
        else pump();
      },
      (err) => finish(err),
    );
    await finished;

    // The peer has processed every release before it answers this.
    const used = new Promise<number>((resolve) =>
      channel.onMessage(
        (msg) => msg.k === 'pong' && resolve(msg.t),
        () => {},
      ),
    );
    channel.send({ k: 'ping', t: -1 });
    expect(await used).toBe(0);
    console.log(`arena: peak ${peakSegments} segments / ${(peakBytes / MiB).toFixed(1)} MiB, ${arenaFull} allocations refused at the cap, ${dedicatedSeen} dedicated`);
    expect(done).toBe(total);
    expect(peakSegments).toBeGreaterThan(2);
    expect(peakBytes).toBeLessThanOrEqual(6 * MiB);
    expect(arenaFull).toBeGreaterThan(0);
    expect(dedicatedSeen).toBeGreaterThan(10);
    expect(channel.arena.stats.usedBytes).toBe(0);
  });
});
