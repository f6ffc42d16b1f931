import { describe, expect, it } from 'vitest';
import { validateModelConfig } from '../src/config/load.js';
import { MODEL_CONFIG_SHAPE, ModelConfigSchema } from '../src/config/schema.js';
import { StubhostError } from '../src/errors.js';

const SRC = 'models/m/config.pbtxt';

/** A valid base to vary. */
function base(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name: 'm',
    backend: 'typescript',
    max_batch_size: 8,
    input: [{ name: 'IN', data_type: 'TYPE_FP32', dims: [4] }],
    output: [{ name: 'OUT', data_type: 'TYPE_FP32', dims: [4] }],
    ...extra,
  };
}

function errors(raw: unknown): string[] {
  try {
    validateModelConfig(raw, SRC);
  } catch (err) {
    expect(err).toBeInstanceOf(StubhostError);
    expect((err as StubhostError).code).toBe('STUBHOST_CONFIG');
    return (err as StubhostError).message.split('\n');
  }
  throw new Error('expected the config to be refused');
}

/** The one error line for `raw`, without the source prefix (which every line must carry). */
function error(raw: unknown): string {
  const lines = errors(raw);
  for (const l of lines) expect(l.startsWith(`${SRC}: `)).toBe(true);
  expect(lines).toHaveLength(1);
  return lines[0]!.slice(SRC.length + 2);
}

describe('schema: types and defaults', () => {
  it('fills the context-free defaults as Triton prints them', () => {
    const c = validateModelConfig(base(), SRC);
    expect(c.input[0]).toEqual({
      name: 'IN', data_type: 'TYPE_FP32', format: 'FORMAT_NONE', dims: [4],
      is_shape_tensor: false, allow_ragged_batch: false, optional: false, is_non_linear_format_io: false,
    });
    expect(c.output[0]).toEqual({ name: 'OUT', data_type: 'TYPE_FP32', dims: [4], label_filename: '', is_shape_tensor: false, is_non_linear_format_io: false });
    expect(c.version_policy).toEqual({ latest: { num_versions: 1 } });
    expect(c.optimization).toEqual({
      priority: 'PRIORITY_DEFAULT', input_pinned_memory: { enable: true }, output_pinned_memory: { enable: true },
      gather_kernel_buffer_threshold: 0, eager_batching: false,
    });
    expect(c.parameters).toEqual({});
    expect(c.model_warmup).toEqual([]);
    expect(c.dynamic_batching).toBeUndefined();
  });

  it('accepts int64 as strings and enums by number, as protobuf JSON does', () => {
    const c = validateModelConfig(
      base({
        max_batch_size: '16',
        input: [{ name: 'IN', data_type: 11, dims: ['-1', '3'] }],
        dynamic_batching: { max_queue_delay_microseconds: '100', preferred_batch_size: ['4'] },
        instance_group: [{ kind: 2, count: '3' }],
      }),
      SRC,
    );
    expect(c.max_batch_size).toBe(16);
    expect(c.input[0]!.data_type).toBe('TYPE_FP32');
    expect(c.input[0]!.dims).toEqual([-1, 3]);
    expect(c.dynamic_batching!.max_queue_delay_microseconds).toBe(100);
    expect(c.instance_group[0]).toMatchObject({ kind: 'KIND_CPU', count: 3 });
  });

  it('accepts every scheduling and policy field of the brief', () => {
    const c = validateModelConfig(
      base({
        version_policy: { specific: { versions: [1, '3'] } },
        instance_group: [{ name: 'g', count: 2, kind: 'KIND_CPU', rate_limiter: { resources: [{ name: 'R1', global: true, count: 2 }], priority: 2 } }],
        sequence_batching: {
          direct: {},
          max_sequence_idle_microseconds: 5000000,
          control_input: [{ name: 'S', control: [{ kind: 'CONTROL_SEQUENCE_START', bool_false_true: [false, true] }] }],
          state: [{ input_name: 'si', output_name: 'so', data_type: 'TYPE_INT32', dims: [-1], initial_state: [{ data_type: 'TYPE_INT32', dims: [0], zero_data: true, name: 'z' }] }],
        },
        model_transaction_policy: { decoupled: true },
        parameters: { k: { string_value: 'v' } },
        model_warmup: [{ name: 'w', batch_size: 2, count: 1, inputs: { IN: { data_type: 'TYPE_FP32', dims: [4], random_data: true } } }],
      }),
      SRC,
    );
    expect(c.version_policy).toEqual({ specific: { versions: [1, 3] } });
    expect(c.instance_group[0]!.rate_limiter).toEqual({ resources: [{ name: 'R1', global: true, count: 2 }], priority: 2 });
    expect(c.sequence_batching!.state[0]!.initial_state[0]!.dims).toEqual([0]);
    expect(c.model_warmup[0]!.inputs.IN!.random_data).toBe(true);
  });

  it('is idempotent: a validated config validates to itself', () => {
    const c = validateModelConfig(base({ dynamic_batching: { preferred_batch_size: [4] } }), SRC);
    expect(validateModelConfig(c, SRC)).toEqual(c);
  });

  it('derives the parser shape from the schema', () => {
    expect(MODEL_CONFIG_SHAPE.input).toMatchObject({ repeated: true, message: { dims: { repeated: true } } });
    expect(MODEL_CONFIG_SHAPE.parameters).toMatchObject({ map: true });
    expect(MODEL_CONFIG_SHAPE.dynamic_batching!.message!.priority_queue_policy).toMatchObject({ map: true });
    expect(MODEL_CONFIG_SHAPE.ensemble_scheduling!.message!.step!.message!.input_map).toEqual({ map: true });
    expect(MODEL_CONFIG_SHAPE.max_batch_size).toEqual({});
    expect(ModelConfigSchema.safeParse(base()).success).toBe(true);
  });
});

