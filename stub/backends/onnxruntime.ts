/**
 * The `onnxruntime` backend: serves `<version>/model.onnx` with onnxruntime-node and no model
 * code. The stub loads this class exactly like a model.ts default export, so it runs in its own
 * process like every instance (a crash inside ORT takes down one stub, not the server).
 *
 * - autoCompleteConfig fills inputs, outputs and max_batch_size from the file's graph and checks
 *   the config against it, as Triton's onnxruntime backend does (onnx/complete-config.ts).
 * - Sequence models: the control inputs (START, END, READY, CORRID) and implicit-state inputs the
 *   sequence batcher adds to each request are graph inputs like the others and are fed to
 *   session.run as they come; state outputs are graph outputs, fetched whenever asked for (the
 *   host asks for them on every request of a sequence and keeps them).
 * - Scalars: a rank-0 graph tensor is `dims: [ 1 ]` in the config (Triton's convention); the
 *   request's one element goes to ORT with shape [], and a rank-0 output comes back with the
 *   shape the config gives it (reshape shape, else dims), as Triton's backend does
 *   (onnxruntime.cc SetInputTensors, and scalar_outputs_ in ReadOutputTensors' caller).
 * - execute runs the requests of a dynamic batch as one `session.run` when max_batch_size > 0:
 *   requests whose non-batch dims agree are concatenated along the first dim and the outputs are
 *   split back (views); requests of other shapes run as their own groups. With max_batch_size 0
 *   every request is its own run.
 * - Inputs: onnxruntime-node rejects typed arrays over a SharedArrayBuffer ("Invalid argument",
 *   checked with 1.30), and the stub's inputs view the shared arena; so each input is copied once
 *   into an ordinary buffer (the concatenation of a batch is that copy). Inputs that already sit
 *   in an ordinary buffer go to ORT as they are.
 * - A failing run becomes an error response for the requests of that run, naming the model and
 *   carrying ORT's message; requests that fail validation fail alone, before ORT sees them.
 */
import path from 'node:path';
import ort from 'onnxruntime-node';
import { elementCount, type NumericTypedArray } from '../../src/core/dtypes.js';
import { concatInputs, splitOutput } from '../api/batching.js';
import { ModelError } from '../api/errors.js';
import { logger } from '../api/logger.js';
import type { Model, ModelConfig, ModelInitArgs } from '../api/model.js';
import type { InferenceRequest } from '../api/request.js';
import { InferenceResponse } from '../api/response.js';
import { Tensor } from '../api/tensor.js';
import { completeConfig } from './onnx/complete-config.js';
import { readGraphIO, type GraphIO } from './onnx/graph-io.js';
import { ioSpec, list, type IOSpec } from './onnx/io-spec.js';
import { resolveModelFile } from '../../src/core/model-file.js';
import { sessionPlan } from './onnx/session-options.js';
import { onnxSessionSettings, type ModelSettings } from '../../src/core/model-parameters.js';
import { dtypeOfOrt, type OrtType } from './onnx/types.js';

export { completeConfig, DEFAULT_MAX_BATCH_SIZE } from './onnx/complete-config.js';

/** Where the model file is: what InitArgs carries (src/ipc/protocol.ts). */
export interface ModelFileArgs {
  modelFile?: string;
  modelDir?: string;
  modelRepository?: string;
  modelName?: string;
  modelVersion?: number;
  /** The model's parsed parameters (InitArgs.settings). */
  settings?: ModelSettings;
}

export default class OnnxRuntimeBackend implements Model {
  private session?: ort.InferenceSession;
  private modelName = '';
  private file = '';
  private maxBatchSize = 0;
  private inputs: IOSpec[] = [];
  private outputs: IOSpec[] = [];
  /** Rank-0 graph outputs: the shape the config gives them, which clients get. */
  private scalarOutputShapes = new Map<string, number[]>();

  /**
   * Completes `config` from the ONNX file. `args` locates the file; the stub should pass its
   * InitArgs (until it does, the stub's runtime is asked for them).
   */
  static autoCompleteConfig(config: ModelConfig, args?: ModelFileArgs): ModelConfig {
    const file = locateModelFile(config, args);
    return completeConfig(config, readGraphIO(file), file);
  }

