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
import path from 'node:path';
import { configToJson, readModelConfig } from '../config/load.js';
import { StubhostError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics/index.js';
import type { BlsGateway } from '../execution/bls-gateway.js';
import type { RateLimiter } from '../scheduler/rate-limiter.js';
import type { RepositoryIndexEntry } from '../core/service.js';
import type { ResponseCache } from '../cache/response-cache.js';
import { ModelVersion } from '../model/model-version.js';
import { EnsembleModel } from '../model/ensemble.js';
import type { ServableModel } from '../model/servable.js';
import { resolveModelDir, scanRepository, scanModelDir, versionsToServe } from './scan.js';
import { checkModelPaths } from '../config/model-paths.js';
import { removeUpload, writeUpload, type UploadedModel } from './upload.js';
import { composingModels, dependentsToUnload } from './dependents.js';

/**
 * A load whose model could not be read — not in the repository, or a config (override) that does
 * not parse or validate. Triton answers these INTERNAL "failed to load '<name>', failed to poll
 * from model repository" and logs the cause (core src/model_repository_manager/
 * model_repository_manager.cc, LoadUnloadModel and Poll); `detail` is the cause.
 */
export class RepositoryPollError extends StubhostError {
  constructor(name: string, readonly detail: string, options?: { cause?: unknown }) {
    super('STUBHOST_INTERNAL', `failed to load '${name}', failed to poll from model repository`, options);
  }
}

/** The cause of a failed load, as operators and the repository index want it. */
export function loadFailureDetail(err: unknown): string {
  return err instanceof RepositoryPollError ? err.detail : (err as Error).message;
}

export interface LoadOptions {
  /** A JSON config override (Triton's load API). */
  config?: string;
  /** A model given inline (Triton's load API `file:` parameters). */
  files?: Record<string, Uint8Array>;
  /** The repository fingerprint this load reads (poll mode). */
  fingerprint?: string;
  /** Why it loads, for the log line. */
  reason?: LifecycleReason;
  /** performance.now() the load time is counted from (dev mode: the save); default: when the load starts. */
  startedAt?: number;
  /** Called once the new versions are ready, before they serve; a rejection fails the load (the old versions keep serving). */
  approve?: () => Promise<void>;
  /** false: loaded only along with an ensemble (unload_dependents may unload it with the ensemble). Default true. */
  explicit?: boolean;
}

/**
 * Why a load or unload happens, for its log line: 'start-up', 'repository API load request',
 * 'poll: changed on disk', 'dev: 1/model.ts saved', ...
 */
export type LifecycleReason = string;

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
  /** Where the stubs' BLS calls and model control (loadModel / unloadModel / isModelReady) go: the server core. */
  gateway?: BlsGateway;
  /** The server's response cache (--cache-config); models with response_cache { enable: true } use it. */
  responseCache?: ResponseCache;
}

interface ModelEntry {
  name: string;
  versions: Map<number, ServableModel>;
  state: 'LOADING' | 'READY' | 'UNAVAILABLE' | 'UNLOADING';
  reason: string;
  fingerprint?: string;
  /** The fingerprint a load queued or running will record: poll does not ask for it again. */
  queuedFingerprint?: string;
  /** performance.now() when the running load began (progress lines name slow loads). */
  loadingSince?: number;
  /** Versions being loaded (not serving yet), and versions being unloaded: the index lists them. */
  loading: ServableModel[];
  unloading: ServableModel[];
  /** The last reload failed while the versions in `versions` kept serving: why (the index shows it beside them). */
  reloadFailure?: string;
  /** Serialises load/unload of this model. */
  op: Promise<void>;
  /** Temporary folder of the files a load request uploaded, while versions loaded from it serve. */
  tempDir?: string;
  /** Loaded by a request or at start; false for a model loaded only along with an ensemble (./dependents.ts). */
  explicit?: boolean;
}

export class ModelRepository {
  readonly root: string;
  private readonly models = new Map<string, ModelEntry>();
  /** Versions replaced by a reload, still draining; close() waits for them. */
  private readonly draining = new Set<Promise<void>>();
  /** The scan of the initial load: poll waits for it, so it does not load the same models again. */
  private initialScan?: Promise<unknown>;

