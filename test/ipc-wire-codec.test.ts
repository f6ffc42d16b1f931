/**
 * The channel's msgpack fast path (src/ipc/wire-codec.ts) against msgpackr with the channel's
 * options: whatever the fast path encodes, msgpackr decodes to what msgpackr's own bytes decode
 * to; whatever it decodes, it decodes as msgpackr does; and what it does not handle it leaves to
 * msgpackr (encodeFast undefined, decodeFast NOT_FAST), so a message never changes meaning.
 */
import { Packr, Unpackr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { NOT_FAST, decodeFast, encodeFast } from '../src/ipc/wire-codec.js';

// The channel's msgpack settings (src/ipc/channel.ts).
const packr = new Packr({ useRecords: false, moreTypes: false });
const unpackr = new Unpackr({ useRecords: false, copyBuffers: true, mapsAsObjects: true });

const bytesOf = (n: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 7) & 0xff);

const NUMBERS = [
  0, -0, 1, 0x1f, 0x20, 0x3f, 0x40, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0xffffffff, 0x100000000,
  -1, -0x20, -0x21, -0x80, -0x81, -0x8000, -0x8001, -0x80000000, -0x80000001, 1.5, -2.25, 1e300, 5e-324,
  Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, NaN, Infinity, -Infinity,
];
const STRINGS = [
  '', 'a', 'exec-done', 'x'.repeat(31), 'x'.repeat(32), 'x'.repeat(255), 'x'.repeat(256), 'x'.repeat(70000),
  'é', 'ünïcödé in a longer sentence that goes past thirty-two bytes', '日本語', '😀 emoji', '\uFEFFbom first',
  'lone \uD800 high', 'lone \uDC00 low', `${'long '.repeat(20)}\uD800 lone high`, 'é'.repeat(20000), '\u0000nul',
];
const VALUES: unknown[] = [
  ...NUMBERS, ...STRINGS, true, false, null, undefined,
  bytesOf(0), bytesOf(16), bytesOf(255), bytesOf(256), bytesOf(70000),
  [], [1, 'two', [3]], Array.from({ length: 20 }, (_, i) => i), Array.from({ length: 70000 }, (_, i) => i & 0x7f),
  {}, { a: 1 }, { '0': 'zero', b: undefined, c: null }, Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`k${i}`, i])),
  // The protocol's hot messages.
  { k: 'exec', b: 7, reqs: [{ rid: 7, model: 'add_sub', ins: [{ n: 'INPUT0', t: 'FP32', s: [4], d: bytesOf(16) }, { n: 'INPUT1', t: 'FP32', s: [4], d: bytesOf(16) }], version: 1 }] },
  { k: 'exec-done', b: 7, rs: [{ outs: [{ n: 'OUTPUT0', t: 'FP32', s: [4], d: bytesOf(16) }, { n: 'OUTPUT1', t: 'FP32', s: [1, 2, 2], h: [3, 4096, 1024] }] }] },
  { k: 'exec-done', b: 8, err: { code: 'STUBHOST_MODEL_ERROR', message: "model 'm': execute threw: ünïcödé" } },
  { k: 'resp', rid: 3, r: undefined, final: true },
  { k: 'metrics', batch: { set: [[1, 2.5]], inc: [[2, -1]] } },
];

/** msgpackr's reading of `value` as msgpackr writes it (from a plain Uint8Array, as the channel reads: a Buffer would give Buffers for bin values). */
const viaMsgpackr = (value: unknown): unknown => unpackr.unpack(Uint8Array.from(packr.pack(value)));

function expectSame(actual: unknown, expected: unknown): void {
  expect(actual).toEqual(expected);
  // toEqual treats -0 as 0 and undefined keys as absent: check both exactly.
  expect(JSON.stringify(actual, keepUndefined)).toBe(JSON.stringify(expected, keepUndefined));
  if (typeof expected === 'number') expect(Object.is(actual, expected)).toBe(true);
}
function keepUndefined(_: string, v: unknown): unknown {
  if (v === undefined) return '<undefined>';
  if (v instanceof Uint8Array) return `<bin ${Array.from(v).join(',')}>`;
  return v;
}

