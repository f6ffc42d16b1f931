/**
 * Leak check for request timeouts: a request with a `timeout` arms a timer that aborts its signal
 * (ModelVersion.cancelOnTimeout). Every way the request ends must clear it, or each one keeps
 * its timer, its inputs and a listener on the client's signal alive for the whole timeout. Here:
 * decoupled requests refused by a full queue, which never start a stream.
 */
import { createHook } from 'node:async_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http, shmLeftovers, startTestServer, tempRepository, waitFor, type TestServer } from './helpers/server.js';

const CONFIG = `
name: "dq"
backend: "typescript"
max_batch_size: 0
model_transaction_policy { decoupled: true }
input [ { name: "X" data_type: TYPE_FP32 dims: [ 1 ] } ]
output [ { name: "Y" data_type: TYPE_FP32 dims: [ 1 ] } ]
dynamic_batching { default_queue_policy { max_queue_size: 1 } }
instance_group [ { count: 1, kind: KIND_CPU } ]
`;
const MODEL = `
import { InferenceRequest, InferenceResponse, Tensor } from 'stubhost';
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
export default class Dq {
  async execute(requests: InferenceRequest[]) {
    await sleep(Number(requests[0]!.parameters.delay_ms ?? 0));
    for (const r of requests) {
      r.responseSender().send(new InferenceResponse({ outputs: [new Tensor('Y', Float32Array.from(r.input('X')!.data as Float32Array), [1])] }), { final: true });
    }
  }
}`;

const TIMEOUT_MS = 61_234;

let server: TestServer;
let repo: ReturnType<typeof tempRepository>;

beforeAll(async () => {
  repo = tempRepository({ dq: { 'config.pbtxt': CONFIG, '1/model.ts': MODEL } });
  server = await startTestServer({ modelRepository: repo.root });
  expect([...server.failed]).toEqual([]);
}, 60_000);

afterAll(async () => {
  await server?.close();
  repo?.cleanup();
  expect(await waitFor(() => shmLeftovers().length === 0, 3000)).toBe(true);
});

describe('request timeout timers', () => {
  it('are cleared for decoupled requests refused by a full queue', async () => {
    // Live timers armed for exactly TIMEOUT_MS: the requests' timeout timers.
    const live = new Set<number>();
    const hook = createHook({
      init(id, type, _trigger, resource) {
        if (type === 'Timeout' && (resource as { _idleTimeout?: number })._idleTimeout === TIMEOUT_MS) live.add(id);
      },
      destroy(id) {
        live.delete(id);
      },
    }).enable();
    try {
      const send = (delay: number) => http(`${server.url}/v2/models/dq/infer`, 'POST', {
        parameters: { delay_ms: delay, timeout: TIMEOUT_MS * 1000 },
        inputs: [{ name: 'X', shape: [1], datatype: 'FP32', data: [1] }],
      });
      const running = send(300);
      await new Promise((r) => setTimeout(r, 100));
      const queued = send(0);
      await new Promise((r) => setTimeout(r, 50));
      const refused = await Promise.all(Array.from({ length: 8 }, () => send(0)));
      expect(refused.map((r) => r.status)).toEqual(Array(8).fill(503));
      expect((await running).status).toBe(200);
      expect((await queued).status).toBe(200);
      expect(await waitFor(() => live.size === 0, 2000)).toBe(true);
      expect(live.size).toBe(0);
    } finally {
      hook.disable();
    }
  }, 20_000);
});
