/** Applications: the installed apps (start, stop, configuration, uninstall) and the store's, installed with a progress bar. */
import { type ComponentChild, Fragment, h } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { call, callStreaming, type SessionView } from '../api.js';
import { t } from '../i18n.js';
import { type Column, ErrorLine, Notice, Table, useAction, usePolling } from '../ui.js';

export interface AppRow {
  package_id: string;
  name: string;
  version: string;
  status: string;
  publisher: string;
}
interface InstallProgress {
  phase?: string;
  percent?: number;
}

export function AppsPage({ session }: { session: SessionView }): ComponentChild {
  const [apps, error, reload] = usePolling((background) => call<AppRow[]>('GET', '/apps', undefined, { background }), 5000);
  const admin = session.role === 'admin';
  const [store, storeError] = usePolling(async () => (admin ? call<Record<string, unknown>[]>('GET', '/store/apps') : []), 0);
  const [progress, setProgress] = useState<{ id: string; phase: string; percent: number } | undefined>(undefined);
  const [editing, setEditing] = useState<string | undefined>(undefined);
  const action = useAction(reload);
  const install = (id: string): Promise<void> =>
    action.run(async () => {
      setProgress({ id, phase: '…', percent: 0 });
      await callStreaming('POST', '/apps', { id }, (update) => {
        const { phase, percent } = (update ?? {}) as InstallProgress;
        setProgress({ id, phase: phase ?? '…', percent: typeof percent === 'number' ? percent : 0 });
      });
      setProgress({ id, phase: t('installed'), percent: 100 });
      return `${id}: ${t('installed')}`;
    });
  const columns: Column<AppRow>[] = [
    { label: 'name', value: (row) => row.name },
    { label: 'version', value: (row) => row.version },
    { label: 'publisher', value: (row) => row.publisher },
    { label: 'state', value: (row) => row.status },
  ];
  if (admin) {
    columns.push({
      label: 'actions',
      inert: true,
      value: () => '',
      cell: (row) =>
        h(
          'span',
          { class: 'actions' },
          h('button', { onClick: () => action.run(() => call('POST', `/apps/${row.package_id}/start`)) }, t('start')),
          h('button', { onClick: () => action.run(() => call('POST', `/apps/${row.package_id}/stop`)) }, t('stop')),
          h('button', { onClick: () => setEditing(row.package_id) }, t('configuration')),
          h('button', { onClick: () => action.run(() => call('DELETE', `/apps/${row.package_id}`)) }, t('uninstall')),
        ),
    });
  }
  return h(
    Fragment,
    null,
    h(ErrorLine, { error: action.error ?? error }),
    h(Notice, { text: action.done }),
    h(Table<AppRow>, { name: t('apps'), rows: apps ?? [], columns }),
    editing ? h(ConfigEditor, { id: editing, onClose: () => setEditing(undefined) }) : null,
    admin
      ? h(
          'section',
          { 'aria-label': t('store') },
          h('h2', null, t('store')),
          progress
            ? h(
                'div',
                { class: 'progress', role: 'status' },
                `${t('progress')}: ${progress.id}: ${progress.phase} `,
                h('progress', { max: 100, value: progress.percent, 'aria-label': `${t('progress')} ${progress.id}` }),
                ` ${Math.round(progress.percent)}%`,
              )
            : null,
          h(ErrorLine, { error: storeError }),
          h(
            'ul',
            { class: 'store' },
            (store ?? []).map((entry) => {
              const id = String(entry.package_id ?? entry.id);
              return h(
                'li',
                null,
                `${String(entry.title ?? entry.name ?? id)} ${String(entry.version ?? '')} `,
                h('button', { onClick: () => install(id), disabled: action.busy, 'aria-label': `${t('install')} ${id}` }, t('install')),
              );
            }),
          ),
        )
      : null,
  );
}

function ConfigEditor({ id, onClose }: { id: string; onClose: () => void }): ComponentChild {
  const [text, setText] = useState<string | undefined>(undefined);
  const [loadError, setLoadError] = useState<unknown>(undefined);
  const action = useAction();
  useEffect(() => {
    call<unknown>('GET', `/apps/${id}/config`).then((value) => setText(JSON.stringify(value ?? {}, null, 2)), setLoadError);
  }, [id]);
  const save = (): Promise<void> =>
    action.run(async () => {
      let value: unknown;
      try {
        value = JSON.parse(text ?? '');
      } catch (failure) {
        throw `${t('notJson')}: ${(failure as Error).message}`;
      }
      await call('PUT', `/apps/${id}/config`, { value });
      return t('saved');
    });
  return h(
    'section',
    { class: 'card', 'aria-label': `${t('configuration')} ${id}` },
    h('h2', null, `${t('configuration')}: ${id}`),
    // Disabled until the stored configuration arrives: typing before it would be overwritten by it.
    h('textarea', {
      'aria-label': t('configuration'),
      rows: 12,
      disabled: text === undefined,
      value: text ?? '',
      onInput: (event: Event) => setText((event.target as HTMLTextAreaElement).value),
    }),
    h('button', { onClick: save, disabled: action.busy || text === undefined }, t('save')),
    h('button', { onClick: onClose }, t('close')),
    h(ErrorLine, { error: action.error ?? loadError }),
    h(Notice, { text: action.done }),
  );
}
