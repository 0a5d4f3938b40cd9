/**
 * What every page is built from: the error line that says what to do, polling, the table that
 * sorts and filters, and the file helpers (downloads the browser saves, uploads
 * read as base64).
 */
import { type ComponentChild, h } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { CallError } from './api.js';
import { currentLang, type Key, t } from './i18n.js';

/** What the admin can do about a refusal, by its code; the gateway's own sentence is shown beside it. */
const ADVICE: Readonly<Record<string, Key>> = {
  E_AUTH: 'adviceAuth',
  E_LOCKED: 'adviceLocked',
  E_SESSION: 'adviceSession',
  E_SESSION_ACTIVE: 'adviceSessionActive',
  E_CSRF: 'adviceReload',
  E_FORBIDDEN: 'adviceForbidden',
  E_CREDENTIALS_RULE: 'adviceCredentialsRule',
  E_CREDENTIALS_EXPIRED: 'adviceCredentialsExpired',
  E_PASSWORD_CHANGE: 'adviceCredentialsExpired',
  E_BAD_REQUEST: 'adviceBadRequest',
  E_CONFIG: 'adviceConfig',
  E_CONFIG_INVALID: 'adviceConfig',
  E_CERT_FILE: 'adviceCertFile',
  E_CERT_KEY_MISMATCH: 'adviceCertKey',
  E_CERTIFICATE: 'adviceCertFile',
  E_IP_BLANK: 'adviceIp',
  E_IP_FORMAT: 'adviceIp',
  E_IP_LEADING_ZERO: 'adviceIp',
  E_IP_BROADCAST: 'adviceIp',
  E_RULE_LIST_REMOVED: 'adviceRuleList',
  E_ROUTE: 'adviceRoute',
  E_ROUTE_DIRECTION: 'adviceRoute',
  E_ROUTE_DUPLICATE: 'adviceRouteDuplicate',
  E_NOT_INSTALLED: 'adviceReload',
  E_CONFLICT: 'adviceConflict',
  E_BUSY: 'adviceBusy',
  E_DOCUMENT_LIMIT: 'adviceTooLarge',
  E_STORE: 'adviceStore',
  E_STORE_TIMEOUT: 'adviceStore',
  E_DOWNLOAD: 'adviceStore',
};

/** The gateway's code and sentence, then what to do about it. */
export function describeError(error: unknown): { text: string; advice: string } {
  if (!(error instanceof CallError)) return { text: String(error), advice: '' };
  const { code, message } = error.error;
  // A route this gateway's version does not have yet (the pages may be newer than the API).
  const missing = code === 'E_NOT_FOUND' && message.startsWith('No such resource');
  const key = missing ? 'adviceMissingRoute' : (ADVICE[code] ?? (code.startsWith('E_RULE_') ? 'adviceRules' : 'adviceGeneric'));
  return { text: `${code}: ${message}`, advice: t(key) };
}

/** A document the schema refuses, before it is sent: the heading's count and the first 30 paths with what they break. */
export function SchemaProblems({ heading, problems }: { heading: string; problems: readonly string[] }): ComponentChild {
  if (problems.length === 0) return null;
  return h(
    'div',
    { class: 'error', role: 'alert' },
    h('p', null, `${heading} (${problems.length})`),
    h('p', { class: 'advice' }, t('adviceConfig')),
    h(
      'ul',
      null,
      problems.slice(0, 30).map((problem) => h('li', null, problem)),
    ),
  );
}

export function ErrorLine({ error }: { error: unknown }): ComponentChild {
  if (!error) return null;
  const { text, advice } = describeError(error);
  const details = error instanceof CallError ? (error.error.details?.errors as unknown[] | undefined) : undefined;
  return h(
    'div',
    { class: 'error', role: 'alert' },
    h('p', null, text),
    advice ? h('p', { class: 'advice' }, advice) : null,
    Array.isArray(details) && details.length > 0
      ? h(
          'ul',
          null,
          details.slice(0, 20).map((detail) => h('li', null, typeof detail === 'string' ? detail : JSON.stringify(detail))),
        )
      : null,
  );
}

/** A success said in words, announced to screen readers. */
export function Notice({ text }: { text: string | undefined }): ComponentChild {
  return text ? h('p', { class: 'notice', role: 'status' }, text) : null;
}

/** Calls `load` now and every `ms` (as a background request: it does not keep the session alive). */
export function usePolling<T>(load: (background: boolean) => Promise<T>, ms: number, deps: unknown[] = []): [T | undefined, unknown, () => void] {
  const [value, setValue] = useState<T | undefined>(undefined);
  const [error, setError] = useState<unknown>(undefined);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    const run = (background: boolean): void =>
      void load(background).then(
        (next) => {
          if (!live) return;
          setValue(next);
          setError(undefined);
        },
        (failure: unknown) => {
          if (live) setError(failure);
        },
      );
    run(false);
    const timer = ms > 0 ? setInterval(() => run(true), ms) : undefined;
    return () => {
      live = false;
      if (timer) clearInterval(timer);
    };
  }, [tick, ...deps]);
  return [value, error, () => setTick((n) => n + 1)];
}

