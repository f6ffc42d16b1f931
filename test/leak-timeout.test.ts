/**
 * Leak check for request timeouts: a request with a `timeout` arms a timer that aborts its signal
 * (ModelVersion.cancelOnTimeout). Every way the request ends must clear it, or each one keeps
 * its timer, its inputs and a listener on the client's signal alive for the whole timeout. Here:
 * decoupled requests refused by a full queue, which never start a stream.
 */
import { createHook } from 'node:async_hooks';
import fs from 'node:fs';
import path from 'node:path';
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
import fs from 'node:fs';
import { InferenceRequest, InferenceResponse, Tensor } from 'stubhost';
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
export default class Dq {
  async execute(requests: InferenceRequest[]) {
    const p = requests[0]!.parameters;
    // A held request says it started, then waits until the test removes its marker.
    if (p.hold_file) {
      fs.writeFileSync(String(p.hold_file), 'running');
      while (fs.existsSync(String(p.hold_file))) await sleep(5);
    }
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
      // /generate: a decoupled model that sends one response answers there (not on /infer).
      const send = (parameters: Record<string, unknown> = {}) => http(`${server.url}/v2/models/dq/generate`, 'POST', {
        X: [1],
        parameters: { ...parameters, timeout: TIMEOUT_MS * 1000 },
      });
      const holdFile = path.join(repo.root, 'hold');
      const running = send({ hold_file: holdFile });
      expect(await waitFor(() => fs.existsSync(holdFile), 20_000)).toBe(true);
      const queued = send();
      const stats = server.core.repository.get('dq').stats;
      expect(await waitFor(() => stats.pending === 1, 20_000)).toBe(true);
      const refused = await Promise.all(Array.from({ length: 8 }, () => send()));
      expect(refused.map((r) => r.status)).toEqual(Array(8).fill(503));
      fs.rmSync(holdFile);
      expect((await running).status).toBe(200);
      expect((await queued).status).toBe(200);
      expect(await waitFor(() => live.size === 0, 2000)).toBe(true);
      expect(live.size).toBe(0);
    } finally {
      hook.disable();
    }
  }, 20_000);
});
