/**
 * `isogate-sdk run`: the app on the developer's machine in the harness, rebuilt and restarted on
 * every save of its sources or manifest, keeping its storage (and configuration) across
 * restarts as a push keeps them on a gateway. The type-check is not in front of the restart: it
 * starts once the app runs again, in another process, and reports when it finishes, so a save
 * is running within the bundler's and the isolate's time.
 */
import { watch } from 'node:fs';
import path from 'node:path';
import { buildProject } from '../build/project.js';
import { toIsogateError } from '../errors.js';
import { type HarnessApp, type HarnessOptions, type LogLevel, startApp } from './index.js';

export type DevLoopEvent =
  | { kind: 'running'; generation: number; ms: number }
  | { kind: 'failed'; generation: number; code: string; message: string }
  | { kind: 'log'; level: LogLevel; message: string }
  | { kind: 'emit'; endpoint: string; message: unknown };

export interface DevLoopOptions extends Pick<HarnessOptions, 'config' | 'egress'> {
  project: string;
  onEvent: (event: DevLoopEvent) => void;
  /** After each (re)start, e.g. to feed the fixture messages again. */
  afterStart?: (app: HarnessApp) => Promise<void>;
  /**
   * Called once a restart finished, running or failed: the type-check starts here, beside the
   * running app, so that it neither delays the restart nor competes with it for the CPU.
   */
  onRestarted?: () => void;
  /** How long saves are gathered into one restart. */
  debounceMs?: number;
}

export interface DevLoop {
  readonly current: HarnessApp | undefined;
  /** Rebuilds and restarts now (what a save does); resolves once it is running or failed. */
  reload(): Promise<void>;
  close(): Promise<void>;
}

export async function startDevLoop(options: DevLoopOptions): Promise<DevLoop> {
  const project = path.resolve(options.project);
  const storage = new Map<string, string | Uint8Array>();
  let current: HarnessApp | undefined;
  let generation = 0;
  let chain = Promise.resolve();
  let closed = false;

  const restart = async (): Promise<void> => {
    const started = performance.now();
    const mine = ++generation;
    try {
      // The manifest references are checked beside, with the type-check (onRestarted), not in front.
      const built = await buildProject(project, { checkReferences: false });
      await current?.stop();
      current = undefined;
      current = await startApp({
        project,
        built,
        storage,
        ...(options.config ? { config: options.config } : {}),
        ...(options.egress ? { egress: options.egress } : {}),
        onLog: (level, message) => options.onEvent({ kind: 'log', level, message }),
        onEmit: (endpoint, message) => options.onEvent({ kind: 'emit', endpoint, message }),
      });
      options.onEvent({ kind: 'running', generation: mine, ms: performance.now() - started });
      await options.afterStart?.(current);
    } catch (error) {
      const coded = toIsogateError(error);
      options.onEvent({ kind: 'failed', generation: mine, code: coded.code, message: coded.message });
    }
    options.onRestarted?.();
  };
  const reload = (): Promise<void> => {
    chain = chain.then(() => (closed ? undefined : restart()));
    return chain;
  };

  let timer: NodeJS.Timeout | undefined;
  const changed = (file: string | null): void => {
    if (file && /(^|[\\/])(node_modules|dist|\.git)([\\/]|$)/.test(file)) return;
    clearTimeout(timer);
    timer = setTimeout(() => void reload(), options.debounceMs ?? 30);
  };
  const watchers = [
    watch(path.join(project, 'src'), { recursive: true }, (_event, file) => changed(file)),
    watch(path.join(project, 'manifest.json'), () => changed(null)),
  ];

  await reload();
  return {
    get current() {
      return current;
    },
    reload,
    async close() {
      closed = true;
      clearTimeout(timer);
      for (const watcher of watchers) watcher.close();
      await chain;
      await current?.stop();
    },
  };
}
