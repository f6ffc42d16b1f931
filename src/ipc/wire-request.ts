/**
 * The one encoder and the one decoder of inference requests and responses on the wire, used by
 * both sides in both directions:
 *
 * | message | encoded by | decoded by |
 * |---|---|---|
 * | `exec` (requests) | host, `encodeInferRequest` | stub, `decodeRequest` |
 * | `bls` (a request) | stub, `encodeRequest` | host, `decodeInferRequest` |
 * | `exec-done`, `resp` (responses) | stub, `encodeResponse` | host, `decodeResponse` |
 * | `bls-res` (a response) | host, `encodeResponse` | stub, `decodeResponse` |
 *
 * A request is a `RequestFields` — the fields that travel, named as the model API names them —
 * so every field (ids, sequence id of either type, sequence start/end, priority, timeout,
 * parameters, requested outputs) crosses the same way whichever side sends it. Written twice,
 * once per side, the BLS direction once lost the sequence flags. Wire keys stay in this module.
 * Tensors are the caller's: it passes how to write one into its arena and how to read one of
 * the peer's (see tensor-codec.ts), and keeps the arena blocks it wrote.
 */
import type { Handle } from './arena.js';
import type { TensorDesc } from './tensor-codec.js';
import { StubhostError, type ErrorBody } from '../errors.js';
import type { InferRequest, Parameters, TensorValue } from '../core/types.js';

/** An inference request as it travels, its tensors of the side's kind (`T`). */
export interface RequestFields<T> {
  /** The client's request id ('' when none). */
  requestId: string;
  modelName: string;
  /** Undefined: the version the target's version policy serves. */
  modelVersion?: number;
  inputs: T[];
  /** Empty: every output. */
  requestedOutputNames: string[];
  parameters: Parameters;
  /** The sequence (correlation) id: a bigint when the client sent an integer, else a string. */
  correlationId?: string | bigint;
  /** Sequence control, as Triton's TRITONSERVER_REQUEST_FLAG_SEQUENCE_START / _END flags. */
  sequenceStart: boolean;
  sequenceEnd: boolean;
  /** 0 means the model's default priority level; lower runs first. */
  priority: number;
  /** Queue timeout (BLS: also the caller's deadline for the call); undefined or 0 for none. */
  timeoutMs?: number;
}

/** A response as it travels: outputs and parameters, or an error. */
export interface ResponseFields<T> {
  outputs: T[];
  parameters?: Parameters;
  error?: ErrorBody;
  /** Stub → host: where model code built outputs that may break the output contract (name → `1/model.ts:12:9`). */
  sites?: Record<string, string>;
}

/**
 * Every key present, an optional one as `undefined`: an adapter typed with it does not compile
 * until it names a field added to the type it builds.
 */
export type Complete<T> = { [K in keyof Required<T>]: T[K] };

/** A request on the wire. Optional keys are left out when unset (each would cost a key and a value). */
export interface WireRequest {
  /** exec: the host's id for matching responses (unique per stub); bls: the call id. */
  rid: number;
  /** Absent: '' (no request id). */
  id?: string;
  model: string;
  version?: number;
  ins: TensorDesc[];
  /** Absent: every output. */
  outs?: string[];
  /** Absent: none. */
  params?: Parameters;
  /** The correlation id as text; `corrInt`: it was an integer (the reader gets a bigint). */
  corr?: string;
  corrInt?: boolean;
  start?: boolean;
  end?: boolean;
  /** Absent: 0. */
  prio?: number;
  timeoutMs?: number;
  /** exec only: the sequence batcher's slot for the request's sequence (direct strategy), as `request.sequenceSlot`. */
  slot?: number;
}

/** A response on the wire. */
export interface WireResponse {
  outs: TensorDesc[];
  params?: Parameters;
  err?: ErrorBody;
  sites?: Record<string, string>;
}

// ---- requests -----------------------------------------------------------------------------

