/**
 * Which refusals the REST API audits itself, and a bound on how many: each refusal at the
 * transport and access level is recorded once ("WebServer: Request refused"), and a flood of
 * them is counted instead of pushing the real events out of the audit log.
 */
import type { ErrorCode, IsogateError } from '../../../sdk/errors.js';
import type { Audit, AuditEventKey } from '../../audit/index.js';

/** Audit-worthy refusals carry this mark once recorded, so that one refusal is one record. */
export const AUDITED = Symbol('audited');
export type Refusal = IsogateError & { [AUDITED]?: true };
/** Refusals of the transport and of access, audited here; an operation's own failures are its subsystem's to audit. */
export const REFUSALS: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'E_BAD_REQUEST',
  'E_DOCUMENT_LIMIT',
  'E_CONTENT_TYPE',
  'E_METHOD',
  'E_NOT_FOUND',
  'E_FORBIDDEN',
  'E_CSRF',
  'E_SESSION',
  'E_PASSWORD_CHANGE',
  'E_CERTIFICATE_REQUIRED',
  'E_REQUEST_TIMEOUT',
]);

/** A bounded audit of refusals: a flood of bad requests cannot overwrite the audit log by itself. */
export class RefusalAudit {
  #window = 0;
  #used = 0;
  #suppressed = 0;
  constructor(
    private readonly audit: Audit,
    private readonly perMinute: number,
    private readonly clock: () => number = Date.now,
  ) {}

  async record(description: string): Promise<void> {
    await this.recordEvent('requestRefused', (more) => ({ description: `${description}${more}` }));
  }

  /** `values` gets the sentence on what was not recorded (empty when nothing), for the event's text. */
  async recordEvent(event: AuditEventKey, values: (more: string) => Record<string, string>, details?: Record<string, unknown>): Promise<void> {
    const minute = Math.floor(this.clock() / 60_000);
    if (minute !== this.#window) {
      this.#window = minute;
      this.#used = 0;
    }
    if (this.#used >= this.perMinute) {
      this.#suppressed += 1;
      return;
    }
    this.#used += 1;
    const more = this.#suppressed > 0 ? ` (and ${this.#suppressed} more refusals not recorded one by one)` : '';
    this.#suppressed = 0;
    await this.audit.record(event, values(more), details);
  }
}
