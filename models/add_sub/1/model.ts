// Triton's python-backend add_sub example, in TypeScript: OUTPUT0 = INPUT0 + INPUT1,
// OUTPUT1 = INPUT0 - INPUT1, element-wise over FP32 vectors.
import { InferenceRequest, InferenceResponse, Tensor, ModelError } from 'stubhost';
import type { Model, ModelInitArgs } from 'stubhost';

export default class AddSub implements Model {
  private name = '';

  async initialize(args: ModelInitArgs): Promise<void> {
    this.name = args.modelName;
  }

  async execute(requests: InferenceRequest[]): Promise<InferenceResponse[]> {
    return requests.map((request) => {
      const a = request.input('INPUT0');
      const b = request.input('INPUT1');
      if (!a || !b) return new InferenceResponse({ error: new ModelError(`${this.name}: INPUT0 and INPUT1 are required`, 'INVALID_ARG') });
      const x = a.data as Float32Array;
      const y = b.data as Float32Array;
      const sum = new Float32Array(x.length);
      const diff = new Float32Array(x.length);
      for (let i = 0; i < x.length; i++) {
        sum[i] = x[i]! + y[i]!;
        diff[i] = x[i]! - y[i]!;
      }
      return new InferenceResponse({ outputs: [new Tensor('OUTPUT0', sum, a.shape), new Tensor('OUTPUT1', diff, a.shape)] });
    });
  }

  async finalize(): Promise<void> {}
}
