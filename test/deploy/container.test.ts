/**
 * The container and service definitions: Dockerfile, .dockerignore, deploy/docker-compose.yml with its
 * config and secrets, and the systemd unit. They must agree with each other and with what the gateway
 * really reads (env overrides, config keys, exit codes, shutdown bounds).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join, posix, resolve } from 'node:path';
import { parseConfig, type GatewayConfig } from '../../src/config/index.js';
import { describeWithTool, outsideTool } from '../kit/tools.js';
import { durationMs, finalStage, parseDockerfile, parseEnvArgs, parseUnit, readRepoFile, readYaml, repoPath, type DockerInstruction } from './files.js';
import { PRODUCTION_ENV, PRODUCTION_NODE_ARGS } from '../../bench/production.js';

interface ComposeService {
  build?: { context: string; dockerfile?: string };
  image?: string;
  read_only?: boolean;
  tmpfs?: string[];
  cap_drop?: string[];
  security_opt?: string[];
  stop_grace_period?: string;
  environment?: Record<string, string>;
  ports?: string[];
  volumes?: string[];
  secrets?: Array<string | { source: string; target?: string }>;
  command?: string[];
}
interface ComposeFile {
  services: Record<string, ComposeService>;
  volumes?: Record<string, unknown>;
  secrets?: Record<string, { file?: string }>;
}

const dockerfile = parseDockerfile(readRepoFile('Dockerfile'));
const runtime = finalStage(dockerfile);
const imageEnv: Record<string, string> = Object.assign({}, ...runtime.filter((i) => i.keyword === 'ENV').map((i) => parseEnvArgs(i.args)));
const compose = readYaml<ComposeFile>('deploy', 'docker-compose.yml');
const deployDir = repoPath('deploy');

function one(keyword: string, instructions: DockerInstruction[] = runtime): string {
  const found = instructions.filter((i) => i.keyword === keyword);
  expect(found, `${keyword} in the runtime stage`).toHaveLength(1);
  return found[0].args;
}

function secretNames(service: ComposeService): string[] {
  return (service.secrets ?? []).map((s) => (typeof s === 'string' ? s : s.source));
}

/** "127.0.0.1:8025:8025" -> { hostIp, host, container } */
function parsePort(spec: string): { hostIp?: string; host: number; container: number } {
  const parts = spec.split(':');
  const container = Number(parts.pop());
  const host = Number(parts.pop());
  return { hostIp: parts.pop(), host, container };
}

/** "./config/gateway.yaml:/config/gateway.yaml:ro" -> { source, target } */
function parseVolume(spec: string): { source: string; target: string; bind: boolean } {
  const [source, target] = spec.split(':');
  return { source, target, bind: source.startsWith('.') || source.startsWith('/') };
}

const packageJson = JSON.parse(readRepoFile('package.json')) as {
  version: string;
  license: string;
  repository?: { url: string };
  engines: { node: string };
  scripts: Record<string, string>;
};

/** The stages of the Dockerfile by name (`FROM ... AS name`). */
function stages(): Map<string, DockerInstruction[]> {
  const out = new Map<string, DockerInstruction[]>();
  let current: DockerInstruction[] | undefined;
  for (const instruction of dockerfile) {
    if (instruction.keyword === 'FROM') {
      current = [];
      out.set(/ AS ([a-z-]+)$/.exec(instruction.args)?.[1] ?? instruction.args, current);
    } else current?.push(instruction);
  }
  return out;
}

