/** startGateway's own options: a bad one is refused before the data directory is touched. */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { startGateway } from '../../platform/main.js';
import { isIsogateError } from '../../sdk/errors.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';

describe('gateway options', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await makeTempDir();
  });
  afterEach(() => removeDir(dir));

  it('refuses an appLogFileBytes that is no integer from 4096 to 10485760 with E_OPTION, creating nothing', async () => {
    for (const appLogFileBytes of [0, 4095, 10 * 1024 * 1024 + 1, 5000.5, Number.NaN]) {
      const dataDir = path.join(dir, 'data');
      await assert.rejects(
        startGateway({ dataDir, appLogFileBytes }),
        (error: unknown) => isIsogateError(error, 'E_OPTION') && /appLogFileBytes/.test(error.message),
        String(appLogFileBytes),
      );
      assert.equal(await fs.stat(dataDir).catch(() => undefined), undefined, 'no data directory was made');
    }
  });
});
