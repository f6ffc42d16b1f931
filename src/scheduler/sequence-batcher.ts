/**
 * Triton's sequence batcher, for stateful models (sequence_batching in the config).
 *
 * Every request carries a correlation id; the first of a sequence has the START flag, the last
 * END. Requests of one sequence run one at a time, in order. `direct`: a sequence is bound to one
 * instance and one batch slot for its lifetime (slots per instance = max(1, max_batch_size)), so
 * a model may keep per-sequence state in memory; `oldest`: any instance runs a batch of the
 * oldest requests of up to max_batch_size different sequences.
 *
 * The model sees the control inputs the config asks for (START, END, READY, CORRID) as tensors,
 * and implicit state (`state { input_name output_name }`): the host feeds each request the state
 * output of the sequence's previous request (zeros, or initial_state, at START) and keeps the new
 * one; state outputs are not returned to the client. A sequence idle longer than
 * max_sequence_idle_microseconds is released.
 *
 * Dispatch through the rate limiter, cancellation of queued requests (a queued request whose
 * client leaves fails at once with STUBHOST_CANCELLED; the rest of its sequence still runs), the
 * pending count and idle waiting: scheduler-base.ts, as for the dynamic batcher.
 */
import { StubhostError } from '../errors.js';
import type { ModelConfig } from '../config/load.js';
import { fromConfigType, typedArrayFor, elementCount, type DataType } from '../core/dtypes.js';
import type { TensorValue } from '../core/types.js';
import type { ExecOutcome, ExecutionTarget, Job, SubmittedJob } from '../execution/contract.js';
import { Fifo, type FifoEntry } from '../core/fifo.js';
import { setLongTimeout, type LongTimer } from '../core/long-timer.js';
import type { InitialStates } from './initial-state.js';
import { SchedulerBase, type SchedulerBaseOptions } from './scheduler-base.js';

type SequenceConfig = NonNullable<ModelConfig['sequence_batching']>;

interface Sequence {
  key: string;
  corrId: string | bigint;
  /** Requests waiting, in order; a cancelled one leaves in O(1). */
  queue: Fifo<Job>;
  running: boolean;
  /** direct: the instance the sequence is bound to. */
  target?: ExecutionTarget;
  /** direct: its slot on that instance, 0 .. slots per instance - 1, for the sequence's lifetime. */
  slot?: number;
  state: Map<string, TensorValue>;
  idleTimer?: LongTimer;
  ended: boolean;
}

export interface SequenceBatcherOptions extends SchedulerBaseOptions {
  /** The model as Triton's client-facing messages name it. */
  modelName?: string;
  maxBatchSize: number;
  config: SequenceConfig;
  /** The states' initial_state tensors (./initial-state.ts); a state without one starts as zeros. */
  initialStates?: InitialStates;
}

export class SequenceBatcher extends SchedulerBase {
  private readonly sequences = new Map<string, Sequence>();
  /**
   * Sequences replaced by a new START for the same id while requests of theirs still ran or
   * waited: those requests still run, in order, before the new sequence's; then they are released.
   */
  private readonly retired = new Set<Sequence>();
  private readonly bound = new Map<ExecutionTarget, number>();
  /** direct: the slots of each instance its bound sequences hold (the model sees them as request.sequenceSlot). */
  private readonly slotsInUse = new Map<ExecutionTarget, Set<number>>();
  /** direct: START requests waiting for a free slot. */
  private readonly backlog: Sequence[] = [];
  private readonly slotsPerInstance: number;
  private readonly oldest: boolean;
  private readonly idleMs: number;
  /** Requests waiting in every sequence's queue. */
  private queuedJobs = 0;

  constructor(private readonly opts: SequenceBatcherOptions) {
    super(opts);
    this.slotsPerInstance = Math.max(1, opts.maxBatchSize);
    this.oldest = opts.config.oldest !== undefined;
    this.idleMs = (opts.config.max_sequence_idle_microseconds || 1_000_000) / 1000;
  }

  protected get queued(): number {
    return this.queuedJobs;
  }

  override addTarget(target: ExecutionTarget): void {
    this.bound.set(target, 0);
    super.addTarget(target);
  }

  levelOf(): number {
    return 1;
  }