describe('Dockerfile', () => {
  it('is multi-stage on the official Node 24 image and runs the compiled entry point', () => {
    const froms = dockerfile.filter((i) => i.keyword === 'FROM');
    expect(froms.length).toBeGreaterThanOrEqual(2);
    const arg = dockerfile.find((i) => i.keyword === 'ARG' && i.args.startsWith('NODE_IMAGE='));
    expect(arg?.args).toBe('NODE_IMAGE=node:24-bookworm-slim');
    for (const from of froms) expect(from.args).toMatch(/^\$\{NODE_IMAGE\} AS [a-z-]+$/);
    expect(JSON.parse(one('CMD'))).toEqual(['node', 'dist/src/main.js']);
    expect(one('WORKDIR')).toBe('/app');
    // tsconfig.build.json must put src/main.ts at dist/src/main.js.
    const build = JSON.parse(readRepoFile('tsconfig.build.json')) as { extends?: string; compilerOptions?: { outDir?: string; rootDir?: string } };
    const base = JSON.parse(readRepoFile('tsconfig.json')) as { compilerOptions: { outDir?: string; rootDir?: string } };
    const options = { ...base.compilerOptions, ...build.compilerOptions };
    expect(build.extends).toBe('./tsconfig.json');
    expect([options.outDir, options.rootDir]).toEqual(['dist', '.']);
  });

  it('compiles native modules in the build stage only, against the Node headers of the base image', () => {
    const build = stages().get('build')!;
    const buildRuns = build.filter((i) => i.keyword === 'RUN').map((i) => i.args);
    expect(buildRuns.some((r) => /apt-get install -y --no-install-recommends python3 make g\+\+/.test(r))).toBe(true);
    expect(build.some((i) => i.keyword === 'ENV' && i.args === 'npm_config_nodedir=/usr/local')).toBe(true);
    // npm ci (and its compile) comes before the sources, so a source change reuses that layer.
    const order = build.map((i) => `${i.keyword} ${i.args}`);
    expect(order.findIndex((l) => l.startsWith('RUN npm ci'))).toBeLessThan(order.indexOf('COPY src ./src'));
    expect(buildRuns.some((r) => r.includes('npm prune --omit=dev'))).toBe(true);
    for (const i of runtime) expect(`${i.keyword} ${i.args}`).not.toMatch(/apt-get|g\+\+|npm (ci|install)/);
    const fromBuild = runtime.filter((i) => i.keyword === 'COPY' && i.args.startsWith('--from=build')).map((i) => i.args);
    expect(fromBuild).toEqual(['--from=build /out ./']);
    // /out holds the compiled code, the pruned dependencies and the console's static files, which are
    // optional in the sources: the build stage makes sure the directory exists before copying it.
    const assemble = buildRuns.find((r) => r.includes('/out'))!;
    expect(assemble).toMatch(/npm run build && npm prune --omit=dev/);
    expect(assemble).toContain('cp -a package.json package-lock.json node_modules dist /out/');
    expect(assemble).toMatch(/mkdir -p [^&]*src\/console\/public.*cp -a src\/console\/public \/out\/src\/console\/public/);
  });

  it('carries the release in OCI labels equal to package.json', () => {
    const version = dockerfile.find((i) => i.keyword === 'ARG' && i.args.startsWith('SCANRELAY_VERSION='));
    expect(version?.args).toBe(`SCANRELAY_VERSION=${packageJson.version}`);
    const labels = parseEnvArgs(one('LABEL'));
    expect(labels['org.opencontainers.image.version']).toBe('${SCANRELAY_VERSION}');
    expect(labels['org.opencontainers.image.licenses']).toBe(packageJson.license);
    expect(labels['org.opencontainers.image.source']).toBe(packageJson.repository?.url);
    expect(readRepoFile('CHANGELOG.md')).toContain(`## ${packageJson.version} `);
    expect(compose.services.scanrelay.image).toBe(`scanrelay:${packageJson.version}`);
  });

  it('gives the gateway the same V8 flags and malloc arenas in the image, npm start and the systemd unit', () => {
    const flags = imageEnv.NODE_OPTIONS;
    expect(flags).toMatch(/^--max-semi-space-size=\d+ --max-old-space-size=\d+$/);
    expect(imageEnv.MALLOC_ARENA_MAX).toBe('2');
    for (const script of ['start', 'start:prod', 'start:demo']) {
      expect(packageJson.scripts[script].startsWith(`MALLOC_ARENA_MAX=${imageEnv.MALLOC_ARENA_MAX} NODE_OPTIONS='${flags}' `), script).toBe(true);
    }
    const unit = parseUnit(readRepoFile('deploy', 'systemd', 'scanrelay.service')).get('Service')!;
    expect(unit.get('Environment')).toContain(`"NODE_OPTIONS=${flags}"`);
    expect(unit.get('Environment')).toContain(`MALLOC_ARENA_MAX=${imageEnv.MALLOC_ARENA_MAX}`);
    // The benchmarks start the gateway the same way (bench/production.ts).
    expect(PRODUCTION_NODE_ARGS.join(' ')).toBe(flags);
    expect(PRODUCTION_ENV).toEqual({ MALLOC_ARENA_MAX: imageEnv.MALLOC_ARENA_MAX });
  });

  it('declares the supported Node.js lines in engines, the image on one of them', () => {
    expect(packageJson.engines.node).toBe('^20.19.0 || ^22.13.0 || ^24.0.0 || ^26.0.0');
    const imageMajor = /node:(\d+)-/.exec(dockerfile.find((i) => i.keyword === 'ARG' && i.args.startsWith('NODE_IMAGE='))!.args)![1];
    expect(packageJson.engines.node).toContain(`^${imageMajor}.`);
  });

  it('runs as a non-root user with /data as its only volume and the config at /config/gateway.yaml', () => {
    const user = one('USER');
    expect(user.split(':')[0]).not.toMatch(/^(root|0)$/);
    expect(JSON.parse(one('VOLUME'))).toEqual(['/data']);
    expect(runtime.some((i) => i.keyword === 'RUN' && i.args === `mkdir -p /data && chown ${user} /data`)).toBe(true);
    expect(imageEnv.SCANRELAY_DATA_DIR).toBe('/data');
    expect(imageEnv.SCANRELAY_CONFIG).toBe('/config/gateway.yaml');
    expect(runtime.some((i) => i.keyword === 'COPY' && i.args === 'config/gateway.yaml /config/gateway.yaml')).toBe(true);
    expect(one('STOPSIGNAL')).toBe('SIGTERM');
  });

  it('binds every interface inside the container and exposes exactly the ports it sets', () => {
    expect(imageEnv.SCANRELAY_SMTP_HOST).toBe('0.0.0.0');
    expect(imageEnv.SCANRELAY_ADMIN_HOST).toBe('0.0.0.0');
    const exposed = one('EXPOSE').split(/\s+/).map(Number).sort();
    const set = [imageEnv.SCANRELAY_SMTP_PORT, imageEnv.SCANRELAY_ADMIN_PORT, imageEnv.SCANRELAY_POP3_PORT].map(Number).sort();
    expect(exposed).toEqual(set);
    // Unprivileged ports inside the container: no capability needed whatever the runtime.
    for (const port of exposed) expect(port).toBeGreaterThanOrEqual(1024);
  });

  it('has a HEALTHCHECK that asks /healthz on the admin port with node (no curl in slim images)', () => {
    const healthcheck = one('HEALTHCHECK');
    const command = JSON.parse(/CMD\s+(\[.*\])$/.exec(healthcheck)![1]) as string[];
    expect(command[0]).toBe('node');
    expect(command.join(' ')).toContain('/healthz');
    expect(command.join(' ')).toContain('SCANRELAY_ADMIN_PORT');
    expect(healthcheck).toMatch(/--timeout=\d+s/);
  });

  it('only copies files the .dockerignore allow-list lets into the build context', () => {
    const lines = readRepoFile('.dockerignore')
      .split(/\r?\n/)
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    expect(lines[0]).toBe('*');
    const allowed = lines.filter((l) => l.startsWith('!')).map((l) => l.slice(1));
    const sources = dockerfile.filter((i) => i.keyword === 'COPY' && !i.args.startsWith('--from')).flatMap((i) => i.args.split(/\s+/).slice(0, -1));
    for (const source of sources) {
      expect(
        allowed.some((a) => source === a || source.startsWith(`${a}/`)),
        `${source} is in the build context`,
      ).toBe(true);
      expect(existsSync(repoPath(source)), `${source} exists`).toBe(true);
    }
    expect(allowed.some((a) => a.startsWith('deploy') || a.startsWith('test') || a === 'node_modules')).toBe(false);
  });
});

