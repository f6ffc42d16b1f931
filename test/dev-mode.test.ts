/**
 * `stubhost dev` as a newcomer uses it, in a temporary folder outside the project: models
 * scaffolded with `stubhost init`, `stubhost dev` through bin/stubhost.js. A saved edit to
 * model.ts is type-checked and served; a type error is logged with file:line and the old code
 * keeps serving; a fix serves again. A saved config.pbtxt regenerates config.types.ts before the
 * check. The other model answers throughout; at the end the process
 * exits cleanly on SIGTERM and leaves no /dev/shm file and no process.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { childPids, waitFor } from './helpers/server.js';
import { ROOT, stubhost } from './helpers/cli.js';
import { postJson, shmFilesOf, startCli, type CliServer } from './helpers/blackbox.js';

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'stubhost-dev-'));
const repo = path.join(work, 'models');
const modelFile = path.join(repo, 'echo', '1', 'model.ts');
let server: CliServer | undefined;
let scaffold = '';

/** The scaffolded model.ts with OUTPUT = <expression of x>. */
const withExpression = (expr: string): string => {
  const out = scaffold.replace(/input\.data\.map\(\(x\) => [^)]*\)/, `input.data.map((x) => ${expr})`);
  expect(out).not.toBe(scaffold);
  return out;
};
const logs = (): any[] => server!.output().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
const messages = (): string[] => logs().map((l) => String(l.msg));
const echo = async (): Promise<unknown> => {
  const r = await postJson(`${server!.http}/v2/models/echo/infer`, { inputs: [{ name: 'INPUT', datatype: 'FP32', shape: [2], data: [1, 2] }] });
  return r.status === 200 ? r.json.outputs[0].data : `${r.status} ${r.text}`;
};
const canary = async (): Promise<unknown> => {
  const r = await postJson(`${server!.http}/v2/models/canary/infer`, { inputs: [{ name: 'INPUT', datatype: 'FP32', shape: [1], data: [5] }] });
  return r.status === 200 ? r.json.outputs[0].data : `${r.status} ${r.text}`;
};

beforeAll(async () => {
  expect(path.relative(ROOT, work).startsWith('..')).toBe(true);
  for (const name of ['echo', 'canary']) {
    const r = stubhost(['init', name, '--model-repository', 'models'], work);
    expect(r.status, r.stderr).toBe(0);
  }
  scaffold = fs.readFileSync(modelFile, 'utf8');
  server = await startCli(repo, ['--allow-grpc', 'false'], { command: 'dev', timeoutMs: 60_000 });
  expect(await waitFor(() => messages().some((m) => m.startsWith('dev: watching ')), 30_000)).toBe(true);
}, 180_000);

afterAll(async () => {
  if (server) {
    const [code] = await server.stop();
    expect(code).toBe(0);
    expect(shmFilesOf(server.pid)).toEqual([]);
  }
  fs.rmSync(work, { recursive: true, force: true });
  expect(await waitFor(() => childPids().length === 0, 5000)).toBe(true);
}, 30_000);

