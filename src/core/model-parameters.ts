/**
 * A model's settings from its config's `parameters` (`parameters { key: "..." value { string_value:
 * "..." } }`), parsed once into one typed object: the host reads it for its instances and
 * scheduler, and hands it to the stub in its init args (src/ipc/protocol.ts InitArgs.settings), so
 * the host and the stub agree on every value and a bad one is refused once, at load.
 *
 * Only the parameters stubhost itself reads are here; any other key is the model's own business
 * (a TypeScript model sees every parameter in its config). A value that is not set is left out
 * (undefined): the server default applies where there is one.
 */

export type ParameterMap = Record<string, { string_value?: string }> | undefined;

/** Where a model's stubs run; see ISOLATIONS. */
export type Isolation = (typeof ISOLATIONS)[number];

/** onnxruntime-node session options, for the onnxruntime backend (stub/backends/onnx/session-options.ts). */
export interface OnnxSessionSettings {
  /** intra_op_thread_count: threads inside an op (0: onnxruntime's default). */
  intraOpThreadCount?: number;
  /** inter_op_thread_count: threads across ops (0: onnxruntime's default). */
  interOpThreadCount?: number;
  /** execution_mode: 0 / sequential, 1 / parallel. */
  executionMode?: 'sequential' | 'parallel';
  /** enable_mem_arena: the CPU memory arena. */
  enableMemArena?: boolean;
  enableMemPattern?: boolean;
  /** graph_optimization_level (stubhost's; overrides optimization.graph.level). */
  graphOptimizationLevel?: OnnxGraphLevel;
  /** execution_providers (stubhost's): onnxruntime-node provider names in order of preference. */
  executionProviders?: string[];
}

export const ONNX_GRAPH_LEVELS = ['disabled', 'basic', 'extended', 'layout', 'all'] as const;
export type OnnxGraphLevel = (typeof ONNX_GRAPH_LEVELS)[number];

export interface ModelSettings {
  /** isolation: `process` (the default) or `thread`. */
  isolation: Isolation;
  /** debug_inspect_port: start the stubs with an inspector on this loopback port (0: any free one). */
  debugInspectPort?: number;
  /** memory_limit_bytes: the cap on one stub's resident memory (0: none); else --stub-memory-limit-bytes. */
  memoryLimitBytes?: number;
  /** unload_grace_seconds, in ms: how long unload lets running executes finish; else --unload-grace-secs. */
  unloadGraceMs?: number;
  /** max_inflight_per_instance: executions one instance may run at once (Triton: 1). */
  maxInflightPerInstance: number;
  /** instance_prefetch: batches sent ahead to a busy instance; unset: the scheduler's default. */
  instancePrefetch?: number;
  /** priority_aging_microseconds: promote a waiting request of level > 1 after this long (0: off). */
  priorityAgingUs: number;
  /** stub_timeout_seconds, in ms: the stub's health timeout; else --stub-timeout-secs. */
  stubTimeoutMs?: number;
  /** execute_timeout_seconds, in ms: an execute running longer kills the stub (unset: none). */
  executeTimeoutMs?: number;
  /** shm_max_bytes: the cap on the host's arena for one stub (0 or unset: the server's). */
  shmMaxBytes?: number;
  /** The onnxruntime backend's session options (only for backend "onnxruntime"). */
  onnx?: OnnxSessionSettings;
}

/**
 * Parses every parameter stubhost reads. Throws a message naming the parameter for the first bad
 * value (the caller adds the model and its folder). `backend`: the ONNX parameters are read only
 * for "onnxruntime" (for any other backend they are the model's own).
 */
