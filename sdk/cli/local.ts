/**
 * The commands that run an app on the developer's machine: `test` (the project's own tests,
 * written with node's test runner, `node:test`'s describe/it, against the harness) and `run` (the
 * app in the harness, reloaded on save). Both run isolates, so they run in a Node started with
 * --no-node-snapshot, which isolated-vm needs on Node 20.
 */
import { spawn } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';
import { fail } from '../errors.js';
import type { HarnessApp } from '../harness/index.js';
import { escapeControls, safeJson } from '../text.js';

const ISOLATE_FLAG = '--no-node-snapshot';
export const HARNESS_IMPORT = '@isogate/sdk/harness';
const TEST_FILE = /\.test\.(ts|mts|js|mjs)$/;

/** The harness module beside this one: the SDK package's bundle, or the compiled (or source) tree in this repository. */
function harnessModule(): string {
  const candidates = ['./harness.mjs', '../harness/index.js', '../harness/index.ts'].map((relative) => fileURLToPath(new URL(relative, import.meta.url)));
  const found = candidates.find((file) => existsSync(file));
  if (!found) throw fail('E_INTERNAL', `The SDK's harness is missing (looked for ${candidates.join(', ')})`);
  return found;
}

async function findTests(dir: string): Promise<string[]> {
  const root = path.join(dir, 'test');
  const entries = await fs.readdir(root, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries
    .filter((entry) => entry.isFile() && TEST_FILE.test(entry.name))
    .map((entry) => path.join(entry.parentPath, entry.name))
    .filter((file) => !file.split(path.sep).includes('node_modules'))
    .sort();
}

/**
 * Bundles each test file (TypeScript welcome) with the harness import pointed at this SDK, and
 * runs them all in one Node with the isolate flag; the exit code is the test runner's.
 */
export async function runTests(projectDir: string, options: { files?: string[]; reporter?: string } = {}): Promise<number> {
  const dir = path.resolve(projectDir);
  if (!existsSync(path.join(dir, 'manifest.json')))
    throw fail('E_BUILD', `${dir} has no manifest.json: is it an isogate project? (isogate-sdk init creates one)`);
  const files = options.files?.length ? options.files.map((file) => path.resolve(file)) : await findTests(dir);
  if (!files.length) throw fail('E_NOT_FOUND', `No tests in ${path.join(dir, 'test')} (files named *.test.ts)`);
  const harness = harnessModule();
  const out = await fs.mkdtemp(path.join(tmpdir(), 'isogate-sdk-test-'));
  try {
    try {
      await esbuild.build({
        entryPoints: files,
        bundle: true,
        format: 'esm',
        platform: 'node',
        target: 'node20',
        outdir: out,
        outbase: dir,
        outExtension: { '.js': '.mjs' },
        sourcemap: 'inline',
        logLevel: 'silent',
        absWorkingDir: dir,
        plugins: [
          {
            name: 'isogate-harness',
            setup(build) {
              build.onResolve({ filter: /^@isogate\/sdk\/harness$/ }, () => ({ path: harness, external: true }));
            },
          },
        ],
      });
    } catch (error) {
      const first = (error as esbuild.BuildFailure).errors?.[0];
      const where = first?.location ? `${first.location.file}:${first.location.line}:${first.location.column}: ` : '';
      throw fail('E_BUILD', `The tests do not build: ${where}${first?.text ?? (error as Error).message}`);
    }
    const bundles = files.map((file) => path.join(out, path.relative(dir, file)).replace(/\.(ts|mts|js|mjs)$/, '.mjs'));
    const entry = path.join(out, 'run-all.mjs');
    await fs.writeFile(entry, bundles.map((file) => `await import(${JSON.stringify(new URL(`file://${file}`).href)});`).join('\n'));
    const loader = harness.endsWith('.ts') ? ['--import', 'tsx'] : [];
    const child = spawn(process.execPath, [ISOLATE_FLAG, '--enable-source-maps', ...loader, `--test-reporter=${options.reporter ?? 'spec'}`, entry], {
      cwd: dir,
      stdio: 'inherit',
    });
    return await new Promise<number>((resolve) => child.on('exit', (code) => resolve(code ?? 1)));
  } finally {
    await fs.rm(out, { recursive: true, force: true });
  }
}

/** A fixture line: `{"endpoint": "input", "message": {...}}` or `input {"value": 1}`. */
export function parseFixtureLine(line: string): { endpoint: string; message: unknown } | undefined {
  const text = line.trim();
  if (!text || text.startsWith('#')) return undefined;
  if (text.startsWith('{')) {
    const parsed = JSON.parse(text) as { endpoint?: unknown; message?: unknown };
    if (typeof parsed.endpoint !== 'string') throw fail('E_USAGE', `A fixture line names its endpoint: ${escapeControls(text.slice(0, 80))}`);
    return { endpoint: parsed.endpoint, message: parsed.message };
  }
  const space = text.search(/\s/);
  if (space < 0) throw fail('E_USAGE', `A fixture line is "ENDPOINT JSON": ${escapeControls(text.slice(0, 80))}`);
  return { endpoint: text.slice(0, space), message: JSON.parse(text.slice(space + 1)) };
}

async function feed(app: HarnessApp, line: string, print: (text: string) => void): Promise<void> {
  try {
    const fixture = parseFixtureLine(line);
    if (fixture) await app.send(fixture.endpoint, fixture.message);
  } catch (error) {
    const coded = error as { code?: string; message: string };
    print(`! ${coded.code ?? 'E_USAGE'}: ${escapeControls(coded.message)}`);
  }
}

/** The CLI's `run`: in this process when it has the isolate flag, else in a child Node that has it. */
export async function runCommand(projectDir: string, options: { messages?: string; config?: string }): Promise<number> {
  if (!process.execArgv.includes(ISOLATE_FLAG)) {
    const loader = fileURLToPath(import.meta.url).endsWith('.ts') ? ['--import', 'tsx'] : [];
    const child = spawn(process.execPath, [ISOLATE_FLAG, ...loader, process.argv[1]!, ...process.argv.slice(2)], { stdio: 'inherit' });
    for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => child.kill(signal));
    return new Promise((resolve) => child.on('exit', (code) => resolve(code ?? 0)));
  }
  const dir = path.resolve(projectDir);
  const print = (text: string): void => {
    process.stdout.write(`${text}\n`);
  };
  const config = options.config ? (JSON.parse(await fs.readFile(path.resolve(options.config), 'utf8')) as Record<string, unknown>) : undefined;
  const fixtures = options.messages ? (await fs.readFile(path.resolve(options.messages), 'utf8')).split('\n') : [];
  const { startDevLoop } = await import('../harness/dev-loop.js');
  let checking: ReturnType<typeof spawn> | undefined;
  const loop = await startDevLoop({
    project: dir,
    ...(config ? { config } : {}),
    onRestarted: () => {
      // The type-check beside the restart, in its own process: it reports when it finishes.
      checking?.kill();
      const loader = fileURLToPath(import.meta.url).endsWith('.ts') ? ['--import', 'tsx'] : [];
      const child = spawn(process.execPath, [...loader, process.argv[1]!, 'check', dir, '--json'], { stdio: ['ignore', 'pipe', 'ignore'] });
      checking = child;
      let output = '';
      child.stdout!.on('data', (chunk: Buffer) => {
        output += chunk;
      });
      child.on('exit', (code, signal) => {
        if (signal) return;
        if (code === 0) return print('[types] OK');
        const errors =
          (
            JSON.parse(output || '{}') as {
              error?: { details?: { errors?: { file: string; line: number; column: number; text: string }[] }; message?: string };
            }
          ).error ?? {};
        const list = errors.details?.errors ?? [];
        print(`[types] ${list.length || 'some'} problem(s):`);
        for (const problem of list.slice(0, 10)) print(`  ${problem.file}:${problem.line}:${problem.column}: ${escapeControls(problem.text)}`);
        if (!list.length && errors.message) print(`  ${escapeControls(errors.message)}`);
      });
    },
    afterStart: async (app) => {
      for (const line of fixtures) await feed(app, line, print);
    },
    onEvent: (event) => {
      if (event.kind === 'running')
        print(`[run] running (${event.generation === 1 ? 'started' : 'reloaded'} in ${Math.round(event.ms)} ms); messages on stdin as: ENDPOINT JSON`);
      else if (event.kind === 'failed') print(`[run] ${event.code}: ${escapeControls(event.message)} (waiting for the next save)`);
      else if (event.kind === 'log') print(`[${event.level}] ${escapeControls(event.message)}`);
      else print(`-> ${event.endpoint} ${safeJson(event.message)}`);
    },
  });
  const lines = createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    if (loop.current) void feed(loop.current, line, print);
    else print('! the app is not running; fix it and save');
  });
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  lines.close();
  checking?.kill();
  await loop.close();
  return 0;
}
