/**
 * One source of truth for config: the schema's decoded type is the config; secrets are marked once in the
 * schema and that mark drives `*File`, log redaction and check-config masking; a file's problems are all
 * reported at once, each naming the file and the key path, with the nearest key for a typo.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { effectiveConfig } from '../../../src/cli/check-config.js';
import { parseConfig } from '../../../src/config/index.js';
import { secretKeyNames } from '../../../src/config/schema.js';
import { createLogger } from '../../../src/observability/logger.js';
import { ConfigError } from '../../../src/shared/errors.js';

const FILE = '/etc/scanrelay/gateway.yaml';
const HASH = 'scrypt$16384$8$1$c2FsdHNhbHRzYWx0c2FsdA==$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g=';

function refused(text: string, env: NodeJS.ProcessEnv = {}): ConfigError {
  try {
    parseConfig(text, FILE, env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('the config was accepted');
}

describe('every problem of a file at once', () => {
  it('reports all schema problems, each line naming file, key path and problem', () => {
    const error = refused('smtp:\n  maxConnectionPerIp: 5\n  port: 70000\npop3:\n  socketTimeout: soon\ndelivery:\n  concurrency: many\n');
    expect(error.problems.map((p) => p.keyPath)).toEqual(['smtp.maxConnectionPerIp', 'smtp.port', 'pop3.socketTimeout', 'delivery.concurrency']);
    const lines = error.message.split('\n');
    expect(lines).toHaveLength(4);
    for (const [i, line] of lines.entries()) expect(line).toBe(`${FILE}: ${error.problems[i].keyPath}: ${error.problems[i].problem}`);
  });

  it('reports all rule problems (devices, references) and environment problems at once', () => {
    const error = refused(
      `upstreams:\n  - { name: g, host: smtp.gmail.com, user: u@x.org }\ndevices:\n  - { name: a, username: a, password: pw-8chars, allowRecipients: ["*@*"], upstream: nowhere }\n  - { name: b, auth: none, allowRecipients: ["*@x.org"] }\n`,
    );
    expect(error.problems.map((p) => p.keyPath)).toEqual([
      'upstreams[0].password',
      'devices[0].allowRecipients[0]',
      'devices[0].upstream',
      'devices[1].allowFrom',
    ]);
    const env = refused('devices:\n  - name: a\n    username: "${A_USER}"\n    password: "${A_PW}"\n    allowRecipients: ["*@x.org"]\n');
    expect(env.problems.map((p) => p.keyPath)).toEqual(['devices[0].username', 'devices[0].password']);
  });
});

describe('a typo gets the nearest key', () => {
  it.each([
    ['smtp:\n  maxConnectionPerIp: 5\n', 'smtp.maxConnectionPerIp: unknown key; did you mean smtp.maxConnectionsPerIp?'],
    ['smpt:\n  port: 25\n', 'smpt: unknown key; did you mean smtp?'],
    ['smtp:\n  authLockout:\n    maxFailure: 3\n', 'smtp.authLockout.maxFailure: unknown key; did you mean smtp.authLockout.maxFailures?'],
    [
      'devices:\n  - name: a\n    username: a\n    password: pw-8chars\n    allowRecipient: ["*@x.org"]\n',
      'devices[0].allowRecipient: unknown key; did you mean devices[0].allowRecipients?',
    ],
    ['upstreams:\n  - { name: g, host: h, user: u, password: p, tls: { rejectUnauthorised: false } }\n', 'did you mean upstreams[0].tls.rejectUnauthorized?'],
  ])('%j', (text, expected) => {
    expect(refused(text).message).toContain(expected);
  });

  it('says only "unknown key" when nothing is near', () => {
    const error = refused('smtp:\n  colour: blue\n');
    expect(error.problems).toEqual([{ keyPath: 'smtp.colour', problem: 'unknown key' }]);
  });
});

describe('secrets marked once in the schema', () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it('marks the device password and hash, upstream password and OAuth2 secrets, admin tokens and the secret key', () => {
    expect(secretKeyNames()).toEqual(['clientSecret', 'password', 'passwordHash', 'refreshToken', 'secretKey', 'tokens']);
  });

  it('log redaction covers every marked key, passwordHash and tokens included', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const logger = createLogger('info', sink);
    logger.info({ passwordHash: HASH, device: { passwordHash: HASH, name: 'a' }, tokens: ['tok-0123456789abcdef'] }, 'x');
    logger.info({ admin: { tokens: ['tok-0123456789abcdef'] }, secretKey: 'k'.repeat(40) }, 'y');
    const text = lines.join('');
    expect(text).toContain('"name":"a"');
    for (const secret of [HASH, 'tok-0123456789abcdef', 'k'.repeat(40)]) expect(text).not.toContain(secret);
  });

  it('check-config masks what the schema marks, and nothing else', () => {
    const config = parseConfig(
      `secretKey: ${'k'.repeat(40)}\nadmin: { tokens: [admin-token-0123456789] }\ndevices:\n  - { name: a, username: a, passwordHash: "${HASH}", allowRecipients: ["*@x.org"] }\n`,
      FILE,
      {},
    );
    const shown = effectiveConfig(config) as { devices: Array<Record<string, unknown>>; admin: { tokens: unknown }; secretKey: unknown; smtp: unknown };
    expect(shown.devices[0]).toMatchObject({ name: 'a', username: 'a', passwordHash: '********' });
    expect(shown.admin.tokens).toEqual(['********']);
    expect(shown.secretKey).toBe('********');
    expect(JSON.stringify(shown)).not.toContain(HASH);
    expect(shown.smtp).toMatchObject({ socketTimeoutMs: 300_000, authLockout: { windowMs: 600_000 } });
  });

  it('every marked key may come from <key>File, at any depth, and no other key may', async () => {
    dir = await mkdtemp(join(tmpdir(), 'scanrelay-secret-'));
    await writeFile(join(dir, 'hash'), `${HASH}\n`);
    await writeFile(join(dir, 'tokens'), 'token-one-0123456789\ntoken-two-0123456789\n');
    await writeFile(join(dir, 'client-secret'), 'client-secret-value');
    const config = parseConfig(
      `admin: { tokensFile: ${join(dir, 'tokens')} }
devices:
  - { name: a, username: a, passwordHashFile: ${join(dir, 'hash')}, allowRecipients: ["*@x.org"] }
upstreams:
  - { name: m, host: h, user: u, auth: oauth2, oauth2: { clientId: c, clientSecretFile: ${join(dir, 'client-secret')}, refreshToken: r } }
`,
      FILE,
      {},
    );
    expect(config.devices[0].passwordHash).toBe(HASH);
    expect(config.admin.tokens).toEqual(['token-one-0123456789', 'token-two-0123456789']);
    expect(config.upstreams[0].oauth2?.clientSecret).toBe('client-secret-value');
    expect(refused(`smtp: { hostnameFile: ${join(dir, 'hash')} }\n`).problems[0]).toMatchObject({ keyPath: 'smtp.hostnameFile', problem: /unknown key/ });
  });
});

describe('the decoded schema is the config', () => {
  it('sizes and durations are numbers under the names the code reads', () => {
    const config = parseConfig('smtp: { maxSessionDuration: 1h 30m, maxMessageSize: 10MiB }\ndelivery: { shutdownTimeout: 5 s }\n', FILE, {});
    expect(config.smtp.maxSessionMs).toBe(5_400_000);
    expect(config.smtp.maxMessageSize).toBe(10 * 1024 ** 2);
    expect(config.delivery.shutdownTimeoutMs).toBe(5000);
    expect(config.pop3.authWindowMs).toBe(600_000);
    expect(config.smtp.authLockout).toEqual({
      maxFailures: 5,
      windowMs: 600_000,
      durationMs: 900_000,
      maxFailuresPerAddress: 20,
      maxFailuresPerUsername: 30,
      usernameWindowMs: 3_600_000,
      usernameDurationMs: 3_600_000,
    });
    expect(config.smtp.preAuthTimeoutMs).toBe(60_000);
    expect(config.pop3.sessionTimeoutMs).toBe(120_000);
    expect(Object.keys(config.smtp)).not.toContain('socketTimeout');
  });
});

describe('scanrelay check-config with several problems', () => {
  it('prints every problem with its key, and exits 78', async () => {
    const { runCli, EXIT } = await import('../../../src/cli/run.js');
    const dir = await mkdtemp(join(tmpdir(), 'scanrelay-check-'));
    try {
      const file = join(dir, 'gateway.yaml');
      await writeFile(file, 'smtp:\n  maxConnectionPerIp: 5\nadmin:\n  port: 2525\n');
      let stderr = '';
      const code = await runCli(['check-config', '--config', file], { stdout: () => undefined, stderr: (t) => (stderr += t), env: {} });
      expect(code).toBe(EXIT.config);
      expect(stderr).toContain('invalid configuration (2 problems)');
      expect(stderr).toMatch(/key\s+smtp\.maxConnectionPerIp\n\s+problem\s+unknown key; did you mean smtp\.maxConnectionsPerIp\?/);
      expect(stderr).toMatch(/key\s+admin\.port\n\s+problem\s+port 2525 is already used by smtp\.port/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
