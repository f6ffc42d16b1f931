/**
 * The inference RPCs' own ModelInferRequest decoder and ModelInferResponse encoder
 * (src/server/grpc/infer-wire.ts) against proto-loader's protobufjs codec, which they must match:
 * the same objects decoded, the same bytes encoded, the same errors; handled messages must not go
 * to protobufjs, the others must.
 */
import { describe, expect, it } from 'vitest';
import { decodeModelInferRequest, encodeModelInferResponse } from '../src/server/grpc/infer-wire.js';
import { inferenceServiceDefinition } from '../src/server/grpc/proto.js';
import type { ModelInferRequestMsg, ModelInferResponseMsg } from '../src/server/grpc/codec.js';

const def = inferenceServiceDefinition().ModelInfer!;
const protoDecode = def.requestDeserialize as (b: Buffer) => ModelInferRequestMsg;
const protoEncodeRequest = def.requestSerialize as (m: object) => Buffer;
const protoEncode = def.responseSerialize as (m: object) => Buffer;

/** The fast decoder, and whether it gave the message to protobufjs. */
function fastDecode(buf: Buffer): { msg: ModelInferRequestMsg; fellBack: boolean } {
  let fellBack = false;
  const msg = decodeModelInferRequest(buf, (b) => {
    fellBack = true;
    return protoDecode(b);
  });
  return { msg, fellBack };
}

function fastEncode(m: object): { bytes: Buffer; fellBack: boolean } {
  let fellBack = false;
  const bytes = encodeModelInferResponse(m as ModelInferResponseMsg, (x) => {
    fellBack = true;
    return protoEncode(x);
  });
  return { bytes, fellBack };
}

/** Decodes with both; same object (key order included) or the same error. */
function expectSameDecode(buf: Buffer): boolean {
  let want: unknown;
  let wantErr: string | undefined;
  try {
    want = protoDecode(buf);
  } catch (err) {
    wantErr = String(err);
  }
  let got: ReturnType<typeof fastDecode> | undefined;
  let gotErr: string | undefined;
  try {
    got = fastDecode(buf);
  } catch (err) {
    gotErr = String(err);
  }
  expect(gotErr).toBe(wantErr);
  if (wantErr === undefined) {
    expect(got!.msg).toStrictEqual(want);
    expect(JSON.stringify(got!.msg)).toBe(JSON.stringify(want));
  }
  return got?.fellBack ?? true;
}

const f32 = (xs: number[]) => Buffer.from(new Float32Array(xs).buffer);

const REQUESTS: Record<string, object> = {
  'add_sub as the bench sends it': {
    model_name: 'add_sub', model_version: '', id: '',
    inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [4] }, { name: 'INPUT1', datatype: 'FP32', shape: [4] }],
    raw_input_contents: [f32([1, 2, 3, 4]), f32([0.5, 0.25, 2, -1])],
  },
  'every parameter type, requested outputs, ids, several dims': {
    model_name: 'modèle', model_version: '3', id: 'req-日本',
    parameters: {
      sequence_id: { int64_param: 12345678901 }, sequence_start: { bool_param: true }, sequence_end: { bool_param: false },
      priority: { uint64_param: 2 }, tag: { string_param: 'x y' }, scale: { double_param: -1.5 }, nan: { double_param: NaN }, empty: {},
      [`k${'x'.repeat(200)}`]: { string_param: 'y'.repeat(300) },
    },
    inputs: [{ name: 'A', datatype: 'INT64', shape: [2, 0, 2 ** 40], parameters: { p: { int64_param: 0 } } }],
    outputs: [{ name: 'Y', parameters: { classification: { int64_param: 3 } } }, { name: 'Z' }],
    raw_input_contents: [Buffer.alloc(0), Buffer.alloc(300, 7)],
  },
  'no fields at all': {},
};

