/**
 * The commit point of an uninstall: DATA/uninstalls/<id>.json, "removing <id>", written durably
 * before anything of the app is erased and dropped only once everything is. A crash between the
 * two leaves the record, and the next start finishes the uninstall before any app starts (issue
 * 17: without it, a crash after the storage was wiped left the app installed, and autostarted,
 * with its data gone). Sealed with the device key like the update journal: a forged record would
 * uninstall any app it named.
 */
import path from 'node:path';
import type { DeviceKeys } from '../device/index.js';
import { type DataDir, readJsonIfExists, writeJsonDurable } from '../durable/index.js';
import { type AppOrigin, canonicalJson } from '../integrity/index.js';

const DIR = 'uninstalls';

export interface RemovalRecord {
  removing: string;
  /** The app's name, for the audit record of a resumed uninstall. */
  name: string;
  startedAt: string;
  /**
   * Where the app came from (its install record's origin), for what is shown while the uninstall
   * is unfinished: the record may be erased by then. Absent in records written before it was kept.
   */
  origin?: AppOrigin;
}

const ORIGINS: readonly unknown[] = ['store', 'image', 'debug'] satisfies AppOrigin[];

/** What the directory holds: records to finish, and files that are no record of this gateway's. */
export interface PendingRemovals {
  records: RemovalRecord[];
  forged: string[];
}

export class RemovalJournal {
  readonly #data: DataDir;
  readonly #keys: DeviceKeys;

  constructor(data: DataDir, keys: DeviceKeys) {
    this.#data = data;
    this.#keys = keys;
  }

  #file(packageId: string): string {
    return path.join(DIR, `${packageId}.json`);
  }

  #mac(body: RemovalRecord): string {
    return this.#keys.mac('integrity', `#uninstall:${body.removing}`, canonicalJson(body));
  }

  /** The commit point: once this returns, the uninstall is finished by whoever runs next. */
  async begin(record: RemovalRecord): Promise<void> {
    await this.#data.mkdir(DIR, 0o700);
    await writeJsonDurable(this.#data.path(this.#file(record.removing)), { ...record, mac: this.#mac(record) }, { mode: 0o600, root: this.#data });
  }

  async end(packageId: string): Promise<void> {
    await this.#data.remove(this.#file(packageId));
    await this.#data.syncDirectory(DIR);
  }

  async pending(): Promise<PendingRemovals> {
    await this.#data.mkdir(DIR, 0o700);
    const result: PendingRemovals = { records: [], forged: [] };
    for (const entry of await this.#data.readdir(DIR)) {
      // A temporary of an interrupted write: the record was never written, nothing was erased.
      if (entry.name.endsWith('.tmp')) continue;
      const record = await readJsonIfExists<RemovalRecord & { mac?: unknown }>(this.#data.path(path.join(DIR, entry.name)), this.#data).catch(() => undefined);
      if (!entry.isFile() || !record || typeof record !== 'object' || typeof record.mac !== 'string') {
        result.forged.push(entry.name);
        continue;
      }
      const { mac, ...body } = record;
      const authentic =
        typeof body.removing === 'string' &&
        typeof body.name === 'string' &&
        typeof body.startedAt === 'string' &&
        (body.origin === undefined || ORIGINS.includes(body.origin)) &&
        entry.name === `${body.removing}.json` &&
        this.#keys.verifyMac('integrity', `#uninstall:${body.removing}`, canonicalJson(body), mac);
      if (authentic)
        result.records.push({ removing: body.removing, name: body.name, startedAt: body.startedAt, ...(body.origin ? { origin: body.origin } : {}) });
      else result.forged.push(entry.name);
    }
    return result;
  }

  /** A file that is no record of this gateway's goes; nothing it names is touched. */
  async discard(name: string): Promise<void> {
    await this.#data.remove(path.join(DIR, name));
    await this.#data.syncDirectory(DIR);
  }
}
