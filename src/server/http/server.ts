/**
 * The KServe v2 / Triton HTTP front-end on node:http.
 *
 * It knows the host only through InferenceService (src/core/service.ts). Routing is a split of
 * the path, not a framework; bodies are read into one buffer sized from Content-Length and placed
 * so the first binary input is 8-byte aligned, so typed arrays can view tensor bytes in place.
 * Errors become `{"error": "..."}` with the StubhostError's HTTP status here and nowhere else.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { StubhostError, httpStatusOf } from '../../errors.js';
import type { InferenceService, RepositoryIndexEntry } from '../../core/service.js';
import type { InferRequest, InferResult } from '../../core/types.js';
import { decodeInferRequest, encodeInferResponse, parseHeaderLength } from './codec.js';
import { decodeGenerateRequest, encodeGenerateResponse } from './generate.js';
import { checkJsonNesting } from '../../core/json-nesting.js';
import { type SharedMemoryRegistry, cudaShmRegisterUnsupported, cudaShmStatus } from '../shm-registry.js';
import { parseModelVersion } from '../../core/validate.js';
import { headerMatches, httpRestrictedMessage, type RestrictedCategory, type RestrictedFeatures } from '../restricted-features.js';
import { forwardHeaders, type HeaderForwardPattern } from '../header-forward.js';

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

/** An infer in flight on a response: aborted if the client leaves or the server closes. */
interface ActiveInfer {
  ac: AbortController;
  model: string;
}

type RouteKind =
  | 'server' | 'live' | 'ready' | 'allStats' | 'modelMeta' | 'modelReady' | 'modelConfig' | 'infer'
  | 'modelStats' | 'repoIndex' | 'load' | 'unload' | 'logging'
  | 'shmStatus' | 'shmRegister' | 'shmUnregister' | 'cudaShmStatus' | 'cudaShmRegister' | 'cudaShmUnregister'
  | 'generate' | 'generateStream' | 'trace';

/**
 * The restriction category of every route, as Triton's src/http_server.cc checks them
 * (RETURN_AND_RESPOND_IF_RESTRICTED in each Handle* function): model ready is 'health', server
 * and model metadata 'metadata', infer and generate 'inference', CUDA and system shared memory
 * 'shared-memory', the index and load/unload 'model-repository', /v2/logging 'logging'.
 */
const ROUTE_CATEGORY: Record<RouteKind, RestrictedCategory> = {
  live: 'health', ready: 'health', modelReady: 'health',
  server: 'metadata', modelMeta: 'metadata',
  infer: 'inference', generate: 'inference', generateStream: 'inference',
  shmStatus: 'shared-memory', shmRegister: 'shared-memory', shmUnregister: 'shared-memory',
  cudaShmStatus: 'shared-memory', cudaShmRegister: 'shared-memory', cudaShmUnregister: 'shared-memory',
  modelConfig: 'model-config',
  repoIndex: 'model-repository', load: 'model-repository', unload: 'model-repository',
  allStats: 'statistics', modelStats: 'statistics',
  trace: 'trace',
  logging: 'logging',
};

interface Route {
  kind: RouteKind;
  methods: readonly string[];
  model?: string;
  version?: string;
  /** Shared-memory routes: the region named in the path; undefined for "every region". */
  region?: string;
}

const GET = ['GET'] as const;
const POST = ['POST'] as const;
const GET_POST = ['GET', 'POST'] as const;

