/**
 * An ensemble (platform "ensemble"): a dataflow graph of other models. Each step runs as soon as
 * every ensemble tensor its input_map names is available, so independent steps run at the same
 * time; each step is an ordinary request to its model (batched, prioritised, rate-limited like
 * any other). The ensemble's outputs are the tensors its output names map to.
 */
import { configToJson, inputSpecs, outputSpecs, type ModelConfig } from '../config/load.js';
import type { ModelIOContract } from '../core/service.js';
import type { InferRequest, InferResult, TensorValue } from '../core/types.js';
import { StubhostError, toStubhostError } from '../errors.js';
import { ModelStatsRecorder, failureReasonOf, type Metrics } from '../metrics/index.js';
import type { VersionState } from './model-version.js';
import { cycleMessage, findEnsembleCycle } from './ensemble-graph.js';
import { readOutputLabels, type OutputLabels } from './output-labels.js';
import type { ResponseCache } from '../cache/response-cache.js';
import { cacheUseOf, inferThroughCache, type CacheUse } from '../cache/cached-infer.js';
import type { Logger } from '../log/logger.js';
import { OutputContract } from './output-contract.js';

export interface EnsembleStepTarget {
  infer(request: InferRequest): Promise<InferResult>;
}

export interface EnsembleOptions {
  name: string;
  version: number;
  config: ModelConfig;
  /** The ensemble's folder: its outputs' label files are read from it. */
  modelDir?: string;
  metrics?: Metrics;
  /** The server's response cache: with response_cache { enable: true }, whole ensemble results are cached, as Triton's ensemble scheduler does. */
  responseCache?: ResponseCache;
  logger?: Logger;
  /** Resolves a step's model (name, version -1 = newest) at request time. */
  resolve: (model: string, version: number) => EnsembleStepTarget;
  /** Checked at load: the step's model exists in the repository. */
  exists: (model: string) => boolean;
  /** The step models of another ensemble (undefined: not an ensemble), for the cycle check at load. */
  stepModelsOf: (model: string) => readonly string[] | undefined;
}

export class EnsembleModel {
  readonly name: string;
  readonly version: number;
  readonly config: ModelConfig;
  readonly stats: ModelStatsRecorder;
  state: VersionState = 'LOADING';
  reason = '';
  private contractCache?: ModelIOContract;
  outputLabels?: OutputLabels;
  private cacheUse?: CacheUse;
  /** The ensemble's outputs against its own config, as any model's (output-contract.ts). */
  private outputContract?: OutputContract;

  constructor(private readonly opts: EnsembleOptions) {
    this.name = opts.name;
    this.version = opts.version;
    this.config = opts.config;
    this.stats = new ModelStatsRecorder(opts.name, String(opts.version), opts.metrics);
  }

  get label(): string {
    return `ensemble '${this.name}' version ${this.version}`;
  }

  get ready(): boolean {
    return this.state === 'READY';
  }

  get decoupled(): boolean {
    return false;
  }

  readonly instanceList: readonly never[] = [];

  contract(): ModelIOContract {
    this.contractCache ??= {
      name: this.name, version: String(this.version), maxBatchSize: this.config.max_batch_size,
      inputs: inputSpecs(this.config), outputs: outputSpecs(this.config), decoupled: false,
    };
    return this.contractCache;
  }

  configJson(): Record<string, unknown> {
    return configToJson(this.config);
  }

  /**
   * Checks the graph: every step model exists, no ensemble step leads back to this one, every
   * step input is produced by someone, every output is produced.
   */
  async load(): Promise<void> {
    const steps = this.config.ensemble_scheduling?.step ?? [];
    const missing = [...new Set(steps.map((s) => s.model_name).filter((m) => !this.opts.exists(m)))];
    if (missing.length === 0) {
      const cycle = findEnsembleCycle(this.name, steps.map((s) => s.model_name), this.opts.stepModelsOf);
      if (cycle) {
        this.state = 'UNAVAILABLE';
        this.reason = cycleMessage(cycle);
        throw new StubhostError('STUBHOST_CONFIG', `${this.label}: ${this.reason}`);
      }
    }
    const available = new Set(this.config.input.map((t) => t.name));
    const produced = new Set<string>();
    for (const s of steps) for (const t of Object.values(s.output_map)) produced.add(t);
    const problems: string[] = [];
    steps.forEach((s, i) => {
      if (!this.opts.exists(s.model_name)) problems.push(`step ${i}: model '${s.model_name}' is not in the repository`);
      for (const [stepInput, tensor] of Object.entries(s.input_map)) {
        if (!available.has(tensor) && !produced.has(tensor)) problems.push(`step ${i} ('${s.model_name}'): input '${stepInput}' reads ensemble tensor '${tensor}', which no input or step provides`);
      }
    });
    for (const o of this.config.output) if (!produced.has(o.name)) problems.push(`output '${o.name}' is produced by no step`);
    if (problems.length > 0) {
      this.state = 'UNAVAILABLE';
      this.reason = problems.join('; ');
      throw new StubhostError('STUBHOST_CONFIG', `${this.label}: ${this.reason}`);
    }
    try {
      if (this.opts.modelDir !== undefined) this.outputLabels = readOutputLabels(this.opts.modelDir, this.config);
    } catch (err) {
      this.state = 'UNAVAILABLE';
      this.reason = (err as Error).message;
      throw err;
    }
    if (this.opts.logger) {
      this.cacheUse = cacheUseOf(this.config, this.opts.responseCache, this.stats, this.opts.logger, this.label);
      const producers = new Map<string, string>();
      steps.forEach((s, i) => {
        for (const [stepOutput, tensor] of Object.entries(s.output_map)) producers.set(tensor, `step ${i} ('${s.model_name}') output '${stepOutput}'`);
      });
      this.outputContract = new OutputContract({
        label: this.label, modelName: this.name, config: this.config, modelFile: 'config.pbtxt', logger: this.opts.logger,
        producerOf: (output) => producers.get(output), reshaped: false,
      });
    }
    this.state = 'READY';
  }

