/**
 * `stubhost init <name>`: a new model folder in a repository — config.pbtxt, 1/model.ts typed
 * by the generated config.types.ts — and the repository's tsconfig.json when it has none. The
 * config is read back with the host's own loader before anything is written, so a scaffold is a
 * model the server loads.
 */
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { readModelConfig, validateModelConfig, type ModelConfig } from '../config/index.js';
import { resolveModelDir } from '../repository/scan.js';
import { modelIO } from './model-spec.js';
import { writeRepositoryTsconfig, type TsconfigOutcome } from './repository-tsconfig.js';
import { onnxConfig, onnxModel, scaffoldConfig, scaffoldModel, type InitOptions } from './templates.js';
import { writeModelTypes } from './model-types.js';

export interface InitRequest extends InitOptions {
  repository: string;
  /** An ONNX file to wrap: the config comes from its graph, model.ts runs it with onnxruntime-node. */
  onnx?: string;
}

export interface InitResult {
  modelDir: string;
  files: string[];
  tsconfig: TsconfigOutcome | undefined;
}

export class InitError extends Error {}

async function onnxScaffold(name: string, onnx: string): Promise<{ config: string; model: string }> {
  const [{ readGraphIO }, { completeConfig }] = await Promise.all([
    import('../../stub/backends/onnx/graph-io.js'),
    import('../../stub/backends/onnxruntime.js'),
  ]);
  let completed: ModelConfig;
  try {
    const base = validateModelConfig({ name, backend: 'typescript' }, onnx);
    completed = validateModelConfig(completeConfig(base as never, readGraphIO(onnx), onnx), onnx);
  } catch (err) {
    throw new InitError((err as Error).message);
  }
  const io = modelIO(completed);
  return { config: onnxConfig(name, io, completed.dynamic_batching !== undefined), model: onnxModel(name, io) };
}

export async function initModel(req: InitRequest): Promise<InitResult> {
  const repository = path.resolve(req.repository);
  let modelDir: string;
  try {
    modelDir = resolveModelDir(repository, req.name);
  } catch (err) {
    throw new InitError((err as Error).message);
  }
  if (existsSync(modelDir) && readdirSync(modelDir).length > 0) {
    throw new InitError(`${modelDir} already exists; choose another name or remove that folder`);
  }
  if (req.onnx !== undefined && (req.batching || req.decoupled || req.sequence)) {
    throw new InitError('--onnx takes the inputs, outputs and batching from the ONNX file; leave out --batching, --decoupled and --sequence (edit config.pbtxt afterwards)');
  }
  if (req.onnx !== undefined && !existsSync(req.onnx)) throw new InitError(`--onnx ${req.onnx}: no such file`);
  const { config, model } = req.onnx !== undefined ? await onnxScaffold(req.name, req.onnx) : { config: scaffoldConfig(req), model: scaffoldModel(req) };

  // Build the folder beside its final place and move it in whole: a failure leaves nothing half-made.
  mkdirSync(repository, { recursive: true });
  const staging = mkdtempSync(path.join(repository, `.stubhost-init-${req.name}-`));
  try {
    const stagedModel = path.join(staging, req.name);
    mkdirSync(path.join(stagedModel, '1'), { recursive: true });
    writeFileSync(path.join(stagedModel, 'config.pbtxt'), config);
    writeFileSync(path.join(stagedModel, '1', 'model.ts'), model);
    if (req.onnx !== undefined) copyFileSync(req.onnx, path.join(stagedModel, '1', 'model.onnx'));
    // The loader's verdict on what was scaffolded: a template bug fails here, not at serve time.
    readModelConfig(stagedModel, { onWarning: () => {} });
    const types = await writeModelTypes(stagedModel);
    if (!types.file) throw new InitError(`writing the types of ${req.name} failed: ${types.error ?? types.skipped}`);
    if (existsSync(modelDir)) rmSync(modelDir, { recursive: true }); // the empty folder checked above
    renameSync(stagedModel, modelDir);
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  const files = ['config.pbtxt', '1/model.ts', ...(req.onnx !== undefined ? ['1/model.onnx'] : []), 'config.types.ts'].map((f) => path.join(modelDir, f));
  return { modelDir, files, tsconfig: writeRepositoryTsconfig(repository, true) };
}
