/**
 * Loads the model of a stub: imports its class (model.ts through the TypeScript loader, or a
 * backend), lets it complete its config (autoCompleteConfig), builds it and runs initialize.
 */
import { pathToFileURL } from 'node:url';
import type { InitArgs } from '../src/ipc/protocol.js';
import { parseModelSettings, type ParameterMap } from '../src/core/model-parameters.js';
import type { Model, ModelClass, ModelConfig } from './api/model.js';
import { withAutoCompleteHelpers } from './api/auto-complete.js';
import { registerTypeScript } from './typescript-loader.js';

export interface LoadedModel {
  model: Model;
  config: ModelConfig;
  /** The config autoCompleteConfig returned, for the host (undefined: the model has no such hook). */
  completed?: Record<string, unknown>;
  decoupled: boolean;
  /** max_inflight_per_instance. */
  maxInflight: number;
}

export interface LoadHooks {
  /** autoCompleteConfig runs (model control is refused meanwhile, as Triton's). */
  autoCompleting(running: boolean): void;
  /** The config is final; the model is built next. */
  configured(config: ModelConfig): void;
  /** The model is built; its initialize runs next. */
  built(model: Model): void;
}

export async function loadModel(args: InitArgs, hooks: LoadHooks): Promise<LoadedModel> {
  const ModelCtor = await loadModelClass(args);
  let config = args.modelConfig as ModelConfig;
  let completed: Record<string, unknown> | undefined;
  if (typeof ModelCtor.autoCompleteConfig === 'function') {
    hooks.autoCompleting(true);
    // The draft carries Triton's helpers (addInput, setMaxBatchSize, ...): see api/auto-complete.ts.
    const draft = withAutoCompleteHelpers(structuredClone(config));
    const returned = await ModelCtor.autoCompleteConfig(draft, { modelFile: args.modelFile, modelDir: args.modelDir });
    // Returning the config is the contract; one completed in place and not returned counts too.
    if (returned !== undefined && (returned === null || typeof returned !== 'object')) {
      throw new Error(`${args.modelFile}: autoCompleteConfig must return the completed config, it returned ${String(returned)}`);
    }
    // A plain copy: the helpers (and anything else that is not config data) stay behind.
    config = JSON.parse(JSON.stringify(returned ?? draft)) as ModelConfig;
    completed = config as Record<string, unknown>;
    hooks.autoCompleting(false);
  }
  const decoupled = Boolean((config.model_transaction_policy as { decoupled?: boolean } | undefined)?.decoupled);
  // Parsed by the host (InitArgs.settings) — from the config as the host had it. A config that
  // autoCompleteConfig completed here is parsed as the host will parse it after init-ok, so the
  // first instance runs with the same max_inflight_per_instance as the others.
  const maxInflight = completed ? parseModelSettings(config.parameters as ParameterMap).maxInflightPerInstance : args.settings.maxInflightPerInstance;
  hooks.configured(config);
  const model = new ModelCtor();
  if (typeof model.execute !== 'function') throw new Error(`${args.modelFile}: the default-exported class has no execute() method`);
  hooks.built(model);
  await model.initialize?.({
    modelConfig: config,
    modelName: args.modelName,
    modelVersion: args.modelVersion,
    modelRepository: args.modelRepository,
    instanceName: args.instanceName,
    instanceKind: args.instanceKind,
    instanceDeviceId: args.instanceDeviceId,
    modelFile: args.modelFile,
    modelDir: args.modelDir,
    // The onnxruntime backend's session options, parsed by the host (ModelFileArgs.settings).
    ...(args.backend === 'onnxruntime' ? { settings: args.settings } : {}),
  });
  return { model, config, completed, decoupled, maxInflight };
}

async function loadModelClass(args: InitArgs): Promise<ModelClass> {
  if (args.backend === 'onnxruntime') {
    const mod = (await import('./backends/onnxruntime.js')) as { default: ModelClass };
    return mod.default;
  }
  await registerTypeScript();
  const mod = (await import(pathToFileURL(args.modelFile).href)) as { default?: unknown };
  let C = mod.default;
  // A CommonJS model.ts compiled by tsx arrives as { default: module.exports }.
  if (C && typeof C === 'object' && typeof (C as { default?: unknown }).default === 'function') C = (C as { default: unknown }).default;
  if (typeof C !== 'function') {
    throw new Error(`${args.modelFile} must default-export the model class (export default class MyModel { execute(requests) { ... } })`);
  }
  return C as ModelClass;
}
