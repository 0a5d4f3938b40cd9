/**
 * `--help` and `-h` (issue 13, finding 4): every command and subcommand of the three CLIs prints
 * its usage and does nothing else (exit 0, no gateway contacted, nothing created), wherever the
 * flag stands, and `CLI help COMMAND` is the same. The usage comes from each CLI's one
 * description of its commands, so every command of the description is walked here.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { ISOGATE_CLI, main as isogateMain } from '../../platform/cli/main.js';
import { SDK_CLI, main as sdkMain } from '../../sdk/cli/main.js';
import { type CliSpec, type CommandSpec, everyOption, runCli } from '../../sdk/cli/shell.js';
import { isIsogateError } from '../../sdk/errors.js';
import { STORE_CLI, main as storeMain } from '../../store-mock/cli.js';
import { type FakeGateway, fakeGateway, runMain } from '../fixtures/cli.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';

/** Every command path of a description, groups included, with its spec. */
function paths(specs: readonly CommandSpec[], above: string[] = []): [string[], CommandSpec][] {
  return specs.flatMap((spec) => [[[...above, spec.name], spec] as [string[], CommandSpec], ...paths(spec.commands ?? [], [...above, spec.name])]);
}

/** Enough positionals for the command to be valid, so that only --help can stop it from running. */
function sampleArgs(spec: CommandSpec): string[] {
  return (spec.args ?? []).filter((arg) => !arg.startsWith('[')).map((_, index) => `arg${index}`);
}

const ISOGATE_SKIPPED_IN_PROCESS = new Set(['start', 'demo']); // they would run a gateway here; spawned below

