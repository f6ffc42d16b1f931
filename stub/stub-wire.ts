/**
 * Wire conversion in the stub: the host's requests into the model API's InferenceRequest (their
 * tensors views of the host's arena), the model's responses into wire responses (their outputs
 * written into the stub's arena), and the duck-typed checks that model objects are tensors.
 */
import type { Arena, Handle, PeerArena } from '../src/ipc/arena.js';
import { readTensor, writeTensor, type TensorDesc } from '../src/ipc/tensor-codec.js';
import { decodeRequest, encodeResponse, errorResponse, type RequestFields, type WireRequest, type WireResponse } from '../src/ipc/wire-request.js';
import type { ErrorBody } from '../src/errors.js';
import type { TensorValue } from '../src/core/types.js';
import { isDataType } from '../src/core/dtypes.js';
import { Tensor } from './api/tensor.js';
import { InferenceRequest, type InferenceRequestOptions } from './api/request.js';
import { ModelError } from './api/errors.js';
import { INTERNAL, type RequestInternals } from './api/runtime.js';

/** The host's request as the model's InferenceRequest; every field the host sent reaches the model. */
export function requestOf(w: WireRequest, peer: PeerArena, internal: RequestInternals): InferenceRequest {
  // The decoded fields are the options as they are: InferenceRequestOptions has every field (see
  // OptionsCoverFields below). The symbol is added to that object rather than spread into a
  // new one: a spread with a symbol key took ~2 µs, the rest of the request ~0.1 µs.
  const options: InferenceRequestOptions & { [INTERNAL]?: RequestInternals } = decodeRequest(w, readInput, peer);
  options[INTERNAL] = internal;
  return new InferenceRequest(options);
}

function readInput(d: TensorDesc, peer: PeerArena): Tensor {
  return toTensor(readTensor(peer, d));
}

export interface ResponseContext {
  /** The model's error on the wire (`context: message`). */
  errorBody: (err: unknown, context: string) => ErrorBody;
  /** Where model code built an output that may break the output contract. */
  siteOf?: (t: unknown) => string | undefined;
  label: string;
}

/** A model's response (from either copy of the API module: duck-typed) as a wire response, its outputs in `arena`. */
export function responseToWire(resp: unknown, requested: string[] | undefined, arena: Arena, ctx: ResponseContext): WireResponse {
  if (!resp || typeof resp !== 'object') {
    return errorResponse({ code: 'STUBHOST_MODEL_ERROR', message: `${ctx.label}: execute returned ${String(resp)} where an InferenceResponse belongs` });
  }
  const r = resp as { outputs?: unknown; error?: unknown; parameters?: Record<string, string | number | boolean> };
  if (r.error) return errorResponse(ctx.errorBody(r.error, ''));
  const all = Array.isArray(r.outputs) ? r.outputs : [];
  const blocks: Handle[] = [];
  try {
    const outputs: TensorValue[] = [];
    let sites: Record<string, string> | undefined;
    for (const t of all) {
      const value = tensorValueOf(t);
      if (requested && requested.length > 0 && !requested.includes(value.name)) continue;
      outputs.push(value);
      const site = ctx.siteOf?.(t);
      if (site) (sites ??= {})[value.name] = site;
    }
    return encodeResponse({ outputs, parameters: r.parameters, sites }, (t) => writeTensor(arena, t, blocks));
  } catch (err) {
    for (const h of blocks) arena.free(h);
    return errorResponse(ctx.errorBody(err, `${ctx.label}: bad output`));
  }
}

export function tensorValueOf(t: unknown): TensorValue {
  const v = t as { name?: unknown; dtype?: unknown; datatype?: unknown; shape?: unknown; data?: unknown };
  const name = typeof v?.name === 'string' ? v.name : undefined;
  const dtype = v?.dtype ?? v?.datatype;
  if (!name || !isDataType(dtype) || !Array.isArray(v.shape) || v.data === undefined) {
    throw new ModelError(`output ${name ? `'${name}' ` : ''}is not a Tensor (needs name, dtype, shape, data): build it with new Tensor(name, data, shape)`, 'INTERNAL');
  }
  // A Tensor checked this when it was built; a plain object did not, and the host would refuse
  // its bytes as a corrupt message.
  const shape = v.shape as number[];
  let count = 1;
  for (let k = 0; k < shape.length; k++) count *= shape[k]!;
  const length = (v.data as { length?: unknown }).length;
  if (length !== count) {
    throw new ModelError(`output '${name}' has shape [${shape.join(', ')}], which needs ${count} elements, but its data has ${String(length)}; build it with new Tensor(name, data, shape)`, 'INTERNAL');
  }
  return { name, datatype: dtype, shape, data: v.data as TensorValue['data'] };
}

export function toTensor(t: TensorValue): Tensor {
  return new Tensor(t.name, t.data as never, t.shape, t.datatype);
}

/**
 * The model API's options name every field a request carries on the wire, so the spread in
 * requestOf passes them all: a field added to RequestFields and not to InferenceRequestOptions
 * fails to compile here.
 */
type MissingOptions = Exclude<keyof RequestFields<Tensor>, keyof InferenceRequestOptions>;
const OptionsCoverFields: [MissingOptions] extends [never] ? true : MissingOptions = true;
void OptionsCoverFields;
