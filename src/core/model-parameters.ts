/**
 * Model parameters both sides read (`parameters { key: "..." value { string_value: "..." } }`):
 * one definition, so the host's scheduler and the stub agree on them.
 */

export type ParameterMap = Record<string, { string_value?: string }> | undefined;

/** Executions one instance may run at once (max_inflight_per_instance; Triton: 1). */
export function maxInflightPerInstance(parameters: ParameterMap): number {
  return Math.max(1, Math.floor(Number(parameters?.max_inflight_per_instance?.string_value ?? 1) || 1));
}
