import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  configToJson,
  inputSpecs,
  isDecoupled,
  loadModelConfig,
  modelParameter,
  outputSpecs,
  readModelConfig,
} from '../src/config/load.js';
import { StubhostError } from '../src/errors.js';

const FIXTURES = join(import.meta.dirname, 'fixtures', 'configs');
let root: string;

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'stubhost-config-'));
});
afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

/** A model folder under the temp root with the given files (path → content). */
function model(name: string, files: Record<string, string>): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  for (const [rel, content] of Object.entries(files)) {
    mkdirSync(join(dir, rel, '..'), { recursive: true });
    writeFileSync(join(dir, rel), content);
  }
  return dir;
}

/** A copy of a fixture model folder, with a version folder holding model.ts. */
function fromFixture(fixture: string, edit?: (text: string) => string): string {
  const dir = join(root, fixture);
  rmSync(dir, { recursive: true, force: true });
  cpSync(join(FIXTURES, fixture), dir, { recursive: true });
  mkdirSync(join(dir, '1'), { recursive: true });
  writeFileSync(join(dir, '1', 'model.ts'), 'export default class {}\n');
  if (edit) {
    const file = join(dir, 'config.pbtxt');
    writeFileSync(file, edit(readFileSync(file, 'utf8')));
  }
  return dir;
}

function loadError(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(StubhostError);
    expect((err as StubhostError).code).toBe('STUBHOST_CONFIG');
    return (err as StubhostError).message;
  }
  throw new Error('expected an error');
}

const quiet = { onWarning: () => {} };

describe('loadModelConfig on Triton examples', () => {
  it("add_sub: python_backend's config with our backend, defaults filled like Triton", () => {
    const dir = fromFixture('add_sub', (t) => t.replace('backend: "python"', 'backend: "typescript"'));
    const c = loadModelConfig(dir, quiet);
    expect(c.name).toBe('add_sub');
    expect(c.backend).toBe('typescript');
    expect(c.max_batch_size).toBe(0);
    expect(c.instance_group).toEqual([
      { name: 'add_sub_0', kind: 'KIND_CPU', count: 1, gpus: [], secondary_devices: [], profile: [], passive: false, host_policy: '' },
    ]);
    expect(inputSpecs(c)).toEqual([
      { name: 'INPUT0', datatype: 'FP32', dims: [4] },
      { name: 'INPUT1', datatype: 'FP32', dims: [4] },
    ]);
    expect(outputSpecs(c).map((s) => s.name)).toEqual(['OUTPUT0', 'OUTPUT1']);
  });

  it('add_sub as Triton wrote it: backend "python" is refused with the file and the fix', () => {
    const dir = fromFixture('add_sub');
    expect(loadError(() => loadModelConfig(dir, quiet))).toBe(
      `${join(dir, 'config.pbtxt')}: backend: "python" is not a backend stubhost has; use one of typescript, onnxruntime`,
    );
  });

  it('priority queue policies', () => {
    const c = loadModelConfig(fromFixture('priority_batching'), quiet);
    expect(c.dynamic_batching).toMatchObject({
      preferred_batch_size: [4, 8],
      priority_levels: 2,
      default_priority_level: 2,
      default_queue_policy: { timeout_action: 'DELAY', allow_timeout_override: true, default_timeout_microseconds: 11000000, max_queue_size: 256 },
      priority_queue_policy: { 1: { timeout_action: 'REJECT', allow_timeout_override: true, default_timeout_microseconds: 5000, max_queue_size: 64 } },
    });
    expect(c.instance_group[0]).toMatchObject({ name: 'priority_batching_0', count: 2, kind: 'KIND_CPU' });
    expect(isDecoupled(c)).toBe(false);
  });

  it('sequence batching with control inputs', () => {
    const c = loadModelConfig(fromFixture('dyna_sequence'), quiet);
    const sb = c.sequence_batching!;
    expect(sb.max_sequence_idle_microseconds).toBe(10000000);
    expect(sb.oldest).toEqual({ max_candidate_sequences: 1024, preferred_batch_size: [], max_queue_delay_microseconds: 10000, preserve_ordering: false });
    expect(sb.control_input.find((ci) => ci.name === 'CORRID')!.control[0]).toMatchObject({ kind: 'CONTROL_SEQUENCE_CORRID', data_type: 'TYPE_UINT64' });
    expect(modelParameter(c, 'execute_delay_ms')).toBe('3');
    expect(modelParameter(c, 'missing')).toBeUndefined();
    expect(modelParameter(c, 'toString')).toBeUndefined();
  });

  it('an ensemble: no backend, no instances', () => {
    const c = loadModelConfig(fromFixture('ensemble'), quiet);
    expect(c.platform).toBe('ensemble');
    expect(c.backend).toBe('');
    expect(c.instance_group).toEqual([]);
    expect(c.ensemble_scheduling!.step.map((s) => s.model_name)).toEqual(['image_preprocess_nchw_3x224x224_inception', 'resnet50_netdef']);
  });
});

