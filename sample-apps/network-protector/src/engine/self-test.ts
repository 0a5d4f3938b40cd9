/**
 * The gateway's self-test of Network Protector (the SDK's `traffic` contract): on a connection
 * of the service SELF_TEST_SERVICE the gate sends a crafted Modbus Diagnostics request carrying
 * the self-test payload, and a sound inspector drops it under the reserved sid 90000001. The
 * built-in rule below does it through the same parser, compiler and matcher as every rule, so a
 * broken engine fails the self-test. It inspects that connection only, with no rule of the
 * admin's beside it (a pass rule of theirs must not make the gateway's own test fail), and no
 * real connection ever sees it (a protected service's name cannot hold ':').
 */
import { parseOneRule, RESERVED_SID, splitRules } from '../rules/rule-list.js';
import { type CompiledRules, compileRule } from './compile.js';

export const SELF_TEST_SERVICE = 'isogate:self-test';

const SELF_TEST_RULE =
  `drop modbus 192.0.2.1 any -> 192.0.2.2 502 (msg:"isogate: self-test frame"; flow:to_server; ` +
  `modbus: function 8, subfunction 0; content:"isogate self-test frame"; sid:${RESERVED_SID}; rev:1;)`;

/** The built-in rules, compiled once at start (a failure to compile them is a failed start). */
export function selfTestRules(): CompiledRules {
  return {
    rules: splitRules(SELF_TEST_RULE, 'built-in self-test rule').map((text, index) =>
      compileRule(parseOneRule(text, { addresses: {}, ports: {} }, 'built-in self-test rule'), index),
    ),
  };
}