/** `write(t, ctx)`: `ctx` lets a hot caller pass one shared function instead of a closure per request. */
export function encodeRequest<T, C = undefined>(f: RequestFields<T>, rid: number, write: (t: T, ctx: C) => TensorDesc, ctx?: C): WireRequest {
  return wireRequest(
    rid, f.modelName, writeInputs(f.inputs, write, ctx), f.requestId, f.requestedOutputNames, f.parameters, f.priority, f.modelVersion,
    f.correlationId, f.sequenceStart, f.sequenceEnd, f.timeoutMs,
  );
}

function writeInputs<T, C>(inputs: T[], write: (t: T, ctx: C) => TensorDesc, ctx: C | undefined): TensorDesc[] {
  const n = inputs.length;
  const ins: TensorDesc[] = new Array(n);
  for (let i = 0; i < n; i++) ins[i] = write(inputs[i]!, ctx as C);
  return ins;
}

/**
 * The one place that puts a request's fields under their wire keys, in one order (the bytes of
 * a request depend on it), for both encoders. Positional, so the host's encoder passes its
 * InferRequest's fields without building a RequestFields per request.
 */
function wireRequest(
  rid: number, modelName: string, ins: TensorDesc[], requestId: string, outs: string[], params: Parameters, priority: number,
  modelVersion: number | undefined, corr: string | bigint | undefined, start: boolean, end: boolean, timeoutMs: number | undefined,
): WireRequest {
  // Keys at their default value (no id, every output, no parameters, priority 0) are left out:
  // each costs the packer a key and a value on every request.
  const w: WireRequest = { rid, model: modelName, ins };
  if (requestId !== '') w.id = requestId;
  if (outs.length > 0) w.outs = outs;
  if (!isEmpty(params)) w.params = params;
  if (priority !== 0) w.prio = priority;
  if (modelVersion !== undefined) w.version = modelVersion;
  if (corr !== undefined) {
    w.corr = String(corr);
    // A number from JavaScript model code is an integer id too.
    if (typeof corr === 'bigint' || (typeof corr === 'number' && Number.isInteger(corr))) w.corrInt = true;
  }
  if (start) w.start = true;
  if (end) w.end = true;
  if (timeoutMs) w.timeoutMs = timeoutMs;
  return w;
}

/**
 * The request `w` describes; refuses a malformed one (the peer may be a model's broken or
 * hostile process) with an error naming the field.
 */
export function decodeRequest<T, C = undefined>(w: WireRequest, read: (d: TensorDesc, ctx: C) => T, ctx?: C): Complete<RequestFields<T>> {
  if (typeof w !== 'object' || w === null) throw corrupt('request', 'is not a map');
  if (typeof w.model !== 'string' || w.model.length === 0) throw corrupt('request', 'has no model name');
  if (w.id !== undefined && typeof w.id !== 'string') throw corrupt(requestLabel(w), 'has a request id that is not a string');
  if (w.version !== undefined && typeof w.version !== 'number') throw corrupt(requestLabel(w), 'has a model version that is not a number');
  if (!Array.isArray(w.ins)) throw corrupt(requestLabel(w), 'has no input list');
  if (w.outs !== undefined && (!Array.isArray(w.outs) || !w.outs.every((o) => typeof o === 'string'))) throw corrupt(requestLabel(w), 'has requested outputs that are not a list of names');
  const paramsProblem = parametersProblem(w.params);
  if (paramsProblem) throw corrupt(requestLabel(w), paramsProblem);
  if (w.corr !== undefined && typeof w.corr !== 'string') throw corrupt(requestLabel(w), 'has a correlation id that is not text');
  if (!optionalBoolean(w.corrInt) || !optionalBoolean(w.start) || !optionalBoolean(w.end)) throw corrupt(requestLabel(w), 'has a sequence flag that is not a boolean');
  if (w.prio !== undefined && typeof w.prio !== 'number') throw corrupt(requestLabel(w), 'has a priority that is not a number');
  if (w.timeoutMs !== undefined && (typeof w.timeoutMs !== 'number' || !(w.timeoutMs >= 0))) throw corrupt(requestLabel(w), 'has a timeout that is not a non-negative number');
  const n = w.ins.length;
  const inputs: T[] = new Array(n);
  for (let i = 0; i < n; i++) inputs[i] = read(w.ins[i]!, ctx as C);
  return {
    requestId: w.id ?? '',
    modelName: w.model,
    // -1 (Triton's "unset") or 0: the version the target's policy serves.
    modelVersion: w.version !== undefined && w.version > 0 ? w.version : undefined,
    inputs,
    requestedOutputNames: w.outs ?? [],
    parameters: w.params ?? {},
    correlationId: w.corr === undefined ? undefined : w.corrInt && /^\d+$/.test(w.corr) ? BigInt(w.corr) : w.corr,
    sequenceStart: w.start === true,
    sequenceEnd: w.end === true,
    priority: w.prio ?? 0,
    timeoutMs: w.timeoutMs || undefined,
  };
}