describe('deploy/docker-compose.yml', () => {
  const scanrelay = compose.services.scanrelay;

  it('builds the repository image and runs it read-only, unprivileged, with a tmpfs /tmp', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['grafana', 'prometheus', 'scanrelay']);
    expect(existsSync(join(resolve(deployDir, scanrelay.build!.context), scanrelay.build!.dockerfile ?? 'Dockerfile'))).toBe(true);
    expect(scanrelay.read_only).toBe(true);
    expect(scanrelay.tmpfs?.some((t) => t.split(':')[0] === '/tmp')).toBe(true);
    expect(scanrelay.cap_drop).toEqual(['ALL']);
    expect(scanrelay.security_opt).toContain('no-new-privileges:true');
  });

  it('maps host port 25 to the SMTP port and publishes the admin port on loopback only', () => {
    const ports = (scanrelay.ports ?? []).map(parsePort);
    const smtpPort = Number(scanrelay.environment?.SCANRELAY_SMTP_PORT ?? imageEnv.SCANRELAY_SMTP_PORT);
    const adminPort = Number(scanrelay.environment?.SCANRELAY_ADMIN_PORT ?? imageEnv.SCANRELAY_ADMIN_PORT);
    expect(ports).toContainEqual({ hostIp: undefined, host: 25, container: smtpPort });
    const admin = ports.find((p) => p.container === adminPort);
    expect(admin?.hostIp).toBe('127.0.0.1');
    for (const service of ['prometheus', 'grafana']) {
      for (const port of (compose.services[service].ports ?? []).map(parsePort)) expect(port.hostIp, `${service} published on loopback`).toBe('127.0.0.1');
    }
  });

  it('mounts a named volume at /data and the config directory holding /config/gateway.yaml', () => {
    const volumes = (scanrelay.volumes ?? []).map(parseVolume);
    const data = volumes.find((v) => v.target === imageEnv.SCANRELAY_DATA_DIR);
    expect(data?.bind).toBe(false);
    expect(Object.keys(compose.volumes ?? {})).toContain(data!.source);
    // The config directory is mounted (a file mount would keep an editor-replaced file's old copy).
    const configDir = posix.dirname(imageEnv.SCANRELAY_CONFIG);
    const config = volumes.find((v) => v.target === configDir);
    expect(config?.bind).toBe(true);
    expect(existsSync(join(resolve(deployDir, config!.source), posix.basename(imageEnv.SCANRELAY_CONFIG)))).toBe(true);
  });

  it('has every bind-mounted path and named volume defined', () => {
    for (const [name, service] of Object.entries(compose.services)) {
      for (const volume of (service.volumes ?? []).map(parseVolume)) {
        if (volume.bind) expect(existsSync(resolve(deployDir, volume.source)), `${name}: ${volume.source}`).toBe(true);
        else expect(Object.keys(compose.volumes ?? {}), `${name}: volume ${volume.source}`).toContain(volume.source);
      }
    }
  });

  it('declares every secret a service uses, each with an example file and kept out of git', () => {
    const declared = compose.secrets ?? {};
    for (const [name, service] of Object.entries(compose.services)) {
      for (const secret of secretNames(service)) expect(Object.keys(declared), `${name} uses secret ${secret}`).toContain(secret);
    }
    const ignore = readRepoFile('deploy', 'secrets', '.gitignore').split(/\r?\n/);
    expect(ignore).toContain('*');
    for (const [name, { file }] of Object.entries(declared)) {
      expect(file, `secret ${name} has a file`).toMatch(/^\.\/secrets\/[a-z0-9-]+\.txt$/);
      const example = `${resolve(deployDir, file!)}.example`;
      expect(existsSync(example), `${file}.example`).toBe(true);
      expect(statSync(example).size, `${file}.example is empty, so a copied example cannot start the gateway`).toBe(0);
    }
    const grafanaFile = compose.services.grafana.environment?.GF_SECURITY_ADMIN_PASSWORD__FILE;
    expect(secretNames(compose.services.grafana).map((s) => `/run/secrets/${s}`)).toContain(grafanaFile);
  });
});