describe('loadModelConfig: files, defaults and inference', () => {
  it('reads config.json; config.pbtxt wins when both exist, with a warning', () => {
    const dir = model('both', {
      'config.pbtxt': 'backend: "typescript" max_batch_size: 2',
      'config.json': '{"backend": "typescript", "max_batch_size": 4}',
    });
    const warnings: string[] = [];
    const r = readModelConfig(dir, { onWarning: (w) => warnings.push(w) });
    expect(r.config.max_batch_size).toBe(2);
    expect(r.file).toBe(join(dir, 'config.pbtxt'));
    expect(warnings).toEqual([`${dir}: both config.pbtxt and config.json exist; using config.pbtxt and ignoring config.json`]);
    expect(r.warnings).toEqual(warnings);

    const json = model('jsononly', { 'config.json': '{"backend": "typescript", "max_batch_size": "4", "input": [{"name": "A", "data_type": "TYPE_INT64", "dims": ["-1"]}]}' });
    const j = readModelConfig(json, quiet);
    expect(j.file).toBe(join(json, 'config.json'));
    expect(j.config.max_batch_size).toBe(4);
    expect(j.config.input[0]!.dims).toEqual([-1]);
  });

  it('missing config: allowed, auto-complete flagged, backend from the version folder', () => {
    const ts = readModelConfig(model('auto_ts', { '1/model.ts': '', '3/model.ts': '' }), quiet);
    expect(ts.autoComplete).toBe(true);
    expect(ts.file).toBeUndefined();
    expect(ts.config).toMatchObject({ name: 'auto_ts', backend: 'typescript', platform: '', max_batch_size: 0, version_policy: { latest: { num_versions: 1 } } });
    const onnx = loadModelConfig(model('auto_onnx', { '1/model.onnx': 'x' }), quiet);
    expect(onnx).toMatchObject({ backend: 'onnxruntime', platform: 'onnxruntime_onnx' });
  });

  it('backend inferred from platform and default_model_filename', () => {
    expect(loadModelConfig(model('plat', { 'config.pbtxt': 'platform: "onnxruntime_onnx"' }), quiet).backend).toBe('onnxruntime');
    expect(loadModelConfig(model('dmf', { 'config.pbtxt': 'default_model_filename: "net.onnx"' }), quiet).backend).toBe('onnxruntime');
  });

  it('no backend and nothing to infer it from', () => {
    const none = model('nothing', { '1/readme.txt': '' });
    expect(loadError(() => loadModelConfig(none, quiet))).toBe(
      `${none}: has no config.pbtxt or config.json, and no version folder holds model.ts or model.onnx; add a config naming the backend, or a version folder such as 1/model.ts`,
    );
    const cfg = model('nobackend', { 'config.pbtxt': 'max_batch_size: 1' });
    expect(loadError(() => loadModelConfig(cfg, quiet))).toBe(
      `${join(cfg, 'config.pbtxt')}: backend: is missing and no version folder holds model.ts or model.onnx; set backend: "typescript" or "onnxruntime", or platform: "ensemble"`,
    );
  });

  it('the name must match the folder', () => {
    const dir = model('right', { 'config.pbtxt': 'name: "wrong" backend: "typescript"' });
    expect(loadError(() => loadModelConfig(dir, quiet))).toBe(
      `${join(dir, 'config.pbtxt')}: name: "wrong" does not match the model folder "right"; use "right" or leave name out`,
    );
  });

  it('instance groups: KIND_AUTO becomes CPU, count 0 becomes 1, names filled', () => {
    const dir = model('groups', { 'config.pbtxt': 'backend: "typescript" instance_group [ { kind: KIND_AUTO }, { name: "mine" count: 3 kind: KIND_CPU } ]' });
    expect(loadModelConfig(dir, quiet).instance_group.map((g) => [g.name, g.kind, g.count])).toEqual([
      ['groups_0', 'KIND_CPU', 1],
      ['mine', 'KIND_CPU', 3],
    ]);
  });

  it('sequence batching defaults: 1 s idle, direct strategy', () => {
    const dir = model('seq', { 'config.pbtxt': 'backend: "typescript" sequence_batching { }' });
    expect(loadModelConfig(dir, quiet).sequence_batching).toMatchObject({
      max_sequence_idle_microseconds: 1000000,
      direct: { max_queue_delay_microseconds: 0, minimum_slot_utilization: 0 },
    });
  });

  it('the load API override replaces the file', () => {
    const dir = model('over', { 'config.pbtxt': 'backend: "typescript" max_batch_size: 2' });
    const r = readModelConfig(dir, { ...quiet, override: '{"backend": "typescript", "max_batch_size": 7}' });
    expect(r.config.max_batch_size).toBe(7);
    expect(r.autoComplete).toBe(false);
    expect(loadError(() => loadModelConfig(dir, { ...quiet, override: '{"backend": "typescript", "max_batch_size": -7}' }))).toBe(
      `${dir} (config override of the load request): max_batch_size: -7 is not allowed; use 0 (no batching) or a positive batch size`,
    );
  });
});

