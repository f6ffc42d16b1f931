/**
 * One loaded version of a model: its completed config, its instances (stub processes), its
 * scheduler and its statistics. `infer` / `inferStream` are what the server core calls.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ModelInstance } from '../instance/model-instance.js';
import type { BlsHandler } from '../instance/stub-process.js';
import { Scheduler } from '../scheduler/scheduler.js';
import { SequenceBatcher } from '../scheduler/sequence-batcher.js';
import type { ExecOutcome, ExecutionTarget, Job, StreamSink } from '../execution/contract.js';
import type { QueuePolicy } from '../scheduler/priority-queue.js';
import { AsyncQueue } from '../core/async-queue.js';
import { fromConfigType, typedArrayFor } from '../core/dtypes.js';
import type { InferRequest, InferResult, TensorValue } from '../core/types.js';
import type { ModelIOContract } from '../core/service.js';
import { configToJson, inputSpecs, isDecoupled, modelParameter, outputSpecs, validateModelConfig, type ModelConfig } from '../config/load.js';
import { StubhostError } from '../errors.js';
import { maxInflightPerInstance } from '../core/model-parameters.js';
import { tensorFromBytes, validateInferInputs } from '../core/validate.js';
import type { Logger } from '../log/logger.js';
import { ModelStatsRecorder, failureReasonOf, type Metrics } from '../metrics/index.js';
import type { InstanceRateSpec, RateLimiter } from '../scheduler/rate-limiter.js';

/** One instance the instance groups ask for. */
interface InstanceSpec {
  name: string;
  kind: string;
  device: number;
  rate: InstanceRateSpec;
}

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
  onBls?: BlsHandler;
  rateLimiter?: RateLimiter;
}

export class ModelVersion {
  readonly name: string;
  readonly version: number;
  state: VersionState = 'LOADING';
  /** During load: warmup samples may be submitted although the version is not READY yet. */
  private warmingUp = false;
  reason = '';
  config: ModelConfig;
  private instances: ModelInstance[] = [];
  private scheduler?: Pick<Scheduler, 'submit' | 'schedule' | 'addTarget' | 'close' | 'idle' | 'levelOf'>;
  private contractCache?: ModelIOContract;
  private reshapeCache?: { contract: ModelIOContract; inputs: boolean; outputs: boolean };
  readonly stats: ModelStatsRecorder;

  constructor(private readonly opts: ModelVersionOptions) {
    this.name = opts.name;
    this.version = opts.version;
    this.config = opts.config;
    this.stats = new ModelStatsRecorder(opts.name, String(opts.version), opts.metrics);
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
    const groups = this.instanceSpecs();
    try {
      const first = this.makeInstance(groups[0]!);
      this.instances.push(first);
      const completed = await first.start();
      if (completed) {
        const by = this.opts.autoComplete ? `auto-completed by the ${this.config.backend} backend` : 'completed by autoCompleteConfig';
        this.config = validateModelConfig(completed, `${this.opts.modelDir} (${by})`);
        this.contractCache = undefined;
      }
      if (this.config.input.length === 0 && this.config.output.length === 0) {
        // Every request would be refused as carrying unknown inputs: say so at load, as Triton does.
        throw new StubhostError('STUBHOST_CONFIG', `${this.label} (${this.opts.modelDir}): the config declares no inputs and no outputs; list them in config.pbtxt (input [...] output [...]) or complete them in the model's static autoCompleteConfig(config)`);
      }
      // Again: a completed config may have changed the instance groups.
      const specs = this.instanceSpecs();
      const rest = specs.slice(1).map((spec) => this.makeInstance(spec));
      this.instances.push(...rest);
      await Promise.all(rest.map((i) => i.start()));
      for (const inst of this.instances) this.opts.metrics?.setStubHealthy(this.name, inst.name, true);
      this.scheduler = this.makeScheduler();
      for (const inst of this.instances) {
        this.scheduler.addTarget(this.targetOf(inst));
        inst.on('ready', () => this.scheduler?.schedule());
      }
      const rateOf = new Map(specs.map((s) => [s.name, s.rate]));
      this.opts.rateLimiter?.register(this.name, this.instances.map((i) => ({ name: i.name, spec: rateOf.get(i.name) ?? { resources: [], priority: 0, device: 0 } })));
      await this.warmup();
      this.state = 'READY';
    } catch (err) {
      this.state = 'UNAVAILABLE';
      this.reason = (err as Error).message;
      await Promise.all(this.instances.map((i) => i.close()));
      this.stats.close();
      throw err;
    }
  }

