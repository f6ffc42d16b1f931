/**
 * Triton's ONNX example models through a real server, over HTTP and gRPC, with the requests and
 * pass rules of Triton's example clients:
 * - simple_sequence and simple_dyna_sequence with Triton's configs (control inputs START, END,
 *   READY, CORRID are graph inputs fed by the sequence batcher), as
 *   simple_http_sequence_sync_infer_client.py / simple_grpc_sequence_sync_infer_client.py check
 *   them: the first request of a sequence gets INPUT + 1 (START), the others INPUT, and the dyna
 *   model adds the correlation id on the request with END;
 * - an implicit-state accumulator (like Triton's QA implicit-state models) that returns the
 *   running sum per sequence, with and without named outputs;
 * - config-less models with rank-0 tensors (dims [1]), one value per batch item (dims [1] +
 *   reshape []), INT64/BOOL/STRING, and a graph input that is an initializer.
 * The ONNX graphs are generated (scripts/gen-onnx-models.ts) in place of Triton's files.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http, startRepositoryServer, type RepositoryServer } from './helpers/server.js';
import { grpcClient, type TestGrpcClient } from './helpers/grpc.js';
import { SEQUENCE_IMPLICIT_CONFIG, SIMPLE_DYNA_SEQUENCE_CONFIG, SIMPLE_SEQUENCE_CONFIG } from './fixtures/onnx-configs.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const onnx = (name: string) => fs.readFileSync(path.join(ROOT, 'test/fixtures/onnx', `${name}.onnx`));

let server: RepositoryServer;
let grpc: TestGrpcClient;

beforeAll(async () => {
  server = await startRepositoryServer({
    simple_sequence: { 'config.pbtxt': SIMPLE_SEQUENCE_CONFIG, '1/model.onnx': onnx('simple_sequence') },
    simple_dyna_sequence: { 'config.pbtxt': SIMPLE_DYNA_SEQUENCE_CONFIG, '1/model.onnx': onnx('simple_dyna_sequence') },
    sequence_implicit: { 'config.pbtxt': SEQUENCE_IMPLICIT_CONFIG, '1/model.onnx': onnx('sequence_implicit') },
    scalar: { '1/model.onnx': onnx('scalar') },
    per_item: { '1/model.onnx': onnx('per_item') },
    mixed_types: { '1/model.onnx': onnx('mixed_types') },
    initializer_input: { '1/model.onnx': onnx('initializer_input') },
  }, { grpcPort: 0 });
  grpc = grpcClient(server.ports.grpc!);
}, 120_000);

afterAll(async () => {
  grpc?.close();
  expect(await server?.stop(5000)).toEqual([]);
});

const VALUES = [11, 7, 5, 3, 2, 0, 1];

/** sync_send of Triton's example client: one request per value, START on the first, END on the last. */
async function httpSequence(model: string, values: number[], sequenceId: number | string): Promise<number[]> {
  const out: number[] = [];
  for (let k = 0; k < values.length; k++) {
    const r = await http(`${server.url}/v2/models/${model}/infer`, 'POST', {
      inputs: [{ name: 'INPUT', shape: [1, 1], datatype: 'INT32', data: [values[k]] }],
      outputs: [{ name: 'OUTPUT' }],
      parameters: { sequence_id: sequenceId, sequence_start: k === 0, sequence_end: k === values.length - 1 },
    });
    expect(r.status, r.text).toBe(200);
    expect(r.json.outputs.map((o: { name: string }) => o.name)).toEqual(['OUTPUT']);
    expect(r.json.outputs[0].shape).toEqual([1, 1]);
    out.push(r.json.outputs[0].data[0]);
  }
  return out;
}

const int32Bytes = (v: number) => Buffer.from(Int32Array.of(v).buffer);
const readInt32 = (b: Buffer) => b.readInt32LE(0);

async function grpcSequence(model: string, values: number[], sequenceId: number): Promise<number[]> {
  const out: number[] = [];
  for (let k = 0; k < values.length; k++) {
    const res = await grpc.rpc('ModelInfer', {
      model_name: model,
      inputs: [{ name: 'INPUT', datatype: 'INT32', shape: [1, 1] }],
      raw_input_contents: [int32Bytes(values[k]!)],
      outputs: [{ name: 'OUTPUT' }],
      parameters: { sequence_id: { int64_param: String(sequenceId) }, sequence_start: { bool_param: k === 0 }, sequence_end: { bool_param: k === values.length - 1 } },
    });
    expect(res.outputs.map((o: { name: string }) => o.name)).toEqual(['OUTPUT']);
    out.push(readInt32(res.raw_output_contents[0]));
  }
  return out;
}

