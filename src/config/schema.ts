/**
 * The model configuration schema, in the field names of Triton's model_config.proto JSON mapping
 * (snake_case), so a Triton user's config.pbtxt / config.json reads the same here.
 *
 * Every field of Triton's ModelConfig is parsed; the ones stubhost does not implement are refused
 * when set (./unsupported.ts), and any other field is an error that lists the allowed ones, as
 * Triton rejects them too. Numbers may be given as
 * strings wherever protobuf's JSON mapping allows it (int64 "16"); enums may be given by number.
 *
 * Cross-field rules (Triton's ValidateModelConfig) run in `superRefine`, so one parse reports
 * every problem with its field path. Context-free defaults are filled by zod; the ones that need
 * the model folder (name, backend, instance groups) are filled by load.ts.
 */
import { DEBUG_INSPECT_PORT_PARAMETER, ISOLATION_PARAMETER, isolationOf } from '../core/model-parameters.js';
import { z } from 'zod';
import { DATA_TYPES, toConfigType } from '../core/dtypes.js';
import type { FieldShape, MessageShape } from './pbtxt.js';
import { unsupportedFields, unsupportedMessage } from './unsupported.js';

// ---------------------------------------------------------------------------------------------
// Value helpers: each gives an error message that says what was found and what is allowed.

/** How a found value reads in an error message. */
export function foundText(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a message';
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'bigint') return `${v}`;
  return String(v);
}

/** protobuf JSON: integers may come as decimal strings ("16"). */
function intFromString(v: unknown): unknown {
  if (typeof v === 'string' && /^\s*-?\d+\s*$/.test(v)) {
    const n = Number(v);
    return Number.isSafeInteger(n) ? n : v;
  }
  if (typeof v === 'bigint' && Number.isSafeInteger(Number(v))) return Number(v);
  return v;
}

function floatFromString(v: unknown): unknown {
  if (typeof v === 'string' && v.trim() !== '' && !Number.isNaN(Number(v))) return Number(v);
  return v;
}

