/**
 * What the gateway sends for the web interface (issue 16, part 6: first contentful paint): each
 * page's document with the chrome for the request's session (and no more than chrome), the
 * hashed script and stylesheet compressed once and cached for good, with the encoding the
 * browser takes; then the same through the API's HTTPS server, behind the client certificate.
 */
import { strict as assert } from 'node:assert';
import path from 'node:path';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { Agent, request } from 'undici';
import { AccountStore, Authenticator, USER_SETTINGS_DEFAULTS } from '../../platform/accounts/index.js';
import { type HttpApi, SESSION_COOKIE, serveHttpApi } from '../../platform/api/http/index.js';
import type { GatewayServices } from '../../platform/api/services.js';
import { MemoryAuditLog } from '../../platform/audit/index.js';
import { accepts, compressWeb, PAGE_CSP, type WebFrontEnd, type WebRequest, webFrontEnd } from '../../platform/web/assets.js';
import type { Viewer } from '../../platform/web/shell.js';
import { MENU } from '../../web/menu.js';
import { en } from '../../web/strings/en.js';
import { ru } from '../../web/strings/ru.js';
import { apiPki, type Identity, sha256Of } from '../api/harness.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';

// A stand-in bundle: the front end's own is esbuild's, which these tests need not wait for.
const BUNDLE = {
  js: `import('./chunk.C4KE2TZ7.js');console.log(${JSON.stringify('x'.repeat(4000))});`,
  css: `body{color:#123}${'.a{margin:0}'.repeat(200)}`,
  chunk: `export const page=${JSON.stringify('y'.repeat(2000))};`,
};

async function frontEnd(): Promise<WebFrontEnd> {
  return webFrontEnd(
    await compressWeb([
      { name: 'chunk.C4KE2TZ7.js', text: BUNDLE.chunk },
      { name: 'app.VQ3LX5BM.js', text: BUNDLE.js },
      { name: 'app.HUDK6R2Z.css', text: BUNDLE.css },
    ]),
  );
}

function get(path: string, options: { viewer?: Viewer; lang?: string; acceptEncoding?: string; asked?: string[] } = {}): WebRequest {
  return {
    path,
    acceptEncoding: options.acceptEncoding ?? '',
    lang: options.lang,
    viewer: async () => {
      options.asked?.push(path);
      return options.viewer;
    },
  };
}

const text = (body: Buffer | string): string => body.toString();
const ADMIN: Viewer = { role: 'admin', name: 'admin', mustChange: false };
const USER: Viewer = { role: 'user', name: 'user', mustChange: false };
const menuLinks = (html: string): string[] => [...html.matchAll(/<a href="\/(\w+)"/g)].map((match) => match[1]!);

