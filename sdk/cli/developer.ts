/**
 * The SDK's side of developer mode: `push`, `logs -f` and `debug` talk to a gateway's debug
 * service over HTTP with the developer's token (`--token`, or $ISOGATE_TOKEN, so that it stays
 * out of the shell's history), never through the admin's control socket. The gateway decides
 * everything (the token, the app's owner, every package check); this is only its client.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { buildProject } from '../build/project.js';
import { fail, isErrorCode } from '../errors.js';
import { escapeControls, safeJson } from '../text.js';

export interface DeveloperTarget {
  gateway: string;
  token: string;
}

/** The gateway and token from the options or the environment, checked before anything is sent. */
export function developerTarget(values: { gateway?: string; token?: string }): DeveloperTarget {
  const gateway = values.gateway ?? process.env.ISOGATE_GATEWAY;
  const token = values.token ?? process.env.ISOGATE_TOKEN;
  if (!gateway) throw fail('E_USAGE', 'Which gateway? Give --gateway URL (the URL "isogate debug-service start" printed) or set $ISOGATE_GATEWAY');
  if (!token) throw fail('E_USAGE', 'Give your developer token: --token TOKEN or $ISOGATE_TOKEN (the gateway admin issues it)');
  let url: URL;
  try {
    url = new URL(gateway);
  } catch {
    throw fail('E_USAGE', `--gateway is a URL such as http://127.0.0.1:8443, not "${escapeControls(gateway)}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw fail('E_USAGE', '--gateway is an http:// or https:// URL');
  return { gateway: url.origin, token };
}

/** One request to the debug service; its refusals come back as their own codes. */
async function request(target: DeveloperTarget, method: string, route: string, body?: Uint8Array): Promise<Response> {
  let response: Response;
  try {
    response = await fetch(`${target.gateway}${route}`, {
      method,
      headers: { authorization: `Bearer ${target.token}`, ...(body ? { 'content-type': 'application/octet-stream' } : {}) },
      ...(body ? { body } : {}),
      redirect: 'manual',
    });
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).message;
    throw fail(
      'E_UNAVAILABLE',
      `No debug service answers at ${target.gateway} (${cause}): is the gateway in developer mode ("isogate debug-service start") and is this its URL?`,
    );
  }
  if (response.ok) return response;
  const answer = (await response.json().catch(() => undefined)) as { code?: unknown; message?: unknown } | undefined;
  if (answer && isErrorCode(answer.code)) throw fail(answer.code, String(answer.message ?? answer.code));
  throw fail('E_UNAVAILABLE', `The debug service at ${target.gateway} answered ${response.status} without a reason`);
}

/** The package to push: an .igp file as it is, or a project directory built first (as `build` would). */
export async function packageToPush(given: string | undefined): Promise<{ bytes: Buffer; from: string }> {
  const where = path.resolve(given ?? '.');
  const stat = await fs.stat(where).catch(() => undefined);
  if (!stat) throw fail('E_NOT_FOUND', `${where} is neither a package nor a project directory`);
  if (stat.isFile()) return { bytes: await fs.readFile(where), from: where };
  // The inner loop: no type-check or manifest check in front of the upload (build and run make
  // them), and the quickest gzip, since the package goes to a gateway at hand, not to a store.
  const built = await buildProject(where, { checkReferences: false, compression: 'fastest' });
  return { bytes: built.packageBytes, from: where };
}

export async function push(target: DeveloperTarget, bytes: Uint8Array): Promise<Record<string, unknown>> {
  return (await (await request(target, 'POST', '/v1/apps', bytes)).json()) as Record<string, unknown>;
}

/** The app to reach: --id, else the project's manifest in the current directory. */
export async function appId(given: string | undefined): Promise<string> {
  if (given) return given;
  const manifest = await fs.readFile(path.resolve('manifest.json'), 'utf8').catch(() => undefined);
  const id = manifest ? (JSON.parse(manifest) as { package_id?: unknown }).package_id : undefined;
  if (typeof id !== 'string') throw fail('E_USAGE', 'Which app? Give --id ID, or run this in the app project (its manifest.json names it)');
  return id;
}

/** Prints the app's log lines as the gateway sends them, each escaped; with `follow` until interrupted. */
export async function logs(target: DeveloperTarget, id: string, options: { follow: boolean; tail?: number; json: boolean }): Promise<void> {
  const query = new URLSearchParams({ ...(options.follow ? { follow: '1' } : {}), ...(options.tail === undefined ? {} : { tail: String(options.tail) }) });
  const response = await request(target, 'GET', `/v1/apps/${encodeURIComponent(id)}/logs?${query}`);
  const decoder = new TextDecoder();
  let pending = '';
  for await (const chunk of response.body!) {
    pending += decoder.decode(chunk as Uint8Array, { stream: true });
    const lines = pending.split('\n');
    pending = lines.pop()!;
    for (const text of lines) {
      if (!text) continue;
      const { line } = JSON.parse(text) as { line: string };
      process.stdout.write(`${options.json ? safeJson(String(line)) : escapeControls(String(line))}\n`);
    }
  }
}

export async function debug(target: DeveloperTarget, id: string): Promise<{ package_id: string; webSocketUrl: string; devtoolsUrl: string }> {
  return (await (await request(target, 'POST', `/v1/apps/${encodeURIComponent(id)}/debug`)).json()) as {
    package_id: string;
    webSocketUrl: string;
    devtoolsUrl: string;
  };
}
