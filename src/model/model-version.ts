/**
 * One loaded version of a model: its completed config, its instances (stub processes), its
 * scheduler and its statistics. `infer` / `inferStream` are what the server core calls.
 */
import path from 'node:path';
import { ModelInstance } from '../instance/model-instance.js';
import type { StalledExecute } from '../instance/stub-process.js';
import type { BlsGateway } from '../execution/bls-gateway.js';
import { markAnswered } from '../scheduler/scheduler.js';
import type { ExecOutcome, ExecPhases, Job, JobTiming, ModelScheduler, StreamSink, SubmittedJob } from '../execution/contract.js';
import { AsyncQueue } from '../core/async-queue.js';
import type { InferRequest, InferResult, TensorValue } from '../core/types.js';
import { type InferReceiver, type ModelIOContract, inferredFrom } from '../core/service.js';
import { configToJson, inputSpecs, isDecoupled, outputSpecs, validateModelConfig, type ModelConfig } from '../config/load.js';
import { StubhostError } from '../errors.js';
import { modelFileOf } from '../config/model-paths.js';
import { parseModelSettings, type ModelSettings } from '../core/model-parameters.js';
import { setLongTimeout } from '../core/long-timer.js';
import type { Logger } from '../log/logger.js';
import { ModelStatsRecorder, failureReasonOf, type ExecutionDurations, type FailureDurations, type Metrics, type SuccessDurations } from '../metrics/index.js';
import { OutputContract } from './output-contract.js';
import type { RateLimiter } from '../scheduler/rate-limiter.js';
import { readOutputLabels, type OutputLabels } from './output-labels.js';
import { warmupSample } from './warmup.js';
import { instanceDepth, instanceSpecs, makeScheduler, settingsOf, type InstanceSpec } from './scheduler-assembly.js';
import type { ResponseCache } from '../cache/response-cache.js';
import { cacheUseOf, inferThroughCache, type CacheUse } from '../cache/cached-infer.js';

export type VersionState = 'LOADING' | 'READY' | 'UNLOADING' | 'UNAVAILABLE';

export interface ModelVersionOptions {
  name: string;
  version: number;
  modelDir: string;
  repository: string;
  config: ModelConfig;
  /** True when the config came from no file: the backend completes it. */
  autoComplete: boolean;
  logger: Logger;
  metrics?: Metrics;
  stubTimeoutMs: number;
  arenaMaxBytes?: number;
  /** Server default of the per-stub memory cap (--stub-memory-limit-bytes; 0 = none). */
  stubMemoryLimitBytes?: number;
  /** Server default of how long unload and reload wait for running executes (--unload-grace-secs). */
  unloadGraceMs?: number;
  /** Executes running longer are reported (--execute-warn-secs; 0 = off). */
  executeWarnMs?: number;
  /** Where the stubs' BLS calls and model control go. */
  gateway?: BlsGateway;
  rateLimiter?: RateLimiter;
  /** The server's response cache; used when the config has response_cache { enable: true }. */
  responseCache?: ResponseCache;
}

/** Default of ModelVersionOptions.unloadGraceMs: --exit-timeout-secs' default. */
export const DEFAULT_UNLOAD_GRACE_MS = 30_000;

/**
 * After a request's own timeout runs out, how long a running model gets to answer (it sees
 * isCancelled() from the timeout on) before the client gets the timeout error without it.
 */
export const TIMEOUT_ANSWER_GRACE_MS = 1000;

/** The settings of a config without parameters. */
const DEFAULT_SETTINGS = parseModelSettings(undefined);

