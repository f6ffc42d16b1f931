/**
 * Black box: configs as Triton users write them, served by the CLI from a temp repository.
 * config.pbtxt spelled every way the text format allows (comments, `< >` messages, repeated
 * fields given one by one and as lists, `,`/`;` separators, single quotes), Triton's own
 * python-backend add_sub config (a clear load error naming the file and field; the other models
 * serve), model_warmup with `input_data_file` (read from the model's warmup/ folder, as Triton
 * does; it was silently replaced by zeros) and warmup samples that do not match the inputs (a
 * config error naming model_warmup; it used to reach the model as a crash), a model.onnx with no
 * config, version_policy specific with versions in the URL, and --strict-readiness false.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADD_SUB_TS, makeRepository, postJson, shmFilesOf, startCli, type CliServer } from './helpers/blackbox.js';

const ONNX = path.resolve(import.meta.dirname, 'fixtures/onnx/add_sub.onnx');

/** Returns, for every request, the INPUT0 data the warmup request carried (copied at warmup). */
const WARM_TS = `import { InferenceRequest, InferenceResponse, Tensor } from 'stubhost';
export default class Warm {
  seen: Float32Array | undefined;
  async execute(requests: InferenceRequest[]) {
    return requests.map((r) => {
      const x = r.input('INPUT0')!;
      // Warmup: keep what the sample held and echo it (its batch); later requests (batch 1) get it back.
      if (r.requestId.startsWith('warmup')) {
        this.seen = Float32Array.from(x.data as Float32Array);
        return new InferenceResponse({ outputs: [new Tensor('OUTPUT0', Float32Array.from(this.seen), x.shape)] });
      }
      return new InferenceResponse({ outputs: [new Tensor('OUTPUT0', this.seen ?? new Float32Array(0), [1, this.seen?.length ?? 0])] });
    });
  }
}
`;

const TRITON_STYLE = `# Triton's text format, written the many ways Triton accepts it
name: 'add_sub'   # single quotes
backend: "typescript";
max_batch_size: 0,
input < name: "INPUT0" data_type: TYPE_FP32 dims: 4 >   # a message in < >, a repeated field given once
input: { name: "INPUT1", data_type: TYPE_FP32, dims: [ 4 ] }
output [
  { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] },
  { name: "OUTPUT1" data_type: TYPE_FP32 dims: 4 }
]
instance_group { count: 1 kind: KIND_CPU }
parameters { key: "EXECUTION_ENV_PATH" value: { string_value: "$$TRITON_MODEL_DIRECTORY/env.tar.gz" } }
version_policy: { latest: { num_versions: 1 } }
`;

// Triton's python_backend/examples/add_sub/config.pbtxt, verbatim.
const TRITON_PYTHON_ADD_SUB = `name: "py_add_sub"
backend: "python"

input [
  {
    name: "INPUT0"
    data_type: TYPE_FP32
    dims: [ 4 ]
  }
]
input [
  {
    name: "INPUT1"
    data_type: TYPE_FP32
    dims: [ 4 ]
  }
]
output [
  {
    name: "OUTPUT0"
    data_type: TYPE_FP32
    dims: [ 4 ]
  }
]
output [
  {
    name: "OUTPUT1"
    data_type: TYPE_FP32
    dims: [ 4 ]
  }
]

instance_group [{ kind: KIND_CPU }]
`;

const warmConfig = (name: string, mbs: number, warmupInputs: string): string => `
name: "${name}"
backend: "typescript"
max_batch_size: ${mbs}
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 3 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ -1 ] } ]
model_warmup [ { name: "sample" batch_size: 2 ${warmupInputs} } ]
`;
const fileInput = (file: string): string => `inputs { key: "INPUT0" value: { data_type: TYPE_FP32 dims: [ 3 ] input_data_file: "${file}" } }`;

const specificConfig = `backend: "typescript"
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] }, { name: "INPUT1" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] }, { name: "OUTPUT1" data_type: TYPE_FP32 dims: [ 4 ] } ]
version_policy: { specific: { versions: [ 1, 3 ] } }
`;

