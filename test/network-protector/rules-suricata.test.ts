/**
 * Differential test: the rule parser accepts exactly the rules Suricata 7.0.10 accepts, over a
 * generated corpus of every supported form and its malformed variants. One `suricata
 * --engine-analysis` run loads the whole corpus (each rule on its own line) and lists the rules it loaded.
 */
import { strict as assert } from 'node:assert';
import { parseOneRule, splitRules } from '../../sample-apps/network-protector/src/rules/rule-list.js';
import { isIsogateError } from '../../sdk/errors.js';
import { requireSuricata, suricataLoadedRules } from '../fixtures/suricata.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';
import { buildCorpus, CORPUS_VARIABLES } from './rule-corpus.js';

function ours(text: string): { accepted: true } | { accepted: false; code: string; message: string } {
  const [rule] = splitRules(text, 'corpus');
  assert.ok(rule, `no rule in ${text}`);
  try {
    parseOneRule(rule, CORPUS_VARIABLES, 'corpus');
    return { accepted: true };
  } catch (error) {
    assert.ok(isIsogateError(error), String(error));
    return { accepted: false, code: error.code, message: error.message };
  }
}

describe('rule parser against Suricata 7.0.10', function () {
  this.timeout(60_000);
  let dir: string | undefined;
  const corpus = buildCorpus();
  let loaded: Set<string>;

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
});
