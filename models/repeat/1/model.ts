// Triton's decoupled "repeat" example in TypeScript: for a request with IN = [v0, v1, ...]
// it sends one response per element (OUT = [vi], IDX = [i]) and then the final flag; IN empty
// sends the final flag alone. Optional DELAY[i] (ms) waits before response i, optional WAIT (ms)
// before the first. execute returns at once: the responses go out afterwards, from timers, the
// way a streaming model (token generation, streaming ASR) answers.
import { InferenceRequest, InferenceResponse, Tensor, ModelError, logger, type ResponseSender } from 'stubhost';
import type { Model } from 'stubhost';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export default class Repeat implements Model {
  /** Streams still sending: finalize waits for them, as Triton's example does. */
  private readonly running = new Set<Promise<void>>();

  execute(requests: InferenceRequest[]): void {
    for (const request of requests) {
      const sender = request.responseSender();
      const input = request.input('IN');
      if (!input) {
        sender.send(new InferenceResponse({ error: new ModelError('repeat: input IN is required', 'INVALID_ARG') }), { final: true });
        continue;
      }
      // Inputs are views valid only during execute: copy what the stream needs later.
      const values = Int32Array.from(input.data as Int32Array);
      const delays = request.input('DELAY') ? Uint32Array.from(request.input('DELAY')!.data as Uint32Array) : undefined;
      const wait = request.input('WAIT') ? (request.input('WAIT')!.data as Uint32Array)[0]! : 0;
      if (delays && delays.length !== values.length) {
        sender.send(new InferenceResponse({ error: new ModelError(`repeat: DELAY has ${delays.length} elements, IN has ${values.length}`, 'INVALID_ARG') }), { final: true });
        continue;
      }
      const run = this.stream(sender, values, delays, wait);
      this.running.add(run);
      void run.finally(() => this.running.delete(run));
    }
  }

  private async stream(sender: ResponseSender, values: Int32Array, delays: Uint32Array | undefined, wait: number): Promise<void> {
    if (wait > 0) await sleep(wait);
    for (let i = 0; i < values.length; i++) {
      if (sender.isCancelled()) {
        // The client went away (or the request timed out): the rest would go nowhere.
        logger.info(`repeat: stopped after ${i} of ${values.length} responses: the request was cancelled`);
        break;
      }
      if (delays && delays[i]! > 0) await sleep(delays[i]!);
      sender.send(new InferenceResponse({
        outputs: [new Tensor('OUT', Int32Array.of(values[i]!), [1]), new Tensor('IDX', Uint32Array.of(i), [1])],
      }));
    }
    sender.send(undefined, { final: true });
  }

  async finalize(): Promise<void> {
    await Promise.all(this.running);
  }
}
