/**
 * The output contract: every response a model version produces is checked against its config
 * before it leaves the host — output names, datatypes, shapes (-1 wildcards, the batch
 * dimension) and, for numeric data, element count against shape. A response that breaks it
 * fails its request with STUBHOST_MODEL_ERROR (HTTP 500) naming the model, the output, what the
 * config expects and what came back; each kind of violation is logged once per model version.
 *
 * Triton's python backend passes on whatever execute returns (clients then get data that
 * contradicts /v2/models/{m}); this is a stubhost rule. It runs on the host, where every
 * response passes (non-decoupled, decoupled streams, BLS callees, warmup), whatever the stub did.
 *
 * An ensemble's outputs are checked against the ensemble's config the same way (ensemble.ts):
 * they come from its steps' models, each of which kept its own config, so a step model and the
 * ensemble that disagree on an output fail here, naming the step that produced it.
 *
 * Certainty for completed configs: an output the onnxruntime backend completed as `dims: [ -1 ]`
 * (the ONNX file declares no shape for it, so not even its rank is known) is checked for name
 * and datatype only. Everything else a completed config says came from the graph or from model
 * code, and is checked like a written config.
 */
import type { TensorValue } from '../core/types.js';
import type { DataType } from '../core/dtypes.js';
import { outputSpecs, type ModelConfig } from '../config/load.js';
import { StubhostError } from '../errors.js';
import type { Logger } from '../log/logger.js';

/** One declared output as the model must return it (before the config's reshape is undone). */
interface OutputRule {
  datatype: DataType;
  /** Dims after the batch dimension in the shape the model returns (its reshape when it has one). */
  dims: readonly number[];
  /** The dims as the config writes them, for messages. */
  declared: readonly number[];
  checkShape: boolean;
}

export type ViolationKind = 'undeclared output' | 'datatype' | 'shape' | 'batch size' | 'element count';

export interface OutputContractOptions {
  /** `model 'm' version 1`. */
  label: string;
  modelName: string;
  config: ModelConfig;
  /** The config before completion (undefined: none was completed). */
  original?: ModelConfig;
  /** The model file relative to its model folder (`1/model.ts`), named when no better place is known. */
  modelFile: string;
  logger: Logger;
  /** What produced an output, when neither a site nor the model file says it (an ensemble: its step). */
  producerOf?: (output: string) => string | undefined;
  /**
   * false: the outputs come in the config's dims, not its reshape (an ensemble's, which its
   * steps' models returned already in their own declared shapes). Default true: a model's own
   * outputs, checked before the host undoes the reshape.
   */
  reshaped?: boolean;
}

export class OutputContract {
  private readonly rules = new Map<string, OutputRule>();
  private readonly batched: boolean;
  private readonly declaredNames: string;
  /** Violations logged already (kind, or kind and output for declared outputs). */
  private readonly logged = new Set<string>();

  constructor(private readonly opts: OutputContractOptions) {
    const { config, original } = opts;
    this.batched = config.max_batch_size > 0;
    const written = new Set((original ?? config).output.map((o) => o.name));
    const onnxCompleted = original !== undefined && config.backend === 'onnxruntime';
    for (const spec of outputSpecs(config)) {
      const unknownRank = onnxCompleted && !written.has(spec.name) && spec.dims.length === 1 && spec.dims[0] === -1;
      this.rules.set(spec.name, {
        datatype: spec.datatype,
        dims: (opts.reshaped !== false ? spec.reshape : undefined) ?? spec.dims,
        declared: spec.dims,
        checkShape: !unknownRank,
      });
    }
    this.declaredNames = [...this.rules.keys()].map((n) => `'${n}'`).join(', ') || 'none';
  }

  /**
   * The violation of the first output that breaks the contract, or undefined. `batchSize`: the
   * request's batch (its first input's first dim) when the model batches. `sites`: where model
   * code built each output (`1/model.ts:12:9`), when the stub knows.
   */
  check(outputs: readonly TensorValue[], batchSize: number, sites?: Record<string, string>): StubhostError | undefined {
    for (let i = 0; i < outputs.length; i++) {
      const t = outputs[i]!;
      const rule = this.rules.get(t.name);
      const problem = rule ? this.problemOf(t, rule, batchSize) : undefined;
      if (rule && !problem) continue;
      const [kind, text] = problem ?? ['undeclared output', `the config declares no output '${t.name}' (expected one of ${this.declaredNames}, found '${t.name}')`];
      return this.violation(kind, t.name, rule !== undefined, text, sites?.[t.name]);
    }
    return undefined;
  }

  private problemOf(t: TensorValue, rule: OutputRule, batchSize: number): [ViolationKind, string] | undefined {
    if (t.datatype !== rule.datatype) return ['datatype', `expected datatype ${rule.datatype}, found ${t.datatype}`];
    const shape = t.shape;
    if (rule.checkShape) {
      const offset = this.batched ? 1 : 0;
      if (shape.length !== rule.dims.length + offset) return this.shapeProblem(t, rule, batchSize);
      if (this.batched && shape[0] !== batchSize) return this.shapeProblem(t, rule, batchSize, true);
      for (let k = 0; k < rule.dims.length; k++) {
        const want = rule.dims[k]!;
        if (want !== -1 && shape[k + offset] !== want) return this.shapeProblem(t, rule, batchSize);
      }
    }
    let count = 1;
    for (let k = 0; k < shape.length; k++) count *= shape[k]!;
    if (t.data.length !== count) {
      return ['element count', `shape [${shape.join(', ')}] needs ${count} elements, found ${t.data.length}`];
    }
    return undefined;
  }

  /** A shape that breaks `rule` (`ofBatch`: only its batch dimension), described. Made only on a violation: it builds strings. */
  private shapeProblem(t: TensorValue, rule: OutputRule, batchSize: number, ofBatch = false): [ViolationKind, string] {
    const shape = t.shape;
    const expected = `[${this.batched ? `${batchSize}, ` : ''}${rule.dims.join(', ')}]`;
    if (ofBatch) return ['batch size', `expected shape ${expected}: the request's batch size is ${batchSize}, found [${shape.join(', ')}] (batch ${shape[0]})`];
    const declared = `dims [${rule.declared.join(', ')}]${rule.dims !== rule.declared ? ` (reshape [${rule.dims.join(', ')}])` : ''}${this.batched ? ' after the batch dimension' : ''}`;
    return ['shape', `expected shape ${expected} (${declared}), found [${shape.join(', ')}]`];
  }

  private violation(kind: ViolationKind, output: string, declared: boolean, text: string, site: string | undefined): StubhostError {
    // The site comes from the stub: text for a message, bounded.
    const where = typeof site === 'string' && site.length > 0 && site.length <= 500 ? `the Tensor built at ${site}` : this.opts.producerOf?.(output) ?? this.opts.modelFile;
    const message = `${this.opts.label}: output '${output}' breaks the model's config: ${text}; returned by ${where} (fix the output or the config's output [...])`;
    const key = declared ? `${kind}\0${output}` : kind;
    if (!this.logged.has(key)) {
      this.logged.add(key);
      this.opts.logger.error(`output contract: ${message} (logged once per model version and kind of violation)`, { model: this.opts.modelName, violation: kind, output });
    }
    return new StubhostError('STUBHOST_MODEL_ERROR', message);
  }
}
