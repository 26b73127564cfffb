/**
 * The gateway as a real child process (`node --import tsx src/main.ts --config <file>`), for what only a
 * process can show: kill -9 mid-delivery, SIGTERM draining, exit codes. Resolves once main logged
 * "scanrelay.ready"; every stdout JSON line is kept in `logs`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { stringify } from 'yaml';

const ROOT = new URL('../..', import.meta.url).pathname;

export interface GatewayProcess {
  child: ChildProcess;
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
}

/** Writes `config` (YAML shape) to `<dir>/gateway.yaml` and returns the path. */
export async function writeGatewayConfig(dir: string, config: Record<string, unknown>): Promise<string> {
  const file = join(dir, 'gateway.yaml');
  await writeFile(file, stringify(config));
  return file;
}

export async function startGatewayProcess(configFile: string, { timeoutMs = 30_000, env = {} as NodeJS.ProcessEnv } = {}): Promise<GatewayProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src/main.ts'), '--config', configFile], {
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
  createInterface({ input: child.stdout! }).on('line', (line) => {
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

  const ready = await waitForLog((entry) => entry.msg === 'scanrelay.ready', timeoutMs);
  return {
    child,
    logs,
    exited,
    waitForLog,
    smtpPort: Number(ready.smtp),
    adminPort: ready.admin === undefined ? undefined : Number(ready.admin),
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}
