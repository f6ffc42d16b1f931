/**
 * The model repository on disk: which folders are models, which versions each holds, a
 * fingerprint that changes when a model's files change (for `--model-control-mode=poll`), which
 * versions a version policy serves, and model names that cannot leave the repository root.
 *
 * Read-only: nothing here loads or keeps state; the repository manager owns that.
 */
import { createHash } from 'node:crypto';
import type { Dirent } from 'node:fs';
import { readdir, realpath, stat } from 'node:fs/promises';
import { realpathSync } from 'node:fs';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { StubhostError } from '../errors.js';
import { CONFIG_JSON, CONFIG_PBTXT } from '../config/load.js';
import type { ModelConfig } from '../config/schema.js';

export interface RepositoryEntry {
  /** The folder name, which is the model name. */
  name: string;
  /** Absolute path of the model folder. */
  path: string;
  /** Numeric version subfolders, ascending. */
  versions: number[];
  /** The config file present (config.pbtxt wins over config.json, as load.ts reads it). */
  configFile?: string;
  /** Changes when a config or version file is added, removed, resized or touched. */
  fingerprint: string;
}

/** Bounds the fingerprint walk so a model folder holding a dataset does not stall a poll. */
const MAX_FINGERPRINT_FILES = 10_000;
const MAX_FINGERPRINT_DEPTH = 8;

/**
 * Lists the models under `root`, sorted by name. A folder is a model when it has a config file
 * or at least one numeric version subfolder. Hidden folders, names `checkModelName` refuses and
 * symlinks that lead outside the root are skipped.
 */
export async function scanRepository(root: string): Promise<RepositoryEntry[]> {
  const absRoot = resolve(root);
  let dirents: Dirent[];
  try {
    dirents = await readdir(absRoot, { withFileTypes: true });
  } catch (err) {
    throw new StubhostError('STUBHOST_NOT_FOUND', `model repository ${root} cannot be read (${(err as Error).message})`, { cause: err });
  }
  const realRoot = await realpath(absRoot);
  const entries: RepositoryEntry[] = [];
  for (const d of dirents) {
    if (!isValidModelName(d.name)) continue;
    const path = join(absRoot, d.name);
    if (!(d.isDirectory() || (d.isSymbolicLink() && (await isDirectory(path))))) continue;
    if (d.isSymbolicLink() && !within(realRoot, await realpath(path).catch(() => path))) continue;
    const entry = await scanModelDir(d.name, path);
    if (entry) entries.push(entry);
  }
  return entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** One model folder; undefined when it is not a model (no config file, no version folder). */
export async function scanModelDir(name: string, path: string): Promise<RepositoryEntry | undefined> {
  let dirents: Dirent[];
  try {
    dirents = await readdir(path, { withFileTypes: true });
  } catch {
    return undefined; // vanished between the listing and now: poll mode sees it next time
  }
  const names = new Set(dirents.map((d) => d.name));
  const configFile = names.has(CONFIG_PBTXT) ? CONFIG_PBTXT : names.has(CONFIG_JSON) ? CONFIG_JSON : undefined;
  const versions: number[] = [];
  for (const d of dirents) {
    if (!/^\d+$/.test(d.name)) continue;
    const v = Number(d.name);
    if (!Number.isSafeInteger(v)) continue;
    if (d.isDirectory() || (d.isSymbolicLink() && (await isDirectory(join(path, d.name))))) versions.push(v);
  }
  versions.sort((a, b) => a - b);
  if (configFile === undefined && versions.length === 0) return undefined;

  const hash = createHash('sha256');
  const budget = { files: MAX_FINGERPRINT_FILES };
  // Both config files count: adding config.json beside config.pbtxt changes the load warning.
  for (const f of [CONFIG_PBTXT, CONFIG_JSON]) if (names.has(f)) await hashFile(hash, path, f);
  for (const v of versions) {
    hash.update(`dir ${v}\n`);
    await hashTree(hash, path, String(v), 0, budget);
  }
  return { name, path, versions, ...(configFile ? { configFile } : {}), fingerprint: hash.digest('hex').slice(0, 32) };
}

async function hashFile(hash: ReturnType<typeof createHash>, base: string, rel: string): Promise<void> {
  try {
    const s = await stat(join(base, rel));
    hash.update(`${rel}\0${s.size}\0${s.mtimeMs}\n`);
  } catch {
    hash.update(`${rel}\0gone\n`);
  }
}

async function hashTree(hash: ReturnType<typeof createHash>, base: string, rel: string, depth: number, budget: { files: number }): Promise<void> {
  if (depth > MAX_FINGERPRINT_DEPTH) return;
  let dirents: Dirent[];
  try {
    dirents = await readdir(join(base, rel), { withFileTypes: true });
  } catch {
    return;
  }
  dirents.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const d of dirents) {
    if (budget.files-- <= 0) return;
    const child = `${rel}/${d.name}`;
    // node_modules is installed state, not model content; walking it would be slow and noisy.
    if (d.name === 'node_modules') continue;
    if (d.isDirectory()) {
      hash.update(`dir ${child}\n`);
      await hashTree(hash, base, child, depth + 1, budget);
    } else {
      await hashFile(hash, base, child);
    }
  }
}

