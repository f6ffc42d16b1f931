/**
 * One model instance: a StubProcess plus what keeps it serving — restart with backoff after a
 * crash or hang (initialize runs again), and the ExecutionTarget face the scheduler sees.
 */
import { EventEmitter } from 'node:events';
import { StubProcess, type StalledExecute, type StubProcessOptions } from './stub-process.js';
import type { ExecOutcome, ExecPhases, ExecutionTarget, Job, RunningBatch, StreamSink } from '../execution/contract.js';
import { StubhostError } from '../errors.js';
import type { InferRequest } from '../core/types.js';
import { InstanceDepth } from './instance-depth.js';

export type InstanceState = 'starting' | 'ready' | 'restarting' | 'stopped';

export interface ModelInstanceOptions extends StubProcessOptions {
  /** Batches one instance may have in flight: running, plus those sent ahead and queued in its stub (default: 1, none ahead). */
  depth?: InstanceDepth;
  decoupled: boolean;
  /** A batch's execution ended (before its jobs are finished): for the execution statistics. */
  onExecuted?: (jobs: Job[], startedAt: number, phases: ExecPhases) => void;
  /** Called when a restarted stub is ready again, or when it died (for metrics). */
  onHealth?: (healthy: boolean, restarted: boolean) => void;
}

/**
 * Delay before restart attempt n (reset once a start succeeds). The first is immediate: the stub
 * was serving, and starting node + tsx + the model already takes 0.5-1.5 s on a busy 2-core
 * machine against a budget of 2 s; the growing delays only matter for a stub that keeps failing.
 */
const BACKOFF_MS = [0, 200, 500, 1000, 2000, 5000];

export class ModelInstance extends EventEmitter implements ExecutionTarget {
  readonly name: string;
  state: InstanceState = 'starting';
  restarts = 0;
  /**
   * Whether the model sends its responses through responseSender(): from the config, and set
   * again when the model's autoCompleteConfig made it decoupled (setModelTransactionPolicy).
   */
  decoupled: boolean;
  private stub?: StubProcess;
  private running = 0;
  private failuresInARow = 0;
  private restartTimer?: NodeJS.Timeout;
  private readonly inflightDepth: InstanceDepth;

  constructor(private readonly opts: ModelInstanceOptions) {
    super();
    this.name = opts.instanceName;
    this.decoupled = opts.decoupled;
    this.inflightDepth = opts.depth ?? new InstanceDepth(1, 0);
  }

  /** Batches this instance may hold now (it adapts when instance_prefetch is unset). */
  get depth(): number {
    return this.inflightDepth.depth;
  }

  /** The process the stub runs in (the server's own for a thread stub). */
  get pid(): number {
    return this.stub?.pid ?? 0;
  }

  /** How messages name the running stub ("pid 123", "thread 4"). */
  get where(): string {
    return this.stub?.where ?? '';
  }

  /** Starts the stub; rejects if initialize fails (a load failure, not retried). */
  async start(): Promise<Record<string, unknown> | undefined> {
    this.state = 'starting';
    const stub = new StubProcess(this.opts);
    this.stub = stub;
    stub.on('exit', (info: { expected: boolean; cause: string }) => this.onExit(stub, info));
    const config = await stub.start();
    this.state = 'ready';
    this.failuresInARow = 0;
    return config;
  }

  canAccept(): boolean {
    return this.state === 'ready' && this.running < this.inflightDepth.depth;
  }

  /**
   * Runs one batch; resolves with its input and output copy times (ms) once every job is
   * finished. `started`: the caller's performance.now() as it handed the batch over.
   */
  run(jobs: Job[], started = performance.now()): Promise<ExecPhases> {
    return new Promise((resolve) => this.runThen(new PromisedBatch(jobs, started, resolve)));
  }

  /** run() without a promise: the batch's outcomes settle its jobs, then batch.done(), as the stub's answer is read. */
  runThen(batch: RunningBatch): void {
    const jobs = batch.jobs;
    const n = jobs.length;
    const requests: InferRequest[] = new Array(n);
    for (let i = 0; i < n; i++) requests[i] = jobs[i]!.request;
    let sinks: StreamSink[] | undefined;
    if (this.decoupled) {
      sinks = new Array(n);
      for (let i = 0; i < n; i++) sinks[i] = jobs[i]!.sink ?? noSink;
    }
    const stub = this.stub!;
    this.running++;
    try {
      stub.executeThen(requests, sinks, batch.startedAt, this, batch);
    } catch (err) {
      this.running--;
      throw err;
    }
  }

