/**
 * The admin web interface: a login (the client certificate rides on the TLS connection; name and
 * password here; a forced change on first login), the manual's menu, and pages over the REST API.
 * Pages without an API yet say so and show nothing invented. Hash routing: the server serves `/` only.
 */
import { type ComponentChild, Fragment, h, render } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import './style.css';
import { CallError, call, callStreaming, type SessionView, setCsrf, whenSessionLost } from './api.js';
import { currentLang, type Key, setLang, t } from './i18n.js';

type Role = 'admin' | 'user';
interface PageDef {
  id: string;
  label: Key;
  roles: Role[];
  view: (props: { session: SessionView }) => ComponentChild;
}

const message = (error: unknown): string => (error instanceof CallError ? `${error.error.code}: ${error.error.message}` : String(error));

function ErrorLine({ error }: { error: unknown }): ComponentChild {
  return error ? h('p', { class: 'error', role: 'alert' }, message(error)) : null;
}

function Login({ onSession }: { onSession: (session: SessionView) => void }): ComponentChild {
  const [error, setError] = useState<unknown>(undefined);
  const submit = async (event: Event): Promise<void> => {
    event.preventDefault();
    const form = new FormData(event.target as HTMLFormElement);
    try {
      onSession(await call<SessionView>('POST', '/session', { username: form.get('username'), password: form.get('password') }));
    } catch (failure) {
      setError(failure);
    }
  };
  return h(
    'form',
    { class: 'card', onSubmit: submit, 'aria-label': t('login') },
    h('h1', null, t('title')),
    h('p', { class: 'hint' }, t('loginHint')),
    h('label', null, t('username'), h('input', { name: 'username', autocomplete: 'username', required: true })),
    h('label', null, t('password'), h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true })),
    h('button', { type: 'submit' }, t('login')),
    h(ErrorLine, { error }),
  );
}

function ChangePassword({ session, onChanged }: { session: SessionView; onChanged: () => void }): ComponentChild {
  const [error, setError] = useState<unknown>(undefined);
  const submit = async (event: Event): Promise<void> => {
    event.preventDefault();
    const form = new FormData(event.target as HTMLFormElement);
    if (form.get('newPassword') !== form.get('repeat')) return setError(t('mismatch'));
    try {
      await call('PUT', `/users/${session.role}/credentials`, { oldPassword: form.get('oldPassword'), newPassword: form.get('newPassword') });
      onChanged();
    } catch (failure) {
      setError(failure);
    }
  };
  return h(
    'form',
    { class: 'card', onSubmit: submit, 'aria-label': t('change') },
    h('p', null, t('mustChange')),
    h('label', null, t('oldPassword'), h('input', { name: 'oldPassword', type: 'password', autocomplete: 'current-password', required: true })),
    h('label', null, t('newPassword'), h('input', { name: 'newPassword', type: 'password', autocomplete: 'new-password', required: true })),
    h('label', null, t('repeatPassword'), h('input', { name: 'repeat', type: 'password', autocomplete: 'new-password', required: true })),
    h('button', { type: 'submit' }, t('change')),
    h(ErrorLine, { error }),
  );
}

/** Calls `load` now and every `ms` (as a background request: it does not keep the session alive). */
function usePolling<T>(load: (background: boolean) => Promise<T>, ms: number, deps: unknown[] = []): [T | undefined, unknown, () => void] {
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

interface Column<R> {
  label: Key;
  value: (row: R) => string | number;
  cell?: (row: R) => ComponentChild | string;
}

/** A table whose columns sort on a click and whose rows a text filter narrows. */
function Table<R>({ rows, columns, name }: { rows: R[]; columns: Column<R>[]; name: string }): ComponentChild {
  const [sort, setSort] = useState<{ index: number; desc: boolean } | undefined>(undefined);
  const [filter, setFilter] = useState('');
  const needle = filter.toLowerCase();
  let shown = needle ? rows.filter((row) => columns.some((column) => String(column.value(row)).toLowerCase().includes(needle))) : rows;
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
    h('input', {
      class: 'filter',
      placeholder: t('filter'),
      'aria-label': `${t('filter')} ${name}`,
      value: filter,
      onInput: (event: Event) => setFilter((event.target as HTMLInputElement).value),
    }),
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
            h(
              'th',
              {
                onClick: () => setSort({ index, desc: sort?.index === index ? !sort.desc : false }),
                'aria-sort': sort?.index === index ? (sort.desc ? 'descending' : 'ascending') : 'none',
              },
              t(column.label),
            ),
          ),
        ),
      ),
      h(
        'tbody',
        null,
        shown.length === 0
          ? h('tr', null, h('td', { colSpan: columns.length }, t('none')))
          : shown.map((row) =>
              h(
                'tr',
                null,
                columns.map((column) => h('td', null, column.cell ? column.cell(row) : String(column.value(row)))),
              ),
            ),
      ),
    ),
  );
}

