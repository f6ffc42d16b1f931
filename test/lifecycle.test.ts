/**
 * A visible lifecycle, with real stubs over real HTTP: models still loading are in the
 * repository index as LOADING (and unloading ones as UNLOADING); start-up names the models it
 * loads and, every interval, the slow ones still loading; poll mode polls while the initial load
 * is still running; every load, reload and unload outcome is logged with its reason (API loads
 * and their failures included); a failed poll reload keeps the old version serving and shows
 * why in the index beside it. Slow initialize / finalize wait on gate files the test creates.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../src/server/start.js';
import { createLogger, logSettings } from '../src/log/logger.js';
import { childPids, http, shmLeftovers, tempRepository, waitFor } from './helpers/server.js';

const CANARY_CONFIG = `
backend: "typescript"
max_batch_size: 0
input [ { name: "X" data_type: TYPE_INT32 dims: [ 1 ] } ]
output [ { name: "Y" data_type: TYPE_INT32 dims: [ 1 ] } ]
`;
const canary = (add: number) => `
import { InferenceRequest, InferenceResponse, Tensor } from 'stubhost';
export default class Canary {
  execute(requests: InferenceRequest[]) {
    return requests.map((r) => new InferenceResponse({ outputs: [new Tensor('Y', Int32Array.of((r.input('X')!.data as Int32Array)[0]! + ${add}), [1])] }));
  }
}`;
/** initialize waits for <repository>/.gates/<model>-load, finalize for <repository>/.gates/<model>-unload (outside the model folder: poll mode would see them). */
const GATED = `
import fs from 'node:fs';
import path from 'node:path';
import { InferenceRequest, InferenceResponse, Tensor } from 'stubhost';
import type { ModelInitArgs } from 'stubhost';
const gate = async (file: string) => { while (!fs.existsSync(file)) await new Promise((r) => setTimeout(r, 20)); };
export default class Gated {
  private gates = '';
  private name = '';
  async initialize(args: ModelInitArgs) {
    this.gates = path.join(args.modelRepository, '.gates');
    this.name = args.modelName;
    await gate(path.join(this.gates, this.name + '-load'));
  }
  execute(requests: InferenceRequest[]) {
    return requests.map((r) => new InferenceResponse({ outputs: [new Tensor('Y', Int32Array.of((r.input('X')!.data as Int32Array)[0]! * 10), [1])] }));
  }
  async finalize() {
    if (fs.existsSync(path.join(this.gates, this.name + '-hold-unload'))) await gate(path.join(this.gates, this.name + '-unload'));
  }
}`;

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((resolve) => s.close(resolve));
  return port;
}

let cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups = [];
  logSettings.sink = undefined;
  expect(await waitFor(() => shmLeftovers().length === 0, 3000)).toBe(true);
  expect(await waitFor(() => childPids().length === 0, 5000)).toBe(true);
}, 30_000);

/** Starts a server without waiting for its initial load; resolves the URL once HTTP answers. */
async function launch(root: string, opts: Record<string, unknown>) {
  const logs: any[] = [];
  logSettings.format = 'json';
  logSettings.sink = (line) => logs.push(JSON.parse(line));
  const port = await freePort();
  const started = startServer({ modelRepository: root, httpPort: port, grpcPort: undefined, metricsPort: undefined, logger: createLogger(), ...opts });
  let server: RunningServer | undefined;
  cleanups.push(async () => {
    server ??= await started.catch(() => undefined);
    await server?.close();
  });
  const url = `http://127.0.0.1:${port}`;
  expect(await waitFor(async () => (await http(`${url}/v2/health/live`).catch(() => ({ status: 0 }))).status === 200, 20_000)).toBe(true);
  return { url, logs, started, messages: () => logs.map((l) => String(l.msg)) };
}

const index = async (url: string) => (await http(`${url}/v2/repository/index`, 'POST', {})).json as { name: string; version?: string; state: string; reason: string }[];
const y = async (url: string, model: string, x: number) => {
  const r = await http(`${url}/v2/models/${model}/infer`, 'POST', { inputs: [{ name: 'X', datatype: 'INT32', shape: [1], data: [x] }] });
  return r.status === 200 ? r.json.outputs[0].data[0] : `${r.status} ${r.text}`;
};

