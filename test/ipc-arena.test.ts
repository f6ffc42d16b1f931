import { afterEach, describe, expect, it } from 'vitest';
import { ALIGNMENT, Arena, PeerArena } from '../src/ipc/arena.js';
import { StubhostError } from '../src/errors.js';
import { readTensorOut, writeTensor } from '../src/ipc/tensor-codec.js';
import { shmFiles, uniqueRegionName } from './fixtures/ipc-helpers.js';

const KiB = 1024;
let arenas: Arena[] = [];

function arena(options: { segmentBytes?: number; maxBytes?: number; spareLargeSegments?: number } = {}): Arena {
  const a = new Arena({ prefix: `${uniqueRegionName('arena')}-h`, ...options });
  arenas.push(a);
  return a;
}

afterEach(() => {
  for (const a of arenas) a.close();
  arenas = [];
  expect(shmFiles()).toEqual([]);
});

describe('Arena', () => {
  it('allocates aligned blocks and coalesces freed neighbours', () => {
    const a = arena({ segmentBytes: 64 * KiB });
    const x = a.alloc(100);
    const y = a.alloc(1000);
    const z = a.alloc(5000);
    for (const b of [x, y, z]) expect(b.handle[1] % ALIGNMENT).toBe(0);
    expect(new Set([x, y, z].map((b) => b.handle[0])).size).toBe(1);
    expect(y.handle[1]).toBeGreaterThanOrEqual(x.handle[1] + 100);
    x.bytes.fill(1);
    y.bytes.fill(2);
    expect(a.bytesOf(x.handle).every((v) => v === 1)).toBe(true);
    a.free(y.handle);
    a.free(x.handle);
    a.free(z.handle);
    expect(a.stats.usedBytes).toBe(0);
    // Only a fully coalesced free list has room for a block the size of the segment.
    const whole = a.alloc(32 * KiB);
    const rest = a.alloc(32 * KiB);
    expect([whole.handle[0], whole.handle[1]]).toEqual([x.handle[0], 0]);
    expect(rest.handle).toEqual([x.handle[0], 32 * KiB, 32 * KiB]);
    expect(a.stats.segments).toBe(1);
  });

  it('refuses a double free and a foreign handle', () => {
    const a = arena({ segmentBytes: 64 * KiB });
    const b = a.alloc(256);
    a.alloc(256);
    a.free(b.handle);
    expect(() => a.free(b.handle)).toThrow(/freed twice/);
    expect(() => a.free([99, 0, 10])).toThrow(/segment 99/);
    const big = a.alloc(48 * KiB);
    a.free(big.handle);
    expect(() => a.free(big.handle)).toThrow(/freed twice/);
  });

  it('grows by segments when full and uses the freed space again', () => {
    const a = arena({ segmentBytes: 64 * KiB });
    const blocks = Array.from({ length: 6 }, () => a.alloc(30 * KiB));
    expect(a.stats.segments).toBe(3);
    expect(a.stats.totalBytes).toBe(3 * 64 * KiB);
    for (const b of blocks) a.free(b.handle);
    expect(a.stats.usedBytes).toBe(0);
    for (let i = 0; i < 6; i++) a.alloc(30 * KiB);
    expect(a.stats.segments).toBe(3);
  });

  it('gives a large block a dedicated segment and reuses it after it is freed', () => {
    const a = arena({ segmentBytes: 64 * KiB });
    a.alloc(100);
    const big = a.alloc(100 * KiB);
    expect(big.handle[1]).toBe(0);
    expect(big.bytes.byteLength).toBe(100 * KiB);
    expect(a.stats.segments).toBe(2);
    big.bytes.fill(7);
    a.free(big.handle);
    const again = a.alloc(90 * KiB);
    expect(again.handle[0]).toBe(big.handle[0]);
    expect(a.stats.segments).toBe(2);
    // A much smaller "large" block does not take a spare twice its size.
    a.free(again.handle);
    const other = a.alloc(33 * KiB);
    expect(other.handle[0]).not.toBe(big.handle[0]);
    expect(a.takeDropped()).toEqual([]);
  });

  it('drops spares beyond the limit and reports them for the peer', () => {
    const a = arena({ segmentBytes: 64 * KiB, spareLargeSegments: 1 });
    const b1 = a.alloc(100 * KiB);
    const b2 = a.alloc(200 * KiB);
    a.free(b1.handle);
    a.free(b2.handle);
    expect(a.takeDropped()).toEqual([b1.handle[0]]);
    expect(a.takeDropped()).toEqual([]);
  });

  it('past the cap fails only that allocation, with STUBHOST_ARENA_FULL', () => {
    const a = arena({ segmentBytes: 64 * KiB, maxBytes: 256 * KiB });
    const held = Array.from({ length: 8 }, () => a.alloc(30 * KiB));
    expect(a.stats.totalBytes).toBe(256 * KiB);
    let err: unknown;
    try {
      a.alloc(30 * KiB);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(StubhostError);
    expect((err as StubhostError).code).toBe('STUBHOST_ARENA_FULL');
    expect((err as StubhostError).message).toMatch(/full.*30720 bytes requested/);
    expect(() => a.alloc(1024 * KiB)).toThrow(expect.objectContaining({ code: 'STUBHOST_ARENA_FULL' }));
    // Small blocks still fit in the gaps, and freeing makes room again.
    expect(a.alloc(2 * KiB).handle[0]).toBeGreaterThanOrEqual(0);
    a.free(held[1]!.handle);
    expect(a.alloc(30 * KiB).handle[0]).toBe(held[1]!.handle[0]);
  });

  it('a spare dedicated segment is given back when the cap is near', () => {
    const a = arena({ segmentBytes: 64 * KiB, maxBytes: 320 * KiB });
    const big = a.alloc(200 * KiB);
    a.free(big.handle);
    a.alloc(30 * KiB);
    a.alloc(30 * KiB);
    expect(a.takeDropped()).toEqual([]);
    a.alloc(30 * KiB); // needs a second regular segment: 200 + 64 + 64 > 320 → the spare goes
    expect(a.takeDropped()).toEqual([big.handle[0]]);
    expect(a.stats.totalBytes).toBe(128 * KiB);
  });

  it('gives empty regular segments back when a large block needs room under the cap', () => {
    const a = arena({ segmentBytes: 64 * KiB, maxBytes: 256 * KiB });
    const small = Array.from({ length: 8 }, () => a.alloc(30 * KiB));
    const kept = small.shift()!;
    for (const b of small) a.free(b.handle);
    // Only one segment still holds a block: the three empty ones must make way for 128 KiB.
    const big = a.alloc(128 * KiB);
    expect(big.bytes.byteLength).toBe(128 * KiB);
    expect(a.takeDropped()).toHaveLength(2);
    expect(a.stats.totalBytes).toBeLessThanOrEqual(256 * KiB);
    expect(a.bytesOf(kept.handle).byteLength).toBe(30 * KiB);
    a.free(kept.handle);
    a.free(big.handle);
  });

  it('zero-length blocks need no memory', () => {
    const a = arena();
    const b = a.alloc(0);
    expect(b.handle).toEqual([-1, 0, 0]);
    a.free(b.handle);
    expect(a.stats.segments).toBe(0);
  });

  it('close unlinks every segment file and is safe twice', () => {
    const a = arena({ segmentBytes: 64 * KiB });
    a.alloc(10);
    a.alloc(100 * KiB);
    expect(shmFiles(a.prefix.slice(1))).toHaveLength(2);
    a.close();
    a.close();
    expect(shmFiles(a.prefix.slice(1))).toEqual([]);
    expect(() => a.alloc(10)).toThrow(expect.objectContaining({ code: 'STUBHOST_CLOSED' }));
  });
});

describe('PeerArena', () => {
  it('maps the writer’s segments in place and unlinks their names', () => {
    const a = arena({ segmentBytes: 64 * KiB });
    const b = a.alloc(1000);
    const peer = new PeerArena(a.prefix);
    b.bytes.fill(9);
    const view = peer.view(b.handle);
    expect(view.byteLength).toBe(1000);
    expect(view.every((v) => v === 9)).toBe(true);
    b.bytes[0] = 42; // same memory, not a copy
    expect(view[0]).toBe(42);
    expect(shmFiles(a.prefix.slice(1))).toEqual([]);
    peer.close();
  });

  it('refuses out-of-range, malformed and unknown handles with a clear error', () => {
    const a = arena({ segmentBytes: 64 * KiB });
    const b = a.alloc(100);
    const peer = new PeerArena(a.prefix);
    const id = b.handle[0];
    const refuse = (h: readonly [number, number, number], pattern: RegExp) => {
      let err: unknown;
      try {
        peer.view(h);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(StubhostError);
      expect((err as StubhostError).code).toBe('STUBHOST_PROTOCOL');
      expect((err as StubhostError).message).toMatch(pattern);
    };
    refuse([id, 64 * KiB - 10, 100], /out-of-range .*segment 0 holds 65536 bytes/);
    refuse([id, 0, 64 * KiB + 1], /out-of-range/);
    refuse([id, -4, 8], /invalid shared-memory handle/);
    refuse([id, 1.5, 8], /invalid shared-memory handle/);
    refuse([7, 0, 8], /cannot map the peer's shared-memory segment .*-h7/);
    expect(peer.view([id, 64 * KiB - 100, 100]).byteLength).toBe(100);
    peer.close();
  });
});

describe('readTensorOut', () => {
  it('copies arena bytes once: into the placement it is given (numeric), else private memory; inline bytes as they are', () => {
    const writer = arena({ segmentBytes: 64 * KiB });
    const reader = arena({ segmentBytes: 64 * KiB });
    const peer = new PeerArena(writer.prefix);
    const blocks: ReturnType<Arena['alloc']>['handle'][] = [];
    const x = Float32Array.from({ length: 1024 }, (_, k) => k);
    const desc = writeTensor(writer, { name: 'x', datatype: 'FP32', shape: [1024], data: x }, blocks);
    const placed: ReturnType<Arena['alloc']>[] = [];
    const t = readTensorOut(peer, desc, (n) => {
      const b = reader.alloc(n);
      placed.push(b);
      return b.bytes;
    });
    expect(placed).toHaveLength(1);
    const data = t.data as Float32Array;
    // A view of the placed block (the same memory), with the writer's values, outliving its block.
    expect([data.buffer, data.byteOffset, data.byteLength]).toEqual([placed[0]!.bytes.buffer, placed[0]!.bytes.byteOffset, 4096]);
    writer.bytesOf(desc.h!).fill(0);
    expect(Array.from(data)).toEqual(Array.from(x));
    // No placement given (arena full): private memory.
    const privateCopy = readTensorOut(peer, desc, () => undefined).data as Float32Array;
    expect(privateCopy.buffer).not.toBeInstanceOf(SharedArrayBuffer);
    // BYTES are decoded into elements anyway: never placed.
    const strings = writeTensor(writer, { name: 's', datatype: 'BYTES', shape: [2], data: [new Uint8Array(400), new Uint8Array(400)] }, blocks);
    let asked = 0;
    expect((readTensorOut(peer, strings, () => (asked++, undefined)).data as Uint8Array[]).map((e) => e.byteLength)).toEqual([400, 400]);
    expect(asked).toBe(0);
    // Inline bytes (small tensors) are private already.
    const small = writeTensor(writer, { name: 'y', datatype: 'FP32', shape: [2], data: Float32Array.of(1, 2) }, blocks);
    expect(Array.from(readTensorOut(peer, small, () => { throw new Error('not asked'); }).data as Float32Array)).toEqual([1, 2]);
    peer.close();
  });
});
