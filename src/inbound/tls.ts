/**
 * Certificate for the device-facing TLS (STARTTLS on the plaintext port, implicit TLS on smtp.tlsPort):
 * the configured smtp.tls.certFile/keyFile, or a self-signed one generated once into <dataDir>/tls/ and
 * reused on every start (so a device that was told to trust it keeps working). A generated certificate
 * is replaced only when it is unreadable, expired, or does not name smtp.hostname.
 */
import { chmod, mkdir, readFile, stat } from 'node:fs/promises';
import { X509Certificate } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import { isIP } from 'node:net';
import { join } from 'node:path';
import type { LegacyTls, SmtpConfig } from '../config/index.js';
import type { Logger } from '../observability/logger.js';
import { GatewayError, errorMessage } from '../shared/errors.js';
import { writeFileDurable } from '../shared/durable-fs.js';
import type { ServerTls } from './index.js';

/** RSA, not EC: TLS 1.0 devices mostly know only RSA suites (including RSA key exchange). */
const GENERATED_KEY_BITS = 2048;
const GENERATED_VALIDITY_DAYS = 3650;
const DAY_MS = 86_400_000;

export const GENERATED_CERT_FILE = 'device-cert.pem';
export const GENERATED_KEY_FILE = 'device-key.pem';

export interface LoadedServerTls extends ServerTls {
  /** Where the certificate came from, for the log and the docs. */
  source: 'configured' | 'generated' | 'reused';
  certPath: string;
  fingerprint256: string;
  validTo: string;
}

/** True when the config asks for any TLS towards devices. */
export function deviceTlsWanted(smtp: SmtpConfig): boolean {
  return smtp.starttls || smtp.tlsPort !== undefined;
}

export async function loadServerTls(smtp: SmtpConfig, dataDir: string, logger: Logger): Promise<LoadedServerTls> {
  const loaded =
    smtp.tls.certFile && smtp.tls.keyFile
      ? await loadConfigured(smtp.tls.certFile, smtp.tls.keyFile, smtp.tls.legacyTls)
      : await loadOrGenerate(join(dataDir, 'tls'), smtp, logger);
  const { key: _key, cert: _cert, ...visible } = loaded;
  logger.info(visible, 'smtp.tls.ready');
  if (Date.parse(loaded.validTo) <= Date.now()) logger.warn({ certPath: loaded.certPath, validTo: loaded.validTo }, 'smtp.tls.certificate-expired');
  if (smtp.tls.legacyTls)
    logger.warn(
      { listeners: smtp.tls.legacyTls === true ? 'starttls+tlsPort' : smtp.tls.legacyTls },
      'smtp.tls.legacyTls is on: TLS 1.0/1.1 and weak ciphers are accepted from devices (LAN only)',
    );
  return loaded;
}

async function loadConfigured(certFile: string, keyFile: string, legacyTls: LegacyTls): Promise<LoadedServerTls> {
  const [cert, key] = await Promise.all([readPem(certFile, 'smtp.tls.certFile'), readPem(keyFile, 'smtp.tls.keyFile')]);
  const problem = pairProblem(key, cert);
  if (problem) throw new GatewayError('SCANRELAY_TLS_INVALID', `smtp.tls: ${certFile} / ${keyFile}: ${problem}`);
  const x509 = new X509Certificate(cert);
  return { key, cert, legacyTls, source: 'configured', certPath: certFile, fingerprint256: x509.fingerprint256, validTo: new Date(x509.validTo).toISOString() };
}

async function loadOrGenerate(dir: string, smtp: SmtpConfig, logger: Logger): Promise<LoadedServerTls> {
  const certPath = join(dir, GENERATED_CERT_FILE);
  const keyPath = join(dir, GENERATED_KEY_FILE);
  const existing = await readExisting(certPath, keyPath);
  if (existing) {
    const reason = reuseProblem(existing.key, existing.cert, smtp.hostname);
    if (!reason) {
      const x509 = new X509Certificate(existing.cert);
      return {
        ...existing,
        legacyTls: smtp.tls.legacyTls,
        source: 'reused',
        certPath,
        fingerprint256: x509.fingerprint256,
        validTo: new Date(x509.validTo).toISOString(),
      };
    }
    logger.warn({ certPath, reason }, 'smtp.tls.regenerating');
  }

  await mkdir(dir, { recursive: true, mode: 0o700 });
  const notBefore = new Date(Date.now() - DAY_MS); // a device with a slightly slow clock must not see "not yet valid"
  const altNames: Array<{ type: 2; value: string } | { type: 7; ip: string }> = [{ type: 2, value: smtp.hostname }];
  if (isIP(smtp.host) && smtp.host !== '0.0.0.0' && smtp.host !== '::') altNames.push({ type: 7, ip: smtp.host });
  // Loaded only here: selfsigned brings ~200 modules (an X.509 stack) that a start with a kept certificate never needs.
  const { generate } = await import('selfsigned');
  const pems = await generate([{ name: 'commonName', value: smtp.hostname }], {
    keyType: 'rsa',
    keySize: GENERATED_KEY_BITS,
    algorithm: 'sha256',
    notBeforeDate: notBefore,
    notAfterDate: new Date(notBefore.getTime() + GENERATED_VALIDITY_DAYS * DAY_MS),
    extensions: [
      { name: 'basicConstraints', cA: false },
      // keyEncipherment: TLS 1.0 RSA key exchange suites (AES128-SHA) encrypt the premaster secret with it.
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames },
    ],
  });
  // Key first: a crash between the two writes leaves a cert without its key, which reuseProblem() rejects.
  await writeFileDurable(keyPath, pems.private, { mode: 0o600 });
  await writeFileDurable(certPath, pems.cert, { mode: 0o644 });
  const x509 = new X509Certificate(pems.cert);
  logger.info({ certPath, fingerprint256: x509.fingerprint256 }, 'smtp.tls.generated');
  return {
    key: pems.private,
    cert: pems.cert,
    legacyTls: smtp.tls.legacyTls,
    source: 'generated',
    certPath,
    fingerprint256: x509.fingerprint256,
    validTo: new Date(x509.validTo).toISOString(),
  };
}

async function readExisting(certPath: string, keyPath: string): Promise<{ cert: string; key: string } | undefined> {
  try {
    const [cert, key] = await Promise.all([readFile(certPath, 'utf8'), readFile(keyPath, 'utf8')]);
    // Restored from a backup with a loose mode, say: tighten it rather than replace a cert devices may trust.
    if (((await stat(keyPath)).mode & 0o077) !== 0) await chmod(keyPath, 0o600);
    return { cert, key };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

function reuseProblem(key: string, cert: string, hostname: string): string | undefined {
  const problem = pairProblem(key, cert);
  if (problem) return problem;
  const x509 = new X509Certificate(cert);
  if (Date.parse(x509.validTo) - Date.now() < 30 * DAY_MS) return 'expires within 30 days';
  if (!x509.checkHost(hostname)) return `does not name smtp.hostname "${hostname}"`;
  return undefined;
}

/** Why the key and certificate cannot serve TLS together, or undefined when they can. */
function pairProblem(key: string, cert: string): string | undefined {
  try {
    new X509Certificate(cert);
    createSecureContext({ key, cert });
    return undefined;
  } catch (err) {
    return `not a usable certificate and key pair (${errorMessage(err)})`;
  }
}

async function readPem(path: string, key: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new GatewayError('SCANRELAY_TLS_INVALID', `${key}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? errorMessage(err)})`);
  }
}
