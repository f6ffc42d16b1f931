/**
 * What a client is told about an error in model code: its message and the stack frames inside
 * the model's folder, with paths relative to that folder (`1/model.ts:12:7`). Absolute paths and
 * the frames of the host, the stub, tsx and node:internal are the server's business: they go to
 * the server log only (a client of a network service gets errors, not a map of the machine).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** The stubhost package folder (stub/..): paths under it are named `<stubhost>/…` in messages. */
const STUBHOST_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export class ErrorLocator {
  /** The model folder as given and as resolved (module URLs carry the resolved path). */
  private readonly modelDirs: string[];
  private readonly hostDirs: string[];

  constructor(modelDir: string) {
    this.modelDirs = withRealPath(modelDir);
    this.hostDirs = withRealPath(STUBHOST_ROOT);
  }

  /** `message` with paths in the model folder made relative and host paths hidden. */
  message(message: string): string {
    let out = message;
    for (const dir of this.modelDirs) out = replacePrefix(out, dir, '');
    for (const dir of this.hostDirs) out = replacePrefix(out, dir, '<stubhost>/');
    return out;
  }

  /**
   * The client's view of `stack` (an Error's .stack): the frames inside the model folder, one
   * per line ("    at Model.execute (1/model.ts:12:7)"); '' when there are none.
   */
  frames(stack: string): string {
    const kept: string[] = [];
    for (const line of stack.split('\n')) {
      const m = FRAME.exec(line);
      if (!m) continue;
      const location = m[2] ?? m[3]!;
      const relative = this.relativeLocation(location);
      if (relative === undefined) continue;
      kept.push(m[2] !== undefined ? `    at ${m[1]} (${relative})` : `    at ${relative}`);
    }
    return kept.join('\n');
  }

  /** A frame's `file:line:col` relative to the model folder, or undefined when it lies outside. */
  private relativeLocation(location: string): string | undefined {
    let file = location;
    if (file.startsWith('file://')) {
      try {
        const end = /:\d+:\d+$/.exec(file);
        const suffix = end ? end[0] : '';
        file = fileURLToPath(file.slice(0, file.length - suffix.length)) + suffix;
      } catch {
        return undefined;
      }
    }
    for (const dir of this.modelDirs) {
      if (file.startsWith(dir + path.sep)) return file.slice(dir.length + 1);
    }
    return undefined;
  }
}

/** "    at fn (location)" or "    at location" (V8's formats), with "async " folded into fn. */
const FRAME = /^\s*at (?:(.*?) \((.*)\)|(.*))$/;

function withRealPath(dir: string): string[] {
  const dirs = [path.resolve(dir)];
  try {
    const real = fs.realpathSync(dir);
    if (real !== dirs[0]) dirs.push(real);
  } catch {
    // gone: the path as given is all there is
  }
  return dirs;
}

function replacePrefix(text: string, dir: string, by: string): string {
  return text.split(`${pathToFileURL(dir).href}/`).join(by).split(`file://${dir}/`).join(by).split(`${dir}/`).join(by);
}
