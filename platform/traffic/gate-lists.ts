/**
 * The IP address allowlist and denylist of Network Protector (the manual's NETWORK.IDS_PROXY:
 * `allowList`, `blockedList`), kept in the configuration document so that they survive a restart
 * and a backup carries them. The allowlist is the admin's; the denylist is filled by drop
 * verdicts and emptied by the admin. The manual's IP address rules are checked one by one, each
 * broken rule with its own code.
 */
import { fail } from '../../sdk/errors.js';
import type { Audit } from '../audit/index.js';
import type { ConfigDocument, ConfigStore } from '../config/index.js';

/** The manual: "maximum limit on blocking rules reached"; isogate's limit, as the brief sets it. */
export const DENYLIST_LIMIT = 1000;
export const ALLOWLIST_LIMIT = 1000;

export interface DenylistEntry {
  ipAddrSource: string;
  /** POSIX timestamp (seconds), as the manual's blockedList holds it. */
  timestamp?: number;
  signatureName?: string;
}
export interface AllowlistEntry {
  ipAddrSource: string;
}
export interface IdsProxySettings {
  IPSPFlag?: boolean;
  IPSPStatusFlag?: boolean;
  blockedListFlag?: boolean;
  blockedList?: DenylistEntry[];
  allowList?: AllowlistEntry[];
  verdictDeadlineMs?: number;
  /** An MQTT message longer than the inspection bound (1 MiB): closed and recorded (default), or passed uninspected. */
  oversizedMqtt?: 'drop' | 'pass';
  services?: ProtectedServiceSettings[];
}
export interface ProtectedServiceSettings {
  name: string;
  listen: { host: string; port: number };
  upstream: { host: string; port: number };
  protocol: 'modbus' | 'mqtt';
  maxConnections?: number;
  idleTimeoutMs?: number;
  maxHeldBytes?: number;
}

export function idsProxyOf(document: Readonly<ConfigDocument>): IdsProxySettings {
  return ((document.NETWORK as { IDS_PROXY?: IdsProxySettings } | undefined)?.IDS_PROXY ?? {}) as IdsProxySettings;
}

function draftIdsProxy(document: ConfigDocument): IdsProxySettings {
  const network = document.NETWORK as { IDS_PROXY?: IdsProxySettings };
  network.IDS_PROXY ??= { IPSPFlag: true, IPSPStatusFlag: true, blockedListFlag: true, blockedList: [], allowList: [] };
  return network.IDS_PROXY;
}

/**
 * The manual's rules for an address in the allowlist ("Adding an IP address to the IP address
 * allowlist"): not blank; four numbers from 0 to 255 separated by dots; does not start with 0;
 * not 255.255.255.255. Returns the address as written (no leading zeros in a part: "010" is
 * refused as not a number the manual's form takes, since inet_aton would read it as octal).
 */
export function checkIpAddress(value: unknown): string {
  if (typeof value !== 'string' || value.trim() === '') throw fail('E_IP_BLANK', 'The IP address is blank');
  const text = value.trim();
  const parts = text.split('.');
  if (parts.length !== 4 || parts.some((part) => !/^(0|[1-9][0-9]{0,2})$/.test(part) || Number(part) > 255)) {
    throw fail('E_IP_FORMAT', `"${text.slice(0, 64)}" is not four numbers from 0 to 255 separated by dots`, { address: text.slice(0, 64) });
  }
  if (parts[0] === '0') throw fail('E_IP_LEADING_ZERO', `${text} starts with 0`, { address: text });
  if (text === '255.255.255.255') throw fail('E_IP_BROADCAST', 'The IP address is 255.255.255.255, the broadcast address', { address: text });
  return text;
}

/** What the gate asks of the lists on every connection; a snapshot refreshed on each change. */
export class IpLists {
  #allow = new Set<string>();
  #deny = new Set<string>();
  #enabled = true;
  #denyEnforced = true;

  constructor(
    private readonly config: ConfigStore,
    private readonly audit: Audit,
  ) {
    this.#refresh(config.read(idsProxyOf));
    config.on('change', ({ after }) => this.#refresh(idsProxyOf(after)));
  }

  #refresh(settings: IdsProxySettings): void {
    this.#enabled = settings.IPSPFlag !== false;
    this.#denyEnforced = settings.blockedListFlag !== false;
    this.#allow = new Set((settings.allowList ?? []).map((entry) => entry.ipAddrSource));
    this.#deny = new Set((settings.blockedList ?? []).map((entry) => entry.ipAddrSource));
  }

