/**
 * The requests in flight on one stub: the batches sent and not answered (their rids, their input
 * blocks in the host arena, when they started), the decoupled streams still open, and the
 * executes running past the warning limit. Sends batches, matches responses to requests, and
 * fails everything at once when the stub goes.
 */
import type { Channel } from '../ipc/channel.js';
import type { Handle } from '../ipc/arena.js';
import type { HostMessage, StubMessage } from '../ipc/protocol.js';
import { responseHandles, type WireResponse } from '../ipc/wire-request.js';
import { StubhostError, type ErrorBody } from '../errors.js';
import type { InferRequest, OutputPlacement } from '../core/types.js';
import type { CancelEvent, CancelSignal } from '../core/cancel-signal.js';
import type { Logger } from '../log/logger.js';
import type { ExecOutcome, ExecPhases, ResponseStat, StreamSink } from '../execution/contract.js';
import { readOutcome, writeRequests } from './wire-outcome.js';

/**
 * A batch sent and not answered. It is also the abort listener (handleEvent) of its requests'
 * signals: a cancelled request is marked cancelled in the stub.
 */
class PendingBatch {
  /** Gets the outcomes (one per request, in order), with `token`. */
  receiver!: BatchReceiver<unknown>;
  token: unknown;
  /** The requests' signals (undefined: no request of the batch can be cancelled). */
  private signals?: (CancelSignal | undefined)[];
  /** Reported as running past the execute warning limit. */
  stalled?: boolean;
  /**
   * Decoupled: the requests whose streams are still open. A decoupled model goes on sending
   * after its execute returns, so a stream's cancellation must reach the stub until the stream's
   * final flag; the batch is listened to until its last stream ends, not until exec-done.
   */
  openStreams = 0;
  execDone = false;
  /** Its neighbours in the stub's BatchList (undefined once out of it). */
  prev: PendingBatch | undefined = undefined;
  next: PendingBatch | undefined = undefined;

  constructor(
    private readonly owner: StubRequests,
    readonly b: number,
    /** Host arena blocks holding this batch's inputs: freed when the batch is done. */
    readonly blocks: Handle[],
    readonly rids: number[],
    /** Per request: where its outputs go (a BLS caller's arena), if anywhere but private memory. */
    readonly placements: (OutputPlacement | undefined)[],
    public startedAt: number,
    /** Writing the inputs into the arena. */
    readonly inputMs: number,
    /** Decoupled: the requests' sinks (dropped once exec-done is handled). */
    public streams: StreamSink[] | undefined,
  ) {}

  listen(requests: InferRequest[]): void {
    const signals: (CancelSignal | undefined)[] = new Array(requests.length);
    for (let i = 0; i < requests.length; i++) {
      const signal = requests[i]!.signal;
      signals[i] = signal;
      if (!signal) continue;
      if (signal.aborted) this.owner.cancel([this.rids[i]!]);
      else signal.addEventListener('abort', this, ONCE);
    }
    this.signals = signals;
  }

  handleEvent(event: CancelEvent): void {
    const signals = this.signals;
    if (!signals) return;
    // One signal may be shared by several requests of the batch (one listener for all).
    const rids: number[] = [];
    for (let i = 0; i < signals.length; i++) if (signals[i] === event.target) rids.push(this.rids[i]!);
    if (rids.length > 0) this.owner.cancel(rids);
  }

  /** exec-done arrived: no longer listened to, unless streams of it are still open. */
  finishedExecute(): void {
    this.execDone = true;
    if (this.openStreams === 0) this.unlisten();
  }

  /** One of its streams ended: the last one, after exec-done, ends the listening. */
  streamEnded(): void {
    if (--this.openStreams === 0 && this.execDone) this.unlisten();
  }

  /** The batch is done: its signals are no longer listened to. */
  unlisten(): void {
    const signals = this.signals;
    if (!signals) return;
    this.signals = undefined;
    for (const signal of signals) if (signal && !signal.aborted) signal.removeEventListener('abort', this);
  }
}

const ONCE = { once: true } as const;

/**
 * The batches sent and not answered, in send order: a list linked through the batches, each
 * unlinked (its links cleared) when answered. Not a Map keyed by batch number: a Map with an entry
 * per batch is rehashed every few dozen batches, and once its table is in the old generation
 * (after any full GC) each table it replaces stays there, still pointing at the batches it held
 * and through them at their requests, which the scavenger then keeps (and promotes) until the
 * next full GC. The stub answers in send order, so the batch answered is nearly always the first.
 */