/** setTimeout's longest delay; a longer one would fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class ModelVersion {
  readonly name: string;
  readonly version: number;
  state: VersionState = 'LOADING';
  /** During load: warmup samples may be submitted although the version is not READY yet. */
  private warmingUp = false;
  reason = '';
  config: ModelConfig;
  /** The config's parameters, parsed at load (again once the config is completed). */
  private parsedSettings?: ModelSettings;
  private instances: ModelInstance[] = [];
  private scheduler?: ModelScheduler;
  private contractCache?: ModelIOContract;
  private reshapeCache?: { contract: ModelIOContract; inputs: boolean; outputs: boolean };
  /** Checks every response against the (completed) config; set once the config is final. */
  private outputContract?: OutputContract;
  readonly stats: ModelStatsRecorder;
  outputLabels?: OutputLabels;
  /** Set at load when the config enables the response cache and the server has one. */
  private cacheUse?: CacheUse;
  /** The owner of the custom metrics (MetricFamily) this version's stubs make: removed at unload. */
  private readonly metricsOwner?: string;

  constructor(private readonly opts: ModelVersionOptions) {
    this.name = opts.name;
    this.version = opts.version;
    this.config = opts.config;
    this.stats = new ModelStatsRecorder(opts.name, String(opts.version), opts.metrics);
    this.metricsOwner = opts.metrics?.custom.owner(`model '${opts.name}' version ${opts.version}`);
  }

  get label(): string {
    return `model '${this.name}' version ${this.version}`;
  }

  get ready(): boolean {
    return this.state === 'READY' && this.instances.some((i) => i.state === 'ready');
  }

  get decoupled(): boolean {
    return isDecoupled(this.config);
  }

  /**
   * Ready, and the isReady() hook of every ready instance says so (as Triton's TritonModel::IsReady,
   * core src/backend_model.cc). Without a hook the answer is immediate, with no call to a stub.
   */
  checkReady(): boolean | Promise<boolean> {
    if (!this.ready) return false;
    const hooked = this.instances.filter((i) => i.state === 'ready' && i.hasReadyHook);
    if (hooked.length === 0) return true;
    return Promise.all(hooked.map((i) => i.checkReady())).then((answers) => this.ready && answers.every(Boolean));
  }

  /** Instances (for tests and the operator: kill, pids). */
  get instanceList(): readonly ModelInstance[] {
    return this.instances;
  }

  contract(): ModelIOContract {
    this.contractCache ??= {
      name: this.name,
      version: String(this.version),
      maxBatchSize: this.config.max_batch_size,
      inputs: inputSpecs(this.config),
      outputs: outputSpecs(this.config),
      decoupled: this.decoupled,
    };
    return this.contractCache;
  }

  /** Whether any input / output is reshaped, for the contract it was computed from (checked per request). */
  private reshapes(): { inputs: boolean; outputs: boolean } {
    const contract = this.contract();
    if (this.reshapeCache?.contract !== contract) {
      this.reshapeCache = {
        contract,
        inputs: contract.inputs.some((s) => s.reshape),
        outputs: contract.outputs.some((s) => s.reshape),
      };
    }
    return this.reshapeCache;
  }

  configJson(): Record<string, unknown> {
    return configToJson(this.config);
  }

  /** Starts every instance (the first one completes the config), warms up, becomes READY. */
  async load(): Promise<void> {
    try {
      this.parsedSettings = settingsOf(this.config, this.where);
      const groups = instanceSpecs(this.config, this.label);
      const first = this.makeInstance(groups[0]!);
      this.instances.push(first);
      const completed = await first.start();
      if (completed) {
        const by = this.opts.autoComplete ? `auto-completed by the ${this.config.backend} backend` : 'completed by autoCompleteConfig';
        this.config = validateModelConfig(completed, `${this.opts.modelDir} (${by})`);
        this.contractCache = undefined;
        this.parsedSettings = settingsOf(this.config, this.where);
        // autoCompleteConfig may make the model decoupled (setModelTransactionPolicy).
        first.decoupled = this.decoupled;
      }
      this.outputContract = new OutputContract({
        label: this.label, modelName: this.name, config: this.config, original: completed ? this.opts.config : undefined,
        modelFile: path.relative(this.opts.modelDir, this.modelFile()), logger: this.opts.logger,
      });
      if (this.config.input.length === 0 && this.config.output.length === 0) {
        // Every request would be refused as carrying unknown inputs: say so at load, as Triton does.
        throw new StubhostError('STUBHOST_CONFIG', `${this.label} (${this.opts.modelDir}): the config declares no inputs and no outputs; list them in config.pbtxt (input [...] output [...]) or complete them in the model's static autoCompleteConfig(config)`);
      }
      this.outputLabels = readOutputLabels(this.opts.modelDir, this.config);
      // Again: a completed config may have changed the instance groups.
      const specs = instanceSpecs(this.config, this.label);
      const rest = specs.slice(1).map((spec) => this.makeInstance(spec));
      this.instances.push(...rest);
      await Promise.all(rest.map((i) => i.start()));
      for (const inst of this.instances) {
        this.opts.metrics?.setStubHealthy(this.name, inst.name, true);
        this.opts.metrics?.setStalledExecutes(this.name, inst.name, 0);
      }
      this.scheduler = makeScheduler({
        name: this.name, label: this.label, modelDir: this.opts.modelDir, config: this.config, settings: this.settings,
        onPending: (n) => this.stats.setPending(n), rateLimiter: this.opts.rateLimiter,
      });
      for (const inst of this.instances) {
        this.scheduler.addTarget(inst);
        inst.on('ready', () => this.scheduler?.schedule());
      }
      const rateOf = new Map(specs.map((s) => [s.name, s.rate]));
      this.opts.rateLimiter?.register(this.name, this.instances.map((i) => ({ name: i.name, spec: rateOf.get(i.name) ?? { resources: [], priority: 0, device: 0 } })));
      await this.warmup();
      this.cacheUse = cacheUseOf(this.config, this.opts.responseCache, this.stats, this.opts.logger, this.label);
      this.state = 'READY';
    } catch (err) {
      this.state = 'UNAVAILABLE';
      this.reason = (err as Error).message;
      await Promise.all(this.instances.map((i) => i.close()));
      this.stats.close();
      this.removeCustomMetrics();
      throw err;
    }
  }

  /**
   * Lets queued and running requests finish, then finalizes every instance.
   * `replacedBy`: the versions a reload put in its place. Metrics series and rate-limiter
   * registrations are keyed by model name (and version), so the new versions already share them:
   * removing them here would leave a reloaded model without metrics or rate-limiter entries.
   */
  async unload(opts: { replacedBy?: readonly number[]; graceMs?: number } = {}): Promise<void> {
    if (this.state === 'UNAVAILABLE') return;
    this.state = 'UNLOADING';
    // Running executes get a bounded grace: a hung one would otherwise hold the unload (and the
    // reload or load queued behind it) forever.
    const graceMs = Math.min(this.unloadGraceMs(), opts.graceMs ?? Infinity);
    const drained = await settlesWithin(this.scheduler?.idle() ?? Promise.resolve(), graceMs);
    this.scheduler?.close('model is unloaded');
    if (drained) await Promise.all(this.instances.map((i) => i.close()));
    else {
      const cause = `execute did not finish within the unload grace of ${graceMs / 1000} s (model parameter unload_grace_seconds, --unload-grace-secs); the stub was killed`;
      this.opts.logger.warn(`${this.label}: ${cause}`, { model: this.name });
      await Promise.all(this.instances.map((i) => (i.inflight > 0 ? i.terminate(cause) : i.close())));
    }
    const replaced = opts.replacedBy !== undefined && opts.replacedBy.length > 0;
    if (!replaced) this.opts.rateLimiter?.unregister(this.name);
    this.state = 'UNAVAILABLE';
    this.reason = 'unloaded';
    // The families this version made go with it (a reload's new version owns its own).
    this.removeCustomMetrics();
    if (!opts.replacedBy?.includes(this.version)) {
      this.stats.close();
      if (!replaced) for (const inst of this.instances) this.opts.metrics?.removeStubs(this.name, inst.name);
    }
  }

  /**
   * One request, one response. Not an async function: the usual path returns run's promise
   * itself, not a second one that waits for it (a promise and microtask hops per request).
   * Every path still reports failures as a rejection, never a throw.
   */
  infer(request: InferRequest): Promise<InferResult> {
    if (this.decoupled) return this.inferDecoupled(request);
    // A cache hit skips the scheduler (warmup, before READY, never uses the cache).
    if (this.cacheUse && this.state === 'READY') return inferThroughCache(this.cacheUse, request, (r) => this.run(r));
    return this.run(request);
  }

  private async inferDecoupled(request: InferRequest): Promise<InferResult> {
    const results: InferResult[] = [];
    for await (const r of this.inferStream(request)) results.push(r);
    if (results.length !== 1) {
      throw new StubhostError('STUBHOST_UNSUPPORTED', `${this.label} is decoupled and sent ${results.length} responses; use the streaming API (gRPC ModelStreamInfer) for it`);
    }
    return results[0]!;
  }

  /** The promise settles in the outcome's receiver: no async function awaiting it. */
  private run(request: InferRequest): Promise<InferResult> {
    return new Promise<InferResult>((resolve, reject) => this.submit(request, new PromiseReceiver(resolve, reject)));
  }

  /**
   * infer() without a promise: `receiver.inferred` is called once with the error or the result,
   * synchronously as the batch's outcome is read (or at once, for a request refused at once).
   * Decoupled models and the response cache go through infer().
   */
  inferThen(request: InferRequest, receiver: InferReceiver): void {
    if (this.decoupled || (this.cacheUse && this.state === 'READY')) {
      inferredFrom(this.infer(request), receiver);
      return;
    }
    this.submit(request, receiver);
  }

  /** 0..n responses (decoupled), or exactly one. */
  inferStream(request: InferRequest): AsyncIterable<InferResult> {
    if (!this.decoupled) {
      const self = this;
      return (async function* () {
        yield await self.infer(request);
      })();
    }
    const queue = new AsyncQueue<InferResult | StubhostError>();
    const batchSize = this.batchSizeOf(request);
    // A response that breaks the output contract fails the stream; what the model sends after it is dropped.
    let broken = false;
    const sink: StreamSink = {
      response: (o, final) => {
        if (broken) return;
        const checked = o.error ? o : this.checkOutputs(o, batchSize);
        if (checked.error) {
          broken = checked !== o;
          queue.push(checked.error);
          return;
        }
        queue.push(final ? { ...this.toResult(request, o), final } : this.toResult(request, o));
      },
      end: (err) => {
        if (err) queue.push(err);
        queue.end();
      },
    };
    // Execute returned. If it failed before any stream began, the stream ends with that error.
    this.submit(request, {
      inferred: (error) => {
        if (error !== undefined) sink.end(error as StubhostError);
      },
    }, sink);
    return (async function* () {
      for await (const item of queue) {
        if (item instanceof StubhostError) throw item;
        yield item;
      }
    })();
  }

  /**
   * Hands the request to the scheduler. Non-decoupled: `receiver` gets the result or the error.
   * Decoupled (`sink`): the responses go to the sink; `receiver` gets only an error of execute
   * itself (its result is never built).
   */
  private submit(request: InferRequest, receiver: InferReceiver, sink?: StreamSink): void {
    const scheduler = this.scheduler;
    if (!scheduler || (this.state !== 'READY' && !this.warmingUp)) {
      receiver.inferred(new StubhostError('STUBHOST_MODEL_NOT_READY', `${this.label} is not ready (${this.state.toLowerCase()}${this.reason ? `: ${this.reason}` : ''})`), undefined);
      return;
    }
    const arrived = performance.now();
    const maxBatch = this.config.max_batch_size;
    const shapeKey = maxBatch > 0
      ? request.inputs.map((t) => `${t.name}:${t.shape.slice(1).join('x')}`).sort().join('|')
      : '';
    const job = new VersionJob(this, request, receiver, this.batchSizeOf(request), shapeKey, scheduler.levelOf(request.priority), arrived, sink);
    // Without a timeout (most requests) no timers, no closure, no copy of the request, no watch object.
    if (request.timeoutUs > 0) {
      const timeout = this.cancelOnTimeout(request, (error) => {
        // The deadline: the model had the grace to answer its cancellation and did not (it is
        // hung, or still queued behind one that is). The client's wait ends here.
        if (job.answered) return;
        markAnswered(timeout.request.signal!);
        if (!job.recorded) {
          job.recorded = true;
          this.recordOutcome(arrived, { error });
        }
        if (sink) sink.end(error);
        else {
          job.answered = true;
          receiver.inferred(error, undefined);
        }
      });
      job.timeout = timeout;
      if (sink && timeout.clear) {
        const inner = sink;
        job.sink = {
          response: (o, final) => {
            if (!job.answered) inner.response(o, final);
          },
          end: (err) => {
            if (job.answered) return;
            job.answered = true;
            timeout.clear?.();
            inner.end(err);
          },
        };
      }
    }
    job.request = this.reshapeInputs(job.timeout?.request ?? request);
    scheduler.submit(job);
  }

  /** A job's outcome from the scheduler (VersionJob.finish): statistics, then the client's answer. */
  jobFinished(job: VersionJob, outcome: ExecOutcome, timing: JobTiming): void {
    const sink = job.sink;
    // Decoupled: the stream's end clears it, but a job failed before it ran (queue full,
    // cancelled or timed out in the queue) has no stream to end: clear it here.
    if (!sink || outcome.error) job.timeout?.clear?.();
    // Before the statistics: a response that breaks the output contract is a failure.
    if (!sink && !outcome.error) outcome = this.checkOutputs(outcome, job.batchSize);
    if (!job.recorded) {
      job.recorded = true;
      this.recordOutcome(job.arrivedAt, outcome, timing);
    }
    // Decoupled: the stream may have ended already (its final response, or the deadline).
    if (job.answered) return;
    if (sink) {
      if (outcome.error) job.receiver.inferred(outcome.error, undefined);
      return;
    }
    job.answered = true;
    if (outcome.error) {
      job.receiver.inferred(outcome.error, undefined);
      return;
    }
    let result: InferResult;
    try {
      result = this.toResult(job.original, outcome);
    } catch (err) {
      job.receiver.inferred(err, undefined);
      return;
    }
    job.receiver.inferred(undefined, result);
  }

  /** The statistics of one request that ended: `timing` when it ran, none when the deadline answered for it. */
  private recordOutcome(arrived: number, outcome: ExecOutcome, timing?: JobTiming): void {
    // Whole nanoseconds: Triton's statistics carry uint64 ns, and clients parse them as integers.
    // The execution's end when it ran (the clock read its instance made), else now.
    const requestNs = Math.round(((timing?.endedAt ?? performance.now()) - arrived) * 1e6);
    if (outcome.error || !timing) {
      failure.requestNs = requestNs;
      failure.reason = failureReasonOf(outcome.error);
      this.stats.recordFailure(failure);
    } else {
      // One scratch record for every request: the recorder reads it and keeps nothing.
      computeNsInto(success, timing.computeMs, timing.inputMs, timing.outputMs);
      success.queueNs = Math.round(timing.queueMs * 1e6);
      success.requestNs = requestNs;
      this.stats.recordSuccess(success);
    }
  }

  /**
   * A request with a timeout is cancelled when it runs out: its signal aborts at arrival +
   * timeout, so a model that polls `request.isCancelled()` stops (queue policies still decide
   * what happens to it while queued). The model's answer, if it gives one within
   * TIMEOUT_ANSWER_GRACE_MS, is delivered; after that `onDeadline` answers the client with the
   * timeout error, even when the execute never returns.
   */
  private cancelOnTimeout(request: InferRequest, onDeadline: (error: StubhostError) => void): TimeoutWatch {
    const ac = new AbortController();
    const parent = request.signal;
    const onParent = (): void => ac.abort(parent!.reason);
    if (parent?.aborted) ac.abort(parent.reason);
    else parent?.addEventListener('abort', onParent, { once: true });
    const ms = request.timeoutUs / 1000;
    // Any length, exactly: setTimeout alone would fire a delay above 2^31-1 ms after 1 ms.
    const timer = setLongTimeout(() => ac.abort(new StubhostError('STUBHOST_TIMEOUT', `${this.label}: request timed out after ${ms} ms`)), ms).unref();
    const graceMs = TIMEOUT_ANSWER_GRACE_MS;
    const deadline = setLongTimeout(() => onDeadline(new StubhostError('STUBHOST_TIMEOUT', `${this.label}: request timed out after ${ms} ms (the model did not answer within ${graceMs} ms of its cancellation)`)), ms + graceMs).unref();
    return {
      request: { ...request, signal: ac.signal },
      clear: () => {
        timer.clear();
        deadline.clear();
        parent?.removeEventListener('abort', onParent);
      },
    };
  }

  /** The request's batch dimension (1 when the model does not batch). */
  private batchSizeOf(request: InferRequest): number {
    return this.config.max_batch_size > 0 ? (request.inputs[0]?.shape[0] ?? 1) : 1;
  }

  /** `outcome`, or a failed one when its outputs break the output contract (output-contract.ts). */
  private checkOutputs(outcome: ExecOutcome, batchSize: number): ExecOutcome {
    const outputs = outcome.outputs;
    if (!outputs || outputs.length === 0 || !this.outputContract) return outcome;
    const error = this.outputContract.check(outputs, batchSize, outcome.sites);
    return error ? { error } : outcome;
  }

  private toResult(request: InferRequest, outcome: ExecOutcome): InferResult {
    let outputs = outcome.outputs ?? [];
    const contract = this.contract();
    const specs = contract.outputs;
    if (this.reshapes().outputs) outputs = outputs.map((t) => this.unreshape(t, specs.find((s) => s.name === t.name)));
    // The contract's version string: made once, not per response.
    return { modelName: this.name, modelVersion: contract.version, id: request.id, outputs, parameters: outcome.parameters };
  }

  /** config `reshape`: the model sees the reshaped shape (batch dimension kept). */
  private reshapeInputs(request: InferRequest): InferRequest {
    if (!this.reshapes().inputs) return request;
    const specs = this.contract().inputs;
    const batched = this.config.max_batch_size > 0;
    const inputs = request.inputs.map((t): TensorValue => {
      const spec = specs.find((s) => s.name === t.name);
      if (!spec?.reshape) return t;
      return { ...t, shape: batched ? [t.shape[0]!, ...spec.reshape] : [...spec.reshape] };
    });
    return { ...request, inputs };
  }

  private unreshape(t: TensorValue, spec: { dims: number[]; reshape?: number[] } | undefined): TensorValue {
    if (!spec?.reshape || spec.dims.includes(-1)) return t;
    const batched = this.config.max_batch_size > 0;
    return { ...t, shape: batched ? [t.shape[0]!, ...spec.dims] : [...spec.dims] };
  }

  /** An execution's statistics: its batch size counts the requests' batch dimensions when the model batches. */
  private recordExecution(jobs: Job[], started: number, phases: ExecPhases): void {
    let size = jobs.length;
    if (this.config.max_batch_size > 0) {
      size = 0;
      for (const j of jobs) size += j.batchSize;
    }
    this.stats.recordExecution(size, computeNsInto(execution, (phases.endedAt ?? performance.now()) - started, phases.inputMs, phases.outputMs));
  }

  /** Executes running past the execute warning limit, on every instance. */
  stalledExecutes(): StalledExecute[] {
    return this.instances.flatMap((i) => i.stalledExecutes());
  }

  /** The version's settings: parsed at load; the defaults before. */
  private get settings(): ModelSettings {
    return this.parsedSettings ?? DEFAULT_SETTINGS;
  }

  /** The model and its folder, as config errors name them. */
  private get where(): string {
    return `${this.label} (${this.opts.modelDir})`;
  }

  /** The per-stub memory cap: parameter memory_limit_bytes, else the server's. */
  private memoryLimitBytes(): number {
    return this.settings.memoryLimitBytes ?? this.opts.stubMemoryLimitBytes ?? 0;
  }

  /** How long unload waits for running executes: parameter unload_grace_seconds, else the server's. */
  private unloadGraceMs(): number {
    return this.settings.unloadGraceMs ?? this.opts.unloadGraceMs ?? DEFAULT_UNLOAD_GRACE_MS;
  }

  private removeCustomMetrics(): void {
    if (this.metricsOwner !== undefined) this.opts.metrics?.custom.removeOwner(this.metricsOwner);
  }

  private makeInstance(spec: InstanceSpec): ModelInstance {
    const settings = this.settings;
    const modelFile = this.modelFile();
    return new ModelInstance({
      modelName: this.name,
      modelVersion: this.version,
      instanceName: spec.name,
      isolation: settings.isolation,
      decoupled: this.decoupled,
      depth: instanceDepth(this.config, this.settings),
      healthTimeoutMs: settings.stubTimeoutMs ?? this.opts.stubTimeoutMs,
      executeTimeoutMs: settings.executeTimeoutMs ?? 0,
      executeWarnMs: this.opts.executeWarnMs ?? 0,
      concurrentExecutes: settings.maxInflightPerInstance,
      onStalled: (count) => this.opts.metrics?.setStalledExecutes(this.name, spec.name, count),
      onResponseStat: (stat) => this.stats.recordResponse(stat),
      onExecuted: (jobs, started, phases) => this.recordExecution(jobs, started, phases),
      memoryLimitBytes: this.memoryLimitBytes(),
      arenaMaxBytes: settings.shmMaxBytes || this.opts.arenaMaxBytes,
      logger: this.opts.logger,
      gateway: this.opts.gateway,
      customMetrics: this.opts.metrics && this.metricsOwner !== undefined ? () => this.opts.metrics!.custom.session(this.metricsOwner!) : undefined,
      onHealth: (healthy, restarted) => {
        this.opts.metrics?.setStubHealthy(this.name, spec.name, healthy);
        if (restarted) this.opts.metrics?.incStubRestarts(this.name, spec.name);
      },
      init: {
        modelName: this.name,
        modelVersion: this.version,
        modelRepository: this.opts.repository,
        modelDir: this.opts.modelDir,
        modelFile,
        backend: this.config.backend,
        modelConfig: configToJson(this.config),
        settings,
        instanceName: spec.name,
        instanceKind: spec.kind,
        instanceDeviceId: spec.device,
      },
    });
  }

  private modelFile(): string {
    return modelFileOf(this.opts.modelDir, this.version, this.config);
  }

  private async warmup(): Promise<void> {
    const samples = this.config.model_warmup ?? [];
    for (const [index, sample] of samples.entries()) {
      const { inputs, repeat } = warmupSample(sample, index, { where: this.where, modelDir: this.opts.modelDir, config: this.config, contract: this.contract() });
      for (let i = 0; i < repeat; i++) {
        this.warmingUp = true; // submit() takes only warmup work before the version is READY
        try {
          await this.infer({ id: `warmup:${sample.name}`, modelName: this.name, inputs, parameters: {}, priority: 0, timeoutUs: 0 });
        } catch (err) {
          throw new StubhostError('STUBHOST_LOAD_FAILED', `${this.label}: warmup sample '${sample.name}' failed: ${(err as Error).message}`);
        } finally {
          this.warmingUp = false;
        }
      }
    }
  }
}

