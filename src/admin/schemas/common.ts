/** Schemas shared by every admin route: the one error shape, timestamps, and list envelopes. */
import { Type } from '@sinclair/typebox';

/** Every error answer: `{ error, code, message }`, plus `field` for a refused input. */
export const ErrorResponse = Type.Object(
  {
    error: Type.String({ description: 'HTTP status text, e.g. "Bad Request"' }),
    code: Type.String({ description: 'stable SCANRELAY_* or FST_* code' }),
    message: Type.String(),
    field: Type.Optional(Type.String({ description: 'the refused input, e.g. "body.allowRecipients"' })),
  },
  { title: 'Error' },
);

/** An instant as an ISO 8601 string (UTC). */
export const IsoTime = (description?: string) => Type.String({ format: 'date-time', ...(description ? { description } : {}) });

/** Error answers a route can give, keyed by status code (for `schema.response`). */
export function errorResponses<C extends 400 | 401 | 404 | 409 | 500 | 503>(...codes: C[]): Record<C, typeof ErrorResponse> {
  const out = {} as Record<C, typeof ErrorResponse>;
  for (const code of codes) out[code] = ErrorResponse;
  return out;
}

/** OpenAPI security requirement of every /api route. */
export const BEARER_SECURITY = [{ bearerAuth: [] as string[] }];

export const NoContent = Type.Null({ description: 'no content' });

export function iso(ms: number): string;
export function iso(ms: number | undefined): string | undefined;
export function iso(ms: number | undefined): string | undefined {
  return ms === undefined ? undefined : new Date(ms).toISOString();
}