  async initialize(args: ModelInitArgs & ModelFileArgs): Promise<void> {
    this.modelName = args.modelName;
    const fileArgs: ModelFileArgs = args;
    let io: GraphIO;
    try {
      this.file = locateModelFile(args.modelConfig, fileArgs);
      io = readGraphIO(this.file);
    } catch (err) {
      throw new ModelError(`model '${args.modelName}': ${(err as Error).message}`, 'INVALID_ARG');
    }
    // The host hands over the completed config; completing again is a no-op then, and makes the
    // backend usable with a config that was never completed.
    const config = completeConfig(args.modelConfig, io, this.file);
    this.maxBatchSize = config.max_batch_size;
    this.inputs = io.inputs.map((v) => ioSpec(v, 'input', this.file));
    this.outputs = io.outputs.map((v) => ioSpec(v, 'output', this.file));
    this.scalarOutputShapes = scalarOutputShapes(config, this.outputs);

    // The host parsed the parameters at load (InitArgs.settings); a backend used on its own parses them here.
    const onnx = args.settings?.onnx ?? onnxSessionSettings(config.parameters);
    const plan = sessionPlan(onnx, config as Parameters<typeof sessionPlan>[1], args.instanceKind, args.instanceDeviceId);
    try {
      this.session = await ort.InferenceSession.create(this.file, plan.options);
    } catch (err) {
      if (plan.providers.length <= 1) throw loadError(args.modelName, this.file, err);
      logger.warn(`model '${args.modelName}': execution providers [${plan.providers.join(', ')}] failed (${(err as Error).message}); falling back to cpu`);
      try {
        this.session = await ort.InferenceSession.create(this.file, { ...plan.options, executionProviders: ['cpu'] });
      } catch (err2) {
        throw loadError(args.modelName, this.file, err2);
      }
    }
  }

  async execute(requests: InferenceRequest[]): Promise<InferenceResponse[]> {
    const session = this.session;
    if (!session) throw new ModelError(`model '${this.modelName}': execute before initialize`, 'UNAVAILABLE');
    const responses: InferenceResponse[] = new Array(requests.length);
    const groups = new Map<string, number[]>();
    requests.forEach((r, i) => {
      const problem = this.validate(r);
      if (problem) {
        responses[i] = new InferenceResponse({ error: new ModelError(`model '${this.modelName}': ${problem}`, 'INVALID_ARG') });
        return;
      }
      const key = this.maxBatchSize > 0 ? this.inputs.map((s) => r.input(s.name)!.shape.slice(1).join('x')).join('|') : `#${i}`;
      let g = groups.get(key);
      if (!g) groups.set(key, (g = []));
      g.push(i);
    });
    for (const idx of groups.values()) {
      const group = idx.map((i) => requests[i]!);
      const results = await this.runGroup(session, group);
      idx.forEach((i, k) => {
        responses[i] = results[k]!;
      });
    }
    return responses;
  }

  async finalize(): Promise<void> {
    const s = this.session;
    this.session = undefined;
    await s?.release();
  }

  /** Why ORT would reject this request, or undefined. Checked here so the message names the model's terms. */
  private validate(r: InferenceRequest): string | undefined {
    for (const t of r.inputs) {
      if (!this.inputs.some((s) => s.name === t.name)) return `unknown input '${t.name}'; the model's inputs are ${list(this.inputs)}`;
    }
    for (const s of this.inputs) {
      const t = r.input(s.name);
      if (!t) return `input '${s.name}' is missing; the model needs ${list(this.inputs)}`;
      if (t.dtype !== s.dtype) return `input '${s.name}' is ${t.dtype}, the model takes ${s.dtype}`;
      if (s.dims && s.dims.length === 0) {
        // A scalar: the config's dims [1] (or any shape of one element) carry its one value.
        if (elementCount(t.shape) !== 1) return `input '${s.name}' has shape [${t.shape.join(', ')}], the model takes a scalar (one element, e.g. shape [1])`;
        continue;
      }
      if (s.dims) {
        const want = s.dims;
        if (t.shape.length !== want.length || t.shape.some((d, k) => want[k] !== -1 && want[k] !== d)) {
          return `input '${s.name}' has shape [${t.shape.join(', ')}], the model takes [${want.join(', ')}]${this.maxBatchSize > 0 ? ' (batch dim first)' : ''}`;
        }
      }
      if (this.maxBatchSize > 0 && t.shape[0]! > this.maxBatchSize) {
        return `input '${s.name}' has batch size ${t.shape[0]}, above max_batch_size ${this.maxBatchSize}`;
      }
    }
    for (const name of r.requestedOutputNames) {
      if (!this.outputs.some((s) => s.name === name)) return `unknown output '${name}' requested; the model's outputs are ${list(this.outputs)}`;
    }
    return undefined;
  }