describe('deploy/config/gateway.yaml (the compose stack config)', () => {
  let secretsDir: string;
  let config: GatewayConfig;
  const text = readRepoFile('deploy', 'config', 'gateway.yaml');
  const referenced = [...new Set([...text.matchAll(/\/run\/secrets\/([a-z0-9-]+)/g)].map((m) => m[1]))];

  beforeAll(async () => {
    secretsDir = await mkdtemp(join(tmpdir(), 'scanrelay-deploy-secrets-'));
    const values: Record<string, string> = {
      'admin-tokens': 'token-for-the-deploy-test-0123456789\n',
    };
    for (const name of referenced) {
      const value = values[name] ?? (name.endsWith('gmail-app-password') ? 'abcdefghijklmnop\n' : 'PrinterPassword0123456789\n');
      await writeFile(join(secretsDir, name), value);
    }
    // The same env as the container (dataDir and listeners from the image's variables).
    const env = { ...imageEnv, SCANRELAY_DATA_DIR: join(secretsDir, 'data') };
    config = parseConfig(text.replaceAll('/run/secrets/', `${secretsDir}/`), repoPath('deploy', 'config', 'gateway.yaml'), env);
  });
  afterAll(async () => {
    await rm(secretsDir, { recursive: true, force: true });
  });

  it('loads with the real loader, every secret read from a file the compose service mounts', () => {
    expect(referenced.length).toBeGreaterThanOrEqual(3);
    for (const name of referenced) expect(secretNames(compose.services.scanrelay), `/run/secrets/${name}`).toContain(name);
    expect(config.admin.tokens).toEqual(['token-for-the-deploy-test-0123456789']);
    expect(config.smtp.host).toBe('0.0.0.0');
    expect(config.smtp.port).toBe(Number(imageEnv.SCANRELAY_SMTP_PORT));
    expect(config.admin.port).toBe(Number(imageEnv.SCANRELAY_ADMIN_PORT));
  });

  it('maps each device to a Gmail upstream that never sends in plaintext', () => {
    expect(config.devices.length).toBeGreaterThan(0);
    for (const device of config.devices) {
      const upstream = config.upstreams.find((u) => u.name === device.upstream);
      expect(upstream, `device ${device.name} has an upstream`).toBeDefined();
      expect(device.username!.length).toBeLessThanOrEqual(63);
      expect(['tls', 'starttls', 'auto']).toContain(upstream!.security);
      expect(upstream!.tls.rejectUnauthorized).toBe(true);
    }
  });

  it('lets SIGTERM drain within the compose stop_grace_period', () => {
    const drainMs = config.smtp.closeTimeoutMs + config.delivery.shutdownTimeoutMs;
    expect(durationMs(compose.services.scanrelay.stop_grace_period!)).toBeGreaterThan(drainMs);
  });
});

