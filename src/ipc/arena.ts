/**
 * The data arena: shared memory for tensor bytes, addressed by (segment, offset, length).
 *
 * Ownership: each side writes only into its own Arena (host → stub data in the host's, stub →
 * host data in the stub's), so allocation needs no cross-process lock. The writer allocates,
 * the peer reads in place through a PeerArena, and the writer frees once the peer says it is
 * done (for the host's request tensors: when the response arrives; for the stub's outputs:
 * when the host sends `release`). Either side dying frees everything with the region.
 *
 * Growth: an Arena starts with one segment (a shm file, lazily backed by tmpfs pages) and adds
 * segments when full, up to `maxBytes`; past that only the allocation that asked fails
 * (STUBHOST_ARENA_FULL). A tensor larger than half a segment gets a dedicated segment, kept as a
 * spare after it is freed so the next large tensor reuses its pages (and the peer its mapping).
 *
 * Files: the writer creates `<prefix><id>` with mode 0600; the reader unlinks it as soon as it
 * has mapped it; the writer unlinks whatever is left when a segment is dropped or on close.
 */
import { native } from './native.js';
import { trackOwnShm, untrackOwnShm } from './own-shm.js';
import { StubhostError } from '../errors.js';

export const ALIGNMENT = 64;
/** errno of a tmpfs with no room left (Linux). */
const ENOSPC = 28;
const PAGE = 4096;

/** Where a block lives: [segment id, byte offset, byte length]. */
export type Handle = readonly [segment: number, offset: number, length: number];

export interface Block {
  handle: Handle;
  /** A view of the block's bytes in this process. */
  bytes: Uint8Array;
}

export interface ArenaOptions {
  /** shm name prefix for this arena's segments, e.g. `/stubhost-123-0-h`. */
  prefix: string;
  /** Size of a regular segment. */
  segmentBytes?: number;
  /** Cap on all segments together. */
  maxBytes?: number;
  /** Dedicated segments kept for reuse after they are freed. */
  spareLargeSegments?: number;
}

interface Segment {
  id: number;
  buffer: SharedArrayBuffer;
  size: number;
  dedicated: boolean;
  /** Free ranges, sorted by offset, coalesced: [offset, length] pairs. */
  free: number[];
  used: number;
  /** Bytes from the start already backed by tmpfs pages (regular segments are created sparse). */
  committed: number;
}

const alignUp = (n: number, a: number): number => Math.ceil(n / a) * a;

/** What takeDropped returns when no segment was dropped (read only). */
const NONE_DROPPED: number[] = [];

export class Arena {
  readonly prefix: string;
  readonly segmentBytes: number;
  readonly maxBytes: number;
  private readonly spareLimit: number;
  private readonly segments = new Map<number, Segment>();
  private readonly spares: Segment[] = [];
  private nextId = 0;
  private totalBytes = 0;
  private usedBytes = 0;
  /** Segments dropped since the last `takeDropped`: the peer must forget their mappings. */
  private dropped: number[] = [];
  private closed = false;

  constructor(options: ArenaOptions) {
    this.prefix = options.prefix;
    this.maxBytes = options.maxBytes ?? 4 * 1024 * 1024 * 1024;
    // A small cap still leaves room for a few segments (the default segment is 64 MiB).
    this.segmentBytes = alignUp(options.segmentBytes ?? Math.min(64 * 1024 * 1024, Math.max(1024 * 1024, this.maxBytes / 4)), PAGE);
    this.spareLimit = options.spareLargeSegments ?? 2;
  }

  segmentName(id: number): string {
    return `${this.prefix}${id}`;
  }

  /** Bytes reserved in shared memory and bytes handed out, for stats and tests. */
  get stats(): { segments: number; totalBytes: number; usedBytes: number } {
    return { segments: this.segments.size, totalBytes: this.totalBytes, usedBytes: this.usedBytes };
  }

  /** Allocates `length` bytes; throws STUBHOST_ARENA_FULL only for this request past the cap. */
  alloc(length: number): Block {
    if (this.closed) throw new StubhostError('STUBHOST_CLOSED', 'shared-memory arena is closed');
    if (length <= 0) return { handle: [-1, 0, 0], bytes: new Uint8Array(0) };
    const size = alignUp(length, ALIGNMENT);
    if (size > this.segmentBytes / 2) return this.allocDedicated(length);
    for (const seg of this.segments.values()) {
      if (seg.dedicated) continue;
      const offset = takeFirstFit(seg, size);
      if (offset >= 0) return this.handOut(seg, offset, length, size);
    }
    const seg = this.addSegment(this.segmentBytes, false, length);
    return this.handOut(seg, takeFirstFit(seg, size), length, size);
  }

