/**
 * The wire module (src/ipc/wire-request.ts): every field of a request and a response survives
 * encode → msgpack (as the channel packs it) → decode, in both directions, and through the model
 * API's InferenceRequest as the stub builds it; a malformed request from the peer is refused.
 */
import { Packr, Unpackr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import type { Arena, PeerArena } from '../src/ipc/arena.js';
import { readTensor, writeTensor } from '../src/ipc/tensor-codec.js';
import {
  decodeInferRequest, decodeRequest, decodeResponse, encodeInferRequest, encodeRequest, encodeResponse,
  type Complete, type RequestFields, type ResponseFields, type WireRequest,
} from '../src/ipc/wire-request.js';
import type { InferRequest, TensorValue } from '../src/core/types.js';
import { InferenceRequest } from '../stub/api/request.js';
import { Tensor } from '../stub/api/tensor.js';

// The channel's msgpack settings (src/ipc/channel.ts).
const packr = new Packr({ useRecords: false, moreTypes: false });
const unpackr = new Unpackr({ useRecords: false, copyBuffers: true, mapsAsObjects: true });
const overTheWire = <T>(message: T): T => unpackr.unpack(packr.pack(message)) as T;

// Tiny tensors travel inline: neither arena is touched.
const noArena = new Proxy({}, { get: () => { throw new Error('a tiny tensor used the arena'); } }) as Arena & PeerArena;
const write = (t: TensorValue) => writeTensor(noArena, t, []);
const read = (d: Parameters<typeof readTensor>[1]) => readTensor(noArena, d);

const x: TensorValue = { name: 'X', datatype: 'INT32', shape: [1, 2], data: Int32Array.of(3, 4) };
const s: TensorValue = { name: 'S', datatype: 'BYTES', shape: [1], data: [new TextEncoder().encode('hi')] };

/** Every field set, and to something other than its default, so a dropped one shows. */
function fullRequest(correlationId: string | bigint): Complete<RequestFields<TensorValue>> {
  return {
    requestId: 'req-7',
    modelName: 'target',
    modelVersion: 3,
    inputs: [x, s],
    requestedOutputNames: ['Y', 'Z'],
    parameters: { a: 'text', b: 2.5, c: true },
    correlationId,
    sequenceStart: true,
    sequenceEnd: true,
    priority: 2,
    timeoutMs: 1.5,
  };
}

/** The fields of a minimal request (a model name, nothing else set). */
const defaults = decodeRequest({ rid: 1, model: 'm', ins: [], outs: [], params: {}, prio: 0, id: '' } as WireRequest, read);

/** Tensors (of either side's kind) as plain values: name, type, shape, elements. */
function plain(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(plain);
  if (ArrayBuffer.isView(v)) return Array.from(v as unknown as ArrayLike<number | bigint>);
  if (v && typeof v === 'object' && 'shape' in v && 'data' in v) {
    const t = v as { name: string; datatype?: string; dtype?: string; shape: number[]; data: unknown };
    return { name: t.name, type: t.datatype ?? t.dtype, shape: [...t.shape], data: plain(t.data) };
  }
  return v;
}

function expectSameFields(got: Record<string, unknown>, want: Record<string, unknown>): void {
  for (const key of Object.keys(want)) expect(plain(got[key]), `field ${key}`).toEqual(plain(want[key]));
  expect(Object.keys(got).sort()).toEqual(Object.keys(want).sort());
}

describe('requests', () => {
  it('the fixture sets every field away from its default', () => {
    const full = fullRequest(42n) as Record<string, unknown>;
    expect(Object.keys(full).sort()).toEqual(Object.keys(defaults).sort());
    for (const key of Object.keys(full)) expect(full[key], `field ${key}`).not.toEqual((defaults as Record<string, unknown>)[key]);
  });

  for (const [kind, id] of [['an integer', 42n], ['a string', 'session-9'], ['a digit string', '77']] as const) {
    it(`every field survives encode and decode, with ${kind} sequence id`, () => {
      const full = fullRequest(id);
      const w = overTheWire(encodeRequest(full, 9, write));
      expect(w.rid).toBe(9);
      const back = decodeRequest(w, read);
      expectSameFields(back, full);
      expect(typeof back.correlationId).toBe(typeof id);
    });
  }

  it('a JavaScript number as sequence id arrives as an integer id', () => {
    const f = { ...fullRequest('x'), correlationId: 5 as unknown as bigint };
    expect(decodeRequest(overTheWire(encodeRequest(f, 1, write)), read).correlationId).toBe(5n);
  });

  it('unset optional fields and fields at their default are not put on the wire, and decode to their defaults', () => {
    const w = encodeRequest({ ...defaults, inputs: [] }, 1, write);
    expect(Object.keys(w).sort()).toEqual(['ins', 'model', 'rid']);
    const back = decodeRequest(overTheWire(w), read);
    expect([back.requestId, back.requestedOutputNames, back.parameters, back.priority]).toEqual(['', [], {}, 0]);
  });

  it("host → stub → the model's InferenceRequest → BLS → host keeps every field", () => {
    const original: InferRequest = {
      id: 'req-7', modelName: 'target', modelVersion: 3, inputs: [x, s], outputs: [{ name: 'Y' }, { name: 'Z' }],
      parameters: { a: 'text', b: 2.5, c: true }, priority: 2, timeoutUs: 1500, correlationId: 42n,
      sequenceStart: true, sequenceEnd: true,
    };
    // What stays in the host, by design (see EXEC_FIELD_SOURCES); any other field must travel.
    const hostOnly = ['signal', 'ensemblePath'];
    // The stub decodes the host's exec into the model's request, as stub/stub-wire.ts does.
    const exec = overTheWire(encodeInferRequest(original, 5, 3, write));
    const fields = decodeRequest(exec, (d) => {
      const t = read(d);
      return new Tensor(t.name, t.data as never, t.shape, t.datatype);
    });
    const modelRequest = new InferenceRequest({ ...fields });
    for (const key of Object.keys(fields) as (keyof typeof fields)[]) expect(plain(modelRequest[key]), `InferenceRequest.${key}`).toEqual(plain(fields[key]));
    // The model sends that request on with BLS (stub/bls-client.ts encodes the InferenceRequest itself).
    const bls = overTheWire(encodeRequest<Tensor>(modelRequest, 8, (t) => write({ name: t.name, datatype: t.dtype, shape: t.shape, data: t.data as TensorValue['data'] })));
    const back = decodeInferRequest(bls, read) as unknown as Record<string, unknown>;
    const want = Object.fromEntries(Object.entries(original).filter(([k]) => !hostOnly.includes(k)));
    expectSameFields(back, want);
  });

  it("the host's exec, written straight from the InferRequest, is what encodeRequest writes for its fields, key for key in order", () => {
    const base: InferRequest = { id: '', modelName: 'm', inputs: [x], parameters: {}, priority: 0, timeoutUs: 0 };
    const requests: InferRequest[] = [
      base, { ...base, inputs: [] }, { ...base, id: 'r' }, { ...base, outputs: [] }, { ...base, outputs: [{ name: 'Y' }] }, { ...base, parameters: { a: 1 } },
      { ...base, priority: 3 }, { ...base, timeoutUs: 2500 }, { ...base, correlationId: 9n, sequenceStart: true }, { ...base, correlationId: 'c', sequenceEnd: true },
      { ...base, sequenceSlot: 0 }, { ...base, modelVersion: 7 },
      { id: 'all', modelName: 'm', modelVersion: 2, inputs: [x, s], outputs: [{ name: 'Y' }], parameters: { p: true }, priority: 1, timeoutUs: 1, correlationId: 5n, sequenceStart: true, sequenceEnd: true, sequenceSlot: 4 },
    ];
    for (const r of requests) {
      // The adapter the host once built per request.
      const fields: Complete<RequestFields<TensorValue>> = {
        requestId: r.id, modelName: r.modelName, modelVersion: 3, inputs: r.inputs, requestedOutputNames: r.outputs ? r.outputs.map((o) => o.name) : [],
        parameters: r.parameters, correlationId: r.correlationId, sequenceStart: r.sequenceStart === true, sequenceEnd: r.sequenceEnd === true,
        priority: r.priority, timeoutMs: r.timeoutUs ? r.timeoutUs / 1000 : undefined,
      };
      const want: WireRequest = encodeRequest(fields, 5, write);
      if (r.sequenceSlot !== undefined) want.slot = r.sequenceSlot;
      const got = encodeInferRequest(r, 5, 3, write);
      expect(Object.keys(got), JSON.stringify(r, (_, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v))).toEqual(Object.keys(want));
      expect(packr.pack(got).equals(packr.pack(want))).toBe(true);
    }
  });

  it('refuses a malformed request, naming what is wrong', () => {
    const good = encodeRequest(fullRequest(1n), 1, write);
    const cases: [Partial<Record<keyof WireRequest, unknown>>, RegExp][] = [
      [{ model: '' }, /no model name/],
      [{ ins: 'x' }, /no input list/],
      [{ outs: [1] }, /requested outputs/],
      [{ params: [] }, /parameters that are not a map/],
      [{ params: { p: { nested: 1 } } }, /parameter 'p'/],
      [{ corr: 5 }, /correlation id/],
      [{ start: 1 }, /sequence flag/],
      [{ prio: 'high' }, /priority/],
      [{ timeoutMs: -1 }, /timeout/],
      [{ version: '1' }, /model version/],
    ];
    for (const [patch, message] of cases) {
      expect(() => decodeRequest({ ...good, ...patch } as WireRequest, read), JSON.stringify(patch)).toThrow(message);
    }
  });
});

describe('responses', () => {
  it('outputs and parameters survive encode and decode', () => {
    const full: Complete<ResponseFields<TensorValue>> = { outputs: [x, s], parameters: { k: 'v', n: 1 }, error: undefined, sites: { [x.name]: '1/model.ts:3:9' } };
    expectSameFields(decodeResponse(overTheWire(encodeResponse(full, write)), read), full);
  });

  it('an error survives, without outputs', () => {
    const r = overTheWire(encodeResponse({ outputs: [x], error: { code: 'STUBHOST_MODEL_ERROR', message: 'boom' } }, write));
    expect(decodeResponse(r, read)).toEqual({ outputs: [], parameters: undefined, error: { code: 'STUBHOST_MODEL_ERROR', message: 'boom' } });
  });

  it('refuses a malformed response', () => {
    expect(() => decodeResponse({ outs: 3 } as never, read)).toThrow(/no output list/);
    expect(() => decodeResponse({ outs: [], err: 'x' } as never, read)).toThrow(/error that is not/);
  });
});