class BatchList {
  first: PendingBatch | undefined = undefined;
  private last: PendingBatch | undefined = undefined;
  size = 0;

  add(batch: PendingBatch): void {
    batch.prev = this.last;
    if (this.last) this.last.next = batch;
    else this.first = batch;
    this.last = batch;
    this.size++;
  }

  /** Takes batch `b` out of the list (undefined if it is not in it). */
  take(b: number): PendingBatch | undefined {
    let batch = this.first;
    while (batch !== undefined && batch.b !== b) batch = batch.next;
    if (batch === undefined) return undefined;
    const { prev, next } = batch;
    if (prev) prev.next = next;
    else this.first = next;
    if (next) next.prev = prev;
    else this.last = prev;
    batch.prev = batch.next = undefined;
    this.size--;
    return batch;
  }

  /** Empties the list: its batches, in send order. */
  clear(): PendingBatch[] {
    const all = [...this.values()];
    for (const batch of all) batch.prev = batch.next = undefined;
    this.first = this.last = undefined;
    this.size = 0;
    return all;
  }

  *values(): Generator<PendingBatch> {
    for (let batch = this.first; batch !== undefined; batch = batch.next) yield batch;
  }
}

/**
 * Who gets a batch's outcomes, with the token it sent the batch with: called once, as they are
 * read (no promise per batch). The receiver is long-lived (the instance) and the token says
 * which batch, so sending makes no closure.
 */
export interface BatchReceiver<T> {
  executed(token: T, outcomes: ExecOutcome[]): void;
}

/** send()'s receiver: the token is the promise's resolve. */
export const RESOLVE: BatchReceiver<(outcomes: ExecOutcome[]) => void> = {
  executed(resolve, outcomes) {
    resolve(outcomes);
  },
};

/** What an ended stream's entry is left with. */
const ENDED_SINK: StreamSink = { response() {}, end() {} };

/** A decoupled request whose final flag has not arrived. */
interface OpenStream {
  sink: StreamSink;
  /** The batch that listens to this request's signal (see PendingBatch.openStreams). */
  batch: PendingBatch;
  placement?: OutputPlacement;
  /** For the response statistics: responses so far and when the last one came. */
  clock?: { count: number; lastAt: number };
}

/** An execute running past the warning limit, as `/v2/models/{m}/stats` lists it. */
export interface StalledExecute {
  instance: string;
  pid: number;
  running_ms: number;
  requests: number;
}

export interface StubRequestsOptions {
  modelVersion: number;
  /** Batches the stub runs at once: later ones wait in the stub and are not "running". */
  concurrentExecutes?: number;
  executeTimeoutMs?: number;
  executeWarnMs?: number;
  onStalled?: (count: number) => void;
  onResponseStat?: (stat: ResponseStat) => void;
  logger: Logger;
}

export class StubRequests {
  private readonly batches = new BatchList();
  private readonly streams = new Map<number, OpenStream>();
  private nextBatch = 1;
  private nextRid = 1;
  private stalledCount = 0;

  constructor(
    private readonly opts: StubRequestsOptions,
    private readonly channel: Channel<HostMessage, StubMessage>,
    /** Who the stub is, for messages and logs. */
    private readonly who: () => { label: string; model: string; instance: string; pid: number },
    /** Whether the stub still runs (false: nothing more is sent). */
    private readonly open: () => boolean,
  ) {}

  /** Requests in flight. */
  get inflight(): number {
    let n = 0;
    for (const b of this.batches.values()) n += b.rids.length;
    return n + this.streams.size;
  }

  /**
   * Sends one batch; resolves with one outcome per request (never rejects). With `sinks`,
   * decoupled. `startedAt`: the caller's clock read as it handed the batch over (the input
   * copy's start).
   */
  send(requests: InferRequest[], sinks?: StreamSink[], startedAt = performance.now()): Promise<ExecOutcome[]> {
    return new Promise((resolve) => this.sendThen(requests, sinks, startedAt, RESOLVE, resolve));
  }

