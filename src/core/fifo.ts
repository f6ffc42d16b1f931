/**
 * A FIFO whose removals anywhere cost O(1): push returns an entry, and deleting it leaves a hole
 * that the head skips. The array is compacted when holes outnumber live entries, so it stays
 * within about twice its length. For queues where a client may cancel any of N waiting requests:
 * N cancellations cost O(N) in all, never a scan per request. A FIFO that empties starts over at
 * the front of the same array, so a queue that fills and drains allocates nothing but entries.
 */
export interface FifoEntry<T> {
  readonly value: T;
  /** The FIFO holding the entry (undefined once deleted or shifted out). */
  owner: Fifo<T> | undefined;
  /** Position in the owner's array (kept current by compaction). */
  index: number;
}

export class Fifo<T> {
  /** Slots [#head, #tail) hold the entries and the holes; slots from #tail on are stale. */
  #items: (FifoEntry<T> | undefined)[] = [];
  #head = 0;
  #tail = 0;
  #live = 0;

  get length(): number {
    return this.#live;
  }

  push(value: T): FifoEntry<T> {
    const entry: FifoEntry<T> = { value, owner: undefined, index: 0 };
    this.pushEntry(entry);
    return entry;
  }

  /** Appends an entry taken out of another FIFO (or this one). */
  pushEntry(entry: FifoEntry<T>): void {
    entry.owner = this;
    entry.index = this.#tail;
    this.#items[this.#tail++] = entry;
    this.#live++;
  }

  /** The oldest live entry. */
  first(): FifoEntry<T> | undefined {
    const items = this.#items;
    let head = this.#head;
    while (head < this.#tail && items[head] === undefined) head++;
    if (head === this.#tail) {
      // Empty: start over at the front (the slots are all holes).
      this.#head = this.#tail = 0;
      return undefined;
    }
    this.#head = head;
    return items[head];
  }

  /** The newest live entry. */
  last(): FifoEntry<T> | undefined {
    const items = this.#items;
    for (let i = this.#tail - 1; i >= this.#head; i--) if (items[i] !== undefined) return items[i];
    return undefined;
  }

  shift(): T | undefined {
    const e = this.first();
    if (e === undefined) return undefined;
    this.delete(e);
    return e.value;
  }

  /** False if the entry is not in this FIFO. */
  delete(entry: FifoEntry<T>): boolean {
    if (entry.owner !== this) return false;
    this.#items[entry.index] = undefined;
    entry.owner = undefined;
    this.#live--;
    if (this.#live === 0) {
      this.#head = this.#tail = 0;
      return true;
    }
    if (entry.index === this.#head) this.#head++;
    const holes = this.#tail - this.#head - this.#live;
    if (holes > 64 && holes > this.#live) this.#compact();
    return true;
  }

  /** Forgets every entry. */
  clear(): void {
    for (const e of this.entries()) e.owner = undefined;
    this.#items = [];
    this.#head = this.#tail = 0;
    this.#live = 0;
  }

  /** Live entries, oldest first. Do not delete while iterating. */
  *entries(): Generator<FifoEntry<T>> {
    const items = this.#items;
    for (let i = this.#head; i < this.#tail; i++) {
      const e = items[i];
      if (e !== undefined) yield e;
    }
  }

  *[Symbol.iterator](): Generator<T> {
    for (const e of this.entries()) yield e.value;
  }

  #compact(): void {
    const kept: FifoEntry<T>[] = [];
    for (const e of this.entries()) {
      e.index = kept.length;
      kept.push(e);
    }
    this.#items = kept;
    this.#head = 0;
    this.#tail = kept.length;
  }
}
