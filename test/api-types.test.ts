/**
 * The model API ships types: a model.ts written against the model API type-checks with
 * `strict`, resolving 'stubhost' the way an editor sees it — through a tsconfig `paths` mapping
 * to stub/api/index.ts, and through the package's own "exports" (types) from a
 * node_modules/stubhost link — and misuse of the surface is a type error.
 *
 * README's example model ("A model") is compiled unchanged, read from README.md.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import ts from 'typescript';
import { afterAll, describe, expect, it } from 'vitest';
import { loadModelConfig } from '../src/config/index.js';
import { modelIO } from '../src/authoring/model-spec.js';
import { TYPES_FILE, renderTypesFile } from '../src/authoring/types-file.js';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const README = path.join(ROOT, 'README.md');

/**
 * An AddSub with the optional static autoCompleteConfig, which names ModelConfig without
 * importing it (importing 'stubhost' declares the global type).
 */
const ADD_SUB_AUTOCOMPLETE = `import { InferenceRequest, InferenceResponse, Tensor, ModelError, logger } from 'stubhost';
import type { Model, ModelInitArgs } from 'stubhost';

export default class AddSub implements Model {
  async initialize(args: ModelInitArgs) { /* args.modelConfig, modelName, modelVersion,
     modelRepository, instanceName, instanceKind, instanceDeviceId */ }
  async execute(requests: InferenceRequest[]): Promise<InferenceResponse[]> {
    return requests.map((r) => {
      const a = r.input('INPUT0')!.data as Float32Array, b = r.input('INPUT1')!.data as Float32Array;
      const sum = a.map((x, i) => x + b[i]);
      return new InferenceResponse({ outputs: [new Tensor('OUTPUT0', sum, r.input('INPUT0')!.shape)] });
    });
  }
  async finalize() {}
  static autoCompleteConfig?(config: ModelConfig): ModelConfig;   // optional, like Triton's
}
`;

/** README.md's example model: the first ts block under "## A model". */
function readmeExample(): string {
  const text = fs.readFileSync(README, 'utf8');
  const section = text.slice(text.indexOf('## A model'));
  const m = /```ts\n([\s\S]*?)```/.exec(section);
  expect(m, 'README.md has a ts block under "A model"').not.toBeNull();
  return m![1]!;
}

