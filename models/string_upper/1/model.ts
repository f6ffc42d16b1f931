// BYTES in, BYTES out: each UTF-8 string of INPUT0 upper-cased, same shape.
import { InferenceRequest, InferenceResponse, Tensor } from 'stubhost';
import type { Model } from 'stubhost';

export default class StringUpper implements Model {
  async execute(requests: InferenceRequest[]): Promise<InferenceResponse[]> {
    return requests.map((request) => {
      const input = request.input('INPUT0')!;
      return new InferenceResponse({ outputs: [new Tensor('OUTPUT0', input.strings().map((s) => s.toUpperCase()), input.shape, 'BYTES')] });
    });
  }
}
