/**
 * The Application log (the manual's "Application log"): a live tail that follows new lines while
 * it is open (GET /apps/{id}/logs/lines?follow=true, ndjson), with pause and resume and each
 * line's level shown, and the log archive downloaded with its progress (bytes received of the
 * size GET /apps/{id}/logs estimates: the archive is compressed as it is sent, so no length
 * comes before it).
 */
import { type ComponentChild, h } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { call, downloadCounted, follow } from '../api.js';
import { t } from '../i18n.js';
import { ErrorLine, Notice, saveBlob, useAction } from '../ui.js';

/** What the page keeps: the newest lines; older ones are in the files (and the archive). */
const SHOWN_LINES = 500;
/** Lines held while paused; past it the oldest held go, counted. */
const HELD_LINES = 5000;
const TAIL = 100;

export interface LogLine {
  time: string;
  level: string;
  source: string;
  text: string;
}

/** `2026-12-02T10:00:00.000Z INFO     [app] text`, as platform/logs writes it; a line of another shape is shown whole. */
export function parseLogLine(line: string): LogLine {
  const match = /^(\S+) (\S+)\s+\[([a-z]+)\] (.*)$/s.exec(line);
  return match ? { time: match[1]!, level: match[2]!, source: match[3]!, text: match[4]! } : { time: '', level: '', source: '', text: line };
}

function formatBytes(bytes: number): string {
  return bytes < 1024 ? `${bytes} B` : bytes < 1024 * 1024 ? `${(bytes / 1024).toFixed(1)} KiB` : `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

export function LogPanel({ id, onClose }: { id: string; onClose: () => void }): ComponentChild {
  const [lines, setLines] = useState<LogLine[]>([]);
  const [paused, setPaused] = useState(false);
  const [ended, setEnded] = useState(false);
  const [error, setError] = useState<unknown>(undefined);
  const [notShown, setNotShown] = useState(0);
  const held = useRef<LogLine[]>([]);
  const pausedRef = useRef(false);
  const show = (more: LogLine[]): void => setLines((shown) => [...shown, ...more].slice(-SHOWN_LINES));

  useEffect(() => {
    const abort = new AbortController();
    setLines([]);
    setEnded(false);
    setError(undefined);
    held.current = [];
    follow<{ dropped: number }>(
      `/apps/${id}/logs/lines?tail=${TAIL}&follow=true`,
      (update) => {
        const batch = ((update as { lines?: string[] }).lines ?? []).map(parseLogLine);
        if (!pausedRef.current) return show(batch);
        held.current.push(...batch);
        const over = held.current.length - HELD_LINES;
        if (over > 0) {
          held.current.splice(0, over);
          setNotShown((count) => count + over);
        }
      },
      abort.signal,
    ).then(
      (result) => {
        if (abort.signal.aborted) return;
        setEnded(true);
        if (result?.dropped) setNotShown((count) => count + result.dropped);
      },
      (failure: unknown) => {
        if (!abort.signal.aborted) setError(failure);
      },
    );
    return () => abort.abort();
  }, [id]);

  const toggle = (): void => {
    pausedRef.current = !paused;
    if (paused) {
      show(held.current);
      held.current = [];
    }
    setPaused(!paused);
  };
  const name = `${t('appLog')} ${id}`;
  return h(
    'section',
    { class: 'card', 'aria-label': name },
    h('h2', null, `${t('appLog')}: ${id}`),
    h(
      'p',
      { role: 'status', class: 'hint' },
      ended ? t('tailEnded') : paused ? t('pausedTail') : t('following'),
      notShown > 0 ? ` (${notShown} ${t('linesDropped')})` : '',
    ),
    h('button', { onClick: toggle, disabled: ended, 'aria-pressed': paused }, paused ? t('resume') : t('pause')),
    h('button', { onClick: onClose }, t('close')),
    h(ErrorLine, { error }),
    h(
      'div',
      { class: 'log' },
      h(
        'table',
        { 'aria-label': name },
        h('thead', null, h('tr', null, h('th', null, t('time')), h('th', null, t('level')), h('th', null, t('source')), h('th', null, t('message')))),
        h(
          'tbody',
          null,
          lines.length === 0
            ? h('tr', null, h('td', { colSpan: 4 }, t('none')))
            : lines.map((line) =>
                h(
                  'tr',
                  { class: `level-${line.level.toLowerCase()}` },
                  h('td', null, line.time),
                  h('td', null, line.level),
                  h('td', null, line.source),
                  h('td', null, line.text),
                ),
              ),
        ),
      ),
    ),
    h(ArchiveDownload, { id }),
  );
}

function ArchiveDownload({ id }: { id: string }): ComponentChild {
  const [progress, setProgress] = useState<{ received: number; total: number } | undefined>(undefined);
  const action = useAction();
  const start = (): Promise<void> =>
    action.run(async () => {
      const info = await call<{ fileName: string; estimatedBytes: number }>('GET', `/apps/${id}/logs`);
      setProgress({ received: 0, total: info.estimatedBytes });
      const { blob, fileName } = await downloadCounted(
        `/apps/${id}/logs/archive`,
        (received) => setProgress({ received, total: Math.max(info.estimatedBytes, received) }),
        info.fileName,
      );
      setProgress({ received: blob.size, total: blob.size });
      saveBlob(blob, fileName);
      return `${t('downloaded')}: ${fileName} (${formatBytes(blob.size)})`;
    });
  return h(
    'div',
    null,
    h('button', { onClick: start, disabled: action.busy }, t('downloadArchive')),
    progress
      ? h(
          'p',
          { class: 'progress' },
          h('progress', { max: progress.total, value: progress.received, 'aria-label': `${t('downloadArchive')} ${id}` }),
          ` ${t('received')} ${formatBytes(progress.received)} ${t('ofAbout')} ${formatBytes(progress.total)}`,
        )
      : null,
    h(ErrorLine, { error: action.error }),
    h(Notice, { text: action.done }),
  );
}
