/**
 * Everything an app may do, computed from its manifest in one place: which endpoints it may
 * emit on or handle, which egress targets it may reach and with what protocol, its storage
 * quota and its resource limits (bounded by the platform). Every bridge call starts here.
 */
import { fail } from '../../sdk/errors.js';
import {
  type AppManifest,
  type Capability,
  type EgressProtocol,
  type EgressTarget,
  type EndpointDeclaration,
  RESERVED_CAPABILITIES,
} from '../../sdk/manifest.js';

export const PLATFORM_LIMITS = Object.freeze({
  minMemoryMb: 8,
  maxMemoryMb: 512,
  minCpuMsPerEvent: 1,
  maxCpuMsPerEvent: 10_000,
  maxTimers: 256,
  minIntervalMs: 10,
  maxLogLineBytes: 8 * 1024,
  defaultMaxMessageBytes: 256 * 1024,
  /** How long top-level code may take, host calls included, before the launch counts as failed. */
  startDeadlineMs: 10_000,
});

export interface AppGrants {
  packageId: string;
  sourceEndpoints: ReadonlyMap<string, EndpointDeclaration>;
  destinationEndpoints: ReadonlyMap<string, EndpointDeclaration>;
  egressTargets: ReadonlyMap<string, EgressTarget>;
  storageQuotaBytes: number;
  limits: { memoryMb: number; cpuMsPerEvent: number };
  /** Special capabilities held: a reserved one only for an app installed from the gateway's image. */
  capabilities: ReadonlySet<Capability>;
}

const clamp = (value: number, min: number, max: number): number => Math.min(max, Math.max(min, value));

export function grantsFor(manifest: AppManifest, origin: 'store' | 'image' = 'store'): AppGrants {
  const endpoints = manifest.endpoints ?? [];
  const capabilities = (manifest.capabilities ?? []).filter((capability) => origin === 'image' || !RESERVED_CAPABILITIES.has(capability));
  return Object.freeze({
    packageId: manifest.package_id,
    sourceEndpoints: new Map(endpoints.filter((e) => e.direction === 'source').map((e) => [e.name, e])),
    destinationEndpoints: new Map(endpoints.filter((e) => e.direction === 'destination').map((e) => [e.name, e])),
    egressTargets: new Map((manifest.egress ?? []).map((t) => [t.name, t])),
    storageQuotaBytes: manifest.resources.storageMb * 1024 * 1024,
    limits: {
      memoryMb: clamp(manifest.resources.memoryMb, PLATFORM_LIMITS.minMemoryMb, PLATFORM_LIMITS.maxMemoryMb),
      cpuMsPerEvent: clamp(manifest.resources.cpuMsPerEvent, PLATFORM_LIMITS.minCpuMsPerEvent, PLATFORM_LIMITS.maxCpuMsPerEvent),
    },
    capabilities: new Set(capabilities),
  });
}

export function checkEmit(grants: AppGrants, endpoint: unknown): EndpointDeclaration {
  const declared = typeof endpoint === 'string' ? grants.sourceEndpoints.get(endpoint) : undefined;
  if (!declared) {
    const isDestination = typeof endpoint === 'string' && grants.destinationEndpoints.has(endpoint);
    throw fail(
      'E_CAPABILITY',
      isDestination
        ? `"${endpoint}" is a destination endpoint: an app emits only on its source endpoints`
        : `The manifest declares no source endpoint "${String(endpoint)}"`,
    );
  }
  return declared;
}

export function checkHandler(grants: AppGrants, endpoint: unknown): EndpointDeclaration {
  const declared = typeof endpoint === 'string' ? grants.destinationEndpoints.get(endpoint) : undefined;
  if (!declared) throw fail('E_CAPABILITY', `The manifest declares no destination endpoint "${String(endpoint)}" to handle`);
  return declared;
}

export function checkEgress(grants: AppGrants, target: unknown, protocol: EgressProtocol): EgressTarget {
  const declared = typeof target === 'string' ? grants.egressTargets.get(target) : undefined;
  if (!declared) throw fail('E_CAPABILITY', `The manifest declares no egress target "${String(target)}"`);
  if (declared.protocol !== protocol) {
    throw fail('E_EGRESS_PROTOCOL', `The egress target "${declared.name}" is ${declared.protocol}, not ${protocol}`);
  }
  return declared;
}

export function maxMessageBytes(endpoint: EndpointDeclaration): number {
  return endpoint.maxMessageBytes ?? PLATFORM_LIMITS.defaultMaxMessageBytes;
}
