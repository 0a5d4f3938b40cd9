import { strict as assert } from 'node:assert';
import { headerText } from '../../platform/api/http/params.js';
import { refusedWith } from '../fixtures/errors.js';

/** A header's text (a restore's passphrase) as a hostile client may send it. */
describe('a header value read as text (RFC 8187 or raw UTF-8)', () => {
  it('reads percent-encoded UTF-8 and raw UTF-8 bytes alike', () => {
    assert.equal(headerText(`UTF-8''${encodeURIComponent('пароль 1')}`, 'X-Backup-Passphrase'), 'пароль 1');
    assert.equal(headerText(Buffer.from('пароль 1').toString('latin1'), 'X-Backup-Passphrase'), 'пароль 1');
  });

  // The Settings page's encoder (encodeURIComponent) leaves ' ( ) * as they are; RFC 8187's attr-char has none of them.
  it("reads a passphrase with ' ( ) * as encodeURIComponent sends it (not as the literal UTF-8''... text)", () => {
    const passphrase = "it's (mine)* ёж";
    assert.equal(headerText(`UTF-8''${encodeURIComponent(passphrase)}`, 'X-Backup-Passphrase'), passphrase);
  });

  // The decoder drops a leading byte order mark unless told not to: two passphrases would read as one.
  it('keeps a leading U+FEFF: the text is what was sent, not another passphrase', () => {
    assert.equal(headerText("UTF-8''%EF%BB%BFabc", 'X-Backup-Passphrase'), '\uFEFFabc');
    assert.equal(headerText('\xEF\xBB\xBFabc', 'X-Backup-Passphrase'), '\uFEFFabc');
  });

  const refused: [string, string][] = [
    ['an overlong encoding', "UTF-8''%C0%AF"],
    ['a surrogate', "UTF-8''%ED%A0%80"],
    ['a code point past U+10FFFF', "UTF-8''%F4%90%80%80"],
    ['a truncated sequence', "UTF-8''%D0"],
    // Named as RFC 8187 but not its grammar: refused, not taken as the literal text.
    ['a percent sign without two hex digits', "UTF-8''%ZZ"],
    ['a lone percent sign at the end', "UTF-8''abc%"],
    ['a space inside the encoded value', "utf-8''a b"],
  ];
  for (const [what, value] of refused) {
    it(`refuses ${what} (E_BAD_REQUEST)`, () => {
      assert.throws(() => headerText(value, 'X-Backup-Passphrase'), refusedWith('E_BAD_REQUEST', /X-Backup-Passphrase/));
    });
  }
});
