/** The HTTP front-end's options and their defaults. */
import type { SharedMemoryRegistry } from '../shm-registry.js';
import type { RestrictedFeatures } from '../restricted-features.js';
import type { HeaderForwardPattern } from '../header-forward.js';

export const DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024;
export const DEFAULT_REQUEST_TIMEOUT_MS = 60_000;
export const DEFAULT_HEADERS_TIMEOUT_MS = 20_000;

/** `console` fits. */
export interface HttpLogger {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

export interface HttpServerOptions {
  port: number;
  host?: string;
  /** Largest request body accepted; larger ones get 413 without being read. Default 64 MiB. */
  maxBodyBytes?: number;
  logger?: HttpLogger;
  /** Idle keep-alive connections are closed after this long. Default: Node's (5 s). */
  keepAliveTimeoutMs?: number;
  /**
   * The whole request (headers and body) must arrive within this long, else 408 and the
   * connection is closed: a body that trickles or never ends does not hold a connection. 0: no
   * limit. Default DEFAULT_REQUEST_TIMEOUT_MS. Time spent computing the response does not count.
   */
  requestTimeoutMs?: number;
  /** The request headers must arrive within this long (at most requestTimeoutMs). Default DEFAULT_HEADERS_TIMEOUT_MS. */
  headersTimeoutMs?: number;
  /** Open connections at once; more are closed as they are accepted. Default: unlimited. */
  maxConnections?: number;
  /**
   * The server's system shared-memory regions (shared with the gRPC front-end). Without it the
   * /v2/systemsharedmemory routes and tensors that name a region answer "not supported".
   */
  shm?: SharedMemoryRegistry;
  /** API categories open only to requests with a given header (Triton's --http-restricted-api). */
  restrictedApis?: RestrictedFeatures;
  /** Infer requests: headers matching it become request parameters (Triton's --http-header-forward-pattern). */
  headerForwardPattern?: HeaderForwardPattern;
}