/** Maps a path (no query) to a route; undefined: 404. Throws on bad percent-encoding. */
function route(path: string): Route | undefined {
  const p = path.split('/');
  if (p[0] !== '' || p[1] !== 'v2') return undefined;
  const n = p.length;
  if (n === 2) return { kind: 'server', methods: GET };
  switch (p[2]) {
    case 'health':
      if (n === 4 && p[3] === 'live') return { kind: 'live', methods: GET };
      if (n === 4 && p[3] === 'ready') return { kind: 'ready', methods: GET };
      return undefined;
    case 'logging':
      return n === 3 ? { kind: 'logging', methods: GET_POST } : undefined;
    case 'trace':
      return n === 4 && p[3] === 'setting' ? { kind: 'trace', methods: GET_POST } : undefined;
    case 'systemsharedmemory':
    case 'cudasharedmemory': {
      // [/region/{name}]/status | /region/{name}/register | [/region/{name}]/unregister
      let region: string | undefined;
      let i = 3;
      if (p[3] === 'region') {
        if (n < 6 || p[4] === '') return undefined;
        region = decodeURIComponent(p[4]!);
        i = 5;
      }
      if (n !== i + 1) return undefined;
      const cuda = p[2] === 'cudasharedmemory';
      if (p[i] === 'status') return { kind: cuda ? 'cudaShmStatus' : 'shmStatus', methods: GET, region };
      if (p[i] === 'unregister') return { kind: cuda ? 'cudaShmUnregister' : 'shmUnregister', methods: POST, region };
      if (p[i] === 'register' && region !== undefined) return { kind: cuda ? 'cudaShmRegister' : 'shmRegister', methods: POST, region };
      return undefined;
    }
    case 'repository':
      if (n === 4 && p[3] === 'index') return { kind: 'repoIndex', methods: POST };
      if (n === 6 && p[3] === 'models' && p[4] !== '') {
        if (p[5] === 'load') return { kind: 'load', methods: POST, model: decodeURIComponent(p[4]!) };
        if (p[5] === 'unload') return { kind: 'unload', methods: POST, model: decodeURIComponent(p[4]!) };
      }
      return undefined;
    case 'models': {
      if (n < 4 || p[3] === '') return undefined;
      // Triton reads /v2/models/stats as "statistics of every model", not a model named "stats".
      if (n === 4 && p[3] === 'stats') return { kind: 'allStats', methods: GET };
      const model = decodeURIComponent(p[3]!);
      let i = 4;
      let version: string | undefined;
      if (p[i] === 'versions') {
        if (n < 6 || p[5] === '') return undefined;
        version = decodeURIComponent(p[5]!);
        i = 6;
      }
      if (n === i) return { kind: 'modelMeta', methods: GET, model, version };
      // Triton's model trace route takes no version.
      if (n === i + 2 && p[i] === 'trace' && p[i + 1] === 'setting' && version === undefined) return { kind: 'trace', methods: GET_POST, model };
      if (n !== i + 1) return undefined;
      switch (p[i]) {
        case 'ready': return { kind: 'modelReady', methods: GET, model, version };
        case 'config': return { kind: 'modelConfig', methods: GET, model, version };
        case 'infer': return { kind: 'infer', methods: POST, model, version };
        case 'generate': return { kind: 'generate', methods: POST, model, version };
        case 'generate_stream': return { kind: 'generateStream', methods: POST, model, version };
        case 'stats': return { kind: 'modelStats', methods: GET, model, version };
        default: return undefined;
      }
    }
    default:
      return undefined;
  }
}

/**
 * route() memoised per path: clients send the same few paths over and over, and splitting and
 * percent-decoding them costs more than a Map lookup. Routes are never mutated; paths with no
 * route (or bad encoding) are not kept, and the cache is emptied when it reaches its bound.
 */
const routeCache = new Map<string, Route>();
const ROUTE_CACHE_MAX = 256;

function cachedRoute(path: string): Route | undefined {
  let r = routeCache.get(path);
  if (r !== undefined) return r;
  r = route(path);
  if (r !== undefined) {
    if (routeCache.size >= ROUTE_CACHE_MAX) routeCache.clear();
    routeCache.set(path, r);
  }
  return r;
}

function bodyTooLarge(limit: number): StubhostError {
  return new StubhostError('STUBHOST_BODY_TOO_LARGE', `request body exceeds the limit of ${limit} bytes (--http-max-input-size); send a smaller request or raise the limit`);
}

function declaredLength(req: IncomingMessage): number | undefined {
  const cl = req.headers['content-length'];
  return cl === undefined ? undefined : Number(cl);
}

/**
 * Reads the whole body into one buffer placed so that byte `alignAt` sits on an 8-byte boundary.
 * Rejects with STUBHOST_BODY_TOO_LARGE as soon as the body is known to exceed `limit`, and then
 * stops reading: the rest is never buffered.
 */
