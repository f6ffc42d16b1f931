/**
 * The KServe v2 / Triton HTTP front-end on node:http: the server's life (listen, connection
 * caps, timeouts, close) and the dispatch of each request through the route table (./routes.ts)
 * to its handler (./handlers.ts, ./infer.ts). It knows the host only through InferenceService
 * (src/core/service.ts). Errors become `{"error": "..."}` with the StubhostError's HTTP status in
 * ./respond.ts and nowhere else.
 */
import http, { type IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { StubhostError } from '../../errors.js';
import type { InferenceService } from '../../core/service.js';
import { headerMatches, httpRestrictedMessage } from '../restricted-features.js';
import { bodyTooLarge, declaredLength } from './body.js';
import type { ClientAbort, HttpContext } from './context.js';
import { DEFAULT_HEADERS_TIMEOUT_MS, DEFAULT_MAX_BODY_BYTES, DEFAULT_REQUEST_TIMEOUT_MS, type HttpServerOptions } from './options.js';
import { sendError, sendJson } from './respond.js';
import { type RouteMatch, cachedRoute } from './routes.js';

export { DEFAULT_HEADERS_TIMEOUT_MS, DEFAULT_MAX_BODY_BYTES, DEFAULT_REQUEST_TIMEOUT_MS, type HttpLogger, type HttpServerOptions } from './options.js';
export { GENERATE_NOT_ONE_RESPONSE, HTTP_DECOUPLED_UNSUPPORTED } from './infer.js';

export class HttpServer {
  readonly #opts: HttpServerOptions;
  readonly #maxBody: number;
  #server: http.Server<typeof IncomingMessage, typeof TrackedResponse> | undefined;
  #closing: Promise<void> | undefined;
  /**
   * Responses not yet closed, each in the slot it names (`TrackedResponse.slot`); a closed one's
   * slot is emptied and reused. Not a Map: a Map of requests in flight is rehashed every few
   * dozen requests, and a replaced table that V8 has moved to the old generation keeps every
   * response it held reachable for the scavenger until the next full GC. Under load that
   * promoted each request's whole object graph (1-2 MB a scavenge at 16 connections).
   */
  readonly #active: (TrackedResponse | undefined)[] = [];
  /** Empty slots of #active, the last emptied on top. */
  readonly #free: number[] = [];
  /** What every handler is given; one object for the server's life. */
  readonly #context: HttpContext;
  /**
   * The one 'close' listener of every response (`this` is the response): forgets it and, if it
   * was not finished, aborts its infer. Shared, so no closure is made per request.
   */
  readonly #onResponseClose: (this: TrackedResponse) => void;

  constructor(service: InferenceService, opts: HttpServerOptions) {
    this.#opts = opts;
    this.#maxBody = opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
    const active = this.#active;
    const free = this.#free;
    this.#context = { service, opts, maxBody: this.#maxBody, track: (res, abort) => ((res as TrackedResponse).inflight = abort) };
    this.#onResponseClose = function (this: TrackedResponse): void {
      const inflight = this.inflight;
      this.inflight = undefined;
      if (this.slot >= 0) {
        active[this.slot] = undefined;
        free.push(this.slot);
        this.slot = -1;
      }
      if (inflight !== undefined && !this.writableFinished) {
        inflight.abort(new StubhostError('STUBHOST_CANCELLED', `client disconnected before the response of model '${inflight.model}'`));
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
      ServerResponse: TrackedResponse,
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
        sendError(res, bodyTooLarge(this.#maxBody), this.#opts.logger);
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
      for (const res of this.#active.slice()) {
        if (res === undefined) continue;
        res.inflight?.abort(err);
        sendError(res, err, this.#opts.logger);
      }
      server.closeIdleConnections();
      // Connections whose last response could not be flushed do not hold close() up for long.
      const force = setTimeout(() => server.closeAllConnections(), 1000);
      force.unref();
    });
    return this.#closing;
  }

  readonly #onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const tracked = res as TrackedResponse;
    tracked.slot = this.#free.pop() ?? this.#active.length;
    this.#active[tracked.slot] = tracked;
    res.on('close', this.#onResponseClose); // 'close' comes once
    // #dispatch is not async: the handler's own promise is the only one (an async #dispatch
    // returning it would add another, and the ticks to adopt it).
    let handled: Promise<void> | void;
    try {
      handled = this.#dispatch(req, res);
    } catch (err) {
      sendError(res, err, this.#opts.logger);
      return;
    }
    if (handled !== undefined) handled.catch((err: unknown) => sendError(res, err, this.#opts.logger));
  };

  #dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> | void {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    let m: RouteMatch | undefined;
    try {
      m = cachedRoute(q < 0 ? url : url.slice(0, q));
    } catch {
      throw new StubhostError('STUBHOST_INVALID_ARG', `malformed percent-encoding in the path '${url}'`);
    }
    if (m === undefined) throw new StubhostError('STUBHOST_NOT_FOUND', `no route for ${req.method} ${url}; see the KServe v2 protocol for the /v2 endpoints`);
    const route = m.route;
    // As Triton, the restriction is checked before the method and before anything is read.
    const restriction = this.#opts.restrictedApis?.get(route.category);
    if (restriction !== undefined && !headerMatches(restriction, headerValue(req, restriction.header))) {
      sendJson(res, 403, JSON.stringify({ error: httpRestrictedMessage(restriction) }));
      return;
    }
    const method = req.method ?? 'GET';
    if (!route.methods.includes(method)) {
      res.setHeader('Allow', route.methods.join(', '));
      sendJson(res, 405, JSON.stringify({ error: `method ${method} not allowed on ${url}; use ${route.methods.join(' or ')}` }));
      return;
    }
    return route.handler(this.#context, req, res, m.params);
  }
}

/**
 * The server's responses (createServer's ServerResponse option): each carries its place in
 * HttpServer's list of open responses and the cancellation of the infer it answers, so that
 * bookkeeping needs no Map keyed by response.
 */
class TrackedResponse extends ServerResponse {
  /** Its slot in HttpServer's #active; -1 once closed. */
  slot = -1;
  /** The infer it answers (ctx.track): aborted if the response closes unfinished or the server closes. */
  inflight: ClientAbort | undefined = undefined;
}

/** A request header by name, case-insensitively (Node keeps header names lowercased). */
function headerValue(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