async function isDirectory(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Versions.

/**
 * The versions the config's version_policy serves out of those on disk, ascending.
 * latest N: the N highest; all: every one; specific: exactly those listed, each of which must
 * exist. Throws STUBHOST_CONFIG when a listed version is missing or nothing would be served.
 */
export function versionsToServe(config: Pick<ModelConfig, 'name' | 'version_policy'>, available: readonly number[]): number[] {
  const sorted = [...new Set(available)].sort((a, b) => a - b);
  const vp = config.version_policy;
  const onDisk = sorted.length === 0 ? 'none' : sorted.join(', ');
  let chosen: number[];
  if (vp.specific) {
    const missing = vp.specific.versions.filter((v) => !sorted.includes(v));
    if (missing.length > 0) {
      throw new StubhostError(
        'STUBHOST_CONFIG',
        `model ${config.name}: version_policy.specific.versions: version${missing.length > 1 ? 's' : ''} ${missing.join(', ')} ` +
          `${missing.length > 1 ? 'have' : 'has'} no folder in the model; found versions ${onDisk}`,
      );
    }
    chosen = [...new Set(vp.specific.versions)].sort((a, b) => a - b);
  } else if (vp.all) {
    chosen = sorted;
  } else {
    const n = vp.latest?.num_versions ?? 1;
    chosen = sorted.slice(Math.max(0, sorted.length - n));
  }
  if (chosen.length === 0) {
    throw new StubhostError('STUBHOST_CONFIG', `model ${config.name}: no version to serve; add a version folder such as ${config.name}/1 (found versions: ${onDisk})`);
  }
  return chosen;
}

// ---------------------------------------------------------------------------------------------
// Names and paths.

function nameProblem(name: unknown): string | undefined {
  if (typeof name !== 'string' || name === '') return 'is empty';
  if (name === '.' || name === '..') return 'is a relative path, not a name';
  if (name.startsWith('.')) return 'starts with "." (hidden folders are not models)';
  if (/[/\\]/.test(name)) return 'contains a path separator ("/" or "\\")';
  if (name.includes('\0')) return 'contains a NUL character';
  if (Buffer.byteLength(name) > 255) return 'is longer than 255 bytes';
  return undefined;
}

function isValidModelName(name: string): boolean {
  return nameProblem(name) === undefined;
}

/** Throws STUBHOST_INVALID_ARG when `name` cannot be a model folder of the repository. */
export function checkModelName(name: string): void {
  const problem = nameProblem(name);
  if (problem !== undefined) {
    throw new StubhostError('STUBHOST_INVALID_ARG', `model name ${JSON.stringify(name)} ${problem}; use a plain folder name of the model repository`);
  }
}

function within(root: string, p: string): boolean {
  const rel = relative(root, p);
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel));
}

/**
 * The folder of model `name` under `root`, refusing names that would leave the root, including
 * through a symlink (the real path must stay inside the root's real path). The folder need not
 * exist: callers report a missing model themselves.
 */
export function resolveModelDir(root: string, name: string): string {
  checkModelName(name);
  const absRoot = resolve(root);
  const dir = join(absRoot, name);
  if (!within(absRoot, dir) || dir === absRoot) {
    throw new StubhostError('STUBHOST_INVALID_ARG', `model name ${JSON.stringify(name)} leads outside the model repository`);
  }
  let realDir: string;
  try {
    realDir = realpathSync(dir);
  } catch {
    return dir; // does not exist (yet): nothing on disk to escape through
  }
  let realRoot: string;
  try {
    realRoot = realpathSync(absRoot);
  } catch {
    realRoot = absRoot;
  }
  if (!within(realRoot, realDir) || realDir === realRoot) {
    throw new StubhostError('STUBHOST_INVALID_ARG', `model ${JSON.stringify(name)} is a link that leads outside the model repository (to ${realDir})`);
  }
  return dir;
}
