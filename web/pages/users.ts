/**
 * Users, as the manual's "Managing accounts": both accounts in a table (name, role, credentials
 * expiry, certificate, blocked), the connection settings, an account's name and password, and
 * the certificate an account is bound to.
 */
import { type ComponentChild, Fragment, h } from 'preact';
import { call } from '../api.js';
import { type Key, t } from '../i18n.js';
import { ErrorLine, fileBase64, localTime, Notice, Table, useAction, usePolling } from '../ui.js';

interface AccountRow {
  role: 'admin' | 'user';
  name: string;
  credentialsExpire?: string;
  certificateSha256?: string | null;
  certificateValidTo?: string | null;
  mustChange?: boolean;
  blocked?: boolean;
  lastLoginAt?: string | null;
}

/** GET /users as the contract gives it (`users`, with `passwordExpiresAt`) or as the gateway did before it (`accounts`, `credentialsExpire`). */
function accounts(answer: unknown): { rows: AccountRow[]; root?: { subject: string; validTo: string } } {
  const value = (answer ?? {}) as { users?: Record<string, unknown>[]; accounts?: Record<string, unknown>[]; root?: { subject: string; validTo: string } };
  const rows = (value.users ?? value.accounts ?? []).map(
    (entry) =>
      ({
        ...entry,
        credentialsExpire: (entry.credentialsExpire ?? entry.passwordExpiresAt) as string | undefined,
      }) as AccountRow,
  );
  return { rows, ...(value.root ? { root: value.root } : {}) };
}

const SETTINGS: readonly [string, Key][] = [
  ['credentials_validity_days', 'credentialsValidityDays'],
  ['idle_minutes', 'idleMinutes'],
  ['credentials_expiry_notice_days', 'credentialsNoticeDays'],
  ['certificate_expiry_notice_days', 'certificateNoticeDays'],
  ['failed_login_attempts', 'failedLoginAttempts'],
  ['lockout_minutes', 'lockoutMinutes'],
];

const roleName = (role: string): string => t(role === 'admin' ? 'administrator' : 'userRole');

/** The account a form acts on, sent as `role`. */
const roleField = (): ComponentChild =>
  h(
    'label',
    null,
    t('role'),
    h(
      'select',
      { name: 'role' },
      ['admin', 'user'].map((role) => h('option', { value: role }, roleName(role))),
    ),
  );

export function UsersPage(): ComponentChild {
  const [view, error, reload] = usePolling(async () => accounts(await call<unknown>('GET', '/users')), 0);
  return h(
    Fragment,
    null,
    h(ErrorLine, { error }),
    view?.root ? h('p', null, `${t('rootCertificate')}: ${view.root.subject} — ${t('validTo')} ${localTime(view.root.validTo)}`) : null,
    h(Table<AccountRow>, {
      name: t('accounts'),
      rows: view?.rows ?? [],
      rowClass: (row) => (row.blocked ? 'critical' : ''),
      columns: [
        { label: 'role', value: (row) => roleName(row.role) },
        { label: 'name', value: (row) => row.name },
        { label: 'credentialsExpire', value: (row) => row.credentialsExpire ?? '', cell: (row) => localTime(row.credentialsExpire) },
        { label: 'mustChangeColumn', value: (row) => t(row.mustChange ? 'yes' : 'no') },
        { label: 'blocked', value: (row) => (row.blocked === undefined ? '—' : t(row.blocked ? 'yes' : 'no')) },
        { label: 'certificateValidTo', value: (row) => row.certificateValidTo ?? '', cell: (row) => localTime(row.certificateValidTo) },
        { label: 'certificateSha256', value: (row) => row.certificateSha256 ?? '—', cell: (row) => h('code', { class: 'hash' }, row.certificateSha256 ?? '—') },
        { label: 'lastLogin', value: (row) => row.lastLoginAt ?? '', cell: (row) => localTime(row.lastLoginAt) },
      ],
    }),
    h('div', { class: 'columns' }, h(ConnectionSettings, null), h(Credentials, { onChanged: reload }), h(Certificate, { onChanged: reload })),
  );
}

