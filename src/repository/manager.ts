/**
 * The model repository at run time: which models are loaded (and which versions), loading,
 * reloading and unloading them, and poll mode. Operations on one model run one at a time;
 * different models load in parallel.
 *
 * Reload keeps serving: the new versions load beside the old ones; only when they are ready do
 * requests switch to them, and the old versions drain (their queued and running requests finish)
 * before they are finalized. A reload that fails leaves the old versions serving.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readModelConfig } from '../config/load.js';
import { StubhostError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics/index.js';
import type { BlsHandler } from '../instance/stub-process.js';
import type { RateLimiter } from '../scheduler/rate-limiter.js';
import type { RepositoryIndexEntry } from '../core/service.js';
import { ModelVersion } from '../model/model-version.js';
import { EnsembleModel } from '../model/ensemble.js';
import type { ServableModel } from '../model/servable.js';
import { resolveModelDir, scanRepository, scanModelDir, versionsToServe } from './scan.js';

export interface RepositoryOptions {
  root: string;
  logger: Logger;
  metrics?: Metrics;
  stubTimeoutMs: number;
  arenaMaxBytes?: number;
  /** Server defaults of model parameters (see ModelVersionOptions). */
  stubMemoryLimitBytes?: number;
  unloadGraceMs?: number;
  executeWarnMs?: number;
  rateLimiter?: RateLimiter;
  onBls?: BlsHandler;
}

interface ModelEntry {
  name: string;
  versions: Map<number, ServableModel>;
  state: 'LOADING' | 'READY' | 'UNAVAILABLE' | 'UNLOADING';
  reason: string;
  fingerprint?: string;
  /** Serialises load/unload of this model. */
  op: Promise<void>;
  /** Temporary folder made for a load request that carried files. */
  tempDir?: string;
}

export class ModelRepository {
  readonly root: string;
  private readonly models = new Map<string, ModelEntry>();

  constructor(private readonly opts: RepositoryOptions) {
    this.root = path.resolve(opts.root);
  }

  /** Loads every model in the repository (or only `names`); reports each outcome; never throws for one model. */
  async loadAll(names?: string[], onProgress?: (name: string, error?: Error) => void): Promise<void> {
    const entries = await scanRepository(this.root);
    const wanted = names && names.length > 0 ? entries.filter((e) => names.includes(e.name)) : entries;
    const missing = (names ?? []).filter((n) => !entries.some((e) => e.name === n));
    for (const n of missing) {
      this.entry(n).state = 'UNAVAILABLE';
      this.entry(n).reason = `model '${n}' is not in the repository ${this.root}`;
      onProgress?.(n, new StubhostError('STUBHOST_MODEL_NOT_FOUND', this.entry(n).reason));
    }
    await Promise.all(
      wanted.map(async (e) => {
        try {
          await this.loadModel(e.name, { fingerprint: e.fingerprint });
          onProgress?.(e.name);
        } catch (err) {
          onProgress?.(e.name, err as Error);
        }
      }),
    );
  }

  /** Loads or reloads `name`; `config` is a JSON override (Triton's load API); `files` a model given inline. */
  loadModel(name: string, options: { config?: string; files?: Record<string, Uint8Array>; fingerprint?: string } = {}): Promise<void> {
    return this.serial(name, async (entry) => {
      let dir = resolveModelDir(this.root, name);
      if (options.files && Object.keys(options.files).length > 0) {
        if (options.config === undefined) throw new StubhostError('STUBHOST_INVALID_ARG', `load '${name}': file: parameters need a config parameter too (as in Triton)`);
        dir = this.writeTempModel(entry, name, options.files);
      } else if (!fs.existsSync(dir)) {
        throw new StubhostError('STUBHOST_MODEL_NOT_FOUND', `model '${name}' is not in the repository ${this.root}`);
      }
      entry.state = entry.versions.size > 0 ? entry.state : 'LOADING';
      let loaded: ServableModel[] = [];
      try {
        const { config, autoComplete } = readModelConfig(dir, {
          override: options.config,
          onWarning: (m) => this.opts.logger.warn(m, { model: name }),
        });
        const available = (await scanModelDir(name, dir))?.versions ?? [];
        const versions = versionsToServe(config, config.platform === 'ensemble' && available.length === 0 ? [1] : available);
        loaded = versions.map((v): ServableModel => config.platform === 'ensemble'
          ? new EnsembleModel({
            name, version: v, config: structuredClone(config), metrics: this.opts.metrics,
            resolve: (model, version) => this.get(model, version > 0 ? version : undefined),
            exists: (model) => this.models.has(model) || modelFoldersSync(this.root).includes(model),
          })
          : new ModelVersion({
            name, version: v, modelDir: dir, repository: this.root, config: structuredClone(config), autoComplete,
            logger: this.opts.logger, metrics: this.opts.metrics, stubTimeoutMs: this.opts.stubTimeoutMs,
            arenaMaxBytes: this.opts.arenaMaxBytes, onBls: this.opts.onBls, rateLimiter: this.opts.rateLimiter,
            stubMemoryLimitBytes: this.opts.stubMemoryLimitBytes, unloadGraceMs: this.opts.unloadGraceMs, executeWarnMs: this.opts.executeWarnMs,
          }));
        const results = await Promise.allSettled(loaded.map((mv) => mv.load()));
        const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
        if (failed) {
          await Promise.all(loaded.map((mv) => mv.unload().catch(() => {})));
          throw failed.reason;
        }
      } catch (err) {
        if (entry.versions.size === 0) {
          entry.state = 'UNAVAILABLE';
          entry.reason = (err as Error).message;
        }
        throw err;
      }
      const old = [...entry.versions.values()];
      entry.versions = new Map(loaded.map((mv) => [mv.version, mv]));
      entry.state = 'READY';
      entry.reason = '';
      if (options.fingerprint) entry.fingerprint = options.fingerprint;
      else entry.fingerprint = (await scanModelDir(name, dir))?.fingerprint;
      // The old versions drain in the background; requests already go to the new ones.
      const replacedBy = loaded.map((mv) => mv.version);
      for (const mv of old) void (mv instanceof ModelVersion ? mv.unload({ replacedBy }) : mv.unload()).catch((e: Error) => this.opts.logger.warn(`unload of old version failed: ${e.message}`, { model: name }));
    });
  }

