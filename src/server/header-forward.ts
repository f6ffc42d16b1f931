/**
 * Triton's `--http-header-forward-pattern`: request headers whose name matches the pattern reach
 * the model as string request parameters (docs/protocol/extension_parameters.md, "Forwarding
 * HTTP/GRPC Headers as Parameters"; server src/http_server.cc, ForwardHeaders / ForEachHeader).
 *
 * As Triton: the pattern is searched in the name (RE2::PartialMatch: anchor it with ^ and $ for a
 * whole-name match), case-insensitively unless it starts with `(?-i)` (src/command_line_parser.cc
 * prefixes "(?i)"); a matching header named like a reserved parameter, or starting with
 * "triton_", fails the request (400) instead of being forwarded. The name is the one the client
 * sent (its case kept). JavaScript regular expressions, not RE2: the common syntax is the same.
 */
import { StubhostError } from '../errors.js';
import type { Parameters } from '../core/types.js';

/** The parameters Triton reserves for itself (server src/common.h, kReservedParameterKeys). */
const RESERVED = ['sequence_id', 'sequence_start', 'sequence_end', 'priority', 'timeout', 'headers', 'binary_data_output'];

export interface HeaderForwardPattern {
  /** The pattern as given on the command line. */
  readonly source: string;
  readonly regex: RegExp;
}

/** Compiles the flag's value; a pattern that does not compile is an error naming the flag. */
export function parseHeaderForwardPattern(pattern: string, flag = '--http-header-forward-pattern'): HeaderForwardPattern {
  if (pattern === '') throw new StubhostError('STUBHOST_INVALID_ARG', `${flag}: the pattern is empty; give a regular expression such as '^x-request-'`);
  const caseSensitive = pattern.startsWith('(?-i)');
  const body = caseSensitive ? pattern.slice(5) : pattern;
  try {
    return { source: pattern, regex: new RegExp(body, caseSensitive ? '' : 'i') };
  } catch (err) {
    throw new StubhostError('STUBHOST_INVALID_ARG', `${flag} ${JSON.stringify(pattern)}: not a regular expression (${(err as Error).message})`);
  }
}

/**
 * Adds the matching headers of `rawHeaders` (Node's name, value, name, value, ... list) to
 * `parameters`. A header sent more than once is one parameter, its values joined with ", " (as
 * HTTP combines them). Forwarded headers replace body parameters of the same name.
 */
export function forwardHeaders(pattern: HeaderForwardPattern, rawHeaders: readonly string[], parameters: Parameters): void {
  const seen = new Set<string>();
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    if (!pattern.regex.test(name)) continue;
    if (RESERVED.includes(name) || name.startsWith('triton_')) {
      throw new StubhostError('STUBHOST_INVALID_ARG', `Header '${name}' is reserved for Triton usage and cannot be forwarded.`);
    }
    const value = rawHeaders[i + 1]!;
    parameters[name] = seen.has(name) ? `${String(parameters[name])}, ${value}` : value;
    seen.add(name);
  }
}
