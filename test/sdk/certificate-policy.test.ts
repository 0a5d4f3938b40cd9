import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { CERTIFICATE_RULES, LEAF_PURPOSE_RULES } from '../../sdk/certificate-policy.js';
import { isIsogateError } from '../../sdk/errors.js';
import { readPackage } from '../../sdk/package/index.js';
import { verifyCertificateChain } from '../../sdk/pki.js';
import { buildSignedPackage } from '../fixtures/packages.js';
import { createTestPki, type TestPki } from '../fixtures/pki.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';
import { allTestChains, createOpensslChains, type OpensslChains, type TestChain } from '../fixtures/x509-chains.js';

/** The gateway's answer: accepted, or the reason of its E_CERTIFICATE. */
async function gatewayVerdict(chain: TestChain): Promise<string> {
  try {
    await verifyCertificateChain([chain.signer.certPem, ...(chain.signer.chainPem ?? [])], chain.rootsPem, 'code-signing', chain.at);
    return 'accepted';
  } catch (error) {
    assert.ok(isIsogateError(error, 'E_CERTIFICATE'), String(error));
    return String(error.details.reason);
  }
}

/**
 * openssl's answer with X.509 strict checks. `-purpose any` because openssl 3.0 has no
 * code-signing purpose: the leaf's purpose is the gateway's own rule (LEAF_PURPOSE_RULES).
 */
async function opensslAccepts(dir: string, chain: TestChain): Promise<boolean> {
  const write = async (name: string, pems: string[]): Promise<string> => {
    const file = path.join(dir, name);
    await fs.writeFile(file, pems.join(''));
    return file;
  };
  const at = Math.floor((chain.at ?? new Date()).getTime() / 1000);
  const intermediates = chain.signer.chainPem ?? [];
  const args = [
    'verify',
    '-x509_strict',
    '-purpose',
    'any',
    '-attime',
    String(at),
    '-no-CApath',
    '-no-CAstore',
    '-CAfile',
    await write('roots.pem', chain.rootsPem),
    ...(intermediates.length ? ['-untrusted', await write('untrusted.pem', intermediates)] : []),
    await write('leaf.pem', [chain.signer.certPem]),
  ];
  return spawnSync('openssl', args, { encoding: 'utf8' }).status === 0;
}

describe('certificate path validation', function () {
  this.timeout(120_000);
  let pki: TestPki;
  let chains: OpensslChains;
  let dir: string;

  before(async () => {
    pki = await createTestPki();
    chains = createOpensslChains(pki);
    dir = await makeTempDir();
  });
  after(() => removeDir(dir));

  it('agrees with openssl verify -x509_strict: what the gateway accepts openssl accepts, and every difference is one of the listed rules', async () => {
    const differences: string[] = [];
    for (const chain of allTestChains(pki, chains)) {
      const verdict = await gatewayVerdict(chain);
      assert.equal(verdict, chain.refusedFor ?? 'accepted', `${chain.name}: the gateway said ${verdict}`);
      const openssl = await opensslAccepts(dir, chain);
      if (verdict === 'accepted') assert.ok(openssl, `${chain.name}: the gateway accepts a chain openssl refuses`);
      if (openssl && verdict !== 'accepted') {
        assert.ok(Object.hasOwn(CERTIFICATE_RULES, verdict), `${chain.name}: openssl accepts, the gateway refuses for ${verdict}, which is not a listed rule`);
        differences.push(`${chain.name}: ${verdict}`);
      }
    }
    // Where openssl (-purpose any) accepts and the gateway does not: the leaf's purpose, and key strength.
    assert.deepEqual(differences, [
      'EC leaf with keyUsage keyAgreement only: leaf-key-usage',
      'RSA leaf without keyUsage: leaf-key-usage',
      'EC leaf without the codeSigning EKU: leaf-extended-key-usage',
      'RSA TLS server certificate as signer: leaf-extended-key-usage',
      'CA certificate as signer: leaf-not-ca',
      '1024-bit RSA leaf: key-strength',
    ]);
    for (const difference of differences)
      assert.ok(LEAF_PURPOSE_RULES.has(difference.split(': ')[1] as never) || difference.endsWith('key-strength'), difference);
  });

  it('refuses root -> sub-CA (pathlen 0) -> rogue CA -> leaf, and accepts the sub-CA issuing a leaf directly', async () => {
    await assert.rejects(
      verifyCertificateChain([chains.pathLenRogue.certPem, ...chains.pathLenRogue.chainPem!], [pki.root.certPem], 'code-signing'),
      (error: unknown) => isIsogateError(error, 'E_CERTIFICATE') && error.details.reason === 'path-length' && /pathLenConstraint/.test(error.message),
    );
    const within = await verifyCertificateChain([chains.pathLenWithin.certPem, ...chains.pathLenWithin.chainPem!], [pki.root.certPem], 'code-signing');
    assert.match(within.subject, /Within pathlen/);
  });

  it('installs nothing from a package signed by a P-256 leaf whose keyUsage is keyAgreement only', async () => {
    const pkg = await buildSignedPackage({ signer: chains.ecKeyAgreementOnly });
    const extractTo = path.join(dir, 'key-agreement');
    await fs.mkdir(extractTo);
    await assert.rejects(
      readPackage(pkg, { trust: { trustRootsPem: [pki.root.certPem] }, extractTo }),
      (error: unknown) => isIsogateError(error, 'E_CERTIFICATE') && error.details.reason === 'leaf-key-usage',
    );
    assert.deepEqual(await fs.readdir(extractTo), []);
  });

  it('verifies a package signed with a P-256 key and reports the signer, its key and its issuing CA', async () => {
    const pkg = await buildSignedPackage({ signer: chains.ecPublisher });
    const verified = await readPackage(pkg, { trust: { trustRootsPem: [pki.root.certPem] } });
    assert.equal(verified.signatureChecked, true);
    assert.match(verified.signer!.subject, /CN=EC Publisher/);
    assert.match(verified.signer!.issuingCa!.subject, /CN=EC intermediate/);
    assert.match(verified.signer!.spkiSha256, /^[0-9a-f]{64}$/);
  });
});
