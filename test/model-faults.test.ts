/**
 * Model faults stay contained, with real stubs: a model printing 200 MB without a newline, one
 * outgrowing its memory cap with ArrayBuffers, one whose execute never returns (request timeout,
 * stalled-execute reports, unload, reload, shutdown), and one that throws (what the client is
 * told, what the log gets). After each, a canary model still answers; at the end no stub process
 * and no /dev/shm file is left.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { childPids, http, startRepositoryServer, waitFor, type RepositoryServer } from './helpers/server.js';
import { makeRepository, shmFilesOf, startCli } from './helpers/blackbox.js';
import { MAX_LOG_LINE_BYTES } from '../src/core/bounded-lines.js';

const FIXTURES = path.resolve(import.meta.dirname, 'fixtures/models/model-faults');

/** A fixture model folder as startRepositoryServer's file map. */
function fixture(name: string): Record<string, string> {
  const files: Record<string, string> = {};
  const walk = (rel: string): void => {
    for (const d of fs.readdirSync(path.join(FIXTURES, name, rel), { withFileTypes: true })) {
      const r = path.join(rel, d.name);
      if (d.isDirectory()) walk(r);
      else files[r] = fs.readFileSync(path.join(FIXTURES, name, r), 'utf8');
    }
  };
  walk('');
  return files;
}

const MODELS = ['canary', 'chatty', 'hog', 'spin', 'thrower', 'bad_limit'];
let server: RepositoryServer;

const x = (v: number, parameters?: Record<string, unknown>) => ({ inputs: [{ name: 'X', datatype: 'INT32', shape: [1], data: [v] }], ...(parameters ? { parameters } : {}) });
const infer = (model: string, v: number, parameters?: Record<string, unknown>) => http(`${server.url}/v2/models/${model}/infer`, 'POST', x(v, parameters));
const y = (r: { json: any }): number => r.json.outputs[0].data[0];
const logs = (): any[] => server.logs.map((l) => JSON.parse(l));

