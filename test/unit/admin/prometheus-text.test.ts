import { describe, expect, it } from 'vitest';
import { Registry, Counter, Histogram } from 'prom-client';
import { parsePrometheusText, sampleValue } from './prometheus-text.js';

describe('strict Prometheus text parser (used by the /metrics tests)', () => {
  it('reads what prom-client writes, escapes and histograms included', async () => {
    const registry = new Registry();
    const counter = new Counter({ name: 't_total', help: 'a "help"\\ line\nwith newline', labelNames: ['device'], registers: [registry] });
    const histogram = new Histogram({ name: 't_seconds', help: 'h', buckets: [0.1, 1], registers: [registry] });
    counter.inc({ device: 'copier "2f"\\x' }, 3);
    histogram.observe(0.5);
    const families = parsePrometheusText(await registry.metrics());
    expect(families.get('t_total')?.type).toBe('counter');
    expect(families.get('t_total')?.help).toBe('a "help"\\ line\nwith newline');
    expect(sampleValue(families, 't_total', { device: 'copier "2f"\\x' })).toBe(3);
    expect(sampleValue(families, 't_seconds_bucket', { le: '1' })).toBe(1);
    expect(sampleValue(families, 't_seconds_count')).toBe(1);
  });

  it.each([
    ['a bad metric name', '9abc 1\n'],
    ['a bad value', 'abc one\n'],
    ['a bad escape in a label value', 'abc{a="\\x"} 1\n'],
    ['an unterminated label set', 'abc{a="1" 1\n'],
    ['a duplicate series', 'abc{a="1"} 1\nabc{a="1"} 2\n'],
    ['TYPE after the samples', 'abc 1\n# TYPE abc counter\n'],
    ['an unknown TYPE', '# TYPE abc countr\nabc 1\n'],
    ['scattered families', 'abc 1\nxyz 1\nabc{a="2"} 1\n'],
    ['a histogram without +Inf', '# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n'],
    ['decreasing buckets', '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n'],
    ['a missing final newline', 'abc 1'],
  ])('refuses %s', (_what, text) => {
    expect(() => parsePrometheusText(text)).toThrow();
  });
});
