/**
 * The pages' two languages (the manual's language switch): the choice is kept in localStorage,
 * and in a cookie so that the gateway sends the page's chrome in it too (platform/web/shell.ts).
 */
import { LANG_COOKIE } from './menu.js';
import { en, type Key } from './strings/en.js';
import { ru } from './strings/ru.js';

export type { Key };

const tables = { en, ru } as const;
export type Lang = keyof typeof tables;

const remember = (next: Lang): void => {
  // Not HttpOnly: it is the page's own choice, and says nothing about the session. The value is one
  // of two fixed words (nothing to escape); the Cookie Store API is not in every browser the admin may use.
  // biome-ignore lint/suspicious/noDocumentCookie: see above
  document.cookie = `${LANG_COOKIE}=${next}; Path=/; Secure; SameSite=Strict; Max-Age=31536000`;
};

let lang: Lang = localStorage.getItem('isogate-lang') === 'ru' ? 'ru' : 'en';
remember(lang);
export const currentLang = (): Lang => lang;
export function setLang(next: Lang): void {
  lang = next;
  localStorage.setItem('isogate-lang', next);
  remember(next);
  document.documentElement.lang = next;
}
export const t = (key: Key): string => tables[lang][key];
