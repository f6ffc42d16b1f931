/**
 * Loading, unloading and checking models from model code, as Triton's python backend
 * `pb_utils.load_model`, `unload_model` and `is_model_ready` (python_backend src/pb_stub.cc,
 * README "Model Loading API"). They go through the host, which applies the server's rules: load
 * and unload only in explicit model control mode (else they reject with the repository API's
 * UNAVAILABLE "explicit model load / unload is not allowed if polling is enabled"), as Triton.
 */
import { ModelError } from './errors.js';
import { getRuntime, type ModelControlCall } from './runtime.js';

export interface LoadModelOptions {
  /** The model config as JSON, replacing the repository's (Triton's `config`). */
  config?: string | Record<string, unknown>;
  /**
   * The model's files, by path inside the model folder ("1/model.onnx", or Triton's
   * "file:1/model.onnx"); they form the folder the model loads from, so `config` is required.
   */
  files?: Record<string, Uint8Array>;
}

/** Loads (or reloads) `name`; resolves once it is ready, rejects with the reason it failed (a ModelError). */
export async function loadModel(name: string, options: LoadModelOptions = {}): Promise<void> {
  const config = options.config === undefined || typeof options.config === 'string' ? options.config : JSON.stringify(options.config);
  let files: Record<string, Uint8Array> | undefined;
  if (options.files !== undefined) {
    files = {};
    for (const [key, bytes] of Object.entries(options.files)) {
      if (!(bytes instanceof Uint8Array)) throw new ModelError(`loadModel('${name}'): file '${key}' must be a Uint8Array (or Buffer) of its bytes`, 'INVALID_ARG');
      files[key.startsWith('file:') ? key.slice(5) : key] = bytes;
    }
  }
  await call({ op: 'load', name, config, files });
}

/** Unloads `name` (and, with `unloadDependents`, the ensembles that use it); resolves once it is unloaded. */
export async function unloadModel(name: string, options: { unloadDependents?: boolean } = {}): Promise<void> {
  await call({ op: 'unload', name, unloadDependents: options.unloadDependents === true ? true : undefined });
}

/** Whether `name` (that version, else the one served) is ready, as `/v2/models/{name}/ready` says. */
export async function isModelReady(name: string, version?: string | number): Promise<boolean> {
  return (await call({ op: 'ready', name, version: version === undefined || version === '' ? undefined : String(version) })) === true;
}

async function call(c: ModelControlCall): Promise<boolean | undefined> {
  if (typeof c.name !== 'string' || c.name === '') throw new ModelError(`${opName(c.op)}: give the model's name`, 'INVALID_ARG');
  const runtime = getRuntime();
  if (!runtime?.control) throw new ModelError(`${opName(c.op)} needs a stubhost stub: this code is not running inside one`, 'UNAVAILABLE');
  return runtime.control(c);
}

function opName(op: ModelControlCall['op']): string {
  return op === 'load' ? 'loadModel' : op === 'unload' ? 'unloadModel' : 'isModelReady';
}
