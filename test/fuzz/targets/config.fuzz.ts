/** config.json as the gateway reads it at start-up (platform/config): JSON, repairs, the schema, the bounds. */
import { parseConfigDocument, validateDocument } from '../../../platform/config/index.js';
import { broken, refused } from '../refusal.js';

export function fuzz(data: Buffer): void {
  let document: unknown;
  try {
    document = parseConfigDocument(data.toString('utf8'), 'config.json').document;
  } catch (error) {
    refused(error);
    return;
  }
  // What was taken must be writable and readable again (a document once made every write fail).
  const again = JSON.stringify(document);
  if (again === undefined) broken('an accepted document does not serialise');
  validateDocument(JSON.parse(again));
}
