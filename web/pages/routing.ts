/** Routing: add, enable or disable and remove routes between apps' endpoints, with their counters and queue depth. */
import { type ComponentChild, Fragment, h } from 'preact';
import { call } from '../api.js';
import { t } from '../i18n.js';
import { type Column, ErrorLine, Notice, Table, useAction, usePolling } from '../ui.js';

interface RouteEnd {
  application_id: string;
  endpoint: string;
}
export interface RouteRow {
  id: string;
  source: RouteEnd;
  destination: RouteEnd;
  sourceName?: string;
  destinationName?: string;
  active: boolean;
  status: string;
  problem?: string;
  queued: number;
  queued_bytes: number;
  counters: { delivered: number; dropped: number; failed: number; invalid?: number };
}

/** `APP:ENDPOINT` as the admin types it, by the app's name where the gateway knows it. */
const endText = (end: RouteEnd, name: string | undefined): string => `${name ?? end.application_id}:${end.endpoint}`;

export function routeColumns(): Column<RouteRow>[] {
  return [
    { label: 'source', value: (row) => endText(row.source, row.sourceName) },
    { label: 'destination', value: (row) => endText(row.destination, row.destinationName) },
    { label: 'state', value: (row) => (row.problem ? `${row.status}: ${row.problem}` : row.status) },
    { label: 'queued', value: (row) => row.queued ?? 0 },
    { label: 'delivered', value: (row) => row.counters.delivered },
    { label: 'dropped', value: (row) => row.counters.dropped },
    { label: 'failed', value: (row) => row.counters.failed },
  ];
}

export function RoutingPage(): ComponentChild {
  const [routes, error, reload] = usePolling((background) => call<RouteRow[]>('GET', '/routes', undefined, { background }), 5000);
  const action = useAction(reload);
  const add = (event: Event): void => {
    event.preventDefault();
    const element = event.target as HTMLFormElement;
    const form = new FormData(element);
    void action.run(async () => {
      const route = await call<RouteRow>('POST', '/routes', { source: String(form.get('source')).trim(), destination: String(form.get('destination')).trim() });
      element.reset();
      return `${t('routeAdded')}: ${endText(route.source, route.sourceName)} → ${endText(route.destination, route.destinationName)}`;
    });
  };
  const columns: Column<RouteRow>[] = [
    ...routeColumns(),
    {
      label: 'actions',
      inert: true,
      value: () => '',
      cell: (row) =>
        h(
          'span',
          { class: 'actions' },
          h(
            'button',
            { onClick: () => action.run(() => call('PATCH', `/routes/${row.id}`, { active: !row.active })) },
            row.active ? t('disable') : t('enable'),
          ),
          h('button', { onClick: () => action.run(() => call('DELETE', `/routes/${row.id}`)) }, t('remove')),
        ),
    },
  ];
  return h(
    Fragment,
    null,
    h(
      'form',
      { class: 'inline', onSubmit: add, 'aria-label': t('addRoute') },
      h('label', null, t('source'), h('input', { name: 'source', placeholder: 'APP:ENDPOINT', required: true })),
      h('label', null, t('destination'), h('input', { name: 'destination', placeholder: 'APP:ENDPOINT', required: true })),
      h('button', { type: 'submit', disabled: action.busy }, t('add')),
    ),
    h('p', { class: 'hint' }, t('routeHint')),
    h(ErrorLine, { error: action.error ?? error }),
    h(Notice, { text: action.done }),
    h(Table<RouteRow>, { name: t('routing'), rows: routes ?? [], columns }),
  );
}
