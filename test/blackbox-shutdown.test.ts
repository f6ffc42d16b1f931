/**
 * Black box: SIGTERM / SIGINT while requests are in flight, as a Triton user expects it.
 * Requests already accepted finish and get their answers (--exit-timeout-secs is how long they
 * get), new ones are refused with a clean 503, readiness turns false, every stub finalizes, and
 * the host leaves nothing in /dev/shm. A model that never finishes gets a 503 answer when the exit
 * timeout runs out, not a connection reset.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeRepository, shmFilesOf, startCli, type CliServer } from './helpers/blackbox.js';

const SLOW_TS = `import { InferenceRequest, InferenceResponse, Tensor } from 'stubhost';
import { appendFileSync } from 'node:fs';
export default class Slow {
  ms = 300;
  async initialize(args: any) { const p = args.modelConfig.parameters?.ms?.string_value; if (p) this.ms = Number(p); }
  async execute(requests: InferenceRequest[]) {
    // One line per request as it starts: with the pending count, the test knows what the server holds.
    if (process.env.STARTED_FILE) for (const r of requests) appendFileSync(process.env.STARTED_FILE, 'started ' + r.input('X')!.data[0] + '\\n');
    await new Promise((r) => setTimeout(r, this.ms));
    return requests.map((r) => new InferenceResponse({ outputs: [
      new Tensor('Y', Float32Array.from(r.input('X')!.data as Float32Array, (x) => x * 2), r.input('X')!.shape)] }));
  }
  async finalize() { appendFileSync(process.env.FIN_FILE!, 'finalized ' + process.pid + '\\n'); }
}
`;
const config = (name: string, ms: number, count: number): string => `
name: "${name}"
backend: "typescript"
max_batch_size: 8
input [ { name: "X" data_type: TYPE_FP32 dims: [ 1 ] } ]
output [ { name: "Y" data_type: TYPE_FP32 dims: [ 1 ] } ]
dynamic_batching { max_queue_delay_microseconds: 1000 }
instance_group [ { count: ${count} kind: KIND_CPU } ]
parameters { key: "ms" value: { string_value: "${ms}" } }
`;

const repo = makeRepository({
  'slow/config.pbtxt': config('slow', 300, 2),
  'slow/1/model.ts': SLOW_TS,
  'hang/config.pbtxt': config('hang', 600_000, 1),
  'hang/1/model.ts': SLOW_TS,
});
const finFile = path.join(repo.root, 'finalized.txt');
const startedFile = path.join(repo.root, 'started.txt');
const servers: CliServer[] = [];
afterAll(async () => {
  for (const s of servers) await s.stop('SIGKILL');
  repo.cleanup();
});

function infer(s: CliServer, model: string, x: number): Promise<{ status: number; body: any } | { error: string }> {
  return fetch(`${s.http}/v2/models/${model}/infer`, {
    method: 'POST',
    body: JSON.stringify({ inputs: [{ name: 'X', shape: [1, 1], datatype: 'FP32', data: [x] }] }),
  }).then(async (r) => ({ status: r.status, body: JSON.parse(await r.text()) }), (e: Error) => ({ error: String((e.cause as any)?.code ?? e.message) }));
}

/**
 * How many requests of `model` the server holds: started by the model (the STARTED_FILE lines,
 * read first) plus queued (its pending gauge, read after). A request that moves from the queue
 * to the model between the two reads counts 0 times, never twice: an undercount only waits longer.
 */
async function accepted(s: CliServer, model: string): Promise<number> {
  const started = fs.existsSync(startedFile) ? fs.readFileSync(startedFile, 'utf8').split('\n').filter(Boolean).length : 0;
  const text = await fetch(`${s.metrics}/metrics`).then((r) => r.text(), () => '');
  const pending = text.split('\n')
    .filter((l) => l.startsWith('nv_inference_pending_request_count{') && l.includes(`model="${model}"`))
    .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
  return started + pending;
}

async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('shutdown with requests in flight', () => {
  it('SIGTERM: accepted requests finish with their answers, new ones get 503, stubs finalize, no /dev/shm left', async () => {
    fs.rmSync(finFile, { force: true });
    fs.rmSync(startedFile, { force: true });
    const s = await startCli(repo.root, ['--model-control-mode', 'explicit', '--load-model', 'slow'], { env: { FIN_FILE: finFile, STARTED_FILE: startedFile } });
    servers.push(s);
    const inflight = Array.from({ length: 10 }, (_, i) => infer(s, 'slow', i));
    // SIGTERM once the server holds all ten (running or queued), and the late one once it is shutting down.
    await until(async () => (await accepted(s, 'slow')) === 10, 'the server to accept the 10 requests');
    s.child.kill('SIGTERM');
    await until(() => /SIGTERM: shutting down/.test(s.output()), 'the server to log its shutdown');
    const late = infer(s, 'slow', 99);
    const ready = fetch(`${s.http}/v2/health/ready`).then((r) => r.status, () => 'closed');

    const results = await Promise.all(inflight);
    results.forEach((r, i) => {
      expect(r, `request ${i}`).toEqual({ status: 200, body: expect.objectContaining({ outputs: [expect.objectContaining({ name: 'Y', data: [2 * i] })] }) });
    });
    const refused = await late;
    expect(refused).toEqual({ status: 503, body: { error: expect.stringMatching(/shutting down.*'slow'/) } });
    expect(await ready).toBe(400);

    const [code] = await s.exited;
    expect(code).toBe(0);
    expect(fs.readFileSync(finFile, 'utf8').trim().split('\n')).toHaveLength(2); // both instances
    expect(shmFilesOf(s.pid)).toEqual([]);
  });

  it('SIGINT with a model that never finishes: --exit-timeout-secs ends it with a 503 answer, exit code 1', async () => {
    const s = await startCli(repo.root, ['--model-control-mode', 'explicit', '--load-model', 'hang', '--exit-timeout-secs', '1'], { env: { FIN_FILE: finFile } });
    servers.push(s);
    const stuck = infer(s, 'hang', 1);
    await new Promise((r) => setTimeout(r, 200));
    const t0 = Date.now();
    s.child.kill('SIGINT');
    const r = await stuck;
    expect(r).toEqual({ status: 503, body: { error: expect.stringMatching(/shutting down/) } });
    const [code] = await s.exited;
    expect(code).toBe(1);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(s.output()).toMatch(/did not finish within --exit-timeout-secs 1/);
    await new Promise((r) => setTimeout(r, 200));
    expect(shmFilesOf(s.pid)).toEqual([]);
  });
});
