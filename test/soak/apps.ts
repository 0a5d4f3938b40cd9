/**
 * The soak's 20 apps and the 20 routes between them, as a real plant would wire them: ten
 * sources (telemetry), five relays (a filter that forwards what it gets) and five sinks
 * (an uplink that counts). Each source feeds one relay and, directly, one sink; each relay
 * feeds one sink. Every app also writes its storage and its log now and then, so an hour's run
 * compacts storage logs and rotates app logs as a gateway in service does.
 *
 * Every app collects its own garbage every second: the soak's gateway runs with --expose-gc,
 * which V8 gives every isolate too, so that RSS follows what is retained rather than garbage
 * waiting for each isolate's collector. Measured here without it: the 20 isolates gathered
 * about 50 MiB of garbage over 3.5 minutes before their first major collections, a tooth longer
 * than CI's whole window, which no line fitted to 2 minutes could tell from a leak.
 *
 * A source emits at a fixed rate by catching up with the clock (what it owes since it started,
 * at most a second's worth per tick), so a loaded machine delays its messages but does not
 * lower what it offers: delivered/s is then a measure of the gateway, not of the timers.
 */
import type { AppManifest, EndpointDeclaration } from '../../sdk/manifest.js';
import { sampleManifest } from '../fixtures/packages.js';

export const SOURCES = 10;
export const RELAYS = 5;
export const SINKS = 5;

export interface SoakApp {
  manifest: AppManifest;
  source: string;
}

export interface SoakRoute {
  source: string;
  destination: string;
}

const endpoint = (name: string, direction: 'source' | 'destination'): EndpointDeclaration => ({ name, direction, dataType: 'reading', format: 'json' });

const COLLECT = 'setInterval(() => globalThis.gc?.(), 1000);\n';

const id = (kind: string, n: number): string => `dev.isogate.soak.${kind}${n}`;

const manifest = (packageId: string, endpoints: EndpointDeclaration[]): AppManifest =>
  sampleManifest({
    package_id: packageId,
    name: packageId.split('.').at(-1)!,
    publisher: 'Soak Ltd',
    resources: { memoryMb: 32, cpuMsPerEvent: 500, storageMb: 1 },
    endpoints,
  });

const sourceApp = (perSecond: number): string => `import { emit, log, storage } from 'isogate:sdk';
const rate = ${perSecond};
const started = Date.now();
let sent = 0;
let refused = 0;
const note = 'n'.repeat(120);
setInterval(() => {
  const owed = Math.min(rate, Math.floor(((Date.now() - started) / 1000) * rate) - sent);
  for (let i = 0; i < owed; i++) {
    emit('out', { sensor: 'temperature', seq: sent, at: Date.now(), value: (sent % 400) / 10, note }).catch(() => { refused += 1; });
    sent += 1;
  }
}, 50);
setInterval(() => { void storage.put('sent', String(sent)); }, 1000);
setInterval(() => log.info('sent ' + sent + ', refused ' + refused), 10000);
${COLLECT}`;

const RELAY_APP = `import { emit, log, on, storage } from 'isogate:sdk';
let forwarded = 0;
on('in', (m) => { forwarded += 1; emit('out', m).catch((e) => log.warning('refused ' + e.code)); });
setInterval(() => { void storage.put('forwarded', String(forwarded)); }, 1000);
setInterval(() => log.info('forwarded ' + forwarded), 10000);
${COLLECT}`;

const SINK_APP = `import { log, on, storage } from 'isogate:sdk';
let received = 0;
on('in', () => { received += 1; });
setInterval(() => { void storage.put('received', String(received)); }, 1000);
setInterval(() => log.info('received ' + received), 10000);
${COLLECT}`;

export function soakApps(perSecond: number): SoakApp[] {
  const apps: SoakApp[] = [];
  for (let i = 0; i < SOURCES; i += 1) apps.push({ manifest: manifest(id('source', i), [endpoint('out', 'source')]), source: sourceApp(perSecond) });
  for (let i = 0; i < RELAYS; i += 1)
    apps.push({ manifest: manifest(id('relay', i), [endpoint('in', 'destination'), endpoint('out', 'source')]), source: RELAY_APP });
  for (let i = 0; i < SINKS; i += 1) apps.push({ manifest: manifest(id('sink', i), [endpoint('in', 'destination')]), source: SINK_APP });
  return apps;
}

export function soakRoutes(): SoakRoute[] {
  const routes: SoakRoute[] = [];
  for (let i = 0; i < SOURCES; i += 1) {
    routes.push({ source: `${id('source', i)}:out`, destination: `${id('relay', i % RELAYS)}:in` });
    routes.push({ source: `${id('source', i)}:out`, destination: `${id('sink', (i + 1) % SINKS)}:in` });
  }
  for (let i = 0; i < RELAYS; i += 1) routes.push({ source: `${id('relay', i)}:out`, destination: `${id('sink', i % SINKS)}:in` });
  return routes;
}

/** Messages the routes deliver per second once the gateway keeps up: each source's rate over its two routes, and the relays forwarding every one they get. */
export function offeredPerSecond(perSecond: number): number {
  return perSecond * SOURCES * 3;
}
