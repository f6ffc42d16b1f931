/**
 * Model errors through real stubs: an error response fails only its request, an execute that
 * throws or returns the wrong number of responses fails its batch with a clear error while the
 * stub keeps serving, and load failures (initialize throws, model.ts does not compile) carry the
 * model's file and line while the other models serve.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { childPids, http, shmLeftovers, startTestServer, tempRepository, waitFor, type TestServer } from './helpers/server.js';

const BASIC = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'models', 'stub', 'basic');

function copyModel(name: string): Record<string, Buffer> {
  const dir = path.join(BASIC, name);
  const files: Record<string, Buffer> = {};
  for (const rel of fs.readdirSync(dir, { recursive: true }) as string[]) {
    const file = path.join(dir, rel);
    if (fs.statSync(file).isFile()) files[rel] = fs.readFileSync(file);
  }
  return files;
}

// Kept out of the fixtures folder: tsc type-checks test/, and this file must not compile.
const SYNTAX_ERROR_TS = `import { InferenceRequest, InferenceResponse } from 'stubhost';

export default class Broken {
  execute(requests: InferenceRequest[]): InferenceResponse[] {
    return requests.map((r) => new InferenceResponse({ outputs: [ }));
  }
}
`;

const repo = tempRepository({
  errors: copyModel('errors'),
  init_throws: copyModel('init_throws'),
  upper: copyModel('upper'),
  syntax_error: { 'config.pbtxt': copyModel('init_throws')['config.pbtxt']!.toString().replace('init_throws', 'syntax_error'), '1/model.ts': SYNTAX_ERROR_TS },
});
let server: TestServer;

beforeAll(async () => {
  server = await startTestServer({ modelRepository: repo.root });
}, 60_000);

afterAll(async () => {
  await server?.close();
  repo.cleanup();
  expect(await waitFor(() => childPids().length === 0, 3000)).toBe(true);
  expect(shmLeftovers()).toEqual([]);
});

const infer = (model: string, body: unknown) => http(`${server.url}/v2/models/${model}/infer`, 'POST', body);
const x = (v: number, id = `x${v}`) => ({ id, inputs: [{ name: 'X', datatype: 'INT32', shape: [1, 1], data: [v] }] });
const output = (json: any, name: string) => json.outputs.find((o: { name: string }) => o.name === name)?.data;

describe('errors in execute', () => {
  it('a ModelError response fails only its request (400 with the message); the rest of the batch succeeds', async () => {
    const values = [1, 2, -3, 4, 5, -6];
    const rs = await Promise.all(values.map((v) => infer('errors', x(v))));
    for (const [i, v] of values.entries()) {
      if (v < 0) {
        expect(rs[i]!.status).toBe(400);
        expect(rs[i]!.json.error).toBe(`X must not be negative, got ${v}`);
      } else {
        expect(rs[i]!.status).toBe(200);
        expect(output(rs[i]!.json, 'Y')).toEqual([2 * v]);
      }
    }
    // They really shared execute calls (the 50 ms batching window gathers them).
    const batches = rs.filter((r) => r.status === 200).map((r) => output(r.json, 'BATCH')[0] as number);
    expect(Math.max(...batches)).toBeGreaterThan(1);
  });

  it('execute that throws fails its batch with an error naming model, instance and the cause; the stub keeps serving', async () => {
    const pid = server.core.repository.get('errors').instanceList[0]!.pid;
    const rs = await Promise.all([infer('errors', x(1000)), infer('errors', x(7))]);
    // Both landed in one batch (or the 7 ran alone and succeeded): the thrower always fails.
    expect(rs[0]!.status).toBe(500);
    expect(rs[0]!.json.error).toMatch(/model 'errors' instance 'errors_0_0': execute threw: execute failed on purpose \(X = 1000\)/);
    expect(rs[0]!.json.error).toMatch(/model\.ts:\d+/);
    if (rs[1]!.status !== 200) expect(rs[1]!.json.error).toBe(rs[0]!.json.error);
    const after = await infer('errors', x(8));
    expect(after.status).toBe(200);
    expect(output(after.json, 'Y')).toEqual([16]);
    expect(server.core.repository.get('errors').instanceList[0]!.pid).toBe(pid);
  });

  it('execute returning the wrong number of responses is a clear error; the stub keeps serving', async () => {
    const pid = server.core.repository.get('errors').instanceList[0]!.pid;
    const r = await infer('errors', x(2000));
    expect(r.status).toBe(500);
    expect(r.json.error).toBe("model 'errors' instance 'errors_0_0': execute must return one response per request (1), it returned 0 responses");
    const after = await infer('errors', x(9));
    expect([after.status, output(after.json, 'Y')]).toEqual([200, [18]]);
    expect(server.core.repository.get('errors').instanceList[0]!.pid).toBe(pid);
  });
});

describe('load failures', () => {
  it('an exception in initialize fails the load with the stack pointing into model.ts', () => {
    const source = fs.readFileSync(path.join(BASIC, 'init_throws', '1', 'model.ts'), 'utf8');
    const line = source.split('\n').findIndex((l) => l.includes('INIT_THROW_LINE')) + 1;
    const message = server.failed.get('init_throws');
    expect(message).toBeDefined();
    expect(message).toContain("model 'init_throws' version 1 instance 'init_throws_0_0'");
    expect(message).toContain('initialize failed: Error: cannot open weights file /nonexistent/weights.bin');
    // Relative to the model's folder; absolute paths and host frames are for the server log only.
    expect(message).toMatch(new RegExp(`\\(1/model\\.ts:${line}:\\d+\\)`));
    expect(message!.replace('/nonexistent/weights.bin', '')).not.toMatch(/(^|[\s(])\//);
    expect(server.core.modelReady('init_throws')).toBe(false);
  });

  it('a model.ts with a syntax error fails its load naming the file and line; the other models serve', async () => {
    const message = server.failed.get('syntax_error');
    expect(message).toBeDefined();
    expect(message).toMatch(/(^|\s)1\/model\.ts:5:\d+/);
    expect(message).not.toMatch(/(^|[\s(])\//);
    expect(server.core.modelReady('syntax_error')).toBe(false);
    const index = await http(`${server.url}/v2/repository/index`, 'POST', {});
    const states = Object.fromEntries(index.json.map((e: { name: string; state: string }) => [e.name, e.state]));
    expect(states).toMatchObject({ errors: 'READY', upper: 'READY', init_throws: 'UNAVAILABLE', syntax_error: 'UNAVAILABLE' });
    const r = await http(`${server.url}/v2/models/upper/infer`, 'POST', { inputs: [{ name: 'TEXT', datatype: 'BYTES', shape: [1], data: ['ok'] }] });
    expect(r.json.outputs[0].data).toEqual(['OK']);
  });
});
