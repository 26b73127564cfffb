/**
 * loadConfig/parseConfig: every refusal names the file, the key path and the problem; secrets from
 * ${VAR} and *File keys. (The shipped files are covered by test/unit/config-example.test.ts.)
 */
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, parseConfig, type GatewayConfig } from '../../../src/config/index.js';
import { ConfigError } from '../../../src/shared/errors.js';

const FILE = '/etc/scanrelay/gateway.yaml';

/** A valid document with one password device; `devices` replaces it. */
function yaml(body: string): string {
  return `dataDir: /tmp/scanrelay-config-test\n${body}`;
}

const DEVICE = `devices:
  - name: warren-2f-scanner
    username: warren-2f
    password: "s3cret-31-chars-at-most"
    allowRecipients: ["*@berkeley.edu"]
`;

function parse(text: string, env: NodeJS.ProcessEnv = {}): GatewayConfig {
  return parseConfig(text, FILE, env);
}

/** The ConfigError thrown for `text`, asserting it names the file and the exact key path. */
function refusal(text: string, keyPath: string, env: NodeJS.ProcessEnv = {}): ConfigError {
  let caught: unknown;
  try {
    parse(text, env);
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(ConfigError);
  const error = caught as ConfigError;
  expect(error.file).toBe(FILE);
  expect(error.keyPath).toBe(keyPath);
  expect(error.code).toBe('SCANRELAY_CONFIG_INVALID');
  expect(error.message).toBe(`${FILE}: ${keyPath || '(root)'}: ${error.problem}`);
  expect(error.problem.length).toBeGreaterThan(5);
  return error;
}

describe('parseConfig with a valid file', () => {
  it('resolves units, defaults and lower-cases recipient rules', () => {
    const config = parse(
      yaml(`smtp:\n  maxMessageSize: 20MB\n  socketTimeout: 90s\n${DEVICE.replace('"*@berkeley.edu"', '"*@Berkeley.EDU", "Ops@Example.org"')}`),
    );
    expect(config.file).toBe(FILE);
    expect(config.smtp.maxMessageSize).toBe(20_000_000);
    expect(config.smtp.socketTimeoutMs).toBe(90_000);
    expect(config.smtp.port).toBe(2525);
    expect(config.smtp.starttls).toBe(false);
    expect(config.smtp.authLockout).toMatchObject({ maxFailures: 5, windowMs: 600_000, durationMs: 900_000 });
    const [device] = config.devices;
    expect(device).toMatchObject({ name: 'warren-2f-scanner', auth: 'password', username: 'warren-2f', enabled: true, allowFrom: [] });
    expect(device.allowRecipients).toEqual(['*@berkeley.edu', 'ops@example.org']);
    expect(device.maxMessageSize).toBe(20_000_000);
    expect(Object.isFrozen(config.devices[0])).toBe(true);
  });

  it('caps a device size by smtp.maxMessageSize and its upstream', () => {
    const config = parse(
      yaml(`smtp: { maxMessageSize: 30MB }
upstreams:
  - { name: gmail-warren, host: smtp.gmail.com, user: scans@example.org, password: app-password, maxMessageSize: 10MB }
devices:
  - { name: a, username: a, password: pw-8chars, allowRecipients: ["*@x.org"], upstream: gmail-warren }
  - { name: b, username: b, password: pw-8chars, allowRecipients: ["*@x.org"], maxMessageSize: 5MB }
  - { name: c, username: c, password: pw-8chars, allowRecipients: ["*@x.org"], maxMessageSize: 50MB }
`),
    );
    // The upstream's limit less the room for the headers the gateway adds (OUTGOING_HEADER_ALLOWANCE).
    expect(config.devices.map((d) => d.maxMessageSize)).toEqual([10_000_000 - 2048, 5_000_000, 30_000_000]);
  });

  it('accepts an auth: none device pinned to a /29 or a single host', () => {
    const config = parse(
      yaml(`devices:
  - { name: copier, auth: none, allowFrom: [10.20.5.16/29, 10.20.6.1], allowRecipients: ["*@berkeley.edu"] }
`),
    );
    expect(config.devices[0]).toMatchObject({ auth: 'none', allowFrom: ['10.20.5.16/29', '10.20.6.1'] });
  });
});

describe('parseConfig refusals name file, key path and problem', () => {
  it('unknown key at the top and nested', () => {
    expect(refusal(yaml('smpt: {}\n'), 'smpt').problem).toMatch(/unknown key/);
    expect(refusal(yaml('smtp:\n  prot: 25\n'), 'smtp.prot').problem).toMatch(/unknown key/);
    expect(refusal(yaml(`${DEVICE}    pasword: x\n`), 'devices[0].pasword').problem).toMatch(/unknown key/);
  });

  it('bad type', () => {
    expect(refusal(yaml('smtp:\n  port: twenty-five\n'), 'smtp.port').problem).toMatch(/integer/i);
    expect(refusal(yaml('smtp:\n  starttls: sometimes\n'), 'smtp.starttls').problem).toMatch(/boolean/i);
    expect(refusal(yaml('smtp:\n  port: 70000\n'), 'smtp.port').problem).toMatch(/65535/);
  });

  it('bad size and duration say what is expected', () => {
    expect(refusal(yaml('smtp:\n  maxMessageSize: lots\n'), 'smtp.maxMessageSize').problem).toMatch(/25MB/);
    expect(refusal(yaml('smtp:\n  socketTimeout: forever\n'), 'smtp.socketTimeout').problem).toMatch(/90s|5m|duration/);
  });

  it('auth: none without allowFrom', () => {
    const error = refusal(yaml('devices:\n  - { name: copier, auth: none, allowRecipients: ["*@x.org"] }\n'), 'devices[0].allowFrom');
    expect(error.problem).toMatch(/required/);
  });

  it('auth: none with an allowFrom wider than /29', () => {
    const error = refusal(
      yaml('devices:\n  - { name: copier, auth: none, allowFrom: [10.20.5.17/32, 10.20.0.0/28], allowRecipients: ["*@x.org"] }\n'),
      'devices[0].allowFrom[1]',
    );
    expect(error.problem).toMatch(/too wide/);
    refusal(yaml('devices:\n  - { name: copier, auth: none, allowFrom: ["fd00::/64"], allowRecipients: ["*@x.org"] }\n'), 'devices[0].allowFrom[0]');
  });

  it('auth: none with a username or password', () => {
    refusal(yaml('devices:\n  - { name: copier, auth: none, username: c, allowFrom: [10.0.0.1], allowRecipients: ["*@x.org"] }\n'), 'devices[0].auth');
  });

  it('an allowFrom that is not an address', () => {
    expect(refusal(yaml(`${DEVICE}    allowFrom: [10.20.0.0/33]\n`), 'devices[0].allowFrom[0]').problem).toMatch(/CIDR/);
    expect(refusal(yaml(`${DEVICE}    allowFrom: [printer.local]\n`), 'devices[0].allowFrom[0]').problem).toMatch(/IP address/);
  });

  it('missing allowRecipients, or an empty list', () => {
    expect(refusal(yaml('devices:\n  - { name: a, username: a, password: pw-8chars }\n'), 'devices[0].allowRecipients').problem).toMatch(/required/);
    refusal(yaml('devices:\n  - { name: a, username: a, password: pw-8chars, allowRecipients: [] }\n'), 'devices[0].allowRecipients');
  });

  it.each(['*@*', '*', '@example.org', '*@', 'user@*'])('an open-relay or malformed recipient rule %j', (rule) => {
    refusal(yaml(`devices:\n  - { name: a, username: a, password: pw-8chars, allowRecipients: ["ops@x.org", "${rule}"] }\n`), 'devices[0].allowRecipients[1]');
  });

  it('unknown upstream reference', () => {
    expect(refusal(yaml(`${DEVICE}    upstream: gmail-nowhere\n`), 'devices[0].upstream').problem).toContain('gmail-nowhere');
  });

  it('password longer than 31 characters', () => {
    const long = 'p'.repeat(32);
    const error = refusal(yaml(DEVICE.replace('s3cret-31-chars-at-most', long)), 'devices[0].password');
    expect(error.problem).toMatch(/31/);
    expect(error.message).not.toContain(long);
    expect(parse(yaml(DEVICE.replace('s3cret-31-chars-at-most', 'p'.repeat(31)))).devices[0].password).toHaveLength(31);
  });

  it('a numeric password is refused without echoing it', () => {
    const error = refusal(yaml(DEVICE.replace('"s3cret-31-chars-at-most"', '20240101')), 'devices[0].password');
    expect(error.message).not.toContain('20240101');
  });

  it('username with invalid characters or longer than 63', () => {
    refusal(yaml(DEVICE.replace('username: warren-2f', 'username: "warren 2f"')), 'devices[0].username');
    refusal(yaml(DEVICE.replace('username: warren-2f', 'username: "warren/2f"')), 'devices[0].username');
    refusal(yaml(DEVICE.replace('username: warren-2f', `username: ${'u'.repeat(64)}`)), 'devices[0].username');
    expect(parse(yaml(DEVICE.replace('username: warren-2f', `username: ${'u'.repeat(61)}@x`))).devices[0].username).toHaveLength(63);
  });

  it('a password device without a password, or with both password and passwordHash', () => {
    refusal(yaml('devices:\n  - { name: a, username: a, allowRecipients: ["*@x.org"] }\n'), 'devices[0].password');
    refusal(yaml(`${DEVICE}    passwordHash: "scrypt$16384$8$1$c2FsdA==$aGFzaA=="\n`), 'devices[0].passwordHash');
  });

  it('a passwordHash that is not a usable scrypt hash (it would answer every login with 451)', () => {
    const withHash = (hash: string) => yaml(DEVICE.replace('password: "s3cret-31-chars-at-most"', `passwordHash: "${hash}"`));
    for (const hash of [
      'scrypt$',
      'scrypt$16384$8$1$c2FsdA==',
      'scrypt$1$8$1$c2FsdA==$aGFzaA==',
      'scrypt$16383$8$1$c2FsdA==$aGFzaA==',
      'scrypt$1048576$64$1$c2FsdA==$aGFzaA==',
      'scrypt$16384$8$1$not base64$aGFzaA==',
    ]) {
      refusal(withHash(hash), 'devices[0].passwordHash');
    }
    expect(parse(withHash('scrypt$16384$8$1$c2FsdHNhbHRzYWx0c2FsdA==$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g=')).devices[0].passwordHash).toMatch(
      /^scrypt/,
    );
  });

  it('duplicate device names and usernames (case-insensitive)', () => {
    refusal(yaml(`${DEVICE}  - { name: warren-2f-scanner, username: other, password: pw-8chars, allowRecipients: ["*@x.org"] }\n`), 'devices[1].name');
    refusal(yaml(`${DEVICE}  - { name: other, username: WARREN-2F, password: pw-8chars, allowRecipients: ["*@x.org"] }\n`), 'devices[1].username');
  });

  it('YAML syntax error with its line', () => {
    // the unclosed flow sequence opened on line 3 is detected at line 4
    const error = refusal('dataDir: /tmp/x\nsmtp:\n  port: [1,\n  host: x\n', 'line 4');
    expect(error.problem).toMatch(/not valid YAML/);
  });

  it('a top level that is not a mapping', () => {
    refusal('- just\n- a list\n', '');
  });
});

describe('environment and secret files', () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it('${VAR} missing names the key and the variable, never a value', () => {
    const error = refusal(yaml(DEVICE.replace('"s3cret-31-chars-at-most"', '${WARREN_PW}')), 'devices[0].password');
    expect(error.problem).toContain('WARREN_PW');
  });

  it('${VAR} and ${VAR:-default} expand, also inside longer strings', () => {
    const text = yaml(
      DEVICE.replace('"s3cret-31-chars-at-most"', '"${WARREN_PW}"').replace(
        '"*@berkeley.edu"',
        '"*@${MAIL_DOMAIN:-berkeley.edu}", "scans@${MAIL_DOMAIN:-berkeley.edu}"',
      ),
    );
    expect(parse(text, { WARREN_PW: 'from-env-pw' }).devices[0]).toMatchObject({
      password: 'from-env-pw',
      allowRecipients: ['*@berkeley.edu', 'scans@berkeley.edu'],
    });
    expect(parse(text, { WARREN_PW: 'x-8chars', MAIL_DOMAIN: 'example.org' }).devices[0].allowRecipients).toEqual(['*@example.org', 'scans@example.org']);
    // an empty variable counts as unset, so the default applies
    expect(parse(text, { WARREN_PW: 'x-8chars', MAIL_DOMAIN: '' }).devices[0].allowRecipients[0]).toBe('*@berkeley.edu');
  });

  it('${VAR} works for number and boolean keys (environment values are strings)', () => {
    const config = parse(
      yaml(`smtp:\n  port: \${SMTP_PORT}\n  maxRecipients: \${MAX_RCPT:-20}\n  starttls: \${STARTTLS:-false}\n${DEVICE}    enabled: \${SCANNER_ON}\n`),
      { SMTP_PORT: '2626', SCANNER_ON: 'false' },
    );
    expect(config.smtp.port).toBe(2626);
    expect(config.smtp.maxRecipients).toBe(20);
    expect(config.smtp.starttls).toBe(false);
    expect(config.devices[0].enabled).toBe(false);
    // and a string key keeps a numeric-looking value as text
    expect(parse(yaml(DEVICE.replace('"s3cret-31-chars-at-most"', '${PW}')), { PW: '0123456789' }).devices[0].password).toBe('0123456789');
    refusal(yaml('smtp:\n  port: ${SMTP_PORT}\n'), 'smtp.port', { SMTP_PORT: '25a' });
  });

  it('SCANRELAY_* overrides apply over the file', () => {
    const config = parse(yaml(`smtp: { port: 2525 }\n${DEVICE}`), {
      SCANRELAY_SMTP_PORT: '2727',
      SCANRELAY_DATA_DIR: '/tmp/other-data',
      SCANRELAY_LOG_LEVEL: 'warn',
    });
    expect(config.smtp.port).toBe(2727);
    expect(config.dataDir).toBe('/tmp/other-data');
    expect(config.log.level).toBe('warn');
  });

  it('passwordFile is read, one trailing newline trimmed', async () => {
    dir = await mkdtemp(join(tmpdir(), 'scanrelay-secret-'));
    const secretFile = join(dir, 'warren-2f');
    await writeFile(secretFile, 'from-a-docker-secret\n');
    const config = parse(yaml(DEVICE.replace('password: "s3cret-31-chars-at-most"', `passwordFile: ${secretFile}`)));
    expect(config.devices[0].password).toBe('from-a-docker-secret');
  });

  it('passwordFile and password both set, unreadable or empty passwordFile', async () => {
    dir = await mkdtemp(join(tmpdir(), 'scanrelay-secret-'));
    const secretFile = join(dir, 'pw');
    await writeFile(secretFile, 'file-secret');
    expect(refusal(yaml(`${DEVICE}    passwordFile: ${secretFile}\n`), 'devices[0].passwordFile').problem).toMatch(/either password or passwordFile/);
    const missing = refusal(yaml(DEVICE.replace('password: "s3cret-31-chars-at-most"', `passwordFile: ${join(dir, 'nope')}`)), 'devices[0].passwordFile');
    expect(missing.problem).toMatch(/ENOENT/);
    await writeFile(join(dir, 'empty'), '');
    refusal(yaml(DEVICE.replace('password: "s3cret-31-chars-at-most"', `passwordFile: ${join(dir, 'empty')}`)), 'devices[0].passwordFile');
  });

  it('a passwordFile secret longer than 31 characters is refused without echoing it', async () => {
    dir = await mkdtemp(join(tmpdir(), 'scanrelay-secret-'));
    const secretFile = join(dir, 'long');
    const secret = 'L'.repeat(40);
    await writeFile(secretFile, secret);
    const error = refusal(yaml(DEVICE.replace('password: "s3cret-31-chars-at-most"', `passwordFile: ${secretFile}`)), 'devices[0].password');
    expect(error.message).not.toContain(secret);
  });

  it('loadConfig names an unreadable file', () => {
    expect(() => loadConfig('/nonexistent/scanrelay.yaml', {})).toThrow(/\/nonexistent\/scanrelay\.yaml: \(root\): cannot read the config file \(ENOENT\)/);
  });
});
