/**
 * Differential test: the rule parser accepts exactly the rules Suricata 7.0.10 accepts, over a
 * generated corpus of every supported form and its malformed variants. One `suricata
 * --engine-analysis` run loads the whole corpus (each rule on its own line) and lists the rules it loaded.
 */
import { strict as assert } from 'node:assert';
import { parseOneRule, splitRules } from '../../sample-apps/network-protector/src/rules/rule-list.js';
import type { Rule } from '../../sample-apps/network-protector/src/rules/types.js';
import { isIsogateError } from '../../sdk/errors.js';
import { requireSuricata, type SuricataRuleAnalysis, suricataLoadedRules } from '../fixtures/suricata.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';
import { buildCorpus, CORPUS_VARIABLES } from './rule-corpus.js';

function ours(text: string): { accepted: true; rule: Rule } | { accepted: false; code: string; message: string } {
  const [rule] = splitRules(text, 'corpus');
  assert.ok(rule, `no rule in ${text}`);
  try {
    return { accepted: true, rule: parseOneRule(rule, CORPUS_VARIABLES, 'corpus') };
  } catch (error) {
    assert.ok(isIsogateError(error), String(error));
    return { accepted: false, code: error.code, message: error.message };
  }
}

describe('rule parser against Suricata 7.0.10', function () {
  this.timeout(60_000);
  let dir: string | undefined;
  const corpus = buildCorpus();
  let loaded: Map<string, SuricataRuleAnalysis>;

  before(async function () {
    requireSuricata(this);
    dir = await makeTempDir('isogate-rules-');
    ({ loaded } = await suricataLoadedRules(dir, `${corpus.map((c) => c.rule).join('\n')}\n`, CORPUS_VARIABLES));
  });
  after(() => removeDir(dir));

  it('the corpus has both outcomes in quantity, so agreement means something', () => {
    assert.ok(corpus.length > 400, `corpus of ${corpus.length}`);
    const refused = corpus.filter((c) => !loaded.has(c.rule)).length;
    assert.ok(refused > 100 && refused < corpus.length - 100, `${refused} of ${corpus.length} refused by Suricata`);
  });

  it('accepts exactly what Suricata accepts, refuses exactly what it refuses', () => {
    const disagreements: string[] = [];
    for (const entry of corpus) {
      if (entry.narrower) continue;
      const suricataAccepts = loaded.has(entry.rule);
      const verdict = ours(entry.rule);
      if (verdict.accepted !== suricataAccepts) {
        disagreements.push(
          `${suricataAccepts ? 'Suricata accepts, parser refuses' : 'Suricata refuses, parser accepts'}: ${entry.rule}${verdict.accepted ? '' : `\n      ${verdict.code}: ${verdict.message}`}`,
        );
      }
    }
    assert.equal(disagreements.length, 0, `${disagreements.length} disagreements:\n  ${disagreements.join('\n  ')}`);
  });

  it('agrees with what Suricata made of every rule both accept: sid, gid, rev, msg, app protocol, direction', () => {
    const differences: string[] = [];
    let compared = 0;
    for (const entry of corpus) {
      const theirs = loaded.get(entry.rule);
      const verdict = ours(entry.rule);
      if (!theirs || !verdict.accepted) continue;
      compared++;
      const { rule } = verdict;
      const direction = rule.flow?.direction;
      const mine = {
        id: rule.sid,
        gid: rule.gid,
        rev: rule.rev,
        msg: rule.msg,
        app_proto: rule.appProtocol ?? 'unknown',
        toserver: direction !== 'to_client',
        toclient: direction !== 'to_server',
      };
      const suricata = {
        id: theirs.id,
        gid: theirs.gid,
        rev: theirs.rev,
        msg: theirs.msg ?? '',
        app_proto: theirs.app_proto,
        toserver: theirs.flags.includes('toserver'),
        toclient: theirs.flags.includes('toclient'),
      };
      if (JSON.stringify(mine) !== JSON.stringify(suricata))
        differences.push(`${entry.rule}\n      ours ${JSON.stringify(mine)}\n      theirs ${JSON.stringify(suricata)}`);
    }
    assert.ok(compared > 200, `only ${compared} rules compared`);
    assert.equal(differences.length, 0, `${differences.length} differences:\n  ${differences.join('\n  ')}`);
  });

  it('where the gateway accepts less than Suricata, Suricata does accept it and the parser refuses with its code', () => {
    const narrower = corpus.filter((entry) => entry.narrower);
    assert.ok(narrower.length > 0);
    for (const entry of narrower) {
      assert.ok(loaded.has(entry.rule), `Suricata refuses ${entry.rule}; it needs no exception`);
      const verdict = ours(entry.rule);
      assert.ok(!verdict.accepted, `the parser accepts ${entry.rule}`);
      assert.equal(verdict.code, entry.narrower!.code, entry.rule);
    }
  });

  describe("Suricata's quirks, followed (an admin writing rules will meet them)", () => {
    async function suricataOn(rules: string): Promise<Map<string, SuricataRuleAnalysis>> {
      return (await suricataLoadedRules(dir!, rules, CORPUS_VARIABLES)).loaded;
    }

    it('a line that starts with a space or a tab is not a rule at all: Suricata ignores it like a comment, and so does the parser', async () => {
      const text = ' alert tcp any any -> any any (msg:"indented"; sid:1;)\n\talert tcp any any -> any any (msg:"tab"; sid:2;)\n';
      assert.equal((await suricataOn(text)).size, 0);
      assert.equal(splitRules(text, 'corpus').length, 0);
    });

    it('modbus: a value is refused after a bare "access read", but taken after "access read coils"', async () => {
      const bare = 'alert modbus any any -> any any (msg:"q"; modbus: access read, address 5, value 1; sid:1;)';
      const coils = 'alert modbus any any -> any any (msg:"q"; modbus: access read coils, address 5, value 1; sid:2;)';
      const loaded = await suricataOn(`${bare}\n${coils}\n`);
      assert.ok(!loaded.has(bare) && loaded.has(coils));
      assert.equal(ours(bare).accepted, false);
      const verdict = ours(coils);
      assert.ok(verdict.accepted);
      assert.deepEqual(verdict.rule.modbus[0]!.access, { type: 'read', table: 'coils', address: { op: 'eq', value: 5 }, value: { op: 'eq', value: 1 } });
    });

    it('modbus: "address >0" is Rust range 0..65535, which check_match reads as "below 65535"; "<0" is the single address 0', () => {
      const gt0 = ours('alert modbus any any -> any any (msg:"q"; modbus: access read coils, address >0; sid:1;)');
      const lt0 = ours('alert modbus any any -> any any (msg:"q"; modbus: access write holding, address <0, value 1; sid:2;)');
      assert.ok(gt0.accepted && lt0.accepted);
      assert.deepEqual(gt0.rule.modbus[0]!.access!.address, { op: 'lt', value: 65535 });
      assert.deepEqual(lt0.rule.modbus[0]!.access!.address, { op: 'eq', value: 0 });
    });

    it('msg:" (one quote) is taken, and the message is that quote', async () => {
      const rule = 'alert tcp any any -> any any (msg:"; sid:1;)';
      assert.equal((await suricataOn(`${rule}\n`)).get(rule)?.msg, '"');
      const verdict = ours(rule);
      assert.ok(verdict.accepted);
      assert.equal(verdict.rule.msg, '"');
    });

    it('flow:to_server; flow:to_client is both directions, no condition at all', async () => {
      const rule = 'alert tcp any any -> any any (msg:"f"; flow:to_server; flow:to_client; sid:1;)';
      assert.deepEqual(
        (await suricataOn(`${rule}\n`)).get(rule)?.flags.filter((f) => f.startsWith('to')),
        ['toserver', 'toclient'],
      );
      const verdict = ours(rule);
      assert.ok(verdict.accepted);
      assert.equal(verdict.rule.flow, undefined);
    });

    it('an app-layer-event its protocol does not have: Suricata skips the rule with only a warning; the parser refuses it (a rule is never skipped)', async () => {
      const rule = 'alert modbus any any -> any any (msg:"e"; app-layer-event:modbus.no_such_event; sid:1;)';
      const { loaded, output } = await suricataLoadedRules(dir!, `${rule}\n`, CORPUS_VARIABLES);
      assert.equal(loaded.size, 0);
      assert.doesNotMatch(output, /error parsing signature/);
      const verdict = ours(rule);
      assert.ok(!verdict.accepted);
      assert.equal(verdict.code, 'E_RULE_VALUE');
    });
  });
});
