/**
 * The boundary as a hostile app sees it: calls its SDK would never send, handed to the host's
 * handlers exactly as the sandbox hands them (protocol.ts dispatch), each refused with its own
 * code and changing nothing; and the wire end to end through isolates (bytes, copies, batches).
 */
import { strict as assert } from 'node:assert';
import { grantsFor, hostFor, type SandboxSide } from '../../platform/sandbox/capabilities.js';
import { decodeUtf8 } from '../../platform/sandbox/guest/utf8.js';
import { type AppSandbox, createAppSandbox } from '../../platform/sandbox/index.js';
import { type CheckedRun, dispatch, HOST_OPERATIONS, type HostOperation, resolvePayloads } from '../../platform/sandbox/protocol.js';
import type { ErrorCode } from '../../sdk/errors.js';
import type { AppManifest } from '../../sdk/manifest.js';
import { refusedWith } from '../fixtures/errors.js';
import { type FakeHost, fakeHost, jsonBatch } from '../fixtures/fake-host.js';
import { waitFor } from '../fixtures/wait.js';

function manifest(overrides: Partial<AppManifest> = {}): AppManifest {
  return {
    manifestVersion: 1,
    package_id: 'dev.isogate.test.app',
    name: 'test',
    title: 'Test',
    version: '1.0.0',
    publisher: 'tests',
    type: 'service',
    buildSdkVersion: '1.0.0',
    entry: 'app/main.js',
    networkZone: 'lan',
    resources: { memoryMb: 32, cpuMsPerEvent: 2000, storageMb: 1 },
    endpoints: [
      { name: 'in', direction: 'destination', dataType: 't', format: 'json' },
      { name: 'out', direction: 'source', dataType: 't', format: 'json', maxMessageBytes: 1024 },
      { name: 'raw', direction: 'source', dataType: 'b', format: 'binary' },
      { name: 'rawIn', direction: 'destination', dataType: 'b', format: 'binary' },
    ],
    egress: [
      { name: 'cloud', host: 'localhost', port: 8443, protocol: 'https' },
      { name: 'broker', host: 'localhost', port: 8883, protocol: 'mqtts' },
    ],
    ...overrides,
  };
}

/** The manifest's endpoints with "out" at the default message size, for large messages. */
const LARGE_OUT: Partial<AppManifest> = {
  endpoints: manifest().endpoints!.map((endpoint) => (endpoint.name === 'out' ? { ...endpoint, maxMessageBytes: undefined } : endpoint)),
};

/** The app's host as the sandbox builds it, over a fake host, with nothing else of a sandbox. */
function boundary(host: FakeHost = fakeHost()) {
  const side: SandboxSide & { calls: unknown[][] } = {
    calls: [],
    log: (level, text) => side.calls.push(['log', level, text]),
    timer: (...args) => side.calls.push(['timer', ...args]),
    ready: () => side.calls.push(['ready']),
    disposed: false,
    connections: new Map(),
    connectionEvent: async () => undefined,
    inspect: async () => [],
  };
  const handlers = hostFor(grantsFor(manifest()), host, side);
  const call = (op: unknown, args: unknown) => dispatch(handlers, op, args);
  /** Nothing reached the platform's services. */
  const untouched = (): void => {
    assert.deepEqual(host.emitted, []);
    assert.equal(host.store.size, 0);
    assert.deepEqual(host.logs, []);
    assert.deepEqual(side.calls, []);
  };
  return { host, side, call, untouched };
}