  /** Returns a block to the arena. Freeing twice or a foreign handle throws. */
  free(handle: Handle): void {
    const [id, offset, length] = handle;
    if (id === -1 || this.closed) return;
    const seg = this.segments.get(id);
    if (!seg) throw new Error(`Arena.free: segment ${id} is not one of ${this.prefix}'s`);
    const size = seg.dedicated ? seg.size : alignUp(length, ALIGNMENT);
    if (seg.dedicated) {
      if (seg.used === 0) throw new Error(`Arena.free: block [${handle.join(', ')}] freed twice`);
      seg.used = 0;
      this.usedBytes -= size;
      this.spares.push(seg);
      if (this.spares.length > this.spareLimit) this.dropSegment(this.spares.shift()!);
      return;
    }
    insertFree(seg, offset, size);
    seg.used -= size;
    this.usedBytes -= size;
  }

  /** Segment ids dropped since the last call; the peer's PeerArena must `forget` them. */
  takeDropped(): number[] {
    // Nearly always none: the shared empty list, not a new array per message sent.
    if (this.dropped.length === 0) return NONE_DROPPED;
    const d = this.dropped;
    this.dropped = [];
    return d;
  }

  /** The block's bytes in this process (for the writer filling it). */
  bytesOf(handle: Handle): Uint8Array {
    const [id, offset, length] = handle;
    if (id === -1) return new Uint8Array(0);
    const seg = this.segments.get(id);
    if (!seg) throw new Error(`Arena.bytesOf: unknown segment ${id}`);
    return new Uint8Array(seg.buffer, offset, length);
  }

  /** Unlinks every segment file still present and forgets all blocks. Safe to call twice. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const seg of this.segments.values()) {
      unlinkQuietly(this.segmentName(seg.id));
      untrackOwnShm(this.segmentName(seg.id));
    }
    this.segments.clear();
    this.spares.length = 0;
    this.totalBytes = 0;
    this.usedBytes = 0;
  }

  private allocDedicated(length: number): Block {
    const need = alignUp(length, PAGE);
    // Reuse a spare that fits without wasting more than half of it.
    const i = this.spares.findIndex((s) => s.size >= need && s.size <= need * 2);
    const seg = i >= 0 ? this.spares.splice(i, 1)[0]! : this.addSegment(need, true, length);
    seg.used = seg.size;
    this.usedBytes += seg.size;
    return { handle: [seg.id, 0, length], bytes: new Uint8Array(seg.buffer, 0, length) };
  }

  private addSegment(size: number, dedicated: boolean, requested: number): Segment {
    // Near the cap, give back what holds no block: spares first, then empty regular segments.
    // Without the second, an arena whose regular segments once filled the cap would refuse
    // every large tensor forever, even when completely empty.
    while (this.totalBytes + size > this.maxBytes) {
      const victim = this.spares.shift() ?? this.emptyRegularSegment();
      if (!victim) break;
      this.dropSegment(victim);
    }
    if (this.totalBytes + size > this.maxBytes) {
      throw new StubhostError(
        'STUBHOST_ARENA_FULL',
        `shared-memory arena ${this.prefix} is full: ${requested} bytes requested, ${this.usedBytes} of the ${this.maxBytes}-byte cap in use; ` +
          'raise the cap (--shm-max-bytes, or the model parameter shm_max_bytes) or send smaller tensors',
      );
    }
    const id = this.nextId++;
    let buffer: SharedArrayBuffer;
    try {
      // A dedicated segment is written whole at once: back it now. A regular one stays sparse
      // (64 MiB per side per stub would otherwise be taken from /dev/shm up front) and is
      // populated as blocks reach further into it (handOut).
      buffer = native.shmCreate(this.segmentName(id), size, dedicated);
    } catch (err) {
      if ((err as { errno?: number }).errno !== ENOSPC) throw err;
      throw this.noRoom(size, requested);
    }
    trackOwnShm(this.segmentName(id));
    const seg: Segment = { id, buffer, size, dedicated, free: dedicated ? [] : [0, size], used: 0, committed: dedicated ? size : 0 };
    this.segments.set(id, seg);
    this.totalBytes += size;
    return seg;
  }

  private noRoom(bytes: number, requested: number): StubhostError {
    return new StubhostError(
      'STUBHOST_ARENA_FULL',
      `shared-memory arena ${this.prefix}: /dev/shm has no room for ${bytes} more bytes (${requested} bytes requested); ` +
        'give the server a larger /dev/shm (docker run --shm-size, the Helm value shm.sizeLimit) or send smaller tensors',
    );
  }

  private emptyRegularSegment(): Segment | undefined {
    for (const seg of this.segments.values()) if (!seg.dedicated && seg.used === 0) return seg;
    return undefined;
  }

  private dropSegment(seg: Segment): void {
    this.segments.delete(seg.id);
    this.totalBytes -= seg.size;
    unlinkQuietly(this.segmentName(seg.id));
    untrackOwnShm(this.segmentName(seg.id));
    this.dropped.push(seg.id);
  }

  private handOut(seg: Segment, offset: number, length: number, size: number): Block {
    const end = offset + size;
    if (end > seg.committed) {
      // Pages are never given back to tmpfs while the segment lives, so everything below the
      // mark stays backed. Without this, a full /dev/shm is a SIGBUS at the first write.
      const target = Math.min(seg.size, alignUp(end, PAGE));
      if (native.shmPopulate(seg.buffer, seg.committed, target - seg.committed) !== 0) {
        insertFree(seg, offset, size);
        throw this.noRoom(target - seg.committed, length);
      }
      seg.committed = target;
    }
    seg.used += size;
    this.usedBytes += size;
    return { handle: [seg.id, offset, length], bytes: new Uint8Array(seg.buffer, offset, length) };
  }
}

function takeFirstFit(seg: Segment, size: number): number {
  const free = seg.free;
  for (let i = 0; i < free.length; i += 2) {
    const len = free[i + 1]!;
    if (len < size) continue;
    const offset = free[i]!;
    if (len === size) free.splice(i, 2);
    else {
      free[i] = offset + size;
      free[i + 1] = len - size;
    }
    return offset;
  }
  return -1;
}

function insertFree(seg: Segment, offset: number, size: number): void {
  const free = seg.free;
  let i = 0;
  while (i < free.length && free[i]! < offset) i += 2;
  const prevEnd = i > 0 ? free[i - 2]! + free[i - 1]! : -1;
  if (prevEnd > offset || (i < free.length && offset + size > free[i]!)) {
    throw new Error(`Arena.free: block at ${offset} (+${size}) of segment ${seg.id} overlaps free space (freed twice?)`);
  }
  const joinPrev = prevEnd === offset;
  const joinNext = i < free.length && free[i] === offset + size;
  if (joinPrev && joinNext) {
    free[i - 1] = free[i - 1]! + size + free[i + 1]!;
    free.splice(i, 2);
  } else if (joinPrev) free[i - 1] = free[i - 1]! + size;
  else if (joinNext) {
    free[i] = offset;
    free[i + 1] = free[i + 1]! + size;
  } else free.splice(i, 0, offset, size);
}

function unlinkQuietly(name: string): void {
  try {
    native.shmUnlink(name);
  } catch {
    // Already gone or never created: nothing to clean.
  }
}

/**
 * The reader's side of a peer's Arena: maps segments when it first sees their id and hands out
 * views. Every handle is bounds-checked, so a corrupt header can never read past a segment.
 */
export class PeerArena {
  private readonly mapped = new Map<number, SharedArrayBuffer>();

