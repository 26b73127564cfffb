/**
 * The testkit's load parts, as the benchmark uses them: the pipelining sender through a real gateway to
 * a counting upstream that keeps no bodies.
 */
import { describe, expect, it } from 'vitest';
import { sendGenerated, runConcurrent, percentile } from '../kit/smtp-load.js';
import { TEST_DEVICE, type UpstreamDelivery } from '../kit/upstream.js';
import { useDeliveryScenario } from '../kit/delivery-scenario.js';
import { waitFor } from '../kit/gateway.js';

describe('testkit load: sendGenerated -> gateway -> counting upstream', () => {
  const scenario = useDeliveryScenario();

  it('delivers generated bodies of the asked size, counted without keeping them', async () => {
    const seen: UpstreamDelivery[] = [];
    const { g, up } = await scenario.start({ mode: 'tls', keep: 'count', onMessage: (m) => seen.push(m) });
    const results = await runConcurrent(6, 3, (index) =>
      sendGenerated(g.smtpPort, {
        bytes: 150_000,
        from: 'printer@example.org',
        to: ['dest@example.org'],
        headers: `X-Bench-Tag: kit.${index}\r\n`,
        auth: { username: TEST_DEVICE.username, password: TEST_DEVICE.password },
      }),
    );
    expect(results.every((r) => r.reply.code === 250 && r.acceptMs > 0)).toBe(true);
    await waitFor(() => up.accepted === 6 || undefined, { what: 'six messages at the upstream' });
    expect(up.received).toHaveLength(0);
    expect(seen.map((m) => /X-Bench-Tag: (\S+)/.exec(m.head)?.[1]).sort()).toEqual([0, 1, 2, 3, 4, 5].map((i) => `kit.${i}`));
    // 150,000 rounded up to whole 80-byte lines, plus the header block the gateway passes on.
    expect(seen.every((m) => m.size > 150_000 && m.size < 160_000 && m.secure)).toBe(true);
    expect(percentile([3, 1, 2], 50)).toBe(2);
  });

  it('reports a refusal with the server’s words', async () => {
    const { g } = await scenario.start({ mode: 'tls', keep: 'count' });
    await expect(
      sendGenerated(g.smtpPort, {
        bytes: 1000,
        from: 'printer@example.org',
        to: ['dest@example.org'],
        auth: { username: TEST_DEVICE.username, password: 'wrong-password-1' },
      }),
    ).rejects.toThrow(/AUTH refused: 535/);
  });
});
