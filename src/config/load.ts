/**
 * Reading a model's configuration from its repository folder, validating it and filling the
 * defaults the way Triton does, plus the helpers other modules read configs through.
 *
 * Synchronous on purpose: a config is a few hundred bytes read once per (re)load, and a sync
 * reader is simpler for the repository manager to call between its own awaits.
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fromConfigType } from '../core/dtypes.js';
import type { TensorSpec } from '../core/types.js';
import { StubhostError } from '../errors.js';
import { parsePbtxt } from './pbtxt.js';
import { checkJsonNesting } from '../core/json-nesting.js';
import {
  MODEL_CONFIG_SHAPE,
  ModelConfigSchema,
  type InstanceGroupConfig,
  type ModelConfig,
  type ModelInputConfig,
  type ModelOutputConfig,
} from './schema.js';

export type { ModelConfig } from './schema.js';

export const CONFIG_PBTXT = 'config.pbtxt';
export const CONFIG_JSON = 'config.json';

/** Files in a version folder that say which backend runs the model, checked in this order. */
const BACKEND_BY_FILE: readonly (readonly [file: string, backend: string])[] = [
  ['model.ts', 'typescript'],
  ['model.onnx', 'onnxruntime'],
  // A pointer to an ONNX file elsewhere (e.g. in node_modules), resolved by the onnxruntime backend.
  ['model.onnx.path', 'onnxruntime'],
];

/** Triton's default for `sequence_batching.max_sequence_idle_microseconds` when unset or 0. */
export const DEFAULT_MAX_SEQUENCE_IDLE_US = 1_000_000;

export interface LoadConfigOptions {
  /** Config JSON from the load API (`POST /v2/repository/models/{m}/load`); replaces the file, as in Triton. */
  override?: string;
  /** Non-fatal findings (both config files present...). Default: console.warn. */
  onWarning?: (message: string) => void;
}

export interface LoadedModelConfig {
  config: ModelConfig;
  /** The file the config came from; undefined when it came from an override or no file exists. */
  file?: string;
  /** True when no config was given at all: the backend should auto-complete inputs/outputs. */
  autoComplete: boolean;
  warnings: string[];
}

// ---------------------------------------------------------------------------------------------
// Errors.

/** `input[0].dims[1]`, `parameters["a b"]`. */
export function formatFieldPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else if (typeof p === 'string' && /^[A-Za-z_][A-Za-z0-9_]*$/.test(p)) out += out === '' ? p : `.${p}`;
    else out += `[${JSON.stringify(String(p))}]`;
  }
  return out;
}

function configError(source: string, message: string, cause?: unknown): StubhostError {
  return new StubhostError('STUBHOST_CONFIG', `${source}: ${message}`, cause === undefined ? undefined : { cause });
}

/**
 * Validates a raw config object (JSON mapping) and fills the context-free defaults.
 * `source` names where it came from in error messages. Every problem found is reported, one per line.
 * The repository manager calls this again after a backend's auto-complete changed the config.
 */
export function validateModelConfig(raw: unknown, source: string): ModelConfig {
  const r = ModelConfigSchema.safeParse(raw);
  if (r.success) return r.data;
  const lines = r.error.issues.map((iss) => {
    const path = [...iss.path];
    const keys = iss.code === 'unrecognized_keys' ? iss.keys : [];
    if (keys.length === 1) path.push(keys[0]!);
    const where = formatFieldPath(path);
    return `${source}: ${where === '' ? '' : `${where}: `}${iss.message}`;
  });
  throw new StubhostError('STUBHOST_CONFIG', lines.join('\n'));
}

// ---------------------------------------------------------------------------------------------
// Reading.

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw configError(file, `cannot be read (${(err as Error).message})`, err);
  }
}

/** JSON.parse with the error position turned into line:column, like the pbtxt parser's errors. */
function parseJson(text: string, source: string): unknown {
  let value: unknown;
  try {
    checkJsonNesting(Buffer.from(text, 'utf8'), 'the config');
  } catch (err) {
    throw configError(source, (err as Error).message.replace(/; send flat.*$/, ''), err);
  }
  try {
    value = JSON.parse(text);
  } catch (err) {
    const msg = (err as Error).message;
    const pos = /position (\d+)/.exec(msg);
    if (pos) {
      const before = text.slice(0, Number(pos[1]));
      const line = before.split('\n').length;
      const col = before.length - before.lastIndexOf('\n');
      throw configError(`${source}:${line}:${col}`, `is not valid JSON (${msg})`, err);
    }
    throw configError(source, `is not valid JSON (${msg})`, err);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw configError(source, `must hold a JSON object { "name": ..., ... }; found ${Array.isArray(value) ? 'a list' : JSON.stringify(value)}`);
  }
  return value;
}

