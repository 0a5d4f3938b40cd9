/**
 * The app manifest: its TypeScript shape and its validation (schema in
 * manifests/app-manifest.schema.json, plus the rules JSON Schema cannot say).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { fail } from './errors.js';
import { assertDocumentBounds, configurationBoundsOf, DOCUMENT_LIMITS } from './limits.js';
import { assertValid, compileSchema, compileUntrustedSchema } from './schema.js';

export type EndpointDirection = 'source' | 'destination';
export type EndpointFormat = 'json' | 'text' | 'binary';
export type EgressProtocol = 'https' | 'tls' | 'mqtts';
export type NetworkZone = 'lan' | 'wan';
export type Capability = 'traffic.inspect' | 'traffic.block';

/**
 * Capabilities only the platform's own apps may hold: decided by where a package comes from
 * (the gateway's image, signed by a platform root), never by its id, name or publisher text.
 */
export const RESERVED_CAPABILITIES: ReadonlySet<Capability> = new Set(['traffic.inspect', 'traffic.block']);

export function reservedCapabilitiesOf(manifest: Pick<AppManifest, 'capabilities'>): Capability[] {
  return (manifest.capabilities ?? []).filter((capability) => RESERVED_CAPABILITIES.has(capability));
}
export type AppType = 'service' | 'connector' | 'security' | 'debug';

export interface EndpointDeclaration {
  name: string;
  direction: EndpointDirection;
  dataType: string;
  format: EndpointFormat;
  maxMessageBytes?: number;
  schema?: Record<string, unknown>;
  description?: string;
}

export interface EgressTarget {
  name: string;
  host: string;
  port: number;
  protocol: EgressProtocol;
  description?: string;
}

export interface AppManifest {
  manifestVersion: 1;
  package_id: string;
  name: string;
  title: string;
  description?: string;
  version: string;
  publisher: string;
  categories?: string[];
  type: AppType;
  buildSdkVersion: string;
  entry: string;
  resources: { memoryMb: number; cpuMsPerEvent: number; storageMb: number };
  endpoints?: EndpointDeclaration[];
  egress?: EgressTarget[];
  capabilities?: Capability[];
  configuration?: { schema: Record<string, unknown>; required?: boolean; defaults?: Record<string, unknown> };
  networkZone: NetworkZone;
  restartOnFailure?: boolean;
  developer?: { name: string; website?: string; email?: string };
  privacyPolicy?: string;
  license?: string;
}

export const MANIFEST_SCHEMA_PATH = fileURLToPath(new URL('../manifests/app-manifest.schema.json', import.meta.url));
export const MANIFEST_MAX_BYTES = DOCUMENT_LIMITS.manifestBytes;

let manifestSchema: object | undefined;
function schema(): object {
  manifestSchema ??= JSON.parse(readFileSync(MANIFEST_SCHEMA_PATH, 'utf8')) as object;
  return manifestSchema;
}

function assertUniqueNames(items: { name: string }[] | undefined, pointer: string): void {
  const seen = new Set<string>();
  (items ?? []).forEach((item, index) => {
    if (seen.has(item.name)) {
      throw fail('E_MANIFEST', `Manifest is not valid: ${pointer}/${index}/name "${item.name}" is declared twice (unique)`, {
        violations: [{ pointer: `${pointer}/${index}/name`, rule: 'unique', message: `"${item.name}" is declared twice` }],
      });
    }
    seen.add(item.name);
  });
}

/**
 * Validates a parsed manifest; throws E_MANIFEST naming the JSON pointer and the rule broken.
 * Its schemas are the publisher's: checked and compiled as untrusted (sdk/schema.ts), so a
 * pattern RE2 cannot run is E_SCHEMA_PATTERN here, at install, not a stall at the first message.
 */
export function validateManifest(value: unknown): AppManifest {
  assertDocumentBounds(value, { maxDepth: DOCUMENT_LIMITS.manifestDepth }, 'The manifest');
  assertValid(compileSchema(schema(), 'E_INTERNAL', 'manifest schema'), value, 'E_MANIFEST', 'Manifest');
  const manifest = value as AppManifest;
  assertUniqueNames(manifest.endpoints, '/endpoints');
  assertUniqueNames(manifest.egress, '/egress');
  manifest.endpoints?.forEach((endpoint, index) => {
    if (endpoint.schema) compileUntrustedSchema(endpoint.schema, `/endpoints/${index}/schema`);
  });
  if (manifest.configuration) {
    const validateConfig = compileUntrustedSchema(manifest.configuration.schema, '/configuration/schema');
    if (manifest.configuration.defaults) {
      assertDocumentBounds(manifest.configuration.defaults, configurationBoundsOf(manifest), 'Manifest /configuration/defaults');
      assertValid(validateConfig, manifest.configuration.defaults, 'E_MANIFEST', 'Manifest /configuration/defaults');
    }
  }
  return manifest;
}

/** Parses manifest bytes (bounded, UTF-8 JSON) and validates them. */
export function parseManifest(bytes: Uint8Array): AppManifest {
  if (bytes.byteLength > MANIFEST_MAX_BYTES) {
    throw fail('E_MANIFEST', `Manifest is ${bytes.byteLength} bytes; the limit is ${MANIFEST_MAX_BYTES}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (error) {
    throw fail('E_MANIFEST', `Manifest is not valid UTF-8 JSON: ${(error as Error).message}`);
  }
  return validateManifest(parsed);
}