describe('loadModelConfig errors name the file, the field and the fix', () => {
  it('the example of the brief', () => {
    const dir = model('add_sub2', { 'config.pbtxt': 'backend: "typescript"\ninput [ { name: "INPUT0" data_type: TYPE_FLOAT dims: [ 4 ] } ]' });
    expect(loadError(() => loadModelConfig(dir, quiet))).toMatch(
      new RegExp(`^${escape(join(dir, 'config.pbtxt'))}: input\\[0\\]\\.data_type: "TYPE_FLOAT" is not a data type; use one of TYPE_BOOL, TYPE_UINT8, `),
    );
  });

  it('dynamic_batching.preferred_batch_size[1]', () => {
    const dir = model('pbs', { 'config.pbtxt': 'backend: "typescript" max_batch_size: 4 dynamic_batching { preferred_batch_size: [ 2, 8 ] }' });
    expect(loadError(() => loadModelConfig(dir, quiet))).toBe(
      `${join(dir, 'config.pbtxt')}: dynamic_batching.preferred_batch_size[1]: 8 is larger than max_batch_size 4; use a size from 1 to 4`,
    );
  });

  it('pbtxt syntax errors carry line and column', () => {
    const dir = model('syntax', { 'config.pbtxt': 'backend: "typescript"\nmax_batch_size 4\n' });
    expect(loadError(() => loadModelConfig(dir, quiet))).toBe(`${join(dir, 'config.pbtxt')}:2:16: expected ':' or '{' after field "max_batch_size", found '4'`);
  });

  it('JSON syntax errors carry line and column', () => {
    const dir = model('badjson', { 'config.json': '{\n  "backend": "typescript",\n  "max_batch_size": 4,\n}' });
    expect(loadError(() => loadModelConfig(dir, quiet))).toMatch(new RegExp(`^${escape(join(dir, 'config.json'))}:4:1: is not valid JSON`));
    const arr = model('arrjson', { 'config.json': '[1]' });
    expect(loadError(() => loadModelConfig(arr, quiet))).toBe(`${join(arr, 'config.json')}: must hold a JSON object { "name": ..., ... }; found a list`);
  });

  it('unknown fields in a pbtxt', () => {
    const dir = model('unknown', { 'config.pbtxt': 'backend: "typescript" max_batch_sise: 4' });
    expect(loadError(() => loadModelConfig(dir, quiet))).toMatch(
      new RegExp(`^${escape(join(dir, 'config.pbtxt'))}: max_batch_sise: is not a field of the model config; allowed fields: name, platform, backend,`),
    );
  });
});

