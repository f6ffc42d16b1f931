/**
 * The inference layer's one lookup (src/inference/gateway.ts): a request's contract and its infer
 * come from the version resolved once, whatever the repository holds by the time it runs;
 * admission refuses while closing and drain waits for requests in flight. And the front-ends
 * resolve once per request.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InferenceGateway, type ModelLookup } from '../src/inference/gateway.js';
import { oneResponse } from '../src/inference/one-response.js';
import type { InferReceiver, ModelIOContract, ResolvedModel } from '../src/core/service.js';
import type { InferRequest, InferResult } from '../src/core/types.js';
import type { ServableModel } from '../src/model/servable.js';
import { StubhostError } from '../src/errors.js';
import { HttpServer } from '../src/server/http/server.js';
import { TestService } from './fixtures/http/service.js';
import { json, request } from './fixtures/http/client.js';

/** A version that answers with its own number, once `release` is called (so a test can act while it runs). */
function version(n: number, opts: { decoupled?: boolean; responses?: number } = {}): ServableModel & { release(): void } {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  const contract: ModelIOContract = {
    name: 'm', version: String(n), maxBatchSize: 0, decoupled: opts.decoupled ?? false,
    inputs: [{ name: 'X', datatype: 'INT32', dims: [1] }], outputs: [{ name: 'Y', datatype: 'INT32', dims: [1] }],
  };
  const result = (): InferResult => ({ modelName: 'm', modelVersion: String(n), id: '', outputs: [{ name: 'Y', datatype: 'INT32', shape: [1], data: Int32Array.of(n) }] });
  return {
    name: 'm', version: n, config: { max_batch_size: 0 }, decoupled: contract.decoupled,
    contract: () => contract,
    release,
    async infer() {
      await released;
      return result();
    },
    async *inferStream() {
      await released;
      for (let i = 0; i < (opts.responses ?? 1); i++) yield result();
    },
  } as unknown as ServableModel & { release(): void };
}

class Repository implements ModelLookup {
  current: ServableModel;
  lookups = 0;
  constructor(v: ServableModel) {
    this.current = v;
  }
  get(name: string): ServableModel {
    this.lookups++;
    if (name !== 'm') throw new StubhostError('STUBHOST_MODEL_NOT_FOUND', `model '${name}' is not found`);
    return this.current;
  }
}

const req = (): InferRequest => ({ id: '', modelName: 'm', inputs: [{ name: 'X', datatype: 'INT32', shape: [1], data: Int32Array.of(0) }], parameters: {}, priority: 0, timeoutUs: 0 });
const valueOf = (r: InferResult): number => (r.outputs[0]!.data as Int32Array)[0]!;