  private async runGroup(session: ort.InferenceSession, group: InferenceRequest[]): Promise<InferenceResponse[]> {
    const fail = (message: string, code: 'INTERNAL' | 'INVALID_ARG' = 'INTERNAL') =>
      group.map(() => new InferenceResponse({ error: new ModelError(`model '${this.modelName}': ${message}`, code) }));
    let batchSizes: number[] = [];
    const feeds: Record<string, ort.Tensor> = {};
    try {
      for (const s of this.inputs) {
        let t: Tensor;
        if (group.length === 1) {
          t = group[0]!.input(s.name)!;
        } else {
          const c = concatInputs(group, s.name);
          t = c.tensor;
          batchSizes = c.batchSizes;
        }
        feeds[s.name] = toOrt(t, s.ortType, s.dims?.length === 0 ? [] : t.shape);
      }
    } catch (err) {
      return fail((err as Error).message, 'INVALID_ARG');
    }
    const wantAll = group.some((r) => r.requestedOutputNames.length === 0);
    const fetches = wantAll ? this.outputs.map((s) => s.name) : [...new Set(group.flatMap((r) => r.requestedOutputNames))];
    let result: ort.InferenceSession.ReturnType;
    try {
      result = await session.run(feeds, fetches);
    } catch (err) {
      return fail(`onnxruntime: ${(err as Error).message}`);
    }
    const perRequest: Tensor[][] = group.map(() => []);
    try {
      for (const name of fetches) {
        const value = result[name];
        if (!value) throw new Error(`onnxruntime returned no output '${name}'`);
        const t = fromOrt(name, value, this.scalarOutputShapes.get(name));
        if (group.length === 1) perRequest[0]!.push(t);
        else splitOutput(t, batchSizes).forEach((part, k) => perRequest[k]!.push(part));
      }
    } catch (err) {
      return fail((err as Error).message);
    }
    return group.map((r, k) => {
      const wanted = r.requestedOutputNames;
      const outs = wanted.length === 0 ? perRequest[k]! : perRequest[k]!.filter((t) => wanted.includes(t.name));
      return new InferenceResponse({ outputs: outs });
    });
  }
}

/**
 * The shape a rank-0 graph output is returned with: its config reshape shape, else its dims
 * (state outputs: the state's dims), as Triton's backend keeps in scalar_outputs_.
 */
function scalarOutputShapes(config: ModelConfig, outputs: IOSpec[]): Map<string, number[]> {
  const shapes = new Map<string, number[]>();
  const states = ((config.sequence_batching as { state?: { output_name?: string; dims?: number[] }[] } | undefined)?.state ?? []);
  for (const s of outputs) {
    if (!s.dims || s.dims.length > 0) continue;
    const c = config.output.find((o) => o.name === s.name);
    const st = states.find((x) => x.output_name === s.name);
    const shape = c ? (c.reshape ? c.reshape.shape : c.dims) : st?.dims;
    shapes.set(s.name, shape && shape.length > 0 ? shape.map((d) => (d < 0 ? 1 : d)) : [1]);
  }
  return shapes;
}

// ---- helpers --------------------------------------------------------------------------------

/**
 * The model file: InitArgs.modelFile (the host applies default_model_filename), else derived from
 * the repository, name and version; a `.path` pointer next to it is followed (src/core/model-file.ts).
 */
export function locateModelFile(config: ModelConfig, args: ModelFileArgs | undefined): string {
  const filename = typeof config.default_model_filename === 'string' && config.default_model_filename ? config.default_model_filename : 'model.onnx';
  if (args?.modelFile) {
    // A host that does not know the onnxruntime backend's file name would pass model.ts.
    const candidate = args.modelFile.endsWith('.ts') ? path.join(path.dirname(args.modelFile), filename) : args.modelFile;
    return resolveModelFile(candidate, args.modelDir ?? path.dirname(path.dirname(candidate)));
  }
  if (args?.modelRepository && args.modelVersion !== undefined) {
    const modelDir = args.modelDir ?? path.join(args.modelRepository, args.modelName ?? config.name);
    return resolveModelFile(path.join(modelDir, String(args.modelVersion), filename), modelDir);
  }
  throw new Error(`model '${config.name}': the onnxruntime backend was not told where the model file is (InitArgs.modelFile)`);
}

/** `shape`: what ORT is given (a scalar graph input gets [] whatever one-element shape came). */
function toOrt(t: Tensor, type: OrtType, shape: readonly number[]): ort.Tensor {
  if (t.dtype === 'BYTES') return new ort.Tensor('string', t.strings(), shape);
  let data = t.data as NumericTypedArray;
  if (data.buffer instanceof SharedArrayBuffer) data = data.slice();
  return new ort.Tensor(type as 'float32', data as Float32Array, shape);
}

/** `scalarShape`: the shape a rank-0 result is returned with (the config's). */
function fromOrt(name: string, value: ort.OnnxValue, scalarShape?: number[]): Tensor {
  const v = value as ort.Tensor;
  const dtype = dtypeOfOrt(v.type);
  if (!dtype) throw new Error(`output '${name}' has onnxruntime type '${v.type}', which stubhost cannot carry`);
  let data = v.data as unknown as NumericTypedArray | string[];
  // Where Float16Array exists ORT returns it for float16; stubhost's FP16 is the raw 16-bit words.
  if (dtype === 'FP16' && !(data instanceof Uint16Array)) {
    const d = data as unknown as NumericTypedArray;
    data = new Uint16Array(d.buffer, d.byteOffset, d.length);
  }
  if (dtype === 'BOOL' && !(data instanceof Uint8Array)) data = Uint8Array.from(data as unknown as ArrayLike<number>, (x) => (x ? 1 : 0));
  const shape = v.dims.length === 0 ? (scalarShape ?? [1]) : [...v.dims];
  return new Tensor(name, data, shape, dtype);
}

function loadError(model: string, file: string, err: unknown): ModelError {
  return new ModelError(`model '${model}': onnxruntime could not load ${file}: ${(err as Error).message ?? String(err)}`, 'INVALID_ARG');
}
