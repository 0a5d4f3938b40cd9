/**
 * The configuration document: one JSON file, validated by ajv on every change, written
 * durably, with one writer at a time. Subsystems read copies and change it only through
 * `update`, so a failed validation leaves the document (and the disk) as they were.
 */
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { fail, isIsogateError, toIsogateError } from '../../sdk/errors.js';
import { assertDocumentBounds, configurationBoundsOf, DOCUMENT_LIMITS } from '../../sdk/limits.js';
import { assertValid, compileSchema } from '../../sdk/schema.js';
import { DataDir, Mutex, writeJsonDurable } from '../durable/index.js';
import { type ConfigDocument, defaultDocument } from './document.js';

export * from './document.js';

const SCHEMA_PATH = fileURLToPath(new URL('../../manifests/config.schema.json', import.meta.url));
let documentSchema: object | undefined;

function loadDocumentSchema(): object {
  documentSchema ??= JSON.parse(readFileSync(SCHEMA_PATH, 'utf8')) as object;
  return documentSchema;
}

/** The whole document's JSON Schema, for an editor that validates before it saves (a copy). */
export function configDocumentSchema(): Record<string, unknown> {
  return structuredClone(loadDocumentSchema()) as Record<string, unknown>;
}

/** One top-level object's schema, for an interface that sets that object alone (the API's connection settings). */
export function documentSectionSchema(key: string): Record<string, unknown> {
  const section = (loadDocumentSchema() as { properties: Record<string, Record<string, unknown>> }).properties[key];
  if (!section) throw fail('E_INTERNAL', `The configuration schema has no ${key}`);
  return section;
}

/** The whole document's bounds; each app's configuration has its own, smaller ones (the launcher). */
export const CONFIG_DOCUMENT_BOUNDS = { maxDepth: DOCUMENT_LIMITS.configDocumentDepth, maxBytes: DOCUMENT_LIMITS.configDocumentBytes } as const;
/** Top-level keys that are an app's configuration (the schema's propertyNames: package ids). */
const PACKAGE_ID = /^[a-z][a-z0-9-]*(\.[a-z0-9][a-z0-9-]*)+$/;

/**
 * Validates a whole document. Its bounds come first, so that whatever passes can be serialised
 * and written again: a value nested 2000 deep once made every later write of config.json fail.
 */
export function validateDocument(value: unknown): ConfigDocument {
  assertDocumentBounds(value, CONFIG_DOCUMENT_BOUNDS, 'The configuration document');
  assertValid(compileSchema(loadDocumentSchema(), 'E_INTERNAL', 'configuration schema'), value, 'E_CONFIG', 'Configuration document');
  return value as ConfigDocument;
}

export interface ConfigChange {
  before: ConfigDocument;
  after: ConfigDocument;
}

/** An app's configuration found past its bounds in config.json when it was opened, and removed. */
export interface ConfigRepair {
  packageId: string;
  reason: string;
}

/**
 * Version 0.1.0 accepted app configurations of any depth and size. Opening such a document
 * removes that app's configuration (the app then waits in Pending for a new one) instead of
 * refusing to start: the gateway is an appliance, and its admin cannot edit config.json by hand.
 * Every removal is returned, for the caller to audit.
 */
function repairAppConfigurations(document: Record<string, unknown>): ConfigRepair[] {
  const repairs: ConfigRepair[] = [];
  const applications = (document.APPLICATIONS as ConfigDocument['APPLICATIONS'] | undefined)?.APPS_CONTROL?.applications;
  for (const key of Object.keys(document)) {
    if (!PACKAGE_ID.test(key)) continue;
    const entry = Array.isArray(applications) ? applications.find((app) => app?.package_id === key) : undefined;
    try {
      assertDocumentBounds(document[key], configurationBoundsOf(declaredCapabilities(entry?.manifest)), `The configuration of ${key}`);
    } catch (error) {
      if (!isIsogateError(error, 'E_DOCUMENT_LIMIT')) throw error;
      delete document[key];
      if (entry) entry.configured = false;
      repairs.push({ packageId: key, reason: error.message });
    }
  }
  return repairs;
}

/**
 * The capabilities an entry's stored manifest declares, for the bound of its configuration. The
 * manifest was verified when the app was installed; one that does not parse here declares none,
 * so its app keeps the smaller bound.
 */