interface Status {
  version: string;
  mode: string;
  uptimeSeconds: number;
  developerMode: boolean;
  emergency: unknown;
  apps: { installed: number; limit: number };
  routes: { active: number; inactive: number; error: number };
}
interface RouteRow {
  id: string;
  source: string;
  destination: string;
  active: boolean;
  status: string;
  counters: { delivered: number; dropped: number; failed: number };
}

function Chart({ points }: { points: [number[], number[]] }): ComponentChild {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  useEffect(() => {
    if (!box.current) return;
    plot.current = new uPlot({ width: 480, height: 160, series: [{}, { label: t('delivered'), stroke: '#2b6cb0' }] }, points, box.current);
    return () => plot.current?.destroy();
  }, []);
  useEffect(() => plot.current?.setData(points), [points]);
  return h('div', { ref: box, class: 'chart', 'aria-label': t('throughput') });
}

function StatusPage({ session }: { session: SessionView }): ComponentChild {
  const [status, error] = usePolling((background) => call<Status>('GET', '/status', undefined, { background }), 5000);
  const history = useRef<[number[], number[]]>([[], []]);
  const last = useRef<number | undefined>(undefined);
  const [routes] = usePolling(async (background) => {
    if (session.role !== 'admin') return [];
    const rows = await call<RouteRow[]>('GET', '/routes', undefined, { background });
    const total = rows.reduce((sum, row) => sum + row.counters.delivered, 0);
    if (last.current !== undefined) {
      const [xs, ys] = history.current;
      history.current = [[...xs, Date.now() / 1000].slice(-60), [...ys, Math.max(0, total - last.current)].slice(-60)];
    }
    last.current = total;
    return rows;
  }, 5000);
  if (!status) return h(ErrorLine, { error });
  return h(
    Fragment,
    null,
    h(
      'dl',
      { class: 'facts', 'aria-label': t('device') },
      [
        [t('version'), status.version],
        [t('mode'), status.mode],
        [t('uptime'), status.uptimeSeconds],
        [t('installed'), `${status.apps.installed} / ${status.apps.limit}`],
        [t('routesActive'), status.routes.active],
        [t('routesInactive'), status.routes.inactive],
        [t('routesError'), status.routes.error],
      ].map(([term, value]) => h(Fragment, null, h('dt', null, term), h('dd', null, String(value)))),
    ),
    session.role === 'admin' && routes
      ? h(
          Fragment,
          null,
          h('h2', null, t('throughput')),
          h(Chart, { points: history.current }),
          h(Table<RouteRow>, { name: t('routing'), rows: routes, columns: routeColumns() }),
        )
      : null,
  );
}

function routeColumns(): Column<RouteRow>[] {
  return [
    { label: 'source', value: (row) => row.source },
    { label: 'destination', value: (row) => row.destination },
    { label: 'state', value: (row) => row.status },
    { label: 'delivered', value: (row) => row.counters.delivered },
    { label: 'dropped', value: (row) => row.counters.dropped },
    { label: 'failed', value: (row) => row.counters.failed },
  ];
}

interface AppRow {
  package_id: string;
  name: string;
  version: string;
  status: string;
  publisher: string;
}