function int(what: string, min: number, max: number = Number.MAX_SAFE_INTEGER) {
  const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`;
  const msg = (iss: { input?: unknown }) => `${foundText(iss.input)} is not ${what}; use an integer ${range}`;
  return z.preprocess(intFromString, z.number({ error: msg }).int({ error: msg }).min(min, { error: msg }).max(max, { error: msg }));
}

const uint = (what = 'a valid count') => int(what, 0);
const int32 = (what = 'a valid integer') => int(what, -(2 ** 31), 2 ** 31 - 1);

function float(what = 'a number') {
  const msg = (iss: { input?: unknown }) => `${foundText(iss.input)} is not ${what}`;
  return z.preprocess(floatFromString, z.number({ error: msg }));
}

/** A dimension: a size >= 1, or -1 for "any size" (Triton's wildcard). 0 and other negatives are refused. */
const dim = () => {
  const msg = (iss: { input?: unknown }) =>
    `${foundText(iss.input)} is not a dimension; use an integer >= 1, or -1 for a variable-size dimension`;
  return z.preprocess(intFromString, z.number({ error: msg }).int({ error: msg }).refine((d) => d === -1 || d >= 1, { error: msg }));
};

const str = () => z.string({ error: (iss) => `expected a string, found ${foundText(iss.input)}` });
const bool = () =>
  z.boolean({ error: (iss) => `expected true or false, found ${foundText(iss.input)}` });

/**
 * A protobuf enum by name; `byNumber[i]` is the name of value i, so `kind: 2` reads as KIND_CPU.
 * `allowed` excludes values that are valid protobuf but refused here (TYPE_INVALID).
 */
function protoEnum<const T extends readonly [string, ...string[]]>(what: string, allowed: T, byNumber: readonly string[] = allowed) {
  const toName = (v: unknown) => (typeof v === 'number' && Number.isInteger(v) && byNumber[v] !== undefined ? byNumber[v] : v);
  return z.preprocess(
    toName,
    z.enum(allowed, { error: (iss) => `${foundText(iss.input)} is not ${what}; use one of ${allowed.join(', ')}` }),
  );
}

const DATA_TYPE_NAMES = DATA_TYPES.map(toConfigType) as unknown as readonly [string, ...string[]];
/** model_config.proto's DataType numbering (TYPE_INVALID = 0). */
const DATA_TYPE_BY_NUMBER = [
  'TYPE_INVALID', 'TYPE_BOOL', 'TYPE_UINT8', 'TYPE_UINT16', 'TYPE_UINT32', 'TYPE_UINT64', 'TYPE_INT8', 'TYPE_INT16',
  'TYPE_INT32', 'TYPE_INT64', 'TYPE_FP16', 'TYPE_FP32', 'TYPE_FP64', 'TYPE_STRING', 'TYPE_BF16',
];
export const CONFIG_DATA_TYPES = [
  'TYPE_BOOL', 'TYPE_UINT8', 'TYPE_UINT16', 'TYPE_UINT32', 'TYPE_UINT64', 'TYPE_INT8', 'TYPE_INT16', 'TYPE_INT32',
  'TYPE_INT64', 'TYPE_FP16', 'TYPE_BF16', 'TYPE_FP32', 'TYPE_FP64', 'TYPE_STRING',
] as const;
// Keep the list above in step with dtypes.ts (it is spelled out so its type is a literal union).
if (DATA_TYPE_NAMES.join() !== CONFIG_DATA_TYPES.join()) throw new Error('CONFIG_DATA_TYPES is out of step with DATA_TYPES');
export type ConfigDataType = (typeof CONFIG_DATA_TYPES)[number];

/**
 * Optional everywhere: TYPE_INVALID (0) is protobuf's "unset", which Triton's config endpoint prints
 * for unset data types, so its JSON can be fed back as config.json. Where a type is required the
 * cross-field rules say "is missing".
 */
const dataType = () => {
  const allowed = CONFIG_DATA_TYPES.join(', ');
  return z.preprocess(
    (v) => (v === 'TYPE_INVALID' || v === 0 ? undefined : typeof v === 'number' && Number.isInteger(v) ? (DATA_TYPE_BY_NUMBER[v] ?? v) : v),
    z.enum(CONFIG_DATA_TYPES, { error: (iss) => `${foundText(iss.input)} is not a data type; use one of ${allowed}` }).optional(),
  );
};

export const INSTANCE_KINDS = ['KIND_AUTO', 'KIND_GPU', 'KIND_CPU', 'KIND_MODEL'] as const;
export const CONTROL_KINDS = ['CONTROL_SEQUENCE_START', 'CONTROL_SEQUENCE_READY', 'CONTROL_SEQUENCE_END', 'CONTROL_SEQUENCE_CORRID'] as const;
export const TIMEOUT_ACTIONS = ['REJECT', 'DELAY'] as const;
export type ControlKind = (typeof CONTROL_KINDS)[number];

/**
 * A message: unknown fields are refused with the list of allowed ones (Triton's parser refuses
 * them too, and a silently ignored typo such as `max_batch_sise` is the worst kind of bug).
 */
function message<S extends z.ZodRawShape>(what: string, shape: S) {
  const allowed = Object.keys(shape).join(', ');
  return z.strictObject(shape, {
    error: (iss) => {
      if (iss.code === 'unrecognized_keys') {
        // One unknown key: formatIssue() puts it at the end of the path, so the message need not repeat it.
        const keys = (iss as { keys?: string[] }).keys ?? [];
        const head = keys.length === 1 ? `is not a field of ${what}` : `unknown fields ${keys.map((k) => `"${k}"`).join(', ')} in ${what}`;
        return `${head}; allowed fields: ${allowed || '(none)'}`;
      }
      return `expected ${what} (a message { ... }), found ${foundText(iss.input)}`;
    },
  });
}

function list<T extends z.ZodType>(item: T) {
  return z.array(item, { error: (iss) => `expected a list, found ${foundText(iss.input)}` });
}

function map<T extends z.ZodType>(value: T) {
  return z.record(z.string(), value, { error: (iss) => `expected a map { "key": value, ... }, found ${foundText(iss.input)}` });
}

// ---------------------------------------------------------------------------------------------
// Messages, in model_config.proto's order.

export const RateLimiterSchema = message('rate_limiter', {
  resources: list(
    message('a rate limiter resource', {
      name: str().default(''),
      global: bool().default(false),
      count: uint().default(0),
    }),
  ).default([]),
  priority: uint().default(0),
});

export const InstanceGroupSchema = message('an instance group', {
  name: str().default(''),
  kind: protoEnum('an instance kind', INSTANCE_KINDS).default('KIND_AUTO'),
  count: int32('an instance count').default(0),
  rate_limiter: RateLimiterSchema.optional(),
  gpus: list(int32('a GPU id')).default([]),
  secondary_devices: list(
    message('a secondary device', {
      kind: protoEnum('a secondary device kind', ['KIND_NVDLA']).default('KIND_NVDLA'),
      device_id: int32('a device id').default(0),
    }),
  ).default([]),
  profile: list(str()).default([]),
  passive: bool().default(false),
  host_policy: str().default(''),
});

const ReshapeSchema = message('reshape', { shape: list(dim()).default([]) });

export const InputSchema = message('an input', {
  name: str().default(''),
  data_type: dataType(),
  format: protoEnum('an input format', ['FORMAT_NONE', 'FORMAT_NHWC', 'FORMAT_NCHW']).default('FORMAT_NONE'),
  dims: list(dim()).default([]),
  reshape: ReshapeSchema.optional(),
  is_shape_tensor: bool().default(false),
  allow_ragged_batch: bool().default(false),
  optional: bool().default(false),
  is_non_linear_format_io: bool().default(false),
});

export const OutputSchema = message('an output', {
  name: str().default(''),
  data_type: dataType(),
  dims: list(dim()).default([]),
  reshape: ReshapeSchema.optional(),
  label_filename: str().default(''),
  is_shape_tensor: bool().default(false),
  is_non_linear_format_io: bool().default(false),
});

const BatchInputSchema = message('a batch input', {
  kind: protoEnum('a batch input kind', [
    'BATCH_ELEMENT_COUNT', 'BATCH_ACCUMULATED_ELEMENT_COUNT', 'BATCH_ACCUMULATED_ELEMENT_COUNT_WITH_ZERO',
    'BATCH_MAX_ELEMENT_COUNT_AS_SHAPE', 'BATCH_ITEM_SHAPE', 'BATCH_ITEM_SHAPE_FLATTEN',
  ]).default('BATCH_ELEMENT_COUNT'),
  target_name: list(str()).default([]),
  data_type: dataType(),
  source_input: list(str()).default([]),
});

const BatchOutputSchema = message('a batch output', {
  target_name: list(str()).default([]),
  kind: protoEnum('a batch output kind', ['BATCH_SCATTER_WITH_INPUT_SHAPE']).default('BATCH_SCATTER_WITH_INPUT_SHAPE'),
  source_input: list(str()).default([]),
});

export const VersionPolicySchema = message('version_policy', {
  latest: message('version_policy.latest', { num_versions: int('a number of versions', 1).default(1) }).optional(),
  all: message('version_policy.all', {}).optional(),
  specific: message('version_policy.specific', { versions: list(int('a version number', 0)).default([]) }).optional(),
});

const AcceleratorSchema = message('an execution accelerator', { name: str().default(''), parameters: map(str()).default({}) });
const GraphShapeSchema = message('a CUDA graph input shape', { dim: list(int('a dimension', -1)).default([]) });

/** Accepted for Triton compatibility; stubhost runs on CPU and does not act on it. */
const OptimizationSchema = message('optimization', {
  graph: message('optimization.graph', { level: int32().default(0) }).optional(),
  priority: protoEnum('a model priority', ['PRIORITY_DEFAULT', 'PRIORITY_MAX', 'PRIORITY_MIN']).default('PRIORITY_DEFAULT'),
  cuda: message('optimization.cuda', {
    graphs: bool().default(false),
    busy_wait_events: bool().default(false),
    graph_spec: list(
      message('a CUDA graph spec', {
        batch_size: int32().default(0),
        input: map(GraphShapeSchema).default({}),
        graph_lower_bound: message('graph_lower_bound', { batch_size: int32().default(0), input: map(GraphShapeSchema).default({}) }).optional(),
      }),
    ).default([]),
    output_copy_stream: bool().default(false),
  }).optional(),
  execution_accelerators: message('optimization.execution_accelerators', {
    gpu_execution_accelerator: list(AcceleratorSchema).default([]),
    cpu_execution_accelerator: list(AcceleratorSchema).default([]),
  }).optional(),
  input_pinned_memory: message('input_pinned_memory', { enable: bool().default(true) }).prefault({}),
  output_pinned_memory: message('output_pinned_memory', { enable: bool().default(true) }).prefault({}),
  gather_kernel_buffer_threshold: uint().default(0),
  eager_batching: bool().default(false),
});

export const QueuePolicySchema = message('a queue policy', {
  timeout_action: protoEnum('a timeout action', TIMEOUT_ACTIONS).default('REJECT'),
  default_timeout_microseconds: uint('a timeout').default(0),
  allow_timeout_override: bool().default(false),
  max_queue_size: uint('a queue size').default(0),
});

export const DynamicBatchingSchema = message('dynamic_batching', {
  preferred_batch_size: list(int32('a batch size')).default([]),
  max_queue_delay_microseconds: uint('a delay').default(0),
  preserve_ordering: bool().default(false),
  priority_levels: uint('a number of priority levels').default(0),
  default_priority_level: uint('a priority level').default(0),
  default_queue_policy: QueuePolicySchema.optional(),
  priority_queue_policy: map(QueuePolicySchema).default({}),
});

const ControlSchema = message('a control', {
  kind: protoEnum('a control kind', CONTROL_KINDS).default('CONTROL_SEQUENCE_START'),
  int32_false_true: list(int32()).default([]),
  fp32_false_true: list(float()).default([]),
  bool_false_true: list(bool()).default([]),
  data_type: dataType(),
});

const InitialStateSchema = message('an initial state', {
  data_type: dataType(),
  // 0 is allowed here: an initial state may start empty and grow (Triton's own example does).
  dims: list(int('an initial state dimension', 0)).default([]),
  zero_data: bool().optional(),
  data_file: str().optional(),
  name: str().default(''),
});

export const SequenceBatchingSchema = message('sequence_batching', {
  direct: message('sequence_batching.direct', {
    max_queue_delay_microseconds: uint('a delay').default(0),
    minimum_slot_utilization: float().default(0),
  }).optional(),
  oldest: message('sequence_batching.oldest', {
    max_candidate_sequences: int32('a number of sequences').default(0),
    preferred_batch_size: list(int32('a batch size')).default([]),
    max_queue_delay_microseconds: uint('a delay').default(0),
    preserve_ordering: bool().default(false),
  }).optional(),
  max_sequence_idle_microseconds: uint('an idle time').default(0),
  control_input: list(message('a control input', { name: str().default(''), control: list(ControlSchema).default([]) })).default([]),
  state: list(
    message('a state', {
      input_name: str().default(''),
      output_name: str().default(''),
      data_type: dataType(),
      dims: list(dim()).default([]),
      initial_state: list(InitialStateSchema).default([]),
      use_same_buffer_for_input_output: bool().default(false),
      use_growable_memory: bool().default(false),
    }),
  ).default([]),
  iterative_sequence: bool().default(false),
});

export const EnsembleSchedulingSchema = message('ensemble_scheduling', {
  step: list(
    message('an ensemble step', {
      model_name: str().default(''),
      // -1 (the newest version) rather than protobuf's 0, which no model folder would hold.
      model_version: int('a model version', -1).default(-1),
      input_map: map(str()).default({}),
      output_map: map(str()).default({}),
      model_namespace: str().default(''),
    }),
  ).default([]),
  max_inflight_responses: uint().default(0),
});

const WarmupInputSchema = message('a warmup input', {
  data_type: dataType(),
  dims: list(dim()).default([]),
  zero_data: bool().optional(),
  random_data: bool().optional(),
  input_data_file: str().optional(),
});

export const WarmupSchema = message('a warmup sample', {
  name: str().default(''),
  batch_size: uint('a batch size').default(0),
  inputs: map(WarmupInputSchema).default({}),
  count: uint().default(0),
});

const ModelParameterSchema = message('a model parameter', { string_value: str().default('') });

const ModelConfigObject = message('the model config', {
  name: str().default(''),
  platform: str().default(''),
  backend: str().default(''),
  runtime: str().default(''),
  version_policy: VersionPolicySchema.prefault({ latest: {} }),
  max_batch_size: int32('a batch size').default(0),
  input: list(InputSchema).default([]),
  output: list(OutputSchema).default([]),
  batch_input: list(BatchInputSchema).default([]),
  batch_output: list(BatchOutputSchema).default([]),
  optimization: OptimizationSchema.prefault({}),
  dynamic_batching: DynamicBatchingSchema.optional(),
  sequence_batching: SequenceBatchingSchema.optional(),
  ensemble_scheduling: EnsembleSchedulingSchema.optional(),
  instance_group: list(InstanceGroupSchema).default([]),
  default_model_filename: str().default(''),
  cc_model_filenames: map(str()).default({}),
  metric_tags: map(str()).default({}),
  parameters: map(ModelParameterSchema).default({}),
  model_warmup: list(WarmupSchema).default([]),
  model_operations: message('model_operations', { op_library_filename: list(str()).default([]) }).optional(),
  model_transaction_policy: message('model_transaction_policy', { decoupled: bool().default(false) }).optional(),
  model_repository_agents: message('model_repository_agents', {
    agents: list(message('a repository agent', { name: str().default(''), parameters: map(str()).default({}) })).default([]),
  }).optional(),
  response_cache: message('response_cache', { enable: bool().default(false) }).optional(),
  model_metrics: message('model_metrics', {
    metric_control: list(
      message('a metric control', {
        metric_identifier: message('metric_identifier', { family: str().default('') }).optional(),
        histogram_options: message('histogram_options', { buckets: list(float()).default([]) }).optional(),
      }),
    ).default([]),
  }).optional(),
});

/** Backends stubhost has, and the platforms it understands (Triton's platform names). */
export const BACKENDS = ['typescript', 'onnxruntime'] as const;
export const PLATFORMS = ['ensemble', 'onnxruntime_onnx'] as const;

/** The schema: field types, defaults, and Triton's cross-field rules. */
export const ModelConfigSchema = ModelConfigObject.superRefine((c, ctx) => checkConfig(c, ctx));

/** A validated model configuration (Triton's JSON field names; defaults filled). */
export type ModelConfig = z.output<typeof ModelConfigObject>;
export type ModelInputConfig = ModelConfig['input'][number];
export type ModelOutputConfig = ModelConfig['output'][number];
export type InstanceGroupConfig = ModelConfig['instance_group'][number];
export type DynamicBatchingConfig = NonNullable<ModelConfig['dynamic_batching']>;
export type SequenceBatchingConfig = NonNullable<ModelConfig['sequence_batching']>;
export type EnsembleSchedulingConfig = NonNullable<ModelConfig['ensemble_scheduling']>;
export type QueuePolicyConfig = z.output<typeof QueuePolicySchema>;
export type VersionPolicyConfig = z.output<typeof VersionPolicySchema>;
export type WarmupConfig = ModelConfig['model_warmup'][number];

// ---------------------------------------------------------------------------------------------
// Cross-field rules.

type Path = (string | number)[];

function checkConfig(c: ModelConfig, ctx: z.RefinementCtx): void {
  const issue = (path: Path, message: string) => ctx.addIssue({ code: 'custom', path, message });
  const mbs = c.max_batch_size;

  if (mbs < 0) issue(['max_batch_size'], `${mbs} is not allowed; use 0 (no batching) or a positive batch size`);

  const scheduling = (['dynamic_batching', 'sequence_batching', 'ensemble_scheduling'] as const).filter((k) => c[k] !== undefined);
  if (scheduling.length > 1) {
    issue([scheduling[1]!], `only one of dynamic_batching, sequence_batching, ensemble_scheduling may be given; found ${scheduling.join(' and ')}`);
  }

  // Backend and platform.
  if (c.backend !== '' && !(BACKENDS as readonly string[]).includes(c.backend)) {
    issue(['backend'], `${foundText(c.backend)} is not a backend stubhost has; use one of ${BACKENDS.join(', ')}`);
  }
  if (c.platform !== '' && !(PLATFORMS as readonly string[]).includes(c.platform)) {
    issue(['platform'], `${foundText(c.platform)} is not a platform stubhost has; use one of ${PLATFORMS.join(', ')} (or set backend)`);
  }
  if (c.platform === 'onnxruntime_onnx' && c.backend !== '' && c.backend !== 'onnxruntime') {
    issue(['backend'], `${foundText(c.backend)} does not match platform "onnxruntime_onnx"; use backend "onnxruntime" or leave it out`);
  }
  if (c.platform === 'ensemble' && c.backend !== '') {
    issue(['backend'], `an ensemble (platform "ensemble") has no backend; found ${foundText(c.backend)}`);
  }

  // Version policy: a oneof.
  {
    const chosen = (['latest', 'all', 'specific'] as const).filter((k) => c.version_policy[k] !== undefined);
    if (chosen.length === 0) issue(['version_policy'], 'choose one of latest { num_versions: N }, all { }, specific { versions: [...] }; found none');
    if (chosen.length > 1) issue(['version_policy'], `choose one of latest, all, specific; found ${chosen.join(' and ')}`);
    if (c.version_policy.specific && c.version_policy.specific.versions.length === 0) {
      issue(['version_policy', 'specific', 'versions'], 'lists no version; list at least one version number');
    }
  }

  // Inputs and outputs.
  checkTensors(c.input, 'input', mbs, issue);
  checkTensors(c.output, 'output', mbs, issue);

  // Instance groups.
  c.instance_group.forEach((g, i) => {
    if (g.count < 0) issue(['instance_group', i, 'count'], `${g.count} is not an instance count; use an integer >= 1`);
    if ((g.kind === 'KIND_CPU' || g.kind === 'KIND_MODEL') && g.gpus.length > 0) {
      issue(['instance_group', i, 'gpus'], `a ${g.kind} group cannot list GPUs; found [${g.gpus.join(', ')}] (use KIND_GPU or KIND_AUTO, or remove gpus)`);
    }
    g.gpus.forEach((gpu, j) => {
      if (gpu < 0) issue(['instance_group', i, 'gpus', j], `${gpu} is not a GPU id; use an integer >= 0`);
    });
    g.rate_limiter?.resources.forEach((r, j) => {
      if (r.name === '') issue(['instance_group', i, 'rate_limiter', 'resources', j, 'name'], 'is missing; name the resource');
    });
  });

  // Dynamic batching (Triton's rules, including the preserve_ordering conflicts).
  const db = c.dynamic_batching;
  if (db) {
    db.preferred_batch_size.forEach((s, i) => {
      const path = ['dynamic_batching', 'preferred_batch_size', i];
      if (s < 1) issue(path, `${s} is not a batch size; use an integer >= 1`);
      else if (s > mbs) {
        issue(path, mbs === 0
          ? `${s} needs a batching model; set max_batch_size >= ${s} or remove preferred_batch_size`
          : `${s} is larger than max_batch_size ${mbs}; use a size from 1 to ${mbs}`);
      }
    });
    checkPriorities(db, issue);
  }

  // Sequence batching.
  const sb = c.sequence_batching;
  if (sb) {
    if (sb.direct && sb.oldest) issue(['sequence_batching'], 'choose one strategy, direct { } or oldest { }; found both');
    if (sb.oldest) {
      if (sb.oldest.max_candidate_sequences < 0) {
        issue(['sequence_batching', 'oldest', 'max_candidate_sequences'], `${sb.oldest.max_candidate_sequences} is not allowed; use an integer >= 1`);
      }
      sb.oldest.preferred_batch_size.forEach((s, i) => {
        const path = ['sequence_batching', 'oldest', 'preferred_batch_size', i];
        if (s < 1) issue(path, `${s} is not a batch size; use an integer >= 1`);
        else if (mbs > 0 && s > mbs) issue(path, `${s} is larger than max_batch_size ${mbs}; use a size from 1 to ${mbs}`);
      });
    }
    if (sb.direct && (sb.direct.minimum_slot_utilization < 0 || sb.direct.minimum_slot_utilization > 1)) {
      issue(['sequence_batching', 'direct', 'minimum_slot_utilization'], `${sb.direct.minimum_slot_utilization} is not a fraction; use a number from 0 to 1`);
    }
    checkControls(sb, issue);
    sb.state.forEach((s, i) => {
      const p = ['sequence_batching', 'state', i];
      if (s.input_name === '') issue([...p, 'input_name'], 'is missing; name the model input that receives the state');
      if (s.output_name === '') issue([...p, 'output_name'], 'is missing; name the model output that produces the state');
      if (s.data_type === undefined) issue([...p, 'data_type'], `is missing; use one of ${CONFIG_DATA_TYPES.join(', ')}`);
      if (s.dims.length === 0) issue([...p, 'dims'], 'is empty; list the state dimensions (-1 for a variable size)');
      s.initial_state.forEach((init, j) => {
        const sources = [init.zero_data !== undefined && 'zero_data', init.data_file !== undefined && 'data_file'].filter(Boolean);
        if (sources.length !== 1) {
          issue([...p, 'initial_state', j], `give exactly one of zero_data, data_file; found ${sources.length === 0 ? 'none' : sources.join(' and ')}`);
        }
        if (init.data_type === undefined) issue([...p, 'initial_state', j, 'data_type'], `is missing; use one of ${CONFIG_DATA_TYPES.join(', ')}`);
      });
    });
  }

  // Ensembles.
  const isEnsemble = c.platform === 'ensemble';
  if (isEnsemble && !c.ensemble_scheduling) {
    issue(['ensemble_scheduling'], 'is missing; an ensemble (platform "ensemble") needs ensemble_scheduling { step [ ... ] }');
  }
  if (c.ensemble_scheduling) {
    if (!isEnsemble) issue(['platform'], `ensemble_scheduling needs platform "ensemble"; found ${c.platform === '' ? 'none' : foundText(c.platform)}`);
    if (c.ensemble_scheduling.step.length === 0) issue(['ensemble_scheduling', 'step'], 'is empty; an ensemble needs at least one step');
    c.ensemble_scheduling.step.forEach((s, i) => {
      const p = ['ensemble_scheduling', 'step', i];
      if (s.model_name === '') issue([...p, 'model_name'], 'is missing; name the model this step runs');
      if (s.model_name !== '' && s.model_name === c.name) issue([...p, 'model_name'], `${foundText(s.model_name)} is the ensemble itself; an ensemble cannot run itself`);
      if (Object.keys(s.input_map).length === 0) issue([...p, 'input_map'], 'is empty; map each input of the step model to an ensemble tensor');
      if (Object.keys(s.output_map).length === 0) issue([...p, 'output_map'], 'is empty; map at least one output of the step model to an ensemble tensor');
    });
    if (c.model_warmup.length > 0) issue(['model_warmup'], 'is not allowed for an ensemble; warm up its step models instead');
  }

  // Warmup.
  c.model_warmup.forEach((w, i) => {
    const p = ['model_warmup', i];
    if (w.name === '') issue([...p, 'name'], 'is missing; name the warmup sample');
    if (w.batch_size < 1) issue([...p, 'batch_size'], `${w.batch_size} is not allowed; use an integer >= 1`);
    else if (mbs === 0 && w.batch_size !== 1) issue([...p, 'batch_size'], `${w.batch_size} needs a batching model; use 1 when max_batch_size is 0`);
    else if (mbs > 0 && w.batch_size > mbs) issue([...p, 'batch_size'], `${w.batch_size} is larger than max_batch_size ${mbs}`);
    for (const [name, input] of Object.entries(w.inputs)) {
      const sources = (['zero_data', 'random_data', 'input_data_file'] as const).filter((k) => input[k] !== undefined);
      if (sources.length !== 1) {
        issue([...p, 'inputs', name], `give exactly one of zero_data, random_data, input_data_file; found ${sources.length === 0 ? 'none' : sources.join(' and ')}`);
      }
      if (input.data_type === undefined) issue([...p, 'inputs', name, 'data_type'], `is missing; use one of ${CONFIG_DATA_TYPES.join(', ')}`);
    }
  });

  for (const f of unsupportedFields(c)) issue(f.path, unsupportedMessage(f));

  // Triton's words (core src/model_config_utils.cc, ValidateModelConfig).
  if (c.response_cache?.enable && c.sequence_batching) {
    issue(['response_cache', 'enable'], `Response Cache does not currently support model ${c.name} with sequence batching scheduler. Please disable the response cache.`);
  }
  if (c.response_cache?.enable && c.model_transaction_policy?.decoupled) {
    issue(['response_cache', 'enable'], `Response Cache does not currently support model ${c.name} with 'decoupled' transaction policy. Please disable the response cache.`);
  }
  // Isolation (a stubhost parameter, checked here so the error names the file and the field).
  const isolation = c.parameters[ISOLATION_PARAMETER];
  if (isolation !== undefined) {
    const p = ['parameters', ISOLATION_PARAMETER, 'string_value'];
    try {
      if (isolationOf(c.parameters) === 'thread' && (c.parameters[DEBUG_INSPECT_PORT_PARAMETER]?.string_value ?? '') !== '') {
        issue(p, `"thread" cannot be combined with debug_inspect_port: a thread stub has no inspector of its own (start the server with --inspect, or use "process")`);
      }
    } catch (err) {
      issue(p, (err as Error).message);
    }
    if (isEnsemble) issue(p, 'is not allowed for an ensemble: it runs no stub of its own (set isolation on its step models)');
  }
}

function checkTensors(
  tensors: readonly (ModelInputConfig | ModelOutputConfig)[],
  field: 'input' | 'output',
  mbs: number,
  issue: (path: Path, message: string) => void,
): void {
  const seen = new Map<string, number>();
  tensors.forEach((t, i) => {
    if (t.name === '') issue([field, i, 'name'], `is missing; every ${field} needs a name`);
    else if (seen.has(t.name)) issue([field, i, 'name'], `${foundText(t.name)} is already used by ${field}[${seen.get(t.name)}]; names must be unique`);
    else seen.set(t.name, i);
    if (t.data_type === undefined) issue([field, i, 'data_type'], `is missing; use one of ${CONFIG_DATA_TYPES.join(', ')}`);
    if (t.dims.length === 0) {
      issue([field, i, 'dims'], mbs > 0
        ? 'is empty; list the dimensions without the batch dimension (for one value per batch item use dims: [ 1 ], with reshape: { shape: [ ] } if the model wants a scalar)'
        : 'is empty; list the dimensions (-1 for a variable size)');
    }
    if (t.reshape) {
      if (t.reshape.shape.length === 0 && mbs === 0) {
        issue([field, i, 'reshape', 'shape'], 'is empty, which a model with max_batch_size 0 cannot use (it would be a scalar); list at least one dimension');
      }
      // Only fully known shapes can be compared (a bad dim was reported already).
      const fixed = (s: number[]) => s.every((d) => d >= 1);
      if (fixed(t.dims) && fixed(t.reshape.shape) && t.dims.length > 0) {
        const a = t.dims.reduce((x, y) => x * y, 1);
        const b = t.reshape.shape.reduce((x, y) => x * y, 1);
        if (a !== b) issue([field, i, 'reshape', 'shape'], `[${t.reshape.shape.join(', ')}] holds ${b} elements but dims [${t.dims.join(', ')}] hold ${a}; they must match`);
      }
    }
    if ('format' in t && t.format !== 'FORMAT_NONE' && t.dims.length !== 3) {
      issue([field, i, 'dims'], `${t.format} needs 3 dimensions (without the batch dimension); found ${t.dims.length}`);
    }
  });
}

function checkPriorities(db: DynamicBatchingConfig, issue: (path: Path, message: string) => void): void {
  const levels = db.priority_levels;
  if (levels > 0) {
    if (db.default_priority_level < 1 || db.default_priority_level > levels) {
      issue(['dynamic_batching', 'default_priority_level'], `${db.default_priority_level} is outside the priority levels; use a level from 1 to ${levels}`);
    }
  } else if (db.default_priority_level !== 0) {
    issue(['dynamic_batching', 'default_priority_level'], `${db.default_priority_level} needs priority_levels; set priority_levels >= ${db.default_priority_level}`);
  }
  for (const key of Object.keys(db.priority_queue_policy)) {
    const level = Number(key);
    if (!/^\d+$/.test(key) || level < 1 || level > levels) {
      issue(['dynamic_batching', 'priority_queue_policy', key], levels === 0
        ? `priority level ${foundText(key)} needs priority_levels; set priority_levels`
        : `${foundText(key)} is not a priority level; use a level from 1 to ${levels}`);
    }
  }
  if (db.preserve_ordering) {
    if (levels > 1) issue(['dynamic_batching', 'preserve_ordering'], `true allows only one priority level; found priority_levels ${levels}`);
    const delays = (p: QueuePolicyConfig | undefined) => p !== undefined && p.timeout_action === 'DELAY' && p.default_timeout_microseconds !== 0;
    if (delays(db.default_queue_policy)) {
      issue(['dynamic_batching', 'default_queue_policy', 'timeout_action'], 'DELAY cannot be used with preserve_ordering: true; use REJECT');
    }
    for (const [key, p] of Object.entries(db.priority_queue_policy)) {
      if (delays(p)) issue(['dynamic_batching', 'priority_queue_policy', key, 'timeout_action'], 'DELAY cannot be used with preserve_ordering: true; use REJECT');
    }
  }
}

const CORRID_TYPES = ['TYPE_UINT64', 'TYPE_INT64', 'TYPE_UINT32', 'TYPE_INT32', 'TYPE_STRING'];

function checkControls(sb: SequenceBatchingConfig, issue: (path: Path, message: string) => void): void {
  const kinds = new Map<string, string>();
  const names = new Set<string>();
  sb.control_input.forEach((ci, i) => {
    const p = ['sequence_batching', 'control_input', i];
    if (ci.name === '') issue([...p, 'name'], 'is missing; name the model input that carries the control');
    else if (names.has(ci.name)) issue([...p, 'name'], `${foundText(ci.name)} is used by another control_input`);
    names.add(ci.name);
    if (ci.control.length === 0) issue([...p, 'control'], `is empty; give a control with kind one of ${CONTROL_KINDS.join(', ')}`);
    ci.control.forEach((ctl, j) => {
      const cp = [...p, 'control', j];
      const where = `control_input[${i}].control[${j}]`;
      if (kinds.has(ctl.kind)) issue([...cp, 'kind'], `${ctl.kind} is already given by ${kinds.get(ctl.kind)}; each control kind may appear once`);
      kinds.set(ctl.kind, where);
      const given = (['int32_false_true', 'fp32_false_true', 'bool_false_true'] as const).filter((k) => ctl[k].length > 0);
      if (ctl.kind === 'CONTROL_SEQUENCE_CORRID') {
        if (given.length > 0) issue([...cp, given[0]!], `is not used by ${ctl.kind}; give data_type instead`);
        if (ctl.data_type === undefined || !CORRID_TYPES.includes(ctl.data_type)) {
          issue([...cp, 'data_type'], `${foundText(ctl.data_type)} cannot carry a correlation id; use one of ${CORRID_TYPES.join(', ')}`);
        }
      } else {
        if (given.length !== 1) {
          issue(cp, `${ctl.kind} needs exactly one of int32_false_true, fp32_false_true, bool_false_true; found ${given.length === 0 ? 'none' : given.join(' and ')}`);
        } else if (ctl[given[0]!].length !== 2) {
          issue([...cp, given[0]!], `has ${ctl[given[0]!].length} values; give two: [ false_value, true_value ]`);
        }
        if (ctl.data_type !== undefined) issue([...cp, 'data_type'], `is only used by CONTROL_SEQUENCE_CORRID; remove it from ${ctl.kind}`);
      }
    });
  });
}

// ---------------------------------------------------------------------------------------------
// The text-format shape (what is repeated, what is a map), read off the zod schema so the
// parser and the schema cannot disagree.

type AnyDef = { type: string; [k: string]: unknown };

function defOf(s: unknown): AnyDef {
  return (s as { _zod: { def: AnyDef } })._zod.def;
}

/** Strips default / optional / prefault / preprocess wrappers. */
function unwrap(s: unknown): AnyDef {
  let d = defOf(s);
  for (;;) {
    if (d.type === 'default' || d.type === 'optional' || d.type === 'prefault' || d.type === 'nonoptional') d = defOf(d.innerType);
    else if (d.type === 'pipe') d = defOf(d.out);
    else return d;
  }
}

function shapeOfObject(def: AnyDef): MessageShape {
  const out: Record<string, FieldShape> = {};
  for (const [field, schema] of Object.entries(def.shape as Record<string, unknown>)) {
    const d = unwrap(schema);
    if (d.type === 'array') {
      const el = unwrap(d.element);
      out[field] = el.type === 'object' ? { repeated: true, message: shapeOfObject(el) } : { repeated: true };
    } else if (d.type === 'record') {
      const v = unwrap(d.valueType);
      out[field] = v.type === 'object' ? { map: true, message: shapeOfObject(v) } : { map: true };
    } else if (d.type === 'object') {
      out[field] = { message: shapeOfObject(d) };
    } else {
      out[field] = {};
    }
  }
  return out;
}

/** Triton's ModelConfig as the text-format parser needs to know it. */
export const MODEL_CONFIG_SHAPE: MessageShape = shapeOfObject(unwrap(ModelConfigObject));
