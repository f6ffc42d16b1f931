/**
 * A single-producer single-consumer ring of fixed-size slots in shared memory, guarded by two
 * counting semaphores: `filled` (slots the consumer may read) and `free` (slots the producer may
 * write). A message longer than one slot spans consecutive slots (SLOT_FLAG_MORE), so there is no
 * size limit and no separate allocation for large headers.
 *
 * Each process makes its own MessageQueue object over the same memory and uses one role:
 * the producer calls `send`, the consumer `onMessage` or `receiveSync`. Indices are local to
 * each side (only the producer moves the tail, only the consumer the head).
 *
 * Backpressure: when the ring is full, `send` keeps the message in a local FIFO and writes it
 * once the consumer frees slots (an async wait on `free`: no busy loop, nothing dropped).
 */
import { Semaphore, type SemaphoreOptions } from './semaphore.js';
import { SpinGate, localCpuOnly } from './spin-gate.js';
import { SLOT_FLAG_MORE, SLOT_HEADER_SIZE, kFilledCount, kFilledSleeper, kFreeCount, kFreeSleeper, kTaken } from './layout.js';

export interface MessageQueueOptions {
  /** Byte offset of the queue header in `buffer`. */
  headerOffset: number;
  /** Byte offset of the first slot. */
  slotsOffset: number;
  slotCount: number;
  slotSize: number;
  /** How long the consumer polls for more work before it sleeps. */
  spinMicros?: number;
  /** True while the peer cannot run at the same time as us (default: we may use one CPU only). */
  sharesOneCpu?: () => boolean;
  /**
   * Byte offset of the peer's progress word for the consumer's spins: the `taken` word of the
   * queue in the other direction (the peer working through what we sent it). Without it the
   * consumer's spins end only on their budget.
   */
  peerProgressOffset?: number;
  /** Whether the peer is waking up at our call (the other direction's `peerWaking`). */
  peerWaking?: () => boolean;
  /** Doorbells of the two semaphores (see doorbell.ts): the side that waits listens, the other rings. */
  filledBell?: Pick<SemaphoreOptions, 'listen' | 'ring'>;
  freeBell?: Pick<SemaphoreOptions, 'listen' | 'ring'>;
  /** While true, the consumer's wake-ups wait for the end of the producer's turn (see SemaphoreOptions.coalesceWakes). */
  coalesceWakes?: () => boolean;
}

export type MessageHandler = (message: Uint8Array) => void;

/** Bounds of the poll `expectSoon` makes for an answer, in microseconds. */
const KICK_SPIN_MAX_US = 150;
const KICK_SPIN_MIN_US = 10;

/** writeMessage's "the whole message is in the ring". */
const DONE = -1;

export class MessageQueue {
  readonly filled: Semaphore;
  readonly free: Semaphore;
  private readonly bytes: Uint8Array;
  private readonly view: DataView;
  private readonly slotCount: number;
  private readonly slotSize: number;
  private readonly slotsOffset: number;
  private readonly spinMicros: number;
  private readonly words: Int32Array;
  private readonly takenIndex: number;
  /** Producer: `taken` when our last post had to wake the consumer (-1: never). */
  private wokeAtTaken = -1;
  private tail = 0;
  private head = 0;
  /** Producer: messages waiting for free slots, in order; `pendingOffset` into the first one. */
  private pending: Uint8Array[] = [];
  private pendingOffset = 0;
  private pendingWaiters: { count: number; resolve: () => void }[] = [];
  private sentMessages = 0;
  private flushing = false;
  /** Consumer: the parts of a multi-slot message read so far. */
  private partial: Uint8Array[] = [];
  private partialLength = 0;
  private handler?: MessageHandler;
  /** How long the receive loop may block the thread when idle (0: never). */
  private idleBlockMs?: () => number;
  private onError?: (err: Error) => void;
  /** The receive loop waits on the watcher thread or the doorbell (see expectSoon). */
  private parked = false;
  private kickScheduled = false;
  private kickBudget = KICK_SPIN_MAX_US;
  private kickProbe = 0;
  private draining = false;
  private closed = false;

