/**
 * A request's cancellation as the host reads it (InferRequest.signal): an AbortSignal satisfies
 * it, and so does CancelSource, a much cheaper stand-in for an AbortController on the paths that
 * make one per request (an AbortController costs a Node EventTarget, and its listeners a
 * validated, weakly-held registration each; almost no request is ever cancelled).
 */

/** What an 'abort' listener is given: readers use `target` to tell which signal fired. */
export interface CancelEvent {
  readonly type: string;
  readonly target: unknown;
}

export type CancelListener = ((event: CancelEvent) => void) | { handleEvent(event: CancelEvent): void };

/** The part of AbortSignal the host uses. */
export interface CancelSignal {
  readonly aborted: boolean;
  readonly reason: unknown;
  addEventListener(type: 'abort', listener: CancelListener, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: CancelListener): void;
}

/**
 * Controller and signal in one object, with AbortController's semantics for what CancelSignal
 * exposes: abort() once (a later one does nothing); listeners called in the order added, each
 * once, `this` being the signal; the same listener added twice is one listener; one removed
 * during the dispatch is not called; a listener that throws does not stop the others (its error
 * is thrown on the next tick, as an EventTarget reports it); listeners added after the abort are
 * never called. Listeners fire at most once whatever their `once`.
 */
export class CancelSource implements CancelSignal {
  aborted = false;
  reason: unknown = undefined;
  /** One listener (the usual case) is held without an array. */
  #listeners: CancelListener | CancelListener[] | undefined = undefined;

  /** `options.once` changes nothing: a listener fires at most once anyway. */
  addEventListener(type: 'abort', listener: CancelListener, _options?: { once?: boolean }): void {
    if (type !== 'abort' || this.aborted || listener === null || listener === undefined) return;
    const held = this.#listeners;
    if (held === undefined) this.#listeners = listener;
    else if (Array.isArray(held)) {
      if (!held.includes(listener)) held.push(listener);
    } else if (held !== listener) this.#listeners = [held, listener];
  }

  removeEventListener(type: 'abort', listener: CancelListener): void {
    if (type !== 'abort') return;
    const held = this.#listeners;
    if (held === listener) this.#listeners = undefined;
    else if (Array.isArray(held)) {
      const i = held.indexOf(listener);
      if (i >= 0) held.splice(i, 1);
    }
  }

  /** Aborts with `reason` (AbortController's AbortError when undefined), then calls the listeners. */
  abort(reason?: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason === undefined ? new DOMException('This operation was aborted', 'AbortError') : reason;
    const held = this.#listeners;
    if (held === undefined) return;
    const event: CancelEvent = { type: 'abort', target: this };
    if (!Array.isArray(held)) {
      this.#listeners = undefined;
      this.#call(held, event);
      return;
    }
    // The live array stays held while it is walked, so a removal during the dispatch is seen.
    const snapshot = held.slice();
    for (const listener of snapshot) if (held.includes(listener)) this.#call(listener, event);
    this.#listeners = undefined;
  }

  #call(listener: CancelListener, event: CancelEvent): void {
    try {
      if (typeof listener === 'function') listener.call(this, event);
      else listener.handleEvent(event);
    } catch (err) {
      process.nextTick(() => {
        throw err;
      });
    }
  }
}
