import { describe, expect, it } from 'vitest';
import { describeUpstreamError } from '../../../src/delivery/classify.js';

describe('describeUpstreamError', () => {
  it('says at which stage a timeout happened and which settings bound it', () => {
    expect(describeUpstreamError({ message: 'Timeout', code: 'ETIMEDOUT', command: 'DATA' })).toBe(
      'Timeout: no answer from the upstream after DATA (upstreams[].connectionTimeout / socketTimeout)',
    );
    expect(describeUpstreamError({ message: 'Connection timeout', code: 'ETIMEDOUT', command: 'CONN' })).toMatch(/while connecting/);
  });

  it('hints at 465 vs 587 when TLS meets a plaintext greeting', () => {
    const text = describeUpstreamError({
      message: 'write EPROTO ...:ssl3_get_record:wrong version number',
      code: 'ESOCKET',
      originalCode: 'ERR_SSL_WRONG_VERSION_NUMBER',
    });
    // The hint leads; the raw OpenSSL text only follows it.
    expect(text).toMatch(/^TLS handshake failed: this port expects the other security mode \(465 = security: tls, 587 = security: starttls\)\. Details: /);
    expect(text.indexOf('465')).toBeLessThan(text.indexOf('wrong version number'));
  });

  it('keeps the upstream reply as it is for ordinary refusals', () => {
    expect(describeUpstreamError({ message: 'x', code: 'EENVELOPE', responseCode: 550, response: '550 5.1.1 no such user' })).toBe('550 5.1.1 no such user');
  });
});
