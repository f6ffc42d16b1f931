/**
 * A nesting limit for JSON bodies. JSON.parse itself takes any depth, but walking a document
 * nested 100,000 levels deep (validation, flattening tensor data, error messages) overflows the
 * stack: such a body gets a 400 naming the limit before it is parsed.
 */
import { StubhostError } from '../errors.js';

/** Deepest nesting of arrays and objects accepted; a rank-8 tensor in an infer body needs about 11. */
export const MAX_JSON_NESTING = 100;

const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * Throws STUBHOST_INVALID_ARG when the UTF-8 JSON in `bytes` (its first `end` bytes) nests deeper
 * than MAX_JSON_NESTING. One pass over the bytes (brackets and quotes are ASCII and never part of
 * a multi-byte character); malformed JSON is left for JSON.parse to report.
 */
export function checkJsonNesting(bytes: Uint8Array, what: string, end = bytes.length): void {
  let depth = 0;
  const n = end;
  for (let i = 0; i < n; i++) {
    const c = bytes[i]!;
    if (c === QUOTE) {
      for (i++; i < n; i++) {
        const s = bytes[i]!;
        if (s === BACKSLASH) i++;
        else if (s === QUOTE) break;
      }
    } else if (c === OPEN_BRACKET || c === OPEN_BRACE) {
      if (++depth > MAX_JSON_NESTING) {
        throw new StubhostError('STUBHOST_INVALID_ARG', `${what} nests arrays and objects deeper than the limit of ${MAX_JSON_NESTING} levels; send flat tensor data (a shape and a flat "data" array)`);
      }
    } else if (c === CLOSE_BRACKET || c === CLOSE_BRACE) {
      depth--;
    }
  }
}
