/**
 * A strict parser of the Prometheus text exposition format 0.0.4, for tests: it throws on anything a
 * Prometheus server would refuse (bad names, bad escapes, TYPE after samples, duplicate series,
 * scattered families, histograms without +Inf or with decreasing buckets).
 */

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface MetricFamily {
  name: string;
  type: MetricType;
  help?: string;
  samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set<MetricType>(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

export function parsePrometheusText(text: string): Map<string, MetricFamily> {
  const families = new Map<string, MetricFamily>();
  const seenSeries = new Set<string>();
  const closed = new Set<string>();
  let current: string | undefined;
  if (text.length > 0 && !text.endsWith('\n')) throw new Error('exposition must end with a newline');

  const lines = text.split('\n');
  lines.forEach((line, index) => {
    const where = `line ${index + 1}`;
    if (line === '') return;
    if (line.startsWith('#')) {
      const match = /^#\s+(HELP|TYPE)\s+(\S+)(?:\s(.*))?$/.exec(line);
      if (!match) return; // a plain comment
      const [, keyword, name, rest = ''] = match;
      if (!METRIC_NAME.test(name)) throw new Error(`${where}: bad metric name "${name}"`);
      const family = familyFor(families, name);
      if (family.samples.length > 0) throw new Error(`${where}: ${keyword} for ${name} after its samples`);
      if (keyword === 'HELP') {
        if (family.help !== undefined) throw new Error(`${where}: second HELP for ${name}`);
        family.help = unescapeHelp(rest, where);
      } else {
        if (!TYPES.has(rest as MetricType)) throw new Error(`${where}: unknown type "${rest}"`);
        if (family.typeSet) throw new Error(`${where}: second TYPE for ${name}`);
        family.type = rest as MetricType;
        family.typeSet = true;
      }
      return;
    }
    const sample = parseSample(line, where);
    const familyName = familyOf(sample.name, families);
    if (current !== familyName) {
      if (closed.has(familyName)) throw new Error(`${where}: samples of ${familyName} are not contiguous`);
      if (current) closed.add(current);
      current = familyName;
    }
    const key = `${sample.name}{${Object.entries(sample.labels)
      .sort()
      .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
      .join(',')}}`;
    if (seenSeries.has(key)) throw new Error(`${where}: duplicate series ${key}`);
    seenSeries.add(key);
    familyFor(families, familyName).samples.push(sample);
  });

  for (const family of families.values() as IterableIterator<MutableFamily>) {
    if (family.type === 'histogram') checkHistogram(family);
    delete family.typeSet;
  }
  return families;
}

interface MutableFamily extends MetricFamily {
  typeSet?: boolean;
}

function familyFor(families: Map<string, MetricFamily>, name: string): MutableFamily {
  let family = families.get(name) as MutableFamily | undefined;
  if (!family) {
    family = { name, type: 'untyped', samples: [] };
    families.set(name, family);
  }
  return family;
}

/** x_bucket / x_sum / x_count belong to family x when x is a histogram or summary. */
function familyOf(sampleName: string, families: Map<string, MetricFamily>): string {
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (!sampleName.endsWith(suffix)) continue;
    const base = sampleName.slice(0, -suffix.length);
    const type = families.get(base)?.type;
    if (type === 'histogram' || (type === 'summary' && suffix !== '_bucket')) return base;
  }
  return sampleName;
}

function parseSample(line: string, where: string): Sample {
  const nameMatch = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line);
  if (!nameMatch) throw new Error(`${where}: sample does not start with a metric name: ${line}`);
  const name = nameMatch[0];
  let pos = name.length;
  const labels: Record<string, string> = {};
  if (line[pos] === '{') {
    pos++;
    for (;;) {
      if (line[pos] === '}') {
        pos++;
        break;
      }
      const labelMatch = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(line.slice(pos));
      if (!labelMatch || !LABEL_NAME.test(labelMatch[0])) throw new Error(`${where}: bad label name at column ${pos + 1}`);
      const label = labelMatch[0];
      pos += label.length;
      if (line.slice(pos, pos + 2) !== '="') throw new Error(`${where}: expected =" after label ${label}`);
      pos += 2;
      let value = '';
      for (;;) {
        const ch = line[pos];
        if (ch === undefined) throw new Error(`${where}: unterminated label value`);
        if (ch === '"') {
          pos++;
          break;
        }
        if (ch === '\\') {
          const next = line[pos + 1];
          if (next === '\\') value += '\\';
          else if (next === '"') value += '"';
          else if (next === 'n') value += '\n';
          else throw new Error(`${where}: bad escape \\${next ?? ''} in label value`);
          pos += 2;
          continue;
        }
        value += ch;
        pos++;
      }
      if (label in labels) throw new Error(`${where}: label ${label} repeated`);
      labels[label] = value;
      if (line[pos] === ',') {
        pos++;
        continue;
      }
      if (line[pos] !== '}') throw new Error(`${where}: expected , or } at column ${pos + 1}`);
    }
  }
  if (line[pos] !== ' ' && line[pos] !== '\t') throw new Error(`${where}: expected whitespace before the value`);
  const parts = line
    .slice(pos)
    .trim()
    .split(/[ \t]+/);
  if (parts.length < 1 || parts.length > 2) throw new Error(`${where}: expected value [timestamp]`);
  const value = parseValue(parts[0], where);
  if (parts[1] !== undefined && !/^-?\d+$/.test(parts[1])) throw new Error(`${where}: bad timestamp ${parts[1]}`);
  return { name, labels, value };
}

