/**
 * What a stub's calls into the server need of it: BLS requests and model control from model
 * code. The server core implements it; the repository hands the one object to every stub
 * handle (src/instance), which knows nothing of the layers between. Types only, at the bottom.
 */
import type { InferRequest, ModelControlCall } from '../core/types.js';
import type { StreamSink } from './contract.js';

/** loadModel / unloadModel / isModelReady from model code; `caller` is the model that asks. */
export interface ModelControlRequest extends ModelControlCall {
  caller: string;
}

export interface BlsGateway {
  /**
   * Runs a BLS request as a client's (validated, scheduled, batched): pushes 0..n outcomes into
   * `sink`, then ends it. Returns a cancel function. `request.outputPlacement`, when set, is
   * where the outputs' bytes should go (the caller's arena).
   */
  infer(request: InferRequest, sink: StreamSink): () => void;
  /** Carries out a model-control request; rejects with a StubhostError the model sees as a ModelError. */
  control(request: ModelControlRequest): Promise<{ ready?: boolean }>;
}
