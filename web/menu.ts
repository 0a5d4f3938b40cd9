/**
 * The menu: the manual's "Sections of the web interface available to the administrator and
 * user", one entry a page, each at its own path. Plain data, no DOM: the gateway renders the same
 * menu into the page it sends (platform/web/shell.ts), so the chrome paints before the script runs.
 */
import type { Key } from './strings/en.js';

export type Role = 'admin' | 'user';
export type AuditLog = 'system' | 'firewall';

export interface MenuEntry {
  id: string;
  label: Key;
  roles: readonly Role[];
  /** The audit log whose Critical events mark this entry of the menu. */
  alarm?: AuditLog;
}

export const MENU: readonly MenuEntry[] = [
  { id: 'status', label: 'status', roles: ['admin', 'user'] },
  { id: 'apps', label: 'apps', roles: ['admin', 'user'] },
  { id: 'routing', label: 'routing', roles: ['admin'] },
  { id: 'certs', label: 'certs', roles: ['admin'] },
  { id: 'np', label: 'np', roles: ['admin'] },
  { id: 'events', label: 'events', roles: ['admin', 'user'], alarm: 'firewall' },
  { id: 'audit', label: 'audit', roles: ['admin'], alarm: 'system' },
  { id: 'diag', label: 'diag', roles: ['admin'] },
  { id: 'settings', label: 'settings', roles: ['admin'] },
  { id: 'users', label: 'users', roles: ['admin'] },
];

export const DEFAULT_PAGE = 'status';

/** A page's path: `/` is the first page's. */
export const pagePath = (id: string): string => `/${id}`;

/** The entry at `pathname` (`/` and `/index.html` are the first page), or undefined for any other path. */
export function pageAt(pathname: string): MenuEntry | undefined {
  const id = pathname === '/' || pathname === '/index.html' ? DEFAULT_PAGE : pathname.slice(1);
  return MENU.find((entry) => entry.id === id);
}

/** The cookie the language switch sets beside localStorage, so the gateway sends the chrome in that language. */
export const LANG_COOKIE = 'isogate-lang';
