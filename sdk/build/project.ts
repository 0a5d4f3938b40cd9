/**
 * Builds an app project into an unsigned package: bundles its source into the manifest's entry
 * with esbuild and adds its assets. Used by `isogate-sdk build` and by the embedded store,
 * which builds the sample apps the same way a developer would.
 */
import { promises as fs } from 'node:fs';
import { builtinModules } from 'node:module';
import path from 'node:path';
import * as esbuild from 'esbuild';
import { fail, isIsogateError } from '../errors.js';
import { type AppManifest, parseManifest } from '../manifest.js';
import { buildPackage, type Compression } from '../package/index.js';
import { assertTypeChecks, checkManifestReferences, typeCheck } from './check.js';

export const SDK_MODULE = 'isogate:sdk';
const SOURCE_CANDIDATES = ['src/main.ts', 'src/main.js', 'src/main.mjs'];
const NODE_BUILTINS = new Set([...builtinModules, ...builtinModules.map((name) => `node:${name}`)]);
const MAX_ASSET_FILES = 1000;

export interface BuildOptions {
  /** The source entry, relative to the project; default src/main.ts or src/main.js. */
  source?: string;
  minify?: boolean;
  /** Check the literal endpoint names and egress targets in the code against the manifest (check.ts). Default true. */
  checkReferences?: boolean;
  /** Type-check with the project's tsconfig.json first (check.ts). Default false: `build` asks for it. */
  typeCheck?: boolean;
  /** The package's gzip effort (package/build.ts); `push` asks for `fastest`. Default `smallest`. */
  compression?: Compression;
}

export interface BuiltProject {
  manifest: AppManifest;
  packageBytes: Buffer;
  files: Map<string, Uint8Array>;
  /** The bundle's source map (also inline in the bundle, for DevTools), its sources' text included. */
  sourceMap: string;
  /** The project's own source files the bundle was made from (absolute). */
  sources: string[];
  /** Whether the TypeScript was type-checked (a project without tsconfig.json is not). */
  typeChecked: boolean;
}

/** A project's bundle and what it was made from, without the package (`run` needs no package). */
export interface BundledProject {
  manifest: AppManifest;
  files: Map<string, Uint8Array>;
  sourceMap: string;
  sources: string[];
}

type BundleOptions = esbuild.BuildOptions & { write: false; metafile: true };

/** The manifest and the source entry of a project, read afresh for each build. */
async function readProject(dir: string, given: string | undefined): Promise<{ manifest: AppManifest; source: string }> {
  const manifestBytes = await fs.readFile(path.join(dir, 'manifest.json')).catch(() => {
    throw fail('E_BUILD', `${dir} has no manifest.json: is it an isogate project? (isogate-sdk init creates one)`);
  });
  const manifest = parseManifest(manifestBytes);
  const source = given ?? (await firstExisting(dir, SOURCE_CANDIDATES));
  if (!source) throw fail('E_BUILD', `${dir} has none of ${SOURCE_CANDIDATES.join(', ')}; give the entry with --src`);
  return { manifest, source };
}

function bundleOptions(dir: string, manifest: AppManifest, source: string, minify: boolean): BundleOptions {
  return {
    entryPoints: [path.resolve(dir, source)],
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    target: 'es2022',
    write: false,
    outfile: path.join(dir, manifest.entry),
    external: [SDK_MODULE],
    minify,
    // Inline for DevTools in the isolate, which has nowhere to fetch a map file from; the
    // separate map is for the developer's own tools.
    sourcemap: 'both',
    sourcesContent: true,
    metafile: true,
    logLevel: 'silent',
    absWorkingDir: dir,
    plugins: [
      {
        name: 'isogate-no-node',
        setup(build) {
          // An app runs in a bare V8 isolate: a Node built-in would bundle as a dangling import
          // and fail only at launch on the gateway, so it fails here, with a sentence.
          build.onResolve({ filter: /.*/ }, (args) => {
            if (NODE_BUILTINS.has(args.path)) {
              return { errors: [{ text: `"${args.path}" is a Node API, which apps cannot use; the gateway gives apps ${SDK_MODULE} only` }] };
            }
            return undefined;
          });
        },
      },
    ],
  };
}

function buildFailure(error: unknown): never {
  const failure = error as esbuild.BuildFailure;
  const first = failure.errors?.[0];
  const where = first?.location ? `${first.location.file}:${first.location.line}:${first.location.column}: ` : '';
  throw fail('E_BUILD', `The app does not build: ${where}${first?.text ?? (error as Error).message}`, {
    errors: (failure.errors ?? []).map((e) => ({ text: e.text, file: e.location?.file, line: e.location?.line })),
  });
}