const repo = makeRepository({
  'add_sub/config.pbtxt': TRITON_STYLE,
  'add_sub/1/model.ts': ADD_SUB_TS,
  'py_add_sub/config.pbtxt': TRITON_PYTHON_ADD_SUB,
  'py_add_sub/1/model.py': 'import triton_python_backend_utils as pb_utils\n',
  'warm_file/config.pbtxt': warmConfig('warm_file', 4, fileInput('input0.bin')),
  'warm_file/warmup/input0.bin': new Uint8Array(new Float32Array([1.5, -2, 3]).buffer),
  'warm_file/1/model.ts': WARM_TS,
  'warm_missing/config.pbtxt': warmConfig('warm_missing', 4, fileInput('nope.bin')),
  'warm_missing/1/model.ts': WARM_TS,
  'warm_short/config.pbtxt': warmConfig('warm_short', 4, fileInput('short.bin')),
  'warm_short/warmup/short.bin': new Uint8Array(8),
  'warm_badname/config.pbtxt': warmConfig('warm_badname', 4, 'inputs { key: "INPUT_0" value: { data_type: TYPE_FP32 dims: [ 3 ] zero_data: true } }'),
  'warm_badname/1/model.ts': WARM_TS,
  'warm_baddims/config.pbtxt': warmConfig('warm_baddims', 4, 'inputs { key: "INPUT0" value: { data_type: TYPE_FP32 dims: [ 5 ] zero_data: true } }'),
  'warm_baddims/1/model.ts': WARM_TS,
  'onnx_nocfg/1/model.onnx': fs.readFileSync(ONNX),
  'specific/config.pbtxt': specificConfig,
  'specific/1/model.ts': ADD_SUB_TS,
  'specific/2/model.ts': ADD_SUB_TS,
  'specific/3/model.ts': ADD_SUB_TS,
});
fs.mkdirSync(path.join(repo.root, 'warm_short/1'));
fs.writeFileSync(path.join(repo.root, 'warm_short/1/model.ts'), WARM_TS);

let s: CliServer;
beforeAll(async () => {
  s = await startCli(repo.root, ['--strict-readiness', 'false']);
}, 40_000);
afterAll(async () => {
  const [code] = await s.stop();
  expect(code).toBe(0);
  expect(shmFilesOf(s.pid)).toEqual([]);
  repo.cleanup();
});

const addSubBody = { inputs: [
  { name: 'INPUT0', shape: [4], datatype: 'FP32', data: [1, 2, 3, 4] },
  { name: 'INPUT1', shape: [4], datatype: 'FP32', data: [1, 1, 1, 1] },
] };

async function index(): Promise<Record<string, { state: string; reason: string; version?: string }[]>> {
  const list = (await postJson(`${s.http}/v2/repository/index`, {})).json as { name: string; state: string; reason: string; version?: string }[];
  const out: Record<string, { state: string; reason: string; version?: string }[]> = {};
  for (const e of list) (out[e.name] ??= []).push(e);
  return out;
}

