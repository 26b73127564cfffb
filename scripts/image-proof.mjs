#!/usr/bin/env node
/**
 * Image proof: there is no Docker engine on our machines, so this script executes the Dockerfile itself,
 * outside Docker, and checks that the resulting "image" works.
 *
 *   node scripts/image-proof.mjs [--keep]
 *
 * 1. Build context: the repository's files (git-tracked + untracked, not ignored) filtered through
 *    .dockerignore, copied into a clean temporary directory.
 * 2. Every stage of the Dockerfile is replayed in its own temporary root: WORKDIR, COPY (also
 *    --from=<stage>), ENV, and RUN. RUN commands are split on `&&`; `npm ...` is executed for real in the
 *    stage's working directory, `mkdir -p` and `chown` are applied inside the stage root, and any other
 *    command fails the proof (so the Dockerfile cannot grow a step this script silently skips).
 * 3. The last stage is the image. Its CMD is started exactly as the image would run it: same working
 *    directory, same ENV (absolute paths such as /config/gateway.yaml and /data mapped into the stage
 *    root), the config the image ships. Only the listener addresses differ: 127.0.0.1 and port 0 via
 *    the SCANRELAY_*_HOST/PORT variables, so the proof never binds a public address or a fixed port.
 * 4. Checks: /healthz answers 200, the SMTP greeting starts with 220, a scan from the demo device is
 *    queued into /data, the HEALTHCHECK command exits 0 (and non-zero once the gateway is gone), the
 *    STOPSIGNAL makes the process exit 0, and nothing outside /data and /tmp was written (read-only
 *    root file system).
 *
 * Prints one PASS/FAIL line per check and exits 1 on any failure. Every wait is bounded.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { connect } from 'node:net';
import { request } from 'node:http';
import { cp, mkdir, mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, posix, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const KEEP = process.argv.includes('--keep');
const NPM_TIMEOUT_MS = 5 * 60_000;
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 70_000;
const OVERALL_TIMEOUT_MS = 15 * 60_000;

const results = [];
let child;

function pass(what) {
  results.push({ ok: true, what });
  console.log(`PASS ${what}`);
}
function fail(what, detail = '') {
  results.push({ ok: false, what });
  console.log(`FAIL ${what}${detail ? `: ${detail}` : ''}`);
}
function check(condition, what, detail) {
  if (condition) pass(what);
  else fail(what, detail);
  return condition;
}
class ProofAbort extends Error {}
function abort(what, detail) {
  fail(what, detail);
  throw new ProofAbort(what);
}

// ---------------------------------------------------------------------------------------------------
// Dockerfile parsing

/** Instructions of a Dockerfile: continuation lines joined, comments dropped. */
function parseDockerfile(text) {
  const instructions = [];
  let pending = '';
  for (const rawLine of text.split(/\r?\n/)) {
    const line = rawLine.trim();
    if (!pending && (line === '' || line.startsWith('#'))) continue;
    if (pending && line.startsWith('#')) continue;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1).trim()} `;
      continue;
    }
    const full = (pending + line).trim();
    pending = '';
    if (!full) continue;
    const match = /^(\S+)\s*(.*)$/.exec(full);
    instructions.push({ keyword: match[1].toUpperCase(), args: match[2] });
  }
  return instructions;
}

/** Splits instructions into stages; global ARGs (before the first FROM) give FROM's defaults. */
function splitStages(instructions) {
  const args = {};
  const stages = [];
  for (const ins of instructions) {
    if (ins.keyword === 'FROM') {
      const m = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      if (!m) throw new Error(`cannot read FROM ${ins.args}`);
      const image = m[1].replace(/\$\{(\w+)\}|\$(\w+)/g, (_x, a, b) => args[a ?? b] ?? '');
      stages.push({ name: m[2] ?? String(stages.length), image, instructions: [] });
    } else if (stages.length === 0) {
      if (ins.keyword !== 'ARG') throw new Error(`${ins.keyword} before the first FROM`);
      const [key, value = ''] = ins.args.split('=');
      args[key.trim()] = value.trim();
    } else {
      stages[stages.length - 1].instructions.push(ins);
    }
  }
  return stages;
}

/** ENV a=b c="d e" (and the legacy `ENV a b` form). */
function parseEnv(args) {
  const env = {};
  if (!args.includes('=')) {
    const [key, ...rest] = args.split(/\s+/);
    env[key] = rest.join(' ');
    return env;
  }
  const re = /([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|'[^']*'|\S*)/g;
  for (const m of args.matchAll(re)) {
    let value = m[2];
    if (value.startsWith('"')) value = JSON.parse(value);
    else if (value.startsWith("'")) value = value.slice(1, -1);
    env[m[1]] = value;
  }
  return env;
}

/** HEALTHCHECK [--opt=value ...] CMD ["exec", "form"] */
function parseHealthcheck(args) {
  const options = {};
  let rest = args;
  for (;;) {
    const m = /^--([a-z-]+)=(\S+)\s+/.exec(rest);
    if (!m) break;
    options[m[1]] = m[2];
    rest = rest.slice(m[0].length);
  }
  const cmd = /^CMD\s+(.*)$/s.exec(rest);
  if (!cmd) throw new Error(`HEALTHCHECK without CMD: ${args}`);
  const command = JSON.parse(cmd[1]);
  return { options, command };
}

function parseDuration(text, fallbackMs) {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(text ?? '');
  if (!m) return fallbackMs;
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2]];
}

// ---------------------------------------------------------------------------------------------------
// .dockerignore (moby patternmatcher semantics: last matching pattern wins, a pattern also matches
// every file below a matching directory)

function patternToRegExp(pattern) {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '*') {
      if (pattern[i + 1] === '*') {
        i++;
        if (pattern[i + 1] === '/') {
          i++;
          out += '(?:.*/)?';
        } else out += '.*';
      } else out += '[^/]*';
    } else if (c === '?') out += '[^/]';
    else out += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${out}$`);
}

