/**
 * `stubhost init` variants and `stubhost types` as commands: every scaffold (--batching,
 * --decoupled, --sequence, --onnx) type-checks with the tsconfig init wrote and serves; bad
 * arguments get a message naming the fix; types leaves files it did not write alone, completes
 * config-less ONNX models from their file, and regenerates after a config change.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { childPids, waitFor } from './helpers/server.js';
import { ROOT, serve, stubhost, tsc, type ServeProcess } from './helpers/cli.js';

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'stubhost-init-'));
const repo = path.join(work, 'repo');
const ADD_SUB_ONNX = path.join(ROOT, 'test', 'fixtures', 'onnx', 'add_sub.onnx');
let server: ServeProcess | undefined;

afterAll(async () => {
  await server?.stop();
  fs.rmSync(work, { recursive: true, force: true });
  expect(await waitFor(() => childPids().length === 0, 5000)).toBe(true);
});

const init = (...args: string[]) => stubhost(['init', ...args, '--model-repository', repo], work);

async function post(url: string, body: unknown): Promise<{ status: number; text: string }> {
  const res = await fetch(`${server!.url}${url}`, { method: 'POST', body: JSON.stringify(body) });
  return { status: res.status, text: await res.text() };
}

describe('stubhost init', () => {
  it('scaffolds each kind of model', () => {
    for (const args of [['streamer', '--decoupled'], ['counter', '--sequence'], ['batched_counter', '--sequence', '--batching'], ['batched_streamer', '--batching', '--decoupled'], ['wrapped', '--onnx', ADD_SUB_ONNX]]) {
      const r = init(...args);
      expect(r.status, `${args.join(' ')}: ${r.stderr}`).toBe(0);
    }
    expect(fs.existsSync(path.join(repo, 'wrapped', '1', 'model.onnx'))).toBe(true);
    expect(fs.readFileSync(path.join(repo, 'wrapped', 'config.types.ts'), 'utf8')).toMatch(/INPUT0: \{ dtype: 'FP32'; shape: \[-1, 4\] \}/);
  }, 180_000);

  it('refuses bad arguments with the fix, and leaves nothing behind', () => {
    expect(init()).toMatchObject({ status: 2, stderr: expect.stringMatching(/stubhost init needs a model name/) });
    expect(init('.hidden')).toMatchObject({ status: 2, stderr: expect.stringMatching(/model name "\.hidden" starts with "\."/) });
    expect(init('x', '--onnx', ADD_SUB_ONNX, '--batching')).toMatchObject({ status: 2, stderr: expect.stringMatching(/--onnx takes the inputs, outputs and batching from the ONNX file; leave out --batching/) });
    expect(init('x', '--onnx', path.join(work, 'missing.onnx'))).toMatchObject({ status: 2, stderr: expect.stringMatching(/missing\.onnx: no such file/) });
    fs.writeFileSync(path.join(work, 'not.onnx'), 'not a model');
    expect(init('x', '--onnx', path.join(work, 'not.onnx'))).toMatchObject({ status: 2, stderr: expect.stringMatching(/not\.onnx is not a valid ONNX model/) });
    expect(init('x', '--shape', '4')).toMatchObject({ status: 2, stderr: expect.stringMatching(/Unknown option '--shape'/) });
    expect(fs.readdirSync(repo).sort()).toEqual(['batched_counter', 'batched_streamer', 'counter', 'streamer', 'tsconfig.json', 'wrapped']);
  }, 120_000);

  it('every scaffold type-checks', () => {
    const r = tsc(['--noEmit', '-p', repo], work);
    expect(r.status, r.stdout + r.stderr).toBe(0);
  }, 180_000);

  it('every scaffold serves', async () => {
    server = await serve(['--model-repository', repo], work);
    expect(server.logs.join('\n')).toMatch(/5 model\(s\) ready, 0 failed/);

    const stream = await post('/v2/models/streamer/generate_stream', { INPUT: [1, 2] });
    expect(stream.text.match(/"OUTPUT":\d+/g)).toEqual(['"OUTPUT":2', '"OUTPUT":4']);
    const batchedStream = await post('/v2/models/batched_streamer/generate_stream', { INPUT: [3] });
    expect(batchedStream.text.match(/"OUTPUT":\d+/g)).toEqual(['"OUTPUT":6']);

    const step = (model: string, shape: number[], data: number[], parameters: Record<string, unknown>) =>
      post(`/v2/models/${model}/infer`, { parameters, inputs: [{ name: 'INPUT', shape, datatype: 'FP32', data }] });
    for (const [model, shape] of [['counter', [2]], ['batched_counter', [1, 2]]] as const) {
      expect((await step(model, [...shape], [1, 2], { sequence_id: 9, sequence_start: true })).text).toMatch(/"data":\[3\]/);
      expect((await step(model, [...shape], [10, 0], { sequence_id: 9, sequence_end: true })).text).toMatch(/"data":\[13\]/);
    }

    const wrapped = await post('/v2/models/wrapped/infer', {
      inputs: [
        { name: 'INPUT0', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] },
        { name: 'INPUT1', shape: [1, 4], datatype: 'FP32', data: [1, 1, 1, 1] },
      ],
    });
    expect(wrapped.status, wrapped.text).toBe(200);
    expect(JSON.parse(wrapped.text).outputs.map((o: { data: number[] }) => o.data)).toEqual([[2, 3, 4, 5], [0, 1, 2, 3]]);
    const pid = server.child.pid!;
    expect(await server.stop()).toBe(0);
    server = undefined;
    expect(fs.readdirSync('/dev/shm').filter((n) => n.startsWith(`stubhost-${pid}-`))).toEqual([]);
  }, 180_000);
});

describe('stubhost types', () => {
  it('rewrites the types after a config change, and only then', () => {
    const config = path.join(repo, 'streamer', 'config.pbtxt');
    fs.writeFileSync(config, fs.readFileSync(config, 'utf8').replace('data_type: TYPE_FP32 dims: [ -1 ] } ]\noutput', 'data_type: TYPE_INT32 dims: [ -1 ] } ]\noutput'));
    const first = stubhost(['types', '--model-repository', repo, 'streamer'], work);
    expect(first.status, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/^streamer: wrote /m);
    expect(fs.readFileSync(path.join(repo, 'streamer', 'config.types.ts'), 'utf8')).toMatch(/INPUT: \{ dtype: 'INT32'; shape: \[-1\] \}/);
    expect(stubhost(['types', '--model-repository', repo, 'streamer'], work).stdout).toMatch(/^streamer: up to date: /m);
  }, 60_000);

  it('completes a config-less ONNX model from its file; skips a model whose config has no inputs; leaves its own files alone', () => {
    fs.mkdirSync(path.join(repo, 'bare_onnx', '1'), { recursive: true });
    fs.copyFileSync(ADD_SUB_ONNX, path.join(repo, 'bare_onnx', '1', 'model.onnx'));
    fs.mkdirSync(path.join(repo, 'completes_itself', '1'), { recursive: true });
    fs.writeFileSync(path.join(repo, 'completes_itself', 'config.pbtxt'), 'backend: "typescript"\n');
    fs.writeFileSync(path.join(repo, 'completes_itself', '1', 'model.ts'), '');
    fs.writeFileSync(path.join(repo, 'counter', 'config.types.ts'), 'export type Mine = 1;\n');
    const r = stubhost(['types', '--model-repository', repo], work);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/^bare_onnx: wrote .*bare_onnx\/config\.types\.ts$/m);
    expect(fs.readFileSync(path.join(repo, 'bare_onnx', 'config.types.ts'), 'utf8')).toMatch(/from 1\/model\.onnx[\s\S]*OUTPUT1: \{ dtype: 'FP32'; shape: \[-1, 4\] \}/);
    expect(r.stdout).toMatch(/^completes_itself: skipped: config\.pbtxt declares no inputs or outputs .*list them in the config to get types$/m);
    expect(r.stderr).toMatch(/counter: .*counter\/config\.types\.ts exists and was not written by stubhost types; rename or remove it/);
    expect(fs.readFileSync(path.join(repo, 'counter', 'config.types.ts'), 'utf8')).toBe('export type Mine = 1;\n');
    expect(stubhost(['types', '--model-repository', repo, 'nope'], work)).toMatchObject({ status: 1, stderr: expect.stringMatching(/nope: no model folder/) });
    expect(stubhost(['types', '--batching'], work)).toMatchObject({ status: 2, stderr: expect.stringMatching(/--batching is an option of stubhost init, not of stubhost types/) });
  }, 120_000);
});
