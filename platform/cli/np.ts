/**
 * `isogate np replay`: a classic pcap through Network Protector's parsers and rule engine, offline,
 * one eve.json alert line per alert as Suricata 7 prints them, so a rule list can be tried on a
 * capture (and compared with Suricata's output) before it goes into the configuration.
 */
import { promises as fs } from 'node:fs';
import { compileRules } from '../../sample-apps/network-protector/src/engine/index.js';
import type { CommandSpec, ParsedCommand } from '../../sdk/cli/shell.js';
import { fail, IsogateError, isIsogateError } from '../../sdk/errors.js';
import { escapeControls, safeJson } from '../../sdk/text.js';
import { alertEve } from '../traffic/eve-alert.js';
import { MAX_OPEN_FLOWS } from '../traffic/reassembly.js';
import { replayPcap } from '../traffic/replay.js';

/** Reading a file the user named: a missing or unreadable one is E_PATH naming it. */
async function readInput(file: string, what: string): Promise<Buffer> {
  try {
    return await fs.readFile(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unknown';
    throw fail('E_PATH', `${what} ${escapeControls(file)} cannot be read (${code})`, { path: file, errno: code });
  }
}

function ports(text: string | undefined, option: string, fallback: number): number[] {
  if (text === undefined) return [fallback];
  const list = text.split(',').map((p) => p.trim());
  if (list.length > 64 || list.some((p) => !/^\d{1,5}$/.test(p) || Number(p) < 1 || Number(p) > 65535))
    throw fail('E_USAGE', `--${option} is a comma-separated list of up to 64 ports from 1 to 65535, not "${escapeControls(text)}"`);
  return list.map(Number);
}

function variables(list: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of list) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.+)$/s.exec(item);
    if (!m) throw fail('E_USAGE', `--var is NAME=VALUE (HOME_NET=[10.0.0.0/8]), not "${escapeControls(item)}"`);
    out[m[1]!] = m[2]!;
  }
  return out;
}

const asList = (value: string | boolean | string[] | undefined): string[] => (value === undefined ? [] : Array.isArray(value) ? value : [String(value)]);

/** E_RULE_* as `FILE:LINE:COLUMN: sentence`, the form editors and compilers use. */
function atRulePlace(error: unknown): unknown {
  if (!isIsogateError(error) || !error.code.startsWith('E_RULE_')) return error;
  const { list, line, column } = error.details as { list?: string; line?: number; column?: number };
  if (list === undefined || line === undefined) return error;
  const sentence = error.message.replace(/^.*? line \d+(?:, column \d+)?: /s, '');
  return new IsogateError(error.code, `${list}:${line}:${column ?? 1}: ${sentence}`, error.details);
}

async function replay(command: ParsedCommand): Promise<void> {
  const { values } = command;
  const pcap = String(values.pcap);
  const ruleFiles = asList(values.rules);
  const modbusPorts = ports(values['modbus-ports'] as string | undefined, 'modbus-ports', 502);
  const mqttPorts = ports(values['mqtt-ports'] as string | undefined, 'mqtt-ports', 1883);
  const vars = variables(asList(values.var));
  const lists = [];
  for (const file of ruleFiles) lists.push({ name: file, text: (await readInput(file, 'the rules file')).toString('utf8') });
  let rules: ReturnType<typeof compileRules>;
  try {
    rules = compileRules(lists, vars);
  } catch (error) {
    throw atRulePlace(error);
  }
  const file = await readInput(pcap, 'the capture');
  // A plain Uint8Array view: every frame is a subarray of it, and a Buffer's subarray costs more.
  const capture = new Uint8Array(file.buffer, file.byteOffset, file.byteLength);
  const result = replayPcap(capture, { modbusPorts, mqttPorts, rules, keepTransactions: false }, pcap);
  // One line per alert, as eve.json holds them; safeJson escapes what a terminal would act on.
  const lines = result.alerts.map((a) => `${safeJson(alertEve(a))}\n`);
  for (let i = 0; i < lines.length; i += 1000) process.stdout.write(lines.slice(i, i + 1000).join(''));
  if (result.untrackedFlows > 0) {
    process.stderr.write(
      `isogate np replay: ${result.untrackedFlows} connection(s) were not inspected: they began while ${MAX_OPEN_FLOWS} were open, the most the replay follows at once (as Suricata's flow memcap bounds its table)\n`,
    );
  }
}

/** `isogate np replay`: one command of the `np` group described in main.ts. */
export const NP_REPLAY_COMMAND: CommandSpec = {
  name: 'replay',
  summary: 'Replay a pcap through the rule engine offline: one eve.json alert line per alert, as Suricata 7 prints them.',
  details:
    'Classic pcap (Ethernet, Linux cooked, raw IP; IPv4 and IPv6), TCP reassembled; Modbus/TCP detected on --modbus-ports, MQTT on --mqtt-ports. Alerts report action "allowed", as Suricata does offline. A bad capture is E_PCAP, a bad rule E_RULE_* with FILE:LINE:COLUMN.',
  options: {
    pcap: { type: 'string', value: 'FILE', summary: 'the capture (classic pcap)', required: true },
    rules: { type: 'string', value: 'FILE', summary: 'a Suricata rules file (give --rules again for more)', required: true, multiple: true },
    'modbus-ports': { type: 'string', value: 'PORTS', summary: 'server ports parsed as Modbus/TCP, comma-separated (default: 502)' },
    'mqtt-ports': { type: 'string', value: 'PORTS', summary: 'server ports parsed as MQTT, comma-separated (default: 1883)' },
    var: { type: 'string', value: 'NAME=VALUE', summary: 'a rule variable ($NAME) for addresses or ports', multiple: true },
  },
  run: replay,
};