/** Arguments each operation accepts, and values of the wrong type for each argument. */
const VALID: Record<HostOperation, unknown[]> = {
  'storage.get': ['k'],
  'storage.put': ['k', 'v'],
  'storage.delete': ['k'],
  'storage.list': [''],
  'storage.usage': [],
  'emit.batch': [[['out', '{}', [2]]]],
  'egress.fetch': ['cloud', { method: 'GET', path: '/' }],
  'egress.publish': ['broker', 'topic', 'payload', { qos: 1 }],
  'egress.connect': ['tls', 1],
  'egress.write': [1, 'chunk'],
  'egress.end': [1],
  log: [3, 'line'],
  'timer.set': [1, 10, false],
  'timer.clear': [1],
  ready: [],
  'traffic.inspect': [],
};
function wrongFor(valid: unknown): unknown[] {
  if (typeof valid === 'string') return [42, null, {}, ['x'], true];
  if (typeof valid === 'number') return ['1', -1, 1.5, null, Number.NaN];
  if (typeof valid === 'boolean') return ['true', 1, null];
  if (Array.isArray(valid)) return ['x', { 0: valid[0] }, [[42, 'x', [1]]], [['out', '{}', 'two']]];
  return ['x', [], 42, { method: 'TRACE' }, { headers: { a: 1 } }, { unknown: 1 }];
}