describe('deploy/systemd/scanrelay.service', () => {
  const unit = parseUnit(readRepoFile('deploy', 'systemd', 'scanrelay.service'));
  const service = unit.get('Service')!;
  const value = (key: string) => service.get(key)?.at(-1);

  it('runs the compiled entry point as an unprivileged user with config and state directories', () => {
    expect(value('ExecStart')).toMatch(/^\/usr\/bin\/node \/opt\/scanrelay\/dist\/src\/main\.js$/);
    expect(value('User')).toBe('scanrelay');
    const env = Object.fromEntries((service.get('Environment') ?? []).map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
    expect(env.SCANRELAY_CONFIG).toBe(`/etc/${value('ConfigurationDirectory')}/gateway.yaml`);
    expect(env.SCANRELAY_DATA_DIR).toBe(`/var/lib/${value('StateDirectory')}`);
    expect(value('ExecReload')).toBe('/bin/kill -HUP $MAINPID');
  });

  it('does not restart on a config error (exit code of main.ts) and waits for the drain', () => {
    const exitConfig = /const EXIT_CONFIG = (\d+)/.exec(readRepoFile('src', 'main.ts'))?.[1];
    expect(value('RestartPreventExitStatus')).toBe(exitConfig);
    const defaults = parseConfig('{}', repoPath('deploy', 'systemd', 'defaults.yaml'), {});
    expect(durationMs(value('TimeoutStopSec')!)).toBeGreaterThan(defaults.smtp.closeTimeoutMs + defaults.delivery.shutdownTimeoutMs);
    expect(value('KillSignal')).toBe('SIGTERM');
  });

  it('is hardened: no capabilities, no new privileges, read-only system, private tmp', () => {
    expect(value('CapabilityBoundingSet')).toBe('');
    expect(service.has('AmbientCapabilities')).toBe(false);
    for (const key of [
      'NoNewPrivileges',
      'ProtectHome',
      'PrivateTmp',
      'PrivateDevices',
      'ProtectKernelTunables',
      'RestrictNamespaces',
      'RestrictSUIDSGID',
      'LockPersonality',
    ]) {
      expect(value(key), key).toBe('yes');
    }
    expect(value('ProtectSystem')).toBe('strict');
    // V8's JIT needs W+X pages: this option would kill node at start.
    expect(service.has('MemoryDenyWriteExecute')).toBe(false);
    for (const credential of service.get('LoadCredential') ?? []) expect(credential).toMatch(/^[a-z0-9-]+:\/etc\/scanrelay\/secrets\/[a-z0-9-]+$/);
  });

  const analyze = outsideTool('systemd-analyze', 'apt-get install --no-install-recommends systemd');
  describeWithTool(analyze, 'systemd-analyze', () => {
    it('passes systemd-analyze verify without unknown keys', () => {
      const result = spawnSync(analyze.command, ['verify', repoPath('deploy', 'systemd', 'scanrelay.service')], { encoding: 'utf8', timeout: 20_000 });
      const complaints = `${result.stdout}${result.stderr}`
        .split('\n')
        .filter((l) => l.includes('scanrelay.service') && /unknown|invalid|failed|error/i.test(l));
      expect(complaints).toEqual([]);
    });
  });
});
