/**
 * Readers for the deployment files (Dockerfile, compose, Prometheus, Grafana, systemd) shared by the
 * test/deploy suites. Parsing only: no Docker engine, Prometheus or systemd is needed.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));

export function repoPath(...parts: string[]): string {
  return join(REPO, ...parts);
}

export function readRepoFile(...parts: string[]): string {
  return readFileSync(repoPath(...parts), 'utf8');
}

export function readYaml<T = Record<string, unknown>>(...parts: string[]): T {
  return parseYaml(readRepoFile(...parts)) as T;
}

export interface DockerInstruction {
  keyword: string;
  args: string;
}

/** Dockerfile instructions with continuation lines joined and comments dropped. */
export function parseDockerfile(text: string): DockerInstruction[] {
  const out: DockerInstruction[] = [];
  let pending = '';
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line.startsWith('#') || (!pending && line === '')) continue;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1).trim()} `;
      continue;
    }
    const full = (pending + line).trim();
    pending = '';
    if (!full) continue;
    const match = /^(\S+)\s*(.*)$/.exec(full)!;
    out.push({ keyword: match[1].toUpperCase(), args: match[2] });
  }
  return out;
}

/** Instructions of the last stage (the image that runs). */
export function finalStage(instructions: DockerInstruction[]): DockerInstruction[] {
  const lastFrom = instructions.map((i) => i.keyword).lastIndexOf('FROM');
  return instructions.slice(lastFrom + 1);
}

/** ENV a=b c=d (the only form our Dockerfile uses). */
export function parseEnvArgs(args: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const m of args.matchAll(/([A-Za-z_][A-Za-z0-9_.-]*)=("(?:[^"\\]|\\.)*"|\S*)/g)) {
    env[m[1]] = m[2].startsWith('"') ? (JSON.parse(m[2]) as string) : m[2];
  }
  return env;
}

/** A systemd unit as section -> key -> values (keys may repeat). */
export function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const section = /^\[(.+)\]$/.exec(line);
    if (section) {
      current = new Map();
      sections.set(section[1], current);
      continue;
    }
    const eq = line.indexOf('=');
    if (!current || eq < 0) throw new Error(`unit line outside a section or without "=": ${line}`);
    const key = line.slice(0, eq).trim();
    current.set(key, [...(current.get(key) ?? []), line.slice(eq + 1).trim()]);
  }
  return sections;
}

/** "60s", "1m30s", "2m" -> milliseconds (compose and systemd durations as we write them). */
export function durationMs(text: string): number {
  if (/^\d+$/.test(text.trim())) return Number(text) * 1000; // systemd: a bare number is seconds
  let total = 0;
  const re = /(\d+)\s*(ms|s|m|h)/g;
  let matched = '';
  for (const m of text.matchAll(re)) {
    total += Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
    matched += m[0];
  }
  if (!matched) throw new Error(`not a duration: ${text}`);
  return total;
}

/** Every `scanrelay_*` metric name a PromQL expression uses. */
export function metricNamesIn(expr: string): string[] {
  return [...new Set(expr.match(/\bscanrelay_[a-z0-9_]+/g) ?? [])];
}

export interface Selector {
  metric: string;
  matchers: Array<{ label: string; op: string; value: string }>;
}

/** `scanrelay_x{a="b", c=~"d|e"}` selectors in a PromQL expression. */
export function selectorsIn(expr: string): Selector[] {
  const out: Selector[] = [];
  for (const m of expr.matchAll(/\b(scanrelay_[a-z0-9_]+)\s*\{([^}]*)\}/g)) {
    const matchers = [...m[2].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"/g)].map((x) => ({ label: x[1], op: x[2], value: x[3] }));
    out.push({ metric: m[1], matchers });
  }
  return out;
}