function dockerignoreMatcher(text) {
  const rules = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const exclusion = l.startsWith('!');
      const pattern = posix
        .normalize((exclusion ? l.slice(1) : l).trim())
        .replace(/^\/+/, '')
        .replace(/\/+$/, '');
      return { exclusion, re: patternToRegExp(pattern) };
    });
  return (path) => {
    const parts = path.split('/');
    const candidates = parts.map((_p, i) => parts.slice(0, i + 1).join('/'));
    let ignored = false;
    for (const rule of rules) {
      if (candidates.some((c) => rule.re.test(c))) ignored = !rule.exclusion;
    }
    return ignored;
  };
}

// ---------------------------------------------------------------------------------------------------
// Build context

const NEVER_IN_CONTEXT = /^(node_modules|dist|data|\.git)(\/|$)/;

/** git-tracked and untracked (not ignored) files; without git, every file but the build outputs. */
async function repositoryFiles() {
  const git = spawnSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: REPO, encoding: 'utf8' });
  if (git.status === 0) {
    return git.stdout
      .split('\0')
      .filter(Boolean)
      .filter((f) => !NEVER_IN_CONTEXT.test(f))
      .filter((f) => existsSync(join(REPO, f)));
  }
  console.log('note: not a git checkout, taking every file except node_modules, dist, data and .git');
  const files = [];
  async function walk(dir) {
    for (const entry of await readdir(join(REPO, dir), { withFileTypes: true })) {
      const rel = dir ? `${dir}/${entry.name}` : entry.name;
      if (NEVER_IN_CONTEXT.test(rel)) continue;
      if (entry.isDirectory()) await walk(rel);
      else if (entry.isFile()) files.push(rel);
    }
  }
  await walk('');
  return files;
}

async function buildContext(dir) {
  const ignoreFile = join(REPO, '.dockerignore');
  const ignored = existsSync(ignoreFile) ? dockerignoreMatcher(await readFile(ignoreFile, 'utf8')) : () => false;
  const files = (await repositoryFiles()).filter((f) => !ignored(f));
  for (const file of files) {
    await mkdir(dirname(join(dir, file)), { recursive: true });
    await cp(join(REPO, file), join(dir, file));
  }
  return files;
}

// ---------------------------------------------------------------------------------------------------
// Stage replay

/** A container path (absolute, or relative to WORKDIR) inside a stage root. */
function inRoot(root, workdir, path) {
  const containerPath = posix.resolve(workdir, path);
  return join(root, containerPath);
}

