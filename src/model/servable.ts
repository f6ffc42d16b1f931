/** What the repository and the server core need of a loaded model version (stub-backed or ensemble). */
import type { ModelConfig } from '../config/load.js';
import type { InferReceiver, ModelIOContract } from '../core/service.js';
import type { InferRequest, InferResult } from '../core/types.js';
import type { ModelStatsRecorder } from '../metrics/index.js';
import type { ModelInstance } from '../instance/model-instance.js';
import type { StalledExecute } from '../instance/stub-process.js';
import type { VersionState } from './model-version.js';
import type { OutputLabels } from './output-labels.js';

export interface ServableModel {
  readonly name: string;
  readonly version: number;
  readonly config: ModelConfig;
  readonly stats: ModelStatsRecorder;
  readonly state: VersionState;
  readonly reason: string;
  readonly ready: boolean;
  readonly decoupled: boolean;
  readonly label: string;
  readonly instanceList: readonly ModelInstance[];
  /** The outputs' label files (label_filename), read at load; for the classification extension. */
  readonly outputLabels?: OutputLabels;
  contract(): ModelIOContract;
  configJson(): Record<string, unknown>;
  load(): Promise<void>;
  /** `graceMs`: the longest running executes get before their stubs are killed (shutdown passes what is left of its own). */
  unload(opts?: { graceMs?: number }): Promise<void>;
  /** Ready, and every ready instance's isReady() hook agrees (stub-backed models; Triton's TritonModel::IsReady). */
  checkReady?(): boolean | Promise<boolean>;
  /** Executes running past the execute warning limit (stub-backed models). */
  stalledExecutes?(): StalledExecute[];
  infer(request: InferRequest): Promise<InferResult>;
  /** infer() without a promise (stub-backed models); the receiver is called once, possibly before this returns. */
  inferThen?(request: InferRequest, receiver: InferReceiver): void;
  inferStream(request: InferRequest): AsyncIterable<InferResult>;
}
