/**
 * The HTTP endpoint Prometheus scrapes: GET /metrics in the text exposition format. Anything else
 * is 404 (another path) or 405 (another method). A port already in use is a typed error that says
 * which address and how to choose another, not an unhandled 'error' event.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { fail, ok, type Result } from '../errors.js';

export interface MetricsExposition {
  exposition(): Promise<{ readonly contentType: string; readonly body: string }>;
}

export interface MetricsServerOptions {
  readonly metrics: MetricsExposition;
  readonly host: string;
  /** 0 picks a free port (see the handle's `port`). */
  readonly port: number;
  readonly logger: Logger;
}

export interface MetricsServerHandle {
  readonly port: number;
  close(): Promise<void>;
}

export async function startMetricsServer(options: MetricsServerOptions): Promise<Result<MetricsServerHandle>> {
  const log = options.logger.child({ component: 'metrics' });
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    if (path !== '/metrics') {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found: the metrics are at /metrics\n');
      return;
    }
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { 'content-type': 'text/plain', allow: 'GET, HEAD' }).end('method not allowed\n');
      return;
    }
    options.metrics.exposition().then(
      ({ contentType, body }) => {
        response.writeHead(200, { 'content-type': contentType });
        response.end(request.method === 'HEAD' ? undefined : body);
      },
      (error: unknown) => {
        log.error({ err: error }, 'metrics not collected');
        response.writeHead(500, { 'content-type': 'text/plain' }).end('metrics could not be collected; see the coordinator log\n');
      },
    );
  });
  const listening = await new Promise<Result<number>>((resolve) => {
    const onError = (error: NodeJS.ErrnoException): void => {
      const where = `${options.host}:${options.port}`;
      if (error.code === 'EADDRINUSE') resolve(fail('unavailable', `metrics port ${where} is already in use by another process; choose another with --metrics-port (metrics.port), or 0 for a free one`));
      else if (error.code === 'EACCES') resolve(fail('unavailable', `metrics port ${where} may not be bound by this user (ports below 1024 need privileges); choose another with --metrics-port`));
      else resolve(fail('unavailable', `metrics server could not listen on ${where}: ${error.message}`));
    };
    server.once('error', onError);
    server.listen(options.port, options.host, () => {
      server.off('error', onError);
      resolve(ok((server.address() as AddressInfo).port));
    });
  });
  if (!listening.ok) return listening;
  const port = listening.value;
  server.on('error', (error) => log.error({ err: error }, 'metrics server error'));
  log.info({ host: options.host, port }, 'metrics served at /metrics');
  let closing: Promise<void> | undefined;
  return ok({
    port,
    close: () =>
      (closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        // A scraper holding a keep-alive connection must not hold the shutdown.
        server.closeAllConnections();
      })),
  });
}
