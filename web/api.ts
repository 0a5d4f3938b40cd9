/** The REST API as the pages call it: the session cookie rides along, the CSRF token on every change. */
export interface ApiError {
  code: string;
  message: string;
  details?: Record<string, unknown>;
}
export interface SessionView {
  role: 'admin' | 'user';
  name: string;
  csrfToken: string;
  mustChange: boolean;
  idleMinutes: number;
  warnings?: { code: string; days: number; message: string }[];
}

let csrf = '';
let onSessionLost: () => void = () => undefined;
export const setCsrf = (token: string): void => {
  csrf = token;
};
export const whenSessionLost = (handler: () => void): void => {
  onSessionLost = handler;
};

export class CallError extends Error {
  constructor(readonly error: ApiError) {
    super(`${error.code}: ${error.message}`);
  }
}

function headersFor(method: string, accept: string, options: { background?: boolean; headers?: Record<string, string> }): Record<string, string> {
  const headers: Record<string, string> = { accept, ...options.headers };
  if (method !== 'GET' && csrf) headers['x-csrf-token'] = csrf;
  if (options.background) headers['x-isogate-background'] = '1';
  return headers;
}

/** A refusal's `{code, message, details}`, or a stand-in naming the HTTP status when the body is not one. */
async function refusal(response: Response): Promise<CallError> {
  const value = (await response.json().catch(() => null)) as ApiError | null;
  const error = value && typeof value.code === 'string' ? value : { code: 'E_HTTP', message: `${response.status} ${response.statusText}` };
  if (error.code === 'E_SESSION') onSessionLost();
  return new CallError(error);
}

export async function call<T>(method: string, path: string, body?: unknown, options: { background?: boolean } = {}): Promise<T> {
  const headers = headersFor(method, 'application/json', options);
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(`/api/v1${path}`, {
    method,
    headers,
    credentials: 'same-origin',
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  if (!response.ok) throw await refusal(response);
  return (await response.json().catch(() => null)) as T;
}

/** A file the API sends (backup, integrity report): its bytes and the name its Content-Disposition gives. */
export async function download(method: string, path: string, options: { json?: unknown; fallbackName: string }): Promise<{ blob: Blob; fileName: string }> {
  const headers = headersFor(method, '*/*', {});
  if (options.json !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(`/api/v1${path}`, {
    method,
    headers,
    credentials: 'same-origin',
    ...(options.json !== undefined ? { body: JSON.stringify(options.json) } : {}),
  });
  if (!response.ok) throw await refusal(response);
  const disposition = response.headers.get('content-disposition') ?? '';
  const named = /filename="?([^";]+)"?/.exec(disposition)?.[1];
  return { blob: await response.blob(), fileName: named ?? options.fallbackName };
}

/** A file sent as the request's whole body (a backup to restore), with headers of its own. */
export async function upload<T>(path: string, file: Blob, headers: Record<string, string>): Promise<T> {
  const response = await fetch(`/api/v1${path}`, {
    method: 'POST',
    headers: { ...headersFor('POST', 'application/json', { headers }), 'content-type': 'application/octet-stream' },
    credentials: 'same-origin',
    body: file,
  });
  if (!response.ok) throw await refusal(response);
  return (await response.json().catch(() => null)) as T;
}

/** A route that streams progress (install, integrity check): one callback a progress line, the result at the end. */
export async function callStreaming<T>(method: string, path: string, body: unknown, progress: (update: unknown) => void): Promise<T> {
  const response = await fetch(`/api/v1${path}`, {
    method,
    headers: { accept: 'application/x-ndjson', 'content-type': 'application/json', 'x-csrf-token': csrf },
    body: JSON.stringify(body),
  });
  if (!response.ok || !response.body) throw await refusal(response);
  // A route that does not stream answers with its result alone.
  if (!(response.headers.get('content-type') ?? '').includes('ndjson')) return (await response.json()) as T;
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let pending = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    pending += value;
    let newline = pending.indexOf('\n');
    while (newline >= 0) {
      const line = JSON.parse(pending.slice(0, newline)) as { progress?: unknown; result?: T; error?: ApiError };
      pending = pending.slice(newline + 1);
      if (line.error) throw new CallError(line.error);
      if ('result' in line) return line.result as T;
      progress(line.progress);
      newline = pending.indexOf('\n');
    }
  }
  throw new CallError({ code: 'E_HTTP', message: 'The answer ended early' });
}

/**
 * A GET that streams ndjson until the gateway ends it or `signal` aborts (the live log tail):
 * each progress line to `progress`, the final result returned; an abort returns undefined.
 */
export async function follow<T>(path: string, progress: (update: unknown) => void, signal: AbortSignal): Promise<T | undefined> {
  let response: Response;
  try {
    response = await fetch(`/api/v1${path}`, { headers: headersFor('GET', 'application/x-ndjson', {}), credentials: 'same-origin', signal });
  } catch (failure) {
    if (signal.aborted) return undefined;
    throw failure;
  }
  if (!response.ok || !response.body) throw await refusal(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let pending = '';
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      pending += value;
      for (let newline = pending.indexOf('\n'); newline >= 0; newline = pending.indexOf('\n')) {
        const line = JSON.parse(pending.slice(0, newline)) as { progress?: unknown; result?: T; error?: ApiError };
        pending = pending.slice(newline + 1);
        if (line.error) throw new CallError(line.error);
        if ('result' in line) return line.result as T;
        progress(line.progress);
      }
    }
  } catch (failure) {
    if (signal.aborted) return undefined;
    throw failure;
  }
  if (signal.aborted) return undefined;
  throw new CallError({ code: 'E_HTTP', message: 'The answer ended early' });
}

/** A file download whose bytes are counted as they arrive (the log archive), for a progress bar. */
export async function downloadCounted(path: string, received: (bytes: number) => void, fallbackName: string): Promise<{ blob: Blob; fileName: string }> {
  const response = await fetch(`/api/v1${path}`, { headers: headersFor('GET', '*/*', {}), credentials: 'same-origin' });
  if (!response.ok || !response.body) throw await refusal(response);
  const named = /filename="?([^";]+)"?/.exec(response.headers.get('content-disposition') ?? '')?.[1];
  const reader = response.body.getReader();
  const chunks: Uint8Array<ArrayBuffer>[] = [];
  let bytes = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    // A fetch body's chunks are never shared memory.
    chunks.push(value as Uint8Array<ArrayBuffer>);
    bytes += value.length;
    received(bytes);
  }
  return { blob: new Blob(chunks, { type: response.headers.get('content-type') ?? 'application/octet-stream' }), fileName: named ?? fallbackName };
}
