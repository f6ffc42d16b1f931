/**
 * No denial of service by one client, against a real server: a gRPC stream cancelled with
 * 20,000 queued requests, JSON nested 100,000 levels deep on every JSON route, a request timeout
 * beyond Node's timer limit, a chunked upload that never ends, headers that never end, and an
 * oversized gRPC message. After each, a canary request on another model is still answered; at
 * the end nothing is left (stub processes, /dev/shm files, the temporary repository).
 * The file-descriptor and memory checks run the CLI as a child process: dos-fd.test.ts.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { childPids, http, startRepositoryServer, waitFor, type RepositoryServer } from './helpers/server.js';
import { grpcClient, type TestGrpcClient } from './helpers/grpc.js';
import { pendingOf } from './fixtures/models/sched/repo.js';
import { MAX_JSON_NESTING } from '../src/core/json-nesting.js';
import { gateModel } from './fixtures/models/dos/repo.js';
import { startServer } from '../src/server/start.js';

const REQUEST_TIMEOUT_MS = 1500;
let server: RepositoryServer;
let client: TestGrpcClient;

beforeAll(async () => {
  server = await startRepositoryServer(
    { hold: gateModel('hold', { hold: true }), canary: gateModel('canary'), slow: gateModel('slow', { workMs: 50 }) },
    { grpcPort: 0, stubTimeoutMs: 10_000, modelControlMode: 'explicit', loadModels: ['*'], allowClientShm: true, httpRequestTimeoutMs: REQUEST_TIMEOUT_MS, httpHeadersTimeoutMs: REQUEST_TIMEOUT_MS },
  );
  expect([...server.failed]).toEqual([]);
  client = grpcClient(server.ports.grpc!);
}, 60_000);

afterAll(async () => {
  client?.close();
  const leftovers = await server?.stop(5000);
  expect(leftovers).toEqual([]);
  expect(await waitFor(() => childPids().length === 0, 5000)).toBe(true);
  expect(fs.existsSync(server.root)).toBe(false);
}, 60_000);

function inferBody(value: number, parameters?: Record<string, unknown>) {
  return { parameters, inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [1], data: [value] }] };
}

/** The canary: another model still answers, with its own data. */
async function expectCanary(): Promise<number> {
  const t0 = performance.now();
  const r = await http(`${server.url}/v2/models/canary/infer`, 'POST', inferBody(7));
  expect(r.status, r.text).toBe(200);
  expect(r.json.outputs[0].data).toEqual([7]);
  return performance.now() - t0;
}

function startsOf(model: string): number {
  try {
    return fs.readFileSync(path.join(server.root, model, 'starts.log'), 'utf8').split('\n').length - 1;
  } catch {
    return 0;
  }
}

/** Keeps the hold model's instance busy until release() (the model waits for the file). */
async function occupyHold(): Promise<{ done: Promise<{ status: number }>; release(): void }> {
  const before = startsOf('hold');
  const done = http(`${server.url}/v2/models/hold/infer`, 'POST', inferBody(1));
  expect(await waitFor(() => startsOf('hold') > before, 10_000, 5)).toBe(true);
  const file = path.join(server.root, 'release');
  return { done, release: () => fs.writeFileSync(file, '') };
}

