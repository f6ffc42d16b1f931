/**
 * The temporary folders of models a load request uploads (`file:<path>` parameters, Triton's
 * "model file override"): checking the file names before anything is written, writing them,
 * removing them, and sweeping the ones a crashed host left behind.
 *
 * Each folder is `<tmpdir>/stubhost-model-<hostPid>-XXXXXX/<model>/`, named with the owning
 * host's pid like the shared-memory files are, so a host starting later removes the folders of
 * hosts that no longer run. A host that exits without unloading (process.exit on a forced
 * shutdown) removes its own folders in an exit hook.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { StubhostError } from '../errors.js';
import { isAlive } from '../core/pid.js';

const PREFIX = 'stubhost-model-';
/** Linux NAME_MAX: one file or folder name, in bytes. */
const NAME_MAX = 255;
/** Linux PATH_MAX less room for the temporary folder and the model name. */
const MAX_RELATIVE_PATH = 3072;

/** Folders this process made and has not removed yet (removed by the exit hook). */
const live = new Set<string>();
let exitHook = false;

export interface UploadedModel {
  /** The temporary folder to remove (parent of `dir`). */
  base: string;
  /** The model folder inside it, named after the model. */
  dir: string;
}

/** A file parameter's name as shown in errors: bounded, so a huge name is not echoed whole. */
function shown(rel: string): string {
  const key = `file:${rel}`;
  return key.length > 80 ? `${key.slice(0, 60)}…' (${Buffer.byteLength(rel)} bytes)` : `${key}'`;
}

/**
 * Refuses file names that cannot be written inside the model folder, before anything is written:
 * absolute paths, `..` that leaves the folder, NUL, empty segments, names longer than the file
 * system allows (ENAMETOOLONG), and a name used both as a file and as a folder. The message names
 * the parameter and never the host's temporary path.
 */
export function checkUploadNames(model: string, files: Record<string, Uint8Array>): void {
  const bad = (rel: string, why: string): never => {
    throw new StubhostError('STUBHOST_INVALID_ARG', `load '${model}': invalid file parameter '${shown(rel)}: ${why}`);
  };
  const filesSeen = new Set<string>();
  const foldersSeen = new Set<string>();
  for (const rel of Object.keys(files)) {
    if (rel === '') bad(rel, 'the file name is empty; name a file inside the model folder, e.g. file:1/model.ts');
    if (rel.includes('\0')) bad(rel, 'the file name contains a NUL character');
    if (path.isAbsolute(rel) || /^[\\/]/.test(rel)) bad(rel, 'an absolute path must stay within the model directory; use a path relative to the model folder, e.g. file:1/model.ts');
    if (Buffer.byteLength(rel) > MAX_RELATIVE_PATH) bad(rel, `the path is longer than ${MAX_RELATIVE_PATH} bytes`);
    const normal = path.posix.normalize(rel.replace(/\\/g, '/'));
    if (normal === '..' || normal.startsWith('../') || normal === '.') bad(rel, 'it must stay within the model directory');
    const segments = normal.split('/').filter((s) => s !== '');
    for (const s of segments) {
      if (Buffer.byteLength(s) > NAME_MAX) bad(rel, `a file or folder name in it is ${Buffer.byteLength(s)} bytes long; names may have at most ${NAME_MAX} bytes`);
    }
    const file = segments.join('/');
    if (rel.endsWith('/')) bad(rel, 'it names a folder, not a file');
    for (let i = 1; i < segments.length; i++) foldersSeen.add(segments.slice(0, i).join('/'));
    if (filesSeen.has(file)) bad(rel, 'the same file is given twice');
    filesSeen.add(file);
  }
  for (const f of filesSeen) if (foldersSeen.has(f)) bad(f, 'it is given as a file and also as a folder of another file parameter');
}

/**
 * Writes `files` into a new temporary model folder named `model`. The names must have passed
 * `checkUploadNames`. On failure the folder is removed and the error names the parameter, not the
 * host's path (the cause keeps the file system's message for the server log).
 */
export function writeUpload(model: string, files: Record<string, Uint8Array>): UploadedModel {
  checkUploadNames(model, files);
  let base: string;
  try {
    base = fs.mkdtempSync(path.join(os.tmpdir(), `${PREFIX}${process.pid}-`));
  } catch (err) {
    throw new StubhostError('STUBHOST_INTERNAL', `load '${model}': cannot create a folder for the uploaded files (${(err as NodeJS.ErrnoException).code ?? 'error'})`, { cause: err });
  }
  track(base);
  const dir = path.join(base, model);
  let current = '';
  try {
    fs.mkdirSync(dir);
    for (const [rel, bytes] of Object.entries(files)) {
      current = rel;
      const target = path.resolve(dir, rel);
      fs.mkdirSync(path.dirname(target), { recursive: true });
      fs.writeFileSync(target, bytes, { flag: 'wx', mode: 0o600 });
    }
  } catch (err) {
    removeUpload(base);
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new StubhostError('STUBHOST_INTERNAL', `load '${model}': cannot write the uploaded file '${shown(current)} (${code})`, { cause: err });
  }
  return { base, dir };
}

/** Removes an uploaded model's temporary folder (idempotent). */
export function removeUpload(base: string | undefined): void {
  if (!base) return;
  fs.rmSync(base, { recursive: true, force: true });
  live.delete(base);
}

/** Removes the upload folders of stubhost hosts that no longer run (called at server start). */
export function sweepOrphanUploads(): number {
  const tmp = os.tmpdir();
  let names: string[];
  try {
    names = fs.readdirSync(tmp);
  } catch {
    return 0;
  }
  let removed = 0;
  for (const name of names) {
    const m = /^stubhost-model-(\d+)-[^/]+$/.exec(name);
    if (!m || Number(m[1]) === process.pid || isAlive(Number(m[1]))) continue;
    try {
      fs.rmSync(path.join(tmp, name), { recursive: true, force: true });
      removed++;
    } catch {
      // Another starting host removed it first, or it is not ours to remove.
    }
  }
  return removed;
}

/** This process's upload folders still present (tests assert none is left). */
export function uploadLeftovers(pid = process.pid): string[] {
  try {
    return fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith(`${PREFIX}${pid}-`));
  } catch {
    return [];
  }
}

function track(base: string): void {
  live.add(base);
  if (exitHook) return;
  exitHook = true;
  // Runs on process.exit too (a forced shutdown), where no unload gets to run.
  process.on('exit', () => {
    for (const b of live) {
      try {
        fs.rmSync(b, { recursive: true, force: true });
      } catch {
        // Exiting anyway; the next start sweeps what is left.
      }
    }
  });
}
