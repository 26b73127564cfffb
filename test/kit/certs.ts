/**
 * Test TLS material made at test time: a private CA and a server certificate it signed for
 * localhost / 127.0.0.1. Tests trust the CA (upstream `tls.ca`), never turn verification off.
 * EC keys keep generation fast; the result is cached per process.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generate } from 'selfsigned';

export interface TestCerts {
  /** CA certificate (PEM) to trust. */
  caCert: string;
  /** Server key and certificate (PEM), signed by the CA, valid for localhost and 127.0.0.1. */
  key: string;
  cert: string;
}

let cached: Promise<TestCerts> | undefined;

export function testCerts(): Promise<TestCerts> {
  cached ??= makeCerts();
  return cached;
}

/** A certificate for the same names that no trusted CA signed (for "untrusted upstream" tests). */
export async function untrustedCert(): Promise<{ key: string; cert: string }> {
  const pems = await generate([{ name: 'commonName', value: 'localhost' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    extensions: serverExtensions(),
  });
  return { key: pems.private, cert: pems.cert };
}

/** Writes the CA certificate into `dir` and returns the file path (for `upstreams[].tls.ca`). */
export async function writeCaFile(dir: string): Promise<string> {
  const file = join(dir, 'upstream-ca.pem');
  await writeFile(file, (await testCerts()).caCert);
  return file;
}

async function makeCerts(): Promise<TestCerts> {
  const ca = await generate([{ name: 'commonName', value: 'scanrelay test CA' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    ],
  });
  const server = await generate([{ name: 'commonName', value: 'localhost' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    extensions: serverExtensions(),
    ca: { key: ca.private, cert: ca.cert },
  });
  return { caCert: ca.cert, key: server.private, cert: server.cert };
}

function serverExtensions() {
  return [
    { name: 'basicConstraints' as const, cA: false },
    { name: 'keyUsage' as const, digitalSignature: true, keyEncipherment: true },
    { name: 'extKeyUsage' as const, serverAuth: true },
    {
      name: 'subjectAltName' as const,
      altNames: [
        { type: 2 as const, value: 'localhost' },
        { type: 7 as const, ip: '127.0.0.1' },
      ],
    },
  ];
}
