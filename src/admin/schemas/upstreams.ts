/** Schemas of /api/upstreams. Upstream passwords and OAuth2 secrets never appear. */
import { Type, type Static } from '@sinclair/typebox';
import { UPSTREAM_STATES } from '../../delivery/index.js';
import { IsoTime } from './common.js';

export const UpstreamParams = Type.Object({ name: Type.String({ minLength: 1, maxLength: 63 }) });

export const UpstreamView = Type.Object(
  {
    name: Type.String(),
    host: Type.String(),
    port: Type.Integer(),
    security: Type.Union([Type.Literal('tls'), Type.Literal('starttls'), Type.Literal('auto')]),
    user: Type.String({ description: 'the upstream account (not secret); its password is never shown' }),
    auth: Type.Union([Type.Literal('password'), Type.Literal('oauth2')]),
    state: Type.Union(UPSTREAM_STATES.map((s) => Type.Literal(s))),
    lastSuccessAt: Type.Optional(IsoTime()),
    lastError: Type.Optional(
      Type.Object({
        at: IsoTime(),
        message: Type.String(),
        code: Type.Optional(Type.String()),
        responseCode: Type.Optional(Type.Integer()),
      }),
    ),
    waiting: Type.Integer({ description: 'messages waiting for this upstream' }),
    activePort: Type.Optional(Type.Integer({ description: 'the endpoint in use (security auto: the one that worked)' })),
    activeSecurity: Type.Optional(Type.Union([Type.Literal('tls'), Type.Literal('starttls')])),
    pausedUntil: Type.Optional(IsoTime('paused (quota, rate limit, TLS failure) until')),
    inFlight: Type.Optional(Type.Integer({ description: 'deliveries running now' })),
    held: Type.Optional(Type.Integer({ description: 'messages held because the credentials were refused' })),
    securityChosen: Type.Optional(
      Type.Union([Type.Literal('tls'), Type.Literal('starttls')], { description: 'what security auto picked (kept across restarts)' }),
    ),
    quotaPausedUntil: Type.Optional(IsoTime('a quota pause ends at')),
    sentToday: Type.Integer({ description: "messages delivered since midnight in the gateway's timeZone" }),
    dailyLimit: Type.Optional(Type.Integer({ description: "ratePerDay, or Gmail's documented 2,000 for Workspace when unset" })),
  },
  { title: 'Upstream' },
);
export type UpstreamViewT = Static<typeof UpstreamView>;

export const UpstreamList = Type.Object({ items: Type.Array(UpstreamView), total: Type.Integer() });

export const UpstreamCheck = Type.Object(
  {
    ok: Type.Boolean(),
    port: Type.Optional(Type.Integer({ description: 'port actually used' })),
    security: Type.Optional(Type.Union([Type.Literal('tls'), Type.Literal('starttls')])),
    response: Type.Optional(Type.String({ description: "the upstream's answer" })),
    error: Type.Optional(Type.Object({ message: Type.String(), code: Type.Optional(Type.String()), responseCode: Type.Optional(Type.Integer()) })),
    durationMs: Type.Number(),
  },
  { title: 'UpstreamCheck' },
);

export const UpstreamRetried = Type.Object({
  released: Type.Integer({ description: 'held messages released for delivery' }),
});

export const UpstreamTestBody = Type.Object(
  {
    to: Type.String({ format: 'email', maxLength: 320, description: 'where the test message goes' }),
  },
  { additionalProperties: false },
);