  constructor(private readonly opts: RepositoryOptions) {
    this.root = path.resolve(opts.root);
  }

  /** Loads every model in the repository (or only `names`); reports each outcome; never throws for one model. */
  async loadAll(names?: string[], onProgress?: (name: string, error?: Error) => void): Promise<void> {
    const scan = scanRepository(this.root);
    this.initialScan = scan.catch(() => {});
    const entries = await scan;
    // Named models (explicit mode's --load-model) bring their ensembles' composing models, as Triton.
    const along = new Set((names ?? []).flatMap((n) => composingModels(n, (m) => this.ensembleStepsOf(m))).filter((m) => !names!.includes(m)));
    const wanted = names && names.length > 0 ? entries.filter((e) => names.includes(e.name) || along.has(e.name)) : entries;
    const missing = (names ?? []).filter((n) => !entries.some((e) => e.name === n));
    for (const n of missing) {
      this.entry(n).state = 'UNAVAILABLE';
      this.entry(n).reason = `model '${n}' is not in the repository ${this.root}`;
      this.opts.logger.error(`model '${n}' failed to load: ${this.entry(n).reason} (start-up: --load-model ${n})`, { model: n, reason: 'start-up' });
      onProgress?.(n, new StubhostError('STUBHOST_MODEL_NOT_FOUND', this.entry(n).reason));
    }
    if (wanted.length > 0) this.opts.logger.info(`loading ${wanted.length} model(s): ${wanted.map((e) => e.name).join(', ')}`, { models: wanted.map((e) => e.name) });
    await Promise.all(
      wanted.map(async (e) => {
        try {
          await this.loadModel(e.name, { fingerprint: e.fingerprint, explicit: !along.has(e.name), reason: 'start-up' });
          onProgress?.(e.name);
        } catch (err) {
          onProgress?.(e.name, err instanceof RepositoryPollError ? new StubhostError('STUBHOST_CONFIG', err.detail) : err as Error);
        }
      }),
    );
  }

  /**
   * Loads or reloads `name`; `config` is a JSON override (Triton's load API); `files` a model given
   * inline, written to a temporary folder that lives as long as the versions loaded from it.
   */
  loadModel(name: string, options: LoadOptions = {}): Promise<void> {
    const reason = options.reason ?? 'load request';
    const op = this.serial(name, async (entry) => {
      const started = options.startedAt ?? performance.now();
      const serving = [...entry.versions.keys()];
      entry.loadingSince = performance.now();
      try {
        await this.loadNow(entry, name, options);
      } catch (err) {
        const detail = loadFailureDetail(err);
        const fields = { model: name, reason };
        if (entry.versions.size > 0) {
          entry.reloadFailure = `reload failed (${reason}): ${detail}`;
          this.opts.logger.error(`model '${name}' failed to reload: ${detail}; ${versionsText(serving)} ${serving.length > 1 ? 'keep' : 'keeps'} serving (${reason})`, fields);
        } else {
          this.opts.logger.error(`model '${name}' failed to load: ${detail} (${reason})`, fields);
        }
        throw err;
      } finally {
        entry.loadingSince = undefined;
        entry.loading = [];
        if (entry.queuedFingerprint === options.fingerprint) entry.queuedFingerprint = undefined;
      }
      entry.reloadFailure = undefined;
      const ms = Math.round(performance.now() - started);
      const versions = versionsText([...entry.versions.keys()]);
      this.opts.logger.info(serving.length > 0 ? `reloaded '${name}' in ${ms} ms (${versions}; ${reason})` : `model '${name}' is ready (${versions}, loaded in ${ms} ms; ${reason})`, { model: name, reason, ms });
    });
    if (options.fingerprint) this.entry(name).queuedFingerprint = options.fingerprint;
    return op;
  }