/**
 * Where the host's `exec` takes each field of a request from in its InferRequest (see
 * encodeInferRequest, which reads them straight from it). A field added to RequestFields fails
 * to compile here until it is named, and then carried. The rest of an InferRequest stays in the
 * host: the abort signal, the ensemble path, and what the front-end alone uses (binary-output
 * choices, tensor parameters); the sequence slot travels outside RequestFields (exec only).
 */
const EXEC_FIELD_SOURCES: Complete<Record<keyof RequestFields<unknown>, keyof InferRequest | 'the stub\'s version'>> = {
  requestId: 'id', modelName: 'modelName', modelVersion: "the stub's version", inputs: 'inputs', requestedOutputNames: 'outputs',
  parameters: 'parameters', correlationId: 'correlationId', sequenceStart: 'sequenceStart', sequenceEnd: 'sequenceEnd',
  priority: 'priority', timeoutMs: 'timeoutUs',
};
void EXEC_FIELD_SOURCES;

/** The host's request for `f` (a BLS call), ready for the scheduling path of a client request. */
export function inferRequestOf(f: RequestFields<TensorValue>): Complete<Omit<InferRequest, 'signal' | 'ensemblePath' | 'sequenceSlot' | 'outputPlacement'>> {
  return {
    id: f.requestId,
    modelName: f.modelName,
    modelVersion: f.modelVersion,
    inputs: f.inputs,
    outputs: f.requestedOutputNames.length > 0 ? f.requestedOutputNames.map((name) => ({ name })) : undefined,
    parameters: f.parameters,
    correlationId: f.correlationId,
    sequenceStart: f.sequenceStart,
    sequenceEnd: f.sequenceEnd,
    priority: f.priority,
    timeoutUs: f.timeoutMs ? Math.round(f.timeoutMs * 1000) : 0,
  };
}

/**
 * The host's `exec`: a request for the stub running `modelVersion`, written straight from the
 * InferRequest (no RequestFields in between: this runs for every request; EXEC_FIELD_SOURCES
 * lists what it reads).
 */
export function encodeInferRequest<C = undefined>(r: InferRequest, rid: number, modelVersion: number, write: (t: TensorValue, ctx: C) => TensorDesc, ctx?: C): WireRequest {
  const outputs = r.outputs;
  const w = wireRequest(
    rid, r.modelName, writeInputs(r.inputs, write, ctx), r.id, outputs && outputs.length > 0 ? outputs.map((o) => o.name) : NO_NAMES,
    r.parameters, r.priority, modelVersion, r.correlationId, r.sequenceStart === true, r.sequenceEnd === true,
    r.timeoutUs ? r.timeoutUs / 1000 : undefined,
  );
  // The slot is the host's to give: it travels host → stub only, never in a BLS request.
  if (r.sequenceSlot !== undefined) w.slot = r.sequenceSlot;
  return w;
}

