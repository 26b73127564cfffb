/**
 * Device credentials. Printers hold a login of <= 63 chars of [A-Za-z0-9._@-] and a password of <= 31
 * chars; generated passwords are alphanumeric (MFP firmwares mishandle special characters).
 *
 * At rest: CRAM-MD5 and APOP compute an HMAC/MD5 keyed with the plaintext, so a device that may use them
 * needs a recoverable secret. API-created devices keep theirs encrypted with AES-256-GCM under the
 * gateway's secret key (secretKey/secretKeyFile, or dataDir/secret.key generated with mode 0600).
 * Config-file devices may instead give a scrypt `passwordHash`, which limits them to PLAIN/LOGIN/USER-PASS.
 */
import { createCipheriv, createDecipheriv, randomBytes, randomInt, scrypt, scryptSync, timingSafeEqual, createHash } from 'node:crypto';

export { isValidLogin, MAX_LOGIN_LENGTH, MAX_PASSWORD_LENGTH } from './rules.js';

const ALPHANUMERIC = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789';

/** 24 chars from a 57-symbol alphabet (no look-alikes): about 140 bits, fits the 31-char field. */
export function generatePassword(length = 24): string {
  let out = '';
  for (let i = 0; i < length; i++) out += ALPHANUMERIC[randomInt(ALPHANUMERIC.length)];
  return out;
}

/** A login derived from the device name, with a random suffix so names cannot be guessed. */
export function generateUsername(deviceName: string): string {
  const base = deviceName
    .toLowerCase()
    .replace(/[^a-z0-9._-]/g, '-')
    .slice(0, 50);
  return `${base}.${randomBytes(3).toString('hex')}`;
}

const SCRYPT = { N: 16384, r: 8, p: 1, keyLength: 32 };

/** Format: scrypt$N$r$p$<salt b64>$<hash b64>. */
export function hashPassword(password: string): string {
  const salt = randomBytes(16);
  const hash = scryptSync(password, salt, SCRYPT.keyLength, { N: SCRYPT.N, r: SCRYPT.r, p: SCRYPT.p });
  return `scrypt$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

/** The parts of a `scrypt$N$r$p$<salt>$<hash>` string, or undefined when it is not one. */
function parseScryptHash(encoded: string): { N: number; r: number; p: number; salt: Buffer; expected: Buffer } | undefined {
  const parts = encoded.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return undefined;
  const [N, r, p] = parts.slice(1, 4).map(Number);
  const expected = Buffer.from(parts[5], 'base64');
  return expected.length === 0 ? undefined : { N, r, p, salt: Buffer.from(parts[4], 'base64'), expected };
}

export function verifyPasswordHash(password: string, encoded: string): boolean {
  const parsed = parseScryptHash(encoded);
  if (!parsed) return false;
  const { N, r, p, salt, expected } = parsed;
  try {
    const actual = scryptSync(password, salt, expected.length, { N, r, p, maxmem: 256 * N * r });
    return timingSafeEqual(actual, expected);
  } catch {
    return false; // parameters node:crypto refuses: no password can match (config loading refuses these)
  }
}

/**
 * As verifyPasswordHash, on libuv's thread pool: a login must not stall every other session for the ~30 ms
 * and 16 MiB one scrypt costs (a burst of failed logins would otherwise hold up the 250s).
 */
export async function verifyPasswordHashAsync(password: string, encoded: string): Promise<boolean> {
  const parsed = parseScryptHash(encoded);
  if (!parsed) return false;
  const { N, r, p, salt, expected } = parsed;
  const actual = await new Promise<Buffer | undefined>((resolve) => {
    try {
      scrypt(password, salt, expected.length, { N, r, p, maxmem: 256 * N * r }, (err, key) => resolve(err ? undefined : key));
    } catch {
      resolve(undefined); // parameters node:crypto refuses: no password can match
    }
  });
  return actual !== undefined && timingSafeEqual(actual, expected);
}

/** Constant-time comparison of two strings of possibly different lengths. */
export function safeEqual(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb) && a.length === b.length;
}

/** Encrypts device secrets at rest. Format: v1:<iv b64>:<tag b64>:<ciphertext b64>. */
const SECRET_BOX_SALT = 'scanrelay-device-secrets';

export class SecretBox {
  /** Derived on first use (scrypt costs ~90 ms): a start with no sealed secrets never pays it. */
  private derived?: Buffer;
  constructor(private readonly secretKey: string) {}

  /** Derives the key off the event loop, for a caller that knows it will seal or open soon (start-up). */
  async prepare(): Promise<void> {
    if (this.derived) return;
    const key = await new Promise<Buffer>((resolve, reject) =>
      scrypt(this.secretKey, SECRET_BOX_SALT, 32, (err, derived) => (err ? reject(err) : resolve(derived))),
    );
    this.derived ??= key;
  }

  private get key(): Buffer {
    this.derived ??= scryptSync(this.secretKey, SECRET_BOX_SALT, 32);
    return this.derived;
  }

  seal(plaintext: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    const data = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return `v1:${iv.toString('base64')}:${cipher.getAuthTag().toString('base64')}:${data.toString('base64')}`;
  }
  open(sealed: string): string {
    const [version, iv, tag, data] = sealed.split(':');
    if (version !== 'v1' || !iv || !tag || data === undefined) throw new Error('unknown secret format');
    const decipher = createDecipheriv('aes-256-gcm', this.key, Buffer.from(iv, 'base64'));
    decipher.setAuthTag(Buffer.from(tag, 'base64'));
    return Buffer.concat([decipher.update(Buffer.from(data, 'base64')), decipher.final()]).toString('utf8');
  }
}
