/** Certificate serial numbers as sdk/pki.ts draws them: DER that every X.509 reader takes. */
import assert from 'node:assert/strict';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { createCertificate, randomSerial } from '../../sdk/pki.js';

describe('certificate serial numbers', () => {
  it('are 16 bytes, positive, and never start with a zero byte (which made 1 certificate in 128 unreadable)', () => {
    for (let draw = 0; draw < 20_000; draw += 1) {
      const serial = randomSerial();
      assert.match(serial, /^[0-7][0-9a-f]{31}$/);
      assert.notEqual(serial.slice(0, 2), '00', serial);
    }
  });

  it('gives a certificate OpenSSL reads, with the serial it was given', () => {
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const serial = randomSerial();
    const pem = createCertificate({
      publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }) as string,
      signingKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
      subject: { commonName: 'serial test' },
      usage: 'ca',
      serialNumber: serial,
    });
    assert.equal(new X509Certificate(pem).serialNumber.toLowerCase(), serial);
  });
});
