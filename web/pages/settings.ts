/**
 * Settings, as the manual's "Modifying the configuration ... manually" and "Backing up and
 * restoring": the gateway's configuration document in a JSON editor, checked against its schema
 * in the browser before it is sent (the gateway checks it again), the backup download under a
 * passphrase, and the restore of a backup file.
 */
import { Validator } from '@cfworker/json-schema';
import { type ComponentChild, Fragment, h } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { call, download, upload } from '../api.js';
import { t } from '../i18n.js';
import { ErrorLine, Notice, SchemaProblems, saveBlob, useAction } from '../ui.js';

interface SettingsView {
  document: Record<string, unknown>;
  schema: Record<string, unknown>;
}

/** Keywords that only say a child failed; the child's own error says what. */
const WRAPPERS = new Set(['properties', 'items', 'prefixItems', 'allOf', '$ref', 'patternProperties', 'additionalProperties', 'unevaluatedProperties']);

/** What the schema says about a document, one sentence a broken rule (the deepest rules first). */
export function schemaErrors(schema: Record<string, unknown>, document: unknown): string[] {
  const draft = String(schema.$schema ?? '');
  const version = draft.includes('2020-12') ? '2020-12' : draft.includes('2019-09') ? '2019-09' : draft.includes('draft-04') ? '4' : '7';
  const { valid, errors } = new Validator(schema as object, version, false).validate(document);
  if (valid) return [];
  const leaves = errors.filter((error) => !WRAPPERS.has(error.keyword) || error.error.includes('not allowed'));
  return (leaves.length > 0 ? leaves : errors).map((error) => `${error.instanceLocation.replace(/^#/, '') || '/'}: ${error.error}`);
}

/** The gateway's rule (8 to 1024 characters), any language; no control characters, which no keyboard types. */
const PASSPHRASE = /^[^\p{Cc}]{8,1024}$/u;

/** A header carries ISO-8859-1 only: the passphrase goes as RFC 8187's UTF-8'' and its percent-encoded UTF-8, which the gateway reads back. */
export const headerText = (text: string): string =>
  `UTF-8''${encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)}`;

export function SettingsPage(): ComponentChild {
  return h(Fragment, null, h(ConfigurationEditor, null), h('div', { class: 'columns' }, h(BackupSection, null), h(RestoreSection, null)));
}

function ConfigurationEditor(): ComponentChild {
  const [view, setView] = useState<SettingsView | undefined>(undefined);
  const [text, setText] = useState('');
  const [problems, setProblems] = useState<string[]>([]);
  const [loadError, setLoadError] = useState<unknown>(undefined);
  const action = useAction();
  const load = (): void =>
    void call<SettingsView>('GET', '/settings').then((next) => {
      setView(next);
      setText(JSON.stringify(next.document, null, 2));
      setLoadError(undefined);
    }, setLoadError);
  useEffect(load, []);
  /** The document as typed, or undefined with the reasons shown. */
  const checked = (): Record<string, unknown> | undefined => {
    let document: unknown;
    try {
      document = JSON.parse(text);
    } catch (failure) {
      setProblems([`${t('notJson')}: ${(failure as Error).message}`]);
      return undefined;
    }
    const found = view ? schemaErrors(view.schema, document) : [];
    setProblems(found);
    return found.length === 0 ? (document as Record<string, unknown>) : undefined;
  };
  const validate = (): void => {
    if (checked()) void action.run(async () => t('documentValid'));
  };
  const save = (): Promise<void> =>
    action.run(async () => {
      const document = checked();
      if (!document) return undefined;
      const saved = await call<{ document: Record<string, unknown> }>('PUT', '/settings', { document });
      setText(JSON.stringify(saved?.document ?? document, null, 2));
      return t('saved');
    });
  return h(
    'section',
    { 'aria-label': t('configurationDocument') },
    h('h2', null, t('configurationDocument')),
    h('p', { class: 'hint' }, t('settingsHint')),
    h('textarea', {
      class: 'code',
      'aria-label': t('configurationDocument'),
      rows: 20,
      spellcheck: false,
      // Typing before the stored document arrives would be overwritten by it.
      disabled: !view,
      value: text,
      onInput: (event: Event) => setText((event.target as HTMLTextAreaElement).value),
    }),
    h('button', { onClick: validate, disabled: !view }, t('validate')),
    h('button', { onClick: save, disabled: action.busy || !view }, t('save')),
    h('button', { onClick: load, disabled: action.busy }, t('reloadDocument')),
    h(SchemaProblems, { heading: t('documentInvalid'), problems }),
    h(ErrorLine, { error: action.error ?? loadError }),
    h(Notice, { text: action.done }),
  );
}

