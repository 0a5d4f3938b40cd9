/**
 * App certificates: per installed app, the CA its servers chain to and its client certificate
 * with key (only together), each listed with its expiry, uploaded from files, or deleted.
 */
import { type ComponentChild, Fragment, h } from 'preact';
import { useState } from 'preact/hooks';
import { call } from '../api.js';
import { t } from '../i18n.js';
import { ErrorLine, fileBase64, localTime, Notice, Table, useAction, usePolling } from '../ui.js';
import type { AppRow } from './apps.js';

interface CertificateRow {
  kind: 'ca' | 'client';
  fileName: string;
  subject: string;
  issuer: string;
  validFrom: string;
  validTo: string;
  daysLeft: number;
  warning?: string;
  keyFileName?: string;
}

/** The one file a form's input holds, or a sentence saying which to choose. */
function chosen(form: HTMLFormElement, name: string): File {
  const file = (form.elements.namedItem(name) as HTMLInputElement | null)?.files?.[0];
  if (!file) throw t('chooseFile');
  return file;
}

export function CertsPage(): ComponentChild {
  const [apps, appsError] = usePolling(() => call<AppRow[]>('GET', '/apps'), 0);
  const [picked, setPicked] = useState<string | undefined>(undefined);
  const app = picked ?? apps?.[0]?.package_id;
  const [certs, certsError, reload] = usePolling(async () => (app ? call<CertificateRow[]>('GET', `/apps/${app}/certificates`) : []), 0, [app]);
  const action = useAction(reload);

  const uploadCa = (event: Event): void => {
    event.preventDefault();
    const form = event.target as HTMLFormElement;
    void action.run(async () => {
      const file = chosen(form, 'ca');
      await call('PUT', `/apps/${app}/certificates/ca`, { fileName: file.name, content: await fileBase64(file) });
      form.reset();
      return `${t('uploaded')}: ${file.name}`;
    });
  };
  const uploadClient = (event: Event): void => {
    event.preventDefault();
    const form = event.target as HTMLFormElement;
    void action.run(async () => {
      const cert = chosen(form, 'cert');
      const key = chosen(form, 'key');
      await call('PUT', `/apps/${app}/certificates/client`, {
        certFileName: cert.name,
        cert: await fileBase64(cert),
        keyFileName: key.name,
        key: await fileBase64(key),
      });
      form.reset();
      return `${t('uploaded')}: ${cert.name}, ${key.name}`;
    });
  };
  const remove = (kind: 'ca' | 'client'): Promise<void> =>
    action.run(async () => {
      if (!confirm(`${t('confirmDelete')} ${t(kind === 'ca' ? 'caCert' : 'clientCert')} (${app})?`)) return undefined;
      await call('DELETE', `/apps/${app}/certificates/${kind}`);
      return t('deleted');
    });

  if (apps && apps.length === 0) return h('p', { class: 'hint' }, t('noApps'));
  return h(
    Fragment,
    null,
    h(
      'label',
      { class: 'inline' },
      t('application'),
      h(
        'select',
        { value: app, onChange: (event: Event) => setPicked((event.target as HTMLSelectElement).value) },
        (apps ?? []).map((row) => h('option', { value: row.package_id }, `${row.name} (${row.package_id})`)),
      ),
    ),
    h(ErrorLine, { error: action.error ?? certsError ?? appsError }),
    h(Notice, { text: action.done }),
    h(Table<CertificateRow>, {
      name: t('certs'),
      rows: certs ?? [],
      rowClass: (row) => (row.warning ? 'warning' : ''),
      columns: [
        { label: 'kind', value: (row) => t(row.kind === 'ca' ? 'caCert' : 'clientCert') },
        { label: 'file', value: (row) => (row.keyFileName ? `${row.fileName} + ${row.keyFileName}` : row.fileName) },
        { label: 'certSubject', value: (row) => row.subject },
        { label: 'issuer', value: (row) => row.issuer },
        { label: 'validTo', value: (row) => row.validTo, cell: (row) => `${localTime(row.validTo)}${row.warning ? ` — ${row.warning}` : ''}` },
        { label: 'daysLeft', value: (row) => row.daysLeft },
        {
          label: 'actions',
          inert: true,
          value: () => '',
          cell: (row) => h('button', { onClick: () => remove(row.kind), 'aria-label': `${t('delete')} ${row.kind}` }, t('delete')),
        },
      ],
    }),
    h(
      'div',
      { class: 'columns' },
      h(
        'form',
        { class: 'card', onSubmit: uploadCa, 'aria-label': t('uploadCa') },
        h('h2', null, t('uploadCa')),
        h('p', { class: 'hint' }, t('caHint')),
        h('label', null, t('caCert'), h('input', { type: 'file', name: 'ca', accept: '.pem,.crt,.cer,.der', required: true })),
        h('button', { type: 'submit', disabled: action.busy || !app }, t('upload')),
      ),
      h(
        'form',
        { class: 'card', onSubmit: uploadClient, 'aria-label': t('uploadClient') },
        h('h2', null, t('uploadClient')),
        h('p', { class: 'hint' }, t('clientHint')),
        h('label', null, t('clientCert'), h('input', { type: 'file', name: 'cert', accept: '.pem,.crt,.cer,.der', required: true })),
        h('label', null, t('clientKey'), h('input', { type: 'file', name: 'key', accept: '.pem,.key,.der', required: true })),
        h('button', { type: 'submit', disabled: action.busy || !app }, t('upload')),
      ),
    ),
  );
}