  /** `graceMs` bounds how long running executes get (shutdown); each model's own grace applies too. */
  unloadModel(name: string, opts: { graceMs?: number } = {}): Promise<void> {
    return this.serial(name, async (entry) => {
      if (entry.versions.size === 0 && entry.state !== 'READY') {
        if (!this.models.has(name) || entry.state === 'UNAVAILABLE') {
          entry.state = 'UNAVAILABLE';
          entry.reason = 'unloaded';
          return;
        }
      }
      entry.state = 'UNLOADING';
      const versions = [...entry.versions.values()];
      entry.versions = new Map();
      await Promise.all(versions.map((mv) => mv.unload(opts)));
      entry.state = 'UNAVAILABLE';
      entry.reason = 'unloaded';
      this.removeTemp(entry);
    });
  }

  /** Poll mode: load added and changed models, unload removed ones. */
  async poll(): Promise<void> {
    const entries = await scanRepository(this.root);
    const seen = new Set<string>();
    const work: Promise<unknown>[] = [];
    for (const e of entries) {
      seen.add(e.name);
      const current = this.models.get(e.name);
      if (current && current.fingerprint === e.fingerprint && !current.tempDir) continue;
      if (current && current.state === 'UNAVAILABLE' && current.fingerprint === e.fingerprint) continue;
      this.opts.logger.info(current ? 'model changed on disk: reloading' : 'new model in repository: loading', { model: e.name });
      work.push(this.loadModel(e.name, { fingerprint: e.fingerprint }).catch((err: Error) => {
        const entry = this.entry(e.name);
        entry.fingerprint = e.fingerprint; // do not retry until it changes again
        this.opts.logger.error(`load failed: ${err.message}`, { model: e.name });
      }));
    }
    for (const [name, entry] of this.models) {
      // A failed model whose folder went away is unloaded too, so it stops holding readiness down.
      if (seen.has(name) || entry.tempDir || (entry.versions.size === 0 && (entry.reason === 'unloaded' || entry.reason === ''))) continue;
      this.opts.logger.info('model removed from repository: unloading', { model: name });
      work.push(this.unloadModel(name).catch(() => {}));
    }
    await Promise.all(work);
  }

  /** The version to serve: the one asked for, else the highest loaded. */
  get(name: string, version?: number | string): ServableModel {
    const entry = this.models.get(name);
    if (!entry || (entry.versions.size === 0 && entry.state !== 'LOADING')) {
      throw new StubhostError('STUBHOST_MODEL_NOT_FOUND', `Request for unknown model: '${name}' is not found${entry?.reason ? ` (${entry.reason})` : ''}`);
    }
    if (version !== undefined && version !== '' && version !== -1) {
      const v = Number(version);
      const mv = Number.isInteger(v) ? entry.versions.get(v) : undefined;
      if (!mv) {
        throw new StubhostError('STUBHOST_MODEL_NOT_FOUND', `Request for unknown model: '${name}' version ${version} is not found (loaded: ${[...entry.versions.keys()].join(', ') || 'none'})`);
      }
      return mv;
    }
    let best: ServableModel | undefined;
    for (const mv of entry.versions.values()) if (!best || mv.version > best.version) best = mv;
    if (!best) throw new StubhostError('STUBHOST_MODEL_NOT_READY', `model '${name}' is ${entry.state.toLowerCase()}`);
    return best;
  }