describe('decodeModelInferRequest', () => {
  for (const [what, m] of Object.entries(REQUESTS)) {
    it(`decodes ${what} as protobufjs does, without it`, () => {
      expect(expectSameDecode(protoEncodeRequest(m))).toBe(false);
    });
  }

  it('decodes names as protobufjs does however many there are and whatever their bytes', () => {
    // Names are kept in a table of recent ones: many names competing for its slots, names around
    // its length limit, and non-ASCII ones, each message decoded twice.
    const names = [
      ...Array.from({ length: 600 }, (_, i) => `in${i}`), 'n'.repeat(64), 'n'.repeat(65), 'n'.repeat(63) + 'é', 'é', 'INPUT0', 'INPUT1', 'INPUT_A0', 'INPUT_B0',
    ];
    for (let i = 0; i < names.length; i += 50) {
      const group = names.slice(i, i + 50);
      const m = {
        model_name: group[0], model_version: group[1],
        parameters: Object.fromEntries(group.map((n) => [n, { bool_param: true }])),
        inputs: group.map((n, k) => ({ name: n, datatype: names[(i + k * 7) % names.length], shape: [1] })),
        outputs: group.map((n) => ({ name: n })),
      };
      expect(expectSameDecode(protoEncodeRequest(m))).toBe(false);
      expect(expectSameDecode(protoEncodeRequest(m))).toBe(false);
    }
  });

  it('raw contents are views of the received bytes', () => {
    const buf = protoEncodeRequest(REQUESTS['add_sub as the bench sends it']!);
    const raw = fastDecode(buf).msg.raw_input_contents![0]!;
    expect(raw.buffer).toBe(buf.buffer);
  });

  const unpacked = (): Buffer => {
    // shape 3 and 5 as unpacked varints (field 3, wire type 0), which protobufjs also accepts.
    const tensor = Buffer.from([0x0a, 0x01, 0x41, 0x12, 0x02, 0x46, 0x50, 0x18, 0x03, 0x18, 0x05]);
    return Buffer.concat([Buffer.from([0x2a, tensor.length]), tensor]);
  };
  it('decodes unpacked shapes as protobufjs does', () => {
    expect(expectSameDecode(unpacked())).toBe(false);
  });

  const cases: Record<string, Buffer> = {
    'typed contents': protoEncodeRequest({ inputs: [{ name: 'A', datatype: 'INT32', shape: [2], contents: { int_contents: [1, 2] } }] }),
    'a negative int64 parameter': protoEncodeRequest({ parameters: { p: { int64_param: -1 } } }),
    'a uint64 parameter from 2^53 on': protoEncodeRequest({ parameters: { p: { uint64_param: '9007199254740993' } } }),
    'a shape from 2^53 on': protoEncodeRequest({ inputs: [{ name: 'A', shape: ['18446744073709551615'] }] }),
    'two oneof members': Buffer.from([0x22, 0x09, 0x0a, 0x01, 0x70, 0x12, 0x04, 0x08, 0x01, 0x10, 0x05]),
    'a map entry without a value': Buffer.from([0x22, 0x03, 0x0a, 0x01, 0x70]),
    'an unknown field': Buffer.concat([protoEncodeRequest({ model_name: 'm' }), Buffer.from([0x40, 0x01])]),
    'a known field with another wire type': Buffer.from([0x08, 0x01]),
    'a string running past the end': Buffer.from([0x0a, 0x05, 0x61]),
    'a truncated varint': Buffer.from([0x0a]),
    'an input running past the end': Buffer.from([0x2a, 0x09, 0x0a, 0x01, 0x41]),
    'a __proto__ parameter': protoEncodeRequest({ parameters: { ['__proto__']: { bool_param: true } } }),
  };
  for (const [what, buf] of Object.entries(cases)) {
    it(`leaves ${what} to protobufjs (same result or error)`, () => {
      expect(expectSameDecode(buf)).toBe(true);
    });
  }

  it('matches protobufjs on thousands of damaged messages', () => {
    const bases = [...Object.values(REQUESTS).map((m) => protoEncodeRequest(m)), unpacked()];
    let seed = 12345;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    let handled = 0;
    for (let i = 0; i < 4000; i++) {
      const buf = Buffer.from(bases[i % bases.length]!);
      const edits = 1 + rand(3);
      for (let e = 0; e < edits; e++) buf[rand(buf.length)] = rand(256);
      const cut = rand(4) === 0 ? buf.subarray(0, rand(buf.length + 1)) : buf;
      if (!expectSameDecode(cut)) handled++;
    }
    // Most damaged messages still parse: the fast path must have decided many of them itself.
    expect(handled).toBeGreaterThan(500);
  });
});

const out = (name: string, shape: number[], extra: object = {}) => ({ name, datatype: 'FP32', shape, parameters: {}, ...extra });

