/**
 * The worker thread that type-checks models for `stubhost dev` (type-check.ts), so a check
 * (tens to hundreds of ms; seconds for the first one) neither blocks the host's event loop nor
 * waits for it: a reload's stubs start while their code is checked.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { ModelTypeChecker } from './type-check.js';
import type { CheckReply, CheckRequest } from './type-check-client.js';

const checker = new ModelTypeChecker((workerData as { repository: string }).repository);
parentPort!.postMessage({ id: 0, problems: [], ms: 0, source: checker.source } satisfies CheckReply);
parentPort!.on('message', (msg: CheckRequest) => {
  const started = performance.now();
  let reply: CheckReply;
  try {
    reply = { id: msg.id, problems: checker.check(msg.model), ms: performance.now() - started };
  } catch (err) {
    reply = { id: msg.id, problems: [], ms: performance.now() - started, failed: (err as Error).message };
  }
  parentPort!.postMessage(reply);
});
