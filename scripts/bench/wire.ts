/**
 * `npm run bench -- wire [--json]`: the channel's message codec (src/ipc/wire-codec.ts) on the
 * hot messages, per message, against msgpackr with the channel's options in the same run:
 *
 *   exec       the host's request message for one add_sub request (two 4-element FP32 inputs,
 *              inline), as StubProcess sends it; decoded by the stub.
 *   exec-done  the stub's answer to it (two 4-element FP32 outputs, inline); decoded by the host.
 *   exec ×8 / exec-done ×8: the same with a batch of 8 (a batching model), table only.
 *
 * Each is timed through encodeMessage / decodeMessage (the channel's path: the schema paths for
 * these kinds), encodeFast / decodeFast (the generic fast path alone) and msgpackr's pack /
 * unpack, interleaved round by round. Decoding reads a private buffer, as the channel does after
 * its copy out of shared memory (the copy is not timed here).
 */
import { Packr, RESET_BUFFER_MODE, Unpackr } from 'msgpackr';
import type { Arena } from '../../src/ipc/arena.js';
import { writeTensor } from '../../src/ipc/tensor-codec.js';
import { encodeInferRequest, encodeResponse } from '../../src/ipc/wire-request.js';
import type { InferRequest, TensorValue } from '../../src/core/types.js';
import { fmt, formatTable, median, nowMs, parseArgs, progress, report } from './common.js';

const ROUNDS = 7;
const ITERATIONS = 50_000;

const packr = new Packr({ useRecords: false, moreTypes: false });

// Tiny tensors travel inline: the arena is never touched.
const noArena = undefined as unknown as Arena;
const fp32 = (name: string, values: number[]): TensorValue => ({ name, datatype: 'FP32', shape: [values.length], data: Float32Array.from(values) });

function execMessage(batch: number): object {
  const request: InferRequest = {
    id: '', modelName: 'add_sub', inputs: [fp32('INPUT0', [1, 2, 3, 4]), fp32('INPUT1', [0.5, 0.25, 2, -1])],
    parameters: {}, priority: 0, timeoutUs: 0,
  };
  const reqs = Array.from({ length: batch }, (_, i) => encodeInferRequest(request, 1000 + i, 1, (t) => writeTensor(noArena, t, [])));
  return { k: 'exec', b: 77, reqs };
}

function execDoneMessage(batch: number): object {
  const outputs = [fp32('OUTPUT0', [1.5, 2.25, 5, 3]), fp32('OUTPUT1', [0.5, 1.75, 1, 5])];
  const rs = Array.from({ length: batch }, () => encodeResponse({ outputs }, (t) => writeTensor(noArena, t, [])));
  return { k: 'exec-done', b: 77, rs };
}

type Codec = { encode: (m: object) => Uint8Array; decode: (b: Uint8Array) => unknown };
const CODECS = ['message', 'generic', 'msgpackr'];
type CodecModule = typeof import('../../src/ipc/wire-codec.js');

/**
 * Each side's codec in a module instance of its own (a query makes a new one), as in the two
 * processes: the host encodes exec and decodes exec-done, the stub the other way round. Shared,
 * the two paths and both sides' messages trained one set of functions and the timings mixed.
 */
async function codecsOf(side: 'host' | 'stub'): Promise<Record<string, Codec>> {
  const url = new URL('../../src/ipc/wire-codec.ts', import.meta.url).href;
  const load = (name: string) => import(`${url}?${side}-${name}`) as Promise<CodecModule>;
  const channel = await load('message');
  const generic = await load('generic');
  const packr = new Packr({ useRecords: false, moreTypes: false });
  const unpackr = new Unpackr({ useRecords: false, copyBuffers: true, mapsAsObjects: true });
  return {
    message: { encode: (m) => channel.encodeMessage(m)!, decode: (b) => channel.decodeMessage(b, b.byteLength) },
    generic: { encode: (m) => generic.encodeFast(m)!, decode: (b) => generic.decodeFast(b, b.byteLength) },
    msgpackr: { encode: (m) => packr.pack(m, RESET_BUFFER_MODE), decode: (b) => unpackr.unpack(b) },
  };
}