function declaredCapabilities(manifest: unknown): { capabilities?: string[] } | undefined {
  if (typeof manifest !== 'string') return undefined;
  try {
    const { capabilities } = JSON.parse(manifest) as { capabilities?: unknown };
    return Array.isArray(capabilities) ? { capabilities: capabilities.filter((c): c is string => typeof c === 'string') } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * config.json's text as the gateway reads it at start-up: JSON, app configurations past their
 * bounds removed (and returned, to be audited), then the whole document validated. Anything
 * else is refused with E_CONFIG or E_DOCUMENT_LIMIT; `file` only names it in the messages.
 */
export function parseConfigDocument(text: string, file: string): { document: ConfigDocument; repairs: ConfigRepair[] } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw fail('E_CONFIG', `Configuration document ${file} is not JSON: ${(error as Error).message}`);
  }
  const repairs = parsed && typeof parsed === 'object' && !Array.isArray(parsed) ? repairAppConfigurations(parsed as Record<string, unknown>) : [];
  try {
    return { document: validateDocument(parsed), repairs };
  } catch (error) {
    if (!isIsogateError(error, 'E_DOCUMENT_LIMIT')) throw error;
    throw fail(
      'E_DOCUMENT_LIMIT',
      `${error.message} (${file}); move config.json aside and start the gateway again: it begins a fresh configuration document, keeps the installed apps, and their configurations and routes are set again`,
    );
  }
}

export interface ConfigUpdateOptions<T> {
  /** Writes the change's audit record; see `update`. */
  audit?: (result: T, draft: Readonly<ConfigDocument>) => Promise<unknown>;
}

export interface ConfigStoreEvents {
  change: [ConfigChange];
}

export class ConfigStore extends EventEmitter<ConfigStoreEvents> {
  readonly #file: string;
  #document: ConfigDocument;
  readonly #writes = new Mutex();
  readonly #checks: ((document: Readonly<ConfigDocument>) => void)[] = [];
  /** App configurations removed when the document was opened (see repairAppConfigurations). */
  readonly repairs: readonly ConfigRepair[];

  private constructor(file: string, document: ConfigDocument, repairs: ConfigRepair[] = []) {
    super();
    this.#file = file;
    this.#document = document;
    this.repairs = repairs;
  }

  /** Opens the document at `file`, creating it with defaults when it does not exist yet. */
  static async open(file: string, aboutText: string): Promise<ConfigStore> {
    // The document lies in the data directory itself: read without following a link planted as
    // config.json (a root gateway would run on whatever configuration it pointed at). Written the same way.
    const text = (await new DataDir(path.dirname(path.resolve(file))).readFile(path.basename(file)))?.toString('utf8');
    if (text === undefined) {
      const document = defaultDocument(aboutText);
      await writeJsonDurable(file, document, { mode: 0o600 });
      return new ConfigStore(file, document);
    }
    const { document, repairs } = parseConfigDocument(text, file);
    if (repairs.length > 0) await writeJsonDurable(file, document, { mode: 0o600 });
    return new ConfigStore(file, document, repairs);
  }

  /**
   * A subsystem's own rule for its part of the document, for what a schema cannot say (that a
   * string is a CIDR range): it runs after the schema on every change and throws E_CONFIG, so a
   * document it refuses is never written.
   */
  addCheck(check: (document: Readonly<ConfigDocument>) => void): void {
    this.#checks.push(check);
  }

  /** A deep copy of the current document: callers may not change the live one. */
  snapshot(): ConfigDocument {
    return structuredClone(this.#document);
  }

  /** Reads without copying the whole document; `select` must not keep or change what it gets. */
  read<T>(select: (document: Readonly<ConfigDocument>) => T): T {
    return structuredClone(select(this.#document));
  }

  /**
   * Applies `mutate` to a copy, validates the result, writes it durably, then makes it current.
   * If any step throws, nothing changes. `audit` writes the change's audit record once the
   * change is known to be valid and before it is written: a change that cannot be audited (a
   * full disk) is refused and never made (fail closed). A document write failing after its
   * record is the one case where the trail names a change that did not happen, and the
   * caller gets the write's error (E_STORAGE_FULL, E_IO) for it.
   */
  update<T>(mutate: (draft: ConfigDocument) => T | Promise<T>, options: ConfigUpdateOptions<T> = {}): Promise<T> {
    return this.#writes.run(async () => {
      const draft = structuredClone(this.#document);
      const result = await mutate(draft);
      validateDocument(draft);
      for (const check of this.#checks) check(draft);
      try {
        await options.audit?.(result, draft);
        await writeJsonDurable(this.#file, draft, { mode: 0o600 });
      } catch (error) {
        throw toIsogateError(error);
      }
      const before = this.#document;
      this.#document = draft;
      this.emit('change', { before, after: structuredClone(draft) });
      return result;
    });
  }
}