function parseValue(text: string, where: string): number {
  if (/^nan$/i.test(text)) return Number.NaN; // prom-client prints "Nan"; Prometheus parses any case
  if (text === '+Inf' || text === 'Inf') return Number.POSITIVE_INFINITY;
  if (text === '-Inf') return Number.NEGATIVE_INFINITY;
  if (!/^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/.test(text)) throw new Error(`${where}: bad sample value "${text}"`);
  return Number(text);
}

function unescapeHelp(text: string, where: string): string {
  return text.replace(/\\(.?)/g, (_m, ch: string) => {
    if (ch === '\\') return '\\';
    if (ch === 'n') return '\n';
    throw new Error(`${where}: bad escape in HELP`);
  });
}

function checkHistogram(family: MetricFamily): void {
  const groups = new Map<string, { buckets: Array<[number, number]>; count?: number; sum?: number }>();
  for (const sample of family.samples) {
    const { le, ...rest } = sample.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    const group = groups.get(key) ?? { buckets: [] };
    groups.set(key, group);
    if (sample.name === `${family.name}_bucket`) {
      if (le === undefined) throw new Error(`${family.name}: bucket without le`);
      group.buckets.push([parseValue(le, family.name), sample.value]);
    } else if (sample.name === `${family.name}_count`) group.count = sample.value;
    else if (sample.name === `${family.name}_sum`) group.sum = sample.value;
    else throw new Error(`${family.name}: unexpected sample ${sample.name} in a histogram`);
  }
  for (const group of groups.values()) {
    const sorted = [...group.buckets].sort((a, b) => a[0] - b[0]);
    if (sorted.at(-1)?.[0] !== Number.POSITIVE_INFINITY) throw new Error(`${family.name}: no le="+Inf" bucket`);
    for (let i = 1; i < sorted.length; i++) if (sorted[i][1] < sorted[i - 1][1]) throw new Error(`${family.name}: buckets decrease`);
    if (group.count === undefined || group.sum === undefined) throw new Error(`${family.name}: missing _count or _sum`);
    if (group.count !== sorted.at(-1)![1]) throw new Error(`${family.name}: _count differs from the +Inf bucket`);
  }
}

/** Value of one series, or undefined when it is not exposed. */
export function sampleValue(families: Map<string, MetricFamily>, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const family of families.values()) {
    for (const sample of family.samples) {
      if (sample.name !== name) continue;
      const keys = Object.keys(sample.labels);
      if (keys.length === Object.keys(labels).length && keys.every((k) => sample.labels[k] === labels[k])) return sample.value;
    }
  }
  return undefined;
}

/** The value of one exposition line (`name{labels}` exactly as printed), or undefined when it is absent. */
export async function sampleLine(metrics: { registry: { metrics(): Promise<string> } }, line: string): Promise<number | undefined> {
  const text = await metrics.registry.metrics();
  const found = text.split('\n').find((l) => l.startsWith(`${line} `));
  return found === undefined ? undefined : Number(found.slice(line.length + 1));
}
