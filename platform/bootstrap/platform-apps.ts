/**
 * The platform's own apps in the demo: a real device's image brings them built and signed by
 * the vendor; the demo, having no vendor, builds them from their sources with the SDK (as the
 * embedded store builds the sample apps), signs them with its own platform signer
 * (platform-root.ts) and installs them as from the image, so they are verified like every app.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseCertificates } from '../../sdk/pki.js';
import { writeFileDurable } from '../durable/index.js';
import type { Orchestrator } from '../orchestrator/index.js';
import type { PlatformRoot } from './platform-root.js';

const SAMPLE_APPS_DIR = fileURLToPath(new URL('../../sample-apps/', import.meta.url));

/** Projects under sample-apps/ that are the platform's own: never in a store, only in the image. */
export const PLATFORM_APP_PROJECTS: readonly string[] = ['network-protector'];

/** Installs each platform app that is not installed yet; an installed one is left as it is (updates come with the image). */
export async function installPlatformApps(orchestrator: Orchestrator, root: PlatformRoot): Promise<string[]> {
  const installed: string[] = [];
  for (const project of PLATFORM_APP_PROJECTS) {
    const projectDir = path.join(SAMPLE_APPS_DIR, project);
    const manifest = JSON.parse(await fs.readFile(path.join(projectDir, 'manifest.json'), 'utf8')) as { package_id: string };
    if (orchestrator.get(manifest.package_id)) continue;
    // Loaded only here: the bundler and the signer are not needed by a gateway whose image is ready.
    const { buildProject } = await import('../../sdk/build/project.js');
    const { signPackage } = await import('../../sdk/package/index.js');
    const built = await buildProject(projectDir);
    const signed = await signPackage(built.packageBytes, {
      keyPem: await fs.readFile(root.signerKeyFile, 'utf8'),
      certPem: await fs.readFile(root.signerCertFile, 'utf8'),
      chainPem: parseCertificates(root.rootCertPem),
    });
    const file = path.join(root.dir, 'image', `${project}.igp`);
    await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    await writeFileDurable(file, signed);
    await orchestrator.installFromImage(file);
    installed.push(manifest.package_id);
  }
  return installed;
}