function BackupSection(): ComponentChild {
  const action = useAction();
  const backup = (event: Event): void => {
    event.preventDefault();
    const form = event.target as HTMLFormElement;
    const data = new FormData(form);
    const passphrase = String(data.get('passphrase') ?? '');
    void action.run(async () => {
      if (!PASSPHRASE.test(passphrase)) throw t('passphraseRule');
      if (passphrase !== String(data.get('repeat') ?? '')) throw t('passphraseMismatch');
      const { blob, fileName } = await download('POST', '/backup', { json: { passphrase }, fallbackName: 'isogate-backup.igb' });
      saveBlob(blob, fileName);
      form.reset();
      return `${t('downloaded')}: ${fileName}`;
    });
  };
  return h(
    'form',
    { class: 'card', onSubmit: backup, 'aria-label': t('backup') },
    h('h2', null, t('backup')),
    h('p', { class: 'hint' }, t('backupHint')),
    h('label', null, t('passphrase'), h('input', { type: 'password', name: 'passphrase', autocomplete: 'new-password', required: true })),
    h('label', null, t('passphraseAgain'), h('input', { type: 'password', name: 'repeat', autocomplete: 'new-password', required: true })),
    h('button', { type: 'submit', disabled: action.busy }, t('downloadBackup')),
    action.busy ? h('p', { role: 'status' }, h('progress', { 'aria-label': t('backup') }), ` ${t('running')}`) : null,
    h(ErrorLine, { error: action.error }),
    h(Notice, { text: action.done }),
  );
}

function RestoreSection(): ComponentChild {
  const action = useAction();
  const restore = (event: Event): void => {
    event.preventDefault();
    const form = event.target as HTMLFormElement;
    const file = (form.elements.namedItem('backup') as HTMLInputElement).files?.[0];
    const passphrase = String(new FormData(form).get('passphrase') ?? '');
    void action.run(async () => {
      if (!file) throw t('chooseFile');
      if (!PASSPHRASE.test(passphrase)) throw t('passphraseRule');
      if (!confirm(t('confirmRestore'))) return undefined;
      const result = await upload<{ restored: boolean; restartRequired: boolean }>('/restore', file, { 'x-backup-passphrase': headerText(passphrase) });
      form.reset();
      return result?.restartRequired ? `${t('restored')} ${t('restartRequired')}` : t('restored');
    });
  };
  return h(
    'form',
    { class: 'card', onSubmit: restore, 'aria-label': t('restore') },
    h('h2', null, t('restore')),
    h('p', { class: 'hint' }, t('restoreHint')),
    h('label', null, t('backupFile'), h('input', { type: 'file', name: 'backup', accept: '.igb', required: true })),
    h('label', null, t('passphrase'), h('input', { type: 'password', name: 'passphrase', autocomplete: 'off', required: true })),
    h('button', { type: 'submit', disabled: action.busy }, t('restoreButton')),
    action.busy ? h('p', { role: 'status' }, h('progress', { 'aria-label': t('restore') }), ` ${t('running')}`) : null,
    h(ErrorLine, { error: action.error }),
    h(Notice, { text: action.done }),
  );
}
