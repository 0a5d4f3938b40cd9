/**
 * Network Protector: the traffic gate's state, its rules (the app's APP_CONFIGURATION, whose rule
 * lists are Base64 of Suricata rule text: shown and edited as text, encoded again to save), the
 * IP address allowlist (add, remove) and the denylist its drop verdicts fill (view, remove).
 */
import { type ComponentChild, Fragment, h } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { call } from '../api.js';
import { t } from '../i18n.js';
import { base64ToText, ErrorLine, localTime, Notice, Table, textToBase64, useAction, usePolling } from '../ui.js';

export const NETWORK_PROTECTOR = 'dev.isogate.network-protector';
const RULE_LISTS = ['industrial_commands_rules', 'industrial_anomaly_rules'] as const;
type RuleList = (typeof RULE_LISTS)[number];

interface ProtectorConfig {
  APP_CONFIGURATION?: Partial<Record<RuleList, string>>;
  rule_variables?: Record<string, string>;
}
interface GateStatus {
  inspector: string | null;
  services: { name: string; protocol: string; listen: unknown; upstream: { host: string; port: number }; counters: Record<string, number> }[];
  alertsRecorded: number;
  listenError?: string;
}
interface ListEntry {
  ip: string;
  at?: string | number;
  signature?: string;
}

/** The contract's `{entries: [{ip, addedAt | blockedAt, signature}]}`, or the lists as the configuration keeps them (`ipAddrSource`, `timestamp`, `signatureName`). */
function entries(answer: unknown): ListEntry[] {
  const list = Array.isArray(answer) ? answer : ((answer as { entries?: unknown[] } | null)?.entries ?? []);
  return (list as Record<string, unknown>[]).map((entry) => ({
    ip: String(entry.ip ?? entry.ipAddrSource ?? ''),
    at: (entry.addedAt ?? entry.blockedAt ?? entry.timestamp) as string | number | undefined,
    signature: (entry.signature ?? entry.signatureName) as string | undefined,
  }));
}

export function NpPage(): ComponentChild {
  return h(Fragment, null, h(GateState, null), h(RulesEditor, null), h(Allowlist, null), h(Denylist, null));
}

function GateState(): ComponentChild {
  const [status, error] = usePolling((background) => call<GateStatus>('GET', '/np/status', undefined, { background }), 10_000);
  return h(
    'section',
    { 'aria-label': t('npState') },
    h('h2', null, t('npState')),
    h(ErrorLine, { error }),
    status
      ? h(
          Fragment,
          null,
          h('p', null, `${t('inspector')}: ${status.inspector ?? t('npNoInspector')}`, status.listenError ? ` — ${status.listenError}` : ''),
          h(Table<GateStatus['services'][number]>, {
            name: t('protectedServices'),
            rows: status.services,
            columns: [
              { label: 'name', value: (row) => row.name },
              { label: 'protocol', value: (row) => row.protocol },
              { label: 'upstream', value: (row) => `${row.upstream.host}:${row.upstream.port}` },
              { label: 'accepted', value: (row) => row.counters.accepted ?? 0 },
              { label: 'activeConnections', value: (row) => row.counters.active ?? 0 },
              { label: 'refusedDenylisted', value: (row) => row.counters.refusedDenylisted ?? 0 },
            ],
          }),
        )
      : null,
  );
}

