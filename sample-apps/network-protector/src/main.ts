/**
 * Network Protector, the app: reads its two rule lists from its configuration (the manual's
 * APP_CONFIGURATION: Base64 Suricata rules), compiles them with the rule engine and inspects every
 * connection of the traffic gate with one StreamInspector. Written with the SDK only; the engine
 * and parsers are plain TypeScript bundled into the app.
 */
import { config, type JsonValue, log, type TrafficConnection, traffic } from 'isogate:sdk';
import { type CompiledRules, compileRules, StreamInspector } from './engine/index.js';
import { SELF_TEST_SERVICE, selfTestRules } from './engine/self-test.js';
import { decodeRuleList } from './rules/rule-list.js';

const LISTS = ['industrial_commands_rules', 'industrial_anomaly_rules'] as const;

type Configuration = { [key: string]: JsonValue };

/** The lists as the engine takes them: decoded, named by their configuration key. */
function compile(configuration: Configuration): CompiledRules {
  const app = (configuration.APP_CONFIGURATION ?? {}) as Record<string, JsonValue>;
  const lists = LISTS.map((name) => ({ name, base64: typeof app[name] === 'string' ? app[name] : '' }))
    .filter((list) => list.base64 !== '')
    .map(({ name, base64 }) => ({ name, text: decodeRuleList(base64, name) }));
  const vars = (configuration.rule_variables ?? {}) as Record<string, string>;
  return compileRules(lists, vars);
}

function describe(error: unknown): string {
  const coded = error as { code?: string; message?: string };
  return `${coded.code ?? 'E_INTERNAL'}: ${coded.message ?? String(error)}`;
}

let rules: CompiledRules;
try {
  rules = compile(config.get());
} catch (error) {
  // The manual: rules the app cannot load are a failed self-check, and the gateway goes to
  // emergency support mode rather than let traffic pass uninspected. Thrown, the start fails.
  log.critical(`The rules cannot be loaded: ${describe(error)}`);
  throw error;
}
let broken: Error | undefined;
const builtIn = selfTestRules();
log.info(`Inspecting with ${rules.rules.length} rules`);

// A change applies to connections opened after it: an open connection keeps the rules its
// transactions began under. Rules that no longer compile are a failed self-check: the next
// verdict throws, which the gateway answers with emergency support mode (nothing passes
// with rules the admin did not mean).
config.onChange((configuration) => {
  try {
    rules = compile(configuration);
    broken = undefined;
    log.info(`The rules changed: inspecting new connections with ${rules.rules.length} rules`);
  } catch (error) {
    broken = error instanceof Error ? error : new Error(String(error));
    log.critical(`The changed rules cannot be loaded: ${describe(error)}`);
  }
});

const inspectors = new Map<number, StreamInspector>();
traffic.inspect({
  open(connection: TrafficConnection) {
    // The gateway's self-test connection: its crafted frame meets the built-in rule alone.
    inspectors.set(connection.id, new StreamInspector(connection.service === SELF_TEST_SERVICE ? builtIn : rules, connection));
  },
  data(connectionId, direction, bytes, timestampMs) {
    if (broken) throw broken;
    const inspector = inspectors.get(connectionId);
    // The gate opens every connection before its data; anything else is a bug that must not let bytes pass.
    if (!inspector) throw new Error(`no inspector for connection ${connectionId}`);
    return inspector.data(direction, bytes, timestampMs);
  },
  close(connectionId) {
    inspectors.delete(connectionId);
  },
});
