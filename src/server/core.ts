/**
 * The server core: the InferenceService the HTTP and gRPC front-ends call, over the model
 * repository. It also routes BLS calls from stubs back into the same scheduling path, so a BLS
 * request is batched, prioritised and rate-limited like any other.
 */
import { ModelRepository, type RepositoryOptions } from '../repository/manager.js';
import type {
  InferenceService, ModelIOContract, ModelMetadata, ModelStatistics, RepositoryIndexEntry, ServerMetadata,
} from '../core/service.js';
import type { InferRequest, InferResult } from '../core/types.js';
import type { BlsHandler } from '../instance/stub-process.js';
import { StubhostError, toStubhostError } from '../errors.js';
import { logSettings, type Level } from '../log/logger.js';
import { validateInferInputs, validateRequestedOutputs } from '../core/validate.js';
import { DEFAULT_UNLOAD_GRACE_MS } from '../model/model-version.js';
import type { ServableModel } from '../model/servable.js';

export type ModelControlMode = 'none' | 'poll' | 'explicit';

export const SERVER_NAME = 'stubhost';
export const SERVER_VERSION = '0.1.0';
export const EXTENSIONS = [
  'classification', 'sequence', 'model_repository', 'model_repository(unload_dependents)', 'schedule_policy',
  'model_configuration', 'system_shared_memory', 'binary_tensor_data', 'parameters', 'statistics', 'logging', 'generate',
];

export class ServerCore implements InferenceService {
  readonly repository: ModelRepository;
  private live = true;
  private started = false;
  /** close() was called: new client requests are refused while those in flight finish. */
  private closing = false;
  /** Client requests (not BLS) accepted and not yet answered; close() waits for them. */
  private inflight = 0;
  private drained: (() => void)[] = [];
  private readonly strictReadiness: boolean;
  private readonly modelControlMode: ModelControlMode;
  private readonly unloadGraceMs: number;

  /**
   * strictReadiness (default true, as Triton's --strict-readiness): ready only when every model is.
   * modelControlMode (default none): the repository API loads and unloads only in explicit mode.
   */
  constructor(options: Omit<RepositoryOptions, 'onBls'> & { strictReadiness?: boolean; modelControlMode?: ModelControlMode }) {
    const { strictReadiness, modelControlMode, ...repository } = options;
    this.strictReadiness = strictReadiness ?? true;
    this.modelControlMode = modelControlMode ?? 'none';
    this.unloadGraceMs = options.unloadGraceMs ?? DEFAULT_UNLOAD_GRACE_MS;
    this.repository = new ModelRepository({ ...repository, onBls: this.blsHandler });
  }

  /** Marks start-up done: readiness then reflects the models. */
  markStarted(): void {
    this.started = true;
  }

  isLive(): boolean {
    return this.live;
  }

  isReady(): boolean {
    return this.live && !this.closing && this.started && (!this.strictReadiness || this.repository.allReady());
  }

  serverMetadata(): ServerMetadata {
    return { name: SERVER_NAME, version: SERVER_VERSION, extensions: EXTENSIONS };
  }

  modelMetadata(name: string, version?: string): ModelMetadata {
    const mv = this.repository.get(name, version);
    const c = mv.contract();
    const batch = c.maxBatchSize > 0;
    const loaded = this.repository.loadedVersions().filter((v) => v.name === name).map((v) => String(v.version));
    return {
      name,
      versions: version ? [String(mv.version)] : loaded,
      platform: mv.config.platform || mv.config.backend,
      inputs: c.inputs.map((t) => ({ name: t.name, datatype: t.datatype, shape: batch ? [-1, ...t.dims] : t.dims })),
      outputs: c.outputs.map((t) => ({ name: t.name, datatype: t.datatype, shape: batch ? [-1, ...t.dims] : t.dims })),
    };
  }

  modelReady(name: string, version?: string): boolean {
    try {
      return this.repository.get(name, version).ready;
    } catch {
      return false;
    }
  }

  modelConfig(name: string, version?: string): Record<string, unknown> {
    return this.repository.get(name, version).configJson();
  }

  modelContract(name: string, version?: string): ModelIOContract {
    this.refuseWhenClosing(name);
    return this.repository.get(name, version).contract();
  }

  modelStatistics(name?: string, version?: string): ModelStatistics[] {
    if (name) {
      const versions = version ? [this.repository.get(name, version)] : this.repository.loadedVersions().filter((v) => v.name === name);
      if (versions.length === 0) this.repository.get(name); // throws the not-found error
      return versions.map(statisticsOf);
    }
    return this.repository.loadedVersions().map(statisticsOf);
  }

  async infer(request: InferRequest): Promise<InferResult> {
    this.refuseWhenClosing(request.modelName);
    this.inflight++;
    try {
      return await this.repository.get(request.modelName, request.modelVersion).infer(request);
    } finally {
      this.requestDone();
    }
  }

  inferStream(request: InferRequest): AsyncIterable<InferResult> {
    const self = this;
    return (async function* () {
      self.refuseWhenClosing(request.modelName);
      self.inflight++;
      try {
        yield* self.repository.get(request.modelName, request.modelVersion).inferStream(request);
      } finally {
        self.requestDone();
      }
    })();
  }