function RulesEditor(): ComponentChild {
  const [config, setConfig] = useState<ProtectorConfig | undefined>(undefined);
  const [texts, setTexts] = useState<Record<RuleList, string>>({ industrial_commands_rules: '', industrial_anomaly_rules: '' });
  const [loadError, setLoadError] = useState<unknown>(undefined);
  const action = useAction();
  const load = (): void =>
    void call<ProtectorConfig>('GET', `/apps/${NETWORK_PROTECTOR}/config`).then((value) => {
      const current = value ?? {};
      try {
        const decoded = Object.fromEntries(
          RULE_LISTS.map((list) => [list, current.APP_CONFIGURATION?.[list] ? base64ToText(current.APP_CONFIGURATION[list]) : '']),
        ) as Record<RuleList, string>;
        setTexts(decoded);
        setConfig(current);
        setLoadError(undefined);
      } catch (failure) {
        setLoadError(`${t('rulesUndecodable')}: ${(failure as Error).message}`);
      }
    }, setLoadError);
  useEffect(load, []);
  const save = (event: Event): void => {
    event.preventDefault();
    void action.run(async () => {
      const lists: Partial<Record<RuleList, string>> = { ...config?.APP_CONFIGURATION };
      // A list that never held rules stays absent; one that did is sent even empty, for the gateway to refuse (E_RULE_LIST_REMOVED).
      for (const list of RULE_LISTS) if (texts[list].trim() !== '' || lists[list] !== undefined) lists[list] = textToBase64(texts[list]);
      await call('PUT', `/apps/${NETWORK_PROTECTOR}/config`, { value: { ...config, APP_CONFIGURATION: lists } });
      load();
      return t('saved');
    });
  };
  return h(
    'form',
    { class: 'rules', onSubmit: save, 'aria-label': t('npRules') },
    h('h2', null, t('npRules')),
    h('p', { class: 'hint' }, t('npRulesHint')),
    RULE_LISTS.map((list) =>
      h(
        'label',
        null,
        t(list === 'industrial_commands_rules' ? 'commandsRules' : 'anomalyRules'),
        h('textarea', {
          name: list,
          rows: 8,
          spellcheck: false,
          // Typing before the stored lists arrive would be overwritten by them, then saved as lost.
          disabled: config === undefined,
          value: texts[list],
          onInput: (event: Event) => setTexts({ ...texts, [list]: (event.target as HTMLTextAreaElement).value }),
        }),
      ),
    ),
    h('button', { type: 'submit', disabled: action.busy || config === undefined }, t('saveRules')),
    h(ErrorLine, { error: action.error ?? loadError }),
    h(Notice, { text: action.done }),
  );
}

function Allowlist(): ComponentChild {
  const [list, error, reload] = usePolling(async () => entries(await call<unknown>('GET', '/np/allowlist')), 0);
  const action = useAction(reload);
  const add = (event: Event): void => {
    event.preventDefault();
    const form = event.target as HTMLFormElement;
    const ip = String(new FormData(form).get('ip') ?? '').trim();
    void action.run(async () => {
      await call('POST', '/np/allowlist', { ip });
      form.reset();
      return `${t('added')}: ${ip}`;
    });
  };
  return h(
    'section',
    { 'aria-label': t('allowlist') },
    h('h2', null, t('allowlist')),
    h(
      'form',
      { class: 'inline', onSubmit: add, 'aria-label': t('addToAllowlist') },
      h('label', null, t('ipAddress'), h('input', { name: 'ip', placeholder: '192.168.1.20', required: true, inputmode: 'decimal' })),
      h('button', { type: 'submit', disabled: action.busy }, t('add')),
    ),
    h(ErrorLine, { error: action.error ?? error }),
    h(Notice, { text: action.done }),
    h(Table<ListEntry>, {
      name: t('allowlist'),
      rows: list ?? [],
      columns: [
        { label: 'ipAddress', value: (row) => row.ip },
        { label: 'added', value: (row) => String(row.at ?? ''), cell: (row) => localTime(row.at) },
        {
          label: 'actions',
          inert: true,
          value: () => '',
          cell: (row) =>
            h(
              'button',
              { onClick: () => action.run(() => call('DELETE', `/np/allowlist/${encodeURIComponent(row.ip)}`)), 'aria-label': `${t('remove')} ${row.ip}` },
              t('remove'),
            ),
        },
      ],
    }),
  );
}

function Denylist(): ComponentChild {
  const [list, error, reload] = usePolling(async (background) => entries(await call<unknown>('GET', '/np/denylist', undefined, { background })), 30_000);
  const action = useAction(reload);
  return h(
    'section',
    { 'aria-label': t('denylist') },
    h('h2', null, t('denylist')),
    h('p', { class: 'hint' }, t('denylistHint')),
    h(ErrorLine, { error: action.error ?? error }),
    h(Notice, { text: action.done }),
    h(Table<ListEntry>, {
      name: t('denylist'),
      rows: list ?? [],
      columns: [
        { label: 'ipAddress', value: (row) => row.ip },
        { label: 'signature', value: (row) => row.signature ?? '' },
        { label: 'blockedAt', value: (row) => String(row.at ?? ''), cell: (row) => localTime(row.at) },
        {
          label: 'actions',
          inert: true,
          value: () => '',
          cell: (row) =>
            h(
              'button',
              { onClick: () => action.run(() => call('DELETE', `/np/denylist/${encodeURIComponent(row.ip)}`)), 'aria-label': `${t('remove')} ${row.ip}` },
              t('remove'),
            ),
        },
      ],
    }),
  );
}