  constructor(buffer: SharedArrayBuffer, options: MessageQueueOptions) {
    this.bytes = new Uint8Array(buffer);
    this.view = new DataView(buffer);
    this.slotCount = options.slotCount;
    this.slotSize = options.slotSize;
    this.slotsOffset = options.slotsOffset;
    this.spinMicros = options.spinMicros ?? 30;
    const h = options.headerOffset;
    this.words = new Int32Array(buffer);
    this.takenIndex = (h + kTaken) >> 2;
    const sharesOneCpu = options.sharesOneCpu ?? localCpuOnly;
    const peerProgress = (offset: number | undefined) => (offset === undefined ? undefined : { words: this.words, index: offset >> 2 });
    // The consumer waits for the peer's next message; the producer waits for the consumer to
    // free slots, which follows its taking them.
    const filledGate = new SpinGate({ sharesOneCpu, peerProgress: peerProgress(options.peerProgressOffset), peerWaking: options.peerWaking });
    const freeGate = new SpinGate({ sharesOneCpu, peerProgress: peerProgress(h + kTaken), peerWaking: () => this.peerWaking() });
    this.filled = new Semaphore(buffer, h + kFilledCount, h + kFilledSleeper, { spinMicros: this.spinMicros, gate: filledGate, coalesceWakes: options.coalesceWakes, ...options.filledBell });
    this.free = new Semaphore(buffer, h + kFreeCount, h + kFreeSleeper, { spinMicros: this.spinMicros, gate: freeGate, ...options.freeBell });
  }

  /** Creator side: an empty ring. */
  init(): void {
    this.filled.init(0);
    this.free.init(this.slotCount);
    Atomics.store(this.words, this.takenIndex, 0);
  }

  /** Slots the consumer has taken so far (wraps at 2^31). */
  get taken(): number {
    return Atomics.load(this.words, this.takenIndex);
  }

  /** Producer: the consumer is waking up because we woke it, and has taken nothing since. */
  peerWaking(): boolean {
    return this.wokeAtTaken === Atomics.load(this.words, this.takenIndex);
  }

  /**
   * Takes every filled slot there is (the consumer), recording the progress the producer's spins
   * watch; returns how many. Two atomics per batch instead of three per slot (a send and a
   * receive of a small message, 16 at a time: ~170 → ~146 ns). Ordering: the producer writes a slot, then adds to `filled`
   * (a sequentially consistent read-modify-write); the exchange in takeAll reads the count those
   * adds left, so every slot it counts was written before we read it, as with one decrement per
   * slot. Slots are still freed one by one, each after its handler returned (readSlot), so the
   * producer never writes over a slot being read.
   */
  private takeAllFilled(): number {
    const n = this.filled.takeAll();
    if (n > 0) Atomics.add(this.words, this.takenIndex, n);
    return n;
  }

  private get payloadSize(): number {
    return this.slotSize - SLOT_HEADER_SIZE;
  }

  // ---- producer ----------------------------------------------------------------------------

  /**
   * Queues `message` for the consumer. The bytes are copied before this returns (into the ring,
   * or into the local FIFO when the ring is full), so the caller may reuse its buffer.
   */
  send(message: Uint8Array): void {
    if (this.closed) throw new Error('MessageQueue.send: queue is closed');
    if (this.pending.length === 0) {
      const written = this.writeMessage(message, 0);
      if (written === DONE) {
        this.sentMessages++;
        return;
      }
      this.pendingOffset = written;
    }
    // The copy protects against the caller reusing its buffer.
    this.pending.push(message.slice());
    void this.flushPending();
  }

  /** Resolves once everything sent so far is in the ring. */
  drained(): Promise<void> {
    if (this.pending.length === 0) return Promise.resolve();
    const target = this.sentMessages + this.pending.length;
    return new Promise((resolve) => this.pendingWaiters.push({ count: target, resolve }));
  }

  /** Messages waiting in the local FIFO because the ring was full. */
  get backlog(): number {
    return this.pending.length;
  }

  /** Blocks until the whole message is in the ring (tests and benchmarks). */
  sendSync(message: Uint8Array, timeoutMs = -1): boolean {
    if (this.pending.length > 0) throw new Error('MessageQueue.sendSync: async sends are still pending');
    let offset = 0;
    const deadline = timeoutMs < 0 ? Infinity : performance.now() + timeoutMs;
    for (;;) {
      offset = this.writeMessage(message, offset);
      if (offset === DONE) return true;
      const left = deadline === Infinity ? -1 : deadline - performance.now();
      if (deadline !== Infinity && left <= 0) return false;
      if (!this.free.wait(left)) return false;
      this.free.post(); // wait() took a unit; writeMessage takes its own
    }
  }

