/**
 * The Prometheus endpoint (Triton's port 8002): GET /metrics, 404 elsewhere. Its own listener,
 * apart from the inference HTTP server, so a scrape never queues behind large infer bodies and the
 * port can be firewalled separately, as with Triton.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Metrics } from './registry.js';

export interface MetricsServerOptions {
  /** 0 picks a free port; `start()` returns the one bound. */
  port: number;
  host?: string;
}

export class MetricsServer {
  private readonly metrics: Metrics;
  private readonly opts: MetricsServerOptions;
  private server: Server | undefined;
  private closing: Promise<void> | undefined;

  constructor(metrics: Metrics, opts: MetricsServerOptions) {
    this.metrics = metrics;
    this.opts = opts;
  }

  /** Binds and resolves with the port; rejects if the port cannot be bound (e.g. EADDRINUSE). */
  start(): Promise<number> {
    if (this.server) return Promise.reject(new Error('MetricsServer already started'));
    const server = createServer((req, res) => this.handle(req, res));
    this.server = server;
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => {
        this.server = undefined;
        reject(err);
      };
      server.once('error', onError);
      server.listen(this.opts.port, this.opts.host ?? '0.0.0.0', () => {
        server.off('error', onError);
        resolve((server.address() as AddressInfo).port);
      });
    });
  }

  /** Safe to call twice, and before start. Drops idle keep-alive sockets so close does not wait on scrapers. */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    const server = this.server;
    if (!server) return Promise.resolve();
    this.closing = new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeIdleConnections();
    });
    return this.closing;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('Not Found\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { 'content-type': 'text/plain', allow: 'GET, HEAD' }).end('Method Not Allowed\n');
      return;
    }
    this.metrics.text().then(
      (body) => {
        res.writeHead(200, { 'content-type': this.metrics.contentType, 'content-length': Buffer.byteLength(body) });
        res.end(req.method === 'HEAD' ? undefined : body);
      },
      (err: unknown) => {
        // A collect callback that throws must not leave the scraper hanging.
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err instanceof Error ? err.message : String(err)}\n`);
      },
    );
  }
}
