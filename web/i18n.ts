/** The pages' two languages (the manual's language switch): the choice is kept in localStorage. */
import { en, type Key } from './strings/en.js';
import { ru } from './strings/ru.js';

export type { Key };

const tables = { en, ru } as const;
export type Lang = keyof typeof tables;

let lang: Lang = localStorage.getItem('isogate-lang') === 'ru' ? 'ru' : 'en';
export const currentLang = (): Lang => lang;
export function setLang(next: Lang): void {
  lang = next;
  localStorage.setItem('isogate-lang', next);
  document.documentElement.lang = next;
}
export const t = (key: Key): string => tables[lang][key];