function splitArgs(text) {
  // Dockerfile COPY/RUN pieces here never need quoting; refuse quotes rather than guess.
  if (/["'`$]/.test(text)) throw new Error(`quoting or variables are not supported here: ${text}`);
  return text.split(/\s+/).filter(Boolean);
}

async function copyInto(sources, dest, fromRoot, root, workdir, contextDir) {
  const destIsDir = dest.endsWith('/') || sources.length > 1;
  const target = inRoot(root, workdir, dest);
  for (const source of sources) {
    const from = fromRoot === undefined ? join(contextDir, source) : inRoot(fromRoot, '/', source);
    if (!existsSync(from)) throw new Error(`COPY source ${source} does not exist${fromRoot === undefined ? ' in the build context' : ''}`);
    const info = await stat(from);
    if (info.isDirectory()) {
      // Docker copies a directory's contents into the destination.
      await mkdir(target, { recursive: true });
      await cp(from, target, { recursive: true });
    } else {
      const file = destIsDir ? join(target, posix.basename(source)) : target;
      await mkdir(dirname(file), { recursive: true });
      await cp(from, file);
    }
  }
}

function runNpm(command, cwd, env) {
  return new Promise((resolvePromise) => {
    const started = Date.now();
    const proc = spawn('sh', ['-c', command], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    proc.stdout.on('data', (d) => (output += d));
    proc.stderr.on('data', (d) => (output += d));
    const timer = setTimeout(() => proc.kill('SIGKILL'), NPM_TIMEOUT_MS);
    proc.on('close', (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code, signal, output, seconds: (Date.now() - started) / 1000 });
    });
  });
}

/** The environment for RUN steps: ours (PATH, HOME, npm cache) minus npm's own lifecycle variables. */
function buildEnv(stageEnv) {
  const env = {};
  for (const [key, value] of Object.entries(process.env)) if (!/^npm_/i.test(key)) env[key] = value;
  return { ...env, ...stageEnv };
}

async function replayStage(stage, stages, context, work) {
  const root = join(work, 'stages', stage.name);
  await mkdir(root, { recursive: true });
  const state = {
    root,
    workdir: '/',
    env: {},
    user: 'root',
    volumes: [],
    expose: [],
    cmd: undefined,
    healthcheck: undefined,
    stopsignal: 'SIGTERM',
    owners: {},
  };
  for (const { keyword, args } of stage.instructions) {
    switch (keyword) {
      case 'WORKDIR':
        state.workdir = posix.resolve(state.workdir, args);
        await mkdir(inRoot(root, '/', state.workdir), { recursive: true });
        break;
      case 'ENV':
        Object.assign(state.env, parseEnv(args));
        break;
      case 'COPY': {
        const parts = splitArgs(args);
        let fromRoot;
        while (parts[0]?.startsWith('--')) {
          const flag = parts.shift();
          const from = /^--from=(.+)$/.exec(flag);
          if (from) {
            const source = stages.find((s) => s.name === from[1]);
            if (!source?.state) throw new Error(`COPY --from=${from[1]}: no such earlier stage`);
            fromRoot = source.state.root;
          } else if (!/^--(chown|chmod|link)=?/.test(flag)) throw new Error(`unsupported COPY flag ${flag}`);
        }
        const dest = parts.pop();
        await copyInto(parts, dest, fromRoot, root, state.workdir, context);
        break;
      }
      case 'RUN': {
        if (args.startsWith('[')) throw new Error('exec-form RUN is not supported by the proof');
        for (const command of args.split('&&').map((c) => c.trim())) {
          const words = splitArgs(command);
          if (words[0] === 'npm') {
            const cwd = inRoot(root, '/', state.workdir);
            const result = await runNpm(command, cwd, buildEnv(state.env));
            if (
              !check(
                result.code === 0,
                `[${stage.name}] RUN ${command} (${result.seconds.toFixed(1)} s)`,
                `exit ${result.code ?? result.signal}\n${result.output.slice(-3000)}`,
              )
            ) {
              throw new ProofAbort(command);
            }
          } else if (words[0] === 'mkdir' && words[1] === '-p') {
            for (const p of words.slice(2)) await mkdir(inRoot(root, state.workdir, p), { recursive: true });
          } else if (words[0] === 'chown' && words.length >= 3) {
            for (const p of words.slice(2)) {
              if (!existsSync(inRoot(root, state.workdir, p))) throw new Error(`chown: ${p} does not exist`);
              state.owners[posix.resolve(state.workdir, p)] = words[1];
            }
          } else {
            throw new Error(`RUN step "${command}" is unknown to the image proof: teach scripts/image-proof.mjs what it does`);
          }
        }
        break;
      }
      case 'USER':
        state.user = args.trim();
        break;
      case 'VOLUME':
        state.volumes.push(...(args.startsWith('[') ? JSON.parse(args) : args.split(/\s+/)));
        break;
      case 'EXPOSE':
        state.expose.push(...args.split(/\s+/).filter(Boolean));
        break;
      case 'HEALTHCHECK':
        state.healthcheck = parseHealthcheck(args);
        break;
      case 'STOPSIGNAL':
        state.stopsignal = args.trim();
        break;
      case 'CMD':
        if (!args.startsWith('[')) throw new Error('CMD must use the exec form (signals reach node directly)');
        state.cmd = JSON.parse(args);
        break;
      case 'ARG':
      case 'LABEL':
        break;
      default:
        throw new Error(`Dockerfile instruction ${keyword} is unknown to the image proof`);
    }
  }
  stage.state = state;
}

// ---------------------------------------------------------------------------------------------------
// Running the image

/** Absolute container paths in ENV values point into the stage root. */
function mapEnvPaths(env, root) {
  const out = {};
  for (const [key, value] of Object.entries(env)) out[key] = value.startsWith('/') ? join(root, value) : value;
  return out;
}

function httpGet(port, path, timeoutMs = 5000) {
  return new Promise((resolvePromise) => {
    const req = request({ host: '127.0.0.1', port, path, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolvePromise({ status: res.statusCode, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => resolvePromise({ status: 0, body: err.message }));
    req.end();
  });
}

/** A tiny SMTP dialogue: each step sends a line (or nothing, for the greeting) and reads one reply. */
async function smtpDialogue(port, steps, timeoutMs = 10_000) {
  const socket = connect({ host: '127.0.0.1', port });
  socket.setEncoding('latin1');
  let buffer = '';
  let closed = false;
  const waiters = [];
  socket.on('data', (d) => {
    buffer += d;
    waiters.splice(0).forEach((w) => w());
  });
  socket.on('close', () => {
    closed = true;
    waiters.splice(0).forEach((w) => w());
  });
  socket.on('error', () => undefined);
  const readReply = async () => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const lines = buffer.split('\r\n');
      for (let i = 0; i < lines.length - 1; i++) {
        if (/^\d{3} /.test(lines[i]) || /^\d{3}$/.test(lines[i])) {
          const reply = lines.slice(0, i + 1).join('\n');
          buffer = lines.slice(i + 1).join('\r\n');
          return reply;
        }
      }
      if (closed) return `(connection closed) ${buffer}`;
      const left = deadline - Date.now();
      if (left <= 0) return `(timeout) ${buffer}`;
      await new Promise((r) => {
        const t = setTimeout(r, left);
        waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  };
  const replies = [];
  try {
    for (const step of steps) {
      if (step.send !== undefined) socket.write(`${step.send}\r\n`);
      const reply = await readReply();
      replies.push(reply);
      if (!reply.startsWith(String(step.expect))) return { ok: false, replies, failedAt: step.label ?? step.send ?? 'greeting' };
    }
    return { ok: true, replies };
  } finally {
    socket.destroy();
  }
}

function runHealthcheck(healthcheck, env, cwd) {
  const [command, ...args] = healthcheck.command;
  const timeout = parseDuration(healthcheck.options.timeout, 30_000);
  const executable = command === 'node' ? process.execPath : command;
  const result = spawnSync(executable, args, { cwd, env, timeout, encoding: 'utf8' });
  return result.status;
}

/** Files outside the writable paths, with size and mtime: compared before and after the run. */
async function snapshot(root, writable) {
  const out = new Map();
  async function walk(dir) {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const full = join(dir, entry.name);
      const containerPath = `/${relative(root, full).split('\\').join('/')}`;
      if (writable.some((w) => containerPath === w || containerPath.startsWith(`${w}/`))) continue;
      if (entry.isDirectory()) {
        out.set(containerPath, 'dir');
        await walk(full);
      } else {
        const info = await stat(full);
        out.set(containerPath, `${info.size}:${info.mtimeMs}`);
      }
    }
  }
  await walk(root);
  return out;
}

function waitForExit(proc, timeoutMs) {
  return new Promise((resolvePromise) => {
    if (proc.exitCode !== null || proc.signalCode !== null) return resolvePromise({ code: proc.exitCode, signal: proc.signalCode });
    const timer = setTimeout(() => resolvePromise({ code: null, signal: 'timeout' }), timeoutMs);
    proc.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code, signal });
    });
  });
}

