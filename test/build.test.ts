/**
 * The compiled build is what runs: `bin/stubhost.js` loads the host from dist/src, every stub
 * runs dist/stub/main.js, and tsx is loaded only in a stub that loads a model.ts — neither in
 * the host nor in an ONNX model's stub. A model.ts's 'stubhost' is the compiled model API the
 * stub itself uses (one instance, not a second copy compiled from stub/api/*.ts).
 *
 * Seen from inside each process by a module resolve hook (node:module register, through
 * NODE_OPTIONS, which the stubs inherit) that writes every URL it resolves to <pid>.log.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeRepository, postJson, shmFilesOf, startCli, type CliServer } from './helpers/blackbox.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const ROOT_URL = pathToFileURL(ROOT).href;
const ONNX = path.join(ROOT, 'test/fixtures/onnx/add_sub.onnx');

const ADD_SUB_CONFIG = `name: "add_sub"
backend: "typescript"
max_batch_size: 0
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] }, { name: "INPUT1" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] }, { name: "SHARED_API" data_type: TYPE_BOOL dims: [ 1 ] } ]
`;
/** SHARED_API: the inputs the stub built are Tensors of the API this model imported. */
const ADD_SUB_TS = `import { InferenceRequest, InferenceResponse, Tensor } from 'stubhost';
export default class AddSub {
  async execute(requests: InferenceRequest[]) {
    return requests.map((r) => {
      const a = r.input('INPUT0')!;
      const b = r.input('INPUT1')!.data as Float32Array;
      return new InferenceResponse({ outputs: [
        new Tensor('OUTPUT0', (a.data as Float32Array).map((x, i) => x + b[i]!), a.shape),
        new Tensor('SHARED_API', Uint8Array.of(a instanceof Tensor ? 1 : 0), [1], 'BOOL'),
      ] });
    });
  }
}
`;

const HOOKS = `import fs from 'node:fs';
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  fs.appendFileSync(process.env.STUBHOST_TEST_RESOLVE_LOG + '/' + process.pid + '.log', r.url + '\\n');
  return r;
}
`;
const PROBE = `import { register } from 'node:module';
register('./hooks.mjs', import.meta.url);
`;

describe('the compiled build runs, tsx only where model.ts is', () => {
  const repo = makeRepository({
    'add_sub/config.pbtxt': ADD_SUB_CONFIG,
    'add_sub/1/model.ts': ADD_SUB_TS,
    // An ES module (a model.ts in a folder without "type": "module" is CommonJS, and gets a
    // CommonJS copy of the API: a require() cannot share an ES module instance on Node 20).
    'add_sub/package.json': JSON.stringify({ type: 'module' }),
    'add_sub_onnx/1/model.onnx': fs.readFileSync(ONNX),
  });
  const probeDir = fs.mkdtempSync(path.join(os.tmpdir(), 'stubhost-probe-'));
  const logDir = path.join(probeDir, 'logs');
  let server: CliServer;
  /** pid → the URLs that process resolved. */
  const resolved = new Map<number, string[]>();
  let sharedApi: unknown;

  beforeAll(async () => {
    fs.mkdirSync(logDir);
    fs.writeFileSync(path.join(probeDir, 'hooks.mjs'), HOOKS);
    fs.writeFileSync(path.join(probeDir, 'probe.mjs'), PROBE);
    server = await startCli(repo.root, [], {
      env: { NODE_OPTIONS: `--import=${pathToFileURL(path.join(probeDir, 'probe.mjs')).href}`, STUBHOST_TEST_RESOLVE_LOG: logDir },
    });
    // Both models answer: the ONNX stub and the TypeScript stub have loaded all they load.
    // (The ONNX file batches: its config, completed from the file, has max_batch_size > 0.)
    for (const [model, shape] of [['add_sub', [4]], ['add_sub_onnx', [1, 4]]] as const) {
      const body = { inputs: [
        { name: 'INPUT0', shape, datatype: 'FP32', data: [1, 2, 3, 4] },
        { name: 'INPUT1', shape, datatype: 'FP32', data: [1, 1, 1, 1] },
      ] };
      const r = await postJson(`${server.http}/v2/models/${model}/infer`, body);
      expect(r.status, r.text).toBe(200);
      expect(r.json.outputs.find((o: { name: string }) => o.name === 'OUTPUT0').data).toEqual([2, 3, 4, 5]);
      if (model === 'add_sub') sharedApi = r.json.outputs.find((o: { name: string }) => o.name === 'SHARED_API').data[0];
    }
    for (const f of fs.readdirSync(logDir)) resolved.set(Number(f.replace('.log', '')), fs.readFileSync(path.join(logDir, f), 'utf8').split('\n').filter(Boolean));
  }, 60_000);

  afterAll(async () => {
    const [code] = (await server?.stop()) ?? [0];
    expect(code).toBe(0);
    expect(shmFilesOf(server.pid)).toEqual([]);
    repo.cleanup();
    fs.rmSync(probeDir, { recursive: true, force: true });
  }, 30_000);

  /** Our own modules a process resolved (not node_modules), relative to the package root. */
  const own = (urls: string[]): string[] => urls.filter((u) => u.startsWith(`${ROOT_URL}/`) && !u.includes('/node_modules/')).map((u) => u.slice(ROOT_URL.length + 1));
  const usesTsx = (urls: string[]): boolean => urls.some((u) => u.includes('/node_modules/tsx/'));
  const stubOf = (marker: string): string[] => {
    const found = [...resolved.entries()].filter(([pid, urls]) => pid !== server.pid && urls.some((u) => u.includes(marker)));
    expect(found, `one stub resolved ${marker}`).toHaveLength(1);
    return found[0]![1];
  };

  it('the host: bin/stubhost.js loads dist/src, no TypeScript source and no tsx', () => {
    const host = resolved.get(server.pid)!;
    expect(own(host)).toContain('dist/src/cli.js');
    expect(own(host).filter((f) => !f.startsWith('dist/') && f !== 'bin/stubhost.js')).toEqual([]);
    expect(usesTsx(host)).toBe(false);
  });

  it('an ONNX model\'s stub runs dist/stub and never loads tsx', () => {
    const stub = stubOf('/dist/stub/backends/onnxruntime.js');
    // (The health thread's and the package hooks' plain JavaScript is read from stub/: tsc does not copy it.)
    expect(own(stub).filter((f) => !f.startsWith('dist/') && f !== 'stub/health-worker.mjs' && !f.startsWith('stub/shipped-packages'))).toEqual([]);
    expect(usesTsx(stub)).toBe(false);
  });

  it('a model.ts stub runs dist/stub, loads tsx for the model, and its \'stubhost\' is the compiled API', () => {
    const stub = stubOf(`${pathToFileURL(repo.root).href}/add_sub/1/model.ts`);
    expect(usesTsx(stub)).toBe(true);
    // One instance of the model API in the stub: the model's Tensor is the stub's Tensor.
    expect(sharedApi).toBe(true);
    expect(own(stub).filter((f) => !f.startsWith('dist/') && f !== 'stub/health-worker.mjs' && !f.startsWith('stub/shipped-packages'))).toEqual([]);
  });
});