function AppsPage({ session }: { session: SessionView }): ComponentChild {
  const [apps, error, reload] = usePolling((background) => call<AppRow[]>('GET', '/apps', undefined, { background }), 5000);
  const admin = session.role === 'admin';
  const [store] = usePolling(async () => (admin ? call<Record<string, unknown>[]>('GET', '/store/apps') : []), 0);
  const [progress, setProgress] = useState<string>('');
  const [failure, setFailure] = useState<unknown>(undefined);
  const [editing, setEditing] = useState<string | undefined>(undefined);
  const act = async (work: () => Promise<unknown>): Promise<void> => {
    setFailure(undefined);
    try {
      await work();
    } catch (caught) {
      setFailure(caught);
    }
    reload();
  };
  const install = (id: string): Promise<void> =>
    act(async () => {
      setProgress(`${id}: …`);
      await callStreaming('POST', '/apps', { id }, (update) => setProgress(`${id}: ${JSON.stringify(update)}`));
      setProgress(`${id}: ${t('installed')}`);
    });
  const columns: Column<AppRow>[] = [
    { label: 'name', value: (row) => row.name },
    { label: 'version', value: (row) => row.version },
    { label: 'publisher', value: (row) => row.publisher },
    { label: 'state', value: (row) => row.status },
  ];
  if (admin) {
    columns.push({
      label: 'configuration',
      value: () => '',
      cell: (row) =>
        h(
          'span',
          { class: 'actions' },
          h('button', { onClick: () => act(() => call('POST', `/apps/${row.package_id}/start`)) }, t('start')),
          h('button', { onClick: () => act(() => call('POST', `/apps/${row.package_id}/stop`)) }, t('stop')),
          h('button', { onClick: () => setEditing(row.package_id) }, t('configuration')),
          h('button', { onClick: () => act(() => call('DELETE', `/apps/${row.package_id}`)) }, t('uninstall')),
        ),
    });
  }
  return h(
    Fragment,
    null,
    h(ErrorLine, { error: failure ?? error }),
    h(Table<AppRow>, { name: t('apps'), rows: apps ?? [], columns }),
    editing ? h(ConfigEditor, { id: editing, onClose: () => setEditing(undefined) }) : null,
    admin
      ? h(
          'section',
          { 'aria-label': t('store') },
          h('h2', null, t('store')),
          progress ? h('p', { class: 'progress', role: 'status' }, `${t('progress')}: ${progress}`) : null,
          h(
            'ul',
            null,
            (store ?? []).map((entry) => {
              const id = String(entry.package_id ?? entry.id);
              return h(
                'li',
                null,
                `${String(entry.name ?? id)} ${String(entry.version ?? '')} `,
                h('button', { onClick: () => install(id), 'aria-label': `${t('install')} ${id}` }, t('install')),
              );
            }),
          ),
        )
      : null,
  );
}

function ConfigEditor({ id, onClose }: { id: string; onClose: () => void }): ComponentChild {
  const [text, setText] = useState('');
  const [note, setNote] = useState<unknown>(undefined);
  useEffect(() => {
    call<unknown>('GET', `/apps/${id}/config`).then((value) => setText(JSON.stringify((value as { value?: unknown })?.value ?? value, null, 2)), setNote);
  }, [id]);
  const save = async (): Promise<void> => {
    try {
      await call('PUT', `/apps/${id}/config`, { value: JSON.parse(text) as unknown });
      setNote(t('saved'));
    } catch (failure) {
      setNote(failure);
    }
  };
  return h(
    'section',
    { class: 'card', 'aria-label': `${t('configuration')} ${id}` },
    h('h2', null, `${t('configuration')}: ${id}`),
    h('textarea', { 'aria-label': t('configuration'), rows: 12, value: text, onInput: (event: Event) => setText((event.target as HTMLTextAreaElement).value) }),
    h('button', { onClick: save }, t('save')),
    h('button', { onClick: onClose }, '×'),
    typeof note === 'string' ? h('p', { role: 'status' }, note) : h(ErrorLine, { error: note }),
  );
}