  async unload(): Promise<void> {
    this.state = 'UNAVAILABLE';
    this.reason = 'unloaded';
    this.stats.close();
  }

  async infer(request: InferRequest): Promise<InferResult> {
    if (this.state !== 'READY') throw new StubhostError('STUBHOST_MODEL_NOT_READY', `${this.label} is not ready`);
    return this.cacheUse ? inferThroughCache(this.cacheUse, request, (r) => this.runRecorded(r)) : this.runRecorded(request);
  }

  private async runRecorded(request: InferRequest): Promise<InferResult> {
    // The load-time check sees the configs of that moment; two ensembles reloaded at the same
    // time could still close a cycle, which then fails the request instead of recursing.
    const path = [...(request.ensemblePath ?? []), this.name];
    if (request.ensemblePath?.includes(this.name)) {
      throw new StubhostError('STUBHOST_CONFIG', `${this.label}: ${cycleMessage(path.slice(path.indexOf(this.name)))}`);
    }
    request = { ...request, ensemblePath: path };
    const started = performance.now();
    try {
      const result = await this.run(request);
      const ns = (performance.now() - started) * 1e6;
      this.stats.recordSuccess({ queueNs: 0, computeInputNs: 0, computeInferNs: ns, computeOutputNs: 0, requestNs: ns });
      this.stats.recordExecution(1, { computeInputNs: 0, computeInferNs: ns, computeOutputNs: 0 });
      return result;
    } catch (err) {
      const e = toStubhostError(err);
      this.stats.recordFailure({ requestNs: (performance.now() - started) * 1e6, reason: failureReasonOf(e) });
      throw e;
    }
  }

  inferStream(request: InferRequest): AsyncIterable<InferResult> {
    const self = this;
    return (async function* () {
      yield await self.infer(request);
    })();
  }

  private async run(request: InferRequest): Promise<InferResult> {
    const steps = this.config.ensemble_scheduling?.step ?? [];
    const tensors = new Map<string, TensorValue>(request.inputs.map((t) => [t.name, t]));
    const pending = new Set(steps.map((_, i) => i));
    const running = new Map<number, Promise<void>>();
    let failure: unknown;
    while (pending.size > 0 || running.size > 0) {
      for (const i of [...pending]) {
        const step = steps[i]!;
        const needs = Object.values(step.input_map);
        if (!needs.every((t) => tensors.has(t))) continue;
        pending.delete(i);
        const inputs = Object.entries(step.input_map).map(([stepInput, tensor]) => ({ ...tensors.get(tensor)!, name: stepInput }));
        const p = (async () => {
          const target = this.opts.resolve(step.model_name, step.model_version);
          const result = await target.infer({
            ...request,
            id: request.id,
            modelName: step.model_name,
            modelVersion: step.model_version > 0 ? step.model_version : undefined,
            inputs,
            outputs: Object.keys(step.output_map).map((name) => ({ name })),
            // A BLS caller's arena takes the steps that make the ensemble's outputs; intermediate tensors stay private.
            outputPlacement: Object.values(step.output_map).some((t) => this.config.output.some((o) => o.name === t)) ? request.outputPlacement : undefined,
          });
          for (const [stepOutput, tensor] of Object.entries(step.output_map)) {
            const out = result.outputs.find((t) => t.name === stepOutput);
            if (!out) throw new StubhostError('STUBHOST_MODEL_ERROR', `${this.label}: step '${step.model_name}' returned no output '${stepOutput}'`);
            tensors.set(tensor, { ...out, name: tensor });
          }
        })().catch((err) => {
          failure ??= err;
        }).finally(() => running.delete(i));
        running.set(i, p);
      }
      if (running.size === 0) {
        if (pending.size > 0 && !failure) throw new StubhostError('STUBHOST_INTERNAL', `${this.label}: steps ${[...pending].join(', ')} can never run: their inputs are never produced`);
        break;
      }
      await Promise.race(running.values());
      if (failure) {
        await Promise.allSettled(running.values());
        break;
      }
    }
    if (failure) {
      const e = toStubhostError(failure);
      throw new StubhostError(e.code, `${this.label}: ${e.message}`);
    }
    const wanted = request.outputs && request.outputs.length > 0 ? request.outputs.map((o) => o.name) : this.config.output.map((o) => o.name);
    const outputs = wanted.map((name) => {
      const t = tensors.get(name);
      if (!t) throw new StubhostError('STUBHOST_MODEL_ERROR', `${this.label}: output '${name}' was not produced`);
      return t;
    });
    const batchSize = this.config.max_batch_size > 0 ? (request.inputs[0]?.shape[0] ?? 1) : 1;
    const broken = this.outputContract?.check(outputs, batchSize);
    if (broken) throw broken;
    return { modelName: this.name, modelVersion: String(this.version), id: request.id, outputs };
  }
}