/** Numeric subfolder names, highest first. */
function versionDirs(modelDir: string): number[] {
  let names: string[];
  try {
    names = readdirSync(modelDir);
  } catch {
    return [];
  }
  return names
    .filter((n) => /^\d+$/.test(n) && isDir(join(modelDir, n)))
    .map(Number)
    .filter(Number.isSafeInteger)
    .sort((a, b) => b - a);
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** The backend the files say: default_model_filename's extension, else model.ts / model.onnx in a version folder. */
function inferBackend(modelDir: string, defaultModelFilename: string): string | undefined {
  if (defaultModelFilename.endsWith('.onnx') || defaultModelFilename.endsWith('.onnx.path')) return 'onnxruntime';
  if (defaultModelFilename.endsWith('.ts')) return 'typescript';
  for (const v of versionDirs(modelDir)) {
    for (const [file, backend] of BACKEND_BY_FILE) {
      if (existsSync(join(modelDir, String(v), file))) return backend;
    }
  }
  return undefined;
}

/**
 * Reads `<modelDir>/config.pbtxt` (or config.json, or `opts.override`), validates it and fills
 * defaults. A missing config file is allowed when the backend can be told from the files; the
 * result then has `autoComplete: true`.
 */
export function readModelConfig(modelDir: string, opts: LoadConfigOptions = {}): LoadedModelConfig {
  const folderName = basename(modelDir.replace(/[\\/]+$/, ''));
  const warnings: string[] = [];
  const warn = (m: string) => {
    warnings.push(m);
    (opts.onWarning ?? ((w: string) => console.warn(w)))(m);
  };

  let raw: unknown = {};
  let source: string;
  let file: string | undefined;
  const pbtxtPath = join(modelDir, CONFIG_PBTXT);
  const jsonPath = join(modelDir, CONFIG_JSON);
  const hasPbtxt = existsSync(pbtxtPath);
  const hasJson = existsSync(jsonPath);

  if (opts.override !== undefined) {
    source = `${modelDir} (config override of the load request)`;
    raw = parseJson(opts.override, source);
  } else if (hasPbtxt) {
    if (hasJson) warn(`${modelDir}: both ${CONFIG_PBTXT} and ${CONFIG_JSON} exist; using ${CONFIG_PBTXT} and ignoring ${CONFIG_JSON}`);
    source = file = pbtxtPath;
    raw = parsePbtxt(readText(pbtxtPath), { file: pbtxtPath, shape: MODEL_CONFIG_SHAPE, mapsAsObjects: true });
  } else if (hasJson) {
    source = file = jsonPath;
    raw = parseJson(readText(jsonPath), jsonPath);
  } else {
    source = modelDir;
  }

  const config = validateModelConfig(raw, source);
  const autoComplete = file === undefined && opts.override === undefined;
  applyDefaults(config, folderName, modelDir, source, autoComplete);
  return { config, file, autoComplete, warnings };
}

/** `readModelConfig(...).config`: the config with every default filled. Throws STUBHOST_CONFIG. */
export function loadModelConfig(modelDir: string, opts: LoadConfigOptions = {}): ModelConfig {
  return readModelConfig(modelDir, opts).config;
}

/** Triton's normalisation (model_config_utils NormalizeModelConfig), in place. */
function applyDefaults(config: ModelConfig, folderName: string, modelDir: string, source: string, noConfig: boolean): void {
  if (config.name === '') config.name = folderName;
  else if (config.name !== folderName) {
    throw configError(source, `name: ${JSON.stringify(config.name)} does not match the model folder ${JSON.stringify(folderName)}; use ${JSON.stringify(folderName)} or leave name out`);
  }

  const isEnsemble = config.platform === 'ensemble';
  if (!isEnsemble) {
    if (config.backend === '' && config.platform === 'onnxruntime_onnx') config.backend = 'onnxruntime';
    if (config.backend === '') {
      const inferred = inferBackend(modelDir, config.default_model_filename);
      if (inferred === undefined) {
        throw configError(source, noConfig
          ? `has no ${CONFIG_PBTXT} or ${CONFIG_JSON}, and no version folder holds model.ts or model.onnx; add a config naming the backend, or a version folder such as 1/model.ts`
          : 'backend: is missing and no version folder holds model.ts or model.onnx; set backend: "typescript" or "onnxruntime", or platform: "ensemble"');
      }
      config.backend = inferred;
    }
    if (config.backend === 'onnxruntime' && config.platform === '') config.platform = 'onnxruntime_onnx';
    if (config.instance_group.length === 0) config.instance_group.push(defaultInstanceGroup());
    config.instance_group.forEach((g, i) => normalizeInstanceGroup(g, config.name, i));
  } else {
    // Triton runs no instances for an ensemble: its steps' models do the work.
    config.instance_group = [];
  }

  const sb = config.sequence_batching;
  if (sb) {
    if (sb.max_sequence_idle_microseconds === 0) sb.max_sequence_idle_microseconds = DEFAULT_MAX_SEQUENCE_IDLE_US;
    if (!sb.direct && !sb.oldest) sb.direct = { max_queue_delay_microseconds: 0, minimum_slot_utilization: 0 };
  }
}

function defaultInstanceGroup(): InstanceGroupConfig {
  return { name: '', kind: 'KIND_CPU', count: 1, gpus: [], secondary_devices: [], profile: [], passive: false, host_policy: '' };
}

function normalizeInstanceGroup(g: InstanceGroupConfig, modelName: string, index: number): void {
  if (g.name === '') g.name = `${modelName}_${index}`;
  if (g.count === 0) g.count = 1;
  // No GPU support: KIND_AUTO is a CPU group unless it names GPUs (then the manager reports it).
  if (g.kind === 'KIND_AUTO') g.kind = g.gpus.length > 0 ? 'KIND_GPU' : 'KIND_CPU';
}

// ---------------------------------------------------------------------------------------------
// Helpers for the rest of the host.

function toSpec(t: ModelInputConfig | ModelOutputConfig): TensorSpec {
  const datatype = t.data_type === undefined ? undefined : fromConfigType(t.data_type);
  if (datatype === undefined) {
    throw new StubhostError('STUBHOST_CONFIG', `${t.name}: data_type ${JSON.stringify(t.data_type)} is not a data type (the config was not validated)`);
  }
  const spec: TensorSpec = { name: t.name, datatype, dims: [...t.dims] };
  if (t.reshape) spec.reshape = [...t.reshape.shape];
  if ('optional' in t && t.optional) spec.optional = true;
  return spec;
}

export function inputSpecs(config: ModelConfig): TensorSpec[] {
  return config.input.map(toSpec);
}

export function outputSpecs(config: ModelConfig): TensorSpec[] {
  return config.output.map(toSpec);
}

/** `parameters { key: "k" value: { string_value: "v" } }` → "v". */
export function modelParameter(config: ModelConfig, key: string): string | undefined {
  return Object.hasOwn(config.parameters, key) ? config.parameters[key]!.string_value : undefined;
}

export function isDecoupled(config: ModelConfig): boolean {
  return config.model_transaction_policy?.decoupled === true;
}

/** `ensemble_scheduling.step[].model_version` meaning "the newest loaded version". */
export const LATEST_VERSION = -1;

// ---------------------------------------------------------------------------------------------
// The JSON Triton's `GET /v2/models/{m}/config` returns.

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/**
 * The config as Triton's config endpoint shows it: protobuf JSON with proto field names, every
 * scalar and repeated field printed with its default, messages only when set, int64 as numbers,
 * and fields in model_config.proto's declaration order.
 */
export function configToJson(config: ModelConfig): Record<string, Json> {
  const out: Record<string, Json> = {
    name: config.name,
    platform: config.platform,
    backend: config.backend,
    runtime: config.runtime,
    version_policy: versionPolicyJson(config),
    max_batch_size: config.max_batch_size,
    input: config.input.map((t) => ({
      name: t.name,
      data_type: t.data_type ?? 'TYPE_INVALID',
      format: t.format,
      dims: [...t.dims],
      ...(t.reshape ? { reshape: { shape: [...t.reshape.shape] } } : {}),
      is_shape_tensor: t.is_shape_tensor,
      allow_ragged_batch: t.allow_ragged_batch,
      optional: t.optional,
      is_non_linear_format_io: t.is_non_linear_format_io,
    })),
    output: config.output.map((t) => ({
      name: t.name,
      data_type: t.data_type ?? 'TYPE_INVALID',
      dims: [...t.dims],
      ...(t.reshape ? { reshape: { shape: [...t.reshape.shape] } } : {}),
      label_filename: t.label_filename,
      is_shape_tensor: t.is_shape_tensor,
      is_non_linear_format_io: t.is_non_linear_format_io,
    })),
    batch_input: config.batch_input.map((b) => ({
      kind: b.kind,
      target_name: [...b.target_name],
      data_type: b.data_type ?? 'TYPE_INVALID',
      source_input: [...b.source_input],
    })),
    batch_output: config.batch_output.map((b) => ({ target_name: [...b.target_name], kind: b.kind, source_input: [...b.source_input] })),
    optimization: plain(config.optimization),
  };
  const db = config.dynamic_batching;
  if (db) {
    out.dynamic_batching = {
      preferred_batch_size: [...db.preferred_batch_size],
      max_queue_delay_microseconds: db.max_queue_delay_microseconds,
      preserve_ordering: db.preserve_ordering,
      priority_levels: db.priority_levels,
      default_priority_level: db.default_priority_level,
      ...(db.default_queue_policy ? { default_queue_policy: plain(db.default_queue_policy) } : {}),
      priority_queue_policy: plain(db.priority_queue_policy),
    };
  }
  const sb = config.sequence_batching;
  if (sb) {
    out.sequence_batching = {
      ...(sb.direct ? { direct: plain(sb.direct) } : {}),
      ...(sb.oldest ? { oldest: plain(sb.oldest) } : {}),
      max_sequence_idle_microseconds: sb.max_sequence_idle_microseconds,
      control_input: sb.control_input.map((ci) => ({
        name: ci.name,
        control: ci.control.map((c) => ({
          kind: c.kind,
          int32_false_true: [...c.int32_false_true],
          fp32_false_true: [...c.fp32_false_true],
          bool_false_true: [...c.bool_false_true],
          data_type: c.data_type ?? 'TYPE_INVALID',
        })),
      })),
      state: sb.state.map((s) => ({
        input_name: s.input_name,
        output_name: s.output_name,
        data_type: s.data_type ?? 'TYPE_INVALID',
        dims: [...s.dims],
        initial_state: s.initial_state.map((i) => ({
          data_type: i.data_type ?? 'TYPE_INVALID',
          dims: [...i.dims],
          ...(i.zero_data !== undefined ? { zero_data: i.zero_data } : {}),
          ...(i.data_file !== undefined ? { data_file: i.data_file } : {}),
          name: i.name,
        })),
        use_same_buffer_for_input_output: s.use_same_buffer_for_input_output,
        use_growable_memory: s.use_growable_memory,
      })),
      iterative_sequence: sb.iterative_sequence,
    };
  }
  if (config.ensemble_scheduling) out.ensemble_scheduling = plain(config.ensemble_scheduling);
  out.instance_group = config.instance_group.map((g) => ({
    name: g.name,
    kind: g.kind,
    count: g.count,
    gpus: [...g.gpus],
    secondary_devices: plain(g.secondary_devices),
    profile: [...g.profile],
    passive: g.passive,
    host_policy: g.host_policy,
    ...(g.rate_limiter ? { rate_limiter: plain(g.rate_limiter) } : {}),
  }));
  out.default_model_filename = config.default_model_filename;
  out.cc_model_filenames = plain(config.cc_model_filenames);
  out.metric_tags = plain(config.metric_tags);
  out.parameters = plain(config.parameters);
  out.model_warmup = plain(config.model_warmup);
  if (config.model_operations) out.model_operations = plain(config.model_operations);
  if (config.model_transaction_policy) out.model_transaction_policy = plain(config.model_transaction_policy);
  if (config.model_repository_agents) out.model_repository_agents = plain(config.model_repository_agents);
  if (config.response_cache) out.response_cache = plain(config.response_cache);
  if (config.model_metrics) out.model_metrics = plain(config.model_metrics);
  return out;
}

function versionPolicyJson(config: ModelConfig): Json {
  const vp = config.version_policy;
  if (vp.all) return { all: {} };
  if (vp.specific) return { specific: { versions: [...vp.specific.versions] } };
  return { latest: { num_versions: vp.latest?.num_versions ?? 1 } };
}

/** A deep copy without undefined-valued keys (they are unset oneof members / optional messages). */
function plain<T>(v: T): Json {
  return JSON.parse(JSON.stringify(v)) as Json;
}