  /** The stub's answer to a batch of runThen (BatchReceiver): settles its jobs, then tells the batch. */
  executed(batch: RunningBatch, outcomes: ExecOutcome[]): void {
    this.running--;
    const jobs = batch.jobs;
    const n = jobs.length;
    const started = batch.startedAt;
    // The stub's read as it finished reading the outputs: no clock read of its own.
    const phases = outcomes[0]?.phases ?? { inputMs: 0, outputMs: 0 };
    const ended = phases.endedAt ?? performance.now();
    phases.endedAt = ended;
    this.inflightDepth.finished(started, ended);
    this.opts.onExecuted?.(jobs, started, phases);
    if (batch instanceof PromisedBatch) batch.phases = phases;
    const timing = { queueMs: 0, computeMs: ended - started, batchSize: n, inputMs: phases.inputMs, outputMs: phases.outputMs, endedAt: ended };
    for (let i = 0; i < n; i++) {
      // Each job's finish runs its front-end's reply: one that throws must not keep the rest of
      // the batch from theirs, nor reach the stub's message loop (which would count it a fault).
      try {
        jobs[i]!.finish(outcomes[i] ?? { error: new StubhostError('STUBHOST_INTERNAL', 'missing outcome') }, timing);
      } catch (err) {
        this.opts.logger.error(`a request's reply failed: ${(err as Error)?.message ?? String(err)}`, { model: this.opts.modelName, instance: this.name });
      }
    }
    batch.done();
  }

  /** Test and operator hook: signals a process stub, terminates a thread stub. */
  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    this.stub?.kill(signal);
  }

  isHealthy(): boolean {
    return this.state === 'ready' && (this.stub?.isHealthy() ?? false);
  }

  /** The model has an isReady() hook: readiness asks it. */
  get hasReadyHook(): boolean {
    return this.stub?.hasReadyHook ?? false;
  }

  /** Ready and, when the model has an isReady() hook, what it answers (see StubProcess.checkReady). */
  checkReady(): Promise<boolean> {
    if (this.state !== 'ready' || !this.stub) return Promise.resolve(false);
    return this.stub.checkReady();
  }

  /** Requests in flight on the stub (running, sent ahead, or decoupled streams still open). */
  get inflight(): number {
    return this.stub?.inflight ?? 0;
  }

  /** Executes running past the execute warning limit. */
  stalledExecutes(): StalledExecute[] {
    return this.stub?.stalledExecutes() ?? [];
  }

  /** Kills the stub without finalize (an unload whose grace ran out); `cause` fails its requests. */
  async terminate(cause: string): Promise<void> {
    this.state = 'stopped';
    if (this.restartTimer) clearTimeout(this.restartTimer);
    await this.stub?.terminate(cause);
  }

  /** Finalizes and stops the stub; no restart follows. Safe to call twice. */
  async close(): Promise<void> {
    const was = this.state;
    this.state = 'stopped';
    if (this.restartTimer) clearTimeout(this.restartTimer);
    if (was !== 'stopped') await this.stub?.close();
  }

  private onExit(stub: StubProcess, info: { expected: boolean; cause: string }): void {
    if (stub !== this.stub || this.state === 'stopped' || info.expected) return;
    if (this.state === 'starting') return; // start() reports it
    this.state = 'restarting';
    this.opts.onHealth?.(false, false);
    this.opts.logger.error(`stub died: ${info.cause}; restarting`, { model: this.opts.modelName, instance: this.name });
    this.scheduleRestart();
  }

  private scheduleRestart(): void {
    const delay = BACKOFF_MS[Math.min(this.failuresInARow, BACKOFF_MS.length - 1)]!;
    this.failuresInARow++;
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (this.state !== 'restarting') return;
      this.start().then(
        () => {
          this.restarts++;
          this.opts.onHealth?.(true, true);
          this.opts.logger.info('stub restarted', { model: this.opts.modelName, instance: this.name, pid: this.pid });
          this.emit('ready');
        },
        (err: Error) => {
          if (this.state === 'stopped') return;
          this.state = 'restarting';
          this.opts.logger.error(`restart failed: ${err.message}`, { model: this.opts.modelName, instance: this.name });
          this.scheduleRestart();
        },
      );
    }, delay);
  }
}

const noSink: StreamSink = { response: () => {}, end: () => {} };

/** run()'s batch: done resolves its promise with the phases. */
class PromisedBatch implements RunningBatch {
  phases: ExecPhases = { inputMs: 0, outputMs: 0 };

  constructor(
    readonly jobs: Job[],
    readonly startedAt: number,
    private readonly resolve: (phases: ExecPhases) => void,
  ) {}

  done(): void {
    this.resolve(this.phases);
  }
}
