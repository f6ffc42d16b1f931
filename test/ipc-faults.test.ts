/**
 * Kills: a peer SIGKILLed mid-transfer, and a host SIGKILLed with its peer running. Detection,
 * no hanging waits, and nothing left in /dev/shm once the sweeps ran.
 */
import type { ChildProcess } from 'node:child_process';
import readline from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { Region } from '../src/ipc/region.js';
import { Channel } from '../src/ipc/channel.js';
import type { Handle } from '../src/ipc/arena.js';
import type { HostMessage, StubMessage } from '../src/ipc/protocol.js';
import { writeTensor } from '../src/ipc/tensor-codec.js';
import { sweepHost, sweepRegion } from '../src/ipc/shm-sweep.js';
import { StubhostError } from '../src/errors.js';
import { exited, isRunning, killAll, shmFiles, spawnFixture, spawnPeer, uniqueRegionName, waitFor } from './fixtures/ipc-helpers.js';

let children: ChildProcess[] = [];
let strayPids: number[] = [];
let cleanups: (() => void)[] = [];

afterEach(async () => {
  await killAll(children);
  for (const pid of strayPids.splice(0)) if (isRunning(pid)) process.kill(pid, 'SIGKILL');
  for (const c of cleanups.splice(0).reverse()) c();
  expect(shmFiles()).toEqual([]);
});

function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  return Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what} still pending after ${ms} ms`)), ms))]);
}

describe('faults', () => {
  it('a peer SIGKILLed mid-transfer is detected; pending waits end; nothing is left in /dev/shm', { timeout: 30_000 }, async () => {
    const region = Region.create(uniqueRegionName('kill'));
    cleanups.push(() => region.unlink());
    const channel = new Channel<HostMessage, StubMessage>(region, 'host', { arena: { segmentBytes: 1024 * 1024 } });
    cleanups.push(() => channel.close());
    channel.setRef(true);
    const child = spawnPeer(region.name, 'echo', { segmentBytes: 1024 * 1024 });
    children.push(child);

    // In-flight pings and what settles them: a pong, or the peer's death.
    const pending = new Map<number, { resolve: () => void; reject: (e: Error) => void; blocks: Handle[] }>();
    const settled: Promise<void>[] = [];
    const data = new Uint8Array(200 * 1024).fill(3);
    let next = 0;
    let pongs = 0;
    let dead = false;
    const ping = () => {
      const blocks: Handle[] = [];
      const t = next++;
      const desc = writeTensor(channel.arena, { name: 'x', datatype: 'UINT8', shape: [data.length], data }, blocks);
      settled.push(new Promise<void>((resolve, reject) => pending.set(t, { resolve, reject, blocks })));
      channel.send({ k: 'ping', t, outs: [desc] });
    };
    const hello = new Promise<void>((resolve) =>
      channel.onMessage(
        (msg) => {
          if (msg.k === 'hello') return resolve();
          if (msg.k !== 'pong') return;
          const p = pending.get(msg.t)!;
          pending.delete(msg.t);
          for (const h of p.blocks) channel.arena.free(h);
          const hs = (msg.outs ?? []).flatMap((d) => (d.h ? [d.h] : []));
          if (hs.length > 0 && !dead) channel.send({ k: 'release', hs });
          p.resolve();
          pongs++;
          if (!dead) ping();
        },
        () => {},
      ),
    );
    const exit = exited(child).then(([code, signal]) => {
      dead = true;
      const err = new StubhostError('STUBHOST_STUB_DIED', `peer ${child.pid} died (${code ?? signal})`);
      for (const p of pending.values()) p.reject(err);
      pending.clear();
      return signal;
    });
    await within(20_000, 'hello', hello);
    for (let i = 0; i < 8; i++) ping();
    await waitFor('100 pongs', () => pongs >= 100, 10_000, 1);
    child.kill('SIGKILL');

    expect(await within(1000, 'exit', exit)).toBe('SIGKILL');
    const results = await within(1000, 'in-flight pings', Promise.allSettled(settled));
    expect(results.filter((r) => r.status === 'rejected').length).toBeGreaterThan(0);
    for (const r of results) if (r.status === 'rejected') expect((r.reason as StubhostError).code).toBe('STUBHOST_STUB_DIED');

    // A sender stuck on the dead peer's full ring, and our receive loop, must not hang either.
    for (let i = 0; i < 400 && channel.backlog === 0; i++) channel.send({ k: 'ping', t: -5 });
    expect(channel.backlog).toBeGreaterThan(0);
    const drained = region.hostToStub.drained();
    channel.close();
    channel.close();
    await within(1000, 'drained() after close', drained);

    sweepRegion(region.name);
    expect(shmFiles(region.name.slice(1))).toEqual([]);
  });

  it('a host SIGKILLed takes its peer down within 1 s (PR_SET_PDEATHSIG); sweeps leave nothing', { timeout: 30_000 }, async () => {
    const host = spawnFixture('ipc-host.ts', [], 'pipe');
    children.push(host);
    const lines = readline.createInterface({ input: host.stdout! });
    const iterator = lines[Symbol.asyncIterator]();
    const first = await within(20_000, 'the host fixture', iterator.next());
    const { peerPid, region } = JSON.parse(first.value as string) as { peerPid: number; region: string };
    strayPids.push(peerPid);
    // Let transfers run (tensors in both arenas, pongs flowing) before the kill.
    expect((await within(10_000, 'pongs', iterator.next())).value).toMatch(/^pongs \d+/);
    expect(isRunning(peerPid)).toBe(true);

    host.kill('SIGKILL');
    const t0 = performance.now();
    await exited(host);
    await waitFor('the peer to die', () => !isRunning(peerPid), 1000, 2);
    const ms = performance.now() - t0;
    console.log(`peer gone ${ms.toFixed(0)} ms after the host's SIGKILL; left before sweep: ${shmFiles(`stubhost-${host.pid}-`).join(', ') || 'nothing'}`);
    expect(ms).toBeLessThan(1000);

    sweepHost(host.pid!);
    expect(region.startsWith(`/stubhost-${host.pid}-`)).toBe(true);
    expect(shmFiles(`stubhost-${host.pid}`)).toEqual([]);
  });
});
