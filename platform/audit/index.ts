/**
 * System and firewall audit logs. Records are appended as JSON lines and fsynced, because an
 * audit trail that loses its last lines in a crash is exactly the one an investigator needs.
 * Each log keeps at most `maxEntries`; past that the oldest are overwritten and the overwrite
 * is itself audited, as the manual's "Audit log overwrite" event describes.
 *
 * One record is one line, for any reader: JSON escapes the C0 controls (a newline in a field
 * cannot start a record of its own) and `safeJson` the rest that a Unicode-aware reader would
 * split a line at or a terminal would act on (NEL U+0085, U+2028, CSI U+009B, bidi controls).
 * Placeholder values are stored with their controls escaped (`renderText`), so an event's text
 * is safe to show as it is; details keep their values exactly.
 */
import type { FileHandle } from 'node:fs/promises';
import { fail, toIsogateError } from '../../sdk/errors.js';
import { escapeControls, safeJson } from '../../sdk/text.js';
import { DataDir, Mutex, writeFileDurable } from '../durable/index.js';
import { AUDIT_EVENTS, type AuditEventKey, type AuditLogName, renderText, type Severity } from './events.js';

export * from './events.js';

export interface AuditRecord {
  seq: number;
  time: string;
  log: AuditLogName;
  event: AuditEventKey;
  name: string;
  text: string;
  severity: Severity;
  subject: string;
  details?: Record<string, unknown>;
}

export interface AuditFilter {
  log?: AuditLogName;
  severity?: Severity[];
  subject?: string[];
  /** ISO times, inclusive. */
  from?: string;
  to?: string;
  /** Only records older than this one (its `seq`): the "Load more" cursor. */
  before?: number;
  /** Newest first, at most this many. */
  limit?: number;
}

/** What subsystems depend on: record an event; read the trail. */
export interface Audit {
  record(event: AuditEventKey, values?: Record<string, string | number>, details?: Record<string, unknown>): Promise<AuditRecord>;
  list(filter?: AuditFilter): AuditRecord[];
}

export interface AuditLogOptions {
  /** Entries kept per log before the oldest are overwritten. */
  maxEntries?: number;
  clock?: () => Date;
}

export const AUDIT_DEFAULTS = { maxEntries: 10_000 } as const;

function matches(record: AuditRecord, filter: AuditFilter): boolean {
  if (filter.log && record.log !== filter.log) return false;
  if (filter.severity?.length && !filter.severity.includes(record.severity)) return false;
  if (filter.subject?.length && !filter.subject.includes(record.subject)) return false;
  if (filter.from && record.time < filter.from) return false;
  if (filter.to && record.time > filter.to) return false;
  if (filter.before !== undefined && record.seq >= filter.before) return false;
  return true;
}

function select(records: AuditRecord[], filter: AuditFilter): AuditRecord[] {
  const chosen = records.filter((record) => matches(record, filter)).reverse();
  return filter.limit === undefined ? chosen : chosen.slice(0, filter.limit);
}

export function validateAuditOptions(options: AuditLogOptions): Required<AuditLogOptions> {
  const maxEntries = options.maxEntries ?? AUDIT_DEFAULTS.maxEntries;
  if (!Number.isInteger(maxEntries) || maxEntries < 16) {
    throw fail('E_OPTION', `audit option maxEntries must be an integer of at least 16, got ${String(maxEntries)}`);
  }
  return { maxEntries, clock: options.clock ?? (() => new Date()) };
}

export class FileAuditLog implements Audit {
  /** The audit directory, checked from the data directory down: a planted link is refused, never appended to or truncated. */
  readonly #dir: DataDir;
  readonly #options: Required<AuditLogOptions>;
  readonly #records: Record<AuditLogName, AuditRecord[]> = { system: [], firewall: [] };
  readonly #writes = new Mutex();
  #seq = 0;

  private constructor(dir: string, options: Required<AuditLogOptions>) {
    this.#dir = DataDir.of(dir);
    this.#options = options;
  }

  static async open(dir: string, options: AuditLogOptions = {}): Promise<FileAuditLog> {
    const log = new FileAuditLog(dir, validateAuditOptions(options));
    await log.#dir.mkdir('', 0o700);
    for (const name of ['system', 'firewall'] as const) {
      log.#records[name] = await readRecords(log.#dir, log.#file(name));
      for (const record of log.#records[name]) log.#seq = Math.max(log.#seq, record.seq);
    }
    await log.record('auditStart');
    return log;
  }

  #file(name: AuditLogName): string {
    return `${name}.jsonl`;
  }