/** Whether `promise` settles within `ms` (it is not cancelled when it does not). */
function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  if (!(ms < MAX_TIMER_MS)) return promise.then(() => true, () => true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    promise.then(() => {
      clearTimeout(timer);
      resolve(true);
    }, () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/**
 * One request as this version hands it to its scheduler: the scheduler's fields, and the state
 * its answer needs. Whether the client has its answer (non-decoupled: the outcome; decoupled:
 * the stream's end) — a later one, after the deadline answered, is dropped — and whether the
 * statistics have it: plain fields, no closures per request.
 */
class VersionJob implements SubmittedJob {
  /** As the model sees it (reshaped, and with the timeout's signal when it has one). */
  request: InferRequest;
  readonly timeoutUs: number;
  answered = false;
  recorded = false;
  timeout?: TimeoutWatch;

  constructor(
    private readonly version: ModelVersion,
    /** As the client sent it: the result names its id. */
    readonly original: InferRequest,
    readonly receiver: InferReceiver,
    readonly batchSize: number,
    readonly shapeKey: string,
    readonly level: number,
    readonly arrivedAt: number,
    public sink: StreamSink | undefined,
  ) {
    this.request = original;
    this.timeoutUs = original.timeoutUs;
  }

  // A method, not an arrow property: tsx's keepNames would wrap an arrow in __name (a
  // defineProperty) for every request.
  finish(outcome: ExecOutcome, timing: JobTiming): void {
    this.version.jobFinished(this, outcome, timing);
  }
}

/** run()'s receiver: settles its promise. */
class PromiseReceiver implements InferReceiver {
  constructor(
    private readonly resolve: (result: InferResult) => void,
    private readonly reject: (err: unknown) => void,
  ) {}

  inferred(error: unknown, result: InferResult | undefined): void {
    if (error !== undefined) this.reject(error);
    else this.resolve(result!);
  }
}

/** A request's timeout watch (cancelOnTimeout): the request as submitted, and how to stop the timers. */
interface TimeoutWatch {
  request: InferRequest;
  clear?: () => void;
}

/** Scratch records handed to the statistics recorder, which copies what it needs (no allocation per request). */
const success: SuccessDurations = { queueNs: 0, computeInputNs: 0, computeInferNs: 0, computeOutputNs: 0, requestNs: 0 };
const failure: FailureDurations = { requestNs: 0 };
const execution: ExecutionDurations = { computeInputNs: 0, computeInferNs: 0, computeOutputNs: 0 };

/**
 * An execution's compute durations as Triton splits them (core src/infer_stats.cc): the input
 * copy, the rest (the model's execute, and the IPC around it), and the output copy; into `out`.
 */
function computeNsInto<T extends ExecutionDurations>(out: T, computeMs: number, inputMs = 0, outputMs = 0): T {
  const computeInputNs = Math.round(inputMs * 1e6);
  const computeOutputNs = Math.round(outputMs * 1e6);
  out.computeInputNs = computeInputNs;
  out.computeInferNs = Math.max(0, Math.round(computeMs * 1e6) - computeInputNs - computeOutputNs);
  out.computeOutputNs = computeOutputNs;
  return out;
}
