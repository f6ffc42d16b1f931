/**
 * The host's doorbell (src/ipc/doorbell.ts) against lost wake-ups, with real processes: the host
 * receives asynchronously (its receive loop parks on the doorbell), the peer echoes. With no
 * spinning on either side every wait parks, so each of the many round trips crosses the
 * sleeper-flag / re-check / ring race. Every wait has a generous bound: a lost ring shows up as
 * a message that does not come, not as a hung test.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Region } from '../src/ipc/region.js';
import { Semaphore } from '../src/ipc/semaphore.js';
import { DoorbellListener, DoorbellRinger, adoptDoorbell } from '../src/ipc/doorbell.js';
import { FIXTURES, REPO_ROOT, cleanUp, messagesOf, shmFiles, uniqueRegionName } from './fixtures/ipc-helpers.js';

let children: ChildProcess[] = [];
let regions: Region[] = [];

afterEach(async () => {
  await cleanUp(children, regions);
  expect(shmFiles()).toEqual([]);
});

/** ipc-peer.ts with the region's doorbell as its fd 3 (as a stub gets it); `cpu`: pinned there. */
function spawnBellPeer(region: Region, mode: string, options: Record<string, unknown>, cpu?: number): ChildProcess {
  const node = [process.execPath, '--import', 'tsx', path.join(FIXTURES, 'ipc-peer.ts'), region.name, mode, JSON.stringify({ ...options, doorbell: true })];
  const [command, ...args] = cpu === undefined ? node : ['taskset', '-c', String(cpu), ...node];
  const child = spawn(command!, args, { cwd: REPO_ROOT, stdio: ['ignore', 'inherit', 'inherit', region.doorbellFd!] });
  children.push(child);
  return child;
}

function start(tag: string, options: { slotCount?: number; spinMicros?: number } = {}): Region {
  const region = Region.create(uniqueRegionName(tag), { slotCount: options.slotCount ?? 16, slotSize: 64, spinMicros: options.spinMicros ?? 0, doorbell: true });
  regions.push(region);
  return region;
}

function word(n: number): Uint8Array {
  const m = new Uint8Array(8);
  new DataView(m.buffer).setUint32(0, n, true);
  return m;
}

const seqOf = (m: Uint8Array): number => new DataView(m.buffer, m.byteOffset, m.byteLength).getUint32(0, true);

/** Ping-pong: one message out, its echo back, `n` times; `kick`: ask for the reply soon (expectSoon), as StubRequests does. */
async function pingPong(region: Region, n: number, kick: boolean): Promise<void> {
  const inbox = messagesOf(region.stubToHost);
  expect(new TextDecoder().decode(await inbox.next(20_000))).toBe('ready');
  for (let i = 0; i < n; i++) {
    region.hostToStub.send(word(i));
    if (kick) region.stubToHost.expectSoon();
    expect(seqOf(await inbox.next(5000))).toBe(i);
  }
  // The receive loop did park on the doorbell (no spinning anywhere).
  expect(region.stubToHost.filled.stats.sleeps).toBeGreaterThan(0);
}

function taskset(): boolean {
  const probe = spawnSync('taskset', ['--version']);
  return !probe.error && probe.status === 0;
}

function allowedCpus(): string {
  return /^Cpus_allowed_list:\s*(\S+)/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))![1]!;
}

describe('doorbell', () => {
  it('in one process: a post to a parked waiter rings it; a timeout and close() end a wait with false; adopting a non-eventfd is refused', async () => {
    const listener = DoorbellListener.create();
    const ringer = new DoorbellRinger(adoptDoorbell(listener.fd, false));
    const sab = new SharedArrayBuffer(8);
    const waiting = new Semaphore(sab, 0, 4, { listen: listener });
    const posting = new Semaphore(sab, 0, 4, { ring: ringer });
    waiting.init(0);
    try {
      for (let i = 0; i < 200; i++) {
        const available = waiting.whenAvailable(5000);
        posting.post();
        expect(await available).toBe(true);
        expect(waiting.tryWait()).toBe(true);
      }
      expect(posting.stats.wakes).toBeGreaterThan(0);
      expect(await waiting.whenAvailable(20)).toBe(false);
      const closed = waiting.whenAvailable();
      waiting.close();
      expect(await closed).toBe(false);
      expect(() => adoptDoorbell(0, false)).toThrow(/not an eventfd/);
    } finally {
      ringer.close();
      listener.close();
    }
  });

  it('a region whose host listens on a doorbell refuses a stub without its fd', () => {
    const region = start('nofd');
    expect(() => Region.attach(region.name)).toThrow(/doorbell/);
  });

  it('host async, peer async: 4000 parked round trips, none lost', async () => {
    const region = start('aa');
    spawnBellPeer(region, 'async-echo', { spinMicros: 0 });
    await pingPong(region, 4000, false);
  }, 60_000);

  it('with expectSoon kicks (a unit taken while parked): 4000 round trips, none lost', async () => {
    const region = start('kick', { spinMicros: 0 });
    spawnBellPeer(region, 'async-echo', { spinMicros: 20 });
    await pingPong(region, 4000, true);
  }, 60_000);

  it('host async, peer blocking on the futex: bursts into a 4-slot ring (the host also waits for free slots on the doorbell)', async () => {
    const region = start('burst', { slotCount: 4 });
    spawnBellPeer(region, 'burst-echo', { spinMicros: 0 });
    const inbox = messagesOf(region.stubToHost);
    expect(new TextDecoder().decode(await inbox.next(20_000))).toBe('ready');
    let seq = 0;
    for (let burst = 0; burst < 400; burst++) {
      const size = 1 + (burst % 13);
      for (let k = 0; k < size; k++) {
        const m = new Uint8Array(8);
        const v = new DataView(m.buffer);
        v.setUint32(0, seq++, true);
        v.setUint32(4, k === size - 1 ? 1 : 0, true);
        region.hostToStub.send(m);
      }
      expect(seqOf(await inbox.next(5000))).toBe(seq - 1);
    }
    expect(region.hostToStub.free.stats.sleeps).toBeGreaterThan(0);
  }, 60_000);

  it.skipIf(!taskset())('both processes on one CPU: 2000 parked round trips, none lost', async () => {
    const cpus = allowedCpus();
    const cpu = Number(cpus.split(/[,-]/).at(-1));
    const region = start('same');
    const pin = (list: string) => expect(spawnSync('taskset', ['-a', '-p', '-c', list, String(process.pid)]).status).toBe(0);
    pin(String(cpu));
    try {
      spawnBellPeer(region, 'async-echo', { spinMicros: 20 }, cpu);
      region.publishCpu('host');
      await pingPong(region, 2000, true);
    } finally {
      pin(cpus);
    }
  }, 60_000);
});