function readBody(req: IncomingMessage, limit: number, alignAt: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = declaredLength(req);
    if (declared !== undefined && declared > limit) {
      reject(bodyTooLarge(limit));
      return;
    }
    new BodyReader(req, limit, (8 - (alignAt % 8)) % 8, declared, resolve, reject);
  });
}

/**
 * readBody's listeners. A class whose four listeners are assigned in the constructor rather than
 * closures declared per request: tsx's keepNames wraps each of those in __name (a
 * defineProperty), and this runs for every request.
 */
class BodyReader {
  readonly #req: IncomingMessage;
  readonly #limit: number;
  readonly #shift: number;
  readonly #resolve: (body: Buffer) => void;
  readonly #reject: (err: unknown) => void;
  #buf: Buffer | undefined;
  readonly #chunks: Buffer[] = [];
  #received = 0;
  #done = false;
  readonly #onData: (chunk: Buffer) => void;
  readonly #onEnd: () => void;
  readonly #onError: (err: unknown) => void;
  readonly #onClose: () => void;

  constructor(req: IncomingMessage, limit: number, shift: number, declared: number | undefined, resolve: (body: Buffer) => void, reject: (err: unknown) => void) {
    this.#req = req;
    this.#limit = limit;
    this.#shift = shift;
    this.#resolve = resolve;
    this.#reject = reject;
    this.#buf = declared !== undefined ? Buffer.allocUnsafeSlow(declared + shift).subarray(shift) : undefined;
    this.#onData = (chunk) => this.#data(chunk);
    this.#onEnd = () => this.#finish();
    // The socket failed or was closed mid-body (the client left, or the request timeout ended
    // it): the client's loss, not a server error.
    this.#onError = (err) => this.#finish(new StubhostError('STUBHOST_CANCELLED', `the request body was not received in full (${(err as Error).message})`));
    this.#onClose = () => this.#finish(new StubhostError('STUBHOST_CANCELLED', 'client closed the connection before sending the whole body'));
    req.on('data', this.#onData);
    req.on('end', this.#onEnd);
    req.on('error', this.#onError);
    req.on('close', this.#onClose);
  }

  #finish(err?: unknown): void {
    if (this.#done) return;
    this.#done = true;
    const req = this.#req;
    req.off('data', this.#onData);
    req.off('end', this.#onEnd);
    req.off('error', this.#onError);
    req.off('close', this.#onClose);
    if (err !== undefined) {
      req.pause();
      this.#reject(err);
      return;
    }
    let buf = this.#buf;
    if (buf === undefined) {
      // Chunked upload: one copy into an aligned buffer, now that the size is known.
      buf = Buffer.allocUnsafeSlow(this.#received + this.#shift).subarray(this.#shift);
      let pos = 0;
      for (const c of this.#chunks) {
        c.copy(buf, pos);
        pos += c.length;
      }
    } else if (this.#received !== buf.length) {
      buf = buf.subarray(0, this.#received);
    }
    this.#resolve(buf);
  }

  #data(chunk: Buffer): void {
    const received = this.#received;
    if (received + chunk.length > this.#limit) {
      this.#finish(bodyTooLarge(this.#limit));
      return;
    }
    const buf = this.#buf;
    if (buf !== undefined) {
      if (received + chunk.length > buf.length) {
        this.#finish(new StubhostError('STUBHOST_INVALID_ARG', 'request body is longer than its Content-Length'));
        return;
      }
      chunk.copy(buf, received);
    } else {
      this.#chunks.push(chunk);
    }
    this.#received = received + chunk.length;
  }
}

const gunzip = promisify(zlib.gunzip);
const inflate = promisify(zlib.inflate);

/**
 * readBody, then undoes `Content-Encoding: gzip | deflate` (tritonclient's request compression)
 * on the thread pool, with the same limit on the decompressed size.
 */
async function readDecodedBody(req: IncomingMessage, limit: number, alignAt: number): Promise<Buffer> {
  const encoding = req.headers['content-encoding']?.trim().toLowerCase();
  if (encoding === undefined || encoding === '' || encoding === 'identity') return readBody(req, limit, alignAt);
  if (encoding !== 'gzip' && encoding !== 'deflate') {
    throw new StubhostError('STUBHOST_UNSUPPORTED', `Content-Encoding '${encoding}' is not supported; send gzip, deflate or an uncompressed body`);
  }
  const raw = await readBody(req, limit, 0);
  let out: Buffer;
  try {
    out = await (encoding === 'gzip' ? gunzip : inflate)(raw, { maxOutputLength: limit });
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') throw bodyTooLarge(limit);
    throw new StubhostError('STUBHOST_INVALID_ARG', `cannot decompress the ${encoding} request body: ${(err as Error).message}`);
  }
  const shift = (8 - (alignAt % 8)) % 8;
  if (shift === 0 && out.byteOffset % 8 === 0) return out;
  const aligned = Buffer.allocUnsafeSlow(out.length + shift).subarray(shift);
  out.copy(aligned);
  return aligned;
}

/** A JSON object body; undefined for an empty body (the control routes take optional bodies). */
async function readJsonObject(req: IncomingMessage, limit: number): Promise<Record<string, unknown> | undefined> {
  const body = await readDecodedBody(req, limit, 0);
  if (body.length === 0) return undefined;
  checkJsonNesting(body, 'the request body');
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new StubhostError('STUBHOST_INVALID_ARG', `malformed JSON in the request body: ${(err as Error).message}`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    throw new StubhostError('STUBHOST_INVALID_ARG', 'the request body must be a JSON object');
  }
  return doc as Record<string, unknown>;
}

function sendJson(res: ServerResponse, status: number, json: string): void {
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(json) });
  res.end(json);
}

function sendEmpty(res: ServerResponse, status: number): void {
  res.writeHead(status, { 'Content-Length': 0 });
  res.end();
}

/** The path's version as the service takes it, read as Triton reads it (refused before the model is looked up). */
function versionOf(version: string | undefined): string | undefined {
  const n = parseModelVersion(version);
  return n === undefined ? undefined : String(n);
}

/** Triton's words for a decoupled model on the HTTP infer endpoint (src/http_server.cc CheckTransactionPolicy). */
export const HTTP_DECOUPLED_UNSUPPORTED = "HTTP end point doesn't support models with decoupled transaction policy";

/** Triton's answer when non-streaming generate gets other than one response (src/http_server.cc SendChunkResponse). */
export const GENERATE_NOT_ONE_RESPONSE = 'generate expects model to produce exactly 1 response, use generate stream for model that generates various number of responses';

export class HttpServer {
  readonly #service: InferenceService;
  readonly #opts: HttpServerOptions;
  readonly #maxBody: number;
  #server: http.Server | undefined;
  #closing: Promise<void> | undefined;
  /** Responses not yet finished, with the abort controller (and model) of the infer they belong to. */
  readonly #active = new Map<ServerResponse, ActiveInfer | undefined>();
  /**
   * The one 'close' listener of every response (`this` is the response): forgets it and, if it
   * was not finished, aborts its infer. Shared, so no closure is made per request.
   */
  readonly #onResponseClose: (this: ServerResponse) => void;

  constructor(service: InferenceService, opts: HttpServerOptions) {
    this.#service = service;
    this.#opts = opts;
    this.#maxBody = opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
    const active = this.#active;
    this.#onResponseClose = function (this: ServerResponse): void {
      const inflight = active.get(this);
      active.delete(this);
      if (inflight !== undefined && !this.writableFinished) {
        inflight.ac.abort(new StubhostError('STUBHOST_CANCELLED', `client disconnected before the response of model '${inflight.model}'`));
      }
    };
  }

  /** Listens; resolves with the bound port (useful with port 0). */
  start(): Promise<number> {
    if (this.#server !== undefined) throw new StubhostError('STUBHOST_INTERNAL', 'HttpServer.start() called twice');
    const requestTimeout = this.#opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    let headersTimeout = this.#opts.headersTimeoutMs ?? DEFAULT_HEADERS_TIMEOUT_MS;
    if (requestTimeout > 0 && (headersTimeout === 0 || headersTimeout > requestTimeout)) headersTimeout = requestTimeout;
    const server = http.createServer({
      noDelay: true,
      requestTimeout,
      headersTimeout,
      // Node checks the two timeouts every 30 s by default: a 1 s timeout would take up to 31 s.
      connectionsCheckingInterval: Math.max(50, Math.min(30_000, Math.floor(Math.min(...[requestTimeout, headersTimeout].filter((t) => t > 0), 120_000) / 4))),
    }, this.#onRequest);
    if (this.#opts.keepAliveTimeoutMs !== undefined) server.keepAliveTimeout = this.#opts.keepAliveTimeoutMs;
    if (this.#opts.maxConnections !== undefined && this.#opts.maxConnections > 0) {
      server.maxConnections = this.#opts.maxConnections;
      // Node closes the connections over the cap as it accepts them; say so now and then.
      let lastWarned = 0;
      let dropped = 0;
      server.on('drop', () => {
        dropped++;
        const now = Date.now();
        if (now - lastWarned < 10_000) return;
        lastWarned = now;
        this.#opts.logger?.warn(`HTTP connection cap reached: ${dropped} connection(s) over --http-max-connections ${this.#opts.maxConnections} were closed`);
        dropped = 0;
      });
    }
    // Answer `Expect: 100-continue` with 413 before the client sends an oversized body.
    server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
      const declared = declaredLength(req);
      if (declared !== undefined && declared > this.#maxBody) {
        this.#sendError(res, bodyTooLarge(this.#maxBody));
        return;
      }
      res.writeContinue();
      this.#onRequest(req, res);
    });
    this.#server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#opts.port, this.#opts.host, () => {
        server.off('error', reject);
        resolve((server.address() as AddressInfo).port);
      });
    });
  }

  /**
   * Stops listening, fails every request still in flight with STUBHOST_CLOSED (aborting its
   * signal so the core can drop the work) and closes every connection. Safe to call twice.
   */
  close(): Promise<void> {
    if (this.#closing !== undefined) return this.#closing;
    const server = this.#server;
    if (server === undefined) return (this.#closing = Promise.resolve());
    this.#closing = new Promise<void>((resolve) => {
      server.close(() => resolve());
      const err = new StubhostError('STUBHOST_CLOSED', 'the HTTP server is shutting down');
      for (const [res, inflight] of this.#active) {
        inflight?.ac.abort(err);
        this.#sendError(res, err);
      }
      server.closeIdleConnections();
      // Connections whose last response could not be flushed do not hold close() up for long.
      const force = setTimeout(() => server.closeAllConnections(), 1000);
      force.unref();
    });
    return this.#closing;
  }

  readonly #onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    this.#active.set(res, undefined);
    res.on('close', this.#onResponseClose); // 'close' comes once
    this.#dispatch(req, res).catch((err: unknown) => this.#sendError(res, err));
  };

  async #dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    let r: Route | undefined;
    try {
      r = cachedRoute(q < 0 ? url : url.slice(0, q));
    } catch {
      throw new StubhostError('STUBHOST_INVALID_ARG', `malformed percent-encoding in the path '${url}'`);
    }
    if (r === undefined) throw new StubhostError('STUBHOST_NOT_FOUND', `no route for ${req.method} ${url}; see the KServe v2 protocol for the /v2 endpoints`);
    // As Triton, the restriction is checked before the method and before anything is read.
    const restriction = this.#opts.restrictedApis?.get(ROUTE_CATEGORY[r.kind]);
    if (restriction !== undefined && !headerMatches(restriction, headerValue(req, restriction.header))) {
      sendJson(res, 403, JSON.stringify({ error: httpRestrictedMessage(restriction) }));
      return;
    }
    const method = req.method ?? 'GET';
    if (!r.methods.includes(method)) {
      res.setHeader('Allow', r.methods.join(', '));
      sendJson(res, 405, JSON.stringify({ error: `method ${method} not allowed on ${url}; use ${r.methods.join(' or ')}` }));
      return;
    }
    const svc = this.#service;
    switch (r.kind) {
      // Not live / not ready is 400, as Triton answers (evhtp's BADREQ), not 503.
      case 'live': return sendEmpty(res, svc.isLive() ? 200 : 400);
      case 'ready': return sendEmpty(res, (await svc.isReady()) ? 200 : 400);
      case 'server': return sendJson(res, 200, JSON.stringify(svc.serverMetadata()));
      case 'modelMeta': return sendJson(res, 200, JSON.stringify(svc.modelMetadata(r.model!, versionOf(r.version))));
      case 'modelReady': return sendEmpty(res, (await svc.modelReady(r.model!, versionOf(r.version))) ? 200 : 400);
      case 'modelConfig': return sendJson(res, 200, JSON.stringify(svc.modelConfig(r.model!, versionOf(r.version))));
      case 'allStats':
      case 'modelStats':
        return sendJson(res, 200, JSON.stringify({ model_stats: svc.modelStatistics(r.model, versionOf(r.version)) }));
      case 'infer': return this.#infer(req, res, r.model!, r.version);
      case 'generate': return this.#generate(req, res, r.model!, r.version, false);
      case 'generateStream': return this.#generate(req, res, r.model!, r.version, true);
      case 'repoIndex': {
        const body = await readJsonObject(req, this.#maxBody);
        const ready = body?.ready;
        if (ready !== undefined && typeof ready !== 'boolean') throw new StubhostError('STUBHOST_INVALID_ARG', `'ready' must be true or false`);
        return sendJson(res, 200, JSON.stringify(svc.repositoryIndex(ready).map(indexEntryJson)));
      }
      case 'load': {
        const params = parametersOf(await readJsonObject(req, this.#maxBody));
        const options: { config?: string; files?: Record<string, Uint8Array> } = {};
        for (const key in params) {
          const value = params[key];
          if (key === 'config') {
            // Triton takes the config as a JSON string; an object is accepted for convenience.
            if (typeof value === 'string') options.config = value;
            else if (typeof value === 'object' && value !== null) options.config = JSON.stringify(value);
            else throw new StubhostError('STUBHOST_INVALID_ARG', `parameter 'config' must be the model config as a JSON string`);
          } else if (key.startsWith('file:')) {
            if (typeof value !== 'string') throw new StubhostError('STUBHOST_INVALID_ARG', `parameter '${key}' must be the file content in base64`);
            (options.files ??= {})[key.slice(5)] = new Uint8Array(Buffer.from(value, 'base64'));
          }
        }
        await svc.loadModel(r.model!, options);
        return sendEmpty(res, 200);
      }
      case 'unload': {
        const params = parametersOf(await readJsonObject(req, this.#maxBody));
        const dependents = params.unload_dependents;
        if (dependents !== undefined && typeof dependents !== 'boolean') {
          throw new StubhostError('STUBHOST_INVALID_ARG', `parameter 'unload_dependents' must be true or false`);
        }
        await svc.unloadModel(r.model!, dependents === undefined ? undefined : { unloadDependents: dependents });
        return sendEmpty(res, 200);
      }
      case 'logging': {
        const update = method === 'POST' ? await readJsonObject(req, this.#maxBody) : undefined;
        return sendJson(res, 200, JSON.stringify(svc.logSettings(update)));
      }
      case 'shmStatus':
        return sendJson(res, 200, JSON.stringify(this.#shm().status(r.region)));
      case 'shmRegister': {
        if (!this.#shm().allowed) {
          // As Triton's HandleSystemSharedMemory (src/http_server.cc): refused before the body is looked at.
          await readDecodedBody(req, this.#maxBody, 0);
          this.#shm().assertAllowed();
        }
        const body = await readJsonObject(req, this.#maxBody);
        if (body === undefined) throw new StubhostError('STUBHOST_INVALID_ARG', `register '${r.region}': the body must be {"key": ..., "offset": ..., "byte_size": ...}`);
        this.#shm().register(r.region!, body.key, body.offset ?? 0, body.byte_size);
        return sendEmpty(res, 200);
      }
      case 'shmUnregister':
        await readDecodedBody(req, this.#maxBody, 0); // Triton's clients send an empty body; drain it
        this.#shm().unregister(r.region);
        return sendEmpty(res, 200);
      case 'cudaShmStatus':
        // No GPU: no CUDA region is ever registered (a system region of that name is named so).
        return sendJson(res, 200, JSON.stringify(cudaShmStatus(this.#opts.shm, r.region)));
      case 'cudaShmRegister':
        // As Triton's HandleCudaSharedMemory built without GPUs (src/http_server.cc): "disabled"
        // first, then the region name, then GPUs not supported.
        await readDecodedBody(req, this.#maxBody, 0);
        this.#shm().assertAllowed();
        throw cudaShmRegisterUnsupported(r.region!);
      case 'cudaShmUnregister':
        // Nothing to unregister without GPUs: success, once client shared memory is allowed.
        await readDecodedBody(req, this.#maxBody, 0);
        this.#shm().assertAllowed();
        return sendEmpty(res, 200);
      case 'trace':
        // Triton's answer when it is built without tracing (src/http_server.cc HandleTrace).
        throw new StubhostError('STUBHOST_UNAVAILABLE', 'the server does not support tracing');
    }
  }

  #shm(): SharedMemoryRegistry {
    if (this.#opts.shm === undefined) {
      throw new StubhostError('STUBHOST_UNSUPPORTED', 'system shared memory is not enabled on this server');
    }
    return this.#opts.shm;
  }

  async #infer(req: IncomingMessage, res: ServerResponse, model: string, version: string | undefined): Promise<void> {
    const headerLength = parseHeaderLength(req.headers['inference-header-content-length']);
    const body = await readDecodedBody(req, this.#maxBody, headerLength ?? 0);
    // As Triton's HandleInfer (src/http_server.cc): the version, then the model's transaction
    // policy, before the body is parsed or anything runs.
    const modelVersion = parseModelVersion(version);
    const contract = this.#service.modelContract(model, modelVersion === undefined ? undefined : String(modelVersion));
    if (contract.decoupled) throw new StubhostError('STUBHOST_NOT_IMPLEMENTED', HTTP_DECOUPLED_UNSUPPORTED);
    if (res.destroyed) return; // the client left while the body was read
    const shm = this.#opts.shm?.session();
    // Copies out of client shared memory count until the answer is sent or the client is gone.
    if (shm) res.once('close', () => shm.release());
    const { request, binaryOutputDefault } = decodeInferRequest(body, headerLength, contract, { modelName: model, modelVersion }, shm);
    // As Triton's HandleInfer: infer only (not generate), after the body's own parameters.
    if (this.#opts.headerForwardPattern) forwardHeaders(this.#opts.headerForwardPattern, req.rawHeaders, request.parameters);

    const ac = new AbortController();
    if (res.destroyed) return; // the client left while the body was parsed
    this.#active.set(res, { ac, model }); // aborted by #onResponseClose if the client leaves
    request.signal = ac.signal;

    const result = await this.#service.infer(request);
    if (res.headersSent || res.destroyed) return; // closed meanwhile, or failed by close()
    const enc = encodeInferResponse(result, { requested: request.outputs, binaryDefault: binaryOutputDefault, shm });
    if (enc.binary.length === 0) {
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': enc.byteLength });
      res.end(enc.json);
      return;
    }
    res.writeHead(200, {
      'Content-Type': 'application/octet-stream',
      'Inference-Header-Content-Length': enc.json.byteLength,
      'Content-Length': enc.byteLength,
    });
    // Cork so the header, the JSON and every tensor leave in one writev.
    res.cork();
    res.write(enc.json);
    for (const chunk of enc.binary) res.write(chunk);
    res.end();
    res.uncork();
  }

  /**
   * Triton's generate extension: flat JSON in and out; `stream` answers with Server-Sent Events,
   * one event per response (decoupled models send 0..n), and errors as `data: {"error": ...}`.
   */
  async #generate(req: IncomingMessage, res: ServerResponse, model: string, version: string | undefined, stream: boolean): Promise<void> {
    const body = await readDecodedBody(req, this.#maxBody, 0);
    const modelVersion = parseModelVersion(version);
    const contract = this.#service.modelContract(model, modelVersion === undefined ? undefined : String(modelVersion));
    const request = decodeGenerateRequest(body, contract, { modelName: model, modelVersion });
    const ac = new AbortController();
    if (res.destroyed) return;
    this.#active.set(res, { ac, model }); // aborted by #onResponseClose if the client leaves
    request.signal = ac.signal;
    if (!stream) {
      if (!contract.decoupled) {
        const result = await this.#service.infer(request);
        if (res.headersSent || res.destroyed) return;
        return sendJson(res, 200, JSON.stringify(encodeGenerateResponse(result)));
      }
      // Triton runs a decoupled model here too, and answers with the status of its first response
      // (200 when it succeeded, or when there was none) and this error unless it sent exactly one.
      const result = await this.#oneResponse(request, ac);
      if (res.headersSent || res.destroyed) return;
      return sendJson(res, 200, JSON.stringify(result === undefined ? { error: GENERATE_NOT_ONE_RESPONSE } : encodeGenerateResponse(result)));
    }
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', Connection: 'keep-alive' });
    try {
      for await (const result of this.#service.inferStream(request)) {
        if (res.destroyed) break;
        res.write(`data: ${JSON.stringify(encodeGenerateResponse(result))}\n\n`);
      }
    } catch (err) {
      if (!res.destroyed) res.write(`data: ${JSON.stringify({ error: err instanceof Error ? err.message : String(err) })}\n\n`);
    }
    res.end();
  }

  /**
   * A decoupled model's only response; undefined when it sent none or more than one (it is
   * cancelled at the second: the answer is known then). The first response's error is thrown.
   */
  async #oneResponse(request: InferRequest, ac: AbortController): Promise<InferResult | undefined> {
    let first: InferResult | undefined;
    let count = 0;
    try {
      for await (const result of this.#service.inferStream(request)) {
        if (++count === 1) first = result;
        else {
          ac.abort(new StubhostError('STUBHOST_CANCELLED', 'second response of a decoupled model to non-streaming generate'));
          break;
        }
      }
    } catch (err) {
      if (count === 0) throw err;
      return undefined; // a later response failed: the answer is still "not exactly one"
    }
    return count === 1 ? first : undefined;
  }

  #sendError(res: ServerResponse, err: unknown): void {
    const status = httpStatusOf(err);
    const message = err instanceof Error ? err.message : String(err);
    if (!(err instanceof StubhostError) || status >= 500) this.#opts.logger?.error(`HTTP ${status}: ${message}`);
    if (res.destroyed) return;
    if (res.headersSent) {
      res.destroy(); // half a response cannot be turned into an error; the client sees a reset
      return;
    }
    const json = JSON.stringify({ error: message });
    const headers: http.OutgoingHttpHeaders = { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(json) };
    // The unread rest of an oversized body would be parsed as the next request: close instead.
    if (status === 413 || (err instanceof StubhostError && err.code === 'STUBHOST_CLOSED')) headers.Connection = 'close';
    res.writeHead(status, headers);
    res.end(json);
  }
}

/** A request header by name, case-insensitively (Node keeps header names lowercased). */
function headerValue(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * A repository index entry as Triton writes it (core src/tritonserver.cc
 * TRITONSERVER_ServerModelIndex): a model never loaded is only its name; `version` and `reason`
 * appear only when there is one.
 */
function indexEntryJson(e: RepositoryIndexEntry): Record<string, string> {
  if (e.state === undefined) return { name: e.name };
  const out: Record<string, string> = { name: e.name };
  if (e.version !== undefined) out.version = e.version;
  out.state = e.state;
  if (e.reason) out.reason = e.reason;
  return out;
}

function parametersOf(body: Record<string, unknown> | undefined): Record<string, unknown> {
  const params = body?.parameters;
  if (params === undefined) return {};
  if (typeof params !== 'object' || params === null || Array.isArray(params)) {
    throw new StubhostError('STUBHOST_INVALID_ARG', `'parameters' must be an object`);
  }
  return params as Record<string, unknown>;
}