describe('schema: field errors name the path, what was found and what is allowed', () => {
  it('data types', () => {
    expect(error(base({ input: [{ name: 'IN', data_type: 'TYPE_FLOAT', dims: [4] }] }))).toBe(
      'input[0].data_type: "TYPE_FLOAT" is not a data type; use one of TYPE_BOOL, TYPE_UINT8, TYPE_UINT16, TYPE_UINT32, TYPE_UINT64, TYPE_INT8, TYPE_INT16, TYPE_INT32, TYPE_INT64, TYPE_FP16, TYPE_BF16, TYPE_FP32, TYPE_FP64, TYPE_STRING',
    );
    // TYPE_INVALID is protobuf's "unset" (Triton prints it for unset types): missing, not malformed.
    expect(error(base({ output: [{ name: 'OUT', data_type: 0, dims: [4] }] }))).toMatch(/^output\[0\]\.data_type: is missing; use one of TYPE_BOOL/);
    expect(error(base({ output: [{ name: 'OUT', data_type: 'TYPE_INVALID', dims: [4] }] }))).toMatch(/^output\[0\]\.data_type: is missing/);
    expect(error(base({ output: [{ name: 'OUT', data_type: 99, dims: [4] }] }))).toMatch(/^output\[0\]\.data_type: 99 is not a data type/);
  });

  it('unknown fields list the allowed ones', () => {
    expect(error(base({ max_batch_sise: 4 }))).toMatch(/^max_batch_sise: is not a field of the model config; allowed fields: name, platform, backend, runtime, version_policy, max_batch_size, input,/);
    expect(error(base({ dynamic_batching: { preferred_batch_size: [4], foo: 1 } }))).toBe(
      'dynamic_batching.foo: is not a field of dynamic_batching; allowed fields: preferred_batch_size, max_queue_delay_microseconds, preserve_ordering, priority_levels, default_priority_level, default_queue_policy, priority_queue_policy',
    );
    expect(error(base({ input: [{ name: 'IN', data_type: 'TYPE_FP32', dims: [4], a: 1, b: 2 }] }))).toMatch(/^input\[0\]: unknown fields "a", "b" in an input; allowed fields: name, data_type,/);
  });

  it('wrong value types', () => {
    expect(error(base({ max_batch_size: 'eight' }))).toBe('max_batch_size: "eight" is not a batch size; use an integer from -2147483648 to 2147483647');
    expect(error(base({ max_batch_size: 1.5 }))).toMatch(/^max_batch_size: 1.5 is not a batch size/);
    expect(error(base({ name: 3 }))).toBe('name: expected a string, found 3');
    expect(error(base({ input: { name: 'IN' } }))).toBe('input: expected a list, found a message');
    expect(error(base({ model_transaction_policy: { decoupled: 'yes' } }))).toBe('model_transaction_policy.decoupled: expected true or false, found "yes"');
    expect(error(base({ dynamic_batching: 5 }))).toBe('dynamic_batching: expected dynamic_batching (a message { ... }), found 5');
    expect(error(base({ parameters: [] }))).toBe('parameters: expected a map { "key": value, ... }, found a list');
    expect(error(base({ parameters: { 'a b': { value: 'x' } } }))).toMatch(/^parameters\["a b"\]\.value: is not a field of a model parameter; allowed fields: string_value$/);
    expect(error(base({ instance_group: [{ kind: 'CPU' }] }))).toBe('instance_group[0].kind: "CPU" is not an instance kind; use one of KIND_AUTO, KIND_GPU, KIND_CPU, KIND_MODEL');
    expect(error(base({ dynamic_batching: { default_queue_policy: { timeout_action: 'DROP' } } }))).toBe(
      'dynamic_batching.default_queue_policy.timeout_action: "DROP" is not a timeout action; use one of REJECT, DELAY',
    );
  });

  it('dims: -1 only as a wildcard, never 0', () => {
    expect(error(base({ input: [{ name: 'IN', data_type: 'TYPE_FP32', dims: [4, 0] }] }))).toBe(
      'input[0].dims[1]: 0 is not a dimension; use an integer >= 1, or -1 for a variable-size dimension',
    );
    expect(error(base({ output: [{ name: 'OUT', data_type: 'TYPE_FP32', dims: [-2] }] }))).toMatch(/^output\[0\]\.dims\[0\]: -2 is not a dimension/);
    expect(error(base({ input: [{ name: 'IN', data_type: 'TYPE_FP32', dims: [4], reshape: { shape: [0] } }] }))).toMatch(/^input\[0\]\.reshape\.shape\[0\]: 0 is not a dimension/);
  });

  it('reports every problem, one per line', () => {
    const lines = errors(base({ max_batch_size: 'x', name: 5, input: [{ name: 'IN', data_type: 'X', dims: [4] }] }));
    expect(lines).toHaveLength(3);
    // Cross-field rules run once every field has the right type.
    expect(errors(base({ max_batch_size: -1, name: 5 }))).toHaveLength(1);
    expect(errors(base({ max_batch_size: -1, dynamic_batching: { preferred_batch_size: [0] } }))).toHaveLength(2);
  });
});

