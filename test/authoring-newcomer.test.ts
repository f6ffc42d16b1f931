/**
 * Writing a model the way a newcomer does, in a folder outside the project: `stubhost init`,
 * `stubhost types`, `tsc --noEmit` with the tsconfig init wrote, `stubhost serve`, an infer.
 * Everything runs through bin/stubhost.js in child processes, as a user's shell would.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { childPids, waitFor } from './helpers/server.js';
import { ROOT, serve, stubhost, tsc, type ServeProcess } from './helpers/cli.js';

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'stubhost-newcomer-'));
const repo = path.join(work, 'models');
let server: ServeProcess | undefined;

afterAll(async () => {
  await server?.stop();
  fs.rmSync(work, { recursive: true, force: true });
  expect(await waitFor(() => childPids().length === 0, 5000)).toBe(true);
});

async function infer(model: string, inputs: unknown[]): Promise<{ status: number; body: any }> {
  const res = await fetch(`${server!.url}/v2/models/${model}/infer`, { method: 'POST', body: JSON.stringify({ inputs }) });
  return { status: res.status, body: await res.json() };
}

describe('a newcomer writes models outside the project', () => {
  it('stubhost --version prints the package version', () => {
    const version = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version;
    for (const flag of ['--version', '-v']) expect(stubhost([flag], work)).toMatchObject({ status: 0, stdout: `${version}\n` });
  });

  it('stubhost init scaffolds models and the repository tsconfig', () => {
    expect(path.relative(ROOT, work).startsWith('..')).toBe(true);
    const plain = stubhost(['init', 'doubler', '--model-repository', 'models'], work);
    expect(plain.status, plain.stderr).toBe(0);
    const batched = stubhost(['init', 'batched', '--batching', '--model-repository', 'models'], work);
    expect(batched.status, batched.stderr).toBe(0);
    for (const f of ['doubler/config.pbtxt', 'doubler/1/model.ts', 'doubler/config.types.ts', 'batched/config.types.ts', 'tsconfig.json']) {
      expect(fs.existsSync(path.join(repo, f)), f).toBe(true);
    }
    // A second init of the same name refuses rather than overwrite the model.
    const again = stubhost(['init', 'doubler', '--model-repository', 'models'], work);
    expect(again.status).toBe(2);
    expect(again.stderr).toMatch(/doubler already exists; choose another name or remove that folder/);
  }, 120_000);

  it('stubhost types (from inside the repository) finds the types up to date', () => {
    const r = stubhost(['types'], repo);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^batched: up to date: .*batched\/config\.types\.ts$/m);
    expect(r.stdout).toMatch(/^doubler: up to date: .*doubler\/config\.types\.ts$/m);
  }, 120_000);

  it('tsc --noEmit passes with the tsconfig init wrote', () => {
    const r = tsc(['--noEmit', '-p', repo], work);
    expect(r.status, r.stdout + r.stderr).toBe(0);
  }, 180_000);

  it('stubhost serve answers an infer with the scaffolded models', async () => {
    server = await serve(['--model-repository', repo], work);
    expect(server.logs.join('\n')).toMatch(/2 model\(s\) ready, 0 failed/);
    const plain = await infer('doubler', [{ name: 'INPUT', shape: [3], datatype: 'FP32', data: [1, 2, 3] }]);
    expect(plain.status, JSON.stringify(plain.body)).toBe(200);
    expect(plain.body.outputs).toEqual([{ name: 'OUTPUT', datatype: 'FP32', shape: [3], data: [2, 4, 6] }]);
    const batched = await infer('batched', [{ name: 'INPUT', shape: [2, 2], datatype: 'FP32', data: [1, 2, 3, 4] }]);
    expect(batched.status, JSON.stringify(batched.body)).toBe(200);
    expect(batched.body.outputs).toEqual([{ name: 'OUTPUT', datatype: 'FP32', shape: [2, 2], data: [2, 4, 6, 8] }]);
    const pid = server.child.pid!;
    expect(await server.stop()).toBe(0);
    server = undefined;
    expect(fs.readdirSync('/dev/shm').filter((n) => n.startsWith(`stubhost-${pid}-`))).toEqual([]);
  }, 180_000);

  it('an output name the config does not declare fails tsc, naming the line', () => {
    const file = path.join(repo, 'doubler', '1', 'model.ts');
    fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace("new Tensor('OUTPUT'", "new Tensor('OUTPT'"));
    const r = tsc(['--noEmit', '-p', repo], work);
    expect(r.status).not.toBe(0);
    expect(r.stdout).toMatch(/doubler\/1\/model\.ts\(\d+,\d+\): error TS\d+: [\s\S]*OUTPT/);
  }, 180_000);
});
