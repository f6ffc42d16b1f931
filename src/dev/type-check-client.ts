/**
 * The host's side of the type-check worker (type-check-worker.ts): one worker per repository,
 * checks answered in the order asked. The worker runs from the build (dist/src/dev), found from
 * the package root as the stub is, so it is the same whether the host runs from src/ or dist/.
 */
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { packageRoot } from '../tools/package-info.js';
import type { TypeProblem } from './type-check.js';

export interface CheckRequest {
  id: number;
  model: string;
}

export interface CheckReply {
  id: number;
  problems: TypeProblem[];
  ms: number;
  /** The checker itself failed (a bug, or TypeScript missing): the model is not held back for it. */
  failed?: string;
  /** First message only: where the compiler options come from. */
  source?: string;
}

export class TypeCheckClient {
  private readonly worker: Worker;
  private nextId = 1;
  private readonly waiting = new Map<number, (reply: CheckReply) => void>();
  /** Resolves with where the options come from once the worker runs. */
  readonly ready: Promise<string>;

  constructor(repository: string) {
    this.worker = new Worker(path.join(packageRoot(), 'dist', 'src', 'dev', 'type-check-worker.js'), { workerData: { repository } });
    this.worker.unref();
    let started!: (source: string) => void;
    this.ready = new Promise((resolve) => (started = resolve));
    this.worker.on('message', (reply: CheckReply) => {
      if (reply.id === 0) return started(reply.source ?? '');
      this.waiting.get(reply.id)?.(reply);
      this.waiting.delete(reply.id);
    });
    const fail = (why: string): void => {
      started('');
      for (const [id, resolve] of this.waiting) resolve({ id, problems: [], ms: 0, failed: why });
      this.waiting.clear();
    };
    this.worker.on('error', (err) => fail(`the type-check worker failed: ${err.message}`));
    this.worker.on('exit', (code) => fail(`the type-check worker exited (code ${code})`));
  }

  check(model: string): Promise<CheckReply> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      this.worker.postMessage({ id, model } satisfies CheckRequest);
    });
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}