/** Runs one change at a time and keeps its failure or its success's words for the page to show. */
export function useAction(after?: () => void): {
  run: (work: () => Promise<string | undefined | unknown>) => Promise<void>;
  busy: boolean;
  error: unknown;
  done: string | undefined;
} {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(undefined);
  const [done, setDone] = useState<string | undefined>(undefined);
  const run = async (work: () => Promise<unknown>): Promise<void> => {
    setBusy(true);
    setError(undefined);
    setDone(undefined);
    try {
      const said = await work();
      if (typeof said === 'string') setDone(said);
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
      after?.();
    }
  };
  return { run, busy, error, done };
}

export interface Column<R> {
  label: Key;
  value: (row: R) => string | number;
  cell?: (row: R) => ComponentChild | string;
  /** Actions: not sorted on, not searched. */
  inert?: boolean;
}

/** A table whose columns sort on a click and whose rows a text filter narrows (unless the page filters on the server). */
export function Table<R>({
  rows,
  columns,
  name,
  filterable = true,
  rowClass,
}: {
  rows: R[];
  columns: Column<R>[];
  name: string;
  filterable?: boolean;
  rowClass?: (row: R) => string;
}): ComponentChild {
  const [sort, setSort] = useState<{ index: number; desc: boolean } | undefined>(undefined);
  const [filter, setFilter] = useState('');
  const needle = filterable ? filter.toLowerCase() : '';
  let shown = needle ? rows.filter((row) => columns.some((column) => !column.inert && String(column.value(row)).toLowerCase().includes(needle))) : rows;
  if (sort) {
    const column = columns[sort.index]!;
    shown = [...shown].sort((a, b) => {
      const [x, y] = [column.value(a), column.value(b)];
      const order = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y));
      return sort.desc ? -order : order;
    });
  }
  return h(
    'div',
    { class: 'table' },
    filterable
      ? h('input', {
          class: 'filter',
          type: 'search',
          placeholder: t('filter'),
          'aria-label': `${t('filter')} ${name}`,
          value: filter,
          onInput: (event: Event) => setFilter((event.target as HTMLInputElement).value),
        })
      : null,
    h(
      'table',
      { 'aria-label': name },
      h(
        'thead',
        null,
        h(
          'tr',
          null,
          columns.map((column, index) =>
            column.inert
              ? h('th', { class: 'inert' }, t(column.label))
              : h(
                  'th',
                  { 'aria-sort': sort?.index === index ? (sort.desc ? 'descending' : 'ascending') : 'none' },
                  h(
                    'button',
                    { class: 'sort', type: 'button', onClick: () => setSort({ index, desc: sort?.index === index ? !sort.desc : false }) },
                    t(column.label),
                    sort?.index === index ? (sort.desc ? ' ▼' : ' ▲') : '',
                  ),
                ),
          ),
        ),
      ),
      h(
        'tbody',
        null,
        shown.length === 0
          ? h('tr', null, h('td', { colSpan: columns.length }, t(needle ? 'noMatch' : 'none')))
          : shown.map((row) =>
              h(
                'tr',
                rowClass ? { class: rowClass(row) } : null,
                columns.map((column) => h('td', null, column.cell ? column.cell(row) : String(column.value(row)))),
              ),
            ),
      ),
    ),
  );
}

/** Seconds as days, hours, minutes and seconds, largest first. */
export function duration(seconds: number): string {
  const whole = Math.max(0, Math.floor(seconds));
  const parts: [number, Key][] = [
    [Math.floor(whole / 86_400), 'daysShort'],
    [Math.floor((whole % 86_400) / 3600), 'hoursShort'],
    [Math.floor((whole % 3600) / 60), 'minutesShort'],
    [whole % 60, 'secondsShort'],
  ];
  const first = parts.findIndex(([count]) => count > 0);
  return parts
    .slice(first < 0 ? 3 : first)
    .map(([count, unit]) => `${count} ${t(unit)}`)
    .join(' ');
}

/** Hands a file the API sent to the browser to save. */
export function saveBlob(blob: Blob, fileName: string): void {
  const url = URL.createObjectURL(blob);
  const link = document.createElement('a');
  link.href = url;
  link.download = fileName;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** A chosen file's bytes as base64 (the API's certificate uploads take them so). */
export async function fileBase64(file: File): Promise<string> {
  const bytes = new Uint8Array(await file.arrayBuffer());
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

/** UTF-8 text from base64 and back (Network Protector's rule lists are stored so). */
export function base64ToText(value: string): string {
  const binary = atob(value.replace(/\s+/g, ''));
  return new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(binary, (char) => char.charCodeAt(0)));
}
export function textToBase64(text: string): string {
  const bytes = new TextEncoder().encode(text);
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

/** A time the API gives (ISO or POSIX seconds) in the reader's own local form. */
export function localTime(value: string | number | null | undefined): string {
  if (value === null || value === undefined || value === '') return '—';
  const date = typeof value === 'number' ? new Date(value * 1000) : new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString(currentLang() === 'ru' ? 'ru-RU' : 'en-GB');
}