  /**
   * Writes as many slots of `message` from `offset` as are free; returns the new offset, or DONE
   * once the last slot is written. (Not `offset === byteLength`: an empty message is complete
   * only when its one slot is written, and with a full ring that has not happened yet.)
   */
  private writeMessage(message: Uint8Array, offset: number): number {
    const payloadSize = this.payloadSize;
    let posted = 0;
    let more = true;
    do {
      if (!this.free.tryWait()) break;
      const chunk = Math.min(payloadSize, message.byteLength - offset);
      const slot = this.slotsOffset + this.tail * this.slotSize;
      more = offset + chunk < message.byteLength;
      this.view.setUint32(slot, chunk, true);
      this.view.setUint32(slot + 4, more ? SLOT_FLAG_MORE : 0, true);
      // A message that fits one slot (nearly all) is copied as it is: no view of it per send.
      this.bytes.set(chunk === message.byteLength ? message : message.subarray(offset, offset + chunk), slot + SLOT_HEADER_SIZE);
      this.tail = (this.tail + 1) % this.slotCount;
      offset += chunk;
      posted++;
    } while (more);
    // One post per batch of slots: one wake syscall at most.
    if (posted > 0) {
      const wakes = this.filled.stats.wakes;
      this.filled.post(posted);
      if (this.filled.stats.wakes !== wakes) this.wokeAtTaken = Atomics.load(this.words, this.takenIndex);
    }
    return more ? offset : DONE;
  }

  private async flushPending(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    try {
      while (this.pending.length > 0 && !this.closed) {
        const msg = this.pending[0]!;
        const written = this.writeMessage(msg, this.pendingOffset);
        if (written === DONE) {
          this.pending.shift();
          this.pendingOffset = 0;
          this.sentMessages++;
          this.resolveDrainWaiters();
          continue;
        }
        this.pendingOffset = written;
        if (!(await this.free.whenAvailable())) break; // closed
      }
    } finally {
      this.flushing = false;
    }
  }

  private resolveDrainWaiters(): void {
    while (this.pendingWaiters.length > 0 && this.pendingWaiters[0]!.count <= this.sentMessages) {
      this.pendingWaiters.shift()!.resolve();
    }
  }

  // ---- consumer ----------------------------------------------------------------------------

  /**
   * Starts delivering messages to `handler`, in order, on the event loop. The Uint8Array is a
   * view of shared memory valid only during the call: decode or copy it before returning.
   */
  onMessage(handler: MessageHandler, options: { idleBlockMs?: () => number; onError?: (err: Error) => void } = {}): void {
    this.handler = handler;
    this.onError = options.onError;
    this.idleBlockMs = options.idleBlockMs;
    void this.receiveLoop();
  }

  /** Reads every complete message available now; returns how many were delivered. */
  drain(handler: MessageHandler): number {
    let delivered = 0;
    for (let n = this.takeAllFilled(); n > 0; n = this.takeAllFilled()) {
      let read = 0;
      try {
        while (read < n) {
          read++;
          if (this.readSlot(handler)) delivered++;
        }
      } finally {
        // A handler threw (or the ring is corrupt): the slots taken and not read go back, so
        // the next drain, or a wait, finds them as if they had never been taken. (`taken` will
        // count them again: it is a progress signal, only ever compared for change.)
        if (read < n) this.filled.post(n - read);
      }
    }
    return delivered;
  }

  /** Blocks until one message arrives (tests and benchmarks); returns a copy. */
  receiveSync(timeoutMs = -1): Uint8Array | undefined {
    const deadline = timeoutMs < 0 ? Infinity : performance.now() + timeoutMs;
    let got: Uint8Array | undefined;
    while (!got) {
      const left = deadline === Infinity ? -1 : Math.max(0, deadline - performance.now());
      if (!this.filled.wait(left)) return undefined;
      Atomics.add(this.words, this.takenIndex, 1);
      this.readSlot((m) => (got = m.slice()));
    }
    return got;
  }