/** The rest of the surface, used as README's API table describes it; each @ts-expect-error is misuse. */
const SURFACE = `import { InferenceRequest, InferenceResponse, Tensor, ModelError, logger, ResponseSender } from 'stubhost';
import type { DataType, Model, ModelConfig, ModelErrorCode, ModelInitArgs, TypedArray } from 'stubhost';

export function tensors(): Tensor[] {
  const all: Tensor[] = [
    new Tensor('a', new Float32Array(2)), new Tensor('b', new Float64Array(2)), new Tensor('c', new Int8Array(2)),
    new Tensor('d', new Int16Array(2)), new Tensor('e', new Int32Array(2)), new Tensor('f', new BigInt64Array(2)),
    new Tensor('g', new Uint8Array(2)), new Tensor('h', new Uint16Array(2)), new Tensor('i', new Uint32Array(2)),
    new Tensor('j', new BigUint64Array(2)), new Tensor('k', [new Uint8Array(1)]), new Tensor('l', ['x', 'y'], [2]),
    new Tensor('m', new Uint16Array(4), [2, 2], 'FP16'), new Tensor('n', new Uint16Array(1), undefined, 'BF16'),
    new Tensor('o', Uint8Array.of(1, 0), [2], 'BOOL'),
  ];
  const t = all[0]!;
  const name: string = t.name, dtype: DataType = t.dtype, shape: number[] = t.shape;
  const strings: string[] = all[11]!.strings();
  const data: TypedArray | Uint8Array[] = t.data;
  // @ts-expect-error name is readonly
  t.name = 'x';
  // @ts-expect-error dtype is readonly
  t.dtype = 'FP64';
  // @ts-expect-error shape is readonly
  t.shape = [1];
  // @ts-expect-error data is readonly
  t.data = new Float32Array(1);
  // @ts-expect-error not a data type
  new Tensor('p', new Float32Array(1), [1], 'FLOAT');
  // @ts-expect-error numbers are not tensor data
  new Tensor('q', [1, 2, 3]);
  void [name, dtype, shape, strings, data];
  return all;
}

export async function requests(r: InferenceRequest): Promise<void> {
  const inputs: Tensor[] = r.inputs;
  const x: Tensor | undefined = r.input('X');
  const id: string = r.requestId;
  const corr: string | bigint | undefined = r.correlationId;
  const starts: boolean = r.sequenceStart;
  const ends: boolean = r.sequenceEnd;
  const params: Record<string, string | number | boolean> = r.parameters;
  const wanted: string[] = r.requestedOutputNames;
  const prio: number = r.priority;
  const cancelled: boolean = r.isCancelled();
  const sender: ResponseSender = r.responseSender();
  sender.send(new InferenceResponse({ outputs: [] }));
  sender.send(undefined, { final: true });
  sender.send(new InferenceResponse({}), { final: true });
  // @ts-expect-error requestId is readonly
  r.requestId = 'x';
  const call = new InferenceRequest({
    modelName: 'm', modelVersion: 1, inputs: [new Tensor('X', Float32Array.of(1))], requestedOutputNames: ['Y'],
    parameters: { a: 'b', n: 1, f: true }, correlationId: 7n, sequenceStart: true, sequenceEnd: false, priority: 1, timeoutMs: 100, requestId: 'r1',
  });
  new InferenceRequest({ modelName: 'm', inputs: [], correlationId: 'seq' });
  const one: InferenceResponse = await call.exec();
  for await (const each of call.stream()) void each.output('Y');
  // @ts-expect-error modelName is required
  new InferenceRequest({ inputs: [] });
  // @ts-expect-error sequenceStart is readonly
  r.sequenceStart = true;
  void [inputs, x, id, corr, starts, ends, params, wanted, prio, cancelled, one];
}

export function responses(): InferenceResponse[] {
  const ok = new InferenceResponse({ outputs: [new Tensor('Y', Float32Array.of(1))], parameters: { note: 'x', n: 1, b: false } });
  const bad = new InferenceResponse({ error: new ModelError('nope', 'INVALID_ARG') });
  const text = new InferenceResponse({ error: 'plain text' });
  const y: Tensor | undefined = ok.output('Y');
  const err: ModelError | undefined = bad.error;
  const outs: Tensor[] = ok.outputs;
  void [y, err, outs];
  return [ok, bad, text];
}

export function errors(): ModelError[] {
  const codes: ModelErrorCode[] = ['INVALID_ARG', 'INTERNAL', 'NOT_FOUND', 'UNAVAILABLE', 'UNSUPPORTED', 'CANCELLED', 'TIMEOUT'];
  const all = codes.map((c) => new ModelError('m', c));
  all.push(new ModelError('default code'));
  const e: Error = all[0]!;
  // @ts-expect-error not one of the codes
  new ModelError('m', 'BAD_CODE');
  logger.info('i', 1); logger.warn('w'); logger.error('e', new Error('x')); logger.verbose('v');
  void e;
  return all;
}

export class Full implements Model {
  static autoCompleteConfig(config: ModelConfig): ModelConfig {
    config.max_batch_size = 4;
    config.input.push({ name: 'X', data_type: 'TYPE_FP32', dims: [-1] });
    return config;
  }
  initialize(args: ModelInitArgs): void {
    const s: string[] = [args.modelName, args.modelRepository, args.instanceName, args.instanceKind, args.modelConfig.name];
    const n: number[] = [args.modelVersion, args.instanceDeviceId, args.modelConfig.max_batch_size];
    void [s, n];
  }
  execute(requests: InferenceRequest[]): InferenceResponse[] {
    return requests.map(() => new InferenceResponse());
  }
}

export class Decoupled implements Model {
  async execute(requests: InferenceRequest[]): Promise<void> {
    for (const r of requests) r.responseSender().send(undefined, { final: true });
  }
}
`;

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