  /**
   * Lets queued and running requests finish, then finalizes every instance.
   * `replacedBy`: the versions a reload put in its place. Metrics series and rate-limiter
   * registrations are keyed by model name (and version), so the new versions already share them:
   * removing them here would leave a reloaded model without metrics or rate-limiter entries.
   */
  async unload(opts: { replacedBy?: readonly number[] } = {}): Promise<void> {
    if (this.state === 'UNAVAILABLE') return;
    this.state = 'UNLOADING';
    await this.scheduler?.idle();
    this.scheduler?.close('model is unloaded');
    await Promise.all(this.instances.map((i) => i.close()));
    const replaced = opts.replacedBy !== undefined && opts.replacedBy.length > 0;
    if (!replaced) this.opts.rateLimiter?.unregister(this.name);
    this.state = 'UNAVAILABLE';
    this.reason = 'unloaded';
    if (!opts.replacedBy?.includes(this.version)) {
      this.stats.close();
      if (!replaced) for (const inst of this.instances) this.opts.metrics?.removeStubs(this.name, inst.name);
    }
  }

  /** One request, one response. */
  async infer(request: InferRequest): Promise<InferResult> {
    if (this.decoupled) {
      const results: InferResult[] = [];
      for await (const r of this.inferStream(request)) results.push(r);
      if (results.length !== 1) {
        throw new StubhostError('STUBHOST_UNSUPPORTED', `${this.label} is decoupled and sent ${results.length} responses; use the streaming API (gRPC ModelStreamInfer) for it`);
      }
      return results[0]!;
    }
    const outcome = await new Promise<ExecOutcome>((resolve) => this.submit(request, resolve));
    if (outcome.error) throw outcome.error;
    return this.toResult(request, outcome);
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
    const sink: StreamSink = {
      response: (o, final) => queue.push(o.error ?? (final ? { ...this.toResult(request, o), final } : this.toResult(request, o))),
      end: (err) => {
        if (err) queue.push(err);
        queue.end();
      },
    };
    this.submit(request, (outcome) => {
      // Execute returned. If it failed before any stream began, end the stream with that error.
      if (outcome.error) sink.end(outcome.error);
    }, sink);
    return (async function* () {
      for await (const item of queue) {
        if (item instanceof StubhostError) throw item;
        yield item;
      }
    })();
  }

  private submit(request: InferRequest, done: (o: ExecOutcome) => void, sink?: StreamSink): void {
    const scheduler = this.scheduler;
    if (!scheduler || (this.state !== 'READY' && !this.warmingUp)) {
      done({ error: new StubhostError('STUBHOST_MODEL_NOT_READY', `${this.label} is not ready (${this.state.toLowerCase()}${this.reason ? `: ${this.reason}` : ''})`) });
      return;
    }
    const arrived = performance.now();
    const maxBatch = this.config.max_batch_size;
    const batchSize = maxBatch > 0 ? (request.inputs[0]?.shape[0] ?? 1) : 1;
    const shapeKey = maxBatch > 0
      ? request.inputs.map((t) => `${t.name}:${t.shape.slice(1).join('x')}`).sort().join('|')
      : '';
    const timeout = this.cancelOnTimeout(request);
    if (sink && timeout.clear) {
      const end = sink.end.bind(sink);
      sink = { response: sink.response.bind(sink), end: (err) => { timeout.clear!(); end(err); } };
    }
    const reshaped = this.reshapeInputs(timeout.request);
    const self = this;
    scheduler.submit({
      request: reshaped,
      batchSize,
      shapeKey,
      level: scheduler.levelOf(request.priority),
      timeoutUs: request.timeoutUs,
      sink,
      // A method, not an arrow property: tsx's keepNames would wrap an arrow in __name
      // (a defineProperty) for every request.
      finish(outcome, timing) {
        // Decoupled: the stream's end clears it, but a job failed before it ran (queue full,
        // cancelled or timed out in the queue) has no stream to end: clear it here.
        if (!sink || outcome.error) timeout.clear?.();
        // Whole nanoseconds: Triton's statistics carry uint64 ns, and clients parse them as integers.
        const requestNs = Math.round((performance.now() - arrived) * 1e6);
        if (outcome.error) self.stats.recordFailure({ requestNs, reason: failureReasonOf(outcome.error) });
        else {
          self.stats.recordSuccess({
            queueNs: Math.round(timing.queueMs * 1e6), computeInputNs: 0, computeInferNs: Math.round(timing.computeMs * 1e6), computeOutputNs: 0, requestNs,
          });
        }
        done(outcome);
      },
    });
  }