  /**
   * Reads the slot at the head (the caller has taken its `filled` unit) and frees it. Returns
   * true when it completed a message, which went to `handler`.
   */
  private readSlot(handler: MessageHandler): boolean {
    const slot = this.slotsOffset + this.head * this.slotSize;
    const length = this.view.getUint32(slot, true);
    const flags = this.view.getUint32(slot + 4, true);
    this.head = (this.head + 1) % this.slotCount;
    if (length > this.payloadSize) {
      this.free.post();
      throw new CorruptQueueError(`MessageQueue: corrupt slot: length ${length} exceeds the slot payload of ${this.payloadSize} bytes`);
    }
    const data = this.bytes.subarray(slot + SLOT_HEADER_SIZE, slot + SLOT_HEADER_SIZE + length);
    if (flags & SLOT_FLAG_MORE) {
      this.partial.push(data.slice());
      this.partialLength += length;
      this.free.post();
      return false;
    }
    let message = data;
    if (this.partial.length > 0) {
      message = new Uint8Array(this.partialLength + length);
      let pos = 0;
      for (const part of this.partial) {
        message.set(part, pos);
        pos += part.byteLength;
      }
      message.set(data, pos);
      this.partial = [];
      this.partialLength = 0;
    }
    try {
      handler(message);
    } finally {
      // The slot is reusable only once the handler is done with its view.
      this.free.post();
    }
    return true;
  }

  private async receiveLoop(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    try {
      while (!this.closed && this.handler) {
        const delivered = this.deliver();
        if (delivered < 0) break;
        if (delivered > 0) {
          // Let the microtasks and I/O the messages started run before polling again.
          await new Promise<void>((resolve) => setImmediate(resolve));
          continue;
        }
        if (this.filled.spinUntilAvailable()) continue;
        const blockMs = this.idleBlockMs?.() ?? 0;
        if (blockMs > 0) {
          // Nothing else is pending on this side: a synchronous futex sleep wakes faster than
          // the watcher thread's hop through the event loop. Bounded, so timers still run.
          if (!this.filled.waitUntilAvailable(blockMs)) await new Promise<void>((resolve) => setImmediate(resolve));
          continue;
        }
        this.parked = true;
        const ok = await this.filled.whenAvailable();
        this.parked = false;
        if (!ok) break;
      }
    } finally {
      this.draining = false;
    }
  }

  /** Drains what is there; -1 when the ring is corrupt and reading must stop. */
  private deliver(): number {
    if (!this.handler) return 0;
    try {
      return this.drain(this.handler);
    } catch (err) {
      // A handler that throws must not stop delivery; a corrupt ring must stop it (the owner
      // treats it as a protocol fault and tears the peer down).
      if (this.onError) this.onError(err as Error);
      else queueMicrotask(() => {
        throw err;
      });
      return err instanceof CorruptQueueError ? -1 : 0;
    }
  }

  /**
   * The caller just sent the peer work it will answer within microseconds: if the receive loop
   * is parked on the watcher thread, poll for the answer briefly on the next turn instead (the
   * thread hop through the event loop costs tens of microseconds). The budget adapts: it halves
   * after a miss and doubles after a hit, so a slow peer costs no spinning.
   */
  expectSoon(): void {
    if (!this.parked || this.kickScheduled || this.closed) return;
    this.kickScheduled = true;
    setImmediate(() => {
      this.kickScheduled = false;
      if (!this.parked || this.closed) return;
      const budget = this.kickBudget > 0 ? this.kickBudget : (++this.kickProbe & 15) === 0 ? KICK_SPIN_MAX_US : 0;
      if (budget === 0) return;
      if (this.filled.spinUntilAvailable(budget)) {
        this.kickBudget = Math.min(KICK_SPIN_MAX_US, Math.max(KICK_SPIN_MIN_US, this.kickBudget * 2));
        this.deliver();
        // Still parked on the watcher: what we took may have been posted with a wake it used up.
        this.filled.renewSleep();
      } else {
        this.kickBudget = this.kickBudget <= KICK_SPIN_MIN_US ? 0 : this.kickBudget / 2;
      }
    });
  }

  /** Whether a consumer waiting for messages keeps the process alive. */
  setRef(ref: boolean): void {
    this.filled.setRef(ref);
  }

  /** Stops the receive loop and the watcher threads; queued sends are dropped. Safe twice. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.handler = undefined;
    this.filled.close();
    this.free.close();
    const waiters = this.pendingWaiters;
    this.pendingWaiters = [];
    for (const w of waiters) w.resolve();
    this.pending = [];
  }
}

/** The ring holds something no producer of ours wrote: stop reading it. */
export class CorruptQueueError extends Error {
  override name = 'CorruptQueueError';
}