describe('stubhost dev', () => {
  it('serves the scaffold, then the edited code once model.ts is saved', async () => {
    expect(await echo()).toEqual([2, 4]);
    fs.writeFileSync(modelFile, withExpression('3 * x'));
    expect(await waitFor(async () => JSON.stringify(await echo()) === '[3,6]', 60_000, 50)).toBe(true);
    expect(await waitFor(() => messages().some((m) => /^reloaded 'echo' in \d+ ms \(version 1; dev: echo\/1\/model\.ts changed\)$/.test(m)), 10_000)).toBe(true);
    expect(await canary()).toEqual([10]);
  }, 90_000);

  it('a type error is logged with file:line and the old code keeps serving; the fix serves', async () => {
    const before = logs().length;
    fs.writeFileSync(modelFile, withExpression("'s' + x"));
    const line = withExpression("'s' + x").split('\n').findIndex((l) => l.includes("'s' + x")) + 1;
    expect(await waitFor(() => logs().slice(before).some((l) => String(l.msg).startsWith("model 'echo' failed to reload: ")), 60_000, 50)).toBe(true);
    const typeError = logs().slice(before).find((l) => String(l.msg).startsWith('type error: '));
    expect(typeError).toMatchObject({ level: 'error', model: 'echo' });
    expect(typeError.msg).toMatch(new RegExp(`^type error: echo/1/model\\.ts:${line}:\\d+: TS2322: Type 'string' is not assignable to type 'number'\\.$`));
    const failed = logs().slice(before).find((l) => String(l.msg).startsWith("model 'echo' failed to reload: "));
    expect(failed.msg).toMatch(/1 type error \(first: echo\/1\/model\.ts:\d+:\d+: TS2322: .*\); fix it and save again; version 1 keeps serving \(dev: /);
    expect(await echo()).toEqual([3, 6]);
    expect(await canary()).toEqual([10]);

    fs.writeFileSync(modelFile, withExpression('4 * x'));
    expect(await waitFor(async () => JSON.stringify(await echo()) === '[4,8]', 60_000, 50)).toBe(true);
  }, 120_000);

  it('an editor that saves through a backup (the old file renamed to model.ts~, a new one written): that save and the next ones are seen', async () => {
    const before = logs().length;
    fs.renameSync(modelFile, `${modelFile}~`);
    fs.writeFileSync(modelFile, withExpression('5 * x'));
    fs.rmSync(`${modelFile}~`);
    expect(await waitFor(async () => JSON.stringify(await echo()) === '[5,10]', 60_000, 50)).toBe(true);
    expect(await waitFor(() => logs().slice(before).some((l) => /^reloaded 'echo' in \d+ ms \(version 1; dev: echo\/1\/model\.ts changed\)$/.test(String(l.msg))), 10_000)).toBe(true);
    expect(logs().slice(before).filter((l) => String(l.msg).startsWith("model 'echo' failed to reload"))).toEqual([]);
    fs.writeFileSync(modelFile, withExpression('4 * x'));
    expect(await waitFor(async () => JSON.stringify(await echo()) === '[4,8]', 60_000, 50)).toBe(true);
  }, 120_000);

  it('a saved config.pbtxt regenerates config.types.ts, and the check sees its new types', async () => {
    const configFile = path.join(repo, 'echo', 'config.pbtxt');
    const typesFile = path.join(repo, 'echo', 'config.types.ts');
    const config = fs.readFileSync(configFile, 'utf8');
    let before = logs().length;
    // The output renamed: the model's Tensor('OUTPUT', ...) no longer fits the generated Response.
    fs.writeFileSync(configFile, config.replace('name: "OUTPUT"', 'name: "RESULT"'));
    expect(await waitFor(() => logs().slice(before).some((l) => String(l.msg).startsWith("model 'echo' failed to reload: ")), 60_000, 50)).toBe(true);
    expect(logs().slice(before).find((l) => String(l.msg).startsWith('dev: regenerated '))).toMatchObject({ level: 'info', msg: 'dev: regenerated echo/config.types.ts from the saved config', model: 'echo' });
    expect(fs.readFileSync(typesFile, 'utf8')).toContain('RESULT: {');
    expect(logs().slice(before).some((l) => String(l.msg).startsWith('type error: echo/1/model.ts:'))).toBe(true);
    expect(await echo()).toEqual([4, 8]);

    before = logs().length;
    fs.writeFileSync(configFile, config);
    expect(await waitFor(() => logs().slice(before).some((l) => /^reloaded 'echo' in \d+ ms \(version 1; dev: echo\/config\.pbtxt changed\)$/.test(String(l.msg))), 60_000, 50)).toBe(true);
    expect(fs.readFileSync(typesFile, 'utf8')).toContain('OUTPUT: {');
    expect(await echo()).toEqual([4, 8]);
    // Its own write of config.types.ts is no save: it reloads nothing.
    expect(messages().filter((m) => m.includes('config.types.ts changed'))).toEqual([]);
  }, 120_000);

  it('flags that would be ignored in dev mode are refused', () => {
    const r = stubhost(['dev', '--model-repository', 'models', '--model-control-mode', 'poll'], work);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/stubhost dev loads every model and reloads them as they are saved: --model-control-mode is for stubhost serve/);
  });
});
