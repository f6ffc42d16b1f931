/**
 * Decoupled models (model_transaction_policy { decoupled: true }): the `repeat` example from
 * models/ through BLS `.stream()`, gRPC ModelStreamInfer and HTTP generate (HTTP /infer refuses
 * decoupled models, as Triton), and the ResponseSender
 * contract (0..n responses, one final flag, send after final throws, sends after execute returned).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { grpcClient, type TestGrpcClient } from './helpers/grpc.js';
import { startTestServer, http, shmLeftovers, waitFor, type TestServer } from './helpers/server.js';

const FIXTURES = path.resolve('test/fixtures/models/bls');
const REPEAT = path.resolve('models/repeat');


let server: TestServer;
let root: string;
let grpcc: TestGrpcClient;
let client: any;

beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'stubhost-decoupled-'));
  for (const m of ['bls_stream', 'decoupled_probe']) fs.cpSync(path.join(FIXTURES, m), path.join(root, m), { recursive: true });
  fs.cpSync(REPEAT, path.join(root, 'repeat'), { recursive: true });
  server = await startTestServer({ modelRepository: root, grpcPort: 0 });
  expect([...server.failed]).toEqual([]);
  grpcc = grpcClient(server.ports.grpc!);
  client = grpcc.raw;
});

afterAll(async () => {
  client?.close();
  await server?.close();
  fs.rmSync(root, { recursive: true, force: true });
  expect(await waitFor(() => shmLeftovers().length === 0, 3000)).toBe(true);
});

const expected = (n: number) => Array.from({ length: n }, (_, i) => 1 + 3 * i);

function blsStream(n: number, parameters: Record<string, unknown> = {}) {
  return http(`${server.url}/v2/models/bls_stream/infer`, 'POST', {
    inputs: [{ name: 'N', datatype: 'INT32', shape: [1], data: [n] }], parameters,
  });
}

function repeatHttp(values: number[], extra: object[] = []) {
  return http(`${server.url}/v2/models/repeat/infer`, 'POST', {
    inputs: [{ name: 'IN', datatype: 'INT32', shape: [values.length], data: values }, ...extra],
  });
}

const outputOf = (json: any, name: string) => json.outputs.find((o: any) => o.name === name).data;

describe('repeat through BLS .stream()', () => {
  it.each([0, 1, 1000])('N = %i: every response in order, then the end', async (n) => {
    const r = await blsStream(n);
    expect(r.status).toBe(200);
    expect(outputOf(r.json, 'ERR')).toEqual(['']);
    expect(outputOf(r.json, 'VALUES')).toEqual(expected(n));
    expect(outputOf(r.json, 'IDX')).toEqual(Array.from({ length: n }, (_, i) => i));
  });

  it('exec() on a decoupled model: one response works, others are an error response', async () => {
    const one = await blsStream(1, { how: 'exec' });
    expect(outputOf(one.json, 'VALUES')).toEqual([1]);
    const three = await blsStream(3, { how: 'exec' });
    expect(outputOf(three.json, 'ERR')[0]).toMatch(/^UNSUPPORTED: model 'repeat' sent 3 responses: use stream\(\)/);
    const zero = await blsStream(0, { how: 'exec' });
    expect(outputOf(zero.json, 'ERR')[0]).toMatch(/^UNSUPPORTED: model 'repeat' sent no response/);
  });

  it('breaking out of the iteration early cancels the rest; the next call is served', async () => {
    const r = await blsStream(1000, { stop_after: 5 });
    expect(outputOf(r.json, 'VALUES')).toEqual(expected(5));
    const again = await blsStream(3);
    expect(outputOf(again.json, 'VALUES')).toEqual(expected(3));
  });
});

describe('repeat over gRPC ModelStreamInfer', () => {
  function streamRepeat(n: number, id: string): Promise<any[]> {
    const raw = Buffer.from(Int32Array.from(expected(n)).buffer);
    return grpcc.streamAll([{
      model_name: 'repeat', id,
      inputs: [{ name: 'IN', datatype: 'INT32', shape: [n] }], raw_input_contents: [raw],
      parameters: { triton_enable_empty_final_response: { bool_param: true } },
    }]);
  }
  const i32 = (b: Buffer) => new Int32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength))[0];

  it.each([0, 1, 1000])('N = %i: N responses, then the empty final response', async (n) => {
    const got = await streamRepeat(n, `g${n}`);
    expect(got).toHaveLength(n + 1);
    expect(got.every((m) => m.error_message === '')).toBe(true);
    const outs = got.slice(0, n).map((m) => {
      const names = m.infer_response.outputs.map((o: any) => o.name);
      return i32(m.infer_response.raw_output_contents[names.indexOf('OUT')]);
    });
    expect(outs).toEqual(expected(n));
    expect(got.slice(0, n).every((m) => m.infer_response.parameters.triton_final_response.bool_param === false)).toBe(true);
    expect(got[n].infer_response.parameters.triton_final_response.bool_param).toBe(true);
    expect(got[n].infer_response.id).toBe(`g${n}`);
  });

  it('cancelling the stream: responseSender().isCancelled() turns true and repeat stops', async () => {
    server.logs.length = 0;
    const n = 1000;
    const call = client.ModelStreamInfer();
    let got = 0;
    call.on('data', () => got++);
    const ended = new Promise((resolve) => call.on('error', resolve));
    call.write({
      model_name: 'repeat', id: 'cancel-me',
      inputs: [{ name: 'IN', datatype: 'INT32', shape: [n] }, { name: 'DELAY', datatype: 'UINT32', shape: [n] }],
      raw_input_contents: [Buffer.from(new Int32Array(n).buffer), Buffer.from(new Uint32Array(n).fill(5).buffer)],
    });
    await waitFor(() => got >= 3, 5000);
    call.cancel();
    await ended;
    const stopped = () => server.logs.find((l) => l.includes('repeat: stopped after'));
    expect(await waitFor(() => stopped() !== undefined, 3000)).toBe(true);
    const k = Number(/stopped after (\d+) of 1000/.exec(stopped()!)![1]);
    expect(k).toBeGreaterThanOrEqual(3);
    expect(k).toBeLessThan(500);
  });
});

describe('decoupled models over HTTP', () => {
  // As Triton's src/http_server.cc: /infer refuses a decoupled model before it runs; non-streaming
  // generate runs it and answers its one response, or Triton's error when it sent another number.
  const generate = (model: string, body: object) => http(`${server.url}/v2/models/${model}/generate`, 'POST', body);

  it('/infer is refused with 501 and Triton\'s words, before the model runs', async () => {
    server.logs.length = 0;
    const r = await repeatHttp([42]);
    expect([r.status, r.json]).toEqual([501, { error: "HTTP end point doesn't support models with decoupled transaction policy" }]);
    const probe = await http(`${server.url}/v2/models/decoupled_probe/infer`, 'POST', {
      id: 'refused', inputs: [{ name: 'X', datatype: 'INT32', shape: [1], data: [4] }],
    });
    expect(probe.status).toBe(501);
    // decoupled_probe logs a line per request it runs: one run after the refused one logs, the refused one did not.
    expect((await generate('decoupled_probe', { id: 'ran', X: 4 })).json.Y).toBe(8);
    await waitFor(() => server.logs.some((l) => l.includes("'ran' send after final")));
    expect(server.logs.filter((l) => l.includes("'refused'"))).toEqual([]);
  });

  it('generate: exactly one response works', async () => {
    const r = await generate('repeat', { IN: [42] });
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ model_name: 'repeat', OUT: 42, IDX: 0 });
  });

  it('generate: no response, or more than one: Triton\'s error with status 200', async () => {
    const error = 'generate expects model to produce exactly 1 response, use generate stream for model that generates various number of responses';
    const none = await generate('repeat', { IN: [] });
    expect([none.status, none.json]).toEqual([200, { error }]);
    const many = await generate('repeat', { IN: [1, 2, 3] });
    expect([many.status, many.json]).toEqual([200, { error }]);
    // The model keeps serving.
    expect((await generate('repeat', { IN: [7] })).json.OUT).toBe(7);
  });

  it('the response may come after execute returned (WAIT, and a sender used from a timer)', async () => {
    const t0 = Date.now();
    const r = await generate('repeat', { IN: [5], WAIT: 150 });
    expect(r.status).toBe(200);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
    const late = await generate('decoupled_probe', { X: 21, parameters: { mode: 'late' } });
    expect(late.status).toBe(200);
    expect(late.json.Y).toBe(42);
  });

  it('send after the final flag throws, and the client gets the one response', async () => {
    server.logs.length = 0;
    const r = await generate('decoupled_probe', { id: 'after-final', X: 4 });
    expect(r.status).toBe(200);
    expect(r.json.Y).toBe(8);
    await waitFor(() => server.logs.filter((l) => l.includes("'after-final' send after final")).length === 2);
    const lines = server.logs.filter((l) => l.includes("'after-final' send after final"));
    expect(lines).toHaveLength(2);
    for (const l of lines) expect(l).toContain('send after final threw: ResponseSender.send: the final flag was already sent');
  });

  it('execute that throws ends the request with its error', async () => {
    const r = await generate('decoupled_probe', { X: 1, parameters: { mode: 'throw' } });
    expect(r.status).toBe(500);
    expect(r.json.error).toContain('decoupled_probe: execute failed on purpose');
  });
});
