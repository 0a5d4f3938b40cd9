/**
 * `isogate-sdk run`: the app on the developer's machine in the harness, rebuilt and restarted on
 * every save of its sources or manifest, keeping its storage (and configuration) across
 * restarts as a push keeps them on a gateway. The type-check is not in front of the restart: it
 * starts once the app runs again, in another process, and reports when it finishes, so a save
 * is running within the bundler's and the isolate's time.
 */
import { promises as fs, watch } from 'node:fs';
import path from 'node:path';
import { PreparedIsolate } from '../../platform/sandbox/index.js';
import { openProjectBundler } from '../build/project.js';
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
  /** How long saves are gathered into one restart (default 10 ms: one save's events come within a millisecond or two). */
  debounceMs?: number;
}

export interface DevLoop {
  readonly current: HarnessApp | undefined;
  /** Rebuilds and restarts now (what a save does); resolves once it is running or failed. */
  reload(): Promise<void>;
  close(): Promise<void>;
}

/** What the sources were when a build read them: size and mtime per file, so a repeated event changes nothing. */
async function fingerprint(files: Iterable<string>): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const file of files) {
    const stat = await fs.stat(file, { bigint: true }).catch(() => undefined);
    out.set(file, stat ? `${stat.size}:${stat.mtimeNs}` : 'absent');
  }
  return out;
}

function sameFingerprint(a: Map<string, string>, b: Map<string, string>): boolean {
  if (a.size !== b.size) return false;
  for (const [file, value] of a) if (b.get(file) !== value) return false;
  return true;
}

export async function startDevLoop(options: DevLoopOptions): Promise<DevLoop> {
  const project = path.resolve(options.project);
  const storage = new Map<string, string | Uint8Array>();
  const bundler = openProjectBundler(project);
  const manifestFile = path.join(project, 'manifest.json');
  let current: HarnessApp | undefined;
  let generation = 0;
  let chain = Promise.resolve();
  let queued: Promise<void> | undefined;
  let closed = false;
  /** The files the last build read, as they were just before it read them. */
  let built: Map<string, string> | undefined;
  /**
   * The next app's isolate, made while a save's events are gathered (the debounce, when this
   * thread has nothing else to do) for the manifest last built: the restart then only compiles
   * and runs the new bundle. A sandbox whose manifest asks for another memory limit makes its own.
   */
  let next: PreparedIsolate | undefined;
  const prepareNext = (): void => {
    if (closed || next?.available || !current) return;
    next = new PreparedIsolate(current.manifest);
  };

  const restart = async (force: boolean): Promise<void> => {
    // One save is often several watcher events (a truncate, then the write; an editor's
    // temporary and its rename): an event for files the last build already read as they are is
    // no reason to restart the app again.
    const before = await fingerprint(built?.keys() ?? [manifestFile]);
    if (!force && built && sameFingerprint(before, built)) return;
    const started = performance.now();
    const mine = ++generation;
    try {
      // The manifest references are checked beside, with the type-check (onRestarted), not in front.
      const bundle = await bundler.bundle();
      const read = new Set([manifestFile, ...bundle.sources]);
      const added = await fingerprint([...read].filter((file) => !before.has(file)));
      built = new Map([...[...before].filter(([file]) => read.has(file)), ...added]);
      await current?.stop();
      current = undefined;
      const prepared = next;
      next = undefined;
      try {
        current = await startApp({
          project,
          built: bundle,
          storage,
          ...(prepared ? { prepared } : {}),
          ...(options.config ? { config: options.config } : {}),
          ...(options.egress ? { egress: options.egress } : {}),
          onLog: (level, message) => options.onEvent({ kind: 'log', level, message }),
          onEmit: (endpoint, message) => options.onEvent({ kind: 'emit', endpoint, message }),
        });
      } finally {
        // Not taken when the start failed before its sandbox (a configuration refused).
        prepared?.dispose();
      }
      options.onEvent({ kind: 'running', generation: mine, ms: performance.now() - started });
      await options.afterStart?.(current);
    } catch (error) {
      // A failed build is tried again on the next event even for the same files (a missing
      // import may have been created since).
      built = undefined;
      const coded = toIsogateError(error);
      options.onEvent({ kind: 'failed', generation: mine, code: coded.code, message: coded.message });
    }
    options.onRestarted?.();
  };
  /**
   * Saves during a restart gather into one more restart, queued behind it, which reads the files
   * as they are when it begins; never one restart per event.
   */
  const schedule = (force: boolean): Promise<void> => {
    if (queued && !force) return queued;
    const next = chain.then(() => {
      if (queued === next) queued = undefined;
      return closed ? undefined : restart(force);
    });
    queued = next;
    chain = next;
    return next;
  };

  let timer: NodeJS.Timeout | undefined;
  const changed = (file: string | null): void => {
    if (file && /(^|[\\/])(node_modules|dist|\.git)([\\/]|$)/.test(file)) return;
    clearTimeout(timer);
    timer = setTimeout(() => void schedule(false), options.debounceMs ?? 10);
    prepareNext();
  };
  const watchers = [
    watch(path.join(project, 'src'), { recursive: true }, (_event, file) => changed(file)),
    // The project directory, not the manifest file: an editor that saves by writing a temporary
    // and renaming it over manifest.json replaces the file, and a watcher on it would go quiet.
    watch(project, (_event, file) => {
      if (file === null || file === 'manifest.json') changed(null);
    }),
  ];

  await schedule(true);
  return {
    get current() {
      return current;
    },
    reload: () => schedule(true),
    async close() {
      closed = true;
      clearTimeout(timer);
      for (const watcher of watchers) watcher.close();
      await chain;
      next?.dispose();
      await current?.stop();
      await bundler.dispose();
    },
  };
}