/** Type-checks `files` (name → source) in a fresh folder under /tmp; returns the diagnostics as text. */
function typecheck(files: Record<string, string>, options: ts.CompilerOptions, setup?: (dir: string) => void): string[] {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stubhost-types-'));
  dirs.push(dir);
  setup?.(dir);
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
  const program = ts.createProgram(Object.keys(files).filter((f) => f.endsWith('.ts')).map((f) => path.join(dir, f)), {
    target: ts.ScriptTarget.ES2022, strict: true, noEmit: true, skipLibCheck: true, esModuleInterop: true,
    types: ['node'], typeRoots: [path.join(ROOT, 'node_modules', '@types')],
    ...options,
  });
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const where = d.file && d.start !== undefined ? `${path.basename(d.file.fileName)}:${d.file.getLineAndCharacterOfPosition(d.start).line + 1}: ` : '';
    return `${where}${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
  });
}

/** What an editor is given: 'stubhost' → stub/api/index.ts, the source of the compiled API the stub runs. */
const viaPaths: ts.CompilerOptions = {
  module: ts.ModuleKind.Preserve, moduleResolution: ts.ModuleResolutionKind.Bundler,
  paths: { stubhost: [path.join(ROOT, 'stub', 'api', 'index.ts')] },
};

describe('the model API type-checks (strict)', () => {
  it('stub/tsconfig.models.json (what tsx is given) maps stubhost to the compiled stub/api/index.ts', () => {
    const cfg = JSON.parse(fs.readFileSync(path.join(ROOT, 'stub', 'tsconfig.models.json'), 'utf8'));
    const target = path.resolve(ROOT, 'stub', cfg.compilerOptions.baseUrl, cfg.compilerOptions.paths.stubhost[0]);
    expect(target).toBe(path.join(ROOT, 'dist', 'stub', 'api', 'index.js'));
    expect(fs.existsSync(target)).toBe(true);
  });

  it('README\'s example model compiles unchanged', () => {
    expect(typecheck({ 'model.ts': readmeExample() }, viaPaths)).toEqual([]);
  }, 60_000);

  it('an AddSub with autoCompleteConfig compiles: ModelConfig is declared globally by importing stubhost', () => {
    expect(typecheck({ 'model.ts': ADD_SUB_AUTOCOMPLETE }, viaPaths)).toEqual([]);
  }, 60_000);

  it('the whole surface as README names it; misuse (readonly fields, unknown codes and dtypes) is an error', () => {
    expect(typecheck({ 'model.ts': SURFACE }, viaPaths)).toEqual([]);
  }, 60_000);

  it('an unused @ts-expect-error is reported (the check above is not vacuous)', () => {
    const diags = typecheck({ 'model.ts': `import { Tensor } from 'stubhost';\n// @ts-expect-error\nnew Tensor('a', new Float32Array(1));\n` }, viaPaths);
    expect(diags.join('\n')).toMatch(/Unused '@ts-expect-error' directive/);
  }, 60_000);

  it('through the package\'s "exports" types, from a node_modules/stubhost link (ESM model, NodeNext)', () => {
    const diags = typecheck(
      { 'model.ts': ADD_SUB_AUTOCOMPLETE, 'package.json': JSON.stringify({ type: 'module' }) },
      { module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, allowImportingTsExtensions: true },
      (dir) => {
        fs.mkdirSync(path.join(dir, 'node_modules'));
        fs.symlinkSync(ROOT, path.join(dir, 'node_modules', 'stubhost'), 'dir');
      },
    );
    expect(diags).toEqual([]);
  }, 60_000);
});

// ---------------------------------------------------------------------------------------------
// Types generated from a config (`stubhost types`): a model typed by them needs no `!` or casts,
// and an output the config does not declare, or of another dtype, is a compile error.

const TYPED_CONFIG = `backend: "typescript"
max_batch_size: 0
input [
  { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] },
  { name: "TOKENS" data_type: TYPE_INT64 dims: [ -1 ] },
  { name: "TEXT" data_type: TYPE_STRING dims: [ 1 ] optional: true }
]
output [
  { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] },
  { name: "IDS" data_type: TYPE_INT64 dims: [ -1 ] },
  { name: "LABEL" data_type: TYPE_STRING dims: [ 1 ] },
  { name: "MASK" data_type: TYPE_BOOL dims: [ -1 ] }
]
`;

const TYPED_MODEL = `import { InferenceRequest, InferenceResponse, Tensor, concatInputs, splitOutput } from 'stubhost';
import type { InferenceResponse as AnyResponse, InferenceRequest as AnyRequest, Model as AnyModel } from 'stubhost';
import type { Model, Request, Response, Spec, Inputs } from './config.types.js';

export default class Typed implements Model {
  async execute(requests: Request[]): Promise<Response[]> {
    return requests.map((r) => {
      const a: Float32Array = r.input('INPUT0').data;
      const tokens: BigInt64Array = r.input('TOKENS').data;
      const text: string[] | undefined = r.input('TEXT')?.strings();
      return new InferenceResponse({ outputs: [
        new Tensor('OUTPUT0', a.map((x) => 2 * x), r.input('INPUT0').shape),
        new Tensor('IDS', tokens.slice()),
        new Tensor('LABEL', [text?.[0] ?? 'none'], [1]),
        new Tensor('MASK', Uint8Array.of(1), [1], 'BOOL'),
      ] });
    });
  }
}

export function batched(requests: Request[]): Response[] {
  const { tensor, batchSizes } = concatInputs(requests, 'TOKENS');
  const data: BigInt64Array = tensor.data;
  return splitOutput(new Tensor('IDS', data, tensor.shape), batchSizes).map((t) => new InferenceResponse({ outputs: [t] }));
}

export function streamed(r: Request): void {
  r.responseSender().send(new InferenceResponse({ outputs: [new Tensor('IDS', BigInt64Array.of(1n))] }));
  r.responseSender().send(undefined, { final: true });
}

export async function bls(): Promise<BigInt64Array | undefined> {
  const call = new InferenceRequest<Spec>({ modelName: 'typed', inputs: [new Tensor('TOKENS', BigInt64Array.of(1n))] });
  return (await call.exec()).output('IDS')?.data;
}

/** The scheduling fields of the config are typed, not unknown. */
export function scheduling(c: import('stubhost').ModelConfig): [boolean | undefined, string | undefined, number[] | undefined] {
  return [c.model_transaction_policy?.decoupled, c.sequence_batching?.control_input?.[0]?.name, c.dynamic_batching?.preferred_batch_size];
}

/** Typed values are still the untyped API's values. */
export function widen(r: Request, res: Response, m: Model, i: Inputs): [AnyRequest, AnyResponse, AnyModel, Tensor] {
  return [r, res, m, i.INPUT0];
}
`;

