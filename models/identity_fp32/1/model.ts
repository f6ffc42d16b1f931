// OUTPUT0 = INPUT0, FP32, for any [batch, n]. With dynamic_batching the host gathers several
// requests into one execute call; each still gets its own response, copied from its own input
// (inputs are views of shared memory valid only during the call, so they are copied out).
import { InferenceRequest, InferenceResponse, Tensor } from 'stubhost';
import type { Model } from 'stubhost';

export default class IdentityFp32 implements Model {
  async execute(requests: InferenceRequest[]): Promise<InferenceResponse[]> {
    return requests.map((request) => {
      const input = request.input('INPUT0')!;
      return new InferenceResponse({ outputs: [new Tensor('OUTPUT0', Float32Array.from(input.data as Float32Array), input.shape)] });
    });
  }
}
