/**
 * The configuration document: one JSON file, validated by ajv on every change, written
 * durably, with one writer at a time. Subsystems read copies and change it only through
 * `update`, so a failed validation leaves the document (and the disk) as they were.
 */
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { promises as fs } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { fail } from '../../sdk/errors.js';
import { assertValid, compileSchema } from '../../sdk/schema.js';
import { Mutex, writeJsonDurable } from '../durable/index.js';
import { defaultDocument, type ConfigDocument } from './document.js';

export * from './document.js';

const SCHEMA_PATH = fileURLToPath(new URL('../../manifests/config.schema.json', import.meta.url));
let documentSchema: object | undefined;

export function validateDocument(value: unknown): ConfigDocument {
  documentSchema ??= JSON.parse(readFileSync(SCHEMA_PATH, 'utf8')) as object;
  assertValid(compileSchema(documentSchema, 'E_INTERNAL', 'configuration schema'), value, 'E_CONFIG', 'Configuration document');
  return value as ConfigDocument;
}

export interface ConfigChange {
  before: ConfigDocument;
  after: ConfigDocument;
}

export interface ConfigStoreEvents {
  change: [ConfigChange];
}

export class ConfigStore extends EventEmitter<ConfigStoreEvents> {
  readonly #file: string;
  #document: ConfigDocument;
  readonly #writes = new Mutex();
  readonly #checks: ((document: Readonly<ConfigDocument>) => void)[] = [];

  private constructor(file: string, document: ConfigDocument) {
    super();
    this.#file = file;
    this.#document = document;
  }

  /** Opens the document at `file`, creating it with defaults when it does not exist yet. */
  static async open(file: string, aboutText: string): Promise<ConfigStore> {
    let text: string | undefined;
    try {
      text = await fs.readFile(file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    if (text === undefined) {
      const document = defaultDocument(aboutText);
      await writeJsonDurable(file, document, { mode: 0o600 });
      return new ConfigStore(file, document);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (error) {
      throw fail('E_CONFIG', `Configuration document ${file} is not JSON: ${(error as Error).message}`);
    }
    return new ConfigStore(file, validateDocument(parsed));
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
   * If any step throws, nothing changes.
   */
  update<T>(mutate: (draft: ConfigDocument) => T | Promise<T>): Promise<T> {
    return this.#writes.run(async () => {
      const draft = structuredClone(this.#document);
      const result = await mutate(draft);
      validateDocument(draft);
      for (const check of this.#checks) check(draft);
      await writeJsonDurable(this.#file, draft, { mode: 0o600 });
      const before = this.#document;
      this.#document = draft;
      this.emit('change', { before, after: structuredClone(draft) });
      return result;
    });
  }
}
