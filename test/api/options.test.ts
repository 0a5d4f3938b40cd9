/**
 * The REST API's options, each checked at construction, and the bound on audited refusals.
 */
import { strict as assert } from 'node:assert';
import type { HttpApiOptions } from '../../platform/api/http/index.js';
import { RefusalAudit } from '../../platform/api/http/refusals.js';
import { validateHttpOptions } from '../../platform/api/http/server.js';
import { MemoryAuditLog } from '../../platform/audit/index.js';

const BASE = { port: 0, tls: { keyPem: '', certPem: '', rootCertPem: '' } } as unknown as HttpApiOptions;

describe('REST API options', () => {
  it('refuses a port outside 0..65535 or not an integer, naming it', () => {
    for (const port of [-1, 65536, 1.5, Number.NaN]) {
      assert.throws(() => validateHttpOptions({ ...BASE, port }), { code: 'E_OPTION', message: /port must be an integer from 0 to 65535/ });
    }
  });

  it('refuses every limit that is not a positive integer, naming the limit', () => {
    for (const name of ['bodyBytes', 'bodyTimeoutMs', 'headersTimeoutMs', 'requestTimeoutMs', 'handshakeTimeoutMs', 'headerBytes', 'refusalAuditsPerMinute']) {
      for (const value of [0, -5, 2.5]) {
        assert.throws(() => validateHttpOptions({ ...BASE, limits: { [name]: value } }), {
          code: 'E_OPTION',
          message: new RegExp(`HTTP limit ${name} must be a positive integer`),
        });
      }
    }
    assert.equal(validateHttpOptions(BASE).bodyBytes, 1024 * 1024);
  });

  it('records refusals up to the bound a minute, then counts them in the next one recorded', async () => {
    const audit = new MemoryAuditLog();
    let now = 0;
    const refusals = new RefusalAudit(audit, 3, () => now);
    for (let index = 0; index < 10; index++) await refusals.record(`refusal ${index}`);
    assert.deepEqual(
      audit.records.map((record) => record.text),
      ['refusal 0', 'refusal 1', 'refusal 2'].map((text) => `A request to the web interface was refused: ${text}`),
    );
    now += 60_000;
    await refusals.record('refusal 10');
    assert.equal(audit.records.at(-1)!.text, 'A request to the web interface was refused: refusal 10 (and 7 more refusals not recorded one by one)');
  });
});