describe('the protocol at the boundary', () => {
  it('declares every operation it dispatches, and refuses an unknown one naming it', async () => {
    assert.deepEqual(Object.keys(VALID).sort(), Object.keys(HOST_OPERATIONS).sort());
    for (const op of ['storage.format', 'constructor', '__proto__', 'toString', 42, undefined]) {
      const { call, untouched } = boundary();
      await assert.rejects(call(op, []), refusedWith('E_BAD_REQUEST', /Unknown platform call/));
      untouched();
    }
  });

  for (const op of Object.keys(VALID) as HostOperation[]) {
    VALID[op].forEach((valid, index) => {
      it(`refuses ${op} with a wrong argument ${index + 1}, naming both`, async () => {
        for (const wrong of wrongFor(valid)) {
          const { call, untouched } = boundary();
          const args = [...VALID[op]];
          args[index] = wrong;
          await assert.rejects(
            call(op, args),
            refusedWith('E_BAD_REQUEST', new RegExp(`^${op.replace('.', '\\.')}: argument ${index + 1}`)),
            JSON.stringify(wrong),
          );
          untouched();
        }
      });
    });
    it(`refuses ${op} with too many arguments or none that are a list`, async () => {
      const { call, untouched } = boundary();
      await assert.rejects(call(op, [...VALID[op], 'extra']), refusedWith('E_BAD_REQUEST', new RegExp(op.replace('.', '\\.'))));
      await assert.rejects(call(op, 'not a list'), refusedWith('E_BAD_REQUEST'));
      untouched();
    });
  }

  describe('a forged emit batch', () => {
    const forged: [string, unknown[], ErrorCode, RegExp][] = [
      ['lengths that add up to less than the text', [['out', '{"a":1}{"b":2}', [7]]], 'E_BAD_REQUEST', /add up to 7; its text has 14/],
      ['lengths that add up to more than the text', [['out', '{"a":1}', [7, 1]]], 'E_BAD_REQUEST', /add up to 8/],
      ['a negative length', [['out', '{"a":1}{}', [10, -3]]], 'E_BAD_REQUEST', /argument 1\[1\]\[2\]\[1\] is not a non-negative integer/],
      ['a fractional length', [['out', '{"a":1}{}', [7.5, 1.5]]], 'E_BAD_REQUEST', /is not a non-negative integer/],
      ['a run on a destination endpoint', [['in', '{}', [2]]], 'E_CAPABILITY', /"in" is a destination endpoint/],
      ['a run on an undeclared endpoint', [['elsewhere', '{}', [2]]], 'E_CAPABILITY', /declares no source endpoint "elsewhere"/],
      ['a binary run on a json endpoint', [['out', [new Uint8Array([123, 125])]]], 'E_BAD_REQUEST', /carries bytes to the json endpoint "out"/],
      ['a text run on a binary endpoint', [['raw', 'ab', [2]]], 'E_BAD_REQUEST', /carries text to the binary endpoint "raw"/],
      [
        'more than 4096 messages',
        [
          ['out', '{}'.repeat(2100), new Array(2100).fill(2)],
          ['raw', new Array(2000).fill(new Uint8Array(1))],
        ],
        'E_BAD_REQUEST',
        /At most 4096 messages .* 4101/,
      ],
      ['a run of strings as bytes', [['raw', ['ab']]], 'E_BAD_REQUEST', /is not bytes/],
    ];
    for (const [what, runs, code, sentence] of forged) {
      it(`is refused as a whole for ${what} (${code})`, async () => {
        const { call, untouched } = boundary();
        // A valid run first: the refusal of the batch takes it too.
        await assert.rejects(call('emit.batch', [[['out', '{"ok":1}', [8]], ...runs]]), refusedWith(code, sentence));
        untouched();
      });
    }

    describe('with its payloads beside the call, named by position', () => {
      const text = '{"a":1}{"b":2}';
      const bytes = new Uint8Array([1, 2, 3]);
      const payloads = [text, bytes, new Uint8Array([4])];

      it('resolves a text run and a binary run to what the codecs take', async () => {
        const { host, call } = boundary();
        let taken: CheckedRun[] = [];
        host.emitBatch = async (runs) => {
          taken = runs;
          return [];
        };
        const runs = resolvePayloads(
          [
            ['out', 0, [7, 7]],
            ['raw', 1, 2],
          ],
          payloads,
        );
        assert.deepEqual(await call('emit.batch', [runs]), []);
        assert.deepEqual(
          taken.map((run) => ('messages' in run ? run.messages.map((m) => [...m]) : [run.text, run.lengths])),
          [
            [text, [7, 7]],
            [[1, 2, 3], [4]],
          ],
        );
      });

      const forged: [string, unknown[], RegExp][] = [
        ['a text position past the payloads', [['out', 3, [7]]], /argument 1\[0\]/],
        ['a text position that names bytes', [['out', 1, [3]]], /argument 1\[0\]/],
        ['a binary range past the payloads', [['raw', 1, 3]], /argument 1\[0\]/],
        ['a binary range from a negative position', [['raw', -1, 2]], /argument 1\[0\]/],
        ['a binary range that takes the text', [['raw', 0, 1]], /argument 1\[0\]\[1\]\[0\] is not bytes/],
        ['a fractional position', [['out', 0.5, [7]]], /argument 1\[0\]/],
        // One payload named by many runs would make one crossing's bytes many messages' worth.
        [
          'a text payload named by two runs',
          [
            ['out', 0, [7, 7]],
            ['out', 0, [14]],
          ],
          /argument 1\[1\]/,
        ],
        [
          'a binary payload in two ranges',
          [
            ['raw', 1, 2],
            ['raw', 2, 1],
          ],
          /argument 1\[1\]/,
        ],
      ];
      for (const [what, runs, sentence] of forged) {
        it(`refuses the batch for ${what} (E_BAD_REQUEST), handing nothing to the host`, async () => {
          const { call, untouched } = boundary();
          await assert.rejects(call('emit.batch', [resolvePayloads(runs, payloads)]), refusedWith('E_BAD_REQUEST', sentence));
          untouched();
        });
      }
    });

    it('cannot hide two messages in one length: the message is one, and not JSON', async () => {
      const { host, call } = boundary();
      const refusals = await call('emit.batch', [
        [
          ['out', '{"a":1}{"b":2}{"c":3}', [14, 7]],
          ['out', '{"a":1}\n{"b":2}', [15]],
        ],
      ]);
      assert.deepEqual(
        (refusals as unknown[][]).map(([index, code]) => [index, code]),
        [
          [0, 'E_MESSAGE'],
          [2, 'E_MESSAGE'],
        ],
      );
      assert.deepEqual(host.emitted, [{ endpoint: 'out', message: { c: 3 } }]);
    });

    it('is refused with E_BACKPRESSURE when a second one arrives while the first is in flight', async () => {
      const host = fakeHost();
      let release: () => void = () => undefined;
      const gate = new Promise<void>((resolve) => {
        release = resolve;
      });
      const seen: CheckedRun[][] = [];
      host.emitBatch = async (runs) => {
        seen.push(runs);
        await gate;
        return [];
      };
      const { call } = boundary(host);
      const first = call('emit.batch', [[['out', '{"n":1}', [7]]]]);
      await assert.rejects(call('emit.batch', [[['out', '{"n":2}', [7]]]]), refusedWith('E_BACKPRESSURE', /in flight already/));
      release();
      assert.deepEqual(await first, []);
      assert.equal(seen.length, 1);
      // Once answered, the next batch is taken.
      assert.deepEqual(await call('emit.batch', [[['out', '{"n":3}', [7]]]]), []);
      assert.equal(seen.length, 2);
    });

    it('copies bytes backed by a SharedArrayBuffer, an offset view included', async () => {
      const host = fakeHost();
      let taken: Uint8Array[] = [];
      host.emitBatch = async (runs) => {
        taken = runs.flatMap((run) => ('messages' in run ? run.messages : []));
        return [];
      };
      const { call } = boundary(host);
      const shared = new SharedArrayBuffer(16);
      const view = new Uint8Array(shared, 4, 8).fill(7);
      await call('emit.batch', [[['raw', [view]]]]);
      assert.ok(taken[0]!.buffer instanceof ArrayBuffer);
      assert.deepEqual([...taken[0]!], new Array(8).fill(7));
      view[0] = 99;
      assert.equal(taken[0]![0], 7);
    });
  });
});