export function parseModelSettings(parameters: ParameterMap, backend?: string): ModelSettings {
  const seconds = (key: string): number | undefined => {
    const v = raw(parameters, key);
    return v === undefined || v === '' || Number.isNaN(Number(v)) ? undefined : Number(v) * 1000;
  };
  const prefetch = raw(parameters, 'instance_prefetch');
  const shm = Number(raw(parameters, 'shm_max_bytes') ?? 0) || 0;
  const settings: ModelSettings = {
    isolation: isolationOf(parameters),
    maxInflightPerInstance: maxInflightPerInstance(parameters),
    priorityAgingUs: Number(raw(parameters, 'priority_aging_microseconds') ?? 0) || 0,
  };
  const port = debugInspectPortOf(parameters);
  if (port !== undefined) settings.debugInspectPort = port;
  if (raw(parameters, 'memory_limit_bytes') !== undefined) settings.memoryLimitBytes = memoryLimitBytes(parameters, 0);
  if (raw(parameters, 'unload_grace_seconds') !== undefined) settings.unloadGraceMs = unloadGraceMs(parameters, 0);
  if (prefetch !== undefined && prefetch !== '') settings.instancePrefetch = Math.max(0, Math.floor(Number(prefetch) || 0));
  const stubTimeout = seconds('stub_timeout_seconds');
  if (stubTimeout !== undefined) settings.stubTimeoutMs = stubTimeout;
  const executeTimeout = seconds('execute_timeout_seconds');
  if (executeTimeout !== undefined) settings.executeTimeoutMs = executeTimeout;
  if (shm > 0) settings.shmMaxBytes = shm;
  if (backend === 'onnxruntime') settings.onnx = onnxSessionSettings(parameters);
  return settings;
}

function raw(parameters: ParameterMap, key: string): string | undefined {
  return parameters !== undefined && Object.hasOwn(parameters, key) ? parameters[key]!.string_value : undefined;
}

/** Executions one instance may run at once (max_inflight_per_instance; Triton: 1). */
export function maxInflightPerInstance(parameters: ParameterMap): number {
  return Math.max(1, Math.floor(Number(parameters?.max_inflight_per_instance?.string_value ?? 1) || 1));
}

/**
 * The cap on one stub's resident memory (memory_limit_bytes; 0 = no cap), else `serverDefault`
 * (--stub-memory-limit-bytes). Throws a message naming the parameter for a value that is not a
 * non-negative integer, so a typo is a load error rather than a cap silently off.
 */
export function memoryLimitBytes(parameters: ParameterMap, serverDefault: number): number {
  return nonNegative(parameters, 'memory_limit_bytes', 'a whole number of bytes', serverDefault, Number.isSafeInteger);
}

/**
 * How long unload and reload let running executes finish before the stub is killed
 * (unload_grace_seconds), else `serverDefaultMs` (--unload-grace-secs). In ms.
 */
export function unloadGraceMs(parameters: ParameterMap, serverDefaultMs: number): number {
  const seconds = nonNegative(parameters, 'unload_grace_seconds', 'a number of seconds', serverDefaultMs / 1000, Number.isFinite);
  return seconds * 1000;
}

function nonNegative(parameters: ParameterMap, key: string, what: string, dflt: number, valid: (n: number) => boolean): number {
  const value = parameters?.[key]?.string_value;
  if (value === undefined) return dflt;
  const n = value.trim() === '' ? NaN : Number(value);
  if (!valid(n) || n < 0) throw new Error(`parameter '${key}' is ${JSON.stringify(value)}; expected ${what} (>= 0; 0 turns it off)`);
  return n;
}

/**
 * Where a model's stubs run (the model parameter `isolation`): `process`, the default, a child
 * process per instance; `thread`, a worker thread of the host per instance. Both speak the same
 * region, queues and arenas. Triton's ModelInstanceGroup has no parameters field (its
 * model_config.proto), so the choice is per model, for all its instance groups.
 */
export const ISOLATIONS = ['process', 'thread'] as const;
export const ISOLATION_PARAMETER = 'isolation';
/** Starts a model's stubs with an inspector (src/instance/debug-inspect.ts). */
export const DEBUG_INSPECT_PORT_PARAMETER = 'debug_inspect_port';

