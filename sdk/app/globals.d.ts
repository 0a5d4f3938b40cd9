/**
 * The globals an app's isolate has besides the ECMAScript built-ins. Kept apart from the module
 * declaration because Node's own typings declare the same names for the platform's code.
 */
declare function setTimeout(callback: () => void, ms?: number): number;
declare function clearTimeout(handle: number | undefined): void;
declare function setInterval(callback: () => void, ms?: number): number;
declare function clearInterval(handle: number | undefined): void;
declare const console: {
  log(...values: unknown[]): void;
  info(...values: unknown[]): void;
  warn(...values: unknown[]): void;
  error(...values: unknown[]): void;
  debug(...values: unknown[]): void;
};
