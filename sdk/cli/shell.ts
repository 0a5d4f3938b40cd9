/**
 * What the three command lines (isogate, isogate-sdk, isogate-store) share. Each describes its
 * commands once, as data (name, arguments, options, one-line summary); the parser, the usage
 * text and every command's `--help` are derived from that description, so they cannot drift
 * apart. `--help` / `-h` anywhere, or `CLI help COMMAND`, prints help and runs nothing.
 *
 * Bad usage is E_USAGE, and a failure ends as `CODE: sentence` on stderr (plus the error as
 * JSON on stdout with --json), exit 2 for usage and 1 otherwise.
 */
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { fail, toIsogateError } from '../errors.js';
import { escapeControls, safeJson } from '../text.js';

export interface OptionSpec {
  readonly type: 'string' | 'boolean';
  readonly short?: string;
  /** The value's placeholder in usage text (`--data DIR`); string options only. */
  readonly value?: string;
  readonly summary: string;
  /** The command cannot run without it. */
  readonly required?: boolean;
  /** A string option that may be given more than once: its value is then every one, in order. */
  readonly multiple?: boolean;
}

export type OptionSpecs = Readonly<Record<string, OptionSpec>>;

/** What a command's `run` is given: its own positionals (command words removed) and options. */
export interface ParsedCommand {
  readonly path: readonly string[];
  readonly positionals: string[];
  readonly values: Record<string, string | boolean | string[] | undefined>;
  readonly json: boolean;
}

export interface CommandSpec {
  readonly name: string;
  readonly summary: string;
  /** Positional arguments in order; `[X]` is optional, `[X...]` any number. Their count is checked before `run`. */
  readonly args?: readonly string[];
  readonly options?: OptionSpecs;
  /** A sentence or two shown by `--help` below the summary. */
  readonly details?: string;
  // biome-ignore lint/suspicious/noConfusingVoidType: a command resolves with its exit code, or with nothing for 0
  readonly run?: (command: ParsedCommand) => Promise<number | void>;
  readonly commands?: readonly CommandSpec[];
  /** Known (its own sentence when used) but not listed: announced elsewhere, not usable yet. */
  readonly hidden?: boolean;
}

export interface CliSpec {
  readonly name: string;
  readonly title: string;
  /** Options every command takes (besides --help). */
  readonly common: OptionSpecs;
  readonly footer?: string;
  readonly commands: readonly CommandSpec[];
}

const HELP_OPTION: OptionSpec = { type: 'boolean', short: 'h', summary: 'show this help and do nothing else' };

function allOptions(cli: CliSpec, spec?: CommandSpec): OptionSpecs {
  return { ...cli.common, ...(spec?.options ?? {}), help: HELP_OPTION };
}

function parseConfig(options: OptionSpecs): NonNullable<ParseArgsConfig['options']> {
  return Object.fromEntries(
    Object.entries(options).map(([name, option]) => [
      name,
      { type: option.type, ...(option.short ? { short: option.short } : {}), ...(option.multiple ? { multiple: true } : {}) },
    ]),
  );
}

/**
 * Every option of every command, for finding the command words before the command is known: a
 * string option's value must not be taken for a command word. Two commands giving one option
 * name different types is a mistake in a description, found by the CLIs' tests.
 */
export function everyOption(cli: CliSpec): OptionSpecs {
  const merged: Record<string, OptionSpec> = { ...allOptions(cli) };
  const visit = (specs: readonly CommandSpec[]): void => {
    for (const spec of specs) {
      for (const [name, option] of Object.entries(spec.options ?? {})) {
        const known = merged[name];
        if (known && (known.type !== option.type || known.short !== option.short || Boolean(known.multiple) !== Boolean(option.multiple))) {
          throw fail('E_INTERNAL', `${cli.name}: the option --${name} is described twice, differently`);
        }
        merged[name] = option;
      }
      visit(spec.commands ?? []);
    }
  };
  visit(cli.commands);
  return merged;
}

function optionUsage(name: string, option: OptionSpec): string {
  const flag = option.short ? `-${option.short}` : `--${name}`;
  const text = option.type === 'string' ? `${flag} ${option.value ?? 'VALUE'}` : flag;
  const repeated = option.multiple ? `${text}...` : text;
  return option.required ? repeated : `[${repeated}]`;
}