describe('--help and -h on every command of the three CLIs', function () {
  this.timeout(60_000);
  let work: string;
  let data: string;
  let gateway: FakeGateway;
  beforeEach(async () => {
    work = await makeTempDir();
    data = path.join(work, 'data');
    await fs.mkdir(data, { mode: 0o700 });
    gateway = await fakeGateway(data, {
      status: { version: 'fake', apps: { installed: 0, limit: 20, byStatus: {} }, routes: { active: 0, inactive: 0, error: 0 } },
      'apps.list': [],
      'apps.available': [],
      'routes.list': [],
    });
  });
  afterEach(async () => {
    await gateway.close();
    await removeDir(work);
  });

  async function assertHelpOnly(
    cli: CliSpec,
    main: (argv: string[]) => Promise<number>,
    argv: string[],
    commandPath: string[],
    created: string[] = [],
  ): Promise<void> {
    const result = await runMain(main, argv);
    assert.equal(result.code, 0, `${cli.name} ${argv.join(' ')} exits 0: ${result.stderr}`);
    assert.equal(result.stderr, '', `${cli.name} ${argv.join(' ')} reports nothing`);
    assert.ok(result.stdout.startsWith(`Usage: ${[cli.name, ...commandPath].join(' ')}`), `${cli.name} ${argv.join(' ')} prints its usage:\n${result.stdout}`);
    assert.match(result.stdout, /-h, --help/);
    for (const target of created) await assert.rejects(fs.lstat(target), { code: 'ENOENT' }, `${target} is not created`);
  }

  it('isogate: every command and group, with --help, -h (before or after the arguments) and help COMMAND; the gateway is never asked', async () => {
    let checked = 0;
    for (const [commandPath, spec] of paths(ISOGATE_CLI.commands)) {
      if (ISOGATE_SKIPPED_IN_PROCESS.has(commandPath[0]!)) continue;
      const args = sampleArgs(spec);
      await assertHelpOnly(ISOGATE_CLI, isogateMain, [...commandPath, ...args, '--help', '--data', data], commandPath);
      await assertHelpOnly(ISOGATE_CLI, isogateMain, [...commandPath, '-h', ...args, '--data', data], commandPath);
      await assertHelpOnly(ISOGATE_CLI, isogateMain, ['--data', data, 'help', ...commandPath], commandPath);
      checked += 1;
    }
    assert.ok(checked >= 25, `walked ${checked} commands`);
    // Options a command takes do not stop help either, nor a file they name being written.
    const archive = path.join(work, 'archive.tar.gz');
    await assertHelpOnly(ISOGATE_CLI, isogateMain, ['apps', 'logs', 'dev.example.app', '-o', archive, '--data', data, '-h'], ['apps', 'logs'], [archive]);
    assert.equal(gateway.requests.length, 0, 'no request reached the gateway');
    // The control case: without --help the same stand-in is asked.
    assert.equal((await runMain(isogateMain, ['status', '--data', data, '--json'])).code, 0);
    assert.deepEqual(
      gateway.requests.map((request) => request.op),
      ['status'],
    );
  });

  it('isogate-sdk: every command with --help, -h and help COMMAND; init and keygen create nothing', async () => {
    for (const [commandPath, spec] of paths(SDK_CLI.commands)) {
      if (spec.hidden) continue;
      const args = sampleArgs(spec);
      await assertHelpOnly(SDK_CLI, sdkMain, [...commandPath, ...args, '--help'], commandPath);
      await assertHelpOnly(SDK_CLI, sdkMain, [...commandPath, '-h', ...args], commandPath);
      await assertHelpOnly(SDK_CLI, sdkMain, ['help', ...commandPath], commandPath);
    }
    const project = path.join(work, 'project');
    const keys = path.join(work, 'keys');
    await assertHelpOnly(SDK_CLI, sdkMain, ['init', project, '--help'], ['init'], [project]);
    await assertHelpOnly(SDK_CLI, sdkMain, ['keygen', '--out', keys, '-h'], ['keygen'], [keys]);
  });

  it('isogate-store: every command with --help, -h and help COMMAND; no store directory or key is created', async () => {
    const store = path.join(work, 'store');
    const keys = path.join(work, 'keys');
    for (const [commandPath, spec] of paths(STORE_CLI.commands)) {
      const args = [...sampleArgs(spec), '--data', store];
      await assertHelpOnly(STORE_CLI, storeMain, [...commandPath, ...args, '--help'], commandPath, [store]);
      await assertHelpOnly(STORE_CLI, storeMain, [...commandPath, '-h', ...args], commandPath, [store]);
      await assertHelpOnly(STORE_CLI, storeMain, ['help', ...commandPath], commandPath);
    }
    await assertHelpOnly(
      STORE_CLI,
      storeMain,
      ['issue-publisher', '--data', store, '--name', 'Example', '--out', keys, '--help'],
      ['issue-publisher'],
      [store, keys],
    );
  });

  it('the bare --help of each CLI lists every command it has, and exits 0 (isogate-store answered E_USAGE before)', async () => {
    for (const [cli, main] of [
      [ISOGATE_CLI, isogateMain],
      [SDK_CLI, sdkMain],
      [STORE_CLI, storeMain],
    ] as const) {
      for (const argv of [['--help'], ['-h'], ['help']]) {
        const result = await runMain(main, argv);
        assert.equal(result.code, 0, `${cli.name} ${argv.join(' ')}: ${result.stderr}`);
        assert.doesNotMatch(result.stdout, /Coming later/, `${cli.name} promises no command it already has`);
        assert.doesNotMatch(result.stdout, /isogate demo [^\n]*--demo/, 'isogate demo is start --demo: it offers no --demo of its own');
        for (const [commandPath, spec] of paths(cli.commands)) {
          if (!spec.commands && !spec.hidden)
            assert.ok(result.stdout.includes(`${[cli.name, ...commandPath].join(' ')}`), `${cli.name} usage lists ${commandPath.join(' ')}`);
        }
      }
    }
  });

  it('each CLI describes every option once, with one type (the command words are found with all of them)', () => {
    for (const cli of [ISOGATE_CLI, SDK_CLI, STORE_CLI]) assert.doesNotThrow(() => everyOption(cli));
  });

  it('isogate start --help --data DIR and demo -h print the usage, start nothing and create no DIR (spawned, as a user runs it)', async () => {
    for (const argv of [
      ['start', '--help', '--data', path.join(work, 'new-gateway')],
      ['demo', '-h', '--data', path.join(work, 'new-gateway')],
      ['help', 'start', '--data', path.join(work, 'new-gateway')],
    ]) {
      const result = await new Promise<{ code: number; stdout: string }>((resolve) => {
        execFile(process.execPath, [path.resolve('bin/isogate.mjs'), ...argv], { timeout: 30_000 }, (error, stdout) => {
          resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout });
        });
      });
      assert.equal(result.code, 0, `isogate ${argv.join(' ')} exits 0 at once`);
      assert.match(result.stdout, new RegExp(`^Usage: isogate ${argv[0] === 'help' ? 'start' : argv[0]} `));
      await assert.rejects(fs.lstat(path.join(work, 'new-gateway')), { code: 'ENOENT' });
      await assert.rejects(fs.lstat(path.join(work, 'new-gateway-store')), { code: 'ENOENT' });
    }
  });
});

