/**
 * The configuration document's bound holds what the other bounds allow (issue 11, finding 6
 * follow-up): 20 apps, each with the worst manifest as the orchestrator stores it (a JSON string
 * inside JSON, where every backslash and quote doubles) and a configuration at its own bound,
 * one of them a traffic inspector with the larger bound its rule lists need.
 */
import { strict as assert } from 'node:assert';
import { CONFIG_DOCUMENT_BOUNDS } from '../../platform/config/index.js';
import { isIsogateError } from '../../sdk/errors.js';
import { assertDocumentBounds, configurationBoundsOf, DOCUMENT_LIMITS, MAX_APPS } from '../../sdk/limits.js';
import { parseManifest } from '../../sdk/manifest.js';
import { sampleManifest } from '../fixtures/packages.js';

/** A manifest file near the byte bound whose endpoint schemas' descriptions are backslashes: the worst case for escaping. */
function worstManifestFile(id: string, inspector: boolean): Buffer {
  // Each backslash takes two bytes in the file ("\\\\"), and four once stored as a string.
  const schema = { type: 'object', description: '\\'.repeat(29_000) };
  const endpoints = Array.from({ length: 4 }, (_, i) => ({ name: `e${i}`, direction: 'source' as const, dataType: 'x', format: 'json' as const, schema }));
  const capabilities = inspector ? { capabilities: ['traffic.inspect' as const, 'traffic.block' as const] } : {};
  return Buffer.from(JSON.stringify(sampleManifest({ package_id: id, name: id.split('.').at(-1)!, endpoints, ...capabilities })));
}

/** A configuration object as large as a configuration of `maxBytes` may be. */
function worstConfiguration(maxBytes: number): Record<string, string> {
  const value = '"'.repeat(Math.floor((maxBytes - 16) / 2) - 2);
  return { v: value };
}

describe('the configuration document bound', () => {
  it('holds 20 apps with the worst manifest as stored and a configuration at its bound, one of them a traffic inspector', () => {
    const applications = [];
    const doc: Record<string, unknown> = {};
    for (let i = 0; i < MAX_APPS; i += 1) {
      const file = worstManifestFile(`dev.t.app${i}`, i < DOCUMENT_LIMITS.maxInspectors);
      assert.ok(file.byteLength <= DOCUMENT_LIMITS.manifestBytes);
      const manifest = parseManifest(file);
      const stored = JSON.stringify(manifest);
      // The stored string doubles: what the old 8 MB bound did not allow for.
      assert.ok(Buffer.byteLength(JSON.stringify(stored)) > 1.9 * file.byteLength);
      applications.push({ package_id: manifest.package_id, name: manifest.name, version: manifest.version, manifest: stored, state: 'stopped' });
      const bounds = configurationBoundsOf(manifest);
      assert.equal(bounds.maxBytes, i < DOCUMENT_LIMITS.maxInspectors ? DOCUMENT_LIMITS.inspectorConfigurationBytes : DOCUMENT_LIMITS.appConfigurationBytes);
      const configuration = worstConfiguration(bounds.maxBytes!);
      assertDocumentBounds(configuration, bounds, 'configuration');
      assert.throws(() => assertDocumentBounds({ ...configuration, more: 'x'.repeat(64) }, bounds, 'configuration'), /the limit is/);
      doc[manifest.package_id] = configuration;
    }
    doc.APPLICATIONS = {
      APPS_CONTROL: { applications },
      ROUTES: Array.from({ length: 400 }, (_, i) => ({
        from: { application_id: `dev.t.app${i % 20}`, endpoint: 'out' },
        to: { application_id: 'dev.t.app0', endpoint: 'in' },
      })),
    };
    const bytes = Buffer.byteLength(JSON.stringify(doc));
    assert.ok(bytes > 8 * 1024 * 1024, `the fixture is the finding's case: ${bytes} bytes`);
    assert.doesNotThrow(() => assertDocumentBounds(doc, CONFIG_DOCUMENT_BOUNDS, 'The configuration document'));
    assert.ok(CONFIG_DOCUMENT_BOUNDS.maxBytes >= MAX_APPS * (2 * DOCUMENT_LIMITS.manifestBytes + DOCUMENT_LIMITS.appConfigurationBytes));
  });

  it('still refuses a document past it with E_DOCUMENT_LIMIT', () => {
    const doc = { x: 'a'.repeat(CONFIG_DOCUMENT_BOUNDS.maxBytes) };
    assert.throws(
      () => assertDocumentBounds(doc, CONFIG_DOCUMENT_BOUNDS, 'The configuration document'),
      (error: unknown) => isIsogateError(error) && error.code === 'E_DOCUMENT_LIMIT',
    );
  });
});