function ConnectionSettings(): ComponentChild {
  const [settings, error, reload] = usePolling(() => call<Record<string, number>>('GET', '/users/settings'), 0);
  const action = useAction(reload);
  const save = (event: Event): void => {
    event.preventDefault();
    const data = new FormData(event.target as HTMLFormElement);
    const change = Object.fromEntries(
      SETTINGS.map(([key]) => [key, Number(data.get(key))]).filter(([key, value]) => Number.isFinite(value) && value !== settings?.[key as string]),
    );
    void action.run(async () => {
      if (Object.keys(change).length === 0) return t('nothingChanged');
      await call('PUT', '/users/settings', change);
      return t('saved');
    });
  };
  return h(
    'form',
    { class: 'card', onSubmit: save, 'aria-label': t('connectionSettings') },
    h('h2', null, t('connectionSettings')),
    settings
      ? SETTINGS.map(([key, label]) =>
          h('label', null, t(label), h('input', { type: 'number', name: key, min: 1, step: 1, required: true, value: settings[key] })),
        )
      : null,
    h('button', { type: 'submit', disabled: action.busy || !settings }, t('save')),
    h(ErrorLine, { error: action.error ?? error }),
    h(Notice, { text: action.done }),
  );
}

function Credentials({ onChanged }: { onChanged: () => void }): ComponentChild {
  const action = useAction(onChanged);
  const change = (event: Event): void => {
    event.preventDefault();
    const form = event.target as HTMLFormElement;
    const data = new FormData(form);
    const name = String(data.get('name') ?? '').trim();
    void action.run(async () => {
      if (data.get('newPassword') !== data.get('repeat')) throw t('mismatch');
      await call('PUT', `/users/${String(data.get('role'))}/credentials`, {
        oldPassword: data.get('oldPassword'),
        newPassword: data.get('newPassword'),
        ...(name ? { name } : {}),
      });
      form.reset();
      return t('credentialsChanged');
    });
  };
  return h(
    'form',
    { class: 'card', onSubmit: change, 'aria-label': t('updateCredentials') },
    h('h2', null, t('updateCredentials')),
    h('p', { class: 'hint' }, t('credentialsHint')),
    roleField(),
    h('label', null, t('newName'), h('input', { name: 'name', autocomplete: 'off' })),
    h('label', null, t('oldPassword'), h('input', { name: 'oldPassword', type: 'password', autocomplete: 'off', required: true })),
    h('label', null, t('newPassword'), h('input', { name: 'newPassword', type: 'password', autocomplete: 'new-password', required: true })),
    h('label', null, t('repeatPassword'), h('input', { name: 'repeat', type: 'password', autocomplete: 'new-password', required: true })),
    h('button', { type: 'submit', disabled: action.busy }, t('change')),
    h(ErrorLine, { error: action.error }),
    h(Notice, { text: action.done }),
  );
}

function Certificate({ onChanged }: { onChanged: () => void }): ComponentChild {
  const action = useAction(onChanged);
  const bind = (event: Event): void => {
    event.preventDefault();
    const form = event.target as HTMLFormElement;
    const file = (form.elements.namedItem('certificate') as HTMLInputElement).files?.[0];
    const role = String(new FormData(form).get('role'));
    void action.run(async () => {
      if (!file) throw t('chooseFile');
      await call('PUT', `/users/${role}/certificate`, { certificate: await fileBase64(file) });
      form.reset();
      return `${t('uploaded')}: ${file.name}`;
    });
  };
  return h(
    'form',
    { class: 'card', onSubmit: bind, 'aria-label': t('accountCertificate') },
    h('h2', null, t('accountCertificate')),
    h('p', { class: 'hint' }, t('accountCertificateHint')),
    roleField(),
    h('label', null, t('certificateFile'), h('input', { type: 'file', name: 'certificate', accept: '.pem,.crt,.cer,.der', required: true })),
    h('button', { type: 'submit', disabled: action.busy }, t('upload')),
    h(ErrorLine, { error: action.error }),
    h(Notice, { text: action.done }),
  );
}
