// Batching across requests, the model's job in Triton: the dynamic batcher hands execute() a list
// of requests whose non-batch shapes agree; this model concatenates their INPUT0 rows into one
// [rows, 16] tensor (concatInputs), computes OUTPUT0 = INPUT0 · W + b once for all rows, and
// splits the result back into one [rows_i, 4] tensor per request (splitOutput, zero-copy views).
import { InferenceRequest, InferenceResponse, Tensor, concatInputs, splitOutput } from 'stubhost';
import type { Model, ModelInitArgs } from 'stubhost';

export default class BatchConcat implements Model {
  private inDim = 16;
  private outDim = 4;
  private weights = new Float32Array(0);
  private bias = new Float32Array(0);
  private perCallMs = 0;

  async initialize(args: ModelInitArgs): Promise<void> {
    const cfg = args.modelConfig;
    this.inDim = cfg.input[0]!.dims[0]!;
    this.outDim = cfg.output[0]!.dims[0]!;
    this.perCallMs = Number(cfg.parameters?.per_call_ms?.string_value ?? 0);
    // Deterministic weights, so clients can check results: W[i][j] = ((i * outDim + j) % 7 - 3) / 10, b[j] = j.
    this.weights = Float32Array.from({ length: this.inDim * this.outDim }, (_, k) => ((k % 7) - 3) / 10);
    this.bias = Float32Array.from({ length: this.outDim }, (_, j) => j);
  }

  async execute(requests: InferenceRequest[]): Promise<InferenceResponse[]> {
    const { tensor, batchSizes } = concatInputs(requests, 'INPUT0');
    const rows = tensor.shape[0]!;
    const x = tensor.data as Float32Array;
    const { inDim, outDim, weights, bias } = this;
    // The fixed per-call cost (synchronous, like a blocking kernel launch).
    const until = performance.now() + this.perCallMs;
    while (performance.now() < until);
    const y = new Float32Array(rows * outDim);
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < outDim; j++) {
        let acc = bias[j]!;
        for (let i = 0; i < inDim; i++) acc += x[r * inDim + i]! * weights[i * outDim + j]!;
        y[r * outDim + j] = acc;
      }
    }
    const parts = splitOutput(new Tensor('OUTPUT0', y, [rows, outDim]), batchSizes);
    return parts.map((t) => new InferenceResponse({ outputs: [t], parameters: { batch_requests: requests.length, batch_rows: rows } }));
  }
}
