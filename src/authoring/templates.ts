/**
 * What `stubhost init` writes into a new model folder: config.pbtxt and 1/model.ts, typed by the
 * generated config.types.ts. One small model whose parts follow the flags: --batching (dynamic
 * batching, the batch run as one computation), --decoupled (0..n responses per request),
 * --sequence (the sequence batcher, state per sequence), --onnx (wraps an ONNX file).
 */
import type { DataType } from '../core/dtypes.js';
import { toConfigType } from '../core/dtypes.js';
import type { ModelIO } from './model-spec.js';
import { TYPES_FILE } from './types-file.js';

export interface InitOptions {
  name: string;
  batching: boolean;
  decoupled: boolean;
  sequence: boolean;
}

export const MAX_BATCH_SIZE = 8;

const className = (name: string): string => {
  const pascal = name.replace(/(^|[^A-Za-z0-9]+)([A-Za-z0-9])/g, (_, __, c: string) => c.toUpperCase()).replace(/^[^A-Za-z_$]+/, '');
  return pascal === '' ? 'ScaffoldedModel' : pascal;
};
const typesImport = `../${TYPES_FILE.replace(/\.ts$/, '.js')}`;

/** config.pbtxt of a scaffolded model (INPUT → OUTPUT, FP32). */
export function scaffoldConfig(o: InitOptions): string {
  const lines = [
    `name: ${JSON.stringify(o.name)}`,
    'backend: "typescript"',
    `max_batch_size: ${o.batching ? MAX_BATCH_SIZE : 0}`,
    'input [ { name: "INPUT" data_type: TYPE_FP32 dims: [ -1 ] } ]',
    `output [ { name: "OUTPUT" data_type: TYPE_FP32 dims: [ ${o.sequence ? '1' : '-1'} ] } ]`,
    'instance_group [ { count: 1, kind: KIND_CPU } ]',
  ];
  if (o.sequence) {
    lines.push(
      '# The requests of one sequence (parameters sequence_id, sequence_start, sequence_end) run in order;',
      '# START and END reach the model as inputs. A sequence idle this long is released.',
      'sequence_batching {',
      '  max_sequence_idle_microseconds: 60000000',
      '  control_input [',
      '    { name: "START" control [ { kind: CONTROL_SEQUENCE_START int32_false_true: [ 0, 1 ] } ] },',
      '    { name: "END" control [ { kind: CONTROL_SEQUENCE_END int32_false_true: [ 0, 1 ] } ] }',
      '  ]',
      '}',
    );
  } else if (o.batching) {
    lines.push('# Requests that arrive within 1 ms are handed to execute together (up to max_batch_size).', 'dynamic_batching { max_queue_delay_microseconds: 1000 }');
  }
  if (o.decoupled) lines.push('# 0..n responses per request, sent through request.responseSender().', 'model_transaction_policy { decoupled: true }');
  return `${lines.join('\n')}\n`;
}

/** 1/model.ts of a scaffolded model. */
export function scaffoldModel(o: InitOptions): string {
  const batched = o.batching;
  const imports = ['InferenceResponse', 'Tensor', 'logger', ...(batched && !o.sequence && !o.decoupled ? ['concatInputs', 'splitOutput'] : [])];
  const head = `import { ${imports.join(', ')} } from 'stubhost';
import type { ModelInitArgs } from 'stubhost';
// Types from config.pbtxt: run \`stubhost types\` again after changing the config.
import type { Model, Request${o.decoupled ? '' : ', Response'} } from '${typesImport}';
`;
  const init = `  initialize(args: ModelInitArgs): void {
    logger.info(\`\${args.modelName} version \${args.modelVersion} instance \${args.instanceName} ready\`);
  }
`;
  let body: string;
  if (o.sequence) {
    const shape = batched ? '[1, 1]' : '[1]';
    const respond = o.decoupled
      ? `      const sender = r.responseSender();
      sender.send(new InferenceResponse({ outputs: [new Tensor('OUTPUT', Float32Array.of(total), ${shape})] }));
      sender.send(undefined, { final: true });`
      : `      return new InferenceResponse({ outputs: [new Tensor('OUTPUT', Float32Array.of(total), ${shape})] });`;
    body = `  /** The running total of each sequence, by its sequence id (correlation id). */
  private readonly totals = new Map<string | bigint, number>();

  ${o.decoupled ? 'execute(requests: Request[]): void {\n    for (const r of requests) {' : 'execute(requests: Request[]): Response[] {\n    return requests.map((r) => {'}
      const id = r.correlationId ?? '';
      // START is 1 on the first request of a sequence, END on its last.
      let total = r.input('START').data[0] === 1 ? 0 : (this.totals.get(id) ?? 0);
      for (const x of r.input('INPUT').data) total += x;
      if (r.input('END').data[0] === 1) this.totals.delete(id);
      else this.totals.set(id, total);
${respond}
    }${o.decoupled ? '' : ');'}
  }
`;
  } else if (o.decoupled) {
    const shape = batched ? '[1, 1]' : '[1]';
    body = `  /** Streams one response per element of INPUT (its double), then the final flag. */
  execute(requests: Request[]): void {
    for (const r of requests) {
      const sender = r.responseSender();
      for (const x of r.input('INPUT').data) {
        sender.send(new InferenceResponse({ outputs: [new Tensor('OUTPUT', Float32Array.of(2 * x), ${shape})] }));
      }
      // Responses may also be sent after execute returns; the final flag ends the request.
      sender.send(undefined, { final: true });
    }
  }
`;
  } else if (batched) {
    body = `  /** The dynamic batcher hands over several requests: they run as one computation. */
  execute(requests: Request[]): Response[] {
    // Requests whose inner dims differ cannot be concatenated: run such requests one by one.
    const { tensor, batchSizes } = concatInputs(requests, 'INPUT');
    const doubled = new Tensor('OUTPUT', tensor.data.map((x) => 2 * x), tensor.shape);
    return splitOutput(doubled, batchSizes).map((part) => new InferenceResponse({ outputs: [part] }));
  }
`;
  } else {
    body = `  execute(requests: Request[]): Response[] {
    return requests.map((r) => {
      const input = r.input('INPUT');
      return new InferenceResponse({ outputs: [new Tensor('OUTPUT', input.data.map((x) => 2 * x), input.shape)] });
    });
  }
`;
  }
  return `${head}
export default class ${className(o.name)} implements Model {
${init}
${body}}
`;
}

