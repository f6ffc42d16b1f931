import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parsePbtxt, type MessageShape } from '../src/config/pbtxt.js';
import { MODEL_CONFIG_SHAPE } from '../src/config/schema.js';
import { StubhostError } from '../src/errors.js';

const FIXTURES = join(import.meta.dirname, 'fixtures', 'configs');
const fixture = (name: string) => readFileSync(join(FIXTURES, name, 'config.pbtxt'), 'utf8');
const triton = (text: string) => parsePbtxt(text, { shape: MODEL_CONFIG_SHAPE, mapsAsObjects: true });

function errorOf(fn: () => unknown): StubhostError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(StubhostError);
    expect((err as StubhostError).code).toBe('STUBHOST_CONFIG');
    return err as StubhostError;
  }
  throw new Error('expected an error');
}

describe('pbtxt scalars', () => {
  it('reads strings, numbers, enums and booleans', () => {
    const v = parsePbtxt(`
      name: "add_sub"  s2: 'single'
      max_batch_size: 8 neg: -3 hex: 0x1F neghex: -0x10 oct: 017 zero: 0
      f1: 1.5 f2: .25 f3: 1e3 f4: -2.5e-2 f5: 2.0f inf: inf ninf: -inf
      kind: KIND_CPU yes: true no: false T: True F: False
    `);
    expect(v).toEqual({
      name: 'add_sub', s2: 'single', max_batch_size: 8, neg: -3, hex: 31, neghex: -16, oct: 15, zero: 0,
      f1: 1.5, f2: 0.25, f3: 1000, f4: -0.025, f5: 2, inf: Infinity, ninf: -Infinity,
      kind: 'KIND_CPU', yes: true, no: false, T: true, F: false,
    });
    expect(Number.isNaN(parsePbtxt('x: nan').x)).toBe(true);
  });

  it('decodes string escapes and joins adjacent strings', () => {
    const v = parsePbtxt(String.raw`a: "tab\there\nnl \"q\" \'s\' \\ \x41\101\u00e9\U0001F600" b: 'it''s' "joined" c: "\303\251" d: "é"`);
    expect(v.a).toBe('tab\there\nnl "q" \'s\' \\ AAé😀');
    expect(v.b).toBe('itsjoined');
    expect(v.c).toBe('é'); // octal bytes are UTF-8
    expect(v.d).toBe('é');
  });

  it('keeps integers beyond 2^53 as strings so no digit is lost', () => {
    expect(parsePbtxt('big: 18446744073709551615').big).toBe('18446744073709551615');
    expect(parsePbtxt('big: -9007199254740993').big).toBe('-9007199254740993');
  });

  it('skips comments and accepts , and ; as separators', () => {
    const v = parsePbtxt('# header\na: 1, b: 2; # trailing\n# more\nc { d: 3; e: "x#y" },');
    expect(v).toEqual({ a: 1, b: 2, c: { d: 3, e: 'x#y' } });
  });
});

describe('pbtxt messages and lists', () => {
  it('accepts {} and <> with or without a colon', () => {
    expect(parsePbtxt('m { a: 1 } n: { b: 2 } o < c: 3 > p: < d: 4 >')).toEqual({ m: { a: 1 }, n: { b: 2 }, o: { c: 3 }, p: { d: 4 } });
  });

  it('reads lists of scalars and of messages', () => {
    expect(parsePbtxt('dims: [ 1, -1, 3 ] e: [] m [ { a: 1 }, < a: 2 > ] n: [{a: 3}]')).toEqual({
      dims: [1, -1, 3], e: [], m: [{ a: 1 }, { a: 2 }], n: [{ a: 3 }],
    });
  });

  it('without a shape, a field given twice becomes an array; once stays a value', () => {
    expect(parsePbtxt('a: 1 a: 2 a: [3, 4] b { x: 1 } b { x: 2 } c: 5')).toEqual({ a: [1, 2, 3, 4], b: [{ x: 1 }, { x: 2 }], c: 5 });
    expect(parsePbtxt('a: [] a: 1')).toEqual({ a: [1] });
  });

  it('with a shape, repeated fields are always arrays, at any depth', () => {
    const shape: MessageShape = { item: { repeated: true, message: { dims: { repeated: true } } }, one: {} };
    expect(parsePbtxt('item { dims: 4 } one: 1', { shape })).toEqual({ item: [{ dims: [4] }], one: 1 });
    const v = triton('input { name: "a" dims: 3 } instance_group { kind: KIND_CPU gpus: 0 } dynamic_batching { preferred_batch_size: 4 }');
    expect(v).toEqual({
      input: [{ name: 'a', dims: [3] }],
      instance_group: [{ kind: 'KIND_CPU', gpus: [0] }],
      dynamic_batching: { preferred_batch_size: [4] },
    });
  });

  it('turns maps into objects, or keeps entries when asked', () => {
    const text = `
      parameters { key: "a" value: { string_value: "1" } }
      parameters: [ { key: "b", value { string_value: "2" } } ]
      parameters { key: "a" value: { string_value: "last wins" } }
      dynamic_batching { priority_queue_policy { key: 1 value { max_queue_size: 3 } } }
      ensemble_scheduling { step { input_map { key: "x" value: "y" } } }`;
    expect(triton(text)).toEqual({
      parameters: { a: { string_value: 'last wins' }, b: { string_value: '2' } },
      dynamic_batching: { priority_queue_policy: { 1: { max_queue_size: 3 } } },
      ensemble_scheduling: { step: [{ input_map: { x: 'y' } }] },
    });
    const entries = parsePbtxt('parameters { key: "a" value: { string_value: "1" } }', { shape: MODEL_CONFIG_SHAPE });
    expect(entries).toEqual({ parameters: [{ key: 'a', value: { string_value: '1' } }] });
  });
});