function usageLine(cli: CliSpec, path: readonly string[], spec: CommandSpec): string {
  const words = [cli.name, ...path];
  if (spec.commands) words.push('COMMAND');
  words.push(...(spec.args ?? []));
  for (const [name, option] of Object.entries(spec.options ?? {})) words.push(optionUsage(name, option));
  return words.join(' ');
}

function optionRows(options: OptionSpecs): string[] {
  const rows = Object.entries(options).map(
    ([name, option]) =>
      [`${option.short ? `-${option.short}, ` : ''}--${name}${option.type === 'string' ? ` ${option.value ?? 'VALUE'}` : ''}`, option.summary] as const,
  );
  const width = Math.max(...rows.map(([left]) => left.length));
  return rows.map(([left, right]) => `  ${left.padEnd(width)}  ${right}`);
}

function leaves(specs: readonly CommandSpec[], path: readonly string[] = []): [string[], CommandSpec][] {
  return specs
    .filter((spec) => !spec.hidden)
    .flatMap((spec) => (spec.commands ? leaves(spec.commands, [...path, spec.name]) : [[[...path, spec.name], spec] as [string[], CommandSpec]]));
}

/** The whole CLI in a screen: every command's usage line. */
export function cliUsage(cli: CliSpec): string {
  return [
    cli.title,
    '',
    ...leaves(cli.commands).map(([path, spec]) => `  ${usageLine(cli, path, spec)}`),
    '',
    `Run "${cli.name} COMMAND --help" (or "${cli.name} help COMMAND") for what a command does and its options.`,
    ...(cli.footer ? [cli.footer] : []),
  ].join('\n');
}

/** One command's (or group's) help: usage, what it does, its options, or its subcommands. */
export function commandHelp(cli: CliSpec, path: readonly string[], spec: CommandSpec): string {
  const lines = [`Usage: ${usageLine(cli, path, spec)}`, '', spec.summary];
  if (spec.details) lines.push('', spec.details);
  if (spec.commands) {
    const listed = spec.commands.filter((sub) => !sub.hidden);
    const width = Math.max(...listed.map((sub) => sub.name.length));
    lines.push('', 'Commands:', ...listed.map((sub) => `  ${sub.name.padEnd(width)}  ${sub.summary}`));
    lines.push('', `Run "${cli.name} ${path.join(' ')} COMMAND --help" for a command's arguments and options.`);
  }
  lines.push('', 'Options:', ...optionRows(allOptions(cli, spec.commands ? undefined : spec)));
  return lines.join('\n');
}

interface Resolved {
  path: string[];
  spec?: CommandSpec;
  /** argv without the command words. */
  rest: string[];
  /** A command word that names nothing. */
  unknown?: string;
}

/** Node's argument parser words some refusals on several lines; a usage error is one line, as every other. */
function parserMessage(error: unknown): string {
  return (error as Error).message.replace(/\s*\n\s*/g, ' ');
}

/** Finds the command words (the first positionals, one per level) without running anything. */
function resolve(cli: CliSpec, argv: string[]): Resolved & { help: boolean } {
  let tokens: NonNullable<ReturnType<typeof parseArgs>['tokens']>;
  try {
    ({ tokens } = parseArgs({ args: argv, options: parseConfig(everyOption(cli)), allowPositionals: true, strict: false, tokens: true }));
  } catch (error) {
    throw fail('E_USAGE', parserMessage(error));
  }
  const help = tokens.some((token) => token.kind === 'option' && token.name === 'help');
  const positionals = tokens.filter((token) => token.kind === 'positional');
  const path: string[] = [];
  const consumed = new Set<number>();
  let level: readonly CommandSpec[] | undefined = cli.commands;
  let spec: CommandSpec | undefined;
  let index = 0;
  // `help COMMAND...` is the same as `COMMAND... --help`.
  const asking = positionals[0]?.value === 'help';
  if (asking) consumed.add(positionals[index++]!.index);
  while (level && index < positionals.length) {
    const token = positionals[index]!;
    const next: CommandSpec | undefined = level.find((candidate) => candidate.name === token.value);
    if (!next) return { path, ...(spec ? { spec } : {}), rest: [], unknown: token.value, help: help || asking };
    consumed.add(token.index);
    path.push(next.name);
    spec = next;
    level = next.commands;
    index++;
  }
  return { path, ...(spec ? { spec } : {}), rest: argv.filter((_, at) => !consumed.has(at)), help: help || asking };
}

