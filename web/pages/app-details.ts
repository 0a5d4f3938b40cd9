/**
 * One installed app as the admin inspects it: what its manifest declares (read-only, in words:
 * who signed it, what it may reach, its limits) and its configuration editor, checked in the
 * browser against the schema the manifest gives before it is sent (the gateway checks it again).
 */
import { type ComponentChild, Fragment, h } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { call } from '../api.js';
import { type Key, t } from '../i18n.js';
import { ErrorLine, localTime, Notice, SchemaProblems, useAction } from '../ui.js';
import { schemaErrors } from './settings.js';

/** GET /apps/{id}/manifest (platform/api/app-manifest.ts). */
export interface ManifestView {
  package_id: string;
  name: string;
  title: string;
  description: string | null;
  version: string;
  type: string;
  origin: string;
  signature: 'verified' | 'unsigned';
  signer: { subject: string; issuer: string; fingerprint256: string; validTo: string } | null;
  publisher_claim: string;
  developer: { name: string; website?: string } | null;
  license: string | null;
  networkZone: string;
  limits: { memoryMb: number; cpuMsPerEvent: number; storageMb: number };
  endpoints: { name: string; direction: string; dataType: string; format: string; maxMessageBytes: number | null; schema: boolean }[];
  egress: { name: string; host: string; port: number; protocol: string; description: string | null }[];
  capabilities: string[];
  configuration: { schema: Record<string, unknown>; required: boolean; defaults: Record<string, unknown> } | null;
}

const loadManifest = (id: string): Promise<ManifestView> => call<ManifestView>('GET', `/apps/${id}/manifest`);

function facts(rows: [Key, ComponentChild][]): ComponentChild {
  return h(
    'dl',
    { class: 'facts' },
    rows.map(([term, value]) => h(Fragment, null, h('dt', null, t(term)), h('dd', null, value))),
  );
}

function list<R>(name: string, rows: R[], headers: Key[], cells: (row: R) => (string | number)[]): ComponentChild {
  if (rows.length === 0) return h('p', null, t('noneDeclared'));
  return h(
    'table',
    { 'aria-label': name },
    h(
      'thead',
      null,
      h(
        'tr',
        null,
        headers.map((header) => h('th', null, t(header))),
      ),
    ),
    h(
      'tbody',
      null,
      rows.map((row) =>
        h(
          'tr',
          null,
          cells(row).map((cell) => h('td', null, String(cell))),
        ),
      ),
    ),
  );
}

export function ManifestPanel({ id, onClose }: { id: string; onClose: () => void }): ComponentChild {
  const [view, setView] = useState<ManifestView | undefined>(undefined);
  const [error, setError] = useState<unknown>(undefined);
  useEffect(() => {
    loadManifest(id).then(setView, setError);
  }, [id]);
  const label = `${t('manifest')} ${id}`;
  return h(
    'section',
    { class: 'card', 'aria-label': label },
    h('h2', null, `${t('manifest')}: ${view ? `${view.title} ${view.version}` : id}`),
    h(ErrorLine, { error }),
    view
      ? h(
          Fragment,
          null,
          view.description ? h('p', null, view.description) : null,
          facts([
            [
              'signature' as Key,
              h(
                'span',
                { class: view.signature === 'verified' ? 'ok' : 'warning' },
                t(view.signature === 'verified' ? 'signatureVerified' : 'signatureUnsigned'),
              ),
            ],
            ...(view.signer
              ? ([
                  ['signer', view.signer.subject],
                  ['issuer', view.signer.issuer],
                  ['validTo', localTime(view.signer.validTo)],
                ] as [Key, ComponentChild][])
              : []),
            ['publisherClaim', view.publisher_claim],
            ['appType', view.type],
            ['networkZone', view.networkZone],
          ]),
          h('h3', null, t('limits')),
          facts([
            ['memoryLimit', `${view.limits.memoryMb} MiB`],
            ['cpuLimit', `${view.limits.cpuMsPerEvent} ms`],
            ['storageLimit', `${view.limits.storageMb} MiB`],
          ]),
          h('h3', null, t('endpoints')),
          list(`${t('endpoints')} ${id}`, view.endpoints, ['name', 'kind', 'dataType', 'format', 'maxMessage', 'messageSchema'], (endpoint) => [
            endpoint.name,
            t(endpoint.direction === 'source' ? 'source' : 'destination'),
            endpoint.dataType,
            endpoint.format,
            endpoint.maxMessageBytes === null ? '—' : `${endpoint.maxMessageBytes} B`,
            t(endpoint.schema ? 'yes' : 'no'),
          ]),
          h('h3', null, t('egressHosts')),
          list(`${t('egressHosts')} ${id}`, view.egress, ['name', 'upstream', 'port', 'protocol'], (target) => [
            target.name,
            target.host,
            target.port,
            target.protocol,
          ]),
          h('h3', null, t('capabilities')),
          h('p', null, view.capabilities.length > 0 ? view.capabilities.join(', ') : t('noneDeclared')),
          h('h3', null, t('configurationSchema')),
          view.configuration
            ? h('pre', { class: 'code', 'aria-label': `${t('configurationSchema')} ${id}` }, JSON.stringify(view.configuration.schema, null, 2))
            : h('p', null, t('noConfiguration')),
        )
      : null,
    h('button', { onClick: onClose }, t('close')),
  );
}

/** The manifests' configuration schemas are JSON Schema 2020-12 unless they say otherwise. */
function configurationErrors(schema: Record<string, unknown>, value: unknown): string[] {
  return schemaErrors(schema.$schema ? schema : { $schema: 'https://json-schema.org/draft/2020-12/schema', ...schema }, value);
}

export function ConfigEditor({ id, onClose }: { id: string; onClose: () => void }): ComponentChild {
  const [text, setText] = useState<string | undefined>(undefined);
  const [schema, setSchema] = useState<Record<string, unknown> | null | undefined>(undefined);
  const [problems, setProblems] = useState<string[]>([]);
  const [loadError, setLoadError] = useState<unknown>(undefined);
  const action = useAction();
  useEffect(() => {
    Promise.all([call<unknown>('GET', `/apps/${id}/config`), loadManifest(id)]).then(([value, manifest]) => {
      setSchema(manifest.configuration?.schema ?? null);
      setText(JSON.stringify(value ?? {}, null, 2));
    }, setLoadError);
  }, [id]);
  const save = (): Promise<void> =>
    action.run(async () => {
      let value: unknown;
      try {
        value = JSON.parse(text ?? '');
      } catch (failure) {
        setProblems([]);
        throw `${t('notJson')}: ${(failure as Error).message}`;
      }
      const found = schema ? configurationErrors(schema, value) : [];
      setProblems(found);
      if (found.length > 0) return undefined;
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
      class: 'code',
      rows: 12,
      spellcheck: false,
      disabled: text === undefined,
      value: text ?? '',
      onInput: (event: Event) => setText((event.target as HTMLTextAreaElement).value),
    }),
    h('button', { onClick: save, disabled: action.busy || text === undefined }, t('save')),
    h('button', { onClick: onClose }, t('close')),
    // The code the gateway would refuse it with, so both refusals read alike.
    h(SchemaProblems, { heading: `E_CONFIG: ${t('configInvalid')}`, problems }),
    h(ErrorLine, { error: action.error ?? loadError }),
    h(Notice, { text: action.done }),
  );
}
