/**
 * The manual's alarm icon: "When a critical event occurs, an exclamation mark is displayed next to
 * the Audit menu section". The newest Critical record of each log the account may read is polled
 * every 30 s (as the audit tables refresh); opening that log's page marks it seen, in this browser.
 */
import { useEffect, useState } from 'preact/hooks';
import { call } from './api.js';

import type { AuditLog } from './menu.js';

export type { AuditLog };

const SEEN_EVENT = 'isogate-critical-seen';
const seenKey = (log: AuditLog): string => `isogate-critical-seen-${log}`;
const seenSeq = (log: AuditLog): number => Number(localStorage.getItem(seenKey(log)) ?? 0);

/** Called by a log's page with the newest record it shows: what is shown is seen. */
export function markCriticalSeen(log: AuditLog, seq: number): void {
  if (seq <= seenSeq(log)) return;
  localStorage.setItem(seenKey(log), String(seq));
  dispatchEvent(new CustomEvent(SEEN_EVENT));
}

/** Which of `logs` hold a Critical record newer than the last one seen. */
export function useCriticalMarks(logs: readonly AuditLog[]): Partial<Record<AuditLog, boolean>> {
  const [newest, setNewest] = useState<Partial<Record<AuditLog, number>>>({});
  const [, setSeenTick] = useState(0);
  useEffect(() => {
    let live = true;
    const poll = async (): Promise<void> => {
      const found: Partial<Record<AuditLog, number>> = {};
      for (const log of logs) {
        const rows = await call<{ seq: number }[]>('GET', `/audit/${log}?severity=Critical&limit=1`, undefined, { background: true }).catch(() => []);
        found[log] = rows[0]?.seq ?? 0;
      }
      if (live) setNewest(found);
    };
    void poll();
    const timer = setInterval(() => void poll(), 30_000);
    const seen = (): void => setSeenTick((n) => n + 1);
    addEventListener(SEEN_EVENT, seen);
    return () => {
      live = false;
      clearInterval(timer);
      removeEventListener(SEEN_EVENT, seen);
    };
  }, [logs.join()]);
  return Object.fromEntries(logs.map((log) => [log, (newest[log] ?? 0) > seenSeq(log)]));
}
