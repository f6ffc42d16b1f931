/**
 * The rule for a unary call to a decoupled model: it answers with the model's only response, so
 * the model must send exactly one. Triton applies it to non-streaming generate (server
 * src/http_server.cc SendChunkResponse); every caller that turns a stream into one answer uses this.
 */
import type { InferResult } from '../core/types.js';

/**
 * The only response of `stream`; undefined when it sent none or more than one. At the second
 * response `cancel` is called (the answer is known then) and the stream is left. The first
 * response's error is thrown; a later one still means "not exactly one".
 */
export async function oneResponse(stream: AsyncIterable<InferResult>, cancel: () => void): Promise<InferResult | undefined> {
  let first: InferResult | undefined;
  let count = 0;
  try {
    for await (const result of stream) {
      if (++count === 1) first = result;
      else {
        cancel();
        break;
      }
    }
  } catch (err) {
    if (count === 0) throw err;
    return undefined;
  }
  return count === 1 ? first : undefined;
}
