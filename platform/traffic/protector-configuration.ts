/**
 * The manual ("Configuring industrial protocol traffic filtering"): a rule list of Network
 * Protector's configuration, once added, cannot be deleted. Checked on every configuration
 * change, before it is written, so a refused change changes nothing.
 */
import { fail } from '../../sdk/errors.js';

export const RULE_LISTS = ['industrial_commands_rules', 'industrial_anomaly_rules'] as const;

function listsOf(configuration: unknown): Record<string, unknown> {
  const app = (configuration as { APP_CONFIGURATION?: unknown } | undefined)?.APP_CONFIGURATION;
  return app && typeof app === 'object' ? (app as Record<string, unknown>) : {};
}

/** Throws E_RULE_LIST_REMOVED when `after` empties or drops a list that `before` held non-empty. */
export function checkRuleListsKept(packageId: string, before: unknown, after: unknown): void {
  const was = listsOf(before);
  const now = listsOf(after);
  for (const list of RULE_LISTS) {
    const held = typeof was[list] === 'string' && was[list] !== '';
    if (held && (typeof now[list] !== 'string' || now[list] === '')) {
      throw fail('E_RULE_LIST_REMOVED', `${list} of ${packageId} holds rules and cannot be emptied or removed; change its rules instead`, {
        packageId,
        list,
      });
    }
  }
}