  /** The body of loadModel, inside the model's queue. */
  private async loadNow(entry: ModelEntry, name: string, options: LoadOptions): Promise<void> {
    if (options.explicit !== false) entry.explicit = true;
    let dir = resolveModelDir(this.root, name);
    let upload: UploadedModel | undefined;
    if (options.files && Object.keys(options.files).length > 0) {
      if (options.config === undefined) throw new StubhostError('STUBHOST_INVALID_ARG', `load '${name}': file: parameters need a config parameter too (as in Triton)`);
      try {
        upload = writeUpload(name, options.files);
      } catch (err) {
        if ((err as Error).cause) this.opts.logger.error(`${(err as Error).message}: ${((err as Error).cause as Error).message}`, { model: name });
        throw err;
      }
      dir = upload.dir;
    } else if (!fs.existsSync(dir)) {
      // Triton's log line for a name in no repository (model_repository_manager.cc Poll).
      this.opts.logger.error(`failed to poll model '${name}': model not found in any model repository.`, { model: name });
      throw new RepositoryPollError(name, `model '${name}' is not in the repository ${this.root}`);
    }
    entry.state = entry.versions.size > 0 ? entry.state : 'LOADING';
    let loaded: ServableModel[] = [];
    try {
      let read: ReturnType<typeof readModelConfig>;
      try {
        read = readModelConfig(dir, { override: options.config, onWarning: (m) => this.opts.logger.warn(m, { model: name }) });
      } catch (err) {
        this.opts.logger.error(`Poll failed for model directory '${name}': ${(err as Error).message}`, { model: name });
        throw new RepositoryPollError(name, (err as Error).message, { cause: err });
      }
      const { config, autoComplete } = read;
      const available = (await scanModelDir(name, dir))?.versions ?? [];
      const versions = versionsToServe(config, config.platform === 'ensemble' && available.length === 0 ? [1] : available);
      checkModelPaths({ modelDir: dir, config, versions, uploaded: upload !== undefined });
      this.opts.logger.verbose(`loading model '${name}' version(s) ${versions.join(', ')} from ${dir}`, { model: name }, 1);
      this.opts.logger.verbose(`model '${name}' config: ${JSON.stringify(configToJson(config))}`, { model: name }, 2);
      loaded = versions.map((v): ServableModel => config.platform === 'ensemble'
        ? new EnsembleModel({
          name, version: v, config: structuredClone(config), modelDir: dir, metrics: this.opts.metrics, responseCache: this.opts.responseCache, logger: this.opts.logger,
          resolve: (model, version) => this.get(model, version > 0 ? version : undefined),
          exists: (model) => this.hasModel(model),
          stepModelsOf: (model) => this.ensembleStepsOf(model),
        })
        : new ModelVersion({
          name, version: v, modelDir: dir, repository: this.root, config: structuredClone(config), autoComplete,
          logger: this.opts.logger, metrics: this.opts.metrics, stubTimeoutMs: this.opts.stubTimeoutMs,
          arenaMaxBytes: this.opts.arenaMaxBytes, gateway: this.opts.gateway, rateLimiter: this.opts.rateLimiter,
          stubMemoryLimitBytes: this.opts.stubMemoryLimitBytes, unloadGraceMs: this.opts.unloadGraceMs, executeWarnMs: this.opts.executeWarnMs,
          responseCache: this.opts.responseCache,
        }));
      entry.loading = loaded;
      const results = await Promise.allSettled(loaded.map((mv) => mv.load()));
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      // The new versions are ready; the caller may still refuse them (dev mode: a type error).
      const refused = failed ? undefined : await options.approve?.().then(() => undefined, (err: unknown) => ({ reason: err }));
      const failure = failed ?? refused;
      if (failure) {
        // Versions still serving share metrics series and rate-limiter entries with these: keep them.
        const serving = [...entry.versions.keys()];
        await Promise.all(loaded.map((mv) => (mv instanceof ModelVersion && serving.length > 0 ? mv.unload({ replacedBy: serving }) : mv.unload()).catch(() => {})));
        throw failure.reason;
      }
    } catch (err) {
      // The upload served nothing: it goes now. Versions already serving keep their own folder.
      removeUpload(upload?.base);
      if (entry.versions.size === 0) {
        entry.state = 'UNAVAILABLE';
        entry.reason = loadFailureDetail(err);
      }
      throw err;
    }
    const old = [...entry.versions.values()];
    const oldUpload = entry.tempDir;
    entry.versions = new Map(loaded.map((mv) => [mv.version, mv]));
    entry.tempDir = upload?.base;
    entry.state = 'READY';
    entry.reason = '';
    if (options.fingerprint) entry.fingerprint = options.fingerprint;
    else entry.fingerprint = (await scanModelDir(name, dir))?.fingerprint;
    // The old versions drain in the background; requests already go to the new ones. Their
    // uploaded folder (if any) goes once they have finished with it.
    const replacedBy = loaded.map((mv) => mv.version);
    const drained = Promise.all(old.map((mv) => (mv instanceof ModelVersion ? mv.unload({ replacedBy }) : mv.unload())
      .catch((e: Error) => this.opts.logger.warn(`unload of old version failed: ${e.message}`, { model: name }))))
      .then(() => removeUpload(oldUpload));
    this.draining.add(drained);
    void drained.finally(() => this.draining.delete(drained));
  }

