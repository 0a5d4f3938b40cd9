/**
 * The audit views' API (issue 16, part 3): the system and firewall logs newest first, paged with
 * a "Load more" cursor, filtered by date range, severity and subject; the CSV export holds exactly
 * the filtered rows, and is itself audited ("admin: Log export" / "user: Log export").
 */
import { strict as assert } from 'node:assert';
import type { AuditRecord, Severity } from '../../platform/audit/index.js';
import { type ApiClient, type Harness, readyClient, startHarness } from './harness.js';

const SEVERITIES: Severity[] = ['Informational', 'Warning', 'Critical'];
const SUBJECTS = ['System: Launcher', 'System: Orchestrator', 'Administrator'];
const BASE = Date.parse('2026-11-01T00:00:00.000Z');
const HOUR = 3_600_000;

function seeded(count: number, log: 'system' | 'firewall', firstSeq: number): AuditRecord[] {
  return Array.from({ length: count }, (_, index) => ({
    seq: firstSeq + index,
    time: new Date(BASE + index * HOUR).toISOString(),
    log,
    event: 'appStopped',
    name: 'Launcher: Stopping an application',
    text: `record ${index}`,
    severity: SEVERITIES[index % 3]!,
    subject: SUBJECTS[index % 3]!,
  }));
}

describe('REST API audit views', function () {
  this.timeout(60_000);
  let harness: Harness;
  let admin: ApiClient;

  beforeEach(async () => {
    harness = await startHarness();
    admin = await readyClient(harness, 'admin');
    harness.audit.records.length = 0;
    harness.audit.records.push(...seeded(30, 'system', 1000), ...seeded(5, 'firewall', 2000));
  });
  afterEach(async () => {
    await harness.close();
  });

  const texts = (answer: { json: unknown }): string[] => (answer.json as AuditRecord[]).map((record) => record.text);

  it('pages the system log newest first with the "Load more" cursor until nothing is left', async () => {
    const seen: string[] = [];
    let cursor = '';
    for (let page = 0; page < 5; page++) {
      const answer = await admin.call('GET', `/audit/system?limit=8${cursor}`);
      assert.equal(answer.status, 200);
      const records = answer.json as AuditRecord[];
      seen.push(...records.map((record) => record.text));
      if (records.length === 0) break;
      cursor = `&before=${records.at(-1)!.seq}`;
    }
    assert.deepEqual(
      seen,
      Array.from({ length: 30 }, (_, index) => `record ${29 - index}`),
    );
    assert.ok(Array.isArray((await admin.call('GET', '/audit/firewall')).json));
    assert.deepEqual(texts(await admin.call('GET', '/audit/firewall')), ['record 4', 'record 3', 'record 2', 'record 1', 'record 0']);
  });

  it('filters by date range, severity and subject, together', async () => {
    const from = new Date(BASE + 3 * HOUR).toISOString();
    // An offset names the same instant: 12:00 at +02:00 is 10:00 UTC.
    const to = '2026-11-01T12:00:00+02:00';
    assert.deepEqual(texts(await admin.call('GET', `/audit/system?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`)), [
      'record 10',
      'record 9',
      'record 8',
      'record 7',
      'record 6',
      'record 5',
      'record 4',
      'record 3',
    ]);
    assert.deepEqual(texts(await admin.call('GET', '/audit/system?severity=Critical&limit=3')), ['record 29', 'record 26', 'record 23']);
    assert.deepEqual(texts(await admin.call('GET', '/audit/system?severity=Critical&severity=Warning&limit=3')), ['record 29', 'record 28', 'record 26']);
    assert.deepEqual(texts(await admin.call('GET', `/audit/system?subject=${encodeURIComponent('System: Orchestrator')}&to=${encodeURIComponent(to)}`)), [
      'record 10',
      'record 7',
      'record 4',
      'record 1',
    ]);
  });

  it('exports exactly the filtered rows as CSV, newest first, and audits the export', async () => {
    const filter = `severity=Warning,Critical&from=${encodeURIComponent(new Date(BASE + 20 * HOUR).toISOString())}`;
    const view = texts(await admin.call('GET', `/audit/system?${filter}`));
    const csv = await admin.call('GET', `/audit/system/export?${filter}`);
    assert.equal(csv.status, 200);
    assert.match(String(csv.headers['content-disposition']), /attachment; filename="system_log.csv"/);
    const lines = csv.text.trimEnd().split('\r\n');
    assert.equal(lines[0], '"Date and time","Event name","Event text","Subject ID","Severity"');
    assert.deepEqual(
      lines.slice(1).map((line) => line.split(',')[2]),
      view.map((text) => `"${text}"`),
    );
    assert.equal(lines.length - 1, 7);
    const exported = harness.audit.records.filter((record) => record.event === 'logExport');
    assert.equal(exported.length, 1);
    assert.equal(exported[0]!.details?.rows, 7);
  });

  it("gives the user the firewall log (the manual's Events) and its export, audited as the user's", async () => {
    await admin.call('DELETE', '/session');
    const user = await readyClient(harness, 'user');
    assert.equal((await user.call('GET', '/audit/firewall')).status, 200);
    const csv = await user.call('GET', '/audit/firewall/export');
    assert.equal(csv.status, 200);
    assert.equal(csv.text.trimEnd().split('\r\n').length, 6);
    assert.equal(harness.audit.records.filter((record) => record.event === 'userLogExport')[0]?.name, 'user: Log export');
  });
});