/** The model's isolation; throws a message naming the allowed values for any other value. */
export function isolationOf(parameters: ParameterMap): Isolation {
  const value = parameters?.[ISOLATION_PARAMETER]?.string_value;
  if (value === undefined || value === '') return 'process';
  if ((ISOLATIONS as readonly string[]).includes(value)) return value as Isolation;
  throw new Error(`${JSON.stringify(value)} is not an isolation; use "process" (the default: a child process per instance) or "thread" (a worker thread of the server per instance)`);
}

/** The debug_inspect_port, or undefined when it is not set; throws for a value that is not a port. */
export function debugInspectPortOf(parameters: ParameterMap): number | undefined {
  const value = (parameters as Record<string, { string_value?: unknown }> | undefined)?.[DEBUG_INSPECT_PORT_PARAMETER]?.string_value;
  if (value === undefined || value === '') return undefined;
  const port = Number(value);
  if (typeof value !== 'string' || !/^\d+$/.test(value.trim()) || port > 65535) {
    throw new Error(`parameters["${DEBUG_INSPECT_PORT_PARAMETER}"]: ${JSON.stringify(value)} is not a port; give 0..65535 (0 = any free port)`);
  }
  return port;
}

/**
 * The onnxruntime backend's parameters, in Triton's onnxruntime backend terms (its
 * intra_op_thread_count, inter_op_thread_count, execution_mode, enable_mem_arena,
 * enable_mem_pattern), and stubhost's graph_optimization_level and execution_providers.
 * A value may also be given as a plain string (a config written as JSON).
 */
export function onnxSessionSettings(parameters: Record<string, { string_value?: string } | string | undefined> | undefined): OnnxSessionSettings {
  const param = (key: string): string | undefined => {
    const p = parameters?.[key];
    if (p === undefined) return undefined;
    const v = typeof p === 'string' ? p : p.string_value;
    return v === undefined || v.trim() === '' ? undefined : v.trim();
  };
  const int = (key: string, min: number): number | undefined => {
    const v = param(key);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new Error(`config parameter ${key}: '${v}' is not an integer >= ${min}`);
    return n;
  };
  const bool = (key: string): boolean | undefined => {
    const v = param(key)?.toLowerCase();
    if (v === undefined) return undefined;
    if (['1', 'true', 'on', 'yes'].includes(v)) return true;
    if (['0', 'false', 'off', 'no'].includes(v)) return false;
    throw new Error(`config parameter ${key}: '${v}' is not a boolean; use "1" or "0"`);
  };
  const out: OnnxSessionSettings = {};
  const intra = int('intra_op_thread_count', 0);
  if (intra !== undefined) out.intraOpThreadCount = intra;
  const inter = int('inter_op_thread_count', 0);
  if (inter !== undefined) out.interOpThreadCount = inter;
  const mode = param('execution_mode');
  if (mode !== undefined) {
    if (mode === '0' || mode === 'sequential') out.executionMode = 'sequential';
    else if (mode === '1' || mode === 'parallel') out.executionMode = 'parallel';
    else throw new Error(`config parameter execution_mode: '${mode}' is not 0 (sequential) or 1 (parallel)`);
  }
  const arena = bool('enable_mem_arena');
  if (arena !== undefined) out.enableMemArena = arena;
  const pattern = bool('enable_mem_pattern');
  if (pattern !== undefined) out.enableMemPattern = pattern;
  const level = param('graph_optimization_level');
  if (level !== undefined) {
    if (!(ONNX_GRAPH_LEVELS as readonly string[]).includes(level)) {
      throw new Error(`config parameter graph_optimization_level: '${level}' is not one of ${ONNX_GRAPH_LEVELS.join(', ')}`);
    }
    out.graphOptimizationLevel = level as OnnxGraphLevel;
  }
  const providers = param('execution_providers');
  if (providers !== undefined) out.executionProviders = providers.split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);
  return out;
}
