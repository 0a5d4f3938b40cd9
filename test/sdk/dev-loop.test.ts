/**
 * `isogate-sdk run`'s loop (sdk/harness/dev-loop.ts): a save restarts the app with the edited
 * code, keeping its storage; what a save is made of (several watcher events, an editor's rename
 * over manifest.json, a file no build reads) restarts it once or not at all; a build that fails
 * is reported with its code and the next save runs again.
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { projectManifest } from '../../sdk/cli/templates.js';
import { type DevLoop, type DevLoopEvent, startDevLoop } from '../../sdk/harness/dev-loop.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';
import { waitFor } from '../fixtures/wait.js';

const source = (label: string): string => `import { emit, log, on, storage } from 'isogate:sdk';
import { twice } from './lib.js';
let handled = Number((await storage.get('handled')) ?? 0);
log.info('${label} after ' + handled);
on('input', async (message) => {
  handled += 1;
  await storage.put('handled', String(handled));
  emit('output', { value: twice((message as { value: number }).value) });
});
`;

describe('the dev loop of isogate-sdk run', function () {
  this.timeout(120_000);
  let dir: string;
  let loop: DevLoop;
  const events: DevLoopEvent[] = [];
  const running = (): number[] => events.flatMap((event) => (event.kind === 'running' ? [event.generation] : []));
  const logged = (text: string): boolean => events.some((event) => event.kind === 'log' && event.message === text);
  /**
   * The app's top level logs `text` while it starts, before the loop counts it running: waits
   * for both, so that what follows sees the restart that logged it finished.
   */
  const startedWith = (text: string): Promise<void> =>
    waitFor(() => {
      const at = events.findIndex((event) => event.kind === 'log' && event.message === text);
      return at >= 0 && events.slice(at).some((event) => event.kind === 'running' || event.kind === 'failed');
    }, 30_000);
  const writeManifest = async (version: string): Promise<void> => {
    // As an editor saves: a temporary beside it, renamed over the file.
    const temporary = path.join(dir, '.manifest.json.swp');
    await fs.writeFile(temporary, JSON.stringify({ ...projectManifest('com.example.looped', 'looped'), version }, null, 2));
    await fs.rename(temporary, path.join(dir, 'manifest.json'));
  };

  before(async () => {
    dir = await makeTempDir('isogate-dev-loop-');
    await fs.mkdir(path.join(dir, 'src'));
    await writeManifest('0.1.0');
    await fs.writeFile(path.join(dir, 'src', 'lib.ts'), 'export const twice = (value: number): number => 2 * value;\n');
    await fs.writeFile(path.join(dir, 'src', 'main.ts'), source('one'));
    loop = await startDevLoop({ project: dir, debounceMs: 50, onEvent: (event) => events.push(event) });
  });
  after(async () => {
    await loop?.close();
    await removeDir(dir);
  });

  it('runs the app, and after a save runs the edited code with the storage it had', async () => {
    assert.deepEqual(running(), [1]);
    await loop.current!.send('input', { value: 3 });
    assert.deepEqual(await loop.current!.nextEmit('output'), { value: 6 });
    await fs.writeFile(path.join(dir, 'src', 'lib.ts'), 'export const twice = (value: number): number => 20 * value;\n');
    await waitFor(() => running().length === 2, 30_000);
    assert.ok(logged('one after 1'), 'the storage the first run wrote is there after the restart');
    await loop.current!.send('input', { value: 3 });
    assert.deepEqual(await loop.current!.nextEmit('output'), { value: 60 }, 'the edited module runs');
  });

  it('restarts once for a burst of saves, and not at all for a file no build reads', async () => {
    const before = running().length;
    for (let i = 0; i < 5; i += 1) await fs.writeFile(path.join(dir, 'src', 'main.ts'), source(`burst ${i}`));
    await startedWith('burst 4 after 2');
    const afterBurst = running().length;
    assert.ok(afterBurst - before >= 1 && afterBurst - before < 5, `${afterBurst - before} restarts for 5 saves`);
    // A file under src/ that nothing imports: watched, but no source of the build changed.
    await fs.writeFile(path.join(dir, 'src', 'notes.md'), 'not code\n');
    await fs.writeFile(path.join(dir, 'src', 'main.ts'), source('after notes'));
    await startedWith('after notes after 2');
    assert.equal(running().length, afterBurst + 1, 'the note restarted nothing; the save of main.ts once');
  });

  it("follows manifest.json through an editor's renames over it, every time", async () => {
    await writeManifest('0.2.0');
    await waitFor(() => loop.current?.manifest.version === '0.2.0', 30_000);
    await writeManifest('0.3.0');
    await waitFor(() => loop.current?.manifest.version === '0.3.0', 30_000);
  });

  it('reports a build that fails with E_BUILD, keeps waiting, and runs the next good save', async () => {
    await fs.writeFile(path.join(dir, 'src', 'main.ts'), `${source('broken')}\nconst = ;\n`);
    await waitFor(() => events.some((event) => event.kind === 'failed'), 30_000);
    const failed = events.find((event) => event.kind === 'failed') as Extract<DevLoopEvent, { kind: 'failed' }>;
    assert.equal(failed.code, 'E_BUILD');
    assert.match(failed.message, /main\.ts:\d+:\d+/);
    await fs.writeFile(path.join(dir, 'src', 'main.ts'), source('fixed'));
    await startedWith('fixed after 2');
    assert.equal(events.at(-1)?.kind, 'running', 'the fixed save runs');
    assert.ok(loop.current, 'the app runs again');
  });
});