/** OrtType names of onnxruntime-node per dtype (as stub/backends/onnx/types.ts). */
const ORT_TYPE: Partial<Record<DataType, string>> = {
  FP32: 'float32', FP64: 'float64', FP16: 'float16', INT8: 'int8', INT16: 'int16', INT32: 'int32', INT64: 'int64',
  UINT8: 'uint8', UINT16: 'uint16', UINT32: 'uint32', UINT64: 'uint64', BOOL: 'bool', BYTES: 'string',
};

/** config.pbtxt of a model wrapping an ONNX file: its inputs and outputs as the file declares them. */
export function onnxConfig(name: string, io: ModelIO, dynamicBatching: boolean): string {
  const list = (items: ModelIO['inputs'], batch: boolean) => items
    .map((t) => `  { name: ${JSON.stringify(t.name)} data_type: ${toConfigType(t.dtype)} dims: [ ${(batch ? t.shape.slice(1) : t.shape).join(', ')} ] }`)
    .join(',\n');
  const batch = io.maxBatchSize > 0;
  return [
    `name: ${JSON.stringify(name)}`,
    '# model.ts wraps 1/model.onnx (onnxruntime-node); drop model.ts and set backend: "onnxruntime" to serve the file without code.',
    'backend: "typescript"',
    `max_batch_size: ${io.maxBatchSize}`,
    `input [\n${list(io.inputs, batch)}\n]`,
    `output [\n${list(io.outputs, batch)}\n]`,
    'instance_group [ { count: 1, kind: KIND_CPU } ]',
    ...(dynamicBatching ? ['dynamic_batching { max_queue_delay_microseconds: 1000 }'] : []),
    '',
  ].join('\n');
}

/** 1/model.ts wrapping 1/model.onnx: one session.run per request, the place for pre- and post-processing. */
export function onnxModel(name: string, io: ModelIO): string {
  const unsupported = [...io.inputs, ...io.outputs].find((t) => !ORT_TYPE[t.dtype]);
  if (unsupported) throw new Error(`'${unsupported.name}' is ${unsupported.dtype}, which onnxruntime-node cannot exchange`);
  const key = (n: string) => (/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(n) ? n : JSON.stringify(n));
  const feeds = io.inputs.map((t) => {
    const get = `r.input(${JSON.stringify(t.name)})`;
    // onnxruntime-node refuses typed arrays over the shared memory inputs live in: copy them.
    const data = t.dtype === 'BYTES' ? `${get}.strings()` : `${get}.data.slice()`;
    return `        ${key(t.name)}: new ort.Tensor('${ORT_TYPE[t.dtype]}', ${data}, ${get}.shape),`;
  });
  const outs = io.outputs.map((t) => `          output(${JSON.stringify(t.name)}, ${JSON.stringify(t.dtype)}, result),`);
  return `import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { InferenceResponse, ModelError, Tensor } from 'stubhost';
import type { DataType, ModelInitArgs } from 'stubhost';
// Types from config.pbtxt: run \`stubhost types\` again after changing the config.
import type { Model, Request, Response } from '${typesImport}';

/** An output of the session as a stubhost tensor (the config's dtype, the shape ORT computed). */
function output<N extends string, D extends DataType>(name: N, dtype: D, result: ort.InferenceSession.OnnxValueMapType): Tensor<D, N> {
  const value = result[name] as ort.Tensor | undefined;
  if (!value) throw new ModelError(\`the ONNX model returned no output '\${name}'\`);
  return new Tensor(name, value.data as never, [...value.dims], dtype);
}

export default class ${className(name)} implements Model {
  private session?: ort.InferenceSession;

  async initialize(args: ModelInitArgs): Promise<void> {
    const file = path.join(args.modelRepository, args.modelName, String(args.modelVersion), 'model.onnx');
    this.session = await ort.InferenceSession.create(file);
  }

  async execute(requests: Request[]): Promise<Response[]> {
    const session = this.session;
    if (!session) throw new ModelError('execute before initialize');
    const responses: Response[] = [];
    for (const r of requests) {
      // Pre-processing goes here.
      const result = await session.run({
${feeds.join('\n')}
      });
      // Post-processing goes here.
      responses.push(new InferenceResponse({
        outputs: [
${outs.join('\n')}
        ],
      }));
    }
    return responses;
  }

  async finalize(): Promise<void> {
    await this.session?.release();
  }
}
`;
}
