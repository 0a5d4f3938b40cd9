/**
 * The admin web interface: a login (the client certificate rides on the TLS connection; name and
 * password here; a forced change on first login), the manual's menu by role, and the pages over
 * the REST API (web/pages/). Hash routing: the server serves `/` only.
 */
import { type ComponentChild, Fragment, h, render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import 'uplot/dist/uPlot.min.css';
import './style.css';
import { type AuditLog, useCriticalMarks } from './alarms.js';
import { call, type SessionView, setCsrf, whenSessionLost } from './api.js';
import { currentLang, type Key, setLang, t } from './i18n.js';
import { AppsPage } from './pages/apps.js';
import { AuditPage } from './pages/audit.js';
import { CertsPage } from './pages/certs.js';
import { DiagPage } from './pages/diag.js';
import { ChangePassword, Login } from './pages/login.js';
import { NpPage } from './pages/np.js';
import { RoutingPage } from './pages/routing.js';
import { SettingsPage } from './pages/settings.js';
import { type Status, StatusPage } from './pages/status.js';
import { UsersPage } from './pages/users.js';
import { usePolling } from './ui.js';

type Role = 'admin' | 'user';
interface PageDef {
  id: string;
  label: Key;
  /** The manual's "Sections of the web interface available to the administrator and user". */
  roles: Role[];
  view: (props: { session: SessionView }) => ComponentChild;
  /** The audit log whose Critical events mark this entry of the menu. */
  alarm?: AuditLog;
}

const PAGES: PageDef[] = [
  { id: 'status', label: 'status', roles: ['admin', 'user'], view: StatusPage },
  { id: 'apps', label: 'apps', roles: ['admin', 'user'], view: AppsPage },
  { id: 'routing', label: 'routing', roles: ['admin'], view: RoutingPage },
  { id: 'certs', label: 'certs', roles: ['admin'], view: CertsPage },
  { id: 'np', label: 'np', roles: ['admin'], view: NpPage },
  { id: 'events', label: 'events', roles: ['admin', 'user'], view: () => h(AuditPage, { log: 'firewall' }), alarm: 'firewall' },
  { id: 'audit', label: 'audit', roles: ['admin'], view: () => h(AuditPage, { log: 'system' }), alarm: 'system' },
  { id: 'diag', label: 'diag', roles: ['admin'], view: DiagPage },
  { id: 'settings', label: 'settings', roles: ['admin'], view: SettingsPage },
  { id: 'users', label: 'users', roles: ['admin'], view: UsersPage },
];

const pageFromHash = (): string => location.hash.replace(/^#\/?/, '') || 'status';

function Banner({ session }: { session: SessionView }): ComponentChild {
  const [status] = usePolling((background) => call<Status>('GET', '/status', undefined, { background }), 15_000);
  return h(
    Fragment,
    null,
    (session.warnings ?? []).map((warning) => h('p', { class: 'banner', role: 'alert' }, warning.message)),
    status?.developerMode ? h('p', { class: 'banner', role: 'alert' }, t('developerMode')) : null,
    status?.emergency ? h('p', { class: 'banner', role: 'alert' }, `${t('emergencyMode')} ${status.emergency.reason}`) : null,
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
  const marks = useCriticalMarks(allowed.flatMap((entry) => (entry.alarm ? [entry.alarm] : [])));
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
      allowed.map((entry) =>
        h(
          'a',
          { href: `#/${entry.id}`, class: entry.id === current.id ? 'current' : '', 'aria-current': entry.id === current.id ? 'page' : undefined },
          t(entry.label),
          entry.alarm && marks[entry.alarm] ? h('span', { class: 'alarm', title: t('criticalEvents'), 'aria-label': t('criticalEvents') }, ' !') : null,
        ),
      ),
      h('span', { class: 'who' }, `${session.name} (${session.role})`),
      h('button', { onClick: logout }, t('logout')),
    ),
    h(
      'main',
      null,
      h(Banner, { session }),
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