describe('web interface documents and files', () => {
  it("sends each page's chrome for the admin: the whole menu, the current page marked, its heading and a loading line", async () => {
    const web = await frontEnd();
    for (const entry of MENU) {
      const answer = (await web.respond(get(`/${entry.id}`, { viewer: ADMIN })))!;
      const html = text(answer.body);
      assert.equal(answer.headers['Content-Type'], 'text/html; charset=utf-8');
      assert.equal(answer.headers['Cache-Control'], 'no-store', 'the document depends on the session');
      assert.deepEqual(
        menuLinks(html),
        MENU.map((item) => item.id),
      );
      assert.deepEqual(
        [...html.matchAll(/aria-current="page">([^<]+)</g)].map((match) => match[1]),
        [en[entry.label]],
      );
      assert.ok(html.includes(`<main><h1>${en[entry.label]}</h1><p class="loading" role="status">${en.loading}</p></main>`), entry.id);
      assert.ok(html.includes('<span class="who">admin (admin)</span>'));
    }
    assert.equal(text((await web.respond(get('/', { viewer: ADMIN })))!.body), text((await web.respond(get('/status', { viewer: ADMIN })))!.body));
  });

  it("gives the user account only the manual's entries for it, even on an admin page's path", async () => {
    const web = await frontEnd();
    const html = text((await web.respond(get('/audit', { viewer: USER })))!.body);
    assert.deepEqual(
      menuLinks(html),
      MENU.filter((entry) => entry.roles.includes('user')).map((entry) => entry.id),
    );
    assert.deepEqual(menuLinks(html), ['status', 'apps', 'events']);
    assert.ok(html.includes(`<h1>${en.audit}</h1>`), "the heading is the path's; the page says it is not the user's once the script runs");
  });

  it('shows no menu, name or role without a session: only the login card and the loading line', async () => {
    const web = await frontEnd();
    const html = text((await web.respond(get('/users')))!.body);
    assert.deepEqual(menuLinks(html), []);
    assert.ok(!html.includes('<nav'));
    assert.ok(!/admin|\(user\)/.test(html.replace(/<head>[\s\S]*<\/head>/, '')), 'no account is named');
    assert.ok(html.includes(`<form class="card" aria-label="${en.login}"><h1>${en.title}</h1>`));
    assert.ok(html.includes(`<p class="loading" role="status">${en.loading}</p>`));
    const changing = text((await web.respond(get('/users', { viewer: { ...ADMIN, mustChange: true } })))!.body);
    assert.ok(!changing.includes('<nav'), 'before the first-login change, nothing but the change form');
    assert.ok(changing.includes(en.mustChange));
  });

  it("writes the account's name as text, never markup", async () => {
    const web = await frontEnd();
    const html = text((await web.respond(get('/status', { viewer: { ...ADMIN, name: '<img src=x onerror="alert(1)">&' } })))!.body);
    assert.ok(!html.includes('<img'));
    assert.ok(html.includes('&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp; (admin)'));
  });

  it("links only the gateway's hashed stylesheet and a module script: nothing inline", async () => {
    const web = await frontEnd();
    const html = text((await web.respond(get('/status', { viewer: ADMIN })))!.body);
    const scripts = [...html.matchAll(/<script([^>]*)>([\s\S]*?)<\/script>/g)];
    assert.deepEqual(
      scripts.map((match) => [match[1], match[2]]),
      [[` type="module" src="${web.assets.js}"`, '']],
    );
    assert.ok(!/<style|\sstyle=|\son\w+=/.test(html));
    assert.equal(web.assets.js, '/assets/app.VQ3LX5BM.js', 'the entry, not a page chunk');
    assert.equal(web.assets.css, '/assets/app.HUDK6R2Z.css');
    assert.ok(html.includes(`<link rel="stylesheet" href="${web.assets.css}">`));
  });

  it('sends the chrome in the language the switch chose, and English for anything else', async () => {
    const web = await frontEnd();
    const russian = text((await web.respond(get('/np', { viewer: ADMIN, lang: 'ru' })))!.body);
    assert.ok(russian.includes('<html lang="ru">'));
    assert.ok(russian.includes(`<h1>${ru.np}</h1>`) && russian.includes(ru.logout) && russian.includes(`<button class="lang">${ru.language}</button>`));
    for (const lang of ['de', '"><script>', undefined]) {
      const html = text((await web.respond(get('/np', { viewer: ADMIN, ...(lang === undefined ? {} : { lang }) })))!.body);
      assert.ok(html.includes('<html lang="en">') && html.includes(`<h1>${en.np}</h1>`), String(lang));
    }
  });

  it('sends the hashed files brotli- or gzip-compressed as the browser accepts, cached for good, without asking for the session', async () => {
    const web = await frontEnd();
    const asked: string[] = [];
    for (const [file, original] of [
      [web.assets.js, BUNDLE.js],
      [web.assets.css, BUNDLE.css],
      ['/assets/chunk.C4KE2TZ7.js', BUNDLE.chunk],
    ] as const) {
      const br = (await web.respond(get(file, { acceptEncoding: 'gzip, deflate, br, zstd', asked })))!;
      assert.equal(br.headers['Content-Encoding'], 'br');
      assert.equal(br.headers.Vary, 'Accept-Encoding');
      assert.equal(br.headers['Cache-Control'], 'public, max-age=31536000, immutable');
      assert.equal(brotliDecompressSync(br.body).toString(), original);
      assert.ok(br.body.length < original.length / 4, 'compressed');
      const gz = (await web.respond(get(file, { acceptEncoding: 'gzip, br;q=0', asked })))!;
      assert.equal(gz.headers['Content-Encoding'], 'gzip');
      assert.equal(gunzipSync(gz.body).toString(), original);
      for (const none of ['', 'identity', 'gzip;q=0, br;q=0', 'deflate']) {
        const plain = (await web.respond(get(file, { acceptEncoding: none, asked })))!;
        assert.equal(plain.headers['Content-Encoding'], undefined, none);
        assert.equal(plain.headers.Vary, 'Accept-Encoding');
        assert.equal(text(plain.body), original);
      }
    }
    assert.deepEqual(asked, [], 'a file is the same for everyone');
  });

  it("answers nothing for a path that is not the interface's: the API's 404 follows", async () => {
    const web = await frontEnd();
    const asked: string[] = [];
    for (const path of ['/nope', '/status/', '/assets/app.0000000000000000.js', '/assets/../status', '/app.js', '/STATUS', '/status.html']) {
      assert.equal(await web.respond(get(path, { viewer: ADMIN, asked })), undefined, path);
    }
    assert.deepEqual(asked, []);
  });

  it('reads Accept-Encoding by its tokens and weights', () => {
    assert.equal(accepts('gzip, br', 'br'), true);
    assert.equal(accepts('br;q=0.1', 'br'), true);
    assert.equal(accepts('BR', 'br'), true);
    assert.equal(accepts('br;q=0', 'br'), false);
    assert.equal(accepts('brotli', 'br'), false);
    assert.equal(accepts('*', 'gzip'), true);
    assert.equal(accepts('*;q=0', 'gzip'), false);
    assert.equal(accepts('gzip;q=0, *', 'gzip'), false);
    assert.equal(accepts('', 'gzip'), false);
  });
});

