/** What the HTTP route handlers are given: the service, the options, and the server's bookkeeping of infers in flight. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { CancelSource } from '../../core/cancel-signal.js';
import type { InferenceService } from '../../core/service.js';
import type { HttpServerOptions } from './options.js';

/**
 * The cancellation of an infer in flight on a response, with its model's name for the error:
 * aborted if the client leaves or the server closes. One object per request, controller and
 * signal in one (`request.signal` is the object itself), and no AbortController: see CancelSource.
 */
export class ClientAbort extends CancelSource {
  readonly model: string;

  constructor(model: string) {
    super();
    this.model = model;
  }
}

export interface HttpContext {
  readonly service: InferenceService;
  readonly opts: HttpServerOptions;
  /** The body limit (--http-max-input-size). */
  readonly maxBody: number;
  /** Registers the infer in flight on `res`: aborted by the response's close if it was not finished, or by close(). */
  track(res: ServerResponse, abort: ClientAbort): void;
}

/** What a route's path gave: percent-decoded captures. */
export interface RouteParams {
  model?: string;
  version?: string;
  /** Shared-memory routes: the region named in the path; undefined for "every region". */
  region?: string;
}

export type RouteHandler = (ctx: HttpContext, req: IncomingMessage, res: ServerResponse, params: RouteParams) => Promise<void> | void;
