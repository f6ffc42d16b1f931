/**
 * The neutral shapes of inference work inside the host: what the HTTP and gRPC front-ends
 * produce, what schedulers queue, what the stub manager sends over shared memory.
 */
import type { CancelSignal } from './cancel-signal.js';
import type { DataType, NumericTypedArray } from './dtypes.js';

export type ParamValue = string | number | boolean;
export type Parameters = Record<string, ParamValue>;

/** One tensor: numeric data as a typed array, BYTES as one Uint8Array per element. */
export interface TensorValue {
  name: string;
  datatype: DataType;
  shape: number[];
  data: NumericTypedArray | Uint8Array[];
  parameters?: Parameters;
}

/** An output the client asked for, with the HTTP binary-data choice it made. */
export interface RequestedOutput {
  name: string;
  /** HTTP: send this output as binary data after the JSON header. */
  binary?: boolean;
  parameters?: Parameters;
}

export interface InferRequest {
  /** The client's request id, echoed in the response ('' when none was given). */
  id: string;
  modelName: string;
  /** Undefined: the version the version policy marks as the one to serve (the highest loaded). */
  modelVersion?: number;
  inputs: TensorValue[];
  /** Undefined or empty: every output of the model. */
  outputs?: RequestedOutput[];
  parameters: Parameters;
  /** 0 means the model's default priority level. Lower numbers run first. */
  priority: number;
  /** Queue timeout in microseconds, 0 for none. */
  timeoutUs: number;
  /** Sequence (stateful) requests: the correlation id, and start/end flags. */
  correlationId?: string | bigint;
  sequenceStart?: boolean;
  sequenceEnd?: boolean;
  /**
   * Set by the sequence batcher (direct strategy): the slot of the instance the sequence is bound
   * to, the same for every request of the sequence, free again once it ends or is released.
   */
  sequenceSlot?: number;
  /** Aborted when the client goes away or the request is cancelled. */
  signal?: CancelSignal;
  /** The ensembles this request is a step of, outermost first (a cycle guard). */
  ensemblePath?: string[];
  /** Where the outputs' bytes go when they leave the stub's arena (BLS: the calling stub's arena); else private memory. */
  outputPlacement?: OutputPlacement;
}

/**
 * A buffer for a response's output bytes, given by whoever reads them next, so they are copied
 * once (out of the answering stub's arena, into the reader's shared memory) — as Triton
 * python_backend's BLS response allocator places outputs in the stub's shared memory
 * (ResponseAlloc, src/request_executor.cc). Numeric tensors only: BYTES are decoded anyway.
 */
export interface OutputPlacement {
  /** `byteLength` bytes to write an output into, or undefined (then it goes to private memory). */
  place(byteLength: number): Uint8Array | undefined;
}

export interface InferResult {
  modelName: string;
  modelVersion: string;
  id: string;
  outputs: TensorValue[];
  parameters?: Parameters;
  /** Decoupled models: the model sent its final flag together with this response. */
  final?: boolean;
}

/**
 * One input or output as the model's config declares it, normalised: `dims` exclude the batch
 * dimension (it is added when `maxBatchSize > 0`), -1 is a wildcard.
 */
export interface TensorSpec {
  name: string;
  datatype: DataType;
  dims: number[];
  /** The shape the model sees, when the config reshapes the tensor. */
  reshape?: number[];
  optional?: boolean;
}

/** Each output's class labels (`label_filename`, one per line), for the classification extension. */
export type OutputLabels = ReadonlyMap<string, readonly string[]>;

/** loadModel / unloadModel / isModelReady from model code (stub/api/models.ts), as the host carries them out. */
export interface ModelControlCall {
  op: 'load' | 'unload' | 'ready';
  name: string;
  version?: string;
  config?: string;
  files?: Record<string, Uint8Array>;
  unloadDependents?: boolean;
}
