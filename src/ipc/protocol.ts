/**
 * The host ⇄ stub wire protocol: every message kind, as request/response pairs, with its typed
 * body. Messages are msgpack maps with a `k` (kind) field; tensors inside are TensorDescs.
 *
 * Buffer ownership (see Arena): request tensors are in the host's arena and are freed by the host
 * when `ExecuteDone` arrives for their batch; output tensors are in the stub's arena and are
 * freed by the stub when the host sends `Release`; BLS inputs are in the stub's arena and are freed
 * by the stub when the final `BlsResult` arrives.
 */
import type { Handle } from './arena.js';
import type { TensorDesc } from './tensor-codec.js';
import type { ErrorBody } from '../errors.js';
import type { Parameters } from '../core/types.js';

/** What initialize receives (the model API's ModelInitArgs, stub/api/model.ts). */
export interface InitArgs {
  modelName: string;
  modelVersion: number;
  modelRepository: string;
  /** The model's folder (the repository entry), where package.json / node_modules may live. */
  modelDir: string;
  /** The file the stub loads: `<version>/model.ts`, or an ONNX file for the onnxruntime backend. */
  modelFile: string;
  backend: string;
  modelConfig: Record<string, unknown>;
  instanceName: string;
  instanceKind: string;
  instanceDeviceId: number;
  /** How often the stub sets the health word. */
  healthIntervalMs: number;
}

export interface WireRequest {
  /** Host-assigned id for matching responses (unique per stub). */
  rid: number;
  /** The client's request id. */
  id: string;
  model: string;
  version: number;
  ins: TensorDesc[];
  /** Requested output names; empty means all. */
  outs: string[];
  params: Parameters;
  /** The correlation id as text; `corrInt` says the client sent an integer (the model sees a bigint). */
  corr?: string;
  corrInt?: boolean;
  prio: number;
  start?: boolean;
  end?: boolean;
  timeoutMs?: number;
}

/** A correlation id on the wire: as text, with `corrInt` when the client sent an integer. */
export function correlationToWire(id: string | bigint | undefined): Pick<WireRequest, 'corr' | 'corrInt'> {
  return { corr: id === undefined ? undefined : String(id), corrInt: typeof id === 'bigint' ? true : undefined };
}

/** The correlation id as the client gave it: a bigint when it sent an integer, else the string. */
export function correlationFromWire(w: Pick<WireRequest, 'corr' | 'corrInt'>): string | bigint | undefined {
  if (w.corr === undefined) return undefined;
  if (w.corrInt && /^\d+$/.test(w.corr)) return BigInt(w.corr);
  return w.corr;
}

export interface WireResponse {
  outs: TensorDesc[];
  params?: Parameters;
  err?: ErrorBody;
  /** Where model code built outputs that may break the output contract (name → `1/model.ts:12:9`). */
  sites?: Record<string, string>;
}

// ---- host → stub ------------------------------------------------------------------------
export interface Initialize { k: 'init'; args: InitArgs }
export interface Execute { k: 'exec'; b: number; reqs: WireRequest[] }
export interface Cancel { k: 'cancel'; rids: number[] }
export interface Release { k: 'release'; hs: Handle[] }
export interface BlsResult { k: 'bls-res'; c: number; r?: WireResponse; err?: ErrorBody; final: boolean }
export interface Finalize { k: 'fin' }
/** `dbg`: the stub answers with its StubDebug (leak checks, scripts/soak.ts). */
export interface Ping { k: 'ping'; t: number; outs?: TensorDesc[]; dbg?: boolean }

// ---- stub → host ------------------------------------------------------------------------
export interface Hello { k: 'hello'; pid: number }
export interface InitializeDone { k: 'init-ok'; config?: Record<string, unknown> }
export interface InitializeFailed { k: 'init-err'; err: ErrorBody }
/** Execute returned: non-decoupled models carry one response per request, in order. */
export interface ExecuteDone { k: 'exec-done'; b: number; rs?: WireResponse[]; err?: ErrorBody }
/** Decoupled models: one response (or only the final flag) for request `rid`. */
export interface Response { k: 'resp'; rid: number; r?: WireResponse; final: boolean }
export interface Log { k: 'log'; level: 'error' | 'warn' | 'info' | 'verbose'; msg: string }
export interface BlsRequest { k: 'bls'; c: number; req: WireRequest; stream: boolean }
export interface BlsCancel { k: 'bls-cancel'; c: number }
export interface FinalizeDone { k: 'fin-ok'; err?: ErrorBody }
export interface Pong { k: 'pong'; t: number; outs?: TensorDesc[]; dbg?: StubDebug }
/** What a stub holds, for leak checks: heap (after a gc when the stub runs with --expose-gc), arena, live collections. */
export interface StubDebug {
  heapUsed: number;
  arena: { segments: number; totalBytes: number; usedBytes: number };
  peerMapped: number;
  sizes: Record<string, number>;
}
/** The stub is about to exit on its own (uncaught exception, unhandled rejection): why, for the error its requests get. */
export interface Fatal { k: 'fatal'; cause: string }

/** `Release` goes both ways: the stub releases host-arena blocks of BLS responses. */

/** Either side: the sender dropped these arena segments; the reader forgets its mappings. */
export interface SegmentDrop { k: 'seg-drop'; ids: number[] }

export type HostMessage = Initialize | Execute | Cancel | Release | BlsResult | Finalize | Ping | SegmentDrop;
export type StubMessage =
  | Release | Hello | InitializeDone | InitializeFailed | ExecuteDone | Response | Log | BlsRequest | BlsCancel | FinalizeDone | Pong | Fatal | SegmentDrop;
