/**
 * What an installed app declares, as an admin reads it before trusting it with routes and
 * certificates: its endpoints, the hosts it may reach, its limits, reserved capabilities,
 * configuration schema, and who vouches for it (the verified signer, never the manifest's own
 * publisher text, which nobody checked). One view for both doors (`apps.manifest`).
 */
import type { AppManifest } from '../../sdk/manifest.js';
import { type AppOrigin, type IntegrityRecord, originOf } from '../integrity/index.js';

export interface AppManifestView {
  package_id: string;
  name: string;
  title: string;
  description: string | null;
  version: string;
  type: string;
  origin: AppOrigin;
  /** `verified`: its signature chains to the trusted root; `unsigned`: pushed in developer mode. */
  signature: 'verified' | 'unsigned';
  signer: { subject: string; issuer: string; fingerprint256: string; validTo: string } | null;
  /** The manifest's publisher text: a claim, shown beside the signer. */
  publisher_claim: string;
  developer: { name: string; website?: string; email?: string } | null;
  license: string | null;
  buildSdkVersion: string;
  networkZone: string;
  restartOnFailure: boolean;
  limits: { memoryMb: number; cpuMsPerEvent: number; storageMb: number };
  endpoints: {
    name: string;
    direction: 'source' | 'destination';
    dataType: string;
    format: string;
    maxMessageBytes: number | null;
    schema: boolean;
    description: string | null;
  }[];
  egress: { name: string; host: string; port: number; protocol: string; description: string | null }[];
  capabilities: string[];
  /** The schema the configuration editor checks against (and the gateway again), its defaults and whether one must be set. */
  configuration: { schema: Record<string, unknown>; required: boolean; defaults: Record<string, unknown> } | null;
}

export function appManifestView(app: { packageId: string; version: string; manifest: AppManifest; record: IntegrityRecord }): AppManifestView {
  const { manifest, record } = app;
  return {
    package_id: app.packageId,
    name: manifest.name,
    title: manifest.title,
    description: manifest.description ?? null,
    version: app.version,
    type: manifest.type,
    origin: originOf(record),
    signature: record.signer ? 'verified' : 'unsigned',
    signer: record.signer && {
      subject: record.signer.subject,
      issuer: record.signer.issuer,
      fingerprint256: record.signer.fingerprint256,
      validTo: record.signer.validTo,
    },
    publisher_claim: manifest.publisher,
    developer: manifest.developer ?? null,
    license: manifest.license ?? null,
    buildSdkVersion: manifest.buildSdkVersion,
    networkZone: manifest.networkZone,
    restartOnFailure: manifest.restartOnFailure === true,
    limits: { ...manifest.resources },
    endpoints: (manifest.endpoints ?? []).map((endpoint) => ({
      name: endpoint.name,
      direction: endpoint.direction,
      dataType: endpoint.dataType,
      format: endpoint.format,
      maxMessageBytes: endpoint.maxMessageBytes ?? null,
      schema: endpoint.schema !== undefined,
      description: endpoint.description ?? null,
    })),
    egress: (manifest.egress ?? []).map((target) => ({
      name: target.name,
      host: target.host,
      port: target.port,
      protocol: target.protocol,
      description: target.description ?? null,
    })),
    capabilities: [...(manifest.capabilities ?? [])],
    configuration: manifest.configuration
      ? { schema: manifest.configuration.schema, required: manifest.configuration.required === true, defaults: manifest.configuration.defaults ?? {} }
      : null,
  };
}

const STRING = { type: 'string' };
const NULLABLE_STRING = { type: ['string', 'null'] };
const COUNT = { type: 'integer', minimum: 0 };
function shape(properties: Record<string, unknown>): Record<string, unknown> {
  return { type: 'object', additionalProperties: false, required: Object.keys(properties), properties };
}

/** The REST answer's JSON Schema (the OpenAPI document's, and the tests check answers against it). */
export const APP_MANIFEST_SCHEMA = shape({
  package_id: STRING,
  name: STRING,
  title: STRING,
  description: NULLABLE_STRING,
  version: STRING,
  type: STRING,
  origin: { enum: ['store', 'image', 'debug'] },
  signature: { enum: ['verified', 'unsigned'] },
  signer: { oneOf: [{ type: 'null' }, shape({ subject: STRING, issuer: STRING, fingerprint256: STRING, validTo: STRING })] },
  publisher_claim: STRING,
  developer: { oneOf: [{ type: 'null' }, { type: 'object', required: ['name'], properties: { name: STRING, website: STRING, email: STRING } }] },
  license: NULLABLE_STRING,
  buildSdkVersion: STRING,
  networkZone: STRING,
  restartOnFailure: { type: 'boolean' },
  limits: shape({ memoryMb: COUNT, cpuMsPerEvent: COUNT, storageMb: COUNT }),
  endpoints: {
    type: 'array',
    items: shape({
      name: STRING,
      direction: { enum: ['source', 'destination'] },
      dataType: STRING,
      format: { enum: ['json', 'text', 'binary'] },
      maxMessageBytes: { type: ['integer', 'null'] },
      schema: { type: 'boolean', description: 'Messages are checked against a JSON Schema the manifest gives' },
      description: NULLABLE_STRING,
    }),
  },
  egress: {
    type: 'array',
    items: shape({ name: STRING, host: STRING, port: { type: 'integer' }, protocol: { enum: ['https', 'tls', 'mqtts'] }, description: NULLABLE_STRING }),
  },
  capabilities: { type: 'array', items: STRING },
  configuration: { oneOf: [{ type: 'null' }, shape({ schema: { type: 'object' }, required: { type: 'boolean' }, defaults: { type: 'object' } })] },
});