/** The pass rule of Triton's sequence example clients. */
function expected(values: number[], corrId: number, dyna: boolean): number[] {
  return values.map((v, k) => v + (k === 0 ? 1 : 0) + (dyna && k === values.length - 1 ? corrId : 0));
}

describe("Triton's sequence models over HTTP and gRPC", () => {
  it('simple_sequence (HTTP): two interleaved-id sequences and a string sequence id', async () => {
    const seq0 = [0, ...VALUES];
    const seq1 = [100, ...VALUES.map((v) => -v)];
    expect(await httpSequence('simple_sequence', seq0, 1000)).toEqual(expected(seq0, 1000, false));
    expect(await httpSequence('simple_sequence', seq1, 1001)).toEqual(expected(seq1, 1001, false));
    const seq2 = [20, ...VALUES.map((v) => -v)];
    expect(await httpSequence('simple_sequence', seq2, '0d6bbd3e-5f4a-4b53-9d0c-4d7b8c8e2a11')).toEqual(expected(seq2, 0, false));
  });

  it('simple_dyna_sequence (HTTP and gRPC): END adds the correlation id', async () => {
    const seq0 = [0, ...VALUES];
    expect(await httpSequence('simple_dyna_sequence', seq0, 1002)).toEqual(expected(seq0, 1002, true));
    const seq1 = [100, ...VALUES.map((v) => -v)];
    expect(await grpcSequence('simple_dyna_sequence', seq1, 1003)).toEqual(expected(seq1, 1003, true));
  });

  it('a string sequence id that cannot fill the UINT64 CORRID is a 400 naming the control; the model keeps serving', async () => {
    const r = await http(`${server.url}/v2/models/simple_dyna_sequence/infer`, 'POST', {
      inputs: [{ name: 'INPUT', shape: [1, 1], datatype: 'INT32', data: [1] }],
      parameters: { sequence_id: 'session-a', sequence_start: true },
    });
    expect(r.status).toBe(400);
    expect(r.json.error).toMatch(/sequence id 'session-a' .* is a string, but its CORRID control input 'CORRID' is TYPE_UINT64; use an integer sequence id/);
    // A decimal string fills it, as the example client's str(1002) does.
    expect(await httpSequence('simple_dyna_sequence', [20, 1], '1002')).toEqual([21, 1 + 1002]);
  });

  it('simple_sequence (gRPC), two sequences in flight at once', async () => {
    const seq0 = [0, ...VALUES];
    const seq1 = [100, ...VALUES.map((v) => -v)];
    const [a, b] = await Promise.all([grpcSequence('simple_sequence', seq0, 2000), grpcSequence('simple_sequence', seq1, 2001)]);
    expect(a).toEqual(expected(seq0, 2000, false));
    expect(b).toEqual(expected(seq1, 2001, false));
  });

  it('implicit state accumulates per sequence; the state output stays with the server', async () => {
    const send = (value: number, params: Record<string, unknown>, named: boolean) =>
      http(`${server.url}/v2/models/sequence_implicit/infer`, 'POST', {
        inputs: [{ name: 'INPUT', shape: [1, 1], datatype: 'INT32', data: [value] }],
        ...(named ? { outputs: [{ name: 'OUTPUT' }] } : {}),
        parameters: params,
      });
    const sums: number[][] = [[], []];
    for (const [k, v] of [5, 3, 2, 4].entries()) {
      for (const [s, named] of [[0, true], [1, false]] as const) {
        const r = await send(v * (s + 1), { sequence_id: 300 + s, sequence_start: k === 0, sequence_end: k === 3 }, named);
        expect(r.status, r.text).toBe(200);
        expect(r.json.outputs.map((o: { name: string }) => o.name)).toEqual(['OUTPUT']);
        sums[s]!.push(r.json.outputs[0].data[0]);
      }
    }
    expect(sums).toEqual([[5, 8, 10, 14], [10, 16, 20, 28]]);
    // gRPC, a new sequence on the same model starts from zero again.
    expect(await grpcSequence('sequence_implicit', [1, 2, 3], 302)).toEqual([1, 3, 6]);
  });
});

