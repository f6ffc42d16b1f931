/**
 * The server core: the InferenceService the HTTP and gRPC front-ends call, over the model
 * repository. It also routes BLS calls from stubs back into the same scheduling path, so a BLS
 * request is batched, prioritised and rate-limited like any other.
 */
import { ModelRepository, type RepositoryOptions } from '../repository/manager.js';
import type {
  InferenceService, ModelMetadata, ModelStatistics, RepositoryIndexEntry, ResolvedModel, ServerMetadata,
} from '../core/service.js';
import type { InferRequest, InferResult } from '../core/types.js';
import type { BlsGateway, ModelControlRequest } from '../execution/bls-gateway.js';
import type { StreamSink } from '../execution/contract.js';
import { StubhostError } from '../errors.js';
import { currentLogSettings, updateLogSettings, type LogProtocol } from '../log/log-settings.js';
import { DEFAULT_UNLOAD_GRACE_MS } from '../model/model-version.js';
import type { ServableModel } from '../model/servable.js';
import { InferenceGateway } from '../inference/gateway.js';

export type ModelControlMode = 'none' | 'poll' | 'explicit';

export const SERVER_NAME = 'stubhost';
export const SERVER_VERSION = '0.1.0';
/**
 * Triton's list, in its order (core src/server.cc; 'trace' only when built with tracing, which
 * stubhost is not). cuda_shared_memory is listed by Triton built without GPUs too: its endpoints
 * answer (status and unregister succeed, register fails).
 */
export const EXTENSIONS = [
  'classification', 'sequence', 'model_repository', 'model_repository(unload_dependents)', 'schedule_policy',
  'model_configuration', 'system_shared_memory', 'cuda_shared_memory', 'binary_tensor_data', 'parameters', 'statistics', 'logging',
];

export class ServerCore implements InferenceService {
  readonly repository: ModelRepository;
  private live = true;
  private started = false;
  /** Every inference request, client or BLS, goes in here: one lookup, admission, classification. */
  private readonly gateway: InferenceGateway;
  private readonly strictReadiness: boolean;
  private readonly modelControlMode: ModelControlMode;
  private readonly unloadGraceMs: number;

  /**
   * strictReadiness (default true, as Triton's --strict-readiness): ready only when every model is.
   * modelControlMode (default none): the repository API loads and unloads only in explicit mode.
   */
  constructor(options: Omit<RepositoryOptions, 'gateway'> & { strictReadiness?: boolean; modelControlMode?: ModelControlMode }) {
    const { strictReadiness, modelControlMode, ...repository } = options;
    this.strictReadiness = strictReadiness ?? true;
    this.modelControlMode = modelControlMode ?? 'none';
    this.unloadGraceMs = options.unloadGraceMs ?? DEFAULT_UNLOAD_GRACE_MS;
    this.repository = new ModelRepository({ ...repository, gateway: this.stubGateway });
    this.gateway = new InferenceGateway(this.repository);
  }

  /** Marks start-up done: readiness then reflects the models. */
  markStarted(): void {
    this.started = true;
  }

  isLive(): boolean {
    return this.live;
  }

