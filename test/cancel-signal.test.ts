/** CancelSource: the AbortController semantics the host's readers of `request.signal` rely on. */
import { describe, expect, it } from 'vitest';
import { CancelSource, type CancelEvent } from '../src/core/cancel-signal.js';

describe('CancelSource', () => {
  it('aborts once, with its reason, calling each listener once in the order added', () => {
    const s = new CancelSource();
    const calls: string[] = [];
    const targets: unknown[] = [];
    const object = { handleEvent: (e: CancelEvent) => { calls.push('object'); targets.push(e.target); } };
    s.addEventListener('abort', function (this: unknown, e) { calls.push('fn'); targets.push(e.target, this); }, { once: true });
    s.addEventListener('abort', object);
    s.addEventListener('abort', object); // the same listener twice is one listener
    expect(s.aborted).toBe(false);
    const reason = new Error('gone');
    s.abort(reason);
    s.abort(new Error('again'));
    expect([s.aborted, s.reason]).toEqual([true, reason]);
    expect(calls).toEqual(['fn', 'object']);
    expect(targets).toEqual([s, s, s]);
  });

  it('a removed listener is not called, also when removed by another during the dispatch', () => {
    const s = new CancelSource();
    const calls: string[] = [];
    const removed = (): void => { calls.push('removed'); };
    const late = (): void => { calls.push('late'); };
    s.addEventListener('abort', removed);
    s.removeEventListener('abort', removed);
    const third = (): void => { calls.push('third'); };
    s.addEventListener('abort', () => { calls.push('first'); s.removeEventListener('abort', third); s.addEventListener('abort', late); });
    s.addEventListener('abort', () => { calls.push('second'); });
    s.addEventListener('abort', third);
    s.abort('why');
    s.addEventListener('abort', late);
    expect(calls).toEqual(['first', 'second']);
  });

  it('without a reason, aborts with an AbortError as AbortController does', () => {
    const s = new CancelSource();
    s.abort();
    const ac = new AbortController();
    ac.abort();
    expect([(s.reason as DOMException).name, (s.reason as DOMException).message]).toEqual([(ac.signal.reason as DOMException).name, (ac.signal.reason as DOMException).message]);
  });

  it('a listener that throws does not stop the others; its error is thrown on the next tick', async () => {
    const s = new CancelSource();
    const calls: string[] = [];
    s.addEventListener('abort', () => { throw new Error('listener failed'); });
    s.addEventListener('abort', () => { calls.push('after'); });
    const listeners = process.listeners('uncaughtException');
    process.removeAllListeners('uncaughtException');
    const thrown = new Promise<Error>((resolve) => process.once('uncaughtException', resolve));
    try {
      s.abort('why');
      expect(calls).toEqual(['after']);
      expect((await thrown).message).toBe('listener failed');
    } finally {
      for (const l of listeners) process.on('uncaughtException', l);
    }
  });
});