function argumentRange(args: readonly string[]): [min: number, max: number] {
  return [args.filter((arg) => !arg.startsWith('[')).length, args.some((arg) => arg.endsWith('...]') || arg.endsWith('...')) ? Infinity : args.length];
}

/** Parses a resolved leaf command's own arguments strictly against its description. */
function parseCommand(cli: CliSpec, path: readonly string[], spec: CommandSpec, rest: string[]): ParsedCommand {
  const options = allOptions(cli, spec);
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: rest, options: parseConfig(options), allowPositionals: true, strict: true });
  } catch (error) {
    throw fail('E_USAGE', parserMessage(error));
  }
  const values = parsed.values as Record<string, string | boolean | string[] | undefined>;
  const [min, max] = argumentRange(spec.args ?? []);
  const count = parsed.positionals.length;
  if (count < min || count > max) {
    const expected = (spec.args ?? []).join(' ') || 'no arguments';
    throw fail('E_USAGE', `${cli.name} ${path.join(' ')} takes ${expected}; ${count === 0 ? 'none was' : `${count} ${count === 1 ? 'was' : 'were'}`} given`);
  }
  for (const [name, option] of Object.entries(options)) {
    if (option.required && values[name] === undefined)
      throw fail('E_USAGE', `${cli.name} ${path.join(' ')} needs --${name} ${option.value ?? 'VALUE'}: ${option.summary}`);
  }
  return { path, positionals: parsed.positionals, values, json: values.json === true };
}

/**
 * Runs a command line against its description: help where asked (exit 0, nothing else runs),
 * the CLI's usage with no command (exit 2), otherwise the command, with failures reported.
 */
export async function runCli(cli: CliSpec, argv: string[]): Promise<number> {
  const json = argv.includes('--json');
  let usage = cliUsage(cli);
  try {
    const resolved = resolve(cli, argv);
    const { path, spec } = resolved;
    if (spec) usage = commandHelp(cli, path, spec);
    if (resolved.unknown !== undefined) {
      const where = spec ? `${cli.name} ${path.join(' ')}` : cli.name;
      throw fail('E_USAGE', `Unknown command "${resolved.unknown}" for ${where}`);
    }
    if (resolved.help) {
      process.stdout.write(`${spec ? commandHelp(cli, path, spec) : cliUsage(cli)}\n`);
      return 0;
    }
    if (!spec) {
      process.stdout.write(`${cliUsage(cli)}\n`);
      return 2;
    }
    if (spec.commands) throw fail('E_USAGE', `${cli.name} ${path.join(' ')} needs a command: ${spec.commands.map((sub) => sub.name).join(', ')}`);
    const command = parseCommand(cli, path, spec, resolved.rest);
    return (await spec.run?.(command)) ?? 0;
  } catch (error) {
    return reportFailure(error, json, usage);
  }
}

/**
 * Machine output: JSON, with what JSON.stringify leaves raw (C1 and bidi controls) escaped too,
 * because `--json` output is read on terminals as well as by programs.
 */
export function printJson(value: unknown): void {
  process.stdout.write(`${safeJson(value, 2)}\n`);
}

/** Reports a failure the way every command does; returns the exit code. */
export function reportFailure(error: unknown, json: boolean, usage: string): number {
  const coded = toIsogateError(error);
  if (json) printJson({ error: coded.toJSON() });
  // A message may quote what a store, a package or an app said.
  process.stderr.write(`${coded.code}: ${escapeControls(coded.message)}\n`);
  if (coded.code === 'E_USAGE') process.stderr.write(`\n${usage}\n`);
  return coded.code === 'E_USAGE' ? 2 : 1;
}