describe('configToJson: what Triton\'s /v2/models/{m}/config returns', () => {
  it('add_sub', () => {
    const dir = fromFixture('add_sub', (t) => t.replace('backend: "python"', 'backend: "typescript"'));
    const json = configToJson(loadModelConfig(dir, quiet));
    const io = (name: string) => ({ name, data_type: 'TYPE_FP32', format: 'FORMAT_NONE', dims: [4], is_shape_tensor: false, allow_ragged_batch: false, optional: false, is_non_linear_format_io: false });
    const out = (name: string) => ({ name, data_type: 'TYPE_FP32', dims: [4], label_filename: '', is_shape_tensor: false, is_non_linear_format_io: false });
    expect(json).toEqual({
      name: 'add_sub',
      platform: '',
      backend: 'typescript',
      runtime: '',
      version_policy: { latest: { num_versions: 1 } },
      max_batch_size: 0,
      input: [io('INPUT0'), io('INPUT1')],
      output: [out('OUTPUT0'), out('OUTPUT1')],
      batch_input: [],
      batch_output: [],
      optimization: { priority: 'PRIORITY_DEFAULT', input_pinned_memory: { enable: true }, output_pinned_memory: { enable: true }, gather_kernel_buffer_threshold: 0, eager_batching: false },
      instance_group: [{ name: 'add_sub_0', kind: 'KIND_CPU', count: 1, gpus: [], secondary_devices: [], profile: [], passive: false, host_policy: '' }],
      default_model_filename: '',
      cc_model_filenames: {},
      metric_tags: {},
      parameters: {},
      model_warmup: [],
    });
    // Triton's key order (model_config.proto declaration order).
    expect(Object.keys(json).slice(0, 6)).toEqual(['name', 'platform', 'backend', 'runtime', 'version_policy', 'max_batch_size']);
  });

  it('dynamic batching, sequence batching and ensembles', () => {
    const db = configToJson(loadModelConfig(fromFixture('priority_batching'), quiet));
    expect(db.dynamic_batching).toEqual({
      preferred_batch_size: [4, 8],
      max_queue_delay_microseconds: 100,
      preserve_ordering: false,
      priority_levels: 2,
      default_priority_level: 2,
      default_queue_policy: { timeout_action: 'DELAY', default_timeout_microseconds: 11000000, allow_timeout_override: true, max_queue_size: 256 },
      priority_queue_policy: { 1: { timeout_action: 'REJECT', default_timeout_microseconds: 5000, allow_timeout_override: true, max_queue_size: 64 } },
    });
    expect(db.model_transaction_policy).toEqual({ decoupled: false });

    const sb = configToJson(loadModelConfig(fromFixture('dyna_sequence'), quiet)).sequence_batching as Record<string, any>;
    expect(sb.max_sequence_idle_microseconds).toBe(10000000);
    expect(sb.control_input[3]).toEqual({
      name: 'CORRID',
      control: [{ kind: 'CONTROL_SEQUENCE_CORRID', int32_false_true: [], fp32_false_true: [], bool_false_true: [], data_type: 'TYPE_UINT64' }],
    });
    expect(sb.control_input[0].control[0].data_type).toBe('TYPE_INVALID');

    const ens = configToJson(loadModelConfig(fromFixture('ensemble'), quiet));
    expect((ens.ensemble_scheduling as any).step[0]).toEqual({
      model_name: 'image_preprocess_nchw_3x224x224_inception',
      model_version: -1,
      input_map: { INPUT: 'INPUT' },
      output_map: { OUTPUT: 'preprocessed_image' },
      model_namespace: '',
    });
    expect(ens.instance_group).toEqual([]);
  });

  it('the JSON reads back to the same config', () => {
    const c = loadModelConfig(fromFixture('dyna_sequence'), quiet);
    const dir = model('dyna_sequence_json', { 'config.json': JSON.stringify({ ...configToJson(c), name: 'dyna_sequence_json' }) });
    const again = loadModelConfig(dir, quiet);
    expect({ ...again, name: c.name, instance_group: c.instance_group }).toEqual({ ...c, instance_group: c.instance_group });
  });
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
