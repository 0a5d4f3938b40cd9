/**
 * The store's HTTP face (koa). Only reads: the CLI edits the data directory and the server
 * notices, because a store operator delists or flags an app while gateways are downloading.
 */
import { createReadStream, promises as fs } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Router from '@koa/router';
import Koa from 'koa';
import { ERROR_CODES, type ErrorCode, isIsogateError } from '../sdk/errors.js';
import { type CatalogEntry, StoreData } from './store.js';

interface CachedCatalog {
  mtimeMs: number;
  size: number;
  entries: CatalogEntry[];
}

export function createStoreServer(store: StoreData): Koa {
  let cached: CachedCatalog | undefined;
  // One stat per request is cheap and means publish/delist/compromise need no restart.
  const catalog = async (): Promise<CatalogEntry[]> => {
    const stat = await fs.stat(store.catalogFile).catch(() => undefined);
    if (!stat) return [];
    if (!cached || cached.mtimeMs !== stat.mtimeMs || cached.size !== stat.size) {
      cached = { mtimeMs: stat.mtimeMs, size: stat.size, entries: await store.catalog() };
    }
    return cached.entries;
  };

  const app = new Koa();
  const router = new Router({ prefix: '/api/v1' });
  // Every answer's status comes from the code's entry in the registry, as the gateway's API does.
  const error = (ctx: Koa.Context, code: ErrorCode, message: string): void => {
    ctx.status = ERROR_CODES[code].status;
    ctx.body = { error: { code, message } };
  };

  router.get('/ca', (ctx) => {
    ctx.type = 'application/x-pem-file';
    ctx.body = store.rootCertPem;
  });
  router.get('/apps', async (ctx) => {
    ctx.body = { apps: await catalog() };
  });
  router.get('/apps/:id', async (ctx) => {
    const versions = (await catalog()).filter((e) => e.package_id === ctx.params.id);
    if (versions.length === 0) return error(ctx, 'E_NOT_FOUND', `No app ${ctx.params.id} in this store`);
    ctx.body = { apps: versions };
  });
  router.get('/apps/:id/:version/package', async (ctx) => {
    const { id, version } = ctx.params as { id: string; version: string };
    const entry = (await catalog()).find((e) => e.package_id === id && e.version === version);
    if (!entry) {
      const known = (await catalog()).some((e) => e.package_id === id);
      return error(
        ctx,
        known ? 'E_DELISTED' : 'E_NOT_FOUND',
        known ? `${id} ${version} is not listed (delisted or never published)` : `No app ${id} in this store`,
      );
    }
    const file = await store.packageFile(id, version);
    const stat = file ? await fs.stat(file).catch(() => undefined) : undefined;
    if (!file || !stat) return error(ctx, 'E_DELISTED', `${id} ${version} has been removed from the store`);
    const etag = `"${entry.sha256}"`;
    ctx.set('Accept-Ranges', 'bytes');
    ctx.set('ETag', etag);
    ctx.type = 'application/vnd.isogate.package';
    ctx.attachment(`${id}-${version}.igp`);
    const range = parseRange(ctx.get('Range'), stat.size);
    const ifRange = ctx.get('If-Range');
    if (range === 'unsatisfiable') {
      ctx.set('Content-Range', `bytes */${stat.size}`);
      return error(ctx, 'E_RANGE', `The range ${ctx.get('Range')} is outside the package's ${stat.size} bytes`);
    }
    if (range && (!ifRange || ifRange === etag)) {
      ctx.status = 206;
      ctx.set('Content-Range', `bytes ${range.start}-${range.end}/${stat.size}`);
      ctx.length = range.end - range.start + 1;
      ctx.body = createReadStream(file, { start: range.start, end: range.end });
      return;
    }
    ctx.length = stat.size;
    ctx.body = createReadStream(file);
  });

  app.use(async (ctx, next) => {
    try {
      await next();
      if (ctx.status === 404 && !ctx.body) error(ctx, 'E_NOT_FOUND', `Nothing at ${ctx.path}`);
    } catch (caught) {
      // Never a stack trace to a client: the code and a sentence.
      if (isIsogateError(caught)) error(ctx, caught.code, caught.message);
      else error(ctx, 'E_INTERNAL', 'The store failed to answer');
    }
  });
  app.use(router.routes()).use(router.allowedMethods());
  // A client that stops reading a download (a gateway cancelling, a Range probe) is routine.
  app.on('error', (error: NodeJS.ErrnoException) => {
    if (!['ERR_STREAM_PREMATURE_CLOSE', 'ECONNRESET', 'EPIPE'].includes(error.code ?? '')) process.stderr.write(`store: ${error.message}\n`);
  });
  return app;
}

/** A single `bytes=` range; multiple ranges are answered with the whole file, as RFC 9110 allows. */
function parseRange(header: string, size: number): { start: number; end: number } | 'unsatisfiable' | undefined {
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match || (match[1] === '' && match[2] === '')) return undefined;
  let start: number;
  let end: number;
  if (match[1] === '') {
    const suffix = Number(match[2]);
    if (suffix === 0) return 'unsatisfiable';
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(match[1]);
    end = match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1);
  }
  if (start >= size || start > end) return 'unsatisfiable';
  return { start, end };
}

export interface ServingStore {
  url: string;
  store: StoreData;
  close(): Promise<void>;
}

export async function serveStore(options: { dir: string; port?: number; host?: string }): Promise<ServingStore> {
  const store = await StoreData.open(options.dir);
  const host = options.host ?? '127.0.0.1';
  const server: Server = await new Promise((resolve, reject) => {
    const listening = createStoreServer(store).listen(options.port ?? 0, host, () => resolve(listening));
    listening.once('error', reject);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    store,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
