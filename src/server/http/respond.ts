/**
 * Writing whole HTTP answers: JSON, empty, and errors as `{"error": "..."}` with the StubhostError's
 * status. Headers go to writeHead as flat arrays, which it takes as they are (an object is walked
 * key by key).
 */
import type http from 'node:http';
import type { ServerResponse } from 'node:http';
import { StubhostError, httpStatusOf } from '../../errors.js';
import type { HttpLogger } from './options.js';

export function sendJson(res: ServerResponse, status: number, json: string): void {
  res.writeHead(status, ['Content-Type', 'application/json', 'Content-Length', Buffer.byteLength(json)]);
  res.end(json);
}

export function sendEmpty(res: ServerResponse, status: number): void {
  res.writeHead(status, ['Content-Length', 0]);
  res.end();
}

/** The one place an error becomes an HTTP answer; server errors (and non-StubhostErrors) are logged. */
export function sendError(res: ServerResponse, err: unknown, logger: HttpLogger | undefined): void {
  const status = httpStatusOf(err);
  const message = err instanceof Error ? err.message : String(err);
  if (!(err instanceof StubhostError) || status >= 500) logger?.error(`HTTP ${status}: ${message}`);
  if (res.destroyed) return;
  if (res.headersSent) {
    res.destroy(); // half a response cannot be turned into an error; the client sees a reset
    return;
  }
  const json = JSON.stringify({ error: message });
  const headers: http.OutgoingHttpHeader[] = ['Content-Type', 'application/json', 'Content-Length', Buffer.byteLength(json)];
  // The unread rest of an oversized body would be parsed as the next request: close instead.
  if (status === 413 || (err instanceof StubhostError && err.code === 'STUBHOST_CLOSED')) headers.push('Connection', 'close');
  res.writeHead(status, headers);
  res.end(json);
}
