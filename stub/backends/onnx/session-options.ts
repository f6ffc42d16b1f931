/**
 * onnxruntime-node session options from a model config, in Triton's onnxruntime backend terms:
 *
 *   parameters { key: "intra_op_thread_count" value { string_value: "2" } }   threads inside an op
 *   parameters { key: "inter_op_thread_count" value { string_value: "1" } }   threads across ops
 *   parameters { key: "execution_mode" value { string_value: "0" } }          0 sequential, 1 parallel
 *   parameters { key: "enable_mem_arena" value { string_value: "1" } }        CPU memory arena
 *   parameters { key: "enable_mem_pattern" value { string_value: "1" } }
 *   optimization { graph { level: 1 } }        Triton's levels: -1 basic, 1 extended, 2 disabled, else all
 *   optimization { execution_accelerators { gpu_execution_accelerator [{ name: "tensorrt" }] } }
 *
 * stubhost additions (no Triton equivalent):
 *   parameters { key: "graph_optimization_level" value { string_value: "extended" } }
 *       disabled | basic | extended | layout | all (overrides optimization.graph.level)
 *   parameters { key: "execution_providers" value { string_value: "cuda,cpu" } }
 *       onnxruntime-node provider names in order of preference.
 *
 * Providers: the parameter, else the accelerators, else `cuda` for KIND_GPU instances; `cpu` is
 * always appended last, and the backend retries with `cpu` alone when a provider cannot load.
 */
import type { InferenceSession } from 'onnxruntime-node';

type SessionOptions = InferenceSession.SessionOptions;
type Level = NonNullable<SessionOptions['graphOptimizationLevel']>;

export interface SessionPlan {
  options: SessionOptions;
  /** Provider names tried first; `['cpu']` when nothing else was asked for. */
  providers: string[];
}

const LEVELS: readonly Level[] = ['disabled', 'basic', 'extended', 'layout', 'all'];

interface ConfigLike {
  parameters?: Record<string, { string_value?: string } | string | undefined>;
  optimization?: {
    graph?: { level?: number | string };
    execution_accelerators?: {
      gpu_execution_accelerator?: { name?: string; parameters?: Record<string, string> }[];
      cpu_execution_accelerator?: { name?: string; parameters?: Record<string, string> }[];
    };
  };
}

export function parameter(config: ConfigLike, key: string): string | undefined {
  const p = config.parameters?.[key];
  if (p === undefined) return undefined;
  const v = typeof p === 'string' ? p : p.string_value;
  return v === undefined || v.trim() === '' ? undefined : v.trim();
}

function intParam(config: ConfigLike, key: string, min: number): number | undefined {
  const v = parameter(config, key);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`config parameter ${key}: '${v}' is not an integer >= ${min}`);
  return n;
}

function boolParam(config: ConfigLike, key: string): boolean | undefined {
  const v = parameter(config, key)?.toLowerCase();
  if (v === undefined) return undefined;
  if (['1', 'true', 'on', 'yes'].includes(v)) return true;
  if (['0', 'false', 'off', 'no'].includes(v)) return false;
  throw new Error(`config parameter ${key}: '${v}' is not a boolean; use "1" or "0"`);
}

/** Triton's optimization.graph.level numbers, as its onnxruntime backend reads them. */
function tritonLevel(level: number | string | undefined): Level | undefined {
  if (level === undefined || level === '') return undefined;
  const n = Number(level);
  if (!Number.isInteger(n)) throw new Error(`optimization.graph.level: '${level}' is not an integer (-1 basic, 1 extended, 2 disabled, other: all)`);
  if (n === -1) return 'basic';
  if (n === 1) return 'extended';
  if (n === 2) return 'disabled';
  return 'all';
}

export function sessionPlan(config: ConfigLike, instanceKind: string, deviceId: number): SessionPlan {
  const options: SessionOptions = {};
  const intra = intParam(config, 'intra_op_thread_count', 0);
  const inter = intParam(config, 'inter_op_thread_count', 0);
  if (intra !== undefined && intra > 0) options.intraOpNumThreads = intra;
  if (inter !== undefined && inter > 0) options.interOpNumThreads = inter;

  const mode = parameter(config, 'execution_mode');
  if (mode !== undefined) {
    if (mode === '0' || mode === 'sequential') options.executionMode = 'sequential';
    else if (mode === '1' || mode === 'parallel') options.executionMode = 'parallel';
    else throw new Error(`config parameter execution_mode: '${mode}' is not 0 (sequential) or 1 (parallel)`);
  }
  const arena = boolParam(config, 'enable_mem_arena');
  if (arena !== undefined) options.enableCpuMemArena = arena;
  const pattern = boolParam(config, 'enable_mem_pattern');
  if (pattern !== undefined) options.enableMemPattern = pattern;

  let level = tritonLevel(config.optimization?.graph?.level);
  const named = parameter(config, 'graph_optimization_level');
  if (named !== undefined) {
    if (!(LEVELS as readonly string[]).includes(named)) {
      throw new Error(`config parameter graph_optimization_level: '${named}' is not one of ${LEVELS.join(', ')}`);
    }
    level = named as Level;
  }
  if (level) options.graphOptimizationLevel = level;

  let providers: string[] = [];
  const listed = parameter(config, 'execution_providers');
  if (listed !== undefined) {
    providers = listed.split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);
  } else {
    const acc = config.optimization?.execution_accelerators;
    const names = [...(acc?.gpu_execution_accelerator ?? []), ...(acc?.cpu_execution_accelerator ?? [])]
      .map((a) => (a.name ?? '').toLowerCase())
      .filter(Boolean);
    if (names.length > 0) providers = names;
    else if (instanceKind === 'KIND_GPU') providers = ['cuda'];
  }
  providers = providers.filter((p) => p !== 'cpu');
  const gpuBound = (p: string) => p === 'cuda' || p === 'tensorrt';
  options.executionProviders = [
    ...providers.map((name) => (gpuBound(name) ? { name, deviceId } : name)),
    'cpu',
  ] as SessionOptions['executionProviders'];
  return { options, providers: [...providers, 'cpu'] };
}
