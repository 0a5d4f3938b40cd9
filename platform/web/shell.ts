/**
 * The page the gateway sends for each of the web interface's paths: the document's head (the
 * hashed stylesheet and script) and the page's chrome (the menu for the session's role with the
 * current page marked, the page's heading, a loading line), so the browser paints the real page's
 * frame before its script has loaded and asked the API anything. The chrome is the same markup
 * web/main.ts renders, so nothing moves when the script takes over. It holds no data: without a
 * session it is the login card's heading, with one only the menu the manual's roles table gives
 * that role and the account's own name.
 */
import { DEFAULT_PAGE, MENU, type MenuEntry, pagePath, type Role } from '../../web/menu.js';
import { en } from '../../web/strings/en.js';
import { ru } from '../../web/strings/ru.js';

const STRINGS = { en, ru } as const;
export type Lang = keyof typeof STRINGS;
export const isLang = (value: unknown): value is Lang => value === 'en' || value === 'ru';

/** Who the page is for, from the request's session; undefined without a live one. */
export interface Viewer {
  role: Role;
  name: string;
  mustChange: boolean;
}

/** The hashed files' paths the document links. */
export interface ShellAssets {
  css: string;
  js: string;
}

const ESCAPES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
/** The account's name is the admin's to choose: it is text, never markup. */
export const escapeHtml = (text: string): string => text.replace(/[&<>"']/g, (c) => ESCAPES[c]!);

function head(lang: Lang, assets: ShellAssets, script: boolean): string {
  return [
    '<!doctype html>',
    `<html lang="${lang}">`,
    '<head>',
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    '<title>isogate</title>',
    '<link rel="icon" href="data:,">',
    `<link rel="stylesheet" href="${assets.css}">`,
    // A module script is deferred: the parser, and so the first paint, never waits for it.
    ...(script ? [`<script type="module" src="${assets.js}"></script>`] : []),
    '</head>',
  ].join('\n');
}

function chrome(page: MenuEntry, viewer: Viewer | undefined, lang: Lang): string {
  const t = STRINGS[lang];
  const loading = `<p class="loading" role="status">${escapeHtml(t.loading)}</p>`;
  const langButton = `<button class="lang">${escapeHtml(t.language)}</button>`;
  if (!viewer) {
    return `${langButton}<form class="card" aria-label="${escapeHtml(t.login)}"><h1>${escapeHtml(t.title)}</h1><p class="hint">${escapeHtml(t.loginHint)}</p>${loading}</form>`;
  }
  if (viewer.mustChange) return `${langButton}<form class="card" aria-label="${escapeHtml(t.change)}"><p>${escapeHtml(t.mustChange)}</p>${loading}</form>`;
  const links = MENU.filter((entry) => entry.roles.includes(viewer.role)).map((entry) =>
    entry.id === page.id
      ? `<a href="${pagePath(entry.id)}" class="current" aria-current="page">${escapeHtml(t[entry.label])}</a>`
      : `<a href="${pagePath(entry.id)}" class="">${escapeHtml(t[entry.label])}</a>`,
  );
  const who = `<span class="who">${escapeHtml(`${viewer.name} (${viewer.role})`)}</span>`;
  const nav = `<nav aria-label="menu"><strong>isogate</strong>${links.join('')}${who}<button>${escapeHtml(t.logout)}</button></nav>`;
  return `${langButton}<div class="shell">${nav}<main><h1>${escapeHtml(t[page.label])}</h1>${loading}</main></div>`;
}

/** The document for `page` as `viewer` sees it before the script runs. */
export function pageDocument(page: MenuEntry, viewer: Viewer | undefined, lang: Lang, assets: ShellAssets): string {
  return `${head(lang, assets, true)}
<body><div id="app">${chrome(page, viewer, lang)}</div><noscript>The isogate web interface needs JavaScript.</noscript></body>
</html>
`;
}

/** A page with the same head and stylesheet but no script and no chrome: the bench's baseline. */
export function staticDocument(assets: ShellAssets): string {
  return `${head('en', assets, false)}
<body><main><h1>${escapeHtml(en[MENU.find((entry) => entry.id === DEFAULT_PAGE)!.label])}</h1><p>A static page of the same server, for the first contentful paint's baseline.</p></main></body>
</html>
`;
}
