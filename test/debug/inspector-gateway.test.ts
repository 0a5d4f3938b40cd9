/**
 * The DevTools endpoint against a stand-in inspector: messages relayed both ways, binary
 * frames refused, a peer gone without a close cut by the heartbeat (which ends the session and
 * so resumes a paused app), one that answers kept, and the heartbeat option checked.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import WebSocket from 'ws';
import { FileAuditLog } from '../../platform/audit/index.js';
import { type Inspectable, InspectorGateway } from '../../platform/debug/index.js';
import { isIsogateError } from '../../sdk/errors.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';
import { waitFor } from '../fixtures/wait.js';

const APP = 'com.dev.app';
const TOKEN = 'isgd_alice';

describe('the DevTools endpoint', () => {
  let dir: string;
  let audit: FileAuditLog;
  let server: http.Server;
  let gateway: InspectorGateway;
  let base: string;
  const sessions: { sent: string[]; closed: boolean; reply?: (message: string) => void }[] = [];
  const inspectable: Inspectable = {
    openSession(onMessage) {
      const session = { sent: [] as string[], closed: false, reply: onMessage };
      sessions.push(session);
      return {
        dispatch: (message) => {
          session.sent.push(message);
          onMessage(`{"id":1,"result":{"echo":${JSON.stringify(message)}}}`);
        },
        close: () => {
          session.closed = true;
        },
      };
    },
  };

  before(async () => {
    dir = await makeTempDir();
    audit = await FileAuditLog.open(path.join(dir, 'audit'));
    gateway = new InspectorGateway({
      authenticate: (token) => (token === TOKEN ? 'alice' : undefined),
      ownerOf: (id) => (id === APP ? 'alice' : undefined),
      inspectable: () => inspectable,
      developerMode: () => true,
      refused: async () => undefined,
      audit,
      heartbeatMs: 50,
    });
    server = http.createServer();
    server.on('upgrade', (request, socket, head) => gateway.upgrade(request, socket, head));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `ws://127.0.0.1:${(server.address() as AddressInfo).port}/v1/inspector/${APP}/${TOKEN}`;
  });
  after(async () => {
    gateway.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await removeDir(dir);
  });

  const open = (options: WebSocket.ClientOptions = {}): Promise<WebSocket> =>
    new Promise((resolve, reject) => {
      const socket = new WebSocket(base, options);
      socket.once('open', () => resolve(socket));
      socket.once('error', reject);
    });

  it('checks heartbeatMs at construction', () => {
    for (const heartbeatMs of [0, 5, 1.5, 700_000]) {
      assert.throws(
        () =>
          new InspectorGateway({
            authenticate: () => undefined,
            ownerOf: () => undefined,
            inspectable: () => undefined,
            developerMode: () => true,
            refused: async () => undefined,
            audit,
            heartbeatMs,
          }),
        (error: unknown) => isIsogateError(error, 'E_OPTION'),
      );
    }
  });

  it('relays text both ways and refuses a binary frame, ending the session', async () => {
    const socket = await open();
    const answer = new Promise<string>((resolve) => socket.once('message', (data) => resolve(String(data))));
    socket.send('{"id":1,"method":"Runtime.enable"}');
    assert.equal(JSON.parse(await answer).result.echo, '{"id":1,"method":"Runtime.enable"}');
    const closed = new Promise<number>((resolve) => socket.once('close', (code) => resolve(code)));
    socket.send(Buffer.from([1, 2, 3]), { binary: true });
    assert.equal(await closed, 1003);
    await waitFor(() => sessions.at(-1)!.closed);
  });

  it('keeps a peer that answers its pings, and cuts one that stopped answering, which ends its session', async () => {
    const alive = await open();
    let pings = 0;
    alive.on('ping', () => {
      pings += 1;
    });
    await waitFor(() => pings >= 3);
    assert.equal(alive.readyState, WebSocket.OPEN);
    assert.equal(sessions.at(-1)!.closed, false);
    alive.close();
    await waitFor(() => sessions.at(-1)!.closed);

    const silent = await open({ autoPong: false });
    const session = sessions.at(-1)!;
    await waitFor(() => silent.readyState === WebSocket.CLOSED, 10_000);
    await waitFor(() => session.closed);
  });
});
