/**
 * How a model.ts is loaded: imports resolve from the model's own folder (its package.json and
 * node_modules, Triton's per-model execution environment), and `import ... from 'stubhost'`
 * works both for an ESM model (package.json "type": "module") and for a model in a folder with
 * no package.json, which tsx compiles as CommonJS.
 *
 * The fixtures are copied to a temporary repository outside this package (so this package's
 * package.json does not decide the module kind) and given node_modules there.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { childPids, http, shmLeftovers, startTestServer, tempRepository, waitFor, type TestServer } from './helpers/server.js';

const DEPS = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'models', 'stub', 'deps');
const read = (rel: string) => fs.readFileSync(path.join(DEPS, rel));

const repo = tempRepository({
  esm_deps: {
    'config.pbtxt': read('esm_deps/config.pbtxt'),
    'package.json': read('esm_deps/package.json'),
    '1/model.ts': read('esm_deps/1/model.ts'),
    'node_modules/tiny-local/package.json': JSON.stringify({ name: 'tiny-local', version: '1.0.0', type: 'module', exports: './index.js' }),
    'node_modules/tiny-local/index.js': "export const shout = (s) => `${s.toUpperCase()}!`;\nexport const origin = 'from esm_deps/node_modules';\n",
  },
  cjs_model: {
    'config.pbtxt': read('cjs_model/config.pbtxt'),
    '1/model.ts': read('cjs_model/1/model.ts'),
    'node_modules/tiny-cjs/package.json': JSON.stringify({ name: 'tiny-cjs', version: '1.0.0', main: 'index.js' }),
    'node_modules/tiny-cjs/index.js': "module.exports = { reverse: (s) => [...s].reverse().join(''), origin: 'from cjs_model/node_modules' };\n",
  },
});
let server: TestServer;

beforeAll(async () => {
  server = await startTestServer({ modelRepository: repo.root });
  expect([...server.failed]).toEqual([]);
}, 60_000);

afterAll(async () => {
  await server?.close();
  repo.cleanup();
  expect(await waitFor(() => childPids().length === 0, 3000)).toBe(true);
  expect(shmLeftovers()).toEqual([]);
});

async function run(model: string, text: string[]): Promise<{ out: string[]; kind: string }> {
  const r = await http(`${server.url}/v2/models/${model}/infer`, 'POST', { inputs: [{ name: 'TEXT', datatype: 'BYTES', shape: [text.length], data: text }] });
  expect(r.status, r.text).toBe(200);
  const get = (name: string) => r.json.outputs.find((o: { name: string }) => o.name === name).data;
  return { out: get('OUT'), kind: get('MODULE_KIND')[0] };
}

describe('model module loading', () => {
  it('an ESM model with its own package.json imports a package from its own node_modules', async () => {
    expect(fs.existsSync(path.join(repo.root, '..', 'node_modules', 'tiny-local'))).toBe(false);
    expect(await run('esm_deps', ['hi', 'there'])).toEqual({ out: ['HI! from esm_deps/node_modules', 'THERE! from esm_deps/node_modules'], kind: 'esm' });
  });

  it('a model in a folder without package.json runs as CommonJS, with stubhost and its own node_modules', async () => {
    expect(await run('cjs_model', ['abc'])).toEqual({ out: ['cba from cjs_model/node_modules'], kind: 'commonjs' });
    const empty = await http(`${server.url}/v2/models/cjs_model/infer`, 'POST', { inputs: [{ name: 'TEXT', datatype: 'BYTES', shape: [0], data: [] }] });
    expect([empty.status, empty.json.error]).toEqual([400, 'TEXT is empty']);
  });
});