  record(event: AuditEventKey, values: Record<string, string | number> = {}, details?: Record<string, unknown>): Promise<AuditRecord> {
    return this.#writes.run(async () => {
      const record = newRecord(++this.#seq, this.#options.clock(), event, values, details);
      const records = this.#records[record.log];
      if (records.length >= this.#options.maxEntries) {
        await this.#overwrite(record.log, record).catch((error: unknown) => {
          throw toIsogateError(error);
        });
      } else {
        await appendLine(this.#dir, this.#file(record.log), record);
        records.push(record);
      }
      return record;
    });
  }

  async #overwrite(name: AuditLogName, record: AuditRecord): Promise<void> {
    const overwrite: AuditRecord = {
      ...record,
      event: 'auditOverwrite',
      name: AUDIT_EVENTS.auditOverwrite.name,
      text: AUDIT_EVENTS.auditOverwrite.text,
      severity: AUDIT_EVENTS.auditOverwrite.severity,
      subject: AUDIT_EVENTS.auditOverwrite.subject,
      log: name,
      details: undefined,
    };
    delete overwrite.details;
    const nextRecord = { ...record, seq: ++this.#seq };
    // Keep the newest three quarters so that overwrites (and their rewrites) stay rare.
    const kept = this.#records[name].slice(-Math.floor(this.#options.maxEntries * 0.75));
    const next = [...kept, overwrite, nextRecord];
    await writeFileDurable(this.#dir.path(this.#file(name)), `${next.map((r) => safeJson(r)).join('\n')}\n`, { mode: 0o600, root: this.#dir });
    this.#records[name] = next;
  }

  list(filter: AuditFilter = {}): AuditRecord[] {
    const logs: AuditLogName[] = filter.log ? [filter.log] : ['system', 'firewall'];
    const merged = logs.flatMap((name) => this.#records[name]).sort((a, b) => a.seq - b.seq);
    return structuredClone(select(merged, filter));
  }
}

/**
 * One record appended and synced, or none: a disk that fills mid-line leaves part of it, which
 * the next record would be glued to (and both lost when the log is read again). So a failed
 * append cuts the file back to where it ended; the record is refused with E_STORAGE_FULL or
 * E_IO, and the operation that waited on it is refused with it (fail closed).
 */
async function appendLine(dir: DataDir, file: string, record: AuditRecord): Promise<void> {
  let handle: FileHandle;
  try {
    handle = await dir.open(file, 'a', 0o600);
  } catch (error) {
    throw toIsogateError(error);
  }
  try {
    const { size } = await handle.stat();
    try {
      await handle.appendFile(`${safeJson(record)}\n`);
      await handle.sync();
    } catch (error) {
      await handle
        .truncate(size)
        .then(() => handle.sync())
        .catch(() => undefined);
      throw toIsogateError(error);
    }
  } finally {
    await handle.close().catch(() => undefined);
  }
}

async function readRecords(dir: DataDir, file: string): Promise<AuditRecord[]> {
  // Opened for writing (so a file with other hard links is refused) and truncated on this very
  // handle, never by path: a link swapped in after the read cannot be cut short.
  let handle: FileHandle;
  try {
    handle = await dir.open(file, 'r+');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  let text: string;
  try {
    text = await handle.readFile('utf8');
    // A crash can tear only the last, unacknowledged line. Cut it off, or the next append would
    // be glued to it and lost with it.
    const end = text.lastIndexOf('\n') + 1;
    if (end < text.length) {
      text = text.slice(0, end);
      await handle.truncate(Buffer.byteLength(text));
      await handle.sync();
    }
  } finally {
    await handle.close();
  }
  const records: AuditRecord[] = [];
  for (const line of text.split('\n')) {
    if (line) records.push(JSON.parse(line) as AuditRecord);
  }
  return records;
}

/** One record of `event`, the same for the file log and the memory log. */
function newRecord(seq: number, time: Date, event: AuditEventKey, values: Record<string, string | number>, details?: Record<string, unknown>): AuditRecord {
  const spec = AUDIT_EVENTS[event];
  return {
    seq,
    time: time.toISOString(),
    log: spec.log,
    event,
    name: spec.name,
    text: renderText(spec.text, values),
    severity: spec.severity,
    subject: spec.subject,
    ...(details ? { details } : {}),
  };
}

/** Same interface, no disk: for unit tests of subsystems that audit. */
export class MemoryAuditLog implements Audit {
  readonly records: AuditRecord[] = [];
  #seq = 0;

  async record(event: AuditEventKey, values: Record<string, string | number> = {}, details?: Record<string, unknown>): Promise<AuditRecord> {
    const record = newRecord(++this.#seq, new Date(), event, values, details);
    this.records.push(record);
    return record;
  }

  list(filter: AuditFilter = {}): AuditRecord[] {
    return structuredClone(select(this.records, filter));
  }

  events(): AuditEventKey[] {
    return this.records.map((record) => record.event);
  }
}

const CSV_COLUMNS = ['time', 'name', 'text', 'subject', 'severity'] as const;

/** The manual's CSV export: date and time, event name, event text, subject, severity. */
export function toCsv(records: AuditRecord[]): string {
  const quote = (value: string): string => {
    // A leading = + - @ would be a formula in a spreadsheet: neutralise it (CSV injection).
    // Controls are escaped too: a spreadsheet is not the only reader of an export.
    const safe = escapeControls(/^[=+\-@\t\r]/.test(value) ? `'${value}` : value);
    return `"${safe.replace(/"/g, '""')}"`;
  };
  const header = ['Date and time', 'Event name', 'Event text', 'Subject ID', 'Severity'].map(quote).join(',');
  return `${[header, ...records.map((record) => CSV_COLUMNS.map((column) => quote(record[column])).join(','))].join('\r\n')}\r\n`;
}