  /** Every model with its state, as Triton's repository index lists them. */
  index(readyOnly = false): RepositoryIndexEntry[] {
    const out: RepositoryIndexEntry[] = [];
    const onDisk = new Set(modelFoldersSync(this.root));
    const names = new Set([...onDisk, ...this.models.keys()]);
    for (const name of [...names].sort()) {
      const entry = this.models.get(name);
      if (!entry || (entry.versions.size === 0 && entry.state !== 'LOADING')) {
        // A model removed from disk and unloaded (poll mode) is no longer part of the repository.
        if (entry && !onDisk.has(name) && entry.reason === 'unloaded') continue;
        if (!readyOnly) out.push({ name, state: entry ? entry.state : 'UNAVAILABLE', reason: entry?.reason ?? '' });
        continue;
      }
      for (const mv of entry.versions.values()) {
        const state = mv.ready ? 'READY' : mv.state === 'LOADING' ? 'LOADING' : 'UNAVAILABLE';
        if (readyOnly && state !== 'READY') continue;
        out.push({ name, version: String(mv.version), state, reason: mv.reason });
      }
    }
    return out;
  }

  /**
   * Ready: every model that should be loaded is (no failed or loading ones). As in Triton's strict
   * readiness, a model that failed to load counts as not ready; one unloaded on purpose does not.
   */
  allReady(): boolean {
    for (const entry of this.models.values()) {
      if (entry.state === 'LOADING') return false;
      if (entry.state === 'UNAVAILABLE' && entry.versions.size === 0 && entry.reason !== '' && entry.reason !== 'unloaded') return false;
      if (entry.state === 'READY' && ![...entry.versions.values()].every((mv) => mv.ready)) return false;
    }
    return true;
  }

  loadedVersions(): ServableModel[] {
    return [...this.models.values()].flatMap((e) => [...e.versions.values()]);
  }

  /** Unloads everything (server shutdown). */
  async close(opts: { graceMs?: number } = {}): Promise<void> {
    await Promise.all([...this.models.keys()].map((n) => this.unloadModel(n, opts).catch(() => {})));
  }

  private entry(name: string): ModelEntry {
    let entry = this.models.get(name);
    if (!entry) {
      entry = { name, versions: new Map(), state: 'UNAVAILABLE', reason: '', op: Promise.resolve() };
      this.models.set(name, entry);
    }
    return entry;
  }

  private serial(name: string, fn: (entry: ModelEntry) => Promise<void>): Promise<void> {
    resolveModelDir(this.root, name); // refuses bad names before anything else
    const entry = this.entry(name);
    const run = entry.op.then(() => fn(entry));
    entry.op = run.catch(() => {});
    return run;
  }

  private writeTempModel(entry: ModelEntry, name: string, files: Record<string, Uint8Array>): string {
    this.removeTemp(entry);
    const base = fs.mkdtempSync(path.join(os.tmpdir(), 'stubhost-model-'));
    const dir = path.join(base, name);
    fs.mkdirSync(dir);
    for (const [rel, bytes] of Object.entries(files)) {
      const target = path.resolve(dir, rel);
      if (!target.startsWith(dir + path.sep)) throw new StubhostError('STUBHOST_INVALID_ARG', `load '${name}': file path ${JSON.stringify(rel)} leaves the model folder`);
      fs.mkdirSync(path.dirname(target), { recursive: true });
      fs.writeFileSync(target, bytes);
    }
    entry.tempDir = base;
    return dir;
  }

  private removeTemp(entry: ModelEntry): void {
    if (entry.tempDir) fs.rmSync(entry.tempDir, { recursive: true, force: true });
    entry.tempDir = undefined;
  }
}

/** Model folder names on disk, synchronously (the index endpoint is synchronous and cheap). */
function modelFoldersSync(root: string): string[] {
  let dirents: fs.Dirent[];
  try {
    dirents = fs.readdirSync(root, { withFileTypes: true });
  } catch {
    return [];
  }
  const names: string[] = [];
  for (const d of dirents) {
    if (d.name.startsWith('.') || !(d.isDirectory() || d.isSymbolicLink())) continue;
    let inner: string[];
    try {
      inner = fs.readdirSync(path.join(root, d.name));
    } catch {
      continue;
    }
    if (inner.some((f) => f === 'config.pbtxt' || f === 'config.json' || /^\d+$/.test(f))) names.push(d.name);
  }
  return names;
}