/** µs per call of `fn` over ITERATIONS calls; `sink` keeps results alive so nothing is optimised away. */
let sink = 0;
function time(fn: () => unknown): number {
  const t0 = nowMs();
  for (let i = 0; i < ITERATIONS; i++) if (fn() === undefined) sink++;
  return ((nowMs() - t0) * 1000) / ITERATIONS;
}

export default async function run(argv: string[]): Promise<void> {
  const args = parseArgs(argv);
  const started = nowMs();
  const messages: [string, object][] = [['exec', execMessage(1)], ['exec-done', execDoneMessage(1)], ['exec ×8', execMessage(8)], ['exec-done ×8', execDoneMessage(8)]];
  // Every codec reads the same bytes: msgpackr's (the schema paths write exactly those).
  const bytes = new Map(messages.map(([name, m]) => [name, Uint8Array.from(packr.pack(m))]));
  const times = new Map<string, number[]>();
  const record = (key: string, us: number) => (times.get(key) ?? times.set(key, []).get(key)!).push(us);
  const sides = { host: await codecsOf('host'), stub: await codecsOf('stub') };
  // exec: the host encodes, the stub decodes; exec-done the other way round.
  const sidesOf = (name: string) => (name.startsWith('exec-done') ? { encode: sides.stub, decode: sides.host } : { encode: sides.host, decode: sides.stub });
  progress('warming up');
  for (const [name, m] of messages) {
    const b = bytes.get(name)!;
    const { encode, decode } = sidesOf(name);
    for (const codec of CODECS) {
      // The channel's bytes must be msgpackr's: a mismatch would make every figure meaningless.
      if (codec !== 'msgpackr' && Buffer.compare(encode[codec]!.encode(m), b) !== 0) throw new Error(`${codec} encodes ${name} differently from msgpackr`);
      for (let i = 0; i < 20_000; i++) {
        encode[codec]!.encode(m);
        decode[codec]!.decode(b);
      }
    }
  }
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? CODECS : [...CODECS].reverse();
    for (const [name, m] of messages) {
      const b = bytes.get(name)!;
      const { encode, decode } = sidesOf(name);
      for (const codec of order) {
        record(`${name} encode ${codec}`, time(() => encode[codec]!.encode(m)));
        record(`${name} decode ${codec}`, time(() => decode[codec]!.decode(b)));
      }
    }
    progress(`round ${round + 1}/${ROUNDS}`);
  }
  const us = (key: string) => median(times.get(key)!);
  const rows: string[][] = [];
  const result: Record<string, number> = {};
  for (const [name] of messages) {
    for (const op of ['encode', 'decode']) {
      const m = us(`${name} ${op} message`);
      const g = us(`${name} ${op} generic`);
      const p = us(`${name} ${op} msgpackr`);
      rows.push([`${name} ${op} (${(op === 'encode') === name.startsWith('exec-done') ? 'stub' : 'host'})`, fmt(m), fmt(g), fmt(p), fmt(m / g, 2), fmt(m / p, 2)]);
      const key = `${name.replace(/ ×/, 'x').replace('-d', 'D')}${op === 'encode' ? 'Encode' : 'Decode'}`;
      result[`${key}Us`] = m;
      result[`${key}GenericUs`] = g;
      result[`${key}MsgpackrUs`] = p;
    }
  }
  const text =
    `Wire codec: µs per message, medians of ${ROUNDS} interleaved rounds of ${ITERATIONS} (${((nowMs() - started) / 1000).toFixed(1)} s)\n` +
    formatTable(['message', 'channel', 'generic', 'msgpackr', 'vs generic', 'vs msgpackr'], rows);
  report(args, text, result);
  if (sink < 0) process.stdout.write('');
}
