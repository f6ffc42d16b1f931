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
import type { WireRequest, WireResponse } from './wire-request.js';
import type { ErrorBody } from '../errors.js';
import type { MetricsBatch, MetricsBatchResult } from '../core/metric-updates.js';
import type { ModelSettings } from '../core/model-parameters.js';

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
  /** The config's parameters as the host parsed them at load (src/core/model-parameters.ts). */
  settings: ModelSettings;
  instanceName: string;
  instanceKind: string;
  instanceDeviceId: number;
  /** How often the stub sets the health word. */
  healthIntervalMs: number;
}

/** Requests and responses inside messages: encoded and decoded only by wire-request.ts. */
export type { WireRequest, WireResponse } from './wire-request.js';

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
/** `readyHook`: the model has an isReady() the host polls on readiness checks (Triton's is_ready). */
export interface InitializeDone { k: 'init-ok'; config?: Record<string, unknown>; readyHook?: boolean }
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

// ---- the model API's services: isReady, model control, custom metrics ----------------------

/** Host → stub: run the model's isReady() (sent only when `init-ok` said it has one). */
export interface ReadyCheck { k: 'ready?'; c: number }
/** Stub → host: what isReady() returned; `err`: it threw, or returned something else than a boolean. */
export interface ReadyCheckDone { k: 'ready-ok'; c: number; ready: boolean; err?: string }
/**
 * Stub → host: loadModel / unloadModel / isModelReady from model code (Triton's pb_utils.load_model,
 * unload_model, is_model_ready). The files of a load are in the stub's arena (UINT8 tensors named
 * by their path), freed by the stub when the answer arrives.
 */
export interface ModelControl {
  k: 'ctl'; c: number; op: 'load' | 'unload' | 'ready'; name: string;
  version?: string; config?: string; files?: TensorDesc[]; unloadDependents?: boolean;
}
/** Host → stub: `ready` answers op 'ready'; `err`: the operation failed. */
export interface ModelControlDone { k: 'ctl-ok'; c: number; ready?: boolean; err?: ErrorBody }
/** Stub → host: custom metric changes since the last flush (see core/metric-updates.ts). */
export interface MetricsFlush { k: 'metrics'; batch: MetricsBatch }
/** Host → stub: the server's values after the flush, and what it refused. */
export interface MetricsFlushDone { k: 'metrics-ok'; result: MetricsBatchResult }

export type HostMessage = Initialize | Execute | Cancel | Release | BlsResult | Finalize | Ping | SegmentDrop
  | ReadyCheck | ModelControlDone | MetricsFlushDone;
export type StubMessage =
  | Release | Hello | InitializeDone | InitializeFailed | ExecuteDone | Response | Log | BlsRequest | BlsCancel | FinalizeDone | Pong | Fatal | SegmentDrop
  | ReadyCheckDone | ModelControl | MetricsFlush;
