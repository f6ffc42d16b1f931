// The seed's first example: model code that opens an onnxruntime-node InferenceSession on the
// model.onnx next to it and serves it, batching the requests of a dynamic batch into one run.
// models/mlp_onnx serves the same file with no code (backend "onnxruntime"): both ways side by side.
import path from 'node:path';
// A namespace import works whether tsx loads this file as ESM (a repository under a package with
// "type": "module") or as CommonJS (a repository anywhere else, such as /models in the image).
import * as ort from 'onnxruntime-node';
import { InferenceResponse, ModelError, Tensor, concatInputs, splitOutput } from 'stubhost';
import type { InferenceRequest, Model, ModelInitArgs } from 'stubhost';

export default class MlpTs implements Model {
  private session?: ort.InferenceSession;
  private name = '';

  async initialize(args: ModelInitArgs): Promise<void> {
    this.name = args.modelName;
    // modelRepository is the repository root; the version folder holds model.onnx.
    const file = path.join(args.modelRepository, args.modelName, String(args.modelVersion), 'model.onnx');
    this.session = await ort.InferenceSession.create(file, { intraOpNumThreads: 1 });
  }

  async execute(requests: InferenceRequest[]): Promise<InferenceResponse[]> {
    let batch;
    try {
      batch = concatInputs(requests, 'INPUT0');
    } catch (err) {
      const error = new ModelError(`${this.name}: ${(err as Error).message}`, 'INVALID_ARG');
      return requests.map(() => new InferenceResponse({ error }));
    }
    const x = batch.tensor;
    // concatInputs copied the inputs out of shared memory, which onnxruntime-node cannot read.
    const result = await this.session!.run({ INPUT0: new ort.Tensor('float32', x.data as Float32Array, x.shape) });
    const y = result.OUTPUT0!;
    const out = new Tensor('OUTPUT0', y.data as Float32Array, [...y.dims]);
    return splitOutput(out, batch.batchSizes).map((t) => new InferenceResponse({ outputs: [t] }));
  }

  async finalize(): Promise<void> {
    await this.session?.release();
  }
}