  /**
   * send() without a promise: `receiver.executed(token, outcomes)` is called once, never before
   * sendThen returns (a batch that cannot be sent is answered on a microtask).
   */
  sendThen<T>(requests: InferRequest[], sinks: StreamSink[] | undefined, startedAt: number, receiver: BatchReceiver<T>, token: T): void {
    const blocks: Handle[] = [];
    const n = requests.length;
    const rids: number[] = new Array(n);
    const placements: (OutputPlacement | undefined)[] = new Array(n);
    let signals = 0;
    for (let i = 0; i < n; i++) {
      const r = requests[i]!;
      rids[i] = this.nextRid++;
      placements[i] = r.outputPlacement;
      if (r.signal) signals++;
    }
    const inputStart = startedAt;
    let wire;
    try {
      wire = writeRequests(this.channel.arena, requests, rids, this.opts.modelVersion, blocks);
    } catch (err) {
      for (const h of blocks) this.channel.arena.free(h);
      const e = err instanceof StubhostError ? err : new StubhostError('STUBHOST_INTERNAL', (err as Error).message);
      sinks?.forEach((s) => s.end(e));
      queueMicrotask(() => receiver.executed(token, requests.map(() => ({ error: e }))));
      return;
    }
    const b = this.nextBatch++;
    const sentAt = performance.now();
    const batch = new PendingBatch(this, b, blocks, rids, placements, sentAt, sentAt - inputStart, sinks);
    batch.receiver = receiver as BatchReceiver<unknown>;
    batch.token = token;
    this.batches.add(batch);
    if (sinks) {
      batch.openStreams = n;
      for (let i = 0; i < n; i++) {
        this.streams.set(rids[i]!, { sink: sinks[i]!, batch, placement: placements[i], clock: this.opts.onResponseStat ? { count: 0, lastAt: sentAt } : undefined });
      }
    }
    // After 'exec': a Cancel for a request the stub has not seen yet would be dropped.
    this.channel.send({ k: 'exec', b, reqs: wire });
    this.channel.expectReply();
    // Only requests that can be cancelled are listened to, by the batch itself (one handler
    // object for all of them, no closure per request); removed when the batch is done.
    if (signals > 0) batch.listen(requests);
  }

  /** Marks requests cancelled in the stub (request.isCancelled() turns true). */
  cancel(rids: number[]): void {
    if (this.open()) this.channel.send({ k: 'cancel', rids });
  }

  onExecDone(b: number, rs: WireResponse[] | undefined, err: ErrorBody | undefined): void {
    const batch = this.batches.take(b);
    if (!batch) return;
    batch.finishedExecute();
    if (batch.stalled) {
      const who = this.who();
      this.opts.logger.info(`a stalled execute finished after ${Math.round((performance.now() - batch.startedAt) / 1000)} s`, { model: who.model, instance: who.instance, pid: who.pid });
      this.setStalled(this.stalledCount - 1);
    }
    const outputStart = performance.now();
    // A batch sent ahead waited in the stub until now: its execute (and execute timeout) starts now.
    const next = this.batches.first;
    if (next) next.startedAt = Math.max(next.startedAt, outputStart);
    const n = batch.rids.length;
    const outcomes: ExecOutcome[] = new Array(n);
    for (let i = 0; i < n; i++) {
      const r = err ? undefined : rs?.[i];
      outcomes[i] = err ? { error: StubhostError.fromBody(err) } : r ? this.read(r, batch.placements[i]) : {};
    }
    const endedAt = performance.now();
    const phases: ExecPhases = { inputMs: batch.inputMs, outputMs: endedAt - outputStart, endedAt };
    for (let i = 0; i < n; i++) outcomes[i]!.phases = phases;
    for (const h of batch.blocks) this.channel.arena.free(h);
    if (err && batch.streams) {
      // Execute threw: the decoupled streams of its requests end with that error.
      for (const rid of batch.rids) this.endStream(rid, StubhostError.fromBody(err));
    }
    // The batch may outlive its answer (a decoupled stream's entry holds it): it lets go of the
    // token and the sinks, which lead to its requests.
    const token = batch.token;
    batch.token = undefined;
    batch.streams = undefined;
    batch.receiver.executed(token, outcomes);
  }

