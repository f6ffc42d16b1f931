/**
 * One side's end of a stub's region: typed messages out through one queue, in through the
 * other, with this side's Arena for the tensor bytes it writes and a PeerArena for the bytes
 * it reads. Segment drops are forwarded to the peer before the next message, so the peer
 * never resolves a handle into a segment the writer has already reused.
 */
import { Packr, RESET_BUFFER_MODE, Unpackr } from 'msgpackr';
import { Arena, PeerArena, type ArenaOptions, type Handle } from './arena.js';
import type { MessageQueue } from './message-queue.js';
import type { Region } from './region.js';
import { StubhostError } from '../errors.js';
import { NOT_FAST, decodeMessage, encodeMessage } from './wire-codec.js';

export type Side = 'host' | 'stub';

export interface ChannelOptions {
  arena?: Omit<ArenaOptions, 'prefix'>;
}

/** The arena segment name prefix of each side of a region. */
export function arenaPrefix(regionName: string, side: Side): string {
  return `${regionName}-${side === 'host' ? 'h' : 's'}`;
}

/** Both directions carry `Release` (see protocol.ts), which `releaseLater` sends. */
export class Channel<Out extends { k: string }, In extends { k: string }> {
  readonly arena: Arena;
  readonly peer: PeerArena;
  private readonly out: MessageQueue;
  private readonly in: MessageQueue;
  private readonly packr = new Packr({ useRecords: false, moreTypes: false });
  private readonly unpackr = new Unpackr({ useRecords: false, copyBuffers: true, mapsAsObjects: true });
  private closed = false;
  private scratch = new Uint8Array(4096);
  private pendingRelease: Handle[] = [];
  private releaseScheduled = false;

  constructor(readonly region: Region, readonly side: Side, options: ChannelOptions = {}) {
    this.out = side === 'host' ? region.hostToStub : region.stubToHost;
    this.in = side === 'host' ? region.stubToHost : region.hostToStub;
    this.arena = new Arena({ ...options.arena, prefix: arenaPrefix(region.name, side) });
    this.peer = new PeerArena(arenaPrefix(region.name, side === 'host' ? 'stub' : 'host'));
  }

  send(message: Out): void {
    if (this.closed) throw new StubhostError('STUBHOST_CLOSED', `channel ${this.region.name} is closed`);
    const dropped = this.arena.takeDropped();
    if (dropped.length > 0) this.out.send(this.encode({ k: 'seg-drop', ids: dropped }));
    this.out.send(this.encode(message));
  }

  /** The message's bytes, valid until the next encode (the queue copies them before send returns). */
  private encode(message: object): Uint8Array {
    // RESET_BUFFER_MODE: msgpackr writes the next message over these bytes instead of moving on
    // through its buffer (and allocating a new one every few dozen messages).
    return encodeMessage(message) ?? this.packr.pack(message, RESET_BUFFER_MODE);
  }

  /** Messages from the peer, in order. A message that fails to decode goes to `onError`. */
  onMessage(handler: (message: In) => void, onError: (err: Error) => void, options: { idleBlockMs?: () => number } = {}): void {
    this.in.onMessage((bytes) => {
      let message: In;
      try {
        message = this.decode(bytes);
        if (typeof message !== 'object' || message === null || typeof message.k !== 'string') throw new Error('message has no kind');
      } catch (err) {
        onError(new StubhostError('STUBHOST_PROTOCOL', `corrupt message from the ${this.side === 'host' ? 'stub' : 'host'}: ${(err as Error).message}`));
        return;
      }
      if (message.k === 'seg-drop') {
        this.peer.forget((message as unknown as { ids: number[] }).ids);
        return;
      }
      handler(message);
    }, { ...options, onError });
  }

  /**
   * Gives the peer back arena blocks it lent us (its `Release` message), batched: one message
   * per event-loop turn rather than one per response.
   */
  releaseLater(handles: readonly Handle[]): void {
    if (handles.length === 0 || this.closed) return;
    this.pendingRelease.push(...handles);
    if (this.releaseScheduled) return;
    this.releaseScheduled = true;
    setImmediate(() => {
      this.releaseScheduled = false;
      const hs = this.pendingRelease;
      this.pendingRelease = [];
      if (!this.closed && hs.length > 0) this.send({ k: 'release', hs } as unknown as Out);
    });
  }

  /** An answer to what was just sent is expected within microseconds (see MessageQueue.expectSoon). */
  expectReply(): void {
    this.in.expectSoon();
  }

  /** Blocking receive for tests and benchmarks. */
  receiveSync(timeoutMs = -1): In | undefined {
    for (;;) {
      const bytes = this.in.receiveSync(timeoutMs);
      if (!bytes) return undefined;
      const message = this.decode(bytes);
      if (message.k === 'seg-drop') {
        this.peer.forget((message as unknown as { ids: number[] }).ids);
        continue;
      }
      return message;
    }
  }

  /**
   * Unpacks a message. The bytes are first copied out of shared memory into a private scratch
   * buffer: msgpackr's native string extraction refuses SharedArrayBuffer views and its fallback
   * costs ~8 µs a message, five times the copy. (copyBuffers: the result keeps no view of it.)
   */
  private decode(bytes: Uint8Array): In {
    const n = bytes.byteLength;
    if (this.scratch.byteLength < n) this.scratch = new Uint8Array(Math.max(n, this.scratch.byteLength * 2));
    this.scratch.set(bytes);
    // The fast decoder takes a length: a view of the scratch is made only for msgpackr.
    const fast = decodeMessage(this.scratch, n);
    return (fast !== NOT_FAST ? fast : this.unpackr.unpack(this.scratch.subarray(0, n))) as In;
  }

  /** Whether waiting for messages keeps the process alive. */
  setRef(ref: boolean): void {
    this.in.setRef(ref);
  }

  get backlog(): number {
    return this.out.backlog;
  }

  /** Stops the queues and unlinks this side's segment files. Safe to call twice. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.region.close();
    this.arena.close();
    this.peer.close();
  }
}
