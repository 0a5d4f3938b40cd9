import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { AUDIT_EVENTS, FileAuditLog, toCsv } from '../../platform/audit/index.js';
import { isIsogateError } from '../../sdk/errors.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';

describe('audit log', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await makeTempDir();
  });
  afterEach(() => removeDir(dir));

  it("records the manual's event name, text, severity and subject", async () => {
    const audit = await FileAuditLog.open(dir);
    const record = await audit.record('signatureError', { 'application name': 'Telemetry' });
    assert.equal(record.name, 'Orchestrator: Application signature verification error');
    assert.equal(record.text, 'Failed to verify authenticity of the Telemetry application signature');
    assert.equal(record.severity, 'Critical');
    assert.equal(record.subject, 'System: Orchestrator');
  });

  it('starts with the audit subsystem start event and keeps records across reopen, in order', async () => {
    const first = await FileAuditLog.open(dir);
    await first.record('downloadStarted', { 'application name': 'A' });
    await first.record('downloadSucceeded', { 'application name': 'A' });
    const second = await FileAuditLog.open(dir);
    const events = second
      .list({ log: 'system' })
      .reverse()
      .map((r) => r.event);
    assert.deepEqual(events, ['auditStart', 'downloadStarted', 'downloadSucceeded', 'auditStart']);
    const seqs = second.list().map((r) => r.seq);
    assert.deepEqual(
      seqs,
      [...seqs].sort((a, b) => b - a),
    );
  });

  it('puts firewall events in the firewall log', async () => {
    const audit = await FileAuditLog.open(dir);
    await audit.record('routesChanged');
    assert.deepEqual(
      audit.list({ log: 'firewall' }).map((r) => r.name),
      ['KscController: Changing the application routes'],
    );
    assert.equal(
      audit.list({ log: 'system' }).some((r) => r.event === 'routesChanged'),
      false,
    );
  });

  it('overwrites the oldest records past its bound and audits the overwrite', async () => {
    const audit = await FileAuditLog.open(dir, { maxEntries: 16 });
    for (let i = 0; i < 40; i += 1) await audit.record('launchStarted', { 'application name': `app${i}` });
    const records = audit.list({ log: 'system' });
    assert.ok(records.length <= 17, `kept ${records.length}`);
    assert.ok(records.some((r) => r.event === 'auditOverwrite'));
    assert.equal(records[0]!.text, 'The application app39 was started');
    const lines = (await fs.readFile(path.join(dir, 'system.jsonl'), 'utf8')).trim().split('\n');
    assert.equal(lines.length, records.length);
  });

  it('tolerates a torn last line after a crash', async () => {
    const audit = await FileAuditLog.open(dir);
    await audit.record('launchStarted', { 'application name': 'x' });
    await fs.appendFile(path.join(dir, 'system.jsonl'), '{"seq":99,"ti');
    const reopened = await FileAuditLog.open(dir);
    await reopened.record('launchStarted', { 'application name': 'after' });
    const again = await FileAuditLog.open(dir);
    const texts = again.list().map((r) => r.text);
    assert.ok(texts.includes('The application x was started'));
    assert.ok(texts.includes('The application after was started'), 'a record appended after the torn line survives');
  });

  it('filters by severity', async () => {
    const audit = await FileAuditLog.open(dir);
    await audit.record('launchUntrusted', { 'application name': 'x' });
    assert.deepEqual(
      audit.list({ severity: ['Critical'] }).map((r) => r.event),
      ['launchUntrusted'],
    );
  });

  it('refuses a bound below 16 entries', async () => {
    await assert.rejects(FileAuditLog.open(dir, { maxEntries: 3 }), (error: unknown) => isIsogateError(error, 'E_OPTION') && /maxEntries/.test(error.message));
  });

  it('exports CSV with the columns of the manual, neutralising spreadsheet formulas', async () => {
    const audit = await FileAuditLog.open(dir);
    const record = await audit.record('launchStarted', { 'application name': '=HYPERLINK("x")' });
    const csv = toCsv([record]);
    const [header, row] = csv.trim().split('\r\n');
    assert.equal(header, '"Date and time","Event name","Event text","Subject ID","Severity"');
    assert.match(row!, /"The application =HYPERLINK\(""x""\) was started"/);
    const formula = toCsv([{ ...record, text: '=1+1' }]);
    assert.match(formula, /"'=1\+1"/);
  });

  it('cannot be made to hold a forged record: a hostile name stays one line for every reader and is stored escaped', async () => {
    const forged = 'x\u001b[2J\n{"seq":999,"event":"installSucceeded"}\r\u0085NEL\u2028LS\u009b31m\u202eevil';
    const audit = await FileAuditLog.open(dir);
    const record = await audit.record('installSucceeded', { 'application name': forged }, { reason: forged });
    assert.equal(
      record.text,
      'The application x\\x1b[2J\\n{"seq":999,"event":"installSucceeded"}\\r\\u{85}NEL\\u{2028}LS\\u{9b}31m\\u{202e}evil was successfully installed',
    );
    const text = await fs.readFile(path.join(dir, 'system.jsonl'), 'utf8');
    // eslint-disable-next-line no-control-regex
    assert.equal(
      /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]/.exec(text),
      null,
      'no raw control in the file',
    );
    // Every line break some reader honours, not only \n: auditStart and the install, two records.
    const lines = text.split(/\r\n|[\n\r\u000b\u000c\u001c-\u001e\u0085\u2028\u2029]/).filter(Boolean);
    assert.deepEqual(
      lines.map((line) => (JSON.parse(line) as { event: string }).event),
      ['auditStart', 'installSucceeded'],
    );
    assert.equal((JSON.parse(lines[1]!) as { details: { reason: string } }).details.reason, forged, 'details keep their value exactly');
    const reopened = await FileAuditLog.open(dir);
    assert.deepEqual(
      reopened.list({ log: 'system' }).map((r) => r.event),
      ['auditStart', 'installSucceeded', 'auditStart'],
    );
    const csv = toCsv([{ ...record, text: `\t${forged}` }]);
    assert.equal(csv.trimEnd().split(/\r\n|[\n\r\u0085\u2028\u2029]/).length, 2, 'header and one row');
  });

  it('names every Orchestrator and Launcher event of the manual', () => {
    const names = Object.values(AUDIT_EVENTS).map((e) => e.name);
    for (const expected of [
      'Orchestrator: Downloading the application',
      'Orchestrator: Successful application download',
      'Orchestrator: Successful application installation',
      'Orchestrator: Uninstalling the application',
      'Orchestrator: Successful application uninstallation',
      'Orchestrator: Application download error',
      'Orchestrator: Application signature verification error',
      'Orchestrator: Application installation error',
      'Orchestrator: Application uninstallation error',
      'Launcher: Untrusted application',
      'Launcher: Attempting to download a new version of the application',
    ])
      assert.ok(names.includes(expected), expected);
  });
});
