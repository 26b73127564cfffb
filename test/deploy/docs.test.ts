/**
 * The deployment guides against the software: every SMTP reply scanrelay sends, every device and upstream
 * state, every config key, environment variable, API route and CLI command the guides name must exist,
 * and every link between the docs must resolve. A guide that drifts from the code fails here.
 */
import { describe, expect, it } from 'vitest';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { replies } from '../../src/inbound/index.js';
import { UPSTREAM_STATES } from '../../src/observability/metrics.js';
import { ConfigSchema } from '../../src/config/schema.js';
import { readRepoFile, repoPath } from './files.js';

const GUIDES = ['cli.md', 'deploy.md', 'gmail-special-purpose-account.md', 'printer-setup.md', 'troubleshooting.md'];
const guides = Object.fromEntries(GUIDES.map((name) => [name, readRepoFile('docs', name)]));
const troubleshooting = guides['troubleshooting.md'];
const allText = Object.values(guides).join('\n');

function sourceFiles(dir: string): string[] {
  return readdirSync(repoPath(dir), { withFileTypes: true }).flatMap((entry) => {
    const rel = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(rel);
    return entry.name.endsWith('.ts') ? [rel] : [];
  });
}
const sources = sourceFiles('src').map((file) => ({ file, text: readRepoFile(file) }));

/** GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens. */
function anchorsOf(markdown: string): Set<string> {
  return new Set(
    [...markdown.matchAll(/^#{1,6} (.+)$/gm)].map((m) =>
      m[1]
        .trim()
        .toLowerCase()
        .replace(/[^\p{L}\p{N} _-]/gu, '')
        .replace(/ /g, '-'),
    ),
  );
}

type ReplyEntry = { code: number; text: string } | ((...args: string[]) => { code: number; text: string });

describe('docs/troubleshooting.md', () => {
  it('explains every SMTP reply scanrelay sends to a printer', () => {
    const used = new Set(sources.filter((s) => !s.file.endsWith('replies.ts')).flatMap((s) => [...s.text.matchAll(/\breplies\.(\w+)/g)].map((m) => m[1])));
    expect(used.size).toBeGreaterThan(10);
    for (const [name, entry] of Object.entries(replies as unknown as Record<string, ReplyEntry>)) {
      if (!used.has(name)) continue;
      const reply = typeof entry === 'function' ? entry('someone@example.org', 'device') : entry;
      // "550 5.7.1 Relaying": code, enhanced code and the first word, which identify the reply in the table.
      const [enhanced, firstWord] = reply.text.split(' ');
      expect(troubleshooting, `reply ${name} (${reply.code} ${reply.text})`).toContain(`${reply.code} ${enhanced} ${firstWord}`);
    }
  });

  it("explains every device state, in the printer's words", () => {
    const states = [.../export type PrinterState = ([^;]+);/.exec(readRepoFile('src', 'devices', 'status.ts'))![1].matchAll(/'([^']+)'/g)].map((m) => m[1]);
    expect(states).toContain('Unable to connect');
    for (const state of states) {
      expect(troubleshooting, state).toContain(`**${state}**`);
      expect(guides['printer-setup.md'], state).toContain(`**${state}**`);
    }
  });

  it('explains every upstream state', () => {
    for (const state of UPSTREAM_STATES) expect(troubleshooting, state).toContain(`| **${state}** |`);
  });

  it('the CLI guide, the README and the console name every upstream state (the one list in delivery/upstream-states.ts)', () => {
    const cliStates = /state \(([^)]+)\)/.exec(guides['cli.md'])?.[1].split(/,\s*/) ?? [];
    expect([...cliStates].sort()).toEqual([...UPSTREAM_STATES].sort());
    const readmeStates = /`GET \/api\/upstreams[^|]*\| state \(([^)]+)\)/.exec(readRepoFile('README.md'))?.[1].split(/,\s*/) ?? [];
    expect([...readmeStates].sort()).toEqual([...UPSTREAM_STATES].sort());
    const console = readRepoFile('src', 'console', 'public', 'ui.js');
    for (const state of UPSTREAM_STATES) expect(console, `console badge for ${state}`).toMatch(new RegExp(`(^|\\s)'?${state}'?: '`, 'm'));
  });

  it('covers wrong app password, 465 vs 587, From rewriting, message too large and the firewall', () => {
    for (const needle of ['535-5.7.8', '534-5.7.9', '## 465 or 587', '## Gmail From rewriting', '## Message too large', '## Firewall', '552-5.3.4']) {
      expect(troubleshooting).toContain(needle);
    }
  });
});

