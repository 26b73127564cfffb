/**
 * How the benchmark measures a side (the gateway or Postfix), the same way for both:
 *   CPU    a cgroup v2 made for the side (every process it forks is in it, including the ones that exit
 *          during the run): usage_usec from cpu.stat. Without cgroup v2: the side's root process's
 *          utime+stime+cutime+cstime plus the same of every live descendant (/proc/PID/stat), which also
 *          counts what exited, once its parent reaped it.
 *   memory peak USS: sum of Private_* from /proc/PID/smaps_rollup over every process of the side,
 *          sampled while the load runs.
 *   fsyncs strace -c -f over the side's whole life (fsync + fdatasync + sync_file_range).
 * Linux only; the bench runs as root on the benchmark machine.
 */
import { mkdir, readdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

const CGROUP_ROOTS = ['/sys/fs/cgroup/unified', '/sys/fs/cgroup'];
const CLOCK_TICKS = 100; // USER_HZ on Linux

/** A cgroup v2 for one side; `wrap` makes a command join it before it runs. */
export class SideCgroup {
  private constructor(readonly path: string) {}

  /** A fresh cgroup, or undefined when cgroup v2 cannot be written here. */
  static async create(name: string): Promise<SideCgroup | undefined> {
    for (const root of CGROUP_ROOTS) {
      const path = join(root, name);
      try {
        await readFile(join(root, 'cgroup.procs'), 'utf8');
        await mkdir(path);
        await readFile(join(path, 'cpu.stat'), 'utf8');
        return new SideCgroup(path);
      } catch {
        /* not cgroup v2 here, or not writable */
      }
    }
    return undefined;
  }

  /** Prefix for a command: a shell joins the cgroup, then execs the command (same pid). */
  wrap(): string[] {
    return ['/bin/sh', '-c', `echo $$ > '${this.path}/cgroup.procs' && exec "$@"`, 'cgroup-join'];
  }

  async cpuSeconds(): Promise<number> {
    const stat = await readFile(join(this.path, 'cpu.stat'), 'utf8');
    return Number(/usage_usec (\d+)/.exec(stat)?.[1] ?? 0) / 1e6;
  }

  async pids(): Promise<number[]> {
    const text = await readFile(join(this.path, 'cgroup.procs'), 'utf8').catch(() => '');
    return text.split('\n').filter(Boolean).map(Number);
  }

  /** Kills whatever is left in the cgroup and removes it. */
  async remove(): Promise<void> {
    await writeFile(join(this.path, 'cgroup.kill'), '1').catch(() => undefined);
    for (let i = 0; i < 50 && (await this.pids()).length > 0; i++) await new Promise((resolve) => setTimeout(resolve, 100));
    await rmdir(this.path).catch(() => undefined);
  }
}

interface ProcStat {
  pid: number;
  ppid: number;
  /** utime + stime + cutime + cstime, in clock ticks. */
  ticks: number;
}

async function allProcs(): Promise<ProcStat[]> {
  const procs: ProcStat[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => '');
    if (!stat) continue;
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state): ppid = field 4, utime..cstime = fields 14..17.
    procs.push({ pid: Number(name), ppid: Number(fields[1]), ticks: Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]) });
  }
  return procs;
}

/** `root` and every live descendant of it. */
export async function processTree(root: number): Promise<number[]> {
  return treeOf(await allProcs(), root).map((p) => p.pid);
}

function treeOf(procs: ProcStat[], root: number): ProcStat[] {
  const children = new Map<number, ProcStat[]>();
  for (const p of procs) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p]);
  const out: ProcStat[] = [];
  const rootStat = procs.find((p) => p.pid === root);
  const stack = rootStat ? [rootStat] : [];
  while (stack.length > 0) {
    const p = stack.pop()!;
    out.push(p);
    stack.push(...(children.get(p.pid) ?? []));
  }
  return out;
}

/** CPU seconds of a process tree, counting children that exited and were reaped (see the header). */
export async function treeCpuSeconds(root: number): Promise<number> {
  return treeOf(await allProcs(), root).reduce((sum, p) => sum + p.ticks, 0) / CLOCK_TICKS;
}

/** Private memory (Private_Clean + Private_Dirty + Private_Hugetlb) of one process in bytes; 0 if gone. */
export async function ussBytes(pid: number): Promise<number> {
  const text = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8').catch(() => '');
  let kb = 0;
  for (const match of text.matchAll(/^Private_\w+:\s+(\d+) kB/gm)) kb += Number(match[1]);
  return kb * 1024;
}

/** Samples the summed USS of `pids()` every `everyMs` until stopped; resolves with the peak in bytes. */
export function sampleUssPeak(pids: () => Promise<number[]>, everyMs = 100): { stop(): Promise<number> } {
  let peak = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const list = await pids().catch(() => []);
      let sum = 0;
      for (const pid of list) sum += await ussBytes(pid);
      peak = Math.max(peak, sum);
      await new Promise((resolve) => setTimeout(resolve, everyMs));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return peak;
    },
  };
}

export const FSYNC_CALLS = ['fsync', 'fdatasync', 'sync_file_range'];

/** strace in front of a command: counts the fsync family over the command and everything it forks. */
export function straceWrapper(outputFile: string): string[] {
  return ['strace', '-f', '-c', '-q', '--seccomp-bpf', '-e', `trace=${FSYNC_CALLS.join(',')}`, '-o', outputFile];
}

/** Sum of the fsync family's call counts in an `strace -c` summary. */
export async function fsyncCalls(summaryFile: string): Promise<number> {
  const text = await readFile(summaryFile, 'utf8');
  let calls = 0;
  for (const line of text.split('\n')) {
    const cols = line.trim().split(/\s+/);
    const name = cols[cols.length - 1];
    // Columns: % time, seconds, usecs/call, calls, [errors], syscall.
    if (FSYNC_CALLS.includes(name) && cols.length >= 5) calls += Number(cols[3]);
  }
  return calls;
}
