/**
 * `isogate start` without --no-supervisor: the supervisor process (bin/run.mjs calls it). Its
 * own options come from the command line (--crash-limit, --crash-window) or the environment
 * (ISOGATE_CRASH_LIMIT, ISOGATE_CRASH_WINDOW in seconds, ISOGATE_RESTART_BACKOFF_MS); the rest of
 * the command line is the gateway's, which runs as `node --no-node-snapshot isogate start ...`.
 */
import { fail, toIsogateError } from '../../sdk/errors.js';
import { SUPERVISOR_DEFAULTS, Supervisor, type SupervisorOptions } from './index.js';

/** A flag's value in argv ("--name V" or "--name=V"), else the environment's, else undefined. */
function setting(argv: readonly string[], flag: string, variable: string, env: NodeJS.ProcessEnv): string | undefined {
  for (const [index, arg] of argv.entries()) {
    if (arg === `--${flag}`) return argv[index + 1] ?? '';
    if (arg.startsWith(`--${flag}=`)) return arg.slice(flag.length + 3);
  }
  return env[variable];
}

function integer(text: string | undefined, what: string, min: number, max: number): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < min || value > max) throw fail('E_USAGE', `${what} is an integer from ${min} to ${max}, not ${JSON.stringify(text)}`);
  return value;
}

/** The supervisor's options from the command line and the environment; a bad value is E_USAGE. */
export function supervisorSettings(argv: readonly string[], env: NodeJS.ProcessEnv): Pick<SupervisorOptions, 'crashLimit' | 'crashWindowMs' | 'backoffMs'> {
  const crashLimit = integer(setting(argv, 'crash-limit', 'ISOGATE_CRASH_LIMIT', env), '--crash-limit (ISOGATE_CRASH_LIMIT)', 1, 1000);
  const windowSeconds = integer(setting(argv, 'crash-window', 'ISOGATE_CRASH_WINDOW', env), '--crash-window (ISOGATE_CRASH_WINDOW, seconds)', 1, 7 * 24 * 3600);
  const backoffMs = integer(env.ISOGATE_RESTART_BACKOFF_MS, 'ISOGATE_RESTART_BACKOFF_MS', 0, 600_000);
  return {
    ...(crashLimit === undefined ? {} : { crashLimit }),
    ...(windowSeconds === undefined ? {} : { crashWindowMs: windowSeconds * 1000 }),
    ...(backoffMs === undefined ? {} : { backoffMs, maxBackoffMs: Math.max(backoffMs, SUPERVISOR_DEFAULTS.maxBackoffMs) }),
  };
}

export async function superviseGateway(options: { script: string; argv: readonly string[] }): Promise<number> {
  let supervisor: Supervisor;
  try {
    supervisor = new Supervisor({
      command: process.execPath,
      args: ['--no-node-snapshot', options.script, ...options.argv],
      ...supervisorSettings(options.argv, process.env),
    });
  } catch (error) {
    const coded = toIsogateError(error);
    process.stderr.write(`${coded.code}: ${coded.message}\n`);
    return coded.code === 'E_USAGE' ? 2 : 1;
  }
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => supervisor.stop(signal));
  return supervisor.run();
}