/** The bundle, its map and its own sources from esbuild's result, and the project's assets beside. */
async function bundled(dir: string, manifest: AppManifest, result: esbuild.BuildResult<BundleOptions>): Promise<BundledProject> {
  const bundle = result.outputFiles.find((file) => file.path.endsWith('.js'));
  const map = result.outputFiles.find((file) => file.path.endsWith('.js.map'));
  if (!bundle || !map) throw fail('E_BUILD', 'esbuild produced no JavaScript');
  const sources = Object.keys(result.metafile.inputs)
    .filter((input) => !input.split(/[\\/]/).includes('node_modules'))
    .map((input) => path.resolve(dir, input));
  const files = new Map<string, Uint8Array>([[manifest.entry, bundle.contents]]);
  await addAssets(path.join(dir, 'assets'), 'app/assets', files);
  return { manifest, files, sourceMap: map.text, sources };
}

export async function buildProject(projectDir: string, options: BuildOptions = {}): Promise<BuiltProject> {
  const dir = path.resolve(projectDir);
  const { manifest, source } = await readProject(dir, options.source);
  let result: esbuild.BuildResult<BundleOptions>;
  try {
    result = await esbuild.build(bundleOptions(dir, manifest, source, options.minify ?? false));
  } catch (error) {
    buildFailure(error);
  }
  const { files, sourceMap, sources } = await bundled(dir, manifest, result);
  // After the bundler, whose refusals (a Node API, a missing import) say more than tsc's would.
  let typeChecked = false;
  if (options.typeCheck) {
    const checked = await typeCheck(dir);
    assertTypeChecks(dir, checked);
    typeChecked = checked.checked;
  }
  if (options.checkReferences !== false) await checkManifestReferences(dir, manifest, sources);
  try {
    const packageBytes = await buildPackage(manifest, files, options.compression ? { compression: options.compression } : {});
    return { manifest, packageBytes, files, sourceMap, sources, typeChecked };
  } catch (error) {
    if (isIsogateError(error)) throw error;
    throw fail('E_BUILD', `The package cannot be written: ${(error as Error).message}`);
  }
}

export interface ProjectBundler {
  /** The project bundled as it is now (its manifest read again), incrementally after the first time. */
  bundle(): Promise<BundledProject>;
  dispose(): Promise<void>;
}

/**
 * `run`'s bundler: one esbuild context kept across saves, so a rebuild parses only the files that
 * changed (a large unchanged module is not parsed again), and no package is made (nothing is
 * installed). The context is made again when the entry or the manifest's entry changes.
 */
export function openProjectBundler(projectDir: string, options: { source?: string } = {}): ProjectBundler {
  const dir = path.resolve(projectDir);
  let context: esbuild.BuildContext<BundleOptions> | undefined;
  let key = '';
  return {
    async bundle() {
      const { manifest, source } = await readProject(dir, options.source);
      const wanted = `${source}\0${manifest.entry}`;
      if (!context || wanted !== key) {
        await context?.dispose();
        context = undefined;
        context = await esbuild.context(bundleOptions(dir, manifest, source, false));
        key = wanted;
      }
      let result: esbuild.BuildResult<BundleOptions>;
      try {
        result = await context.rebuild();
      } catch (error) {
        buildFailure(error);
      }
      return bundled(dir, manifest, result);
    },
    async dispose() {
      await context?.dispose();
      context = undefined;
    },
  };
}

async function firstExisting(dir: string, candidates: string[]): Promise<string | undefined> {
  for (const candidate of candidates) {
    if (
      await fs.stat(path.join(dir, candidate)).then(
        (s) => s.isFile(),
        () => false,
      )
    )
      return candidate;
  }
  return undefined;
}

async function addAssets(from: string, as: string, files: Map<string, Uint8Array>): Promise<void> {
  const entries = await fs.readdir(from, { withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    const source = path.join(from, entry.name);
    const target = `${as}/${entry.name}`;
    if (entry.isDirectory()) await addAssets(source, target, files);
    else if (entry.isFile()) {
      if (files.size >= MAX_ASSET_FILES) throw fail('E_BUILD', `More than ${MAX_ASSET_FILES} asset files`);
      files.set(target, await fs.readFile(source));
    } else throw fail('E_BUILD', `${source} is neither a file nor a directory; packages hold plain files only`);
  }
}