describe('the guides against the code', () => {
  it('name only config keys the schema has, and log events the code logs', () => {
    const code = sources.map((s) => s.text).join('\n');
    const dotted = [...allText.matchAll(/`((?:smtp|admin|delivery|pop3|log|upstream|queue)\.[a-zA-Z.-]+)`/g)]
      .map((m) => m[1])
      .filter((token) => !/\.(com|org|edu|net|lan)$/.test(token)); // smtp.gmail.com is a host
    // A quoted string in src is a log event name (smtp.auth.failed, upstream.auto.selected); the rest are keys.
    // upstreams.ts logs state changes as `upstream.${state}`.
    const isStateEvent = (token: string) =>
      code.includes('`upstream.${next}`') && (UPSTREAM_STATES as readonly string[]).includes(token.replace(/^upstream\./, ''));
    const events = dotted.filter((token) => code.includes(`'${token}'`) || isStateEvent(token));
    const keys = new Set(dotted.filter((token) => !events.includes(token)));
    expect(events.length).toBeGreaterThan(3);
    expect(keys.size).toBeGreaterThan(5);
    for (const key of keys) {
      let schema: { properties?: Record<string, unknown> } | undefined = ConfigSchema as unknown as { properties: Record<string, unknown> };
      for (const part of key.split('.')) schema = schema?.properties?.[part] as typeof schema;
      expect(schema, `config key ${key}`).toBeDefined();
    }
  });

  it('name only SCANRELAY_* environment variables the code reads', () => {
    const names = new Set([...allText.matchAll(/\bSCANRELAY_[A-Z_]+\b/g)].map((m) => m[0]));
    const code = sources.map((s) => s.text).join('\n') + readRepoFile('Dockerfile');
    for (const name of names) expect(code, name).toContain(name);
  });

  it('name only admin API routes that exist', () => {
    // "GET /api/devices/:name" -> ['GET', 'api', 'devices', ':name']; `${action}` routes are built from a list.
    const routes = sources
      .filter((s) => s.file.includes(join('src', 'admin')))
      .flatMap((s) => [...s.text.matchAll(/app\.(get|post|patch|delete|put)\(\s*[`'](\/[^`']+)[`']/g)])
      .map((m) => [m[1].toUpperCase(), ...m[2].split('/').filter(Boolean)]);
    expect(routes.length).toBeGreaterThan(15);
    const mentioned = [...allText.matchAll(/\b(GET|POST|PATCH|DELETE|PUT) (\/[A-Za-z0-9/_.:-]+)/g)];
    expect(mentioned.length).toBeGreaterThan(5);
    for (const [, method, path] of mentioned) {
      const wanted = [method, ...path.split('/').filter(Boolean)];
      const exists = routes.some(
        (route) => route.length === wanted.length && route.every((segment, i) => segment === wanted[i] || segment.startsWith(':') || segment === '${action}'),
      );
      expect(exists, `${method} ${path}`).toBe(true);
    }
  });

  it('use only CLI commands the CLI has', () => {
    const usage = /const USAGE = `([\s\S]*?)`;/.exec(readRepoFile('src', 'cli', 'run.ts'))![1];
    const commands = [...allText.matchAll(/(?:`scanrelay|cli\/index\.js|npm run cli --) (device|queue|upstream|lockout) (\w+)/g)];
    expect(commands.length).toBeGreaterThan(5);
    for (const [, group, action] of commands) {
      expect(usage, `${group} ${action}`).toMatch(new RegExp(`\\b${group} (?:[^\\n]*\\| )?${action}\\b|\\b${group} [^\\n]*\\| ${action}\\b`));
    }
  });

  it('give a CLI command for every admin API route (docs/cli.md names each route it calls)', () => {
    // Routes registered in a loop over actions: devices enable/disable, messages retry/release.
    const actionsOf = (path: string) => (path.startsWith('/api/messages/') ? ['retry', 'release'] : ['enable', 'disable']);
    // "`/api/devices/:name` (GET)" in docs/cli.md, against every /api route in src/admin.
    const documented = new Set([...guides['cli.md'].matchAll(/`(\/api\/[A-Za-z0-9/_.:-]+)` \((GET|POST|PATCH|DELETE|PUT)\b/g)].map((m) => `${m[2]} ${m[1]}`));
    const routes = sources
      .filter((s) => s.file.includes(join('src', 'admin')))
      .flatMap((s) => [...s.text.matchAll(/app\.(get|post|patch|delete|put)\(\s*[`'](\/api\/[^`']+)[`']/g)])
      .flatMap((m) => (m[2].includes('${action}') ? actionsOf(m[2]).map((a) => [m[1], m[2].replace('${action}', a)]) : [[m[1], m[2]]]))
      .map(([method, path]) => `${method.toUpperCase()} ${path.replace(/:\w+/g, (p) => p)}`);
    expect(routes.length).toBeGreaterThan(15);
    for (const route of routes) expect(documented, route).toContain(route);
  });

  it('link only to files and headings that exist', () => {
    for (const [name, text] of Object.entries(guides)) {
      for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^[a-z]+:/.test(target)) continue;
        const [file, anchor] = target.split('#');
        const path = file ? join(repoPath('docs'), file) : repoPath('docs', name);
        expect(existsSync(path), `${name} -> ${target}`).toBe(true);
        if (anchor && path.endsWith('.md')) {
          const linked = file ? readRepoFile('docs', ...file.split('/')) : text;
          expect(anchorsOf(linked), `${name} -> ${target}`).toContain(anchor);
        }
      }
    }
  });

  it('give deploy paths that exist in the repository', () => {
    const paths = new Set([...allText.matchAll(/`((?:deploy|scripts|config)\/[A-Za-z0-9_./-]+)`/g)].map((m) => m[1]));
    expect(paths.size).toBeGreaterThan(4);
    for (const path of paths) {
      const generic = path.includes('<') || path.endsWith('.txt');
      expect(existsSync(repoPath(generic ? dirname(path) : path)), path).toBe(true);
    }
  });
});
