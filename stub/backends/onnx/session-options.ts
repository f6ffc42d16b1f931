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
 * The parameters are parsed with the model's other settings (src/core/model-parameters.ts) and
 * come in the stub's init args; the optimization fields are read here.
 *
 * Providers: the parameter, else the accelerators, else `cuda` for KIND_GPU instances; `cpu` is
 * always appended last, and the backend retries with `cpu` alone when a provider cannot load.
 */
import type { InferenceSession } from 'onnxruntime-node';
import type { OnnxSessionSettings } from '../../../src/core/model-parameters.js';

type SessionOptions = InferenceSession.SessionOptions;
type Level = NonNullable<SessionOptions['graphOptimizationLevel']>;

export interface SessionPlan {
  options: SessionOptions;
  /** Provider names tried first; `['cpu']` when nothing else was asked for. */
  providers: string[];
}

interface ConfigLike {
  optimization?: {
    graph?: { level?: number | string };
    execution_accelerators?: {
      gpu_execution_accelerator?: { name?: string; parameters?: Record<string, string> }[];
      cpu_execution_accelerator?: { name?: string; parameters?: Record<string, string> }[];
    };
  };
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

export function sessionPlan(settings: OnnxSessionSettings, config: ConfigLike, instanceKind: string, deviceId: number): SessionPlan {
  const options: SessionOptions = {};
  const intra = settings.intraOpThreadCount;
  const inter = settings.interOpThreadCount;
  if (intra !== undefined && intra > 0) options.intraOpNumThreads = intra;
  if (inter !== undefined && inter > 0) options.interOpNumThreads = inter;
  if (settings.executionMode !== undefined) options.executionMode = settings.executionMode;
  if (settings.enableMemArena !== undefined) options.enableCpuMemArena = settings.enableMemArena;
  if (settings.enableMemPattern !== undefined) options.enableMemPattern = settings.enableMemPattern;

  const fromGraph = tritonLevel(config.optimization?.graph?.level);
  const level: Level | undefined = settings.graphOptimizationLevel ?? fromGraph;
  if (level) options.graphOptimizationLevel = level;

  let providers: string[] = [];
  const listed = settings.executionProviders;
  if (listed !== undefined) {
    providers = [...listed];
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
