/** Manifest validation (sdk/manifest.ts), untrusted schemas and defaults included. */
import { parseManifest } from '../../../sdk/manifest.js';
import { refused } from '../refusal.js';

export function fuzz(data: Buffer): void {
  try {
    parseManifest(data);
  } catch (error) {
    refused(error);
  }
}
