/**
 * Acceptance of the repository at run time, over real HTTP with real stubs: config errors name the
 * file and the field while other models serve; poll mode picks up added, changed and removed
 * models and new versions; load, reload and unload through the API; and, throughout, continuous
 * load on a model that stays loaded loses no request while old versions drain.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { http, shmLeftovers, startTestServer, tempRepository, waitFor, type TestServer } from './helpers/server.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const FIXTURES = path.join(ROOT, 'test/fixtures/repos');

const addSubBody = {
  inputs: [
    { name: 'INPUT0', datatype: 'FP32', shape: [4], data: [1, 2, 3, 4] },
    { name: 'INPUT1', datatype: 'FP32', shape: [4], data: [1, 1, 1, 1] },
  ],
};

/** `workers` clients sending add_sub requests back to back until stopped; every reply is checked. */
function loadOn(url: string, workers = 4) {
  let running = true;
  let ok = 0;
  const failures: string[] = [];
  const versions = new Set<string>();
  const generations = new Set<unknown>();
  const loops = Array.from({ length: workers }, async () => {
    while (running) {
      try {
        const r = await http(`${url}/v2/models/add_sub/infer`, 'POST', addSubBody);
        if (r.status !== 200) failures.push(`${r.status} ${r.text}`);
        else if (JSON.stringify(r.json.outputs[0].data) !== '[2,3,4,5]') failures.push(`wrong sum ${r.text}`);
        else {
          ok++;
          versions.add(r.json.model_version);
          generations.add(r.json.parameters?.generation);
        }
      } catch (err) {
        failures.push(String(err));
      }
    }
  });
  return {
    get ok() {
      return ok;
    },
    failures, versions, generations,
    async stop(): Promise<void> {
      running = false;
      await Promise.all(loops);
    },
  };
}

function copy(from: string, root: string, name = path.basename(from)): void {
  fs.cpSync(from, path.join(root, name), { recursive: true });
}

/** Replaces a file in one rename, so a poll never reads it half-written. */
function writeAtomic(file: string, text: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(`${file}.tmp`, text);
  fs.renameSync(`${file}.tmp`, file);
}

const status = async (url: string): Promise<number> => (await http(url)).status;

describe('poll mode', () => {
  let repo: { root: string; cleanup(): void };
  let server: TestServer;

  beforeAll(async () => {
    repo = tempRepository({});
    copy(path.join(ROOT, 'models/add_sub'), repo.root);
    for (const m of ['bad_field', 'bad_dtype', 'bad_syntax']) copy(path.join(FIXTURES, 'broken', m), repo.root);
    server = await startTestServer({ modelRepository: repo.root, modelControlMode: 'poll', pollIntervalMs: 150 });
  }, 60_000);

  afterAll(async () => {
    await server?.close();
    repo?.cleanup();
    expect(shmLeftovers()).toEqual([]);
  });

  it('broken configs fail their own load, naming the file and the field; the others serve', async () => {
    expect(await status(`${server.url}/v2/models/add_sub/ready`)).toBe(200);
    const index = (await http(`${server.url}/v2/repository/index`, 'POST')).json as { name: string; state: string; reason: string }[];
    const reason = (name: string) => index.find((e) => e.name === name)!;
    for (const name of ['bad_field', 'bad_dtype', 'bad_syntax']) {
      expect(reason(name).state).toBe('UNAVAILABLE');
      expect(reason(name).reason).toContain(path.join(repo.root, name, 'config.pbtxt'));
    }
    expect(reason('bad_field').reason).toMatch(/max_batch_size/);
    expect(reason('bad_dtype').reason).toMatch(/input\[0\]\.data_type.*TYPE_FLOAT99|TYPE_FLOAT99.*data_type/);
    expect(reason('bad_syntax').reason).toMatch(/config\.pbtxt:\d+:\d+/);
    expect([...server.failed.keys()].sort()).toEqual(['bad_dtype', 'bad_field', 'bad_syntax']);
  });

  it('adds, changes, re-versions and removes models under load without losing a request', async () => {
    const load = loadOn(server.url);
    try {
      // A model folder appears.
      copy(path.join(ROOT, 'models/identity_fp32'), repo.root);
      expect(await waitFor(async () => (await status(`${server.url}/v2/models/identity_fp32/ready`)) === 200, 15_000)).toBe(true);
      const id = await http(`${server.url}/v2/models/identity_fp32/infer`, 'POST', { inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [1, 2], data: [7, 8] }] });
      expect(id.json.outputs[0].data).toEqual([7, 8]);

      // A broken config is fixed.
      const badField = path.join(repo.root, 'bad_field');
      fs.mkdirSync(path.join(badField, '1'));
      fs.copyFileSync(path.join(ROOT, 'models/identity_fp32/1/model.ts'), path.join(badField, '1/model.ts'));
      writeAtomic(path.join(badField, 'config.pbtxt'), fs.readFileSync(path.join(badField, 'config.pbtxt'), 'utf8').replace('-3', '2'));
      expect(await waitFor(async () => (await status(`${server.url}/v2/models/bad_field/ready`)) === 200, 15_000)).toBe(true);

      // model.ts changes: the new code serves, the old instance drains.
      const modelTs = path.join(repo.root, 'add_sub/1/model.ts');
      const source = fs.readFileSync(modelTs, 'utf8');
      const marked = source.replace(
        "new Tensor('OUTPUT1', diff, a.shape)] });",
        "new Tensor('OUTPUT1', diff, a.shape)], parameters: { generation: 2 } });",
      );
      expect(marked).not.toBe(source);
      writeAtomic(modelTs, marked);
      expect(await waitFor(() => load.generations.has(2), 15_000)).toBe(true);

      // A new version folder: version 2 takes over (latest policy), version 1 drains.
      writeAtomic(path.join(repo.root, 'add_sub/2/model.ts'), marked.replace('generation: 2', 'generation: 3'));
      expect(await waitFor(() => load.versions.has('2'), 15_000)).toBe(true);
      expect(await waitFor(async () => (await status(`${server.url}/v2/models/add_sub/versions/1/ready`)) !== 200, 5000)).toBe(true);

      // A model folder disappears.
      fs.rmSync(path.join(repo.root, 'identity_fp32'), { recursive: true });
      expect(await waitFor(async () => (await status(`${server.url}/v2/models/identity_fp32/ready`)) !== 200, 15_000)).toBe(true);
      const gone = await http(`${server.url}/v2/models/identity_fp32/infer`, 'POST', { inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [1, 1], data: [1] }] });
      expect(gone.status).toBe(404);
    } finally {
      await load.stop();
    }
    expect(load.failures.join('\n')).toBe('');
    expect(load.ok).toBeGreaterThan(50);
    expect(load.generations).toEqual(new Set([undefined, 2, 3]));
    const index = async () => (await http(`${server.url}/v2/repository/index`, 'POST')).json as { name: string; version?: string; state: string }[];
    expect((await index()).filter((e) => e.name === 'add_sub')).toEqual([{ name: 'add_sub', version: '2', state: 'READY' }]);
    // UNLOADING while its instance finalizes, then gone from the index with its folder.
    expect(await waitFor(async () => !(await index()).some((e) => e.name === 'identity_fp32'), 5000)).toBe(true);
    // Strict readiness: the two configs still broken hold it down until their folders go.
    expect(await status(`${server.url}/v2/health/ready`)).toBe(400);
    for (const m of ['bad_dtype', 'bad_syntax']) fs.rmSync(path.join(repo.root, m), { recursive: true });
    expect(await waitFor(async () => (await status(`${server.url}/v2/health/ready`)) === 200, 5000)).toBe(true);
    expect((await index()).map((e) => e.name)).toEqual(['add_sub', 'bad_field']);
  }, 60_000);
});

