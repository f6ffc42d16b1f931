import { describe, expect, it } from 'vitest';
import { Fifo } from '../src/core/fifo.js';

describe('Fifo', () => {
  it('keeps order across pushes, shifts and deletions anywhere', () => {
    const f = new Fifo<number>();
    const e = [1, 2, 3, 4, 5].map((v) => f.push(v));
    expect(f.delete(e[2]!)).toBe(true);
    expect(f.delete(e[2]!)).toBe(false);
    expect(f.shift()).toBe(1);
    expect([...f]).toEqual([2, 4, 5]);
    expect(f.last()?.value).toBe(5);
    expect(f.length).toBe(3);
    f.delete(e[4]!);
    expect(f.last()?.value).toBe(4);
  });

  it('starts over at the front when it empties, by shifts or by deletions', () => {
    const f = new Fifo<number>();
    for (let round = 0; round < 1000; round++) {
      const a = f.push(round);
      const b = f.push(round + 0.5);
      expect(a.index).toBe(0);
      expect(b.index).toBe(1);
      if (round % 2 === 0) {
        expect(f.shift()).toBe(round);
        expect(f.shift()).toBe(round + 0.5);
      } else {
        f.delete(b);
        f.delete(a);
      }
      expect(f.length).toBe(0);
      expect(f.first()).toBeUndefined();
      expect(f.last()).toBeUndefined();
    }
  });

  it('compacts when holes outnumber entries, keeping indices current', () => {
    const f = new Fifo<number>();
    const entries = Array.from({ length: 300 }, (_, i) => f.push(i));
    // Delete all but every tenth from the middle: the head stays put, holes pile up.
    for (const e of entries) if (e.value % 10 !== 0 && e.value > 0) f.delete(e);
    const kept = entries.filter((e) => e.value % 10 === 0);
    expect([...f]).toEqual(kept.map((e) => e.value));
    for (const e of kept) expect(e.owner).toBe(f);
    // Indices survived compaction: deleting by entry still works.
    f.delete(kept[5]!);
    expect([...f]).toEqual(kept.filter((_, i) => i !== 5).map((e) => e.value));
    f.push(1000);
    expect(f.last()?.value).toBe(1000);
  });

  it('moves entries between FIFOs and clears', () => {
    const a = new Fifo<string>();
    const b = new Fifo<string>();
    const x = a.push('x');
    a.push('y');
    a.delete(x);
    b.pushEntry(x);
    expect(x.owner).toBe(b);
    expect([...a]).toEqual(['y']);
    expect([...b]).toEqual(['x']);
    a.clear();
    expect(a.length).toBe(0);
    expect([...a]).toEqual([]);
    a.push('z');
    expect(a.first()?.value).toBe('z');
  });
});
