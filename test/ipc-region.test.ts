import { afterEach, describe, expect, it } from 'vitest';
import { Region } from '../src/ipc/region.js';
import { native } from '../src/ipc/native.js';
import { StubhostError } from '../src/errors.js';
import { PeerArena, Arena } from '../src/ipc/arena.js';
import { readTensor } from '../src/ipc/tensor-codec.js';
import { LAYOUT_VERSION, kLayoutVersion, kRegionSize, kSlotCount } from '../src/ipc/layout.js';
import { shmFiles, uniqueRegionName } from './fixtures/ipc-helpers.js';

let regions: Region[] = [];
let names: string[] = [];

afterEach(() => {
  for (const r of regions) r.close();
  regions = [];
  for (const n of names) native.shmUnlink(n);
  names = [];
  expect(shmFiles()).toEqual([]);
});

function attachError(name: string): StubhostError {
  try {
    regions.push(Region.attach(name));
  } catch (err) {
    expect(err).toBeInstanceOf(StubhostError);
    expect((err as StubhostError).code).toBe('STUBHOST_PROTOCOL');
    return err as StubhostError;
  }
  throw new Error('Region.attach accepted a corrupt region');
}

describe('Region', () => {
  it('create and attach share the control block and the queues, and attach removes the file', () => {
    const name = uniqueRegionName('region');
    const host = Region.create(name, { slotCount: 8, slotSize: 128 });
    regions.push(host);
    expect(shmFiles(name.slice(1))).toHaveLength(1);
    const stub = Region.attach(name);
    regions.push(stub);
    expect(shmFiles(name.slice(1))).toEqual([]);
    expect(stub.hostPid).toBe(process.pid);
    expect(host.stubPid).toBe(process.pid);
    expect(host.takeHealth()).toBe(false);
    stub.setHealthy();
    expect(host.takeHealth()).toBe(true);
    expect(host.takeHealth()).toBe(false);
    host.hostToStub.send(new TextEncoder().encode('hi'));
    expect(new TextDecoder().decode(stub.hostToStub.receiveSync(100))).toBe('hi');
  });

  it('refuses a file that is not a stubhost region (wrong magic)', () => {
    const name = uniqueRegionName('magic');
    native.shmCreate(name, 4096);
    expect(attachError(name).message).toMatch(/wrong magic 0x0 \(expected 0x53544248\): not a stubhost region/);
    expect(shmFiles(name.slice(1))).toEqual([]);
  });

  it('refuses a region of another layout version', () => {
    const name = uniqueRegionName('version');
    const host = Region.create(name);
    regions.push(host);
    Atomics.store(host.words, kLayoutVersion >> 2, LAYOUT_VERSION + 1);
    expect(attachError(name).message).toMatch(new RegExp(`layout version ${LAYOUT_VERSION + 1}, this stub speaks ${LAYOUT_VERSION}`));
  });

  it('refuses a truncated file', () => {
    const name = uniqueRegionName('short');
    native.shmCreate(name, 16);
    expect(attachError(name).message).toMatch(/truncated: 16 bytes/);
  });

  it('refuses a control block whose layout does not fit the file', () => {
    const name = uniqueRegionName('layout');
    const host = Region.create(name, { slotCount: 4, slotSize: 64 });
    regions.push(host);
    Atomics.store(host.words, kSlotCount >> 2, 1 << 20);
    expect(attachError(name).message).toMatch(/inconsistent layout/);
    const name2 = uniqueRegionName('layout');
    const host2 = Region.create(name2, { slotCount: 4, slotSize: 64 });
    regions.push(host2);
    Atomics.store(host2.words, kRegionSize >> 2, 1 << 30);
    expect(attachError(name2).message).toMatch(/inconsistent layout/);
  });

  it('reports a missing region clearly', () => {
    expect(attachError(uniqueRegionName('missing')).message).toMatch(/cannot open the stub's shared-memory region .*No such file/);
  });
});

describe('corrupt tensor headers', () => {
  it('readTensor refuses a handle out of range, a size that does not match the shape, and a bad dtype', () => {
    const arena = new Arena({ prefix: `${uniqueRegionName('tensor')}-h`, segmentBytes: 64 * 1024 });
    const block = arena.alloc(4096);
    const peer = new PeerArena(arena.prefix);
    try {
      const [id] = block.handle;
      expect(readTensor(peer, { n: 'x', t: 'FP32', s: [1024], h: block.handle }).data).toBeInstanceOf(Float32Array);
      expect(() => readTensor(peer, { n: 'x', t: 'FP32', s: [1024], h: [id, 65536 - 8, 4096] })).toThrow(/out-of-range/);
      expect(() => readTensor(peer, { n: 'x', t: 'FP32', s: [1025], h: block.handle })).toThrow(/4096 bytes for shape \[1025\] of FP32 \(needs 4100\)/);
      expect(() => readTensor(peer, { n: 'x', t: 'NOPE' as 'FP32', s: [1], d: new Uint8Array(4) })).toThrow(/corrupt tensor header/);
      expect(() => readTensor(peer, { n: 'x', t: 'FP32', s: [-1], d: new Uint8Array(4) })).toThrow(/corrupt tensor header/);
    } finally {
      peer.close();
      arena.close();
    }
  });
});