  submit(job: SubmittedJob): void {
    // Fields listed, not spread: the submitted job may be a class whose finish is a method.
    const full: Job = {
      request: job.request, batchSize: job.batchSize, shapeKey: job.shapeKey, level: job.level, sink: job.sink,
      finish: (outcome, timing) => job.finish(outcome, timing),
      seq: 0, enqueuedAt: job.arrivedAt ?? performance.now(), deadline: Infinity, timeoutAction: 'REJECT',
    };
    const fail = (code: 'STUBHOST_INVALID_INPUT' | 'STUBHOST_UNAVAILABLE', message: string): void =>
      full.finish({ error: new StubhostError(code, message) }, { queueMs: 0, computeMs: 0, batchSize: 0 });
    if (this.closed) return fail('STUBHOST_UNAVAILABLE', this.unloading().message);
    const r = job.request;
    const corr = r.correlationId;
    // Triton's checks and words, in its order (core src/sequence_batch_scheduler/
    // sequence_batch_scheduler.cc Enqueue, sequence_utils.h SetupSequenceRequest).
    const model = `model '${this.opts.modelName ?? r.modelName}'`;
    if (job.batchSize > 1) {
      return fail('STUBHOST_INVALID_INPUT', `inference request to ${model} must specify batch-size 1 due to requirements of sequence batcher`);
    }
    if (corr === undefined || corr === '' || corr === 0n || corr === '0') {
      return fail('STUBHOST_INVALID_INPUT', `inference request to ${model} must specify a non-zero or non-empty correlation ID`);
    }
    const key = String(corr);
    const badCorrid = typeof corr === 'string' && !/^\d+$/.test(corr) ? this.numericCorrid() : undefined;
    if (badCorrid) {
      return fail('STUBHOST_INVALID_INPUT', `sequence id '${corr}' of the request to ${this.opts.modelLabel} is a string, but its CORRID control input '${badCorrid.name}' is ${badCorrid.type}; use an integer sequence id (or CORRID data_type TYPE_STRING in the config)`);
    }
    let seq = this.sequences.get(key);
    if (r.sequenceStart) {
      if (seq && (seq.running || seq.queue.length > 0)) {
        // Triton releases the old sequence when a new START arrives for the same id; the
        // requests it already accepted still run (see `retired`).
        seq.ended = true;
        this.retired.add(seq);
      }
      if (!seq || seq.ended) {
        seq = { key, corrId: corr, queue: new Fifo<Job>(), running: false, state: new Map(), ended: false };
        if (!this.oldest) this.backlog.push(seq);
        this.sequences.set(key, seq);
      } else {
        seq.state.clear();
      }
    } else if (!seq || seq.ended) {
      // (also what a sequence idle past max_sequence_idle_microseconds gets, as in Triton)
      return fail('STUBHOST_INVALID_INPUT', `inference request for sequence ${key} to ${model} must specify the START flag on the first request of the sequence`);
    }
    const queuedJob: Job = { ...full, request: { ...r, correlationId: corr } };
    const entry = seq.queue.push(queuedJob);
    this.queuedJobs++;
    this.touch(seq);
    this.notePending();
    this.listen(seq, entry);
    this.schedule();
  }

  /** The CORRID control input, when the model takes it as a number (a string id cannot fill it). */
  private numericCorrid(): { name: string; type: string } | undefined {
    for (const ci of this.opts.config.control_input) {
      for (const c of ci.control) {
        if (c.kind !== 'CONTROL_SEQUENCE_CORRID') continue;
        const type = c.data_type ?? 'TYPE_UINT64';
        if (type !== 'TYPE_STRING') return { name: ci.name, type };
      }
    }
    return undefined;
  }

  schedule(): void {
    if (!this.oldest) this.bindBacklog();
    for (const target of this.targets) {
      while (this.hasRoom(target)) {
        const batch = this.pickFor(target);
        if (batch.length === 0) break;
        this.send(target, batch);
      }
    }
  }

  protected drain(): Job[] {
    const jobs: Job[] = [];
    for (const seq of [...this.sequences.values(), ...this.retired]) {
      seq.idleTimer?.clear();
      jobs.push(...seq.queue);
      seq.queue.clear();
    }
    this.queuedJobs = 0;
    this.sequences.clear();
    this.retired.clear();
    return jobs;
  }

  protected settle(job: Job, outcome: ExecOutcome, now: number): void {
    job.finish(outcome, { queueMs: now - job.enqueuedAt, computeMs: 0, batchSize: 0 });
  }