/** The first config-file device with a password and a recipient rule, for a real submission. */
async function demoDevice(configFile, appDir) {
  // The image's own production dependencies include the YAML parser the gateway uses.
  const require = createRequire(join(appDir, 'package.json'));
  const { parse } = require('yaml');
  const raw = parse(await readFile(configFile, 'utf8')) ?? {};
  const expand = (v) => (typeof v === 'string' ? v.replace(/\$\{(\w+)(?::-([^}]*))?\}/g, (_m, n, d) => process.env[n] || d || '') : v);
  for (const device of raw.devices ?? []) {
    const rule = (device.allowRecipients ?? []).map(expand).find((r) => /^[^@]+@[A-Za-z0-9.-]+$/.test(r) && !r.includes('*@*'));
    const allowsLoopback = !device.allowFrom || device.allowFrom.some((r) => String(r).startsWith('127.') || r === '::1/128');
    if (device.username && typeof device.password === 'string' && rule && allowsLoopback && device.enabled !== false) {
      return { username: expand(device.username), password: expand(device.password), recipient: rule.replace(/^\*@/, 'image-proof@') };
    }
  }
  return undefined;
}

async function proveImage(image) {
  const root = image.state.root;
  const workdir = inRoot(root, '/', image.state.workdir);

  // Image content
  const user = image.state.user.split(':')[0];
  check(user !== 'root' && user !== '0' && user !== '', 'image runs as a non-root user', `USER ${image.state.user}`);
  check(image.state.volumes.includes('/data'), 'image declares VOLUME /data');
  check(
    image.state.owners['/data'] !== undefined && image.state.owners['/data'].split(':')[0] === user,
    '/data is owned by the runtime user',
    JSON.stringify(image.state.owners),
  );
  check(existsSync(join(workdir, 'dist/src/main.js')), 'image holds the compiled dist/src/main.js');
  check(!existsSync(join(workdir, 'src')) && !existsSync(join(workdir, 'tsconfig.json')), 'image holds no TypeScript sources');
  check(
    !existsSync(join(workdir, 'node_modules/typescript')) && !existsSync(join(workdir, 'node_modules/vitest')),
    'image holds no dev dependencies (typescript, vitest)',
  );
  if (!check(Array.isArray(image.state.cmd) && image.state.cmd[0] === 'node', 'CMD starts node in exec form', JSON.stringify(image.state.cmd)))
    throw new ProofAbort('cmd');
  const imageEnv = image.state.env;
  const configPath = imageEnv.SCANRELAY_CONFIG;
  if (!check(Boolean(configPath) && existsSync(join(root, configPath)), `image ships its config at ${configPath}`)) throw new ProofAbort('config');

  // The container: HOME and /tmp exist in the base image; /data is the volume.
  await mkdir(join(root, 'tmp'), { recursive: true });
  await mkdir(join(root, 'home/node'), { recursive: true });
  await mkdir(join(root, 'data'), { recursive: true });
  const writable = ['/data', '/tmp'];
  const before = await snapshot(root, writable);

  const containerEnv = {
    PATH: process.env.PATH,
    HOME: join(root, 'home/node'),
    TMPDIR: join(root, 'tmp'),
    ...mapEnvPaths(imageEnv, root),
  };
  // The one difference from `docker run`: loopback and ephemeral ports instead of 0.0.0.0 and fixed ports.
  const proofOverrides = {
    SCANRELAY_SMTP_HOST: '127.0.0.1',
    SCANRELAY_SMTP_PORT: '0',
    SCANRELAY_ADMIN_HOST: '127.0.0.1',
    SCANRELAY_ADMIN_PORT: '0',
    SCANRELAY_POP3_PORT: '0',
  };
  const runEnv = { ...containerEnv, ...proofOverrides };
  const [, ...cmdArgs] = image.state.cmd;
  const nodeMajor = Number(process.versions.node.split('.')[0]);
  const imageMajor = Number(/node:(\d+)/.exec(image.image)?.[1]);
  check(
    !imageMajor || imageMajor === nodeMajor,
    `local node ${process.version} matches the image's Node ${imageMajor}`,
    'the proof runs with a different Node major than the image',
  );

  console.log(
    `---- starting: (cd ${image.state.workdir}) ${image.state.cmd.join(' ')}  [SCANRELAY_CONFIG=${configPath}, SCANRELAY_DATA_DIR=${imageEnv.SCANRELAY_DATA_DIR}]`,
  );
  child = spawn(process.execPath, cmdArgs, { cwd: workdir, env: runEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  const logLines = [];
  let stdoutBuffer = '';
  const readyPromise = new Promise((resolvePromise) => {
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d) => {
      stdoutBuffer += d;
      const lines = stdoutBuffer.split('\n');
      stdoutBuffer = lines.pop();
      for (const line of lines) {
        logLines.push(line);
        try {
          const entry = JSON.parse(line);
          if (entry.msg === 'scanrelay.ready') resolvePromise(entry);
        } catch {
          /* not JSON */
        }
      }
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d) => logLines.push(`stderr: ${d.trimEnd()}`));
    child.once('exit', () => resolvePromise(undefined));
    setTimeout(() => resolvePromise(undefined), START_TIMEOUT_MS).unref();
  });
  const ready = await readyPromise;
  if (
    !check(
      ready !== undefined && ready.smtp > 0 && ready.admin > 0,
      'gateway started (scanrelay.ready logged with SMTP and admin ports)',
      logLines.slice(-20).join('\n'),
    )
  )
    throw new ProofAbort('start');
  check(ready.config === join(root, configPath), 'gateway loaded the image config from SCANRELAY_CONFIG', ready.config);

  const health = await httpGet(ready.admin, '/healthz');
  check(health.status === 200, 'GET /healthz answers 200', `${health.status} ${health.body.slice(0, 200)}`);

  const greeting = await smtpDialogue(ready.smtp, [{ expect: 220 }, { send: 'EHLO image-proof', expect: 250 }, { send: 'QUIT', expect: 221 }]);
  check(greeting.ok && /^220 /.test(greeting.replies[0]), 'SMTP greeting starts with 220', greeting.replies.join(' | '));

  const device = await demoDevice(join(root, configPath), workdir);
  if (device) {
    const plain = Buffer.from(`\0${device.username}\0${device.password}`).toString('base64');
    const sent = await smtpDialogue(ready.smtp, [
      { expect: 220 },
      { send: 'EHLO image-proof', expect: 250 },
      { send: `AUTH PLAIN ${plain}`, expect: 235, label: 'AUTH PLAIN' },
      { send: 'MAIL FROM:<scanner@image-proof.invalid>', expect: 250 },
      { send: `RCPT TO:<${device.recipient}>`, expect: 250 },
      { send: 'DATA', expect: 354 },
      {
        send: 'From: scanner@image-proof.invalid\r\nSubject: image proof\r\nMessage-ID: <image-proof@scanrelay>\r\n\r\nscan\r\n.',
        expect: 250,
        label: 'end of DATA',
      },
      { send: 'QUIT', expect: 221 },
    ]);
    check(
      sent.ok && /queued as/.test(sent.replies[6] ?? ''),
      `a scan from config device "${device.username}" is queued (250 queued as ...)`,
      `${sent.failedAt ?? ''}: ${sent.replies.slice(-1)[0]}`,
    );
    const queued = existsSync(join(root, 'data/queue')) ? (await readdir(join(root, 'data/queue'))).filter((f) => f.endsWith('.eml')) : [];
    check(queued.length === 1, 'the message body is spooled in /data/queue', `found ${queued.length} .eml files`);
  } else {
    console.log('SKIP submission: the image config has no password device that may send from 127.0.0.1');
  }

  const metrics = await httpGet(ready.admin, '/metrics');
  check(
    metrics.status === 200 && /^scanrelay_upstream_state|^# TYPE scanrelay_/m.test(metrics.body),
    'GET /metrics exports scanrelay_* metrics',
    `${metrics.status}`,
  );

  // The CLI as `docker compose exec scanrelay node dist/src/cli/index.js …` runs it: the container's env
  // (admin port the real one), so it finds the API and the generated token in /data by itself.
  const execEnv = { ...containerEnv, SCANRELAY_ADMIN_PORT: String(ready.admin) };
  const cliPath = 'dist/src/cli/index.js';
  if (check(existsSync(join(workdir, cliPath)), `image holds the CLI (${cliPath})`)) {
    const checkConfig = spawnSync(process.execPath, [cliPath, 'check-config'], { cwd: workdir, env: execEnv, encoding: 'utf8', timeout: 30_000 });
    check(checkConfig.status === 0, 'CLI check-config accepts the image config', `exit ${checkConfig.status}: ${checkConfig.stderr.slice(-500)}`);
    const list = spawnSync(process.execPath, [cliPath, 'device', 'list'], { cwd: workdir, env: execEnv, encoding: 'utf8', timeout: 30_000 });
    check(
      list.status === 0 && (!device || list.stdout.includes(device.username)),
      'CLI device list reaches the admin API from inside the container',
      `exit ${list.status}: ${list.stderr.slice(-500)}`,
    );
  }

  // HEALTHCHECK exactly as Docker runs it inside the container (same env, the real admin port).
  if (check(image.state.healthcheck !== undefined, 'image has a HEALTHCHECK')) {
    const hcEnv = { ...containerEnv, SCANRELAY_ADMIN_PORT: String(ready.admin) };
    const status = runHealthcheck(image.state.healthcheck, hcEnv, workdir);
    check(status === 0, 'HEALTHCHECK command exits 0 while the gateway runs', `exit ${status}`);
  }

  const signal = image.state.stopsignal;
  child.kill(signal);
  const exit = await waitForExit(child, STOP_TIMEOUT_MS);
  check(exit.code === 0, `${signal} (STOPSIGNAL) drains and exits 0`, `code ${exit.code} signal ${exit.signal}`);
  check(
    logLines.some((l) => l.includes('gateway.stopped')),
    'shutdown logged gateway.stopped',
  );

  if (image.state.healthcheck) {
    const status = runHealthcheck(image.state.healthcheck, { ...containerEnv, SCANRELAY_ADMIN_PORT: String(ready.admin) }, workdir);
    check(status !== 0, 'HEALTHCHECK command fails once the gateway is gone', `exit ${status}`);
  }

  const after = await snapshot(root, writable);
  const changed = [...new Set([...before.keys(), ...after.keys()])].filter((k) => before.get(k) !== after.get(k));
  check(changed.length === 0, 'nothing written outside /data and /tmp (read-only root file system)', changed.slice(0, 10).join(', '));
  const dataFiles = await readdir(join(root, 'data'));
  check(dataFiles.includes('secret.key'), 'generated secrets are kept in /data', dataFiles.join(', '));
}