describe('schema: cross-field rules', () => {
  const input = (extra: Record<string, unknown>) => ({ name: 'IN', data_type: 'TYPE_FP32', dims: [4], ...extra });

  it('max_batch_size >= 0', () => {
    expect(error(base({ max_batch_size: -1 }))).toBe('max_batch_size: -1 is not allowed; use 0 (no batching) or a positive batch size');
  });

  it('inputs and outputs: names, dims, data types, reshape, format', () => {
    expect(error(base({ input: [input({ dims: [] })] }))).toMatch(/^input\[0\]\.dims: is empty; list the dimensions without the batch dimension/);
    expect(error(base({ max_batch_size: 0, input: [input({ dims: [] })] }))).toBe('input[0].dims: is empty; list the dimensions (-1 for a variable size)');
    expect(error(base({ input: [input({ name: '' })] }))).toBe('input[0].name: is missing; every input needs a name');
    expect(error(base({ input: [input({}), input({})] }))).toBe('input[1].name: "IN" is already used by input[0]; names must be unique');
    expect(error(base({ output: [{ name: 'OUT', dims: [1] }] }))).toMatch(/^output\[0\]\.data_type: is missing; use one of TYPE_BOOL/);
    expect(error(base({ input: [input({ dims: [2, 3], reshape: { shape: [5] } })] }))).toBe(
      'input[0].reshape.shape: [5] holds 5 elements but dims [2, 3] hold 6; they must match',
    );
    expect(error(base({ max_batch_size: 0, input: [input({ dims: [1], reshape: { shape: [] } })] }))).toMatch(/^input\[0\]\.reshape\.shape: is empty, which a model with max_batch_size 0 cannot use/);
    expect(validateModelConfig(base({ input: [input({ dims: [1], reshape: { shape: [] } })] }), SRC).input[0]!.reshape).toEqual({ shape: [] });
    expect(error(base({ input: [input({ format: 'FORMAT_NCHW', dims: [3, 224] })] }))).toBe('input[0].dims: FORMAT_NCHW needs 3 dimensions (without the batch dimension); found 2');
  });

  it('backend and platform', () => {
    expect(error(base({ backend: 'python' }))).toBe('backend: "python" is not a backend stubhost has; use one of typescript, onnxruntime');
    expect(error(base({ backend: '', platform: 'tensorflow_savedmodel' }))).toMatch(/^platform: "tensorflow_savedmodel" is not a platform stubhost has; use one of ensemble, onnxruntime_onnx/);
    expect(error(base({ platform: 'onnxruntime_onnx' }))).toBe('backend: "typescript" does not match platform "onnxruntime_onnx"; use backend "onnxruntime" or leave it out');
    expect(validateModelConfig(base({ backend: '', platform: 'onnxruntime_onnx' }), SRC).platform).toBe('onnxruntime_onnx');
  });

  it('one scheduling choice and one version policy', () => {
    expect(error(base({ dynamic_batching: {}, sequence_batching: {} }))).toBe(
      'sequence_batching: only one of dynamic_batching, sequence_batching, ensemble_scheduling may be given; found dynamic_batching and sequence_batching',
    );
    expect(error(base({ version_policy: {} }))).toMatch(/^version_policy: choose one of latest \{ num_versions: N \}, all \{ \}, specific/);
    expect(error(base({ version_policy: { all: {}, latest: {} } }))).toBe('version_policy: choose one of latest, all, specific; found latest and all');
    expect(error(base({ version_policy: { latest: { num_versions: 0 } } }))).toBe('version_policy.latest.num_versions: 0 is not a number of versions; use an integer >= 1');
    expect(error(base({ version_policy: { specific: { versions: [] } } }))).toBe('version_policy.specific.versions: lists no version; list at least one version number');
    expect(error(base({ version_policy: { specific: { versions: [-1] } } }))).toMatch(/^version_policy\.specific\.versions\[0\]: -1 is not a version number/);
  });

  it('instance groups', () => {
    expect(error(base({ instance_group: [{ kind: 'KIND_CPU', gpus: [0] }] }))).toBe(
      'instance_group[0].gpus: a KIND_CPU group cannot list GPUs; found [0] (use KIND_GPU or KIND_AUTO, or remove gpus)',
    );
    expect(error(base({ instance_group: [{ count: -1 }] }))).toBe('instance_group[0].count: -1 is not an instance count; use an integer >= 1');
    expect(error(base({ instance_group: [{ rate_limiter: { resources: [{ count: 1 }] } }] }))).toBe(
      'instance_group[0].rate_limiter.resources[0].name: is missing; name the resource',
    );
  });

  it('dynamic batching: preferred sizes within max_batch_size', () => {
    expect(error(base({ dynamic_batching: { preferred_batch_size: [4, 16] } }))).toBe(
      'dynamic_batching.preferred_batch_size[1]: 16 is larger than max_batch_size 8; use a size from 1 to 8',
    );
    expect(error(base({ dynamic_batching: { preferred_batch_size: [0] } }))).toBe('dynamic_batching.preferred_batch_size[0]: 0 is not a batch size; use an integer >= 1');
    expect(error(base({ max_batch_size: 0, dynamic_batching: { preferred_batch_size: [2] } }))).toBe(
      'dynamic_batching.preferred_batch_size[0]: 2 needs a batching model; set max_batch_size >= 2 or remove preferred_batch_size',
    );
  });

  it('dynamic batching: priority levels and queue policies', () => {
    const db = (d: Record<string, unknown>) => base({ dynamic_batching: d });
    expect(error(db({ priority_levels: 2, default_priority_level: 3 }))).toBe(
      'dynamic_batching.default_priority_level: 3 is outside the priority levels; use a level from 1 to 2',
    );
    expect(error(db({ priority_levels: 2 }))).toBe('dynamic_batching.default_priority_level: 0 is outside the priority levels; use a level from 1 to 2');
    expect(error(db({ default_priority_level: 1 }))).toBe('dynamic_batching.default_priority_level: 1 needs priority_levels; set priority_levels >= 1');
    expect(error(db({ priority_levels: 2, default_priority_level: 1, priority_queue_policy: { 3: {} } }))).toBe(
      'dynamic_batching.priority_queue_policy["3"]: "3" is not a priority level; use a level from 1 to 2',
    );
    expect(error(db({ priority_levels: 2, default_priority_level: 1, preserve_ordering: true }))).toBe(
      'dynamic_batching.preserve_ordering: true allows only one priority level; found priority_levels 2',
    );
    expect(error(db({ preserve_ordering: true, default_queue_policy: { timeout_action: 'DELAY', default_timeout_microseconds: 10 } }))).toBe(
      'dynamic_batching.default_queue_policy.timeout_action: DELAY cannot be used with preserve_ordering: true; use REJECT',
    );
  });

  it('decoupled models may use the dynamic batcher', () => {
    expect(() => validateModelConfig(base({ dynamic_batching: {}, model_transaction_policy: { decoupled: true } }), SRC)).not.toThrow();
  });

  it('sequence batching: strategy, controls and state', () => {
    const sb = (s: Record<string, unknown>) => base({ sequence_batching: s });
    const ctl = (c: Record<string, unknown>) => sb({ control_input: [{ name: 'C', control: [c] }] });
    expect(error(sb({ direct: {}, oldest: {} }))).toBe('sequence_batching: choose one strategy, direct { } or oldest { }; found both');
    expect(error(sb({ oldest: { preferred_batch_size: [9] } }))).toBe('sequence_batching.oldest.preferred_batch_size[0]: 9 is larger than max_batch_size 8; use a size from 1 to 8');
    expect(error(ctl({ kind: 'CONTROL_SEQUENCE_START' }))).toBe(
      'sequence_batching.control_input[0].control[0]: CONTROL_SEQUENCE_START needs exactly one of int32_false_true, fp32_false_true, bool_false_true; found none',
    );
    expect(error(ctl({ kind: 'CONTROL_SEQUENCE_END', int32_false_true: [0, 1, 2] }))).toBe(
      'sequence_batching.control_input[0].control[0].int32_false_true: has 3 values; give two: [ false_value, true_value ]',
    );
    expect(error(ctl({ kind: 'CONTROL_SEQUENCE_CORRID', data_type: 'TYPE_FP32' }))).toBe(
      'sequence_batching.control_input[0].control[0].data_type: "TYPE_FP32" cannot carry a correlation id; use one of TYPE_UINT64, TYPE_INT64, TYPE_UINT32, TYPE_INT32, TYPE_STRING',
    );
    expect(error(ctl({ kind: 'CONTROL_SEQUENCE_READY', fp32_false_true: [0, 1], data_type: 'TYPE_FP32' }))).toMatch(/control\[0\]\.data_type: is only used by CONTROL_SEQUENCE_CORRID/);
    expect(
      error(sb({ control_input: [
        { name: 'A', control: [{ kind: 'CONTROL_SEQUENCE_START', int32_false_true: [0, 1] }] },
        { name: 'B', control: [{ kind: 'CONTROL_SEQUENCE_START', int32_false_true: [0, 1] }] },
      ] })),
    ).toBe('sequence_batching.control_input[1].control[0].kind: CONTROL_SEQUENCE_START is already given by control_input[0].control[0]; each control kind may appear once');
    expect(error(sb({ state: [{ input_name: 'i', output_name: 'o', data_type: 'TYPE_FP32', dims: [] }] }))).toBe(
      'sequence_batching.state[0].dims: is empty; list the state dimensions (-1 for a variable size)',
    );
    expect(error(sb({ state: [{ output_name: 'o', data_type: 'TYPE_FP32', dims: [1] }] }))).toMatch(/^sequence_batching\.state\[0\]\.input_name: is missing/);
    expect(error(sb({ state: [{ input_name: 'i', output_name: 'o', data_type: 'TYPE_FP32', dims: [1], initial_state: [{ data_type: 'TYPE_FP32', dims: [1] }] }] }))).toBe(
      'sequence_batching.state[0].initial_state[0]: give exactly one of zero_data, data_file; found none',
    );
  });

  it('ensembles need steps and the ensemble platform', () => {
    const step = { model_name: 'a', input_map: { x: 'IN' }, output_map: { y: 'OUT' } };
    const ens = (e: Record<string, unknown>) => base({ backend: '', platform: 'ensemble', ...e });
    expect(validateModelConfig(ens({ ensemble_scheduling: { step: [step] } }), SRC).ensemble_scheduling!.step[0]!.model_version).toBe(-1);
    expect(error(ens({}))).toMatch(/^ensemble_scheduling: is missing; an ensemble \(platform "ensemble"\) needs ensemble_scheduling/);
    expect(error(ens({ ensemble_scheduling: { step: [] } }))).toBe('ensemble_scheduling.step: is empty; an ensemble needs at least one step');
    expect(error(ens({ ensemble_scheduling: { step: [{ ...step, model_name: '' }] } }))).toBe('ensemble_scheduling.step[0].model_name: is missing; name the model this step runs');
    expect(error(ens({ ensemble_scheduling: { step: [{ ...step, input_map: {} }] } }))).toMatch(/^ensemble_scheduling\.step\[0\]\.input_map: is empty/);
    expect(error(ens({ ensemble_scheduling: { step: [{ ...step, model_name: 'm' }] } }))).toMatch(/an ensemble cannot run itself/);
    expect(error(ens({ backend: 'typescript', ensemble_scheduling: { step: [step] } }))).toBe('backend: an ensemble (platform "ensemble") has no backend; found "typescript"');
    expect(error(base({ ensemble_scheduling: { step: [step] } }))).toBe('platform: ensemble_scheduling needs platform "ensemble"; found none');
    expect(error(ens({ ensemble_scheduling: { step: [step] }, model_warmup: [{ name: 'w', batch_size: 1 }] }))).toBe(
      'model_warmup: is not allowed for an ensemble; warm up its step models instead',
    );
  });

  it('warmup samples', () => {
    const w = (x: Record<string, unknown>) => base({ model_warmup: [{ name: 'w', batch_size: 1, inputs: { IN: { data_type: 'TYPE_FP32', dims: [4], zero_data: true } }, ...x }] });
    expect(error(w({ batch_size: 0 }))).toBe('model_warmup[0].batch_size: 0 is not allowed; use an integer >= 1');
    expect(error(w({ batch_size: 9 }))).toBe('model_warmup[0].batch_size: 9 is larger than max_batch_size 8');
    expect(error(w({ inputs: { IN: { data_type: 'TYPE_FP32', dims: [4], zero_data: true, random_data: true } } }))).toBe(
      'model_warmup[0].inputs.IN: give exactly one of zero_data, random_data, input_data_file; found zero_data and random_data',
    );
    expect(error(w({ name: '' }))).toBe('model_warmup[0].name: is missing; name the warmup sample');
  });
});