describe('the wire through isolates', function () {
  this.timeout(30_000);
  const running: AppSandbox[] = [];
  afterEach(() => {
    for (const sandbox of running.splice(0)) sandbox.dispose();
  });

  async function start(source: string, host: FakeHost = fakeHost(), overrides: Partial<AppManifest> = {}): Promise<{ sandbox: AppSandbox; host: FakeHost }> {
    const sandbox = await createAppSandbox({
      manifest: manifest(overrides),
      files: new Map([['app/main.js', source]]),
      host,
      limits: { startDeadlineMs: 5000 },
    });
    running.push(sandbox);
    await sandbox.start();
    return { sandbox, host };
  }

  it("refuses early in the guest with the host's own code and sentence", async () => {
    const host = fakeHost();
    await start(
      `import { emit, on, egress, log } from 'isogate:sdk';
      const seen = [];
      for (const attempt of [() => emit('in', {}), () => emit('nowhere', {}), () => on('out', () => {})]) {
        try { attempt(); } catch (e) { seen.push(e.code + ' ' + e.message); }
      }
      try { await egress.fetch('elsewhere'); } catch (e) { seen.push(e.code + ' ' + e.message); }
      log.info(JSON.stringify(seen));`,
      host,
    );
    const guest = JSON.parse(await host.waitForLog(/^\[/)) as string[];
    const { call } = boundary();
    const hostSide = async (op: string, args: unknown[]): Promise<string> => {
      try {
        await call(op, args);
        return 'accepted';
      } catch (error) {
        const { code, message } = error as { code: string; message: string };
        return `${code} ${message}`;
      }
    };
    assert.deepEqual(guest, [
      await hostSide('emit.batch', [[['in', '{}', [2]]]]),
      await hostSide('emit.batch', [[['nowhere', '{}', [2]]]]),
      `E_CAPABILITY The manifest declares no destination endpoint "out" to handle`,
      await hostSide('egress.fetch', ['elsewhere', {}]),
    ]);
    assert.match(guest[0]!, /^E_CAPABILITY "in" is a destination endpoint/);
  });

  it('refuses a reserved capability on an app not installed from the image, in the grants that build its host', async () => {
    const claims: Partial<AppManifest> = { capabilities: ['traffic.inspect'] };
    await assert.rejects(
      createAppSandbox({ manifest: manifest(claims), files: new Map([['app/main.js', '']]), host: fakeHost() }),
      refusedWith('E_RESERVED_CAPABILITY', /traffic\.inspect but was not installed from the gateway's image/),
    );
    assert.throws(() => grantsFor(manifest(claims)), refusedWith('E_RESERVED_CAPABILITY'));
    assert.ok(grantsFor(manifest(claims), 'image').capabilities.has('traffic.inspect'));
  });

  it('hands fetch response bodies to the app as bytes, every byte value intact, with text() as UTF-8', async () => {
    const host = fakeHost();
    const every = Uint8Array.from({ length: 256 }, (_, i) => i);
    const bodies = [every, Buffer.from('h\u00e9llo \u{1F600}'), Uint8Array.from([0x61, 0xff, 0xe2, 0x82, 0x62])];
    let next = 0;
    host.egress.fetch = async () => ({ status: 200, headers: { 'content-type': 'application/octet-stream' }, body: bodies[next++]! });
    await start(
      `import { egress, log } from 'isogate:sdk';
      const out = [];
      for (let i = 0; i < 3; i++) { const r = await egress.fetch('cloud'); out.push({ bytes: r.body instanceof Uint8Array, values: [...r.body], text: r.text() }); }
      log.info(JSON.stringify(out));`,
      host,
    );
    const line = await host.waitForLog(/^\[/);
    const [binary, utf8, bad] = JSON.parse(line) as { bytes: boolean; values: number[]; text: string }[];
    assert.equal(binary!.bytes, true);
    assert.deepEqual(binary!.values, [...every]);
    assert.equal(utf8!.text, 'h\u00e9llo \u{1F600}');
    assert.equal(bad!.text, 'a\ufffd\ufffdb');
  });

  it('decodes UTF-8 as the WHATWG decoder does, replacement characters included', () => {
    const decoder = new TextDecoder('utf-8', { ignoreBOM: true });
    let seed = 12345;
    const random = (): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    const interesting = [0x00, 0x7f, 0x80, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff, 0x9f, 0xa0, 0x8f, 0x90];
    for (let round = 0; round < 5000; round += 1) {
      const bytes = Uint8Array.from({ length: random() % 12 }, () => (random() % 3 === 0 ? random() % 256 : interesting[random() % interesting.length]!));
      assert.equal(decodeUtf8(bytes), decoder.decode(bytes), `bytes ${[...bytes].join(',')}`);
    }
    const every = Uint8Array.from({ length: 256 }, (_, i) => i);
    assert.equal(decodeUtf8(every), decoder.decode(every));
    const large = Buffer.from('\u00e9\u{1F600}x'.repeat(10_000));
    assert.equal(decodeUtf8(large), large.toString('utf8'));
  });

  it('copies a SharedArrayBuffer view emitted on a binary endpoint: no memory is shared either way', async () => {
    const host = fakeHost();
    let carried: Uint8Array[] = [];
    host.emitBatch = async (runs) => {
      carried = runs.flatMap((run) => ('messages' in run ? run.messages : []));
      return [];
    };
    const source = await start(
      `import { emit, log, on } from 'isogate:sdk';
      const shared = new SharedArrayBuffer(16);
      const view = new Uint8Array(shared, 4, 8).fill(7);
      await emit('raw', view);
      view.fill(1);
      on('in', () => log.info('sender sees ' + [...new Uint8Array(shared, 4, 8)].join(',')));`,
      host,
    );
    assert.equal(carried.length, 1);
    assert.ok(carried[0]!.buffer instanceof ArrayBuffer);
    assert.deepEqual([...carried[0]!], new Array(8).fill(7), 'the write after emit did not reach the copy');
    const destinationHost = fakeHost();
    const destination = await start(
      `import { on, log } from 'isogate:sdk';
      on('rawIn', (bytes) => { log.info('got ' + [...bytes].join(',') + ' shared ' + (bytes.buffer instanceof SharedArrayBuffer)); bytes.fill(9); });`,
      destinationHost,
    );
    assert.deepEqual(await destination.sandbox.deliver('rawIn', { messages: carried }), { invalid: [], failed: [] });
    assert.equal(await destinationHost.waitForLog(/^got /), 'got 7,7,7,7,7,7,7,7 shared false');
    await source.sandbox.deliver('in', jsonBatch({}));
    assert.equal(await host.waitForLog(/^sender sees /), 'sender sees 1,1,1,1,1,1,1,1');
    assert.deepEqual([...carried[0]!], new Array(8).fill(7), 'the destination wrote into its own copy');
  });

  it('copies large binary messages too, which cross one argument each: a SharedArrayBuffer view included, none shared', async () => {
    const host = fakeHost();
    let carried: Uint8Array[] = [];
    host.emitBatch = async (runs) => {
      carried = runs.flatMap((run) => ('messages' in run ? run.messages : []));
      return [];
    };
    const source = await start(
      `import { emit, log, on } from 'isogate:sdk';
      const shared = new SharedArrayBuffer(40 * 1024);
      const view = new Uint8Array(shared, 1024, 32 * 1024).fill(7);
      emit('raw', view);
      await emit('raw', new Uint8Array(20 * 1024).fill(8));
      view.fill(1);
      on('in', () => log.info('sender sees ' + new Uint8Array(shared, 1024, 32 * 1024).every((b) => b === 1)));`,
      host,
    );
    assert.deepEqual(
      carried.map((bytes) => [bytes.byteLength, bytes[0], bytes.buffer instanceof ArrayBuffer]),
      [
        [32 * 1024, 7, true],
        [20 * 1024, 8, true],
      ],
    );
    const destinationHost = fakeHost();
    const destination = await start(
      `import { on, log } from 'isogate:sdk';
      on('rawIn', (bytes) => {
        log.info('got ' + bytes.byteLength + ' of ' + bytes[0] + ' shared ' + (bytes.buffer instanceof SharedArrayBuffer) + ' own ' + (bytes.buffer.byteLength === bytes.byteLength));
        bytes.fill(9);
      });`,
      destinationHost,
    );
    assert.deepEqual(await destination.sandbox.deliver('rawIn', { messages: carried }), { invalid: [], failed: [] });
    await waitFor(() => destinationHost.logs.filter((l) => l.message.startsWith('got ')).length === 2);
    assert.deepEqual(
      destinationHost.logs.filter((l) => l.message.startsWith('got ')).map((l) => l.message),
      ['got 32768 of 7 shared false own true', 'got 20480 of 8 shared false own true'],
    );
    await source.sandbox.deliver('in', jsonBatch({}));
    assert.equal(await host.waitForLog(/^sender sees /), 'sender sees true');
    assert.ok(carried[0]!.every((b) => b === 7) && carried[1]!.every((b) => b === 8), 'neither the sender nor the destination wrote into the host copy');
  });

  it('sends one emit batch at a time, and refuses emits past 8192 waiting with E_BACKPRESSURE', async () => {
    const host = fakeHost();
    let inFlight = 0;
    let most = 0;
    const batches: number[] = [];
    const plain = host.emitBatch;
    host.emitBatch = async (runs) => {
      inFlight += 1;
      most = Math.max(most, inFlight);
      batches.push(runs.reduce((sum, run) => sum + ('lengths' in run ? run.lengths.length : run.messages.length), 0));
      await new Promise((resolve) => setImmediate(resolve));
      inFlight -= 1;
      return plain(runs);
    };
    await start(
      `import { emit, log } from 'isogate:sdk';
      const receipts = [];
      let refused = 'none';
      for (let i = 0; i < 10000; i++) {
        try { receipts.push(emit('out', { i })); } catch (e) { refused = i + ' ' + e.code + ' ' + e.message; break; }
      }
      await Promise.all(receipts);
      log.info('refused at ' + refused);
      await emit('out', { after: true });
      log.info('accepted again');`,
      host,
    );
    assert.equal(
      await host.waitForLog(/^refused at /),
      `refused at 8192 E_BACKPRESSURE the routes from "out" are full; await emit's result to be slowed down instead`,
    );
    await host.waitForLog(/^accepted again$/);
    assert.equal(most, 1, 'never two batches in flight');
    assert.ok(batches.every((count) => count <= 512));
    assert.equal(host.emitted.length, 8193);
    assert.deepEqual(
      host.emitted.slice(0, 8192).map((e) => (e.message as { i: number }).i),
      Array.from({ length: 8192 }, (_, i) => i),
    );
  });

  it('delivers each json message on its own: invalid ones are not handed over, failed ones are counted', async () => {
    const { sandbox, host } = await start(
      `import { on, emit } from 'isogate:sdk'; on('in', (m) => { if (m.throw) throw new Error('refuses this one'); emit('out', m); });`,
    );
    const texts = ['{"n":1}', 'not json', `${'['.repeat(40)}${']'.repeat(40)}`, '{"throw":true}', '{"n":2}', '{"__proto__":{"polluted":"yes"}}'];
    const result = await sandbox.deliver('in', { texts: [texts.join('')], lengths: texts.map((t) => t.length) });
    assert.deepEqual(result, { invalid: [1, 2], failed: [3] });
    await waitFor(() => host.emitted.length === 3);
    assert.deepEqual(host.emitted.slice(0, 2), [
      { endpoint: 'out', message: { n: 1 } },
      { endpoint: 'out', message: { n: 2 } },
    ]);
    // __proto__ crossed as a plain own key, both ways, and polluted no prototype on either side.
    const echoed = host.emitted[2]!.message as Record<string, unknown>;
    assert.ok(Object.hasOwn(echoed, '__proto__'));
    assert.deepEqual(Object.getOwnPropertyDescriptor(echoed, '__proto__')?.value, { polluted: 'yes' });
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.ok(host.logs.some((l) => l.level === 1 && /refuses this one/.test(l.message)));
  });

  it('delivers a text that comes in pieces, a message that runs on into the next piece put back together', async () => {
    const { sandbox, host } = await start(`import { on, emit } from 'isogate:sdk'; on('in', (m) => { emit('out', m); });`, fakeHost(), LARGE_OUT);
    const texts = ['{"n":1}', `{"note":"${'x'.repeat(2000)}"}`, '{"n":2}', '{"n":3}'];
    const whole = texts.join('');
    // Cut inside the second message and again inside the fourth: pieces need not end where messages do.
    const pieces = [whole.slice(0, 20), whole.slice(20, whole.length - 3), whole.slice(whole.length - 3)];
    const result = await sandbox.deliver('in', { texts: pieces, lengths: texts.map((t) => t.length) });
    assert.deepEqual(result, { invalid: [], failed: [] });
    await waitFor(() => host.emitted.length === 4);
    assert.deepEqual(
      host.emitted.map((e) => e.message),
      texts.map((t) => JSON.parse(t)),
    );
  });

  it('emits messages with long strings that need escaping exactly as they were', async () => {
    const { sandbox, host } = await start(
      `import { on, emit } from 'isogate:sdk'; on('in', (m) => { for (const note of m.notes) emit('out', { note, n: note.length }); });`,
      fakeHost(),
      LARGE_OUT,
    );
    const notes = ['x'.repeat(70_000), `${'y'.repeat(5000)}"\\\n\u0000`, `${'é'.repeat(3000)}\ud83d`, `${'z'.repeat(4000)}😀`];
    await sandbox.deliver('in', { texts: [JSON.stringify({ notes })], lengths: [JSON.stringify({ notes }).length] });
    await waitFor(() => host.emitted.length === notes.length);
    assert.deepEqual(
      host.emitted.map((e) => e.message),
      notes.map((note) => ({ note, n: note.length })),
    );
  });
});
