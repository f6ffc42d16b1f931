/**
 * Model parameters read in more than one place, or checked before use
 * (`parameters { key: "..." value { string_value: "..." } }`): one definition each, so the host's
 * scheduler and the stub agree on them and a bad value is refused the same way everywhere.
 */

export type ParameterMap = Record<string, { string_value?: string }> | undefined;

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
  const raw = parameters?.[key]?.string_value;
  if (raw === undefined) return dflt;
  const n = raw.trim() === '' ? NaN : Number(raw);
  if (!valid(n) || n < 0) throw new Error(`parameter '${key}' is ${JSON.stringify(raw)}; expected ${what} (>= 0; 0 turns it off)`);
  return n;
}

/**
 * Where a model's stubs run (the model parameter `isolation`): `process`, the default, a child
 * process per instance; `thread`, a worker thread of the host per instance. Both speak the same
 * region, queues and arenas. Triton's ModelInstanceGroup has no parameters field (its
 * model_config.proto), so the choice is per model, for all its instance groups.
 */
export const ISOLATIONS = ['process', 'thread'] as const;
export type Isolation = (typeof ISOLATIONS)[number];
export const ISOLATION_PARAMETER = 'isolation';
/** Starts a model's stubs with an inspector (src/instance/debug-inspect.ts). */
export const DEBUG_INSPECT_PORT_PARAMETER = 'debug_inspect_port';

/** The model's isolation; throws a message naming the allowed values for any other value. */
export function isolationOf(parameters: ParameterMap): Isolation {
  const raw = parameters?.[ISOLATION_PARAMETER]?.string_value;
  if (raw === undefined || raw === '') return 'process';
  if ((ISOLATIONS as readonly string[]).includes(raw)) return raw as Isolation;
  throw new Error(`${JSON.stringify(raw)} is not an isolation; use "process" (the default: a child process per instance) or "thread" (a worker thread of the server per instance)`);
}
