/** Status: the device, its modes, apps and routes, with the routes' throughput drawn over the last minutes. */
import { type ComponentChild, Fragment, h } from 'preact';
import { useRef } from 'preact/hooks';
import { call, type SessionView } from '../api.js';
import { Chart } from '../chart.js';
import { t } from '../i18n.js';
import { duration, ErrorLine, Table, usePolling } from '../ui.js';
import { type RouteRow, routeColumns } from './routing.js';

export interface Status {
  version: string;
  mode: string;
  uptimeSeconds: number;
  developerMode: boolean;
  emergency: { since: string; reason: string } | null;
  apps: { installed: number; limit: number };
  routes: { active: number; inactive: number; error: number };
}

export function StatusPage({ session }: { session: SessionView }): ComponentChild {
  const [status, error] = usePolling((background) => call<Status>('GET', '/status', undefined, { background }), 5000);
  const history = useRef<[number[], number[]]>([[], []]);
  const last = useRef<{ total: number; at: number } | undefined>(undefined);
  const [routes] = usePolling(async (background) => {
    if (session.role !== 'admin') return [];
    const rows = await call<RouteRow[]>('GET', '/routes', undefined, { background });
    const total = rows.reduce((sum, row) => sum + row.counters.delivered, 0);
    const now = Date.now() / 1000;
    if (last.current !== undefined && now > last.current.at) {
      const [xs, ys] = history.current;
      const rate = Math.max(0, total - last.current.total) / (now - last.current.at);
      history.current = [[...xs, now].slice(-60), [...ys, Math.round(rate * 10) / 10].slice(-60)];
    }
    last.current = { total, at: now };
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
        [t('uptime'), duration(status.uptimeSeconds)],
        [t('installed'), `${status.apps.installed} / ${status.apps.limit}`],
        [t('routesActive'), status.routes.active],
        [t('routesInactive'), status.routes.inactive],
        [t('routesError'), status.routes.error],
        [t('emergencyState'), status.emergency ? `${status.emergency.reason} (${status.emergency.since})` : t('no')],
      ].map(([term, value]) => h(Fragment, null, h('dt', null, term), h('dd', null, String(value)))),
    ),
    session.role === 'admin' && routes
      ? h(
          Fragment,
          null,
          h('h2', null, t('throughput')),
          // A rate needs two readings: until then the chart would be an empty box.
          history.current[0].length >= 2
            ? h(Chart, { points: history.current, label: t('delivered'), name: t('throughput') })
            : h('p', { class: 'hint' }, t('chartFilling')),
          h(Table<RouteRow>, { name: t('routing'), rows: routes, columns: routeColumns() }),
        )
      : null,
  );
}
