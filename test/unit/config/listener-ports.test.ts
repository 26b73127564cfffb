/** Two listeners on one port are refused when the file is loaded (check-config, start, reload); port 0 never clashes. */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/index.js';
import { ConfigError } from '../../../src/shared/errors.js';

const FILE = '/etc/scanrelay/gateway.yaml';

function problems(text: string): Array<{ keyPath: string; problem: string }> {
  try {
    parseConfig(text, FILE, {});
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return [...(err as ConfigError).problems];
  }
  return [];
}

describe('listener ports', () => {
  it.each([
    ['smtp: { port: 2525 }\npop3: { enabled: true, port: 2525 }\n', 'pop3.port', 'smtp.port'],
    ['smtp: { port: 8025 }\n', 'admin.port', 'smtp.port'],
    ['smtp: { port: 2525, tlsPort: 2525 }\n', 'smtp.tlsPort', 'smtp.port'],
    ['pop3: { enabled: true, port: 8025 }\n', 'admin.port', 'pop3.port'],
  ])('refuses the same port twice: %j', (text, keyPath, other) => {
    const [problem] = problems(text);
    expect(problem.keyPath).toBe(keyPath);
    expect(problem.problem).toContain(other);
    expect(problem.problem).toMatch(/already used/);
  });

  it('accepts port 0 more than once, a disabled listener on a used port, and the same port on two distinct addresses', () => {
    expect(problems('smtp: { port: 0, tlsPort: 0 }\npop3: { enabled: true, port: 0 }\nadmin: { port: 0 }\n')).toEqual([]);
    expect(problems('smtp: { port: 2525 }\npop3: { enabled: false, port: 2525 }\nadmin: { enabled: false, port: 2525 }\n')).toEqual([]);
    expect(problems('smtp: { host: 10.0.0.5, port: 8025 }\nadmin: { host: 127.0.0.1, port: 8025 }\n')).toEqual([]);
    expect(problems('smtp: { host: 0.0.0.0, port: 8025 }\nadmin: { host: 127.0.0.1, port: 8025 }\n')[0].keyPath).toBe('admin.port');
  });
});