  /**
   * A load request (the repository API): an ensemble's composing models that are not loaded yet
   * load first, as Triton's model control does (./dependents.ts); one that fails fails the load.
   */
  async loadWithComposing(name: string, options: LoadOptions = {}): Promise<void> {
    const override = options.config === undefined ? undefined : stepsOfJson(options.config);
    const stepsOf = (m: string) => (m === name && options.config !== undefined ? override : this.ensembleStepsOf(m));
    for (const model of composingModels(name, stepsOf)) {
      if (!this.hasModel(model) || (this.models.get(model)?.versions.size ?? 0) > 0) continue; // missing: the ensemble's load says so
      try {
        await this.loadModel(model, { explicit: false, reason: `composing model of ensemble '${name}'` });
      } catch (err) {
        throw new StubhostError('STUBHOST_INVALID_ARG', `ensemble '${name}' depends on '${model}' which has no loaded version. Model '${model}' loading failed with error: ${loadFailureDetail(err)}`, { cause: err });
      }
    }
    await this.loadModel(name, options);
  }

  /**
   * An unload request; with `unloadDependents`, the composing models loaded only along with this
   * ensemble (not explicitly, used by no other loaded ensemble) are unloaded after it, as Triton's.
   */
  async unloadWithDependents(name: string, opts: { unloadDependents?: boolean; reason?: LifecycleReason } = {}): Promise<void> {
    const dependents = opts.unloadDependents ? dependentsToUnload(name, {
      stepsOf: (m) => this.ensembleStepsOf(m),
      loaded: () => [...this.models.values()].filter((e) => e.versions.size > 0).map((e) => e.name),
      isExplicit: (m) => this.models.get(m)?.explicit === true,
    }) : [];
    await this.unloadModel(name, { reason: opts.reason });
    for (const model of dependents) await this.unloadModel(model, { reason: `unload_dependents of '${name}'` });
  }

  /** `graceMs` bounds how long running executes get (shutdown); each model's own grace applies too. */
  unloadModel(name: string, opts: { graceMs?: number; reason?: LifecycleReason } = {}): Promise<void> {
    const reason = opts.reason ?? 'unload request';
    return this.serial(name, async (entry) => {
      entry.explicit = false;
      entry.state = 'UNLOADING';
      const versions = [...entry.versions.values()];
      entry.versions = new Map();
      entry.unloading = versions;
      entry.reloadFailure = undefined;
      try {
        await Promise.all(versions.map((mv) => mv.unload(opts)));
      } catch (err) {
        this.opts.logger.error(`model '${name}': unload failed: ${(err as Error).message} (${reason})`, { model: name, reason });
        throw err;
      } finally {
        entry.state = 'UNAVAILABLE';
        entry.reason = 'unloaded';
        entry.unloading = [];
        removeUpload(entry.tempDir);
        entry.tempDir = undefined;
      }
      if (versions.length > 0) this.opts.logger.info(`unloaded '${name}' ${versionsText(versions.map((v) => v.version))} (${reason})`, { model: name, reason });
    });
  }

