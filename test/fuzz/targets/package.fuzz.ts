/** The package reader (sdk/package): what the orchestrator gets from a store or a developer's push. */
import { readPackage } from '../../../sdk/package/index.js';
import { refused } from '../refusal.js';

export async function fuzz(data: Buffer): Promise<void> {
  try {
    // Unsigned allowed, so the reader gets past the signature into digests, file set and manifest.
    await readPackage(data, { trust: { allowUnsigned: true } });
  } catch (error) {
    refused(error);
  }
}
