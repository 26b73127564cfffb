/** Schemas of the health, readiness, lock-out and reload routes. */
import { Type } from '@sinclair/typebox';
import { IsoTime } from './common.js';

export const Health = Type.Object({ status: Type.Literal('ok'), uptimeSeconds: Type.Number() });

export const Readiness = Type.Object({
  status: Type.Union([Type.Literal('ready'), Type.Literal('not-ready')]),
  checks: Type.Object({
    smtp: Type.Boolean({ description: 'the SMTP listener is accepting connections' }),
    dataDir: Type.Boolean({ description: 'the data directory is writable' }),
    store: Type.Boolean({ description: 'the queue store is open' }),
  }),
  importing: Type.Optional(
    Type.String({ description: 'the old file journal is being imported in the background ("importing, N of M"); mail is accepted meanwhile' }),
  ),
});

export const LockoutList = Type.Object({
  items: Type.Array(Type.Object({ address: Type.String(), until: IsoTime('locked until') })),
  total: Type.Integer(),
});

export const LockoutParams = Type.Object({ address: Type.String({ minLength: 2, maxLength: 64, description: 'IPv4 or IPv6 address' }) });

export const ReloadResult = Type.Object({
  status: Type.Literal('reloaded'),
  devices: Type.Integer(),
  upstreams: Type.Integer(),
});

export const PrometheusText = Type.String({ description: 'Prometheus text exposition format 0.0.4' });