describe('wire codec fast path', () => {
  it('encodes every protocol-shaped value so that msgpackr reads what it reads from its own bytes', () => {
    for (const value of VALUES) {
      const bytes = encodeFast(value);
      expect(bytes, `encodeFast(${JSON.stringify(value, keepUndefined)?.slice(0, 60)})`).toBeDefined();
      expectSame(unpackr.unpack(Uint8Array.from(bytes!)), viaMsgpackr(value));
    }
  });

  it('decodes msgpackr bytes as msgpackr does, and its own bytes alike', () => {
    for (const value of VALUES) {
      const packed = Uint8Array.from(packr.pack(value));
      expectSame(decodeFast(packed), unpackr.unpack(packed));
      expectSame(decodeFast(Uint8Array.from(encodeFast(value)!)), viaMsgpackr(value));
    }
  });

  it('reads every short string right, however many share a cache slot', () => {
    // Thousands of distinct keys of 1 to 24 bytes: each is read back as itself, twice (cache hit).
    const keys = Array.from({ length: 5000 }, (_, i) => `${'k'.repeat(i % 7)}${i.toString(36)}${'z'.repeat(i % 13)}`.slice(0, 1 + (i % 24)));
    const object = Object.fromEntries(keys.map((k, i) => [k, i]));
    const packed = Uint8Array.from(packr.pack(object));
    for (let round = 0; round < 2; round++) expectSame(decodeFast(packed), unpackr.unpack(packed));
  });

  it('decoded bin values are copies, not views of the message bytes', () => {
    const packed = Uint8Array.from(encodeFast({ d: bytesOf(16) })!);
    const decoded = decodeFast(packed) as { d: Uint8Array };
    packed.fill(0);
    expect(Array.from(decoded.d)).toEqual(Array.from(bytesOf(16)));
  });

  it('leaves to msgpackr what only msgpackr encodes', () => {
    class Point {
      x = 1;
    }
    for (const value of [10n, new Map([[1, 2]]), new Date(0), new Set([1]), new Point(), Buffer.from([1, 2]), new Float32Array(2), Object.create(null), { own: { hasOwnProperty: 1 } }, [() => 1], Symbol('s')]) {
      expect(encodeFast(value)).toBeUndefined();
    }
  });

  it('leaves to msgpackr what only msgpackr decodes, or refuses', () => {
    const cases: Uint8Array[] = [
      Uint8Array.from(packr.pack(2n ** 60n)), // 64-bit integer
      Uint8Array.from(packr.pack(new Date(0))), // extension
      Uint8Array.from([0x81, 0xa9, ...new TextEncoder().encode('__proto__'), 0x01]), // renamed by msgpackr
      Uint8Array.from([0x81, 0x01, 0x02]), // a number as a key
      Uint8Array.from([0xa2, 0xc3, 0x28]), // invalid UTF-8
      Uint8Array.from([0x92, 0x01]), // truncated
      Uint8Array.from([0x01, 0x02]), // trailing bytes
      Uint8Array.from([0xc1]), // never used
      new Uint8Array(0),
    ];
    for (const bytes of cases) expect(decodeFast(bytes)).toBe(NOT_FAST);
  });

  it('survives a grown buffer: a large message after small ones', () => {
    expect(unpackr.unpack(Uint8Array.from(encodeFast({ k: 'a' })!))).toEqual({ k: 'a' });
    const big = { k: 'big', d: bytesOf(100_000), s: 'y'.repeat(50_000) };
    expectSame(unpackr.unpack(Uint8Array.from(encodeFast(big)!)), viaMsgpackr(big));
    expect(unpackr.unpack(Uint8Array.from(encodeFast({ k: 'b' })!))).toEqual({ k: 'b' });
  });
});