/** Alive and not a zombie. */
function running(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

async function expectCanary(): Promise<void> {
  const r = await infer('canary', 41);
  expect([r.status, r.status === 200 ? y(r) : r.text]).toEqual([200, 42]);
}

const instanceOf = (model: string) => server.core.repository.get(model).instanceList[0]!;

beforeAll(async () => {
  server = await startRepositoryServer(Object.fromEntries(MODELS.map((m) => [m, fixture(m)])), {
    modelControlMode: 'explicit',
    loadModels: ['*'],
    executeWarnMs: 500,
  });
}, 60_000);

afterAll(async () => {
  if (!server) return;
  expect(await server.stop(2000)).toEqual([]);
  expect(await waitFor(() => childPids().length === 0, 5000)).toBe(true);
}, 30_000);

describe('errors to clients', () => {
  it('an execute that throws: the client gets the message and 1/model.ts:<line>:<col>, no absolute path; the log gets the whole stack', async () => {
    const source = fs.readFileSync(path.join(FIXTURES, 'thrower/1/model.ts'), 'utf8');
    const line = source.split('\n').findIndex((l) => l.includes('THROW_LINE')) + 1;
    const r = await infer('thrower', 1);
    expect(r.status).toBe(500);
    const message: string = r.json.error;
    expect(message).toMatch(/^model 'thrower' instance 'thrower_0_0': execute threw: TypeError: table\.missing is not a function/);
    expect(message).toMatch(new RegExp(`at scale \\(1/model\\.ts:${line}:\\d+\\)`));
    expect(message).toMatch(/at Thrower\.execute \(1\/model\.ts:\d+:\d+\)/);
    // No absolute path, no frame of the stub, tsx or node itself.
    expect(message).not.toMatch(/(^|[\s(])\//);
    expect(message).not.toMatch(/file:|node:internal|stub\/stub-loop|tsx/);
    const logged = logs().find((l) => l.model === 'thrower' && l.level === 'error' && /execute threw/.test(l.msg));
    expect(logged?.msg).toContain(`${path.join(server.root, 'thrower/1/model.ts')}:${line}:`);
    expect(logged?.msg).toMatch(/stub\/stub-loop\.ts/);
    expect(y(await infer('thrower', 5))).toBe(5); // the stub keeps serving
    await expectCanary();
  });
});

describe('stub output', () => {
  it('200 MB on stdout without a newline, and a 200 MB console.log: logged cut at 16 KiB with a marker; host memory bounded', async () => {
    const rssBefore = process.memoryUsage().rss;
    const [r, canary] = await Promise.all([infer('chatty', 200), infer('canary', 1)]);
    expect([r.status, y(r)]).toEqual([200, 200]);
    expect([canary.status, y(canary)]).toEqual([200, 2]);
    const total = 200 * (1 << 20);
    const find = (prefix: string) => logs().find((l) => l.model === 'chatty' && typeof l.msg === 'string' && l.msg.startsWith(prefix));
    expect(await waitFor(() => find('START:') !== undefined && find('LOG:') !== undefined, 20_000)).toBe(true);
    for (const [prefix, level] of [['START:', 'info'], ['LOG:', 'info']] as const) {
      const entry = find(prefix)!;
      expect(entry.level).toBe(level);
      const omitted = prefix.length + total - MAX_LOG_LINE_BYTES;
      expect(entry.msg).toBe(`${prefix}${'xy'[prefix === 'START:' ? 0 : 1]!.repeat(MAX_LOG_LINE_BYTES - prefix.length)}… [line cut: ${omitted} bytes]`);
    }
    // readline kept the whole line as a string (hundreds of MB); now a line costs 16 KiB.
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(100 * (1 << 20));
    await expectCanary();
  }, 60_000);
});

describe('memory cap', () => {
  it('a model growing ArrayBuffers past memory_limit_bytes is killed, its request names the cap, it restarts', async () => {
    const inst = instanceOf('hog');
    const oldPid = inst.pid;
    const r = await infer('hog', 1);
    expect(r.status).toBe(500);
    expect(r.json.error).toMatch(new RegExp(`^model 'hog' version 1 instance 'hog_0_0' \\(pid ${oldPid}\\): exceeded its memory limit of 268435456 bytes \\(RSS (\\d+) bytes, not counting shared memory\\) \\(killed by SIGKILL\\)$`));
    const rss = Number(/RSS (\d+) bytes/.exec(r.json.error)![1]);
    expect(rss).toBeGreaterThan(268435456);
    expect(rss).toBeLessThan(2 * 1024 ** 3); // stopped long before the model's 2 GiB
    expect(running(oldPid)).toBe(false);
    await expectCanary();
    expect(await waitFor(() => inst.state === 'ready' && inst.pid !== oldPid, 15_000)).toBe(true);
    const after = await infer('hog', 0);
    expect([after.status, y(after)]).toEqual([200, inst.pid]);
  }, 30_000);

  it('a memory_limit_bytes that is not a number of bytes fails the load naming the parameter', () => {
    expect(server.failed.get('bad_limit')).toMatch(/model 'bad_limit' version 1 \(.*bad_limit\): parameter 'memory_limit_bytes' is "lots"; expected a whole number of bytes/);
  });
});

describe('an execute that never returns', () => {
  let spinningPid = 0;

  it('the request timeout ends the wait of the running request and of the one queued behind it', async () => {
    spinningPid = instanceOf('spin').pid;
    const t0 = performance.now();
    const [hung, queued] = await Promise.all([infer('spin', 1, { timeout: 300_000 }), infer('spin', 0, { timeout: 300_000 })]);
    for (const r of [hung, queued]) {
      expect(r.status).toBe(504);
      expect(r.json.error).toMatch(/^model 'spin' version 1: request timed out after 300 ms/);
    }
    expect(performance.now() - t0).toBeLessThan(10_000); // bounded: it used to wait forever
    expect(running(spinningPid)).toBe(true); // a timeout alone does not kill the stub
    await expectCanary();
  }, 30_000);

  it('is reported once: a log line, the stubhost_stalled_executes metric, stalled_executes in /v2/models/spin/stats', async () => {
    const metric = async (): Promise<string | undefined> => {
      const text = await (await fetch(`http://127.0.0.1:${server.ports.metrics}/metrics`)).text();
      return /^stubhost_stalled_executes\{model="spin",instance="spin_0_0"\} (\d+)$/m.exec(text)?.[1];
    };
    expect(await waitFor(async () => (await metric()) === '1', 5000)).toBe(true);
    const stats = await http(`${server.url}/v2/models/spin/stats`);
    expect(stats.json.model_stats[0].stalled_executes).toEqual([{ instance: 'spin_0_0', pid: spinningPid, running_ms: expect.any(Number), requests: 1 }]);
    expect(stats.json.model_stats[0].stalled_executes[0].running_ms).toBeGreaterThan(500);
    const canaryStats = await http(`${server.url}/v2/models/canary/stats`);
    expect(canaryStats.json.model_stats[0].stalled_executes).toEqual([]);
    // Another request's timeout takes more than a second: several health ticks, still one line.
    expect((await infer('spin', 0, { timeout: 100_000 })).status).toBe(504);
    const lines = logs().filter((l) => l.model === 'spin' && /has been running for \d+ s, longer than the execute warning limit of 0\.5 s/.test(l.msg));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 'warn', instance: 'spin_0_0', pid: spinningPid });
    await expectCanary();
  }, 30_000);

  it('unload gives it unload_grace_seconds (1), then kills the stub; a load afterwards serves again', async () => {
    const t0 = performance.now();
    const unload = await http(`${server.url}/v2/repository/models/spin/unload`, 'POST', {});
    expect(unload.status).toBe(200);
    expect(performance.now() - t0).toBeLessThan(10_000);
    expect(await waitFor(() => !running(spinningPid), 5000)).toBe(true);
    expect(logs().some((l) => l.model === 'spin' && /execute did not finish within the unload grace of 1 s/.test(l.msg))).toBe(true);
    await expectCanary();
    const load = await http(`${server.url}/v2/repository/models/spin/load`, 'POST', {});
    expect(load.status).toBe(200);
    const r = await infer('spin', 0);
    expect([r.status, y(r)]).toEqual([200, instanceOf('spin').pid]);
    expect(y(r)).not.toBe(spinningPid);
  }, 30_000);

  it('reload while it spins is not held by it: the model answers throughout (never 404), the new version serves, the old stub is killed', async () => {
    const oldPid = instanceOf('spin').pid;
    const hung = infer('spin', 1, { timeout: 200_000 });
    expect(await waitFor(() => instanceOf('spin').stalledExecutes().length === 1, 5000)).toBe(true);
    let reloading = true;
    const statuses: number[] = [];
    const probe = (async () => {
      while (reloading) statuses.push((await http(`${server.url}/v2/models/spin`)).status);
    })();
    const t0 = performance.now();
    const reload = await http(`${server.url}/v2/repository/models/spin/load`, 'POST', {});
    reloading = false;
    await probe;
    expect(reload.status).toBe(200);
    expect(performance.now() - t0).toBeLessThan(15_000);
    expect(statuses.length).toBeGreaterThan(0);
    expect(statuses.every((s) => s === 200)).toBe(true);
    expect((await hung).status).toBe(504);
    const r = await infer('spin', 0);
    expect(r.status).toBe(200);
    expect(y(r)).not.toBe(oldPid);
    expect(await waitFor(() => !running(oldPid), 10_000)).toBe(true);
    await expectCanary();
  }, 30_000);
});

describe('shutdown', () => {
  it('SIGTERM with an execute that never returns: the server exits within --exit-timeout-secs, its stubs and /dev/shm files gone', async () => {
    const repo = makeRepository(Object.fromEntries(['canary', 'spin'].flatMap((m) => Object.entries(fixture(m)).map(([rel, text]) => [`${m}/${rel}`, text]))));
    const s = await startCli(repo.root, ['--exit-timeout-secs', '2', '--execute-warn-secs', '0.2'], { timeoutMs: 60_000 });
    try {
      const base = `${s.http}/v2/models`;
      const post = (model: string, v: number) => fetch(`${base}/${model}/infer`, { method: 'POST', body: JSON.stringify(x(v)) }).then(async (r) => ({ status: r.status, json: await r.json() as any }));
      const stubPid = (await post('spin', 0)).json.outputs[0].data[0] as number;
      const hung = post('spin', 1);
      expect(await waitFor(() => /has been running for/.test(s.output()), 10_000)).toBe(true);
      expect((await post('canary', 1)).json.outputs[0].data[0]).toBe(2);
      const t0 = performance.now();
      s.child.kill('SIGTERM');
      const [code] = await s.exited;
      const took = performance.now() - t0;
      expect(code).toBe(1);
      // Within --exit-timeout-secs (2 s); the slack is for a loaded machine's scheduling only.
      expect(took).toBeLessThan(3000);
      expect((await hung).status).toBe(503);
      expect(await waitFor(() => !running(stubPid), 2000)).toBe(true);
      expect(shmFilesOf(s.pid)).toEqual([]);
    } finally {
      await s.stop('SIGKILL');
      repo.cleanup();
    }
  }, 90_000);
});
