/**
 * Rules between keys, run on the decoded config once every key has the right type: each device meets the
 * device rulebook (devices/rules.ts, the same code the admin API runs), references exist, listeners do
 * not share a port, secrets that depend on the auth mode are present. Every problem is collected; the
 * few derived values (a device's effective size limit, an upstream's CA bundle text) are filled in here.
 */
import { readFileSync } from 'node:fs';
import { checkDevice, checkUniqueDevices, deviceSizeLimit, normalizePatterns } from '../devices/rules.js';
import type { ConfigProblem } from '../shared/errors.js';
import type { DecodedConfig } from './schema.js';

type DecodedDevice = DecodedConfig['devices'][number];

/** A device as the rest of the gateway reads it. */
export type DeviceConfig = Omit<DecodedDevice, 'maxMessageSize'> & {
  /** Effective: min(device setting, smtp.maxMessageSize, upstream.maxMessageSize less the header allowance). */
  maxMessageSize: number;
};

/** The whole config as every part reads it: the schema's decoded type, plus the file it came from. */
export type GatewayConfig = Omit<DecodedConfig, 'devices' | 'timeZone'> & {
  /** Absolute path of the file this came from. */
  file: string;
  /** IANA zone for times of day in message-log queries and daily stats (the system's when not set). */
  timeZone: string;
  devices: DeviceConfig[];
};

export function checkConfig(config: DecodedConfig, file: string, problems: ConfigProblem[]): GatewayConfig {
  const fail = (keyPath: string, problem: string) => problems.push({ keyPath, problem });

  if (config.smtp.maxMessageSize < 1024) fail('smtp.maxMessageSize', 'must be at least 1KB');
  if (Boolean(config.smtp.tls.certFile) !== Boolean(config.smtp.tls.keyFile)) {
    fail('smtp.tls', 'set both certFile and keyFile, or neither (a self-signed certificate is generated)');
  }
  checkListenerPorts(config, fail);

  const upstreamNames = new Set<string>();
  for (const [i, upstream] of config.upstreams.entries()) {
    const key = (k: string) => `upstreams[${i}].${k}`;
    if (upstreamNames.has(upstream.name)) fail(key('name'), `duplicate upstream name "${upstream.name}"`);
    upstreamNames.add(upstream.name);
    if (upstream.auth === 'password' && !upstream.password) fail(key('password'), 'required when auth is password (or set passwordFile)');
    if (upstream.auth === 'oauth2') {
      if (!upstream.oauth2) fail(key('oauth2'), 'required when auth is oauth2');
      else {
        if (!upstream.oauth2.refreshToken) fail(key('oauth2.refreshToken'), 'required (or set refreshTokenFile)');
        if (!upstream.oauth2.clientSecret) fail(key('oauth2.clientSecret'), 'required (or set clientSecretFile)');
      }
    }
    if (upstream.tls.caFile) {
      try {
        upstream.tls.ca = readFileSync(upstream.tls.caFile, 'utf8');
      } catch (err) {
        fail(key('tls.ca'), `cannot read ${upstream.tls.caFile} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
      }
    }
  }

  for (const { index, field, problem } of checkUniqueDevices(config.devices)) fail(`devices[${index}].${field}`, problem);
  const devices = config.devices.map((device, i): DeviceConfig => {
    for (const { field, problem } of checkDevice(device)) fail(`devices[${i}].${field}`, problem);
    const upstream = device.upstream === undefined ? undefined : config.upstreams.find((u) => u.name === device.upstream);
    if (device.upstream !== undefined && !upstream) fail(`devices[${i}].upstream`, `no upstream named "${device.upstream}"`);
    return {
      ...device,
      allowRecipients: normalizePatterns(device.allowRecipients),
      allowSenders: device.allowSenders && normalizePatterns(device.allowSenders),
      maxMessageSize: deviceSizeLimit(device.maxMessageSize, config.smtp.maxMessageSize, upstream?.maxMessageSize),
    };
  });

  return { ...config, file, timeZone: resolveTimeZone(config.timeZone, fail), devices };
}

/** The configured zone when Intl knows it, else the system's (so one bad key is reported, not a crash later). */
function resolveTimeZone(zone: string | undefined, fail: (keyPath: string, problem: string) => void): string {
  const system = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  if (zone === undefined) return system;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
  } catch {
    fail('timeZone', `'${zone}' is not a time zone; use an IANA name such as Europe/Berlin or America/New_York`);
    return system;
  }
  return zone;
}

const WILDCARD_HOSTS = new Set(['', '0.0.0.0', '::', '[::]']);

/**
 * Two listeners on one port would fail at start with EADDRINUSE, or worse, one would answer for the other
 * (an SMTPS port also set as the plaintext port). Port 0 (any free port: tests) is never a clash.
 */
function checkListenerPorts(config: DecodedConfig, fail: (keyPath: string, problem: string) => void): void {
  const listeners: Array<{ key: string; host: string; port: number }> = [{ key: 'smtp.port', host: config.smtp.host, port: config.smtp.port }];
  if (config.smtp.tlsPort !== undefined) listeners.push({ key: 'smtp.tlsPort', host: config.smtp.host, port: config.smtp.tlsPort });
  if (config.pop3.enabled) listeners.push({ key: 'pop3.port', host: config.pop3.host, port: config.pop3.port });
  if (config.admin.enabled) listeners.push({ key: 'admin.port', host: config.admin.host, port: config.admin.port });
  for (const [i, listener] of listeners.entries()) {
    if (listener.port === 0) continue;
    const earlier = listeners.slice(0, i).find((other) => other.port === listener.port && hostsOverlap(other.host, listener.host));
    if (earlier) fail(listener.key, `port ${listener.port} is already used by ${earlier.key}: each listener needs its own port`);
  }
}

function hostsOverlap(a: string, b: string): boolean {
  return a === b || WILDCARD_HOSTS.has(a) || WILDCARD_HOSTS.has(b);
}
