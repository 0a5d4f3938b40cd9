/** Network Protector's rule language: Suricata 7's, for Modbus/TCP, MQTT and TCP payload. */
export { decodeRuleList, parseOneRule, parseRuleLists, parseRuleTexts, RESERVED_SID, RULE_LIMITS, type RuleListInput, splitRules } from './rule-list.js';
export type * from './types.js';