describe('pbtxt on Triton configs', () => {
  it("reads python_backend's add_sub", () => {
    const v = triton(fixture('add_sub'));
    expect(v).toEqual({
      name: 'add_sub',
      backend: 'python',
      input: [
        { name: 'INPUT0', data_type: 'TYPE_FP32', dims: [4] },
        { name: 'INPUT1', data_type: 'TYPE_FP32', dims: [4] },
      ],
      output: [
        { name: 'OUTPUT0', data_type: 'TYPE_FP32', dims: [4] },
        { name: 'OUTPUT1', data_type: 'TYPE_FP32', dims: [4] },
      ],
      instance_group: [{ kind: 'KIND_CPU' }],
    });
  });

  it('reads a sequence batcher with control inputs', () => {
    const v = triton(fixture('dyna_sequence')) as any;
    expect(v.sequence_batching.oldest).toEqual({ max_candidate_sequences: 1024, max_queue_delay_microseconds: 10000 });
    expect(v.sequence_batching.control_input.map((c: any) => c.name)).toEqual(['START', 'END', 'READY', 'CORRID']);
    expect(v.sequence_batching.control_input[0].control).toEqual([{ kind: 'CONTROL_SEQUENCE_START', int32_false_true: [0, 1] }]);
    expect(v.parameters).toEqual({ execute_delay_ms: { string_value: '3' } });
  });

  it('reads priority queue policies and an ensemble', () => {
    const p = triton(fixture('priority_batching')) as any;
    expect(p.dynamic_batching.priority_queue_policy['1'].max_queue_size).toBe(64);
    const e = triton(fixture('ensemble')) as any;
    expect(e.ensemble_scheduling.step[1].input_map).toEqual({ 'gpu_0/data': 'preprocessed_image' });
  });
});

describe('pbtxt errors name line and column', () => {
  const cases: [string, string, RegExp][] = [
    ['missing colon', 'name "x"', /^cfg:1:6: expected ':' or '\{' after field "name", found string "x"$/],
    ['unclosed message', 'a {\n  b: 1\n', /^cfg:3:1: expected '\}' to close the message, found the end of the file$/],
    ['mismatched close', 'a { b: 1 >', /^cfg:1:10: expected a field name, found '>'$/],
    ['unclosed string', 'a: "abc\nb: 1', /^cfg:1:4: string is not closed before the end of the line$/],
    ['bad escape', 'a: "\\q"', /^cfg:1:5: unknown escape \\q$/],
    ['stray character', 'a: 1\n  @', /^cfg:2:3: unexpected character "@"$/],
    ['bad number', 'a: 12abc', /^cfg:1:4: malformed number "12a"$/],
    ['bad octal', 'a: 09', /^cfg:1:4: number 09 is not valid$/],
    ['missing value', 'a: }', /^cfg:1:4: expected a value for field "a", found '\}'$/],
    ['unclosed list', 'a: [1, 2', /^cfg:1:9: expected ',' or '\]' in the list of "a", found the end of the file$/],
    ['minus before word', 'a: -abc', /^cfg:1:4: '-' must be followed by a number, found abc$/],
    ['scalar list without colon', 'a [1]', /^cfg:1:4: expected ':' after field "a" before a list of values$/],
    ['value at top level', '"x"', /^cfg:1:1: expected a field name, found string "x"$/],
  ];
  for (const [what, text, re] of cases) {
    it(what, () => expect(errorOf(() => parsePbtxt(text, { file: 'cfg' })).message).toMatch(re));
  }

  it('omits the file when none is given', () => {
    expect(errorOf(() => parsePbtxt('a: }')).message).toMatch(/^1:4: /);
  });

  it('refuses a singular field given twice or as a list', () => {
    expect(errorOf(() => triton('max_batch_size: 1\nmax_batch_size: 2')).message).toMatch(
      /^2:1: field "max_batch_size" is given twice \(first at 1:1\); it is not a repeated field$/,
    );
    expect(errorOf(() => triton('max_batch_size: [1]')).message).toMatch(/field "max_batch_size" takes one value, not a list/);
  });

  it('refuses malformed map entries', () => {
    expect(errorOf(() => triton('parameters: "x"')).message).toMatch(/^1:13: map field "parameters" takes entries/);
    expect(errorOf(() => triton('parameters { key: "a" val: "b" }')).message).toMatch(/entry has field "val"/);
  });
});