describe('a gRPC stream cancelled with many queued requests', () => {
  it('empties the queue in O(N): another model answers promptly, the cancelled requests never run', async () => {
    const N = 20_000;
    const hold = await occupyHold();
    const call = client.raw.ModelStreamInfer();
    const errors: Error[] = [];
    call.on('error', (err: Error) => errors.push(err));
    call.on('data', () => {});
    const msg = { model_name: 'hold', inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [1], contents: { fp32_contents: [2] } }] };
    for (let i = 0; i < N; i++) call.write(msg);
    expect(await waitFor(() => pendingOf(server, 'hold') === N, 60_000, 20)).toBe(true);

    const t0 = performance.now();
    call.cancel();
    // Before the fix this froze the event loop for ~10 s (O(N²) removals); the canary waited.
    const canaryMs = await expectCanary();
    expect(await waitFor(() => pendingOf(server, 'hold') === 0, 10_000, 5)).toBe(true);
    const drainedMs = performance.now() - t0;
    expect(canaryMs).toBeLessThan(5000);
    expect(drainedMs).toBeLessThan(5000);
    expect(errors.map((e) => (e as grpc.ServiceError).code)).toEqual([grpc.status.CANCELLED]);

    hold.release();
    expect((await hold.done).status).toBe(200);
    fs.rmSync(path.join(server.root, 'release'));
    // Only the held request ever executed.
    expect(startsOf('hold')).toBe(1);
    await expectCanary();
  }, 120_000);
});

describe('JSON nested deeper than the limit', () => {
  const deep = (levels: number): string => '['.repeat(levels) + ']'.repeat(levels);
  const TOO_DEEP = deep(100_000);
  const limit = new RegExp(`deeper than the limit of ${MAX_JSON_NESTING} levels`);

  it('answers 400 naming the limit on every JSON route, not 500 "Maximum call stack size exceeded"', async () => {
    const routes: [string, string][] = [
      ['/v2/models/canary/infer', `{"inputs":[{"name":"INPUT0","datatype":"FP32","shape":[1],"data":${TOO_DEEP}}]}`],
      ['/v2/models/canary/generate', `{"INPUT0":${TOO_DEEP}}`],
      ['/v2/models/canary/generate_stream', `{"INPUT0":${TOO_DEEP}}`],
      ['/v2/repository/index', `{"ready":${TOO_DEEP}}`],
      ['/v2/repository/models/canary/load', `{"parameters":{"config":${TOO_DEEP}}}`],
      ['/v2/repository/models/nothing/unload', `{"parameters":${TOO_DEEP}}`],
      ['/v2/logging', `{"log_verbose_level":${TOO_DEEP}}`],
      ['/v2/systemsharedmemory/region/r/register', `{"key":${TOO_DEEP}}`],
    ];
    for (const [route, body] of routes) {
      const r = await http(`${server.url}${route}`, 'POST', body);
      expect(r.status, `${route}: ${r.text.slice(0, 200)}`).toBe(400);
      expect(r.json.error, route).toMatch(limit);
    }
    // The limit itself is accepted: a body of exactly MAX_JSON_NESTING levels reaches validation.
    const atLimit = await http(`${server.url}/v2/models/canary/infer`, 'POST', `{"inputs":[{"name":"INPUT0","datatype":"FP32","shape":[1],"data":${deep(MAX_JSON_NESTING - 3)}}]}`);
    expect(atLimit.json.error ?? '').not.toMatch(limit);
    // A config given as a JSON string is held to the same limit: an invalid config override is
    // answered as Triton answers it (500 "failed to poll", the cause in the log), not a stack overflow.
    const cfg = await http(`${server.url}/v2/repository/models/canary/load`, 'POST', { parameters: { config: `{"name":"canary","parameters":${deep(100_000)}}` } });
    expect(cfg.status).toBe(500);
    expect(cfg.json.error).toBe("failed to load 'canary', failed to poll from model repository");
    await expectCanary();
  }, 60_000);
});

describe('parameters.timeout of any length', () => {
  it('a timeout above 2^31-1 ms (Node clamps such a timer to 1 ms) does not cancel the request', async () => {
    // 50 days in µs: the model takes 50 ms, so a timer firing after 1 ms would be seen as CANCELLED.
    for (const timeout of [50 * 24 * 3600 * 1e6, Number.MAX_SAFE_INTEGER]) {
      const r = await http(`${server.url}/v2/models/slow/infer`, 'POST', inferBody(3, { timeout }));
      expect(r.status, r.text).toBe(200);
      expect(r.json.outputs.find((o: { name: string }) => o.name === 'CANCELLED').data).toEqual([0]);
    }
    // gRPC's int64 parameter too.
    const res = await client.rpc('ModelInfer', {
      model_name: 'slow', parameters: { timeout: { int64_param: String(50 * 24 * 3600 * 1e6) } },
      inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [1], contents: { fp32_contents: [3] } }],
    });
    expect(Buffer.from(res.raw_output_contents[1]).readInt32LE(0)).toBe(0);
    // A short one still fires.
    const short = await http(`${server.url}/v2/models/slow/infer`, 'POST', inferBody(3, { timeout: 1000 }));
    expect(short.json.outputs.find((o: { name: string }) => o.name === 'CANCELLED').data).toEqual([1]);
    await expectCanary();
  }, 60_000);
});