  private bindBacklog(): void {
    while (this.backlog.length > 0) {
      const target = this.targets
        .filter((t) => (this.bound.get(t) ?? 0) < this.slotsPerInstance)
        .sort((a, b) => (this.bound.get(a) ?? 0) - (this.bound.get(b) ?? 0))[0];
      if (!target) return;
      const seq = this.backlog.shift()!;
      if (seq.ended && seq.queue.length === 0) continue;
      seq.target = target;
      seq.slot = this.takeSlot(target);
      this.bound.set(target, (this.bound.get(target) ?? 0) + 1);
    }
  }

  private pickFor(target: ExecutionTarget): Sequence[] {
    const ready = [...this.sequences.values(), ...this.retired].filter((s) => !s.running && s.queue.length > 0 && (this.oldest || s.target === target) && !this.waitsForRetired(s));
    ready.sort((a, b) => a.queue.first()!.value.enqueuedAt - b.queue.first()!.value.enqueuedAt);
    return ready.slice(0, this.slotsPerInstance);
  }

  /** Takes the next request of each sequence and dispatches them as one batch (scheduler-base.ts). */
  private send(target: ExecutionTarget, seqs: Sequence[]): void {
    const jobs = seqs.map((seq) => {
      seq.running = true;
      const job = seq.queue.shift()!;
      this.queuedJobs--;
      this.unlisten(job);
      return this.prepare(seq, job);
    });
    this.dispatch(target, jobs);
    this.notePending();
  }

  /** The lowest free slot of `target` (bindBacklog only binds a sequence to an instance with one free). */
  private takeSlot(target: ExecutionTarget): number {
    let used = this.slotsInUse.get(target);
    if (!used) this.slotsInUse.set(target, (used = new Set()));
    let slot = 0;
    while (used.has(slot)) slot++;
    used.add(slot);
    return slot;
  }

  /** A new sequence whose id still has a retired one with work: that work goes first. */
  private waitsForRetired(seq: Sequence): boolean {
    if (this.retired.size === 0 || this.retired.has(seq)) return false;
    for (const old of this.retired) if (old.key === seq.key) return true;
    return false;
  }

  /** Adds control and state inputs; the finish hook keeps the state output and releases the slot. */
  private prepare(seq: Sequence, job: Job): Job {
    const r = job.request;
    const batched = this.opts.maxBatchSize > 0;
    const extra: TensorValue[] = [];
    for (const ci of this.opts.config.control_input) {
      for (const c of ci.control) {
        const on = c.kind === 'CONTROL_SEQUENCE_START' ? r.sequenceStart === true
          : c.kind === 'CONTROL_SEQUENCE_END' ? r.sequenceEnd === true
            : c.kind === 'CONTROL_SEQUENCE_READY' ? true : false;
        extra.push(controlTensor(ci.name, c, on, seq.corrId, batched));
      }
    }
    for (const st of this.opts.config.state) {
      const prev = seq.state.get(st.output_name);
      const init = prev ? undefined : this.opts.initialStates?.get(st.input_name);
      extra.push(prev ? { ...prev, name: st.input_name } : init ? { ...init } : initialState(st, batched));
    }
    const stateOutputs = new Set(this.opts.config.state.map((s) => s.output_name));
    const enqueuedAt = job.enqueuedAt;
    // A client that names its outputs still gets its state kept: the model is asked for the state
    // outputs too (Triton's backends always compute state tensors; the stub sends back only the
    // outputs a request names).
    const outputs = r.outputs !== undefined && r.outputs.length > 0 && stateOutputs.size > 0
      ? [...r.outputs.filter((o) => !stateOutputs.has(o.name)), ...[...stateOutputs].map((name) => ({ name }))]
      : r.outputs;
    let finished = false;
    return {
      ...job,
      request: { ...r, inputs: [...r.inputs, ...extra], outputs, ...(seq.slot !== undefined ? { sequenceSlot: seq.slot } : {}) },
      finish: (outcome: ExecOutcome, timing) => {
        if (finished) return;
        finished = true;
        if (!outcome.error && stateOutputs.size > 0) {
          for (const t of outcome.outputs ?? []) if (stateOutputs.has(t.name)) seq.state.set(t.name, t);
          outcome = { ...outcome, outputs: (outcome.outputs ?? []).filter((t) => !stateOutputs.has(t.name)) };
        }
        seq.running = false;
        if (r.sequenceEnd || (seq.ended && seq.queue.length === 0)) this.release(seq);
        else this.touch(seq);
        job.finish(outcome, { ...timing, queueMs: timing.queueMs || performance.now() - enqueuedAt - timing.computeMs });
      },
    };
  }

