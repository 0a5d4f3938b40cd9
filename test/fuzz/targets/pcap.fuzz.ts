/** The offline replay (`isogate np replay`, platform/traffic): pcap reading, TCP reassembly, protocol detection, rules. */
import { replayPcap } from '../../../platform/traffic/replay.js';
import { compileRules } from '../../../sample-apps/network-protector/src/engine/index.js';
import { refused } from '../refusal.js';

const RULES = compileRules([
  {
    name: 'industrial_commands_rules',
    text: [
      'alert modbus any any -> any 502 (msg:"write"; modbus: access write; sid:1001; rev:1;)',
      'alert mqtt any any -> any any (msg:"publish"; mqtt.type:PUBLISH; sid:1002; rev:1;)',
      'alert tcp any any -> any any (msg:"content"; content:"|00 01|"; sid:1003; rev:1;)',
      // Header-only rules, which the replay inspects packet by packet (packet-rules.ts).
      'alert modbus any any -> any any (msg:"every modbus packet"; sid:1004; rev:1;)',
      'alert tcp any any -> any any (msg:"established"; flow:established,to_server; sid:1005; rev:1;)',
      'drop mqtt any any -> any any (msg:"every mqtt packet"; flow:to_client; sid:1006; rev:1;)',
    ].join('\n'),
  },
]);

export function fuzz(data: Buffer): void {
  try {
    replayPcap(data, { rules: RULES, keepTransactions: false }, 'fuzz.pcap');
  } catch (error) {
    refused(error);
  }
}