function RoutingPage(): ComponentChild {
  const [routes, error, reload] = usePolling((background) => call<RouteRow[]>('GET', '/routes', undefined, { background }), 5000);
  const [failure, setFailure] = useState<unknown>(undefined);
  const act = async (work: () => Promise<unknown>): Promise<void> => {
    setFailure(undefined);
    try {
      await work();
    } catch (caught) {
      setFailure(caught);
    }
    reload();
  };
  const add = (event: Event): void => {
    event.preventDefault();
    const form = new FormData(event.target as HTMLFormElement);
    void act(() => call('POST', '/routes', { source: form.get('source'), destination: form.get('destination') }));
  };
  const columns = [
    ...routeColumns(),
    {
      label: 'state' as Key,
      value: () => '',
      cell: (row: RouteRow) =>
        h(
          'span',
          { class: 'actions' },
          h('button', { onClick: () => act(() => call('PATCH', `/routes/${row.id}`, { active: !row.active })) }, row.active ? t('disable') : t('enable')),
          h('button', { onClick: () => act(() => call('DELETE', `/routes/${row.id}`)) }, t('remove')),
        ),
    },
  ];
  return h(
    Fragment,
    null,
    h(
      'form',
      { class: 'inline', onSubmit: add, 'aria-label': t('add') },
      h('label', null, t('source'), h('input', { name: 'source', placeholder: 'APP:ENDPOINT', required: true })),
      h('label', null, t('destination'), h('input', { name: 'destination', placeholder: 'APP:ENDPOINT', required: true })),
      h('button', { type: 'submit' }, t('add')),
    ),
    h(ErrorLine, { error: failure ?? error }),
    h(Table<RouteRow>, { name: t('routing'), rows: routes ?? [], columns }),
  );
}

interface AuditRow {
  seq: number;
  time: string;
  severity: string;
  subject: string;
  name: string;
  text: string;
}

function AuditPage({ log }: { log: 'firewall' | 'system' }): ComponentChild {
  const [rows, setRows] = useState<AuditRow[]>([]);
  const [more, setMore] = useState(true);
  const [error, setError] = useState<unknown>(undefined);
  const [severity, setSeverity] = useState('');
  const query = (before?: number): string => {
    const search = new URLSearchParams({ limit: '100' });
    if (severity) search.set('severity', severity);
    if (before !== undefined) search.set('before', String(before));
    return search.toString();
  };
  const load = async (before?: number, background = false): Promise<void> => {
    try {
      const answer = await call<AuditRow[] | { records: AuditRow[] }>('GET', `/audit/${log}?${query(before)}`, undefined, { background });
      const page = Array.isArray(answer) ? answer : answer.records;
      setRows((shown) => (before === undefined ? page : [...shown, ...page]));
      setMore(page.length === 100);
    } catch (failure) {
      setError(failure);
    }
  };
  useEffect(() => {
    void load();
    const timer = setInterval(() => void load(undefined, true), 30_000);
    return () => clearInterval(timer);
  }, [log, severity]);
  const exportQuery = new URLSearchParams(severity ? { severity } : {}).toString();
  return h(
    Fragment,
    null,
    h(
      'div',
      { class: 'inline' },
      h(
        'select',
        { 'aria-label': t('severity'), value: severity, onChange: (event: Event) => setSeverity((event.target as HTMLSelectElement).value) },
        ['', 'Informational', 'Warning', 'Critical'].map((value) => h('option', { value }, value || '—')),
      ),
      h('a', { href: `/api/v1/audit/${log}/export${exportQuery ? `?${exportQuery}` : ''}`, download: '' }, t('exportCsv')),
    ),
    h(ErrorLine, { error }),
    h(Table<AuditRow>, {
      name: t(log === 'firewall' ? 'events' : 'audit'),
      rows,
      columns: [
        { label: 'time', value: (row) => row.time },
        { label: 'severity', value: (row) => row.severity },
        { label: 'subject', value: (row) => row.subject },
        { label: 'name', value: (row) => row.name },
        { label: 'message', value: (row) => row.text },
      ],
    }),
    more && rows.length > 0 ? h('button', { onClick: () => void load(rows[rows.length - 1]!.seq) }, t('loadMore')) : null,
  );
}

function UsersPage(): ComponentChild {
  const [users, error] = usePolling(() => call<unknown>('GET', '/users'), 0);
  return users ? h('pre', { class: 'card' }, JSON.stringify(users, null, 2)) : h(ErrorLine, { error });
}

const coming = (): ComponentChild => h('p', { class: 'coming' }, t('coming'));