  /**
   * With strict readiness, also asks the isReady() hook of every ready model (as Triton's strict
   * readiness asks each READY model's IsReady, core src/server.cc): a Promise then, else a boolean.
   */
  isReady(): boolean | Promise<boolean> {
    const ready = this.live && !this.gateway.closing && this.started && (!this.strictReadiness || this.repository.allReady());
    if (!ready || !this.strictReadiness) return ready;
    const answers = this.repository.loadedVersions().filter((v) => v.state === 'READY').map((v) => v.checkReady?.() ?? v.ready);
    if (answers.some((a) => a === false)) return false;
    if (answers.every((a) => a === true)) return true;
    return Promise.all(answers).then((all) => all.every(Boolean));
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

  /** A model with an isReady() hook is asked (a Promise then); without one the answer is immediate. */
  modelReady(name: string, version?: string): boolean | Promise<boolean> {
    try {
      const mv = this.repository.get(name, version);
      return mv.checkReady ? mv.checkReady() : mv.ready;
    } catch {
      return false;
    }
  }

  modelConfig(name: string, version?: string): Record<string, unknown> {
    return this.repository.get(name, version).configJson();
  }

  resolve(name: string, version?: string): ResolvedModel {
    return this.gateway.resolve(name, version);
  }

  modelStatistics(name?: string, version?: string): ModelStatistics[] {
    if (name) {
      const versions = version ? [this.repository.get(name, version)] : this.repository.loadedVersions().filter((v) => v.name === name);
      if (versions.length === 0) this.repository.get(name); // throws the not-found error
      return versions.map(statisticsOf);
    }
    return this.repository.loadedVersions().map(statisticsOf);
  }

  /** An in-process request (tests, tools): resolved and admitted as a front-end's. */
  async infer(request: InferRequest): Promise<InferResult> {
    return this.gateway.resolve(request.modelName, request.modelVersion).infer(request);
  }

  inferStream(request: InferRequest): AsyncIterable<InferResult> {
    const gateway = this.gateway;
    return (async function* () {
      yield* gateway.resolve(request.modelName, request.modelVersion).inferStream(request);
    })();
  }

  repositoryIndex(readyOnly?: boolean): RepositoryIndexEntry[] {
    return this.repository.index(readyOnly);
  }

  /** The repository API's load (uploads included): explicit mode only, as in Triton. */
  async loadModel(name: string, options?: { config?: string; files?: Record<string, Uint8Array> }): Promise<void> {
    this.refuseUnlessExplicit();
    return this.repository.loadWithComposing(name, { ...options, reason: options?.files ? 'repository API load request with files' : options?.config !== undefined ? 'repository API load request with a config' : 'repository API load request' });
  }

  /** `unloadDependents`: also the composing models loaded only along with this ensemble, as Triton's. */
  async unloadModel(name: string, options?: { unloadDependents?: boolean }): Promise<void> {
    this.refuseUnlessExplicit();
    return this.repository.unloadWithDependents(name, { ...options, reason: 'repository API unload request' });
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

  /** Triton's logging extension (../log/log-settings.ts); `protocol` picks Triton's error codes and words. */
  logSettings(update?: Record<string, unknown>, protocol: LogProtocol = 'http'): Record<string, unknown> {
    return update === undefined ? currentLogSettings() : updateLogSettings(update, protocol);
  }

  /**
   * Stops serving as Triton does on SIGTERM: new client requests are refused (503 / UNAVAILABLE)
   * and readiness turns false, the requests in flight finish (their BLS calls still run), then
   * every model is unloaded (finalize runs). The CLI bounds the wait with --exit-timeout-secs;
   * here it is bounded by the unload grace: requests still running then are failed as their
   * stubs are killed, so a hung execute cannot hold the close forever.
   */
  async close(): Promise<void> {
    const started = performance.now();
    await this.gateway.drain(this.unloadGraceMs);
    this.live = false;
    await this.repository.close({ graceMs: Math.max(0, this.unloadGraceMs - (performance.now() - started)) });
  }

  /**
   * loadModel / unloadModel / isModelReady from model code (Triton's pb_utils.load_model,
   * unload_model, is_model_ready): the repository API's rules, explicit mode included, apply.
   */
  private readonly controlHandler = async (request: ModelControlRequest): Promise<{ ready?: boolean }> => {
    if (request.op === 'ready') return { ready: await this.modelReady(request.name, request.version) };
    if (this.gateway.closing) throw new StubhostError('STUBHOST_CLOSED', `the server is shutting down: ${request.op} of model '${request.name}' refused`);
    if (request.name === request.caller) {
      this.refuseUnlessExplicit();
      throw new StubhostError('STUBHOST_INVALID_ARG', `model '${request.caller}' cannot ${request.op} itself from its own code (the ${request.op} would wait for the call that makes it); use the repository API (/v2/repository/models/${request.caller}/${request.op})`);
    }
    if (request.op === 'load') await this.loadModel(request.name, { config: request.config, files: request.files });
    else await this.unloadModel(request.name, { unloadDependents: request.unloadDependents });
    return {};
  };

  /** BLS from a stub: validated like a client request, then scheduled like one (../inference/gateway.ts). */
  private readonly blsHandler = (request: InferRequest, sink: StreamSink): (() => void) => this.gateway.relay(request, sink);

  /** What the stubs' calls into the server reach (handed to the repository once, for every stub). */
  private readonly stubGateway: BlsGateway = { infer: this.blsHandler, control: this.controlHandler };
}

/** Triton's statistics of one version, plus the executes running past --execute-warn-secs (a stubhost field; empty when none). */
function statisticsOf(v: ServableModel): ModelStatistics {
  return { ...v.stats.snapshot(), stalled_executes: v.stalledExecutes?.() ?? [] };
}