describe('InferenceGateway', () => {
  it('a reload between resolve and infer cannot mix versions: contract and run are the resolved version', async () => {
    const v1 = version(1);
    const v2 = version(2);
    const repo = new Repository(v1);
    const gateway = new InferenceGateway(repo);
    const resolved = gateway.resolve('m');
    expect(resolved.contract.version).toBe('1');
    repo.current = v2; // the reload lands after validation, before execution
    v1.release();
    v2.release();
    const result = await resolved.infer(req());
    expect(valueOf(result)).toBe(1);
    expect(resolved.contract.version).toBe('1');
    expect(repo.lookups).toBe(1);
    // A new request sees the new version; one handle per version, not per request.
    expect(gateway.resolve('m').contract.version).toBe('2');
    expect(gateway.resolve('m')).toBe(gateway.resolve('m'));
  });

  it('refuses new requests once draining, and drain waits for the ones in flight', async () => {
    const v1 = version(1);
    const gateway = new InferenceGateway(new Repository(v1));
    const resolved = gateway.resolve('m');
    const running = resolved.infer(req());
    let drained = false;
    const drain = gateway.drain(60_000).then(() => (drained = true));
    expect(gateway.closing).toBe(true);
    expect(() => gateway.resolve('m')).toThrow(/shutting down: request for model 'm' refused/);
    // Resolved before the close began, infer after: refused too.
    await expect(resolved.infer(req())).rejects.toThrow(/shutting down/);
    await Promise.resolve();
    expect(drained).toBe(false);
    v1.release();
    expect(valueOf(await running)).toBe(1);
    await drain;
    expect(drained).toBe(true);
  });

  it('inferThen: the callback gets the result as the version answers (no promise); counted in flight until then', async () => {
    // A version with the callback entry: it answers when the test says, synchronously.
    const v = version(7);
    let answer!: () => void;
    let inferCalls = 0;
    const withThen = Object.assign(Object.create(null) as object, v, {
      infer: () => {
        inferCalls++;
        return v.infer(req());
      },
      inferThen: (_r: InferRequest, receiver: InferReceiver) => {
        answer = () => receiver.inferred(undefined, { modelName: 'm', modelVersion: '7', id: 'x', outputs: [{ name: 'Y', datatype: 'INT32', shape: [1], data: Int32Array.of(7) }] });
      },
    }) as ServableModel;
    const gateway = new InferenceGateway(new Repository(withThen));
    const resolved = gateway.resolve('m');
    const got: [unknown, InferResult | undefined][] = [];
    resolved.inferThen!(req(), (err, result) => got.push([err, result]));
    expect(got).toEqual([]);
    let drained = false;
    const drain = gateway.drain(60_000).then(() => (drained = true));
    answer();
    // Synchronously, from the version's answer.
    expect(got.length).toBe(1);
    expect(got[0]![0]).toBeUndefined();
    expect(valueOf(got[0]![1]!)).toBe(7);
    expect(inferCalls).toBe(0);
    await drain;
    expect(drained).toBe(true);
  });

  it('inferThen: refused at once while closing; an error of the version reaches the callback; a version without it goes through infer()', async () => {
    const failing = Object.assign(Object.create(null) as object, version(1), {
      inferThen: (_r: InferRequest, receiver: InferReceiver) => receiver.inferred(new StubhostError('STUBHOST_INTERNAL', 'boom'), undefined),
    }) as ServableModel;
    const g1 = new InferenceGateway(new Repository(failing));
    const errors: unknown[] = [];
    g1.resolve('m').inferThen!(req(), (err) => errors.push(err));
    expect((errors[0] as StubhostError).message).toBe('boom');
    const resolved = g1.resolve('m');
    void g1.drain(0);
    resolved.inferThen!(req(), (err) => errors.push(err));
    expect((errors[1] as StubhostError).code).toBe('STUBHOST_CLOSED');

    // No inferThen: the promise API underneath, the same callback.
    const plain = version(3);
    const g2 = new InferenceGateway(new Repository(plain));
    const result = new Promise<InferResult | undefined>((resolve) => g2.resolve('m').inferThen!(req(), (_err, r) => resolve(r)));
    plain.release();
    expect(valueOf((await result)!)).toBe(3);
    // And infer() on a version with inferThen makes its one promise from the callback.
    await expect(new InferenceGateway(new Repository(failing)).resolve('m').infer(req())).rejects.toThrow('boom');
  });

  it('relays a BLS call: validated against the callee, streamed into the sink, errors end it', async () => {
    const v1 = version(1);
    v1.release();
    const gateway = new InferenceGateway(new Repository(v1));
    const outcome = (request: InferRequest) => new Promise<{ responses: number; error?: string }>((resolve) => {
      let responses = 0;
      gateway.relay(request, { response: () => responses++, end: (err) => resolve({ responses, error: err?.message }) });
    });
    expect(await outcome(req())).toEqual({ responses: 1, error: undefined });
    const bad = { ...req(), inputs: [{ name: 'NOPE', datatype: 'INT32' as const, shape: [1], data: Int32Array.of(0) }] };
    expect((await outcome(bad)).error).toMatch(/NOPE/);
    expect((await outcome({ ...req(), modelName: 'absent' })).error).toMatch(/model 'absent' is not found/);
    // BLS calls are not refused while the server closes: the requests that make them finish.
    void gateway.drain(0);
    expect(await outcome(req())).toEqual({ responses: 1, error: undefined });
  });
});

describe('oneResponse: a unary call to a decoupled model', () => {
  async function* responses(n: number, failAt?: number): AsyncGenerator<InferResult> {
    for (let i = 0; i < n; i++) {
      if (i === failAt) throw new StubhostError('STUBHOST_MODEL_ERROR', `failed at ${i}`);
      yield { modelName: 'm', modelVersion: '1', id: '', outputs: [{ name: 'Y', datatype: 'INT32', shape: [1], data: Int32Array.of(i) }] };
    }
  }
  it('exactly one: that response; none or more: undefined, cancelled at the second', async () => {
    let cancels = 0;
    const cancel = () => void cancels++;
    expect(valueOf((await oneResponse(responses(1), cancel))!)).toBe(0);
    expect(await oneResponse(responses(0), cancel)).toBeUndefined();
    expect(cancels).toBe(0);
    expect(await oneResponse(responses(5), cancel)).toBeUndefined();
    expect(cancels).toBe(1);
  });
  it("the first response's error is thrown; a later one is still 'not exactly one'", async () => {
    await expect(oneResponse(responses(3, 0), () => {})).rejects.toThrow('failed at 0');
    expect(await oneResponse(responses(3, 1), () => {})).toBeUndefined();
  });
});

describe('the HTTP front-end resolves once per request', () => {
  class CountingService extends TestService {
    resolves = 0;
    override resolve(name: string, v?: string): ResolvedModel {
      this.resolves++;
      return super.resolve(name, v);
    }
  }
  let service: CountingService;
  let server: HttpServer;
  let port: number;
  beforeAll(async () => {
    service = new CountingService();
    server = new HttpServer(service, { port: 0, host: '127.0.0.1' });
    port = await server.start();
  });
  afterAll(() => server.close());

  it('infer and generate: one resolve each', async () => {
    const body = JSON.stringify({ inputs: [
      { name: 'INPUT0', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] },
      { name: 'INPUT1', datatype: 'FP32', shape: [1, 4], data: [1, 1, 1, 1] },
    ] });
    const r = await request(port, 'POST', '/v2/models/add_sub/infer', body);
    expect(r.status).toBe(200);
    expect(service.resolves).toBe(1);
    const g = await request(port, 'POST', '/v2/models/add_sub/generate', JSON.stringify({ INPUT0: [1, 2, 3, 4], INPUT1: [1, 1, 1, 1] }));
    expect(g.status).toBe(200);
    expect(json(g).OUTPUT0).toEqual([2, 3, 4, 5]);
    expect(service.resolves).toBe(2);
  });
});
