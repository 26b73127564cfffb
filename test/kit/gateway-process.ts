/**
 * The gateway as a real child process (`node --import tsx src/main.ts --config <file>`), for what only a
 * process can show: kill -9 mid-delivery, SIGTERM draining, exit codes. Resolves once main logged
 * "scanrelay.ready"; every stdout JSON line is kept in `logs` (unless `keepLogs: false`).
 * `compiled: true` runs dist/src/main.js as production does (`npm run build` first; the benchmark);
 * `node` picks another Node binary, `nodeArgs` adds V8/Node flags, and `wrapper` puts a command in front
 * (strace, a cgroup joiner): `pid` is then still the gateway's own, found among the wrapper's descendants.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { stringify } from 'yaml';

const ROOT = new URL('../..', import.meta.url).pathname;

export interface GatewayProcessOptions {
  timeoutMs?: number;
  /** Run the compiled dist/src/main.js instead of the TypeScript source through tsx. */
  compiled?: boolean;
  /** Node binary (default: the one running this process). */
  node?: string;
  /** Flags for node before the script (e.g. --max-semi-space-size=1, --cpu-prof). */
  nodeArgs?: string[];
  /** A command and its arguments put in front of node (it must exec or fork node as its descendant). */
  wrapper?: string[];
  /** Extra environment. */
  env?: NodeJS.ProcessEnv;
  /** Keep every stdout line in `logs` (default true; the benchmark keeps only the ready line). */
  keepLogs?: boolean;
}

export interface GatewayProcess {
  child: ChildProcess;
  /** The gateway's own process id (differs from child.pid under a wrapper that forks). */
  pid: number;
  smtpPort: number;
  adminPort?: number;
  /** Parsed stdout log lines (pino JSON). */
  logs: Array<Record<string, unknown>>;
  /** Resolves with the exit code (or the signal name) once the process has ended. */
  exited: Promise<number | string>;
  /** Waits for a log line matching `predicate`. */
  waitForLog(predicate: (entry: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** SIGKILL, and waits for the end. */
  kill(): Promise<void>;
  /** SIGTERM (a graceful drain), and waits for the end; SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<number | string>;
}

/** Writes `config` (YAML shape) to `<dir>/gateway.yaml` and returns the path. */
export async function writeGatewayConfig(dir: string, config: Record<string, unknown>): Promise<string> {
  const file = join(dir, 'gateway.yaml');
  await writeFile(file, stringify(config));
  return file;
}

export async function startGatewayProcess(configFile: string, options: GatewayProcessOptions = {}): Promise<GatewayProcess> {
  const { timeoutMs = 30_000, compiled = false, node = process.execPath, nodeArgs = [], wrapper = [], env = {}, keepLogs = true } = options;
  // compiled: exactly production's command (Dockerfile CMD, systemd ExecStart): no --enable-source-maps, whose
  // parsed maps stayed in the heap (1.5 MB more to mark in every full collection, 0.5-1 ms of CPU per 5 MB scan).
  const script = compiled ? [join(ROOT, 'dist/src/main.js')] : ['--import', 'tsx', join(ROOT, 'src/main.ts')];
  const argv = [node, ...nodeArgs, ...script, '--config', configFile];
  const [command, ...args] = [...wrapper, ...argv];
  const child = spawn(command, args, {
    cwd: ROOT,
    env: { ...process.env, SCANRELAY_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Array<Record<string, unknown>> = [];
  const listeners = new Set<() => void>();
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  let ready = false;
  createInterface({ input: child.stdout! }).on('line', (line) => {
    if (!keepLogs && ready) return;
    try {
      logs.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      logs.push({ msg: line });
    }
    for (const listener of listeners) listener();
  });
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));

  const waitForLog = (predicate: (entry: Record<string, unknown>) => boolean, waitMs = 15_000) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const check = () => {
        const found = logs.find(predicate);
        if (!found) return;
        done();
        resolve(found);
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`no matching gateway log line within ${waitMs} ms; stderr: ${stderr.slice(0, 2000)}`));
      }, waitMs);
      const onExit = () => {
        done();
        reject(new Error(`gateway exited before the log line; stderr: ${stderr.slice(0, 2000)}`));
      };
      const done = () => {
        clearTimeout(timer);
        listeners.delete(check);
        child.off('exit', onExit);
      };
      listeners.add(check);
      child.once('exit', onExit);
      check();
    });

  const readyLine = await waitForLog((entry) => entry.msg === 'scanrelay.ready', timeoutMs);
  ready = true;
  if (!keepLogs) logs.length = 0;
  const kill = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  };
  const pid = wrapper.length === 0 ? child.pid! : ((await descendantRunning(child.pid!, node, script[script.length - 1])) ?? child.pid!);
  return {
    child,
    pid,
    logs,
    exited,
    waitForLog,
    smtpPort: Number(readyLine.smtp),
    adminPort: readyLine.admin === undefined ? undefined : Number(readyLine.admin),
    kill,
    async stop(graceMs = 15_000) {
      if (child.exitCode === null && child.signalCode === null) {
        // The signal goes to the gateway itself: a wrapper such as strace must see it exit, not be killed.
        try {
          process.kill(pid, 'SIGTERM');
        } catch {
          /* already gone */
        }
        const timer = setTimeout(() => {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            /* already gone */
          }
          child.kill('SIGKILL');
        }, graceMs);
        await exited;
        clearTimeout(timer);
      }
      return exited;
    },
  };
}

/** The process at or below `root` running `program` with `argument` among its arguments (Linux /proc). */
async function descendantRunning(root: number, program: string, argument: string): Promise<number | undefined> {
  const parents = new Map<number, number>();
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => '');
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid) parents.set(Number(name), ppid);
  }
  const below = (pid: number): boolean => {
    for (let p: number | undefined = pid, hops = 0; p && hops < 16; p = parents.get(p), hops++) if (p === root) return true;
    return false;
  };
  for (const pid of [root, ...parents.keys()]) {
    if (!below(pid)) continue;
    const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0');
    if (argv[0] === program && argv.includes(argument)) return pid;
  }
  return undefined;
}