/** A raw TCP connection; resolves `closed` with everything the server sent before closing. */
function rawConnection(port: number): Promise<{ socket: net.Socket; closed: Promise<string> }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let got = '';
    const closed = new Promise<string>((done) => {
      socket.on('data', (d) => (got += d.toString('latin1')));
      socket.on('close', () => done(got));
    });
    socket.on('error', () => {});
    socket.once('connect', () => resolve({ socket, closed }));
    socket.once('error', reject);
  });
}

describe('slow clients', () => {
  it('a chunked upload that never ends is closed with 408 after the request timeout; a slow model answer is not cut', async () => {
    const hold = await occupyHold(); // a response that takes longer than the request timeout
    const { socket, closed } = await rawConnection(Number(new URL(server.url).port));
    const t0 = performance.now();
    socket.write('POST /v2/models/canary/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"inp\r\n');
    await expectCanary(); // served while the upload hangs
    const got = await closed;
    const ms = performance.now() - t0;
    expect(got).toMatch(/^HTTP\/1\.1 408/);
    expect(ms).toBeGreaterThanOrEqual(REQUEST_TIMEOUT_MS - 50);
    expect(ms).toBeLessThan(REQUEST_TIMEOUT_MS + 10_000);
    // The held request has run for longer than the request timeout and is still answered.
    hold.release();
    expect((await hold.done).status).toBe(200);
    fs.rmSync(path.join(server.root, 'release'));
    await expectCanary();
  }, 60_000);

  it('headers that never end are closed after the header timeout', async () => {
    const { socket, closed } = await rawConnection(Number(new URL(server.url).port));
    const t0 = performance.now();
    socket.write('GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Slow: ');
    const got = await closed;
    expect(got).toMatch(/^HTTP\/1\.1 408/);
    expect(performance.now() - t0).toBeLessThan(REQUEST_TIMEOUT_MS + 10_000);
    await expectCanary();
  }, 60_000);
});

describe('connection caps', () => {
  it('caps larger than the file-descriptor limit allows fail the start, naming the limit and the fix', async () => {
    await expect(startServer({ modelRepository: server.root, httpPort: 0, grpcPort: 0, metricsPort: undefined, httpMaxConnections: 1e9 }))
      .rejects.toThrow(/--http-max-connections and --grpc-max-connections \(1000000000 in all\) exceed the \d+ connections the file-descriptor limit of \d+ allows .*ulimit -Hn/);
    await expectCanary();
  });
});

describe('gRPC message size', () => {
  it('a message over the limit (64 MiB by default) fails with RESOURCE_EXHAUSTED naming the limit and the flag', async () => {
    const big = Buffer.alloc(64 * 1024 * 1024 + 4096);
    const err = await client.rpcError('ModelInfer', {
      model_name: 'canary', inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [big.length / 4] }], raw_input_contents: [big],
    });
    expect(err.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(err.details).toMatch(/exceeds the gRPC message size limit of 67108864 bytes \(--grpc-max-message-bytes\)/);
    const res = await client.rpc('ModelInfer', {
      model_name: 'canary', inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [1], contents: { fp32_contents: [5] } }],
    });
    expect(Buffer.from(res.raw_output_contents[0]).readFloatLE(0)).toBe(5);
    await expectCanary();
  }, 60_000);
});
