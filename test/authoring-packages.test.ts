/**
 * Model code anywhere on disk imports the packages stubhost ships (onnxruntime-node) without
 * installing them: ESM and CommonJS model folders, the default import and the namespace import.
 * A model folder with its own copy of the package gets its own copy. The repository is a
 * temporary folder outside the project, so nothing resolves through the project's node_modules.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { childPids, http, startRepositoryServer, waitFor, type RepositoryServer } from './helpers/server.js';
import { ROOT } from './helpers/cli.js';

const ADD_SUB = fs.readFileSync(path.join(ROOT, 'test', 'fixtures', 'onnx', 'add_sub.onnx'));

/** Runs add_sub.onnx with the onnxruntime-node the import gives, and says which import style it was. */
const model = (importLine: string) => `${importLine}
import path from 'node:path';
import { InferenceResponse, Tensor } from 'stubhost';
import type { InferenceRequest, ModelInitArgs } from 'stubhost';

export default class {
  private session?: ort.InferenceSession;
  async initialize(args: ModelInitArgs) {
    if ((ort as unknown as { fake?: boolean }).fake) return;
    this.session = await ort.InferenceSession.create(path.join(args.modelRepository, args.modelName, '1', 'add_sub.onnx'));
  }
  async execute(requests: InferenceRequest[]) {
    const out: InferenceResponse[] = [];
    for (const r of requests) {
      if (!this.session) {
        out.push(new InferenceResponse({ outputs: [new Tensor('OUT', Float32Array.of(-1, -1, -1, -1), [1, 4])] }));
        continue;
      }
      const x = (r.input('X')!.data as Float32Array).slice();
      const result = await this.session.run({ INPUT0: new ort.Tensor('float32', x, [1, 4]), INPUT1: new ort.Tensor('float32', x.slice(), [1, 4]) });
      out.push(new InferenceResponse({ outputs: [new Tensor('OUT', result.OUTPUT0!.data as Float32Array, [1, 4])] }));
    }
    return out;
  }
}
`;
const CONFIG = `backend: "typescript"
max_batch_size: 0
input [ { name: "X" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "OUT" data_type: TYPE_FP32 dims: [ 1, 4 ] } ]
`;
const folder = (importLine: string, extra: Record<string, string> = {}) => ({ 'config.pbtxt': CONFIG, '1/model.ts': model(importLine), '1/add_sub.onnx': ADD_SUB, ...extra });

let server: RepositoryServer;

beforeAll(async () => {
  server = await startRepositoryServer({
    esm_default: folder("import ort from 'onnxruntime-node';", { 'package.json': JSON.stringify({ type: 'module' }) }),
    esm_namespace: folder("import * as ort from 'onnxruntime-node';", { 'package.json': JSON.stringify({ type: 'module' }) }),
    // What `npm init -y` writes: the default import used to be undefined here.
    cjs_default: folder("import ort from 'onnxruntime-node';", { 'package.json': JSON.stringify({ name: 'cjs-default', version: '1.0.0', type: 'commonjs' }) }),
    no_package_json: folder("import * as ort from 'onnxruntime-node';"),
    own_copy: folder("import ort from 'onnxruntime-node';", {
      'package.json': JSON.stringify({ type: 'module' }),
      'node_modules/onnxruntime-node/package.json': JSON.stringify({ name: 'onnxruntime-node', version: '0.0.0', main: 'index.js' }),
      'node_modules/onnxruntime-node/index.js': 'module.exports = { fake: true };\n',
    }),
  });
}, 120_000);

afterAll(async () => {
  expect(await server?.stop()).toEqual([]);
  expect(await waitFor(() => childPids().length === 0, 5000)).toBe(true);
});

async function run(model: string): Promise<number[]> {
  const r = await http(`${server.url}/v2/models/${model}/infer`, 'POST', { inputs: [{ name: 'X', shape: [4], datatype: 'FP32', data: [1, 2, 3, 4] }] });
  expect(r.status, r.text).toBe(200);
  return r.json.outputs[0].data;
}

describe('packages stubhost ships, imported by models outside the project', () => {
  it('every model loaded', () => {
    expect(path.relative(ROOT, server.root).startsWith('..')).toBe(true);
    expect([...server.failed]).toEqual([]);
  });

  it.each(['esm_default', 'esm_namespace', 'cjs_default', 'no_package_json'])('%s runs onnxruntime-node', async (model) => {
    expect(await run(model)).toEqual([2, 4, 6, 8]);
  });

  it('a model folder with its own onnxruntime-node gets its own', async () => {
    expect(await run('own_copy')).toEqual([-1, -1, -1, -1]);
  });
});
