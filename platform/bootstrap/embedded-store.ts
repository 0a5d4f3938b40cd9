/**
 * The store a gateway runs with when none is given: store-mock on loopback, with the sample
 * apps built, signed and published exactly as a developer and a store operator would, so the
 * gateway's own checks apply to them like to any other app.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildProject } from '../../sdk/build/project.js';
import { signPackage } from '../../sdk/package/index.js';
import { parseCertificates } from '../../sdk/pki.js';
import { serveStore } from '../../store-mock/server.js';
import { PLATFORM_APP_PROJECTS } from './platform-apps.js';

export const SAMPLE_APPS_DIR = fileURLToPath(new URL('../../sample-apps/', import.meta.url));

export interface EmbeddedStore {
  url: string;
  rootCertPem: string;
  /** Where the store keeps that root: what `isogate-sdk verify --trust` takes for its packages. */
  rootCertFile?: string;
  close(): Promise<void>;
}

export async function startEmbeddedStore(dir: string): Promise<EmbeddedStore> {
  const serving = await serveStore({ dir, port: 0 });
  try {
    await publishSamples(serving.store, path.join(dir, 'publisher'));
  } catch (error) {
    await serving.close();
    throw error;
  }
  return { url: serving.url, rootCertPem: serving.store.rootCertPem, rootCertFile: serving.store.rootCertFile, close: serving.close };
}

type Store = Awaited<ReturnType<typeof serveStore>>['store'];

async function publishSamples(store: Store, publisherDir: string): Promise<void> {
  const keyPath = path.join(publisherDir, 'publisher.key.pem');
  const issued = await fs.stat(keyPath).then(
    () => ({ keyPath, certPath: path.join(publisherDir, 'publisher.cert.pem'), chainPath: path.join(publisherDir, 'chain.pem') }),
    () => store.issuePublisher('isogate samples', publisherDir),
  );
  const signer = {
    keyPem: await fs.readFile(issued.keyPath, 'utf8'),
    certPem: await fs.readFile(issued.certPath, 'utf8'),
    chainPem: parseCertificates(await fs.readFile(issued.chainPath, 'utf8')),
  };
  const listed = await store.catalog();
  for (const entry of await fs.readdir(SAMPLE_APPS_DIR, { withFileTypes: true })) {
    // The build links each sample project into dist/sample-apps (see scripts/build.mjs).
    if (!entry.isDirectory() && !entry.isSymbolicLink()) continue;
    // The platform's own apps come from the image, signed with the platform's key (platform-apps.ts).
    if (PLATFORM_APP_PROJECTS.includes(entry.name)) continue;
    const projectDir = path.join(SAMPLE_APPS_DIR, entry.name);
    // A project without a manifest is not an app.
    const manifestText = await fs.readFile(path.join(projectDir, 'manifest.json'), 'utf8').catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT' || error.code === 'ENOTDIR') return undefined;
      throw error;
    });
    if (manifestText === undefined) continue;
    const manifest = JSON.parse(manifestText) as { package_id: string; version: string };
    if (listed.some((e) => e.package_id === manifest.package_id && e.version === manifest.version)) continue;
    const built = await buildProject(projectDir);
    await store.publish(await signPackage(built.packageBytes, signer));
  }
}