  /** Loads in progress: model name and how long since it began (ms). */
  loadsInProgress(): { name: string; ms: number }[] {
    const now = performance.now();
    const out: { name: string; ms: number }[] = [];
    for (const e of this.models.values()) if (e.loadingSince !== undefined) out.push({ name: e.name, ms: now - e.loadingSince });
    return out;
  }

  /** Poll mode: load added and changed models, unload removed ones. */
  async poll(): Promise<void> {
    // Runs while the initial load is in progress: the models it is loading are not loaded twice.
    await this.initialScan;
    const entries = await scanRepository(this.root);
    const seen = new Set<string>();
    const work: Promise<unknown>[] = [];
    for (const e of entries) {
      seen.add(e.name);
      const current = this.models.get(e.name);
      if (current?.queuedFingerprint === e.fingerprint) continue;
      if (current && current.fingerprint === e.fingerprint && !current.tempDir) continue;
      if (current && current.state === 'UNAVAILABLE' && current.fingerprint === e.fingerprint) continue;
      const reason = current && (current.versions.size > 0 || current.fingerprint !== undefined) ? 'poll: changed on disk' : 'poll: new in the repository';
      work.push(this.loadModel(e.name, { fingerprint: e.fingerprint, reason }).catch(() => {
        // Logged by loadModel, with its reason. Not retried until it changes again.
        this.entry(e.name).fingerprint = e.fingerprint;
      }));
    }
    for (const [name, entry] of this.models) {
      // A failed model whose folder went away is unloaded too, so it stops holding readiness down.
      if (seen.has(name) || entry.tempDir || (entry.versions.size === 0 && (entry.reason === 'unloaded' || entry.reason === ''))) continue;
      work.push(this.unloadModel(name, { reason: 'poll: removed from the repository' }).catch(() => {}));
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

  /**
   * Every model with its state, as Triton's repository index lists them: one entry per version,
   * READY / LOADING / UNLOADING / UNAVAILABLE with a reason (core src/model_lifecycle.cc keeps a
   * ModelReadyState and a reason per version).
   */
  index(readyOnly = false): RepositoryIndexEntry[] {
    const out: RepositoryIndexEntry[] = [];
    const onDisk = new Set(modelFoldersSync(this.root));
    const names = new Set([...onDisk, ...this.models.keys()]);
    for (const name of [...names].sort()) {
      const entry = this.models.get(name);
      // Versions serving, then versions loading (not yet serving) and unloading, by version.
      const listed: RepositoryIndexEntry[] = [];
      for (const mv of entry?.versions.values() ?? []) {
        const state = mv.ready ? 'READY' : mv.state === 'LOADING' || mv.state === 'UNLOADING' ? mv.state : 'UNAVAILABLE';
        // A failed reload (poll mode) is shown beside the version that keeps serving, as Triton's
        // index carries a state and a reason per version.
        listed.push({ name, version: String(mv.version), state, reason: state === 'READY' ? entry!.reloadFailure ?? '' : mv.reason });
      }
      for (const mv of [...entry?.loading ?? [], ...entry?.unloading ?? []]) {
        if (listed.some((l) => l.version === String(mv.version))) continue;
        const state = entry!.unloading.includes(mv) ? 'UNLOADING' : 'LOADING';
        listed.push({ name, version: String(mv.version), state, reason: '' });
      }
      if (listed.length === 0) {
        // A model removed from disk and unloaded (poll mode) is no longer part of the repository.
        if (entry && !onDisk.has(name) && entry.reason === 'unloaded') continue;
        // Never loaded: Triton's index holds only the name (core model_repository_manager.cc RepositoryIndex).
        if (!entry) listed.push({ name });
        else listed.push(entry.state === 'LOADING' || !entry.reason ? { name, state: entry.state } : { name, state: entry.state, reason: entry.reason });
      }
      listed.sort((a, b) => Number(a.version ?? 0) - Number(b.version ?? 0));
      for (const l of listed) if (!readyOnly || l.state === 'READY') out.push(l);
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

  /** Unloads everything (server shutdown), old versions still draining included; `graceMs` bounds running executes. */
  async close(opts: { graceMs?: number } = {}): Promise<void> {
    await Promise.all([...this.models.keys()].map((n) => this.unloadModel(n, { ...opts, reason: 'server shutdown' }).catch(() => {})));
    await Promise.all([...this.draining]);
  }

  /**
   * The loaded ensembles that use `name` in a step, directly or through another ensemble: what
   * Triton's unload with `unload_dependents` unloads with it.
   */
  dependentsOf(name: string): string[] {
    const found = new Set<string>();
    const visit = (target: string): void => {
      for (const [n, entry] of this.models) {
        if (n === name || found.has(n) || entry.versions.size === 0) continue;
        if (!(this.ensembleStepsOf(n) ?? []).includes(target)) continue;
        found.add(n);
        visit(n);
      }
    };
    visit(name);
    return [...found];
  }

  /** A model an ensemble step may name: loaded (an upload included) or a model folder on disk. */
  private hasModel(name: string): boolean {
    return (this.models.get(name)?.versions.size ?? 0) > 0 || isModelFolderSync(this.root, name);
  }

  /**
   * The step models of ensemble `name` for the cycle check: from its loaded config, else from its
   * config on disk (it may be loading at the same time). Undefined when it is not an ensemble.
   */
  private ensembleStepsOf(name: string): readonly string[] | undefined {
    const loaded = [...(this.models.get(name)?.versions.values() ?? [])][0];
    let config = loaded?.config;
    if (!config) {
      try {
        config = readModelConfig(resolveModelDir(this.root, name), { onWarning: () => {} }).config;
      } catch {
        return undefined; // unreadable: its own load reports why
      }
    }
    return config.platform === 'ensemble' ? (config.ensemble_scheduling?.step ?? []).map((s) => s.model_name) : undefined;
  }

  private entry(name: string): ModelEntry {
    let entry = this.models.get(name);
    if (!entry) {
      entry = { name, versions: new Map(), state: 'UNAVAILABLE', reason: '', op: Promise.resolve(), loading: [], unloading: [] };
      this.models.set(name, entry);
    }
    return entry;
  }

  private serial(name: string, fn: (entry: ModelEntry) => Promise<void>): Promise<void> {
    resolveModelDir(this.root, name); // refuses bad names before anything else
    const entry = this.entry(name);
    const run = entry.op.then(() => fn(entry));
    const settled: Promise<void> = run.catch(() => {}).then(() => this.forgetIfNothing(entry, settled));
    entry.op = settled;
    return run;
  }

  /**
   * After the last queued operation on a name: a name with nothing loaded and no folder in the
   * repository (a load of an unknown name, a failed upload, an unloaded upload) leaves the index,
   * so clients cannot grow it, or hold readiness down, with names that never served.
   */
  private forgetIfNothing(entry: ModelEntry, op: Promise<void>): void {
    if (entry.op !== op || this.models.get(entry.name) !== entry) return;
    if (entry.versions.size > 0 || entry.tempDir || entry.state === 'LOADING' || entry.state === 'UNLOADING') return;
    if (isModelFolderSync(this.root, entry.name)) return;
    this.models.delete(entry.name);
  }
}

/** The step models of a JSON config override, undefined when it is not an ensemble (or does not parse: its load says why). */
function stepsOfJson(config: string): readonly string[] | undefined {
  try {
    const c = JSON.parse(config) as { platform?: unknown; ensemble_scheduling?: { step?: { model_name?: unknown }[] } };
    if (c.platform !== 'ensemble') return undefined;
    return (c.ensemble_scheduling?.step ?? []).map((s) => String(s.model_name ?? ''));
  } catch {
    return undefined;
  }
}

/** `version 1` / `versions 1, 2`. */
function versionsText(versions: readonly number[]): string {
  return `version${versions.length === 1 ? '' : 's'} ${versions.join(', ') || 'none'}`;
}

/** Whether `<root>/<name>` is a model folder (a config file or a numeric version folder). */
function isModelFolderSync(root: string, name: string): boolean {
  let inner: string[];
  try {
    inner = fs.readdirSync(path.join(root, name));
  } catch {
    return false;
  }
  return inner.some((f) => f === 'config.pbtxt' || f === 'config.json' || /^\d+$/.test(f));
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
    if (isModelFolderSync(root, d.name)) names.push(d.name);
  }
  return names;
}