// ---------------------------------------------------------------------------------------------------

async function main() {
  const work = await mkdtemp(join(tmpdir(), 'scanrelay-image-proof-'));
  const watchdog = setTimeout(() => {
    fail('image proof finished in time', `${OVERALL_TIMEOUT_MS / 60000} min`);
    child?.kill('SIGKILL');
    process.exit(1);
  }, OVERALL_TIMEOUT_MS);
  watchdog.unref();
  try {
    const dockerfile = await readFile(join(REPO, 'Dockerfile'), 'utf8');
    const stages = splitStages(parseDockerfile(dockerfile));
    check(stages.length >= 2, `Dockerfile is multi-stage (${stages.map((s) => s.name).join(', ')})`);
    check(
      stages.every((s) => /^node:20[-.\w]*$/.test(s.image)),
      'every stage builds on an official node:20 image',
      stages.map((s) => s.image).join(', '),
    );

    const context = join(work, 'context');
    await mkdir(context);
    const files = await buildContext(context);
    pass(`build context: ${files.length} files after .dockerignore (${work})`);
    check(
      !files.some((f) => f.startsWith('deploy/secrets/') || f.startsWith('test/') || f.startsWith('.git/')),
      'build context holds no secrets, tests or git data',
    );

    for (const stage of stages) {
      try {
        await replayStage(stage, stages, context, work);
      } catch (err) {
        if (err instanceof ProofAbort) throw err;
        abort(`[${stage.name}] stage replays`, err.message);
      }
    }
    await proveImage(stages[stages.length - 1]);
  } catch (err) {
    if (!(err instanceof ProofAbort)) fail('image proof ran to the end', err.stack ?? String(err));
  } finally {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    if (KEEP) console.log(`kept ${work}`);
    else await rm(work, { recursive: true, force: true });
    clearTimeout(watchdog);
  }
  const failed = results.filter((r) => !r.ok);
  console.log(`---- image proof: ${results.length - failed.length} passed, ${failed.length} failed`);
  process.exit(failed.length === 0 && results.length > 0 ? 0 : 1);
}

await main();
