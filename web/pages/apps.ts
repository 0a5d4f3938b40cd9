/**
 * Applications: the installed apps (start, stop, start rule, manifest, configuration, log,
 * uninstall: the administrator's) and the store's, installed with a progress bar. The panels
 * for one app are in app-details.ts (manifest, configuration) and app-log.ts (log).
 */
import { type ComponentChild, Fragment, h } from 'preact';
import { useState } from 'preact/hooks';
import { call, callStreaming, type SessionView } from '../api.js';
import { type Key, t } from '../i18n.js';
import { type Column, ErrorLine, Notice, Table, useAction, usePolling } from '../ui.js';
import { ConfigEditor, ManifestPanel } from './app-details.js';
import { LogPanel } from './app-log.js';

type StartRule = 'auto' | 'manual' | 'blocked';
/** The manual's start rules, as PUT /apps/{id}/rule names them. */
const START_RULES: readonly [StartRule, Key][] = [
  ['auto', 'ruleAuto'],
  ['manual', 'ruleManual'],
  ['blocked', 'ruleBlocked'],
];

export interface AppRow {
  package_id: string;
  name: string;
  version: string;
  status: string;
  publisher: string;
  launch_rule: StartRule;
}
interface InstallProgress {
  phase?: string;
  percent?: number;
}

export function AppsPage({ session }: { session: SessionView }): ComponentChild {
  const [apps, error, reload] = usePolling((background) => call<AppRow[]>('GET', '/apps', undefined, { background }), 5000);
  const admin = session.role === 'admin';
  const [store, storeError, reloadStore] = usePolling(async () => (admin ? call<Record<string, unknown>[]>('GET', '/store/apps') : []), 0);
  const [progress, setProgress] = useState<{ id: string; phase: string; percent: number } | undefined>(undefined);
  const [panel, setPanel] = useState<{ kind: 'manifest' | 'config' | 'log'; id: string } | undefined>(undefined);
  const action = useAction(reload);
  // A store version of an app installed in another version is an update in place (storage, certificates,
  // valid configuration and routes kept), not a second install, which the gateway would refuse.
  const fromStore = (id: string, version: string, installedVersion: string | null): Promise<void> =>
    action.run(async () => {
      setProgress({ id, phase: '…', percent: 0 });
      const onProgress = (update: unknown): void => {
        const { phase, percent } = (update ?? {}) as InstallProgress;
        setProgress({ id, phase: phase ?? '…', percent: typeof percent === 'number' ? percent : 0 });
      };
      if (installedVersion === null) await callStreaming('POST', '/apps', { id, version }, onProgress);
      else await callStreaming('POST', `/apps/${id}/update`, { version }, onProgress);
      const done = t(installedVersion === null ? 'installed' : 'updated');
      setProgress({ id, phase: done, percent: 100 });
      reloadStore();
      return `${id} ${version}: ${done}`;
    });
  const columns: Column<AppRow>[] = [
    { label: 'name', value: (row) => row.name },
    { label: 'version', value: (row) => row.version },
    { label: 'publisher', value: (row) => row.publisher },
    { label: 'state', value: (row) => row.status },
    {
      label: 'startRule',
      value: (row) => t(START_RULES.find(([rule]) => rule === row.launch_rule)?.[1] ?? 'ruleManual'),
      ...(admin
        ? {
            cell: (row: AppRow) =>
              h(
                'select',
                {
                  'aria-label': `${t('startRule')} ${row.name}`,
                  value: row.launch_rule,
                  disabled: action.busy,
                  onChange: (event: Event) => {
                    const rule = (event.target as HTMLSelectElement).value;
                    void action.run(async () => {
                      await call('PUT', `/apps/${row.package_id}/rule`, { rule });
                      return `${row.name}: ${t('ruleSaved')}`;
                    });
                  },
                },
                START_RULES.map(([rule, key]) => h('option', { value: rule }, t(key))),
              ),
          }
        : {}),
    },
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
          h('button', { onClick: () => setPanel({ kind: 'manifest', id: row.package_id }) }, t('manifest')),
          h('button', { onClick: () => setPanel({ kind: 'config', id: row.package_id }) }, t('configuration')),
          h('button', { onClick: () => setPanel({ kind: 'log', id: row.package_id }) }, t('log')),
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
    panel ? h(PANELS[panel.kind], { key: `${panel.kind} ${panel.id}`, id: panel.id, onClose: () => setPanel(undefined) }) : null,
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
              const version = String(entry.version ?? '');
              const installedVersion = typeof entry.installedVersion === 'string' ? entry.installedVersion : null;
              return h(
                'li',
                null,
                `${String(entry.title ?? entry.name ?? id)} ${version} `,
                installedVersion === version
                  ? h('span', { class: 'muted' }, t('installedHere'))
                  : h(
                      'button',
                      {
                        onClick: () => fromStore(id, version, installedVersion),
                        disabled: action.busy,
                        'aria-label': `${t(installedVersion === null ? 'install' : 'updateApp')} ${id} ${version}`,
                      },
                      installedVersion === null ? t('install') : `${t('updateApp')} (${installedVersion} → ${version})`,
                    ),
              );
            }),
          ),
        )
      : null,
  );
}

const PANELS = { manifest: ManifestPanel, config: ConfigEditor, log: LogPanel } as const;
