/**
 * `stubhost types`: writes each model's config.types.ts from its config, read with the host's
 * own config loader. An ONNX model whose config leaves out inputs and outputs (or that has no
 * config) is completed from its model file first, exactly as the onnxruntime backend completes it
 * at load time.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { readModelConfig, validateModelConfig, type ModelConfig } from '../config/index.js';
import { scanModelDir, scanRepository, resolveModelDir } from '../repository/scan.js';
import { modelIO } from './model-spec.js';
import { GENERATED_MARK, TYPES_FILE, renderTypesFile } from './types-file.js';

export interface TypesOutcome {
  model: string;
  /** The file written or already up to date. */
  file?: string;
  changed?: boolean;
  /** Why no file was written (not an error: e.g. a model whose code completes its config). */
  skipped?: string;
  error?: string;
}

/** The config execute will see, and the name of the file it came from. */
async function effectiveConfig(modelDir: string): Promise<{ config: ModelConfig; source: string }> {
  const { config, file, autoComplete } = readModelConfig(modelDir, { onWarning: () => {} });
  const source = file ? path.basename(file) : 'the model file (no config)';
  if (config.backend !== 'onnxruntime' || (!autoComplete && config.input.length + config.output.length > 0)) return { config, source };
  const entry = await scanModelDir(config.name, modelDir);
  const version = entry?.versions.at(-1);
  if (version === undefined) throw new Error(`${modelDir}: no version folder (such as 1/) holds the ONNX file to read the inputs and outputs from`);
  const [{ resolveModelFile }, { readGraphIO }, { completeConfig }] = await Promise.all([
    import('../core/model-file.js'),
    import('../../stub/backends/onnx/graph-io.js'),
    // Loaded only here: it loads onnxruntime-node, which the other commands do not need.
    import('../../stub/backends/onnxruntime.js'),
  ]);
  const onnx = resolveModelFile(path.join(modelDir, String(version), config.default_model_filename || 'model.onnx'), modelDir);
  const completed = completeConfig(config as never, readGraphIO(onnx), onnx) as unknown;
  return { config: validateModelConfig(completed, onnx), source: file ? `${path.basename(file)} completed from ${path.relative(modelDir, onnx)}` : path.relative(modelDir, onnx) };
}

/** Writes `<modelDir>/config.types.ts`; leaves a file of the same content untouched. */
export async function writeModelTypes(modelDir: string): Promise<TypesOutcome> {
  const model = path.basename(modelDir);
  let config: ModelConfig;
  let source: string;
  try {
    ({ config, source } = await effectiveConfig(modelDir));
  } catch (err) {
    return { model, error: (err as Error).message };
  }
  if (config.input.length + config.output.length === 0 && !config.sequence_batching) {
    return { model, skipped: `${source} declares no inputs or outputs (a model.ts may complete them in autoCompleteConfig, which this command does not run); list them in the config to get types` };
  }
  const file = path.join(modelDir, TYPES_FILE);
  const text = renderTypesFile(modelIO(config), source);
  const old = existsSync(file) ? readFileSync(file, 'utf8') : undefined;
  if (old !== undefined && !old.startsWith(GENERATED_MARK)) {
    return { model, error: `${file} exists and was not written by stubhost types; rename or remove it, then run stubhost types again` };
  }
  if (old === text) return { model, file, changed: false };
  writeFileSync(file, text);
  return { model, file, changed: true };
}

/** Every model of the repository (or the ones named), in name order. */
export async function writeRepositoryTypes(repository: string, names: readonly string[]): Promise<TypesOutcome[]> {
  const dirs = names.length > 0
    ? names.map((n) => resolveModelDir(repository, n))
    : (await scanRepository(repository)).map((e) => e.path);
  const out: TypesOutcome[] = [];
  for (const dir of dirs) {
    if (!existsSync(dir)) out.push({ model: path.basename(dir), error: `no model folder ${dir}` });
    else out.push(await writeModelTypes(dir));
  }
  return out;
}
