/**
 * The admin web interface: a login (the client certificate rides on the TLS connection; name and
 * password here; a forced change on first login), the manual's menu by role, and the pages over
 * the REST API (web/pages/). Each page has its path (`/audit`); the gateway sends its chrome in
 * the document (platform/web/shell.ts), and the menu changes pages in place with the History API.
 */
import { type ComponentChild, Fragment, h, render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import 'uplot/dist/uPlot.min.css';
import './style.css';
import { useCriticalMarks } from './alarms.js';
import { call, type SessionView, setCsrf, whenSessionLost } from './api.js';
import { currentLang, setLang, t } from './i18n.js';
import { MENU, type MenuEntry, pageAt, pagePath } from './menu.js';
import { ChangePassword, Login } from './pages/login.js';
import type { Status } from './pages/status.js';
import { ErrorLine, usePolling } from './ui.js';

type PageView = (props: { session: SessionView }) => ComponentChild;

/**
 * Each menu entry's page, loaded when it is first opened (esbuild splits the bundle there): the
 * script the browser runs first is only the chrome's and the login's.
 */
const VIEWS: Readonly<Record<string, () => Promise<PageView>>> = {
  status: () => import('./pages/status.js').then((module) => module.StatusPage),
  apps: () => import('./pages/apps.js').then((module) => module.AppsPage),
  routing: () => import('./pages/routing.js').then((module) => module.RoutingPage),
  certs: () => import('./pages/certs.js').then((module) => module.CertsPage),
  np: () => import('./pages/np.js').then((module) => module.NpPage),
  events: () =>
    import('./pages/audit.js').then(
      ({ AuditPage }) =>
        () =>
          h(AuditPage, { log: 'firewall' }),
    ),
  audit: () =>
    import('./pages/audit.js').then(
      ({ AuditPage }) =>
        () =>
          h(AuditPage, { log: 'system' }),
    ),
  diag: () => import('./pages/diag.js').then((module) => module.DiagPage),
  settings: () => import('./pages/settings.js').then((module) => module.SettingsPage),
  users: () => import('./pages/users.js').then((module) => module.UsersPage),
};
const loading = new Map<string, Promise<PageView>>();
/** The views loaded so far: a page opened again renders at once, without a loading line between. */
const ready = new Map<string, PageView>();
function loadView(id: string): Promise<PageView> {
  let load = loading.get(id);
  if (!load) {
    load = VIEWS[id]!().then((view) => {
      ready.set(id, view);
      return view;
    });
    // A chunk that failed to arrive is asked for again the next time the page opens.
    load.catch(() => loading.delete(id));
    loading.set(id, load);
  }
  return load;
}

function Page({ id, session }: { id: string; session: SessionView }): ComponentChild {
  const [, setLoaded] = useState(0);
  const [failure, setFailure] = useState<unknown>(undefined);
  const view = ready.get(id);
  useEffect(() => {
    if (view) return;
    let live = true;
    loadView(id).then(
      () => live && setLoaded((n) => n + 1),
      (error: unknown) => live && setFailure(error),
    );
    return () => {
      live = false;
    };
  }, [id]);
  if (view) return h(view, { session });
  return failure ? h(ErrorLine, { error: failure }) : h('p', { class: 'loading', role: 'status' }, t('loading'));
}

const pageFromPath = (): MenuEntry => pageAt(location.pathname) ?? pageAt('/')!;

/** The menu's own navigation: the page changes in place (the script and the session stay), and Back works. */
function navigate(event: MouseEvent, id: string): void {
  if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  event.preventDefault();
  if (location.pathname !== pagePath(id)) history.pushState(null, '', pagePath(id));
  dispatchEvent(new PopStateEvent('popstate'));
}

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
  const [current, setCurrent] = useState(pageFromPath());
  useEffect(() => {
    const changed = (): void => setCurrent(pageFromPath());
    addEventListener('popstate', changed);
    return () => removeEventListener('popstate', changed);
  }, []);
  const allowed = MENU.filter((entry) => entry.roles.includes(session.role));
  const marks = useCriticalMarks(allowed.flatMap((entry) => (entry.alarm ? [entry.alarm] : [])));
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
          {
            href: pagePath(entry.id),
            class: entry.id === current.id ? 'current' : '',
            'aria-current': entry.id === current.id ? 'page' : undefined,
            onClick: (event: MouseEvent) => navigate(event, entry.id),
          },
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
      permitted ? h(Page, { key: current.id, id: current.id, session }) : h('p', { class: 'error', role: 'alert' }, t('forbidden')),
    ),
  );
}

function App({ initial, lostAtStart }: { initial: SessionView | null; lostAtStart: boolean }): ComponentChild {
  const [session, setSession] = useState<SessionView | null>(initial);
  const [lost, setLost] = useState(lostAtStart);
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
  }, []);
  const switchLang = (): void => {
    setLang(currentLang() === 'en' ? 'ru' : 'en');
    setLangTick((n) => n + 1);
  };
  const body =
    session === null
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

/** A link from before the pages had paths (`/#/audit`) still opens its page, loaded anew or followed within this one. */
function followOldLink(): void {
  const old = /^#\/(\w+)$/.exec(location.hash);
  if (!old || !pageAt(pagePath(old[1]!))) return;
  history.replaceState(null, '', pagePath(old[1]!));
  dispatchEvent(new PopStateEvent('popstate'));
}
followOldLink();
addEventListener('hashchange', followOldLink);

document.documentElement.lang = currentLang();
// The gateway's chrome stays on screen until the session is known; then the pages replace it in one task.
let lostAtStart = false;
whenSessionLost(() => {
  lostAtStart = true;
});
// The current page's code is fetched while the session is asked for, not after.
loadView(pageFromPath().id).catch(() => undefined);
const initial = await call<SessionView>('GET', '/session').catch(() => null);
setCsrf(initial?.csrfToken ?? '');
const root = document.getElementById('app')!;
root.replaceChildren();
render(h(App, { initial, lostAtStart }), root);