describe('explicit load and unload', () => {
  let repo: { root: string; cleanup(): void };
  let server: TestServer;

  beforeAll(async () => {
    repo = tempRepository({});
    copy(path.join(ROOT, 'models/add_sub'), repo.root);
    copy(path.join(ROOT, 'models/identity_fp32'), repo.root);
    copy(path.join(FIXTURES, 'slow/slow_echo'), repo.root);
    server = await startTestServer({ modelRepository: repo.root, modelControlMode: 'explicit', loadModels: ['add_sub', 'slow_echo'] });
  }, 60_000);

  afterAll(async () => {
    await server?.close();
    repo?.cleanup();
    expect(shmLeftovers()).toEqual([]);
  });

  afterEach(() => {
    server.logs.length = 0;
  });

  const slowInfer = (x: number) =>
    http(`${server.url}/v2/models/slow_echo/infer`, 'POST', { inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [1], data: [x] }] });

  it('only the named models load at start', async () => {
    expect(await status(`${server.url}/v2/models/add_sub/ready`)).toBe(200);
    expect(await status(`${server.url}/v2/models/identity_fp32/ready`)).not.toBe(200);
    const index = (await http(`${server.url}/v2/repository/index`, 'POST')).json;
    // Never loaded: Triton's index lists only the name.
    expect(index.find((e: any) => e.name === 'identity_fp32')).toEqual({ name: 'identity_fp32' });
  });

  it('reload drains the request in flight on the old version, then finalizes it', async () => {
    const pending = slowInfer(1);
    await new Promise((r) => setTimeout(r, 100));
    const reload = await http(`${server.url}/v2/repository/models/slow_echo/load`, 'POST');
    expect(reload.status).toBe(200);
    const r = await pending;
    expect(r.status).toBe(200);
    expect(r.json.outputs[0].data).toEqual([1]);
    expect(await waitFor(() => server.logs.some((l) => l.includes('finalized after 1 executions')), 5000)).toBe(true);
    expect((await slowInfer(2)).json.parameters).toEqual({ executions: 1 }); // the new instance
  });

  it('unload waits for the request in flight, then refuses new ones', async () => {
    const pending = slowInfer(3);
    await new Promise((r) => setTimeout(r, 100));
    const unload = await http(`${server.url}/v2/repository/models/slow_echo/unload`, 'POST');
    expect(unload.status).toBe(200);
    const r = await pending;
    expect(r.status).toBe(200);
    expect(r.json.outputs[0].data).toEqual([3]);
    expect(server.logs.some((l) => l.includes('finalized after'))).toBe(true);
    const after = await slowInfer(4);
    expect(after.status).toBe(404);
    expect(after.json.error).toMatch(/slow_echo/);
    expect((await http(`${server.url}/v2/repository/models/slow_echo/load`, 'POST')).status).toBe(200);
  });

  it('loading, reloading and unloading under load lose no request to add_sub', async () => {
    const load = loadOn(server.url);
    try {
      for (let i = 0; i < 2; i++) {
        expect((await http(`${server.url}/v2/repository/models/identity_fp32/load`, 'POST')).status).toBe(200);
        expect((await http(`${server.url}/v2/repository/models/add_sub/load`, 'POST')).status).toBe(200);
        expect((await http(`${server.url}/v2/repository/models/identity_fp32/unload`, 'POST')).status).toBe(200);
      }
    } finally {
      await load.stop();
    }
    expect(load.failures.join('\n')).toBe('');
    expect(load.ok).toBeGreaterThan(20);
    expect(await status(`${server.url}/v2/health/ready`)).toBe(200);
  }, 60_000);
});