describe('web interface over the API server', function () {
  this.timeout(60_000);
  let dir: string;
  let api: HttpApi;
  let web: WebFrontEnd;
  let audit: MemoryAuditLog;
  let now = Date.now();
  const agents: Agent[] = [];
  const agentFor = (identity?: Identity): Agent => {
    const agent = new Agent({
      connect: { ca: apiPki().root.certPem, ...(identity ? { cert: identity.certPem, key: identity.keyPem } : {}), servername: 'localhost' },
    });
    agents.push(agent);
    return agent;
  };

  /** Logs the admin in over `agent` and answers with the session cookie (name=value). */
  const logInAdmin = async (agent: Agent, password: string): Promise<string> => {
    const login = await request(`${api.url}/api/v1/session`, {
      dispatcher: agent,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'admin', password }),
    });
    assert.equal(login.statusCode, 200);
    await login.body.dump();
    return String(login.headers['set-cookie']).split(';')[0]!;
  };

  before(async () => {
    const keys = apiPki();
    dir = await makeTempDir('isogate-web-');
    audit = new MemoryAuditLog();
    const accounts = await AccountStore.open(
      path.join(dir, 'accounts'),
      {
        admin: { name: 'admin', password: 'adminadmin', certificateSha256: sha256Of(keys.admin), certificateValidTo: null },
        user: { name: 'user', password: 'useruser', certificateSha256: sha256Of(keys.user), certificateValidTo: null },
      },
      () => now,
    );
    const authenticator = new Authenticator({ accounts, audit, settings: () => USER_SETTINGS_DEFAULTS, clock: () => now });
    web = await frontEnd();
    api = await serveHttpApi({
      port: 0,
      tls: { keyPem: keys.server.keyPem, certPem: keys.server.certPem, rootCertPem: keys.root.certPem },
      services: {} as GatewayServices,
      authenticator,
      audit,
      version: '0.1.0',
      web,
      webCsp: PAGE_CSP,
    });
  });
  after(async () => {
    for (const agent of agents) await agent.close();
    await api.close();
    await removeDir(dir);
  });

  it("serves a page's chrome with the strict CSP, and the session's menu once logged in", async () => {
    const agent = agentFor(apiPki().admin);
    const before = await request(`${api.url}/certs`, { dispatcher: agent });
    assert.equal(before.statusCode, 200);
    assert.equal(before.headers['content-security-policy'], PAGE_CSP);
    assert.equal(before.headers['cache-control'], 'no-store');
    assert.ok(!(await before.body.text()).includes('<nav'));

    const cookie = await logInAdmin(agent, 'adminadmin');
    const changing = await (await request(`${api.url}/certs`, { dispatcher: agent, headers: { cookie } })).body.text();
    assert.ok(changing.includes(en.mustChange) && !changing.includes('<nav'));

    const { csrfToken } = (await (await request(`${api.url}/api/v1/session`, { dispatcher: agent, headers: { cookie } })).body.json()) as { csrfToken: string };
    const changed = await request(`${api.url}/api/v1/users/admin/credentials`, {
      dispatcher: agent,
      method: 'PUT',
      headers: { cookie, 'content-type': 'application/json', 'x-csrf-token': csrfToken },
      body: JSON.stringify({ oldPassword: 'adminadmin', newPassword: 'Front-end-2026' }),
    });
    assert.equal(changed.statusCode, 200, await changed.body.text());
    const html = await (await request(`${api.url}/certs`, { dispatcher: agent, headers: { cookie } })).body.text();
    assert.deepEqual(
      menuLinks(html),
      MENU.map((entry) => entry.id),
    );
    assert.ok(html.includes(`aria-current="page">${en.certs}<`));
  });

  it("refuses another certificate's session cookie for the page as the API does, and shows no menu", async () => {
    const admin = agentFor(apiPki().admin);
    const cookie = await logInAdmin(admin, 'Front-end-2026');
    assert.ok(cookie.startsWith(`${SESSION_COOKIE}=`));
    const stolen = await request(`${api.url}/status`, { dispatcher: agentFor(apiPki().user), headers: { cookie } });
    assert.equal(stolen.statusCode, 200);
    assert.ok(!(await stolen.body.text()).includes('<nav'));
    assert.ok(audit.records.some((record) => record.event === 'requestRefused' && String(record.text).includes('another certificate')));
  });

  it('sends the files compressed through the server, and refuses a connection without a client certificate with its code', async () => {
    const agent = agentFor(apiPki().admin);
    const script = await request(`${api.url}${web.assets.js}`, { dispatcher: agent, headers: { 'accept-encoding': 'br' } });
    assert.equal(script.statusCode, 200);
    assert.equal(script.headers['content-encoding'], 'br');
    assert.equal(script.headers['content-type'], 'application/javascript; charset=utf-8');
    assert.equal(script.headers['cache-control'], 'public, max-age=31536000, immutable');
    assert.equal(script.headers.vary, 'Accept-Encoding');
    assert.equal(brotliDecompressSync(Buffer.from(await script.body.arrayBuffer())).toString(), BUNDLE.js);

    const missing = await request(`${api.url}/nope`, { dispatcher: agent });
    assert.equal(missing.statusCode, 404);
    assert.equal(((await missing.body.json()) as { code: string }).code, 'E_NOT_FOUND');

    const anonymous = await request(`${api.url}/status`, { dispatcher: agentFor() });
    assert.equal(anonymous.statusCode, 401);
    assert.equal(((await anonymous.body.json()) as { code: string }).code, 'E_CERTIFICATE_REQUIRED');
  });

  it("does not count a page's document as the person's activity: the idle period runs on", async () => {
    const agent = agentFor(apiPki().admin);
    const cookie = await logInAdmin(agent, 'Front-end-2026');
    const idle = USER_SETTINGS_DEFAULTS.idle_minutes * 60_000;
    now += idle - 60_000;
    const html = await (await request(`${api.url}/status`, { dispatcher: agent, headers: { cookie } })).body.text();
    assert.ok(html.includes('<nav'), 'the session is live');
    now += 2 * 60_000;
    const after = await request(`${api.url}/api/v1/session`, { dispatcher: agent, headers: { cookie } });
    assert.equal(after.statusCode, 401);
    assert.equal(((await after.body.json()) as { code: string }).code, 'E_SESSION');
    assert.ok(audit.events().includes('sessionIdleLock'));
  });
});