describe('a command line description (sdk/cli/shell.ts)', () => {
  const ran: string[][] = [];
  const cli: CliSpec = {
    name: 'tool',
    title: 'tool — a test',
    common: { json: { type: 'boolean', summary: 'JSON' } },
    commands: [
      {
        name: 'group',
        summary: 'A group.',
        commands: [
          {
            name: 'one',
            summary: 'Takes one argument.',
            args: ['ID', '[MORE]'],
            options: { out: { type: 'string', value: 'DIR', summary: 'where', required: true } },
            run: async (command) => {
              ran.push(command.positionals);
            },
          },
        ],
      },
    ],
  };

  async function usageError(argv: string[], pattern: RegExp): Promise<void> {
    const result = await runMain((args) => runCli(cli, args), argv);
    assert.equal(result.code, 2, `${argv.join(' ')}: ${result.stderr}`);
    assert.match(result.stderr, /^E_USAGE: /);
    assert.match(result.stderr, pattern);
  }

  it('checks the argument count, required options, unknown options and unknown commands before running anything', async () => {
    await usageError(['group', 'one', '--out', 'x'], /tool group one takes ID \[MORE\]; none was given/);
    await usageError(['group', 'one', 'a', 'b', 'c', '--out', 'x'], /takes ID \[MORE\]; 3 were given/);
    await usageError(['group', 'one', 'a'], /tool group one needs --out DIR: where/);
    await usageError(['group', 'one', 'a', '--out', 'x', '--bogus'], /Unknown option '--bogus'/);
    await usageError(['group', 'two'], /Unknown command "two" for tool group/);
    await usageError(['group'], /tool group needs a command: one/);
    // Node's parser writes some refusals on several lines; printed escaped they read "...ambiguous.\\nDid you...".
    const ambiguous = await runMain((args) => runCli(cli, args), ['group', 'one', 'a', '--out', '--json']);
    assert.equal(ambiguous.code, 2);
    assert.match(ambiguous.stderr, /^E_USAGE: Option '--out[^\n]*argument is ambiguous\. Did you forget to specify the option argument for '--out'\?/);
    assert.doesNotMatch(ambiguous.stderr.split('\n')[0]!, /\\n/);
    assert.deepEqual(ran, []);
    const result = await runMain((args) => runCli(cli, args), ['--json', 'group', 'one', 'a', '--out', 'x']);
    assert.equal(result.code, 0);
    assert.deepEqual(ran, [['a']], 'the command words are not among its positionals; an option before them is taken');
  });

  it('refuses a description that gives one option two types', () => {
    const broken: CliSpec = { ...cli, commands: [...cli.commands, { name: 'other', summary: 'x', options: { out: { type: 'boolean', summary: 'x' } } }] };
    assert.throws(
      () => everyOption(broken),
      (error: unknown) => isIsogateError(error, 'E_INTERNAL') && /--out is described twice/.test(error.message),
    );
  });

  it('a multiple option takes every value given, in order, and says so in its usage', async () => {
    let seen: unknown;
    const repeated: CliSpec = {
      ...cli,
      commands: [
        {
          name: 'many',
          summary: 'x',
          options: { file: { type: 'string', value: 'F', summary: 'a file', required: true, multiple: true } },
          run: async (command) => {
            seen = command.values.file;
          },
        },
      ],
    };
    assert.equal((await runMain((args) => runCli(repeated, args), ['many', '--file', 'a', '--file', 'b'])).code, 0);
    assert.deepEqual(seen, ['a', 'b']);
    const help = await runMain((args) => runCli(repeated, args), ['many', '--help']);
    assert.match(help.stdout, /Usage: tool many --file F\.\.\./);
    const broken: CliSpec = {
      ...repeated,
      commands: [...repeated.commands, { name: 'one', summary: 'x', options: { file: { type: 'string', summary: 'x' } } }],
    };
    assert.throws(() => everyOption(broken), /--file is described twice/);
  });
});
