/** Network Protector's rule parser and compiler (sample-apps/network-protector/src/rules, engine). */
import { compileRules } from '../../../sample-apps/network-protector/src/engine/index.js';
import { decodeRuleList } from '../../../sample-apps/network-protector/src/rules/index.js';
import { CORPUS_VARIABLES } from '../../network-protector/rule-corpus.js';
import { refused } from '../refusal.js';

/** The differential test's variables (test/network-protector/rule-corpus.ts), so its rules are the seeds. */
export const RULE_VARIABLES: Record<string, string> = { ...CORPUS_VARIABLES.addresses, ...CORPUS_VARIABLES.ports };

export function fuzz(data: Buffer): void {
  try {
    compileRules([{ name: 'industrial_commands_rules', text: data.toString('utf8') }], RULE_VARIABLES);
  } catch (error) {
    refused(error);
  }
  // The configuration carries lists as Base64: the same bytes as the text a decoder is given.
  try {
    decodeRuleList(data.toString('latin1'), 'industrial_anomaly_rules');
  } catch (error) {
    refused(error);
  }
}