const RESPONSES: Record<string, object> = {
  'add_sub as the front-end answers it': {
    model_name: 'add_sub', model_version: '1', id: '', parameters: {},
    outputs: [out('OUTPUT0', [4]), out('OUTPUT1', [4])],
    raw_output_contents: [f32([1.5, 2.25, 5, 3]), f32([0.5, 1.75, 1, 5])],
  },
  'parameters of every kind the front-end writes, non-ASCII, long and empty values': {
    model_name: 'modèle', model_version: '', id: 'r'.repeat(200),
    parameters: { triton_final_response: { bool_param: true }, f: { bool_param: false }, n: { int64_param: 2 ** 40 }, z: { int64_param: 0 }, s: { string_param: '日本語' }, d: { double_param: 0.1 }, none: {} },
    outputs: [out('Y', [], { parameters: { shared_memory_region: { string_param: 'r0' }, shared_memory_byte_size: { int64_param: 16 } } }), out('', [0, 3, 2 ** 50])],
    raw_output_contents: [Buffer.alloc(0), new Uint8Array(1000).fill(3)],
  },
  'absent and null fields': { model_name: 'm', model_version: null, outputs: [{ name: 'Y', shape: null, parameters: null }] },
  'nothing': {},
};

describe('encodeModelInferResponse', () => {
  for (const [what, m] of Object.entries(RESPONSES)) {
    it(`writes ${what} byte for byte as protobufjs, without it`, () => {
      const { bytes, fellBack } = fastEncode(m);
      expect(fellBack).toBe(false);
      expect(bytes.equals(protoEncode(m))).toBe(true);
    });
  }

  const cases: Record<string, object> = {
    'a negative int64 parameter': { parameters: { p: { int64_param: -1 } } },
    'a fractional shape': { outputs: [{ name: 'Y', shape: [1.5] }] },
    'a string shape': { outputs: [{ name: 'Y', shape: ['4'] }] },
    'a lone surrogate': { id: 'a\ud800b' },
    'a surrogate pair': { model_name: 'x😀' },
    'two members of the oneof': { parameters: { p: { bool_param: true, string_param: 's' } } },
    'typed contents': { outputs: [{ name: 'Y', contents: { fp32_contents: [1] } }] },
    'base64 raw contents': { raw_output_contents: ['AAAA'] },
    'a number as a name': { model_name: 5 },
    'a uint64 parameter': { parameters: { p: { uint64_param: 5 } } },
  };
  for (const [what, m] of Object.entries(cases)) {
    it(`leaves ${what} to protobufjs (same bytes or error)`, () => {
      let want: Buffer | string;
      try {
        want = protoEncode(m);
      } catch (err) {
        want = String(err);
      }
      let got: Buffer | string;
      let fellBack = false;
      try {
        const r = fastEncode(m);
        got = r.bytes;
        fellBack = r.fellBack;
      } catch (err) {
        got = String(err);
        fellBack = true;
      }
      expect(fellBack).toBe(true);
      if (typeof want === 'string') expect(got).toBe(want);
      else expect(Buffer.isBuffer(got) && got.equals(want)).toBe(true);
    });
  }

  it('round-trips through protobufjs for random responses', () => {
    let seed = 7;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const word = () => ['', 'a', 'OUTPUT0', 'é', '日本', 'x'.repeat(rand(60))][rand(6)]!;
    const param = () => [{ bool_param: rand(2) === 0 }, { int64_param: rand(2 ** 30) * rand(2 ** 20) }, { string_param: word() }, { double_param: rand(1000) / 7 }, {}][rand(5)]!;
    const params = () => Object.fromEntries(Array.from({ length: rand(3) }, () => [word() || 'k', param()]));
    for (let i = 0; i < 500; i++) {
      const m = {
        model_name: word(), model_version: String(rand(3)), id: word(), parameters: params(),
        outputs: Array.from({ length: rand(3) }, () => ({ name: word(), datatype: 'INT8', shape: Array.from({ length: rand(4) }, () => rand(2 ** 31) * rand(3)), parameters: params() })),
        raw_output_contents: Array.from({ length: rand(3) }, () => Buffer.alloc(rand(200), rand(256))),
      };
      const { bytes, fellBack } = fastEncode(m);
      expect(fellBack).toBe(false);
      expect(bytes.equals(protoEncode(m))).toBe(true);
    }
  });
});