  private touch(seq: Sequence): void {
    seq.idleTimer?.clear();
    seq.idleTimer = setLongTimeout(() => {
      if (seq.running || seq.queue.length > 0) return this.touch(seq);
      this.release(seq);
    }, this.idleMs).unref();
  }

  /**
   * A queued request whose client leaves (disconnect, stream cancelled) leaves its sequence's
   * queue at once and is answered; the rest of the sequence still runs.
   */
  private listen(seq: Sequence, entry: FifoEntry<Job>): void {
    this.watch(entry.value, (_job, signal) => {
      if (!seq.queue.delete(entry)) return;
      this.queuedJobs--;
      // Nothing new can run: the instance the sequence waits for is as busy as before.
      this.cancelled(entry.value, signal, false);
      if (seq.ended && !seq.running && seq.queue.length === 0) this.release(seq);
    });
  }

  private release(seq: Sequence): void {
    seq.idleTimer?.clear();
    if (seq.queue.length > 0) return; // a new START for the same id queued behind: keep going
    seq.ended = true;
    this.retired.delete(seq);
    if (this.sequences.get(seq.key) === seq) this.sequences.delete(seq.key);
    if (seq.target) {
      this.bound.set(seq.target, Math.max(0, (this.bound.get(seq.target) ?? 1) - 1));
      if (seq.slot !== undefined) this.slotsInUse.get(seq.target)?.delete(seq.slot);
      seq.target = undefined;
      seq.slot = undefined;
    }
    this.schedule();
  }
}

function controlTensor(
  name: string,
  c: { kind: string; int32_false_true: number[]; fp32_false_true: number[]; bool_false_true: boolean[]; data_type?: string },
  on: boolean,
  corrId: string | bigint,
  batched: boolean,
): TensorValue {
  const shape = batched ? [1, 1] : [1];
  if (c.kind === 'CONTROL_SEQUENCE_CORRID') {
    const dtype: DataType = fromConfigType(c.data_type ?? 'TYPE_UINT64') ?? 'UINT64';
    if (dtype === 'BYTES') return { name, datatype: 'BYTES', shape, data: [new TextEncoder().encode(String(corrId))] };
    if (dtype === 'UINT64') return { name, datatype: dtype, shape, data: BigUint64Array.of(BigInt(corrId)) };
    if (dtype === 'INT64') return { name, datatype: dtype, shape, data: BigInt64Array.of(BigInt(corrId)) };
    const Ctor = typedArrayFor(dtype as Exclude<DataType, 'BYTES'>);
    const arr = new Ctor(1) as unknown as { [i: number]: number };
    arr[0] = Number(corrId);
    return { name, datatype: dtype, shape, data: arr as unknown as TensorValue['data'] };
  }
  if (c.fp32_false_true.length === 2) return { name, datatype: 'FP32', shape, data: Float32Array.of(c.fp32_false_true[on ? 1 : 0]!) };
  if (c.bool_false_true.length === 2) return { name, datatype: 'BOOL', shape, data: Uint8Array.of(c.bool_false_true[on ? 1 : 0] ? 1 : 0) };
  return { name, datatype: 'INT32', shape, data: Int32Array.of(c.int32_false_true.length === 2 ? c.int32_false_true[on ? 1 : 0]! : on ? 1 : 0) };
}

function initialState(st: SequenceConfig['state'][number], batched: boolean): TensorValue {
  const dtype: DataType = fromConfigType(st.data_type ?? 'TYPE_FP32') ?? 'FP32';
  const dims = st.dims.map((d) => (d < 0 ? 1 : d));
  const shape = batched ? [1, ...dims] : dims;
  const count = elementCount(shape);
  if (dtype === 'BYTES') return { name: st.input_name, datatype: 'BYTES', shape, data: Array.from({ length: count }, () => new Uint8Array(0)) };
  return { name: st.input_name, datatype: dtype, shape, data: new (typedArrayFor(dtype))(count) };
}
