/**
 * The admin API never writes a secret from a URL to the log: a token sent as `?token=` is refused (401)
 * and neither it nor the value of any secret-bearing query key (nor a bare token as the whole query)
 * reaches a log line, through inject and over real HTTP.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { urlForLog } from '../../src/admin/index.js';
import { startTestGateway, type TestGateway } from '../kit/gateway.js';

const TOKEN = 'test-admin-token-0123456789';
const LEAKED = 'pasted-token-value-9f8e7d6c5b4a';

let gw: TestGateway | undefined;
afterEach(async () => {
  await gw?.stop();
  gw = undefined;
});

describe('admin request logs', () => {
  it.each(['inject', 'http'] as const)('keep secrets in query strings out of the log (%s)', async (transport) => {
    gw = await startTestGateway();
    const admin = gw.gateway.admin;
    if (!admin) throw new Error('admin API not started');
    const base = `http://127.0.0.1:${gw.addresses.admin?.port}`;
    const call = async (url: string, token?: string): Promise<number> => {
      const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
      if (transport === 'inject') return (await admin.inject({ method: 'GET', url, headers })).statusCode;
      return (await fetch(base + url, { headers })).status;
    };

    expect(await call(`/api/devices?token=${LEAKED}`)).toBe(401);
    expect(await call(`/api/devices?access_token=${LEAKED}&limit=5`)).toBe(401);
    // accepted or refused (400: not a parameter of the route), the log line is written either way
    await call(`/api/messages?device=warren-2f&password=${LEAKED}`, TOKEN);
    expect(await call(`/api/devices?${LEAKED}`, TOKEN)).toBe(200);
    await call(`/api/messages?device=warren-2f&apiKey=${encodeURIComponent(`${LEAKED} x`)}`, TOKEN);

    const logs = gw.logs.join('\n');
    expect(logs).toContain('admin.auth.refused');
    expect(logs).toContain('/api/devices?token=[redacted]');
    expect(logs).toContain('device=warren-2f');
    expect(logs).not.toContain(LEAKED);
    expect(logs).not.toContain(TOKEN);
  });

  it('urlForLog keeps paths and plain parameters, and hides secret values and odd keys', () => {
    expect(urlForLog('/api/devices')).toBe('/api/devices');
    expect(urlForLog('/api/messages?state=held&state=failed&limit=5')).toBe('/api/messages?state=held&state=failed&limit=5');
    expect(urlForLog('/api/x?Token=a&secret=b&sessionId=c&sig=d&authorization=e')).toBe(
      '/api/x?Token=[redacted]&secret=[redacted]&sessionId=[redacted]&sig=[redacted]&authorization=[redacted]',
    );
    expect(urlForLog('/api/x?eyJhbGciOiJIUzI1NiJ9.payload.sig')).toBe('/api/x?[redacted]');
    expect(urlForLog('/api/x?eyJhbGciOiJIUzI1NiJ9=1&state=held')).toBe('/api/x?[redacted]&state=held');
    expect(urlForLog('/api/x?subject=two%20words')).toBe('/api/x?subject=two%20words');
  });
});