  private refuseWhenClosing(model: string): void {
    if (this.closing) {
      throw new StubhostError('STUBHOST_CLOSED', `the server is shutting down: request for model '${model}' refused (requests already in flight finish); retry on another server`);
    }
  }

  private requestDone(): void {
    if (--this.inflight === 0) for (const resolve of this.drained.splice(0)) resolve();
  }

  repositoryIndex(readyOnly?: boolean): RepositoryIndexEntry[] {
    return this.repository.index(readyOnly);
  }

  /** The repository API's load (uploads included): explicit mode only, as in Triton. */
  async loadModel(name: string, options?: { config?: string; files?: Record<string, Uint8Array> }): Promise<void> {
    this.refuseUnlessExplicit();
    return this.repository.loadModel(name, { ...options, reason: options?.files ? 'repository API load request with files' : options?.config !== undefined ? 'repository API load request with a config' : 'repository API load request' });
  }

  async unloadModel(name: string): Promise<void> {
    this.refuseUnlessExplicit();
    return this.repository.unloadModel(name, { reason: 'repository API unload request' });
  }

  /**
   * Triton's model control rule (core src/model_repository_manager/model_repository_manager.cc,
   * LoadUnloadModel): outside explicit mode, load and unload requests are refused with
   * UNAVAILABLE (HTTP 503) and these words, in mode none as in poll. Otherwise any client that
   * reaches a port could replace models, or upload code that the host runs.
   */
  private refuseUnlessExplicit(): void {
    if (this.modelControlMode !== 'explicit') {
      throw new StubhostError('STUBHOST_UNAVAILABLE', 'explicit model load / unload is not allowed if polling is enabled');
    }
  }

  logSettings(update?: Record<string, unknown>): Record<string, unknown> {
    if (update) {
      if ('log_verbose_level' in update) {
        const n = Number(update.log_verbose_level);
        if (!Number.isInteger(n) || n < 0) throw new StubhostError('STUBHOST_INVALID_ARG', 'log_verbose_level must be a non-negative integer');
        logSettings.level = n > 0 ? 'verbose' : 'info';
      }
      if ('log_format' in update) {
        const f = String(update.log_format);
        if (f !== 'default' && f !== 'json' && f !== 'text') throw new StubhostError('STUBHOST_INVALID_ARG', 'log_format must be "default", "json" or "text"');
        logSettings.format = f === 'text' ? 'text' : 'json';
      }
      for (const [key, level] of [['log_error', 'error'], ['log_warning', 'warn'], ['log_info', 'info']] as const) {
        if (key in update && update[key] === false && levelRank(logSettings.level) >= levelRank(level)) logSettings.level = lowerOf(level);
      }
    }
    const rank = levelRank(logSettings.level);
    return {
      log_file: '',
      log_info: rank >= 2,
      log_warning: rank >= 1,
      log_error: true,
      log_verbose_level: rank >= 3 ? 1 : 0,
      log_format: logSettings.format === 'text' ? 'default' : 'json',
    };
  }

  /**
   * Stops serving as Triton does on SIGTERM: new client requests are refused (503 / UNAVAILABLE)
   * and readiness turns false, the requests in flight finish (their BLS calls still run), then
   * every model is unloaded (finalize runs). The CLI bounds the wait with --exit-timeout-secs;
   * here it is bounded by the unload grace: requests still running then are failed as their
   * stubs are killed, so a hung execute cannot hold the close forever.
   */
  async close(): Promise<void> {
    this.closing = true;
    const started = performance.now();
    if (this.inflight > 0) {
      const drained = new Promise<void>((resolve) => this.drained.push(resolve));
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.unloadGraceMs);
        void drained.then(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    this.live = false;
    await this.repository.close({ graceMs: Math.max(0, this.unloadGraceMs - (performance.now() - started)) });
  }

  /** BLS from a stub: validated like a client request, then scheduled like one. */
  private readonly blsHandler: BlsHandler = (request, _stream, sink) => {
    const abort = new AbortController();
    request.signal = abort.signal;
    void (async () => {
      try {
        const mv = this.repository.get(request.modelName, request.modelVersion);
        const contract = mv.contract();
        validateInferInputs(contract, request.inputs);
        if (request.outputs) validateRequestedOutputs(contract, request.outputs.map((o) => o.name));
        for await (const r of mv.inferStream(request)) sink.response({ outputs: r.outputs, parameters: r.parameters });
        sink.end();
      } catch (err) {
        sink.end(toStubhostError(err));
      }
    })();
    return () => abort.abort();
  };
}

function levelRank(level: Level): number {
  return { error: 0, warn: 1, info: 2, verbose: 3 }[level];
}

function lowerOf(level: Level): Level {
  return level === 'info' ? 'warn' : 'error';
}

/** Triton's statistics of one version, plus the executes running past --execute-warn-secs (a stubhost field; empty when none). */
function statisticsOf(v: ServableModel): ModelStatistics {
  return { ...v.stats.snapshot(), stalled_executes: v.stalledExecutes?.() ?? [] };
}