/** The host's `bls`: the request a stub sent. */
export function decodeInferRequest(w: WireRequest, read: (d: TensorDesc) => TensorValue): InferRequest {
  return inferRequestOf(decodeRequest(w, read));
}

// ---- responses ----------------------------------------------------------------------------

export function encodeResponse<T>(r: ResponseFields<T>, write: (t: T) => TensorDesc): WireResponse {
  if (r.error) return errorResponse(r.error);
  const n = r.outputs.length;
  const outs: TensorDesc[] = new Array(n);
  for (let i = 0; i < n; i++) outs[i] = write(r.outputs[i]!);
  // No `params` key when there are none: an undefined one would be packed and unpacked too.
  const w: WireResponse = r.parameters && Object.keys(r.parameters).length > 0 ? { outs, params: r.parameters } : { outs };
  if (r.sites) w.sites = r.sites;
  return w;
}

/** A response that is only an error. */
export function errorResponse(error: ErrorBody): WireResponse {
  return { outs: [], err: error };
}

/** The response `w` describes: its error, or its outputs read with `read`. */
export function decodeResponse<T, C = undefined>(w: WireResponse, read: (d: TensorDesc, ctx: C) => T, ctx?: C): Complete<ResponseFields<T>> {
  if (typeof w !== 'object' || w === null) throw corrupt('response', 'is not a map');
  if (w.err !== undefined) {
    if (typeof w.err !== 'object' || w.err === null || typeof w.err.code !== 'string' || typeof w.err.message !== 'string') throw corrupt('response', 'has an error that is not { code, message }');
    return { outputs: [], parameters: undefined, error: w.err, sites: undefined };
  }
  if (!Array.isArray(w.outs)) throw corrupt('response', 'has no output list');
  const paramsProblem = parametersProblem(w.params);
  if (paramsProblem) throw corrupt('response', paramsProblem);
  if (w.sites !== undefined && (typeof w.sites !== 'object' || w.sites === null || !Object.values(w.sites).every((v) => typeof v === 'string'))) {
    throw corrupt('response', 'has output sites that are not a map of names to places');
  }
  const n = w.outs.length;
  const outputs: T[] = new Array(n);
  for (let i = 0; i < n; i++) outputs[i] = read(w.outs[i]!, ctx as C);
  return { outputs, parameters: w.params, error: undefined, sites: w.sites };
}

/** The arena blocks a response's outputs occupy: the reader gives them back with `release`. */
export function responseHandles(w: WireResponse): Handle[] {
  const hs: Handle[] = [];
  if (Array.isArray(w?.outs)) for (const d of w.outs) if (d?.h) hs.push(d.h);
  return hs;
}

/** "Every output", shared: read only, never handed out. */
const NO_NAMES: string[] = [];

function isEmpty(params: Parameters): boolean {
  for (const _ in params) return false;
  return true;
}

function optionalBoolean(v: unknown): boolean {
  return v === undefined || typeof v === 'boolean';
}

/** What is wrong with a wire `params` value, if anything. */
function parametersProblem(params: unknown): string | undefined {
  if (params === undefined) return undefined;
  if (typeof params !== 'object' || params === null || Array.isArray(params)) return 'has parameters that are not a map';
  // for-in, not Object.entries: this runs for every request, and allocates nothing.
  for (const key in params) {
    const t = typeof (params as Record<string, unknown>)[key];
    if (t !== 'string' && t !== 'number' && t !== 'boolean') return `has parameter '${key}' that is not a string, number or boolean`;
  }
  return undefined;
}

/** A request's name in errors, made only when there is one (not per request). */
function requestLabel(w: WireRequest): string {
  return `request to '${w.model}'`;
}

function corrupt(what: string, problem: string): StubhostError {
  return new StubhostError('STUBHOST_PROTOCOL', `corrupt ${what} on the wire: it ${problem}`);
}
