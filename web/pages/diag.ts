/**
 * Self-diagnostics, as the manual's "Self-testing and integrity control": the self-test of audit,
 * authentication, traffic blocking and Network Protector with a result per test, and the
 * integrity check of the installed apps' files with its progress and the report to download.
 */
import { type ComponentChild, Fragment, h } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { CallError, call, callStreaming, download } from '../api.js';
import { type Key, t } from '../i18n.js';
import { ErrorLine, localTime, Notice, saveBlob, Table, useAction } from '../ui.js';

interface SelfTest {
  startedAt: string;
  finishedAt: string;
  ok: boolean;
  tests: { name: string; ok: boolean; message: string }[];
}
interface IntegrityResult {
  id: string;
  startedAt: string;
  finishedAt: string;
  ok: boolean;
  files: { path: string; app: string; status: string }[];
  summary: unknown;
}

const TEST_NAMES: Readonly<Record<string, Key>> = {
  audit: 'testAudit',
  authentication: 'testAuthentication',
  'traffic-blocking': 'testTrafficBlocking',
  'network-protector': 'testNetworkProtector',
};

/** The manual: "Any status other than this one may indicate a potential integrity violation". */
const VERIFIED = 'File integrity verified successfully';
const verdict = (ok: boolean): string => (ok ? `✓ ${t('passed')}` : `✗ ${t('failedTest')}`);

export function DiagPage(): ComponentChild {
  return h(Fragment, null, h(SelfTestSection, null), h(IntegritySection, null));
}

function SelfTestSection(): ComponentChild {
  const [result, setResult] = useState<SelfTest | undefined>(undefined);
  const action = useAction();
  const run = (): Promise<void> =>
    action.run(async () => {
      setResult(undefined);
      setResult(await call<SelfTest>('POST', '/self-test', {}));
      return undefined;
    });
  return h(
    'section',
    { 'aria-label': t('selfTest') },
    h('h2', null, t('selfTest')),
    h('p', { class: 'hint' }, t('selfTestHint')),
    h('button', { onClick: run, disabled: action.busy }, t('runSelfTest')),
    action.busy ? h('p', { role: 'status' }, h('progress', { 'aria-label': t('selfTest') }), ` ${t('running')}`) : null,
    h(ErrorLine, { error: action.error }),
    result
      ? h(
          Fragment,
          null,
          h('p', { role: 'status', class: result.ok ? 'ok' : 'error' }, `${t('selfTest')}: ${verdict(result.ok)} (${localTime(result.finishedAt)})`),
          h(Table<SelfTest['tests'][number]>, {
            name: t('selfTestResults'),
            rows: result.tests,
            filterable: false,
            rowClass: (row) => (row.ok ? '' : 'critical'),
            columns: [
              { label: 'test', value: (row) => (TEST_NAMES[row.name] ? t(TEST_NAMES[row.name]!) : row.name) },
              { label: 'result', value: (row) => verdict(row.ok) },
              { label: 'message', value: (row) => row.message },
            ],
          }),
        )
      : null,
  );
}

function IntegritySection(): ComponentChild {
  const [result, setResult] = useState<IntegrityResult | undefined>(undefined);
  const [lastError, setLastError] = useState<unknown>(undefined);
  const [progress, setProgress] = useState<{ percent?: number; seconds: number } | undefined>(undefined);
  const action = useAction();
  useEffect(() => {
    call<IntegrityResult>('GET', '/integrity/last').then(setResult, (failure: unknown) => {
      // No check has run yet: nothing to show, and nothing wrong.
      const neverRun = failure instanceof CallError && failure.error.code === 'E_NOT_FOUND' && !failure.error.message.startsWith('No such resource');
      if (!neverRun) setLastError(failure);
    });
  }, []);
  const check = (): Promise<void> =>
    action.run(async () => {
      const started = Date.now();
      setProgress({ seconds: 0 });
      // The check may report how far it is; between reports the time taken shows it is working.
      const timer = setInterval(() => setProgress((shown) => ({ ...shown, seconds: Math.round((Date.now() - started) / 1000) })), 1000);
      try {
        const done = await callStreaming<IntegrityResult>('POST', '/integrity/check', {}, (update) => {
          const { checked, total, percent } = (update ?? {}) as { checked?: number; total?: number; percent?: number };
          const share = typeof percent === 'number' ? percent : checked !== undefined && total ? (100 * checked) / total : undefined;
          setProgress((shown) => ({ seconds: shown?.seconds ?? 0, ...(share === undefined ? {} : { percent: share }) }));
        });
        setResult(done);
        setLastError(undefined);
        return `${t('integrityCheck')}: ${verdict(done.ok)}`;
      } finally {
        clearInterval(timer);
        setProgress(undefined);
      }
    });
  const report = (): Promise<void> =>
    action.run(async () => {
      if (!result) return undefined;
      const { blob, fileName } = await download('GET', `/integrity/report/${encodeURIComponent(result.id)}`, {
        fallbackName: `integrity-report-${result.id}.txt`,
      });
      saveBlob(blob, fileName);
      return `${t('downloaded')}: ${fileName}`;
    });
  const problems = result?.files.filter((file) => file.status !== VERIFIED).length ?? 0;
  return h(
    'section',
    { 'aria-label': t('integrityCheck') },
    h('h2', null, t('integrityCheck')),
    h('p', { class: 'hint' }, t('integrityHint')),
    h('button', { onClick: check, disabled: action.busy }, t('runIntegrityCheck')),
    result ? h('button', { onClick: report, disabled: action.busy }, t('downloadReport')) : null,
    progress
      ? h(
          'p',
          { role: 'status', class: 'progress' },
          `${t('progress')}: `,
          h('progress', { max: 100, ...(progress.percent === undefined ? {} : { value: progress.percent }), 'aria-label': t('integrityCheck') }),
          ` ${progress.percent === undefined ? '' : `${Math.round(progress.percent)}% · `}${progress.seconds} ${t('seconds')}`,
        )
      : null,
    h(ErrorLine, { error: action.error ?? lastError }),
    h(Notice, { text: action.done }),
    result
      ? h(
          Fragment,
          null,
          h(
            'p',
            { class: result.ok ? 'ok' : 'error' },
            `${t('lastCheck')}: ${localTime(result.finishedAt)} — ${verdict(result.ok)}; ${t('files')}: ${result.files.length}${problems ? `, ${t('violations')}: ${problems}` : ''}`,
          ),
          h(Table<IntegrityResult['files'][number]>, {
            name: t('integrityFiles'),
            rows: result.files,
            rowClass: (row) => (row.status === VERIFIED ? '' : 'critical'),
            columns: [
              { label: 'application', value: (row) => row.app },
              { label: 'file', value: (row) => row.path },
              { label: 'state', value: (row) => row.status },
            ],
          }),
        )
      : null,
  );
}