  /** The manual's "Procedure for processing network traffic": the allowlist first, then the denylist. */
  verdictAtAccept(ip: string): 'allowed' | 'denied' | 'unlisted' {
    if (!this.#enabled) return 'unlisted';
    if (this.#allow.has(ip)) return 'allowed';
    if (this.#denyEnforced && this.#deny.has(ip)) return 'denied';
    return 'unlisted';
  }

  /** Whether a drop verdict on this source denylists it: lists on, and the source not allowlisted. */
  mayDenylist(ip: string): boolean {
    return this.#enabled && !this.#allow.has(ip);
  }

  allowlist(): AllowlistEntry[] {
    return this.config.read((doc) => idsProxyOf(doc).allowList ?? []);
  }

  denylist(): DenylistEntry[] {
    return this.config.read((doc) => idsProxyOf(doc).blockedList ?? []);
  }

  async allow(address: unknown): Promise<AllowlistEntry> {
    const ip = checkIpAddress(address);
    return this.config.update(
      (draft) => {
        const settings = draftIdsProxy(draft);
        settings.allowList ??= [];
        if (settings.allowList.some((entry) => entry.ipAddrSource === ip)) throw fail('E_CONFLICT', `${ip} is on the allowlist already`, { address: ip });
        if (settings.allowList.length >= ALLOWLIST_LIMIT) throw fail('E_CONFLICT', `The allowlist holds at most ${ALLOWLIST_LIMIT} addresses`);
        const entry = { ipAddrSource: ip };
        settings.allowList.push(entry);
        return entry;
      },
      this.#audited('allow', 'allowlist', ip),
    );
  }

  /**
   * An admin's edit of a list is audited before it is written (fail closed): an edit the trail
   * cannot hold is refused with the audit's code, unmade.
   */
  #audited(action: 'allow' | 'disallow' | 'undeny', list: 'allowlist' | 'denylist', ip: string): { audit: () => Promise<unknown> } {
    return { audit: () => this.audit.record('firewallRulesChanged', {}, { action, list, address: ip }) };
  }

  async disallow(address: unknown): Promise<AllowlistEntry> {
    const ip = checkIpAddress(address);
    return this.config.update(
      (draft) => {
        const settings = draftIdsProxy(draft);
        const index = (settings.allowList ?? []).findIndex((entry) => entry.ipAddrSource === ip);
        if (index < 0) throw fail('E_NOT_FOUND', `${ip} is not on the allowlist`, { address: ip });
        return settings.allowList!.splice(index, 1)[0]!;
      },
      this.#audited('disallow', 'allowlist', ip),
    );
  }

  async undeny(address: unknown): Promise<DenylistEntry> {
    const ip = checkIpAddress(address);
    return this.config.update(
      (draft) => {
        const settings = draftIdsProxy(draft);
        const index = (settings.blockedList ?? []).findIndex((entry) => entry.ipAddrSource === ip);
        if (index < 0) throw fail('E_NOT_FOUND', `${ip} is not on the denylist`, { address: ip });
        return settings.blockedList!.splice(index, 1)[0]!;
      },
      this.#audited('undeny', 'denylist', ip),
    );
  }

  /**
   * A drop verdict's block: the source on the denylist with the signature and the time, and the
   * manual's firewall event. Past DENYLIST_LIMIT entries the manual's Critical "Rule creation
   * limit" event instead, and no entry. An address already listed is not listed twice.
   * Safety first, unlike an admin's edit: the block is written before its record and stands
   * when the record cannot be written (a full audit disk must not let an attacker through).
   */
  async deny(ip: string, signatureName: string, now = Date.now()): Promise<'denied' | 'listed' | 'limit'> {
    const outcome = await this.config.update((draft) => {
      const settings = draftIdsProxy(draft);
      settings.blockedList ??= [];
      if (settings.blockedList.some((entry) => entry.ipAddrSource === ip)) return 'listed' as const;
      if (settings.blockedList.length >= DENYLIST_LIMIT) return 'limit' as const;
      settings.blockedList.push({ ipAddrSource: ip, timestamp: Math.floor(now / 1000), signatureName: signatureName.slice(0, 1024) });
      return 'denied' as const;
    });
    if (outcome === 'limit') {
      await this.audit.record('blockRuleLimit', { 'IP address': ip, 'maximum number of rules': DENYLIST_LIMIT }, { address: ip, signature: signatureName });
    } else if (outcome === 'denied') {
      await this.audit.record('trafficBlocked', { 'IP address': ip }, { address: ip, signature: signatureName });
    }
    return outcome;
  }
}
