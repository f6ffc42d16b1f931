/**
 * Lost-wakeup races between two real processes. Both sides use only synchronous blocking
 * waits whose every sleep is bounded (500 ms): a post that fails to wake a sleeper does not
 * hang the test, it shows up as a sleep that timed out with a unit available (`missedWakes`),
 * which must never happen. Small rings make the sender sleep on a full ring too.
 */
import type { ChildProcess } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { Region } from '../src/ipc/region.js';
import type { SemaphoreStats } from '../src/ipc/semaphore.js';
import { cleanUp, endOfStream, shmFiles, spawnPeer, uniqueRegionName } from './fixtures/ipc-helpers.js';

let children: ChildProcess[] = [];
let regions: Region[] = [];

afterEach(async () => {
  await cleanUp(children, regions);
  expect(shmFiles()).toEqual([]);
});

interface PeerSummary {
  received: number;
  errors: number;
  firstError?: string;
  stats: { in: SemaphoreStats; outFree: SemaphoreStats; outFilled: SemaphoreStats };
}

/** A deterministic PRNG (xorshift32) in [0, 1). */
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

const nap = new Int32Array(new SharedArrayBuffer(4));
function pause(kind: number, amount: number): void {
  if (kind === 0) return; // straight into the next burst
  if (kind === 1) {
    const until = performance.now() + amount * 0.2; // busy up to 200 µs: the peer is mid-spin or just asleep
    while (performance.now() < until);
    return;
  }
  Atomics.wait(nap, 0, 0, amount * 2); // up to 2 ms: the peer is surely asleep
}

/** Blocking receive that sleeps again while the peer is quiet (each sleep bounded). */
function receive(region: Region, what: string): Uint8Array {
  const deadline = performance.now() + 20_000;
  for (;;) {
    const m = region.stubToHost.receiveSync(500);
    if (m) return m;
    if (performance.now() > deadline) throw new Error(`no ${what} from the peer within 20 s`);
  }
}

function send(region: Region, message: Uint8Array): void {
  const deadline = performance.now() + 20_000;
  while (!region.hostToStub.sendSync(message, 500)) {
    if (performance.now() > deadline) throw new Error('the peer read nothing for 20 s');
  }
}

function start(tag: string, spinMicros: number, slotCount: number): Region {
  const region = Region.create(uniqueRegionName(tag), { slotCount, slotSize: 64, spinMicros });
  regions.push(region);
  children.push(spawnPeer(region.name, 'burst-echo', { spinMicros }));
  expect(new TextDecoder().decode(receive(region, 'ready line'))).toBe('ready');
  return region;
}

function finish(region: Region): PeerSummary {
  send(region, endOfStream());
  return JSON.parse(new TextDecoder().decode(receive(region, 'summary'))) as PeerSummary;
}

const message = new Uint8Array(8);
const view = new DataView(message.buffer);
function sendNumbered(region: Region, seq: number, last: boolean): void {
  view.setUint32(0, seq, true);
  view.setUint32(4, last ? 1 : 0, true);
  send(region, message);
}

describe('wake-ups between two processes', () => {
  for (const spinMicros of [0, 5]) {
    it(`bursts with random pauses (spin ${spinMicros} µs): every message arrives, no post ever fails to wake a sleeper`, { timeout: 90_000 }, () => {
      const region = start(`burst${spinMicros}-`, spinMicros, 4);
      const rand = prng(7 + spinMicros);
      let seq = 0;
      const bursts = 2500;
      for (let b = 0; b < bursts; b++) {
        const size = 1 + Math.floor(rand() * 12); // up to 3 rings' worth: the sender sleeps on a full ring
        for (let i = 0; i < size; i++) sendNumbered(region, seq++, i === size - 1);
        const reply = receive(region, `reply to burst ${b}`);
        expect(new DataView(reply.buffer).getUint32(0, true)).toBe(seq - 1);
        pause(Math.floor(rand() * 3), rand());
      }
      const peer = finish(region);
      expect(peer.errors, peer.firstError).toBe(0);
      expect(peer.received).toBe(seq);
      // Nobody slept through a post: not the peer waiting for messages or for ring space, not us.
      expect(peer.stats.in.missedWakes).toBe(0);
      expect(peer.stats.outFree.missedWakes).toBe(0);
      expect(region.stubToHost.filled.stats.missedWakes).toBe(0);
      expect(region.hostToStub.free.stats.missedWakes).toBe(0);
      // The races were real: both sides slept, and were woken.
      expect(peer.stats.in.sleeps).toBeGreaterThan(100);
      expect(region.hostToStub.filled.stats.wakes).toBeGreaterThan(100);
      expect(region.hostToStub.free.stats.sleeps).toBeGreaterThan(0);
    });
  }

  it('a sender facing a peer that sleeps wakes it for every message, with one syscall at most per message', { timeout: 60_000 }, () => {
    const region = start('sleepy-', 0, 16);
    const messages = 300;
    for (let seq = 0; seq < messages; seq++) {
      Atomics.wait(nap, 0, 0, 1); // the peer (no spin) is asleep again by now
      sendNumbered(region, seq, true);
      expect(new DataView(receive(region, `reply ${seq}`).buffer).getUint32(0, true)).toBe(seq);
    }
    const peer = finish(region);
    expect(peer.received).toBe(messages);
    expect(peer.stats.in.missedWakes).toBe(0);
    expect(region.stubToHost.filled.stats.missedWakes).toBe(0);
    const wakes = region.hostToStub.filled.stats.wakes;
    // Every message found the peer asleep (or about to sleep) and woke it; never twice.
    expect(wakes).toBeGreaterThan(messages * 0.9);
    expect(wakes).toBeLessThanOrEqual(messages + 1);
  });
});
