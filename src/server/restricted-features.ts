/**
 * Restricted API categories, as Triton's src/restricted_features.h: a category may be limited to
 * requests that carry a given header with a given value (`--http-restricted-api`,
 * `--grpc-restricted-protocol`). The option syntax, its errors and the header check follow
 * Triton's src/command_line_parser.cc (ParseRestrictedFeatureOption, ParseGenericConfigOption).
 */
import { createHash, timingSafeEqual } from 'node:crypto';

/** Triton's RESTRICTED_CATEGORY_NAMES, in its order. */
export const RESTRICTED_CATEGORIES = [
  'health', 'metadata', 'inference', 'shared-memory', 'model-config', 'model-repository', 'statistics', 'trace', 'logging',
] as const;

export type RestrictedCategory = (typeof RESTRICTED_CATEGORIES)[number];

/** The header a restricted category requires, and its value. */
export interface Restriction {
  /** As the client must send it (for gRPC with Triton's `triton-grpc-protocol-` prefix). */
  header: string;
  value: string;
}

/** Triton's kRestrictedProtocolHeaderTemplate (src/grpc/grpc_server.h): gRPC keys get this prefix. */
export const GRPC_RESTRICTED_HEADER_PREFIX = 'triton-grpc-protocol-';

/** A bad `--http-restricted-api` / `--grpc-restricted-protocol` value; the message names the flag. */
export class RestrictedOptionError extends Error {}

/** Which categories are restricted, and how. Initially empty: every category is open. */
export class RestrictedFeatures {
  readonly #byCategory = new Map<RestrictedCategory, Restriction>();

  get(category: RestrictedCategory): Restriction | undefined {
    return this.#byCategory.get(category);
  }

  get size(): number {
    return this.#byCategory.size;
  }

  insert(category: RestrictedCategory, restriction: Restriction): void {
    this.#byCategory.set(category, restriction);
  }

  /** `[category, restriction]` pairs, for logs. */
  entries(): IterableIterator<[RestrictedCategory, Restriction]> {
    return this.#byCategory.entries();
  }
}

export interface RestrictedOptionKind {
  /** The flag, without dashes: 'http-restricted-api' or 'grpc-restricted-protocol'. */
  flag: string;
  /** Triton's word for a category in its messages: 'api' (HTTP) or 'protocol' (gRPC). */
  featureType: string;
  /** Put before the key: '' for HTTP, GRPC_RESTRICTED_HEADER_PREFIX for gRPC. */
  headerPrefix: string;
}

export const HTTP_RESTRICTED_API: RestrictedOptionKind = { flag: 'http-restricted-api', featureType: 'api', headerPrefix: '' };
export const GRPC_RESTRICTED_PROTOCOL: RestrictedOptionKind = { flag: 'grpc-restricted-protocol', featureType: 'protocol', headerPrefix: GRPC_RESTRICTED_HEADER_PREFIX };

// An HTTP header name is an RFC 9110 token; a gRPC metadata key is lowercase [0-9a-z_.-] (keys are
// matched lowercased) and must not end in -bin (binary values). A key outside these could never
// be sent, so the category would be unreachable: refused at start instead.
const HTTP_TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const GRPC_KEY = /^[0-9A-Za-z_.-]+$/;

/**
 * Parses one `<category>[,<category>...]:<key>=<value>` and adds it to `into`, as Triton's
 * ParseRestrictedFeatureOption: the key is what lies between the first ':' and the first '='
 * after it; the value is the rest. Unknown categories, and a category already restricted by an
 * earlier flag, are refused with Triton's messages.
 */
export function parseRestrictedFeatureOption(arg: string, kind: RestrictedOptionKind, into: RestrictedFeatures): void {
  const flag = `--${kind.flag}`;
  const colon = arg.indexOf(':');
  const eq = colon < 0 ? -1 : arg.indexOf('=', colon + 1);
  const names = colon < 0 ? '' : arg.slice(0, colon);
  const key = eq < 0 ? '' : arg.slice(colon + 1, eq);
  const value = eq < 0 ? '' : arg.slice(eq + 1);
  if (colon < 0 || eq < 0 || names === '' || key === '' || value === '') {
    throw new RestrictedOptionError(
      `${flag} option format is '<config name>:<setting>=<value>'. Got ${arg}; give <${kind.featureType}s>:<key>=<value>, for example ${flag}=model-repository,shared-memory:admin-key=<secret>`,
    );
  }
  const validKey = kind.headerPrefix === '' ? HTTP_TOKEN.test(key) : GRPC_KEY.test(key) && !key.toLowerCase().endsWith('-bin');
  if (!validKey) {
    throw new RestrictedOptionError(
      `${flag} ${JSON.stringify(arg)}: the key '${key}' cannot be sent as ${kind.headerPrefix === '' ? 'an HTTP header name' : 'gRPC metadata (letters, digits, _ . -, not ending in -bin)'}; choose another key`,
    );
  }
  const header = kind.headerPrefix + (kind.headerPrefix === '' ? key : key.toLowerCase());
  for (const name of names.split(',')) {
    if (!(RESTRICTED_CATEGORIES as readonly string[]).includes(name)) {
      throw new RestrictedOptionError(
        `${flag} ${JSON.stringify(arg)}: unknown restricted ${kind.featureType} '${name}'; allowed: ${RESTRICTED_CATEGORIES.join(', ')}`,
      );
    }
    const category = name as RestrictedCategory;
    if (into.get(category) !== undefined) {
      throw new RestrictedOptionError(
        `${flag} ${JSON.stringify(arg)}: restricted ${kind.featureType} '${name}' can not be specified in multiple config groups`,
      );
    }
    into.insert(category, { header, value });
  }
}

/** Parses every value of a repeatable flag into one RestrictedFeatures. */
export function parseRestrictedFeatures(args: readonly string[], kind: RestrictedOptionKind): RestrictedFeatures {
  const out = new RestrictedFeatures();
  for (const arg of args) parseRestrictedFeatureOption(arg, kind, out);
  return out;
}

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/**
 * Whether `sent` (the header value a request carried, undefined if absent) satisfies the
 * restriction. Compared in constant time, so the answer's timing does not leak the value.
 */
export function headerMatches(restriction: Restriction, sent: string | undefined): boolean {
  if (sent === undefined) return false;
  return timingSafeEqual(digest(sent), digest(restriction.value));
}

/** Triton's HTTP answer (src/http_server.cc RespondIfRestricted), sent with status 403. */
export function httpRestrictedMessage(restriction: Restriction): string {
  return `This API is restricted, expecting header '${restriction.header}'`;
}

/** Triton's gRPC answer (src/grpc/grpc_server.cc CommonCallData::Execute), sent as UNAVAILABLE. */
export function grpcRestrictedMessage(restriction: Restriction): string {
  return `This protocol is restricted, expecting header '${restriction.header}'`;
}