const PAGES: PageDef[] = [
  { id: 'status', label: 'status', roles: ['admin', 'user'], view: StatusPage },
  { id: 'apps', label: 'apps', roles: ['admin', 'user'], view: AppsPage },
  { id: 'routing', label: 'routing', roles: ['admin'], view: RoutingPage },
  { id: 'certs', label: 'certs', roles: ['admin'], view: coming },
  { id: 'np', label: 'np', roles: ['admin'], view: coming },
  { id: 'events', label: 'events', roles: ['admin', 'user'], view: () => h(AuditPage, { log: 'firewall' }) },
  { id: 'audit', label: 'audit', roles: ['admin'], view: () => h(AuditPage, { log: 'system' }) },
  { id: 'diag', label: 'diag', roles: ['admin'], view: coming },
  { id: 'settings', label: 'settings', roles: ['admin'], view: coming },
  { id: 'users', label: 'users', roles: ['admin'], view: UsersPage },
];

const pageFromHash = (): string => location.hash.replace(/^#\/?/, '') || 'status';

function Banner(): ComponentChild {
  const [status] = usePolling((background) => call<Status>('GET', '/status', undefined, { background }), 15_000);
  if (!status) return null;
  return h(
    Fragment,
    null,
    status.developerMode ? h('p', { class: 'banner', role: 'alert' }, t('developerMode')) : null,
    status.emergency ? h('p', { class: 'banner', role: 'alert' }, t('emergencyMode')) : null,
  );
}

function Shell({ session, onLogout }: { session: SessionView; onLogout: () => void }): ComponentChild {
  const [page, setPage] = useState(pageFromHash());
  useEffect(() => {
    const changed = (): void => setPage(pageFromHash());
    addEventListener('hashchange', changed);
    return () => removeEventListener('hashchange', changed);
  }, []);
  const allowed = PAGES.filter((entry) => entry.roles.includes(session.role));
  const current = PAGES.find((entry) => entry.id === page) ?? PAGES[0]!;
  const permitted = current.roles.includes(session.role);
  const logout = async (): Promise<void> => {
    await call('DELETE', '/session').catch(() => undefined);
    onLogout();
  };
  return h(
    'div',
    { class: 'shell' },
    h(
      'nav',
      { 'aria-label': 'menu' },
      h('strong', null, 'isogate'),
      allowed.map((entry) => h('a', { href: `#/${entry.id}`, class: entry.id === current.id ? 'current' : '' }, t(entry.label))),
      h('span', { class: 'who' }, `${session.name} (${session.role})`),
      h('button', { onClick: logout }, t('logout')),
    ),
    h(
      'main',
      null,
      h(Banner, null),
      h('h1', null, t(current.label)),
      permitted ? h(current.view, { session }) : h('p', { class: 'error', role: 'alert' }, t('forbidden')),
    ),
  );
}

function App(): ComponentChild {
  const [session, setSession] = useState<SessionView | null | undefined>(undefined);
  const [lost, setLost] = useState(false);
  const [, setLangTick] = useState(0);
  const adopt = (next: SessionView | null): void => {
    setCsrf(next?.csrfToken ?? '');
    setSession(next);
  };
  useEffect(() => {
    whenSessionLost(() => {
      setLost(true);
      adopt(null);
    });
    call<SessionView>('GET', '/session').then(adopt, () => adopt(null));
  }, []);
  const switchLang = (): void => {
    setLang(currentLang() === 'en' ? 'ru' : 'en');
    setLangTick((n) => n + 1);
  };
  const body =
    session === undefined
      ? null
      : session === null
        ? h(
            Fragment,
            null,
            lost ? h('p', { class: 'error', role: 'alert' }, t('sessionEnded')) : null,
            h(Login, {
              onSession: (next) => {
                setLost(false);
                adopt(next);
              },
            }),
          )
        : session.mustChange
          ? h(ChangePassword, { session, onChanged: () => call<SessionView>('GET', '/session').then(adopt, () => adopt(null)) })
          : h(Shell, { session, onLogout: () => adopt(null) });
  return h(Fragment, null, h('button', { class: 'lang', onClick: switchLang }, t('language')), body);
}

document.documentElement.lang = currentLang();
render(h(App, null), document.getElementById('app')!);