  constructor(readonly prefix: string) {}

  view(handle: Handle): Uint8Array {
    const [id, offset, length] = handle;
    if (id === -1 && length === 0) return new Uint8Array(0);
    if (!Number.isInteger(id) || !Number.isInteger(offset) || !Number.isInteger(length) || id < 0 || offset < 0 || length < 0) {
      throw new StubhostError('STUBHOST_PROTOCOL', `invalid shared-memory handle [${handle.join(', ')}]`);
    }
    const buffer = this.segment(id);
    if (offset + length > buffer.byteLength) {
      throw new StubhostError('STUBHOST_PROTOCOL', `out-of-range shared-memory handle [${handle.join(', ')}]: segment ${id} holds ${buffer.byteLength} bytes`);
    }
    return new Uint8Array(buffer, offset, length);
  }

  /** The peer dropped these segments: release our mappings (munmap happens when GC frees them). */
  forget(ids: readonly number[]): void {
    for (const id of ids) {
      this.mapped.delete(id);
      unlinkQuietly(`${this.prefix}${id}`);
      untrackOwnShm(`${this.prefix}${id}`);
    }
  }

  close(): void {
    for (const id of this.mapped.keys()) untrackOwnShm(`${this.prefix}${id}`);
    this.mapped.clear();
  }

  private segment(id: number): SharedArrayBuffer {
    let buffer = this.mapped.get(id);
    if (!buffer) {
      const name = `${this.prefix}${id}`;
      try {
        buffer = native.shmOpen(name);
      } catch (err) {
        throw new StubhostError('STUBHOST_PROTOCOL', `cannot map the peer's shared-memory segment ${name}: ${(err as Error).message}`);
      }
      // Recorded before the unlink: a hard link made meanwhile still names this inode.
      trackOwnShm(name);
      // We are the last to need the name: unlink now so nothing is left after any kill.
      unlinkQuietly(name);
      this.mapped.set(id, buffer);
    }
    return buffer;
  }
}
