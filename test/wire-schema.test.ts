/**
 * The schema paths of the channel's codec (src/ipc/wire-codec.ts: encodeMessage, decodeMessage
 * for `exec` and `exec-done`) against msgpackr with the channel's options: for every message the
 * protocol's encoders make (every dtype, empty and large shapes, inline and arena tensors,
 * optional request fields present and absent, non-ASCII text, parameters, errors) and for
 * objects of other shapes than theirs, the bytes are msgpackr's exactly and they decode to what
 * msgpackr decodes them to; what the schema paths do not cover they leave as the generic path does.
 */
import { Packr, Unpackr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import type { Arena, Handle } from '../src/ipc/arena.js';
import { writeTensor } from '../src/ipc/tensor-codec.js';
import { encodeInferRequest, encodeResponse, errorResponse } from '../src/ipc/wire-request.js';
import { NOT_FAST, decodeFast, decodeMessage, encodeFast, encodeMessage } from '../src/ipc/wire-codec.js';
import { DATA_TYPES, typedArrayFor, type DataType } from '../src/core/dtypes.js';
import type { InferRequest, TensorValue } from '../src/core/types.js';

// The channel's msgpack settings (src/ipc/channel.ts).
const packr = new Packr({ useRecords: false, moreTypes: false });
const unpackr = new Unpackr({ useRecords: false, copyBuffers: true, mapsAsObjects: true });

/** An arena that hands out blocks at growing offsets of segment 3 (tensors over the inline size). */
function fakeArena(): Arena {
  let offset = 0;
  return {
    alloc(size: number) {
      const handle: Handle = [3, offset, size];
      offset += size + 64;
      return { handle, bytes: new Uint8Array(size) };
    },
  } as unknown as Arena;
}
const arena = fakeArena();
const write = (t: TensorValue) => writeTensor(arena, t, []);

function tensor(name: string, datatype: DataType, shape: number[]): TensorValue {
  const count = shape.reduce((a, b) => a * b, 1);
  if (datatype === 'BYTES') return { name, datatype, shape, data: Array.from({ length: count }, (_, i) => new TextEncoder().encode(`é${i}`)) };
  const data = new (typedArrayFor(datatype) as unknown as new (n: number) => TensorValue['data'] & { [i: number]: number | bigint })(count);
  for (let i = 0; i < count; i++) data[i] = datatype === 'UINT64' || datatype === 'INT64' ? BigInt(i) : i % 2;
  return { name, datatype, shape, data };
}

/** Every dtype, as a tiny (inline) tensor and as one in the arena; shapes empty, zero and large. */
const TENSORS: TensorValue[] = [
  ...DATA_TYPES.map((t) => tensor(`in_${t}`, t, [2, 2])),
  ...DATA_TYPES.map((t) => tensor(`big_${t}`, t, [1, 300])),
  tensor('scalar', 'FP32', []),
  tensor('empty', 'INT32', [0, 4]),
  tensor('wide', 'UINT8', [1, 70_000]),
  tensor('dims', 'FP32', [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2]),
  tensor('große_Eingabe_名前', 'FP32', [3]),
  tensor('x'.repeat(40), 'FP64', [200, 1]),
];

const BASE: InferRequest = { id: '', modelName: 'add_sub', inputs: [TENSORS[11]!, TENSORS[0]!], parameters: {}, priority: 0, timeoutUs: 0 };
/** Requests with each optional field present, and none. */
const REQUESTS: InferRequest[] = [
  BASE,
  { ...BASE, inputs: [] },
  { ...BASE, inputs: TENSORS },
  { ...BASE, id: 'req-7' },
  { ...BASE, id: 'ünïcödé-😀' },
  { ...BASE, modelName: 'модель' },
  { ...BASE, modelVersion: 3 },
  { ...BASE, outputs: [{ name: 'OUTPUT0' }, { name: 'ВЫХОД' }] },
  { ...BASE, parameters: { a: 'text', b: 2.5, c: true, d: -7, 'ключ': 'значение', e: 70_000 } },
  { ...BASE, priority: 2 },
  { ...BASE, timeoutUs: 1500 },
  { ...BASE, correlationId: 42n, sequenceStart: true },
  { ...BASE, correlationId: 'session-9', sequenceEnd: true },
  { ...BASE, sequenceSlot: 5 },
  {
    ...BASE, id: 'all', modelVersion: 2, outputs: [{ name: 'Y' }], parameters: { p: 1 }, priority: 1, timeoutUs: 10, correlationId: 7n,
    sequenceStart: true, sequenceEnd: true, sequenceSlot: 0,
  },
];

const execOf = (reqs: InferRequest[], b = 7) => ({ k: 'exec', b, reqs: reqs.map((r, i) => encodeInferRequest(r, 1000 * b + i, 1, write)) });
const doneOf = (outputs: TensorValue[][], b = 7, extra: Parameters<typeof encodeResponse>[0] = { outputs: [] }) =>
  ({ k: 'exec-done', b, rs: outputs.map((o) => encodeResponse({ ...extra, outputs: o }, write)) });

/** The messages the protocol's encoders make, as StubProcess and the stub send them. */
const MESSAGES: object[] = [
  ...REQUESTS.map((r) => execOf([r])),
  execOf(REQUESTS, 70_000),
  execOf(Array.from({ length: 20 }, () => BASE), 0xffffffff),
  execOf([]),
  doneOf([[TENSORS[11]!, TENSORS[12]!]]),
  doneOf([TENSORS]),
  doneOf([[]]),
  doneOf(Array.from({ length: 17 }, (_, i) => [TENSORS[i % TENSORS.length]!])),
  doneOf([[TENSORS[0]!]], 9, { outputs: [], parameters: { done: true, 'ñ': 'ü' } }),
  doneOf([[TENSORS[0]!]], 9, { outputs: [], sites: { in_BOOL: '1/model.ts:12:9', 'ñ': 'ü/model.ts:1:1' } }),
  { k: 'exec-done', b: 8, rs: [errorResponse({ code: 'STUBHOST_MODEL_ERROR', message: "model 'm': bad output: ünïcödé" }), encodeResponse({ outputs: [TENSORS[3]!] }, write)] },
  { k: 'exec-done', b: 8, err: { code: 'STUBHOST_MODEL_ERROR', message: 'execute threw: 😀' } },
  { k: 'exec-done', b: 8 },
];

/** The same kinds in shapes the encoders do not make: other key orders, extra keys, other value types. */
const ODD: object[] = [
  { b: 1, k: 'exec', reqs: [] },
  { k: 'exec', reqs: [{ ins: [{ s: [4], t: 'FP32', n: 'X', d: new Uint8Array(16) }], model: 'm', rid: 1 }], b: 2 },
  { k: 'exec', b: 2, reqs: [{ rid: 'one', model: 5, version: 1.5, ins: [{ n: 1, t: null, s: [-1, 2.5, 0x80, 0x10000, 0xffffffff], d: [1, 2], extra: undefined }] }] },
  { k: 'exec', b: 2, reqs: [null, 3, 'x', [1], { rid: 1, model: 'm', ins: 'none' }, { rid: 1, model: 'm', ins: [null, [], { h: [1, 2, 3], n: 'H' }] }] },
  { k: 'exec', b: 2, reqs: {} },
  { k: 'exec', b: undefined, reqs: [{ rid: 1, model: 'm', ins: [], more: { nested: [true, false, null] } }], later: 'é' },
  { k: 'exec-done', b: 3, rs: [{ outs: [{ n: 'Y', t: 'FP32', s: Array.from({ length: 20 }, (_, i) => i * 1000), h: [1, 0x10000, 7] }], extra: 1 }, null, { err: 'x' }] },
  { k: 'exec-done', b: -1, rs: 'none' },
  { k: 'exec-done', b: 3, rs: [{ outs: {} }, { outs: [1, 'two'] }, { params: {}, outs: [] }] },
  { k: 'exec-done', b: 3, rs: [{ outs: [{ n: 'Y', d: new Uint8Array(0) }] }], k2: 'exec' },
];

function keepUndefined(_: string, v: unknown): unknown {
  if (v === undefined) return '<undefined>';
  if (v instanceof Uint8Array) return `<bin ${Array.from(v).join(',')}>`;
  return v;
}

/** Deep equality that also tells undefined from absent, -0 from 0 (through JSON), and key order. */
function expectSame(actual: unknown, expected: unknown): void {
  expect(actual).toEqual(expected);
  expect(JSON.stringify(actual, keepUndefined)).toBe(JSON.stringify(expected, keepUndefined));
}

const label = (m: object) => JSON.stringify(m, keepUndefined).slice(0, 100);

describe('wire codec schema paths (exec, exec-done)', () => {
  for (const [what, messages] of [['the messages the encoders make', MESSAGES], ['objects of other shapes', ODD]] as const) {
    it(`write msgpackr's bytes for ${what}, and read them as msgpackr does`, () => {
      for (const m of messages) {
        const packed = Uint8Array.from(packr.pack(m));
        const ours = encodeMessage(m);
        expect(ours, label(m)).toBeDefined();
        expect(Buffer.from(ours!).equals(Buffer.from(packed)), label(m)).toBe(true);
        const decoded = decodeMessage(packed);
        expect(decoded, label(m)).not.toBe(NOT_FAST);
        expectSame(decoded, unpackr.unpack(packed));
        expectSame(decoded, decodeFast(packed));
      }
    });
  }

  it('take the schema path for both kinds (a message read by it is a fresh object each time)', () => {
    const packed = Uint8Array.from(packr.pack(MESSAGES[0]));
    const a = decodeMessage(packed) as { k: string; reqs: { ins: { d: Uint8Array }[] }[] };
    const b = decodeMessage(packed) as typeof a;
    expect(a).not.toBe(b);
    expect(a.k).toBe('exec');
    // Bin values are copies, not views of the message bytes.
    const d = a.reqs[0]!.ins[0]!.d;
    const before = Array.from(d);
    packed.fill(0);
    expect(Array.from(d)).toEqual(before);
  });

  it('read messages of other kinds, and bytes of other layouts, as the generic path does', () => {
    const others = [
      { k: 'exec-donf', b: 1 }, { k: 'execs', b: 1 }, { k: 'resp', rid: 3, final: true }, { b: 1, k: 'exec-done' }, { k: 'release', hs: [[1, 2, 3]] },
    ];
    for (const m of others) {
      const packed = Uint8Array.from(packr.pack(m));
      expectSame(decodeMessage(packed), unpackr.unpack(packed));
      expect(Buffer.from(encodeMessage(m)!).equals(Buffer.from(encodeFast(m)!))).toBe(true);
    }
    // A fixmap header and 8-bit string headers (msgpackr writes neither here, another writer may).
    const fixmap = Uint8Array.from([0x83, 0xa1, 0x6b, 0xa4, ...new TextEncoder().encode('exec'), 0xa1, 0x62, 0x07, 0xd9, 0x04, ...new TextEncoder().encode('reqs'), 0x90]);
    expectSame(decodeMessage(fixmap), unpackr.unpack(fixmap));
  });

  it("leave to msgpackr what only msgpackr encodes or decodes, and refuse what is malformed", () => {
    class Desc {
      n = 'X';
    }
    for (const m of [
      { k: 'exec', b: 1, reqs: [{ rid: 1, model: 'm', ins: [new Desc()] }] },
      { k: 'exec', b: 1n, reqs: [] },
      { k: 'exec-done', b: 1, rs: [{ outs: [{ n: 'Y', d: Buffer.from([1]) }] }] },
      { k: 'exec-done', b: 1, rs: [{ outs: [], params: new Map() }] },
    ]) expect(encodeMessage(m)).toBeUndefined();
    const good = Uint8Array.from(packr.pack(MESSAGES[0]));
    const cases = [
      Uint8Array.from(packr.pack({ k: 'exec', b: 2n ** 60n, reqs: [] })),
      Uint8Array.from(packr.pack({ k: 'exec-done', b: 1, rs: [{ outs: [{ n: 'Y', s: [new Date(0)] }] }] })),
      good.subarray(0, good.length - 1),
      Uint8Array.from([...good, 0x01]),
      // The map claims more entries than there are bytes.
      Uint8Array.from([0xde, 0xff, 0xff, ...good.subarray(3)]),
      // An empty map, then bytes that would have been its first entry.
      Uint8Array.from([0xde, 0x00, 0x00, ...good.subarray(3, 10)]),
    ];
    for (const bytes of cases) expect(decodeMessage(bytes)).toBe(NOT_FAST);
    // A length shorter than the buffer: only that much is the message.
    const padded = new Uint8Array(good.length + 32).fill(0xc1);
    padded.set(good);
    expectSame(decodeMessage(padded, good.length), unpackr.unpack(good));
    expect(decodeMessage(padded, good.length - 1)).toBe(NOT_FAST);
  });
});