describe('config-less ONNX models Triton auto-completes', () => {
  it('rank-0 tensors are dims [1]: infer with shape [1], get shape [1] back (HTTP and gRPC)', async () => {
    const cfg = await http(`${server.url}/v2/models/scalar/config`);
    expect(cfg.json.max_batch_size).toBe(0);
    expect(cfg.json.input.map((t: { name: string; dims: number[]; reshape?: unknown }) => [t.name, t.dims, t.reshape])).toEqual([['X', [1], undefined], ['K', [1], undefined]]);
    const r = await http(`${server.url}/v2/models/scalar/infer`, 'POST', {
      inputs: [{ name: 'X', shape: [1], datatype: 'FP32', data: [1.5] }, { name: 'K', shape: [1], datatype: 'INT64', data: [21] }],
    });
    expect(r.status, r.text).toBe(200);
    const byName = Object.fromEntries(r.json.outputs.map((o: { name: string }) => [o.name, o]));
    expect(byName.Y).toMatchObject({ shape: [1], datatype: 'FP32', data: [3] });
    expect(byName.K2).toMatchObject({ shape: [1], datatype: 'INT64', data: [42] });

    const g = await grpc.rpc('ModelInfer', {
      model_name: 'scalar',
      inputs: [{ name: 'X', datatype: 'FP32', shape: [1] }, { name: 'K', datatype: 'INT64', shape: [1] }],
      raw_input_contents: [Buffer.from(Float32Array.of(-2).buffer), Buffer.from(BigInt64Array.of(5n).buffer)],
      outputs: [{ name: 'Y' }],
    });
    expect(g.outputs.map((o: { name: string; shape: string[] }) => [o.name, o.shape.map(Number)])).toEqual([['Y', [1]]]);
    expect((g.raw_output_contents[0] as Buffer).readFloatLE(0)).toBe(-4);
  });

  it('one value per batch item is dims [1] with reshape []: a [2, 1] request gets [2, 1] back', async () => {
    const cfg = await http(`${server.url}/v2/models/per_item/config`);
    expect(cfg.json.max_batch_size).toBe(4);
    expect(cfg.json.input[0]).toMatchObject({ name: 'X', dims: [1], reshape: { shape: [] } });
    const r = await http(`${server.url}/v2/models/per_item/infer`, 'POST', { inputs: [{ name: 'X', shape: [2, 1], datatype: 'FP32', data: [1, 2.5] }] });
    expect(r.status, r.text).toBe(200);
    expect(r.json.outputs[0]).toMatchObject({ name: 'Y', shape: [2, 1], data: [2, 5] });
  });

  it('INT64, BOOL and STRING tensors with symbolic dims', async () => {
    const r = await http(`${server.url}/v2/models/mixed_types/infer`, 'POST', {
      inputs: [
        { name: 'input_ids', shape: [2, 3], datatype: 'INT64', data: [101, 2023, 102, 101, 7, 102] },
        { name: 'attention_mask', shape: [2, 3], datatype: 'BOOL', data: [true, true, false, true, false, false] },
        { name: 'text', shape: [2, 1], datatype: 'BYTES', data: ['héllo', ''] },
      ],
    });
    expect(r.status, r.text).toBe(200);
    const byName = Object.fromEntries(r.json.outputs.map((o: { name: string }) => [o.name, o]));
    expect(byName.ids).toMatchObject({ datatype: 'INT64', shape: [2, 3], data: [101, 2023, 102, 101, 7, 102] });
    expect(byName.inverted_mask).toMatchObject({ datatype: 'BOOL', shape: [2, 3], data: [false, false, true, false, true, true] });
    expect(byName.text_out).toMatchObject({ datatype: 'BYTES', shape: [2, 1], data: ['héllo', ''] });
  });

  it('a graph input that is an initializer is not required, and is refused as a request input', async () => {
    const r = await http(`${server.url}/v2/models/initializer_input/infer`, 'POST', { inputs: [{ name: 'INPUT0', shape: [1, 4], datatype: 'FP32', data: [10, 20, 30, 40] }] });
    expect(r.status, r.text).toBe(200);
    expect(r.json.outputs[0]).toMatchObject({ name: 'OUTPUT0', shape: [1, 4], data: [11, 22, 33, 44] });
    const bias = await http(`${server.url}/v2/models/initializer_input/infer`, 'POST', {
      inputs: [{ name: 'INPUT0', shape: [1, 4], datatype: 'FP32', data: [0, 0, 0, 0] }, { name: 'BIAS', shape: [1, 4], datatype: 'FP32', data: [9, 9, 9, 9] }],
    });
    expect(bias.status).toBe(400);
    expect(bias.json.error).toMatch(/BIAS/);
  });
});