describe('Triton configs through the CLI', () => {
  it('--strict-readiness false: ready although some models failed; those fail alone', async () => {
    expect((await fetch(`${s.http}/v2/health/ready`)).status).toBe(200);
    const r = await postJson(`${s.http}/v2/models/add_sub/infer`, addSubBody);
    expect(r.status).toBe(200);
    expect(r.json.outputs.map((o: { data: number[] }) => o.data)).toEqual([[2, 3, 4, 5], [0, 1, 2, 3]]);
  });

  it('config.pbtxt in every spelling the text format allows', async () => {
    const cfg = await (await fetch(`${s.http}/v2/models/add_sub/config`)).json();
    expect(cfg.input.map((i: { name: string; dims: number[] }) => [i.name, i.dims])).toEqual([['INPUT0', [4]], ['INPUT1', [4]]]);
    expect(cfg.output.map((o: { dims: number[] }) => o.dims)).toEqual([[4], [4]]);
    expect(cfg.parameters.EXECUTION_ENV_PATH).toEqual({ string_value: '$$TRITON_MODEL_DIRECTORY/env.tar.gz' });
  });

  it("Triton's python-backend add_sub config: a load error naming the file and the field", async () => {
    const [entry] = (await index()).py_add_sub!;
    expect(entry!.state).toBe('UNAVAILABLE');
    expect(entry!.reason).toContain(path.join(repo.root, 'py_add_sub', 'config.pbtxt'));
    expect(entry!.reason).toMatch(/backend: "python" is not a backend stubhost has; use one of typescript, onnxruntime/);
    const r = await postJson(`${s.http}/v2/models/py_add_sub/infer`, addSubBody);
    expect(r.status).toBe(404);
    expect(r.json.error).toMatch(/py_add_sub.*backend: "python"/);
    expect(s.output()).toMatch(/model 'py_add_sub' failed to load/);
  });

  it('model_warmup input_data_file is read from the warmup/ folder and repeated per batch row', async () => {
    const r = await postJson(`${s.http}/v2/models/warm_file/infer`, { inputs: [{ name: 'INPUT0', shape: [1, 3], datatype: 'FP32', data: [0, 0, 0] }] });
    expect(r.status).toBe(200);
    expect(r.json.outputs[0].data).toEqual([1.5, -2, 3, 1.5, -2, 3]);
  });

  it('warmup problems fail the load with a config error naming model_warmup, not a model crash', async () => {
    const idx = await index();
    const reason = (m: string): string => idx[m]![0]!.reason;
    expect(reason('warm_missing')).toMatch(/model_warmup\[0\] 'sample'\.inputs\['INPUT0'\]\.input_data_file: cannot read .*warm_missing\/warmup\/nope\.bin \(ENOENT\)/);
    expect(reason('warm_short')).toMatch(/model_warmup\[0\] 'sample'\.inputs\['INPUT0'\]\.input_data_file: .*8 bytes but shape \[3\] of FP32 needs 12/);
    expect(reason('warm_badname')).toMatch(/model_warmup\[0\] 'sample': unexpected inference input 'INPUT_0' for model 'warm_badname'/);
    expect(reason('warm_baddims')).toMatch(/model_warmup\[0\] 'sample': .*unexpected shape for input 'INPUT0' for model 'warm_baddims'\. Expected \[-1,3\]/);
  });

  it('model.onnx with no config: inputs, outputs and batching completed from the file', async () => {
    const meta = await (await fetch(`${s.http}/v2/models/onnx_nocfg`)).json();
    expect(meta.platform).toBe('onnxruntime_onnx');
    expect(meta.inputs.map((i: { name: string }) => i.name)).toEqual(['INPUT0', 'INPUT1']);
    const r = await postJson(`${s.http}/v2/models/onnx_nocfg/infer`, { inputs: addSubBody.inputs.map((t) => ({ ...t, shape: [1, 4] })) });
    expect(r.status).toBe(200);
    expect(r.json.outputs.find((o: { name: string }) => o.name === 'OUTPUT0').data).toEqual([2, 3, 4, 5]);
  });

  it('version_policy specific: listed versions serve, others are a clear 404, bad versions a 4xx', async () => {
    const idx = await index();
    expect(idx.specific!.map((e) => e.version)).toEqual(['1', '3']);
    const ok = await postJson(`${s.http}/v2/models/specific/versions/3/infer`, addSubBody);
    expect(ok.status).toBe(200);
    expect(ok.json.model_version).toBe('3');
    const latest = await postJson(`${s.http}/v2/models/specific/infer`, addSubBody);
    expect(latest.json.model_version).toBe('3');
    const not = await postJson(`${s.http}/v2/models/specific/versions/2/infer`, addSubBody);
    expect(not.status).toBe(404);
    expect(not.json.error).toMatch(/'specific' version 2 is not found \(loaded: 1, 3\)/);
    expect((await fetch(`${s.http}/v2/models/specific/versions/2/ready`)).status).toBeGreaterThanOrEqual(400);
    for (const v of ['abc', '-1']) {
      const r = await postJson(`${s.http}/v2/models/specific/versions/${v}/infer`, addSubBody);
      expect(r.status, v).toBe(400);
      expect(r.json.error, v).toContain(`'${v}'`);
    }
    // As Triton (std::stol in src/common.cc): digits up to the first non-digit are the version.
    expect((await postJson(`${s.http}/v2/models/specific/versions/3.5/infer`, addSubBody)).json.model_version).toBe('3');
  });
});