describe('schema: the isolation parameter', () => {
  const iso = (value: string, extra: Record<string, unknown> = {}) => ({ isolation: { string_value: value }, ...extra });

  it('accepts process and thread (and no value: process)', () => {
    for (const v of ['process', 'thread', '']) expect(() => validateModelConfig(base({ parameters: iso(v) }), SRC)).not.toThrow();
  });

  it('refuses another value, naming the field and the allowed values', () => {
    expect(error(base({ parameters: iso('Thread') }))).toBe(
      'parameters.isolation.string_value: "Thread" is not an isolation; use "process" (the default: a child process per instance) or "thread" (a worker thread of the server per instance)',
    );
  });

  it('refuses thread with debug_inspect_port, and isolation on an ensemble', () => {
    expect(error(base({ parameters: iso('thread', { debug_inspect_port: { string_value: '9229' } }) }))).toMatch(/^parameters\.isolation\.string_value: "thread" cannot be combined with debug_inspect_port/);
    const ensemble = {
      name: 'e', platform: 'ensemble', max_batch_size: 0,
      input: [{ name: 'IN', data_type: 'TYPE_FP32', dims: [4] }], output: [{ name: 'OUT', data_type: 'TYPE_FP32', dims: [4] }],
      ensemble_scheduling: { step: [{ model_name: 'm', input_map: { IN: 'IN' }, output_map: { OUT: 'OUT' } }] },
      parameters: iso('thread'),
    };
    expect(error(ensemble)).toBe('parameters.isolation.string_value: is not allowed for an ensemble: it runs no stub of its own (set isolation on its step models)');
  });
});
