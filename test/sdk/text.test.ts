import assert from 'node:assert/strict';
import { isIsogateError } from '../../sdk/errors.js';
import { validateManifest } from '../../sdk/manifest.js';
import { escapeControls, escapeControlsDeep, hasControls, safeJson } from '../../sdk/text.js';
import { sampleManifest } from '../fixtures/packages.js';

// Every character the issue names: C0, DEL, C1, the Arabic letter mark, bidi marks, embeddings,
// overrides and isolates, and the line and paragraph separators.
const NAMED_RANGES: [number, number][] = [
  [0x00, 0x1f],
  [0x7f, 0x9f],
  [0x61c, 0x61c],
  [0x200e, 0x200f],
  [0x202a, 0x202e],
  [0x2066, 0x2069],
  [0x2028, 0x2029],
];
const CONTROLS = NAMED_RANGES.flatMap(([from, to]) => Array.from({ length: to - from + 1 }, (_, i) => String.fromCharCode(from + i)));

describe('escapeControls', () => {
  it('turns every C0, C1, bidi and separator character into a visible escape', () => {
    for (const char of CONTROLS) {
      const escaped = escapeControls(`a${char}b`);
      assert.notEqual(escaped, `a${char}b`, `U+${char.charCodeAt(0).toString(16)}`);
      assert.equal(hasControls(escaped), false, `U+${char.charCodeAt(0).toString(16)} -> ${JSON.stringify(escaped)}`);
      assert.ok(hasControls(`a${char}b`));
    }
    assert.equal(escapeControls('\u001b[2J\n\r\t\u007f'), '\\x1b[2J\\n\\r\\t\\x7f');
    assert.equal(escapeControls('\u009b31m\u0085\u202e\u2066\u2028'), '\\u{9b}31m\\u{85}\\u{202e}\\u{2066}\\u{2028}');
  });

  it('keeps ordinary Unicode text as it is', () => {
    for (const text of ['Grüße, café', '温度センサー', 'مرحبا', 'שלום', '👩‍💻 ok', 'non\u00a0breaking', 'a\\nb']) {
      assert.equal(escapeControls(text), text);
      assert.equal(hasControls(text), false);
    }
  });

  it('escapes strings deep in a value, keys included, and leaves other values alone', () => {
    assert.deepEqual(escapeControlsDeep({ 'k\n': ['\u001b', { x: '\u202e' }], n: 1, b: true, z: null }), {
      'k\\n': ['\\x1b', { x: '\\u{202e}' }],
      n: 1,
      b: true,
      z: null,
    });
  });
});

describe('safeJson', () => {
  it('leaves no raw control in JSON and parses back to exactly the same value', () => {
    const value = { name: CONTROLS.join(''), nested: [CONTROLS.join('|')] };
    const text = safeJson(value, 2);
    assert.equal(hasControls(text.replace(/\n/g, '')), false);
    assert.deepEqual(JSON.parse(text), value);
    assert.equal(safeJson(undefined), 'null');
  });
});

describe("a signed manifest's name, title and publisher", () => {
  // A hostile publisher's package passes its signature check; its names must still not carry
  // a control, however it is spelled.
  for (const [field, value] of [
    ['name', 'Network\u202eProtector'],
    ['title', 'Title\u0085forged'],
    ['publisher', 'Acme\u009b2J'],
    ['name', 'Tab\tName'],
    ['title', 'Mark\u200f'],
  ] as const) {
    it(`refuses ${field} ${JSON.stringify(value)} with E_MANIFEST`, () => {
      assert.throws(
        () => validateManifest(sampleManifest({ [field]: value })),
        (error: unknown) => isIsogateError(error, 'E_MANIFEST') && error.message.includes(`/${field}`) && !hasControls(error.message),
      );
    });
  }

  it('keeps accepting ordinary Unicode names', () => {
    assert.equal(
      validateManifest(sampleManifest({ name: 'Temperatur-Fühler 温度', title: 'Mesure de la température', publisher: 'Société Ünïcode' })).name,
      'Temperatur-Fühler 温度',
    );
  });
});