  onStreamResponse(rid: number, r: WireResponse | undefined, final: boolean): void {
    const stream = this.streams.get(rid);
    if (!stream) {
      if (r) this.release(r);
      return;
    }
    const clock = stream.clock;
    const arrived = clock ? performance.now() : 0;
    const outcome = r ? this.read(r, stream.placement) : undefined;
    if (clock) {
      const now = performance.now();
      const kind = outcome === undefined ? 'empty' : !outcome.error ? 'success' : outcome.error.code === 'STUBHOST_CANCELLED' ? 'cancel' : 'fail';
      // As Triton's core: an empty response and a failed one copied no outputs.
      const outputNs = kind === 'success' ? Math.round((now - arrived) * 1e6) : 0;
      this.opts.onResponseStat!({ index: clock.count++, kind, inferNs: Math.round((arrived - clock.lastAt) * 1e6), outputNs });
      clock.lastAt = now;
    }
    if (outcome) stream.sink.response(outcome, final);
    if (final) this.endStream(rid);
  }

  /** Executes running longer than the warning limit now. */
  stalledExecutes(): StalledExecute[] {
    const now = performance.now();
    const who = this.who();
    const out: StalledExecute[] = [];
    for (const b of this.batches.values()) {
      if (b.stalled) out.push({ instance: who.instance, pid: who.pid, running_ms: Math.round(now - b.startedAt), requests: b.rids.length });
    }
    return out;
  }

  /** The health watch's look at the batches: a hang past the execute timeout (its cause), else undefined; reports stalls. */
  check(now: number): string | undefined {
    const executeTimeoutMs = this.opts.executeTimeoutMs ?? 0;
    if (executeTimeoutMs > 0) {
      for (const batch of this.batches.values()) {
        if (now - batch.startedAt > executeTimeoutMs) return `execute ran longer than the execute timeout of ${executeTimeoutMs} ms`;
      }
    }
    this.noteStalled(now);
    return undefined;
  }

  /** The stub is gone: every batch and stream fails with `error`. */
  failAll(error: StubhostError): void {
    this.setStalled(0);
    const batches = this.batches.clear();
    const streams = [...this.streams.values()];
    this.streams.clear();
    for (const batch of batches) batch.unlisten();
    // On a microtask: the stub's owner learns it is gone (and stops taking batches) before the
    // schedulers hear their batches are over and dispatch again.
    if (batches.length > 0) {
      queueMicrotask(() => {
        for (const batch of batches) batch.receiver.executed(batch.token, batch.rids.map(() => ({ error })));
      });
    }
    for (const s of streams) {
      s.batch.unlisten();
      s.sink.end(error);
    }
  }

  private endStream(rid: number, error?: StubhostError): void {
    const stream = this.streams.get(rid);
    if (!stream) return;
    this.streams.delete(rid);
    stream.batch.streamEnded();
    const sink = stream.sink;
    // The Map's replaced tables may still hold the entry (see BatchList): it lets go of the sink,
    // which leads to the request's front end.
    stream.sink = ENDED_SINK;
    stream.placement = undefined;
    sink.end(error);
  }

  /** The stub's name for errors, bound once: who() builds an object and the label string. */
  private readonly labelOf = (): string => this.who().label;

  /** A response's outputs copied out of the stub's arena (into the placement, if any), the blocks given back. */
  private read(r: WireResponse, placement: OutputPlacement | undefined): ExecOutcome {
    try {
      return readOutcome(this.channel.peer, r, this.labelOf, placement);
    } finally {
      this.release(r);
    }
  }

  private release(r: WireResponse): void {
    if (this.open()) this.channel.releaseLater(responseHandles(r));
  }

  /** Reports, once per execute, the running executes past the warning limit. */
  private noteStalled(now: number): void {
    const warnMs = this.opts.executeWarnMs ?? 0;
    if (!(warnMs > 0)) return;
    let running = this.opts.concurrentExecutes ?? 1;
    let count = this.stalledCount;
    // In send order: the first `concurrentExecutes` batches run, the others wait in the stub.
    for (const batch of this.batches.values()) {
      if (running-- <= 0) break;
      if (batch.stalled || now - batch.startedAt <= warnMs) continue;
      batch.stalled = true;
      count++;
      const who = this.who();
      this.opts.logger.warn(
        `execute of ${batch.rids.length} request(s) has been running for ${Math.round((now - batch.startedAt) / 1000)} s, longer than the execute warning limit of ${warnMs / 1000} s (--execute-warn-secs); it is not stopped (the model parameter execute_timeout_seconds restarts a stub whose execute hangs)`,
        { model: who.model, instance: who.instance, pid: who.pid },
      );
    }
    this.setStalled(count);
  }

  private setStalled(count: number): void {
    if (count === this.stalledCount) return;
    this.stalledCount = count;
    this.opts.onStalled?.(count);
  }
}