  /**
   * A request with a timeout is cancelled when it runs out: its signal aborts at arrival +
   * timeout, so a model that polls `request.isCancelled()` stops (queue policies still decide
   * what happens to it while queued). The model's answer, if it gives one anyway, is delivered.
   */
  private cancelOnTimeout(request: InferRequest): { request: InferRequest; clear?: () => void } {
    if (!(request.timeoutUs > 0)) return { request };
    const ac = new AbortController();
    const parent = request.signal;
    const onParent = (): void => ac.abort(parent!.reason);
    if (parent?.aborted) ac.abort(parent.reason);
    else parent?.addEventListener('abort', onParent, { once: true });
    const ms = request.timeoutUs / 1000;
    const timer = setTimeout(() => ac.abort(new StubhostError('STUBHOST_TIMEOUT', `${this.label}: request timed out after ${ms} ms`)), ms);
    timer.unref();
    return {
      request: { ...request, signal: ac.signal },
      clear: () => {
        clearTimeout(timer);
        parent?.removeEventListener('abort', onParent);
      },
    };
  }

  private toResult(request: InferRequest, outcome: ExecOutcome): InferResult {
    let outputs = outcome.outputs ?? [];
    const specs = this.contract().outputs;
    if (this.reshapes().outputs) outputs = outputs.map((t) => this.unreshape(t, specs.find((s) => s.name === t.name)));
    return { modelName: this.name, modelVersion: String(this.version), id: request.id, outputs, parameters: outcome.parameters };
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

  private targetOf(inst: ModelInstance): ExecutionTarget {
    return {
      name: inst.name,
      depth: this.instanceDepth(),
      canAccept: () => inst.canAccept(),
      run: async (jobs: Job[]) => {
        const started = performance.now();
        await inst.run(jobs);
        const ns = Math.round((performance.now() - started) * 1e6);
        const size = this.config.max_batch_size > 0 ? jobs.reduce((n, j) => n + j.batchSize, 0) : jobs.length;
        this.stats.recordExecution(size, { computeInputNs: 0, computeInferNs: ns, computeOutputNs: 0 });
      },
    };
  }

  private makeScheduler(): Pick<Scheduler, 'submit' | 'schedule' | 'addTarget' | 'close' | 'idle' | 'levelOf'> {
    const sb = this.config.sequence_batching;
    if (sb) {
      return new SequenceBatcher({ modelLabel: this.label, maxBatchSize: this.config.max_batch_size, config: sb, onPending: (n) => this.stats.setPending(n) });
    }
    const db = this.config.dynamic_batching;
    const levels = db && db.priority_levels > 0 ? db.priority_levels : 1;
    const defaultLevel = db && db.default_priority_level > 0 ? db.default_priority_level : Math.ceil(levels / 2) || 1;
    const toPolicy = (p: { timeout_action: 'REJECT' | 'DELAY'; default_timeout_microseconds: number; allow_timeout_override: boolean; max_queue_size: number } | undefined): QueuePolicy => ({
      timeoutAction: p?.timeout_action ?? 'REJECT',
      defaultTimeoutUs: p?.default_timeout_microseconds ?? 0,
      allowTimeoutOverride: p?.allow_timeout_override ?? false,
      maxQueueSize: p?.max_queue_size ?? 0,
    });
    return new Scheduler({
      modelLabel: this.label,
      maxBatchSize: this.config.max_batch_size,
      dynamicBatching: db
        ? { preferredBatchSizes: db.preferred_batch_size, maxQueueDelayUs: db.max_queue_delay_microseconds, preserveOrdering: db.preserve_ordering }
        : undefined,
      priorityLevels: levels,
      defaultPriorityLevel: defaultLevel,
      policyOf: (level) => toPolicy(db?.priority_queue_policy[String(level)] ?? db?.default_queue_policy),
      onPending: (n) => this.stats.setPending(n),
      priorityAgingUs: Number(modelParameter(this.config, 'priority_aging_microseconds') ?? 0) || 0,
      acquire: this.opts.rateLimiter?.enabled ? (target) => this.opts.rateLimiter!.acquire(this.name, target.name) : undefined,
    });
  }

  private instanceSpecs(): InstanceSpec[] {
    const specs: InstanceSpec[] = [];
    for (const g of this.config.instance_group) {
      const devices = g.kind === 'KIND_GPU' ? (g.gpus.length > 0 ? g.gpus : [0]) : [0];
      const rate = { resources: g.rate_limiter?.resources ?? [], priority: g.rate_limiter?.priority ?? 0 };
      for (const device of devices) {
        for (let i = 0; i < g.count; i++) {
          const name = g.kind === 'KIND_GPU' ? `${g.name}_${device}_${i}` : `${g.name}_${i}`;
          specs.push({ name, kind: g.kind, device, rate: { ...rate, device } });
        }
      }
    }
    if (specs.length === 0) throw new StubhostError('STUBHOST_CONFIG', `${this.label}: instance_group gives no instances`);
    return specs;
  }

  /** Executions one instance may run at once (parameter max_inflight_per_instance; Triton: 1). */
  private maxInflight(): number {
    return maxInflightPerInstance(this.config.parameters);
  }

  /**
   * Batches sent ahead to a busy instance, queued in its stub until it is free (parameter
   * instance_prefetch). It hides the host⇄stub round trip between executions. Default 1 for
   * models that execute one request at a time; 0 with dynamic or sequence batching (waiting in
   * the host queue builds bigger batches and keeps priorities exact), a rate limiter (resources
   * are held only while executing) and decoupled models.
   */
  private prefetch(): number {
    const v = modelParameter(this.config, 'instance_prefetch');
    if (v !== undefined && v !== '') return Math.max(0, Math.floor(Number(v) || 0));
    const limited = this.config.instance_group.some((g) => (g.rate_limiter?.resources.length ?? 0) > 0);
    return this.config.dynamic_batching || this.config.sequence_batching || limited || this.decoupled ? 0 : 1;
  }

  /** Batches one instance may hold: running plus sent ahead. */
  private instanceDepth(): number {
    return this.maxInflight() + this.prefetch();
  }

  private makeInstance(spec: InstanceSpec): ModelInstance {
    const seconds = (key: string): number | undefined => {
      const v = modelParameter(this.config, key);
      return v === undefined || v === '' || Number.isNaN(Number(v)) ? undefined : Number(v) * 1000;
    };
    const modelFile = this.modelFile();
    return new ModelInstance({
      modelName: this.name,
      modelVersion: this.version,
      instanceName: spec.name,
      decoupled: this.decoupled,
      maxInflight: this.instanceDepth(),
      healthTimeoutMs: seconds('stub_timeout_seconds') ?? this.opts.stubTimeoutMs,
      executeTimeoutMs: seconds('execute_timeout_seconds') ?? 0,
      arenaMaxBytes: Number(modelParameter(this.config, 'shm_max_bytes') ?? 0) || this.opts.arenaMaxBytes,
      logger: this.opts.logger,
      onBls: this.opts.onBls,
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
        instanceName: spec.name,
        instanceKind: spec.kind,
        instanceDeviceId: spec.device,
      },
    });
  }

