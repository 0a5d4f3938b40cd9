/**
 * Events (the firewall log) and Audit (the system log), as the manual's "Monitoring ... audit
 * events": newest first, the last 1024, filters by date range, severity and subject applied on
 * the gateway, "Load more" (always there), Critical rows in red, refreshed every 30 s, and the
 * CSV download of exactly what the filters select.
 */
import { type ComponentChild, Fragment, h } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { type AuditLog, markCriticalSeen } from '../alarms.js';
import { call } from '../api.js';
import { t } from '../i18n.js';
import { ErrorLine, localTime, Table } from '../ui.js';

interface AuditRow {
  seq: number;
  time: string;
  severity: string;
  subject: string;
  name: string;
  text: string;
}
interface AuditFilter {
  from?: string;
  to?: string;
  severity: string[];
  subject: string[];
}

const SEVERITIES = ['Informational', 'Warning', 'Critical'] as const;
/** The manual's audit tables hold the last 1024 events; "Load more" asks for the next as many. */
const PAGE = 1024;
const REFRESH_MS = 30_000;
const NO_FILTER: AuditFilter = { severity: [], subject: [] };

function filterQuery(filter: AuditFilter): URLSearchParams {
  const search = new URLSearchParams();
  if (filter.from) search.set('from', filter.from);
  if (filter.to) search.set('to', filter.to);
  if (filter.severity.length) search.set('severity', filter.severity.join(','));
  for (const subject of filter.subject) search.append('subject', subject);
  return search;
}

/** A `datetime-local` value (the reader's local time) as the instant the API compares. */
const instant = (local: string): string | undefined => (local ? new Date(local).toISOString() : undefined);

export function AuditPage({ log }: { log: AuditLog }): ComponentChild {
  const [rows, setRows] = useState<AuditRow[]>([]);
  const [loaded, setLoaded] = useState(false);
  const [error, setError] = useState<unknown>(undefined);
  const [filter, setFilter] = useState<AuditFilter>(NO_FILTER);
  const [subjects, setSubjects] = useState<string[]>(['Administrator', 'User']);
  const form = useRef<HTMLFormElement>(null);

  const fetchPage = async (before: number | undefined, background: boolean): Promise<AuditRow[]> => {
    const search = filterQuery(filter);
    search.set('limit', String(PAGE));
    if (before !== undefined) search.set('before', String(before));
    const page = await call<AuditRow[]>('GET', `/audit/${log}?${search}`, undefined, { background });
    setSubjects((known) => [...new Set([...known, ...page.map((row) => row.subject)])].sort());
    return page;
  };
  const settle = (work: Promise<void>): void =>
    void work.then(
      () => setError(undefined),
      (failure: unknown) => setError(failure),
    );

  useEffect(() => {
    let live = true;
    setLoaded(false);
    settle(
      fetchPage(undefined, false).then((page) => {
        if (!live) return;
        setRows(page);
        setLoaded(true);
      }),
    );
    // A refresh adds what is newer than the top row, so pages loaded with "Load more" stay.
    const timer = setInterval(
      () =>
        settle(
          fetchPage(undefined, true).then((page) => {
            if (live) setRows((shown) => [...page.filter((row) => row.seq > (shown[0]?.seq ?? 0)), ...shown]);
          }),
        ),
      REFRESH_MS,
    );
    return () => {
      live = false;
      clearInterval(timer);
    };
  }, [log, filter]);

  useEffect(() => {
    const critical = rows.find((row) => row.severity === 'Critical');
    if (critical) markCriticalSeen(log, critical.seq);
  }, [rows]);

  const loadMore = (): void => {
    const oldest = rows[rows.length - 1]?.seq;
    if (oldest === undefined || oldest <= 1) return;
    settle(fetchPage(oldest, false).then((page) => setRows((shown) => [...shown, ...page])));
  };
  const apply = (event: Event): void => {
    event.preventDefault();
    const data = new FormData(event.target as HTMLFormElement);
    const next: AuditFilter = {
      ...(instant(String(data.get('from') ?? '')) ? { from: instant(String(data.get('from')))! } : {}),
      ...(instant(String(data.get('to') ?? '')) ? { to: instant(String(data.get('to')))! } : {}),
      severity: data.getAll('severity').map(String),
      subject: data.getAll('subject').map(String),
    };
    if (next.from && next.to && next.from > next.to) setError(t('rangeReversed'));
    else setFilter(next);
  };
  const reset = (): void => {
    form.current?.reset();
    setFilter(NO_FILTER);
  };
  const exportQuery = filterQuery(filter).toString();
  const name = t(log === 'firewall' ? 'events' : 'audit');
  return h(
    Fragment,
    null,
    h(
      'form',
      { class: 'inline filters', ref: form, onSubmit: apply, 'aria-label': t('filters') },
      h('label', null, t('from'), h('input', { type: 'datetime-local', name: 'from', step: 1 })),
      h('label', null, t('to'), h('input', { type: 'datetime-local', name: 'to', step: 1 })),
      h(
        'fieldset',
        null,
        h('legend', null, t('severity')),
        SEVERITIES.map((severity) => h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'severity', value: severity }), t(severity))),
      ),
      h(
        'label',
        null,
        t('subject'),
        h(
          'select',
          { name: 'subject', multiple: true, size: 3, 'aria-label': t('subject') },
          subjects.map((subject) => h('option', { value: subject }, subject)),
        ),
      ),
      h('button', { type: 'submit' }, t('apply')),
      h('button', { type: 'button', onClick: reset }, t('resetAll')),
      h('a', { class: 'button', href: `/api/v1/audit/${log}/export${exportQuery ? `?${exportQuery}` : ''}`, download: '' }, t('exportCsv')),
    ),
    h(ErrorLine, { error }),
    loaded ? h('p', { class: 'hint', role: 'status' }, `${t('shown')}: ${rows.length}`) : null,
    h(Table<AuditRow>, {
      name,
      rows,
      filterable: false,
      rowClass: (row) => (row.severity === 'Critical' ? 'critical' : ''),
      columns: [
        { label: 'time', value: (row) => row.time, cell: (row) => localTime(row.time) },
        { label: 'eventName', value: (row) => row.name },
        { label: 'eventText', value: (row) => row.text },
        { label: 'subject', value: (row) => row.subject },
        { label: 'severity', value: (row) => row.severity, cell: (row) => t(row.severity as (typeof SEVERITIES)[number]) },
      ],
    }),
    h('button', { onClick: loadMore }, t('loadMore')),
  );
}