describe('lifecycle', () => {
  it('poll mode: start-up names what it loads and what is slow; polling reloads one model while another still loads; a failed reload shows beside the version serving', async () => {
    const repo = tempRepository({
      canary: { 'config.pbtxt': CANARY_CONFIG, '1/model.ts': canary(1) },
      slow: { 'config.pbtxt': CANARY_CONFIG, '1/model.ts': GATED },
      '.gates': { keep: '' },
    });
    cleanups.push(() => repo.cleanup());
    const gates = path.join(repo.root, '.gates');
    const s = await launch(repo.root, { modelControlMode: 'poll', pollIntervalMs: 150, loadProgressIntervalMs: 300 });

    expect(await waitFor(() => s.messages().includes('loading 2 model(s): canary, slow'), 10_000)).toBe(true);
    // Still loading: in the index as LOADING, and named by the progress line.
    expect(await waitFor(async () => (await index(s.url)).some((e) => e.name === 'slow' && e.version === '1' && e.state === 'LOADING'), 10_000)).toBe(true);
    expect(await waitFor(() => s.messages().some((m) => /^still loading: slow \(\d+ s\)$/.test(m)), 10_000)).toBe(true);
    expect(await waitFor(async () => (await y(s.url, 'canary', 41)) === 42, 20_000)).toBe(true);
    expect(s.messages()).toContainEqual(expect.stringMatching(/^model 'canary' is ready \(version 1, loaded in \d+ ms; start-up\)$/));

    // An edit while slow's initialize still runs: picked up by the poll.
    fs.writeFileSync(path.join(repo.root, 'canary/1/model.ts'), canary(2));
    expect(await waitFor(async () => (await y(s.url, 'canary', 41)) === 43, 20_000)).toBe(true);
    expect(s.messages()).toContainEqual(expect.stringMatching(/^reloaded 'canary' in \d+ ms \(version 1; poll: changed on disk\)$/));
    expect((await index(s.url)).find((e) => e.name === 'slow')).toMatchObject({ state: 'LOADING' });

    // A broken edit: the reload fails, version 1 keeps serving, the index says why beside it.
    fs.writeFileSync(path.join(repo.root, 'canary/1/model.ts'), `${canary(3)}\nthis is not TypeScript`);
    expect(await waitFor(() => s.messages().some((m) => m.startsWith("model 'canary' failed to reload: ")), 20_000)).toBe(true);
    const failure = s.logs.find((l) => String(l.msg).startsWith("model 'canary' failed to reload: "));
    expect(failure).toMatchObject({ level: 'error', model: 'canary', reason: 'poll: changed on disk' });
    expect(failure.msg).toMatch(/; version 1 keeps serving \(poll: changed on disk\)$/);
    expect(await y(s.url, 'canary', 41)).toBe(43);
    const entry = (await index(s.url)).find((e) => e.name === 'canary');
    expect(entry).toMatchObject({ version: '1', state: 'READY' });
    expect(entry!.reason).toMatch(/^reload failed \(poll: changed on disk\): /);

    // The slow model finishes; start-up completes.
    fs.writeFileSync(path.join(gates, 'slow-load'), '');
    const server = await s.started;
    expect([...server.failed]).toEqual([]);
    expect(await y(s.url, 'slow', 4)).toBe(40);

    // A fixed edit clears the reason; a removed folder unloads, with its reason.
    fs.writeFileSync(path.join(repo.root, 'canary/1/model.ts'), canary(4));
    expect(await waitFor(async () => (await y(s.url, 'canary', 41)) === 45, 20_000)).toBe(true);
    const fixed = (await index(s.url)).find((e) => e.name === 'canary');
    expect(fixed).toMatchObject({ state: 'READY' });
    expect(fixed!.reason ?? '').toBe(''); // an empty reason is left out, as Triton's index does
    fs.rmSync(path.join(repo.root, 'slow'), { recursive: true });
    expect(await waitFor(() => s.messages().includes("unloaded 'slow' version 1 (poll: removed from the repository)"), 20_000)).toBe(true);
  }, 120_000);

  it('explicit mode: API loads and unloads are logged with their reason, failures too; LOADING and UNLOADING are in the index', async () => {
    const repo = tempRepository({
      canary: { 'config.pbtxt': CANARY_CONFIG, '1/model.ts': canary(1) },
      gated: { 'config.pbtxt': CANARY_CONFIG, '1/model.ts': GATED },
      bad: { 'config.pbtxt': `${CANARY_CONFIG}\nmax_batch_size: -3\n`, '1/model.ts': canary(1) },
      '.gates': { 'gated-hold-unload': '' },
    });
    cleanups.push(() => repo.cleanup());
    const gates = path.join(repo.root, '.gates');
    const s = await launch(repo.root, { modelControlMode: 'explicit', loadModels: ['canary'] });
    await s.started;

    // A failed API load reaches the server log, with its reason.
    const bad = await http(`${s.url}/v2/repository/models/bad/load`, 'POST');
    expect(bad.status).toBeGreaterThanOrEqual(400);
    const logged = s.logs.find((l) => String(l.msg).startsWith("model 'bad' failed to load: "));
    expect(logged).toMatchObject({ level: 'error', reason: 'repository API load request' });
    expect(logged.msg).toContain('max_batch_size');

    // LOADING while initialize runs, then loaded (logged), then UNLOADING while finalize runs.
    const load = http(`${s.url}/v2/repository/models/gated/load`, 'POST');
    expect(await waitFor(async () => (await index(s.url)).some((e) => e.name === 'gated' && e.state === 'LOADING'), 10_000)).toBe(true);
    fs.writeFileSync(path.join(gates, 'gated-load'), '');
    expect((await load).status).toBe(200);
    expect(s.messages()).toContainEqual(expect.stringMatching(/^model 'gated' is ready \(version 1, loaded in \d+ ms; repository API load request\)$/));
    const unload = http(`${s.url}/v2/repository/models/gated/unload`, 'POST');
    expect(await waitFor(async () => (await index(s.url)).some((e) => e.name === 'gated' && e.version === '1' && e.state === 'UNLOADING'), 10_000)).toBe(true);
    fs.writeFileSync(path.join(gates, 'gated-unload'), '');
    expect((await unload).status).toBe(200);
    expect(s.messages()).toContain("unloaded 'gated' version 1 (repository API unload request)");
    expect((await index(s.url)).find((e) => e.name === 'gated')).toMatchObject({ state: 'UNAVAILABLE', reason: 'unloaded' });
    expect(await y(s.url, 'canary', 1)).toBe(2);
  }, 60_000);
});