  private modelFile(): string {
    const dir = path.join(this.opts.modelDir, String(this.version));
    const explicit = this.config.default_model_filename;
    if (explicit) return path.join(dir, explicit);
    return path.join(dir, this.config.backend === 'onnxruntime' ? 'model.onnx' : 'model.ts');
  }

  private async warmup(): Promise<void> {
    const samples = this.config.model_warmup ?? [];
    for (const [index, sample] of samples.entries()) {
      const where = `${this.label} (${this.opts.modelDir}): model_warmup[${index}]${sample.name ? ` '${sample.name}'` : ''}`;
      const batch = Math.max(1, sample.batch_size || 1);
      const inputs: TensorValue[] = [];
      for (const [name, spec] of Object.entries(sample.inputs)) {
        const datatype = fromConfigType(spec.data_type ?? 'TYPE_FP32')!;
        const dims = spec.dims.map((d) => (d < 0 ? 1 : d));
        const shape = this.config.max_batch_size > 0 ? [batch, ...dims] : dims;
        const count = shape.reduce((a, b) => a * b, 1);
        const data = spec.input_data_file
          ? this.warmupFileData(where, name, spec.input_data_file, datatype, dims, this.config.max_batch_size > 0 ? batch : 1)
          : warmupData(datatype, count, spec.random_data === true);
        inputs.push({ name, datatype, shape, data });
      }
      // As Triton: a sample must match the model's inputs (a config error, not a model crash).
      try {
        validateInferInputs(this.contract(), inputs);
      } catch (err) {
        throw new StubhostError('STUBHOST_CONFIG', `${where}: ${(err as Error).message}; make the warmup inputs match the model's inputs`);
      }
      const repeat = Math.max(1, sample.count || 1);
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

  /**
   * Triton's `input_data_file`: raw row-major bytes of one sample (BYTES as 4-byte length
   * prefixes and bytes) in the model's `warmup/` folder, repeated for each batch row.
   */
  private warmupFileData(where: string, input: string, file: string, datatype: TensorValue['datatype'], dims: number[], batch: number): TensorValue['data'] {
    const field = `${where}.inputs['${input}'].input_data_file`;
    const base = path.join(this.opts.modelDir, 'warmup');
    const full = path.resolve(base, file);
    if (path.relative(base, full).startsWith('..') || path.isAbsolute(path.relative(base, full))) {
      throw new StubhostError('STUBHOST_CONFIG', `${field}: "${file}" leaves the model's warmup/ folder; name a file inside ${base}`);
    }
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(fs.readFileSync(full));
    } catch (err) {
      throw new StubhostError('STUBHOST_CONFIG', `${field}: cannot read ${full} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); put the file in the model's warmup/ folder`);
    }
    let one: TensorValue;
    try {
      one = tensorFromBytes({ name: input, datatype, shape: dims }, bytes, `warmup file ${file}`);
    } catch (err) {
      throw new StubhostError('STUBHOST_CONFIG', `${field}: ${(err as Error).message}`);
    }
    if (batch === 1) return one.data;
    if (Array.isArray(one.data)) return Array.from({ length: batch }, () => one.data as Uint8Array[]).flat();
    const src = one.data as Exclude<TensorValue['data'], Uint8Array[]>;
    const out = new (src.constructor as new (n: number) => typeof src)(src.length * batch);
    for (let b = 0; b < batch; b++) (out as Uint8Array).set(src as Uint8Array, b * src.length);
    return out;
  }
}

function warmupData(datatype: TensorValue['datatype'], count: number, random: boolean): TensorValue['data'] {
  if (datatype === 'BYTES') return Array.from({ length: count }, () => new Uint8Array(random ? [65] : []));
  const data = new (typedArrayFor(datatype))(count);
  // random_data: floats get random values; every other type stays zero.
  if (random && (datatype === 'FP32' || datatype === 'FP64')) for (let i = 0; i < count; i++) data[i] = Math.random();
  return data;
}