/** Each line after a directive is misuse the generated types must reject. */
const TYPED_MISUSE = `import { InferenceResponse, Tensor } from 'stubhost';
import type { Request, Response } from './config.types.js';

export function misuse(r: Request): Response[] {
  return [
    // @ts-expect-error an output name the config does not declare
    new InferenceResponse({ outputs: [new Tensor('OUTPT0', r.input('INPUT0').data)] }),
    // @ts-expect-error OUTPUT0 is FP32, not INT32
    new InferenceResponse({ outputs: [new Tensor('OUTPUT0', Int32Array.from(r.input('INPUT0').data))] }),
    // @ts-expect-error MASK is BOOL: a Uint8Array without the dtype is UINT8
    new InferenceResponse({ outputs: [new Tensor('MASK', Uint8Array.of(1))] }),
    // @ts-expect-error IDS is INT64, not FP32
    new InferenceResponse<import('./config.types.js').Spec>({ outputs: [new Tensor('IDS', new Float32Array(1))] }),
  ];
}

export function inputs(r: Request): void {
  // @ts-expect-error no input INPUT9 in the config
  r.input('INPUT9');
  // @ts-expect-error INPUT0 is FP32
  const wrong: Int32Array = r.input('INPUT0').data;
  // @ts-expect-error TEXT is optional: it may be undefined
  r.input('TEXT').strings();
  // @ts-expect-error a decoupled response is checked too
  r.responseSender().send(new InferenceResponse({ outputs: [new Tensor('NOPE', new Float32Array(1))] }));
  void wrong;
}
`;

function withGeneratedTypes(dir: string): void {
  fs.writeFileSync(path.join(dir, 'config.pbtxt'), TYPED_CONFIG);
  fs.mkdirSync(path.join(dir, '1'));
  fs.writeFileSync(path.join(dir, '1', 'model.ts'), '');
  fs.writeFileSync(path.join(dir, TYPES_FILE), renderTypesFile(modelIO(loadModelConfig(dir, { onWarning: () => {} })), 'config.pbtxt'));
}

describe('types generated from a config (stubhost types)', () => {
  it('a model typed by them compiles with no ! and no casts; typed values widen to the untyped API', () => {
    expect(typecheck({ 'model.ts': TYPED_MODEL }, viaPaths, withGeneratedTypes)).toEqual([]);
  }, 60_000);

  it('a wrong output name, a wrong output dtype, an unknown input and a wrong input type are compile errors', () => {
    expect(typecheck({ 'model.ts': TYPED_MISUSE }, viaPaths, withGeneratedTypes)).toEqual([]);
  }, 60_000);

  it('the errors above are real: without the directives each of those lines fails to compile', () => {
    const lines = TYPED_MISUSE.split('\n');
    const expected = lines.flatMap((l, i) => (l.includes('@ts-expect-error') ? [i] : [])).map((i, k) => i + 1 - k);
    const stripped = lines.filter((l) => !l.includes('@ts-expect-error')).join('\n');
    const diags = typecheck({ 'model.ts': stripped }, viaPaths, withGeneratedTypes);
    const failing = [...new Set(diags.map((d) => Number(/^model\.ts:(\d+):/.exec(d)?.[1])))].sort((a, b) => a - b);
    expect(failing).toEqual(expected);
    expect(diags.join('\n')).toMatch(/OUTPT0/);
  }, 60_000);
});
