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
  warnings?: unknown;
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

export async function call<T>(method: string, path: string, body?: unknown, options: { background?: boolean } = {}): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && csrf) headers['x-csrf-token'] = csrf;
  if (options.background) headers['x-isogate-background'] = '1';
  const response = await fetch(`/api/v1${path}`, {
    method,
    headers,
    credentials: 'same-origin',
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const value = (await response.json().catch(() => null)) as unknown;
  if (!response.ok) {
    const error = (value ?? { code: 'E_HTTP', message: response.statusText }) as ApiError;
    if (error.code === 'E_SESSION') onSessionLost();
    throw new CallError(error);
  }
  return value as T;
}

/** A route that streams progress (install): one callback a progress line, the result at the end. */
export async function callStreaming<T>(method: string, path: string, body: unknown, progress: (update: unknown) => void): Promise<T> {
  const response = await fetch(`/api/v1${path}`, {
    method,
    headers: { accept: 'application/x-ndjson', 'content-type': 'application/json', 'x-csrf-token': csrf },
    body: JSON.stringify(body),
  });
  if (!response.ok || !response.body) throw new CallError((await response.json().catch(() => ({ code: 'E_HTTP', message: response.statusText }))) as ApiError);
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
