/**
 * OAuth2 access tokens for XOAUTH2 upstreams (Gmail, Microsoft 365): one cache per upstream, refreshed
 * with the refresh token at the token endpoint when missing, expiring, or refused by the server.
 * nodemailer does the SASL XOAUTH2 exchange and asks us for tokens through `provisionCallback`.
 *
 * A refused refresh token (invalid_grant: revoked, expired, password changed) or client is permanent:
 * the error carries `tokenRejected`, and classify.ts turns it into the upstream state auth-failed.
 * Tokens and secrets are never logged.
 */
import type { Logger } from '../observability/logger.js';

export const GOOGLE_TOKEN_URL = 'https://oauth2.googleapis.com/token';
/** Refresh this long before the announced expiry, so a token never runs out mid-session. */
const EXPIRY_MARGIN_MS = 60_000;
/** Errors of RFC 6749 §5.2 that no retry will fix. */
const PERMANENT_ERRORS = new Set(['invalid_grant', 'invalid_client', 'unauthorized_client', 'unsupported_grant_type', 'invalid_scope']);

export interface OAuth2Settings {
  user: string;
  clientId: string;
  clientSecret?: string;
  refreshToken?: string;
  tokenUrl?: string;
  scope?: string;
  requestTimeoutMs: number;
}

export interface AccessToken {
  accessToken: string;
  /** Epoch ms; 0 when unknown. */
  expires: number;
}

export class OAuth2TokenError extends Error {
  readonly code = 'EOAUTH2';
  constructor(
    message: string,
    readonly tokenRejected: boolean,
  ) {
    super(message);
    this.name = 'OAuth2TokenError';
  }
}

export class OAuth2TokenProvider {
  private current?: AccessToken;
  private refreshing?: Promise<AccessToken>;
  private refreshToken?: string;

  constructor(
    private readonly settings: OAuth2Settings,
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.refreshToken = settings.refreshToken;
  }

  get tokenUrl(): string {
    return this.settings.tokenUrl ?? GOOGLE_TOKEN_URL;
  }

  /** A valid access token; `renew` forces a new one (the server refused the cached one). */
  async getAccessToken(renew: boolean): Promise<AccessToken> {
    const current = this.current;
    if (!renew && current && (current.expires === 0 || current.expires - EXPIRY_MARGIN_MS > this.now())) return current;
    this.refreshing ??= this.refresh().finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  /** nodemailer's provisionCallback shape. */
  readonly provision = (_user: string, renew: boolean, callback: (err: Error | null, accessToken?: string, expires?: number) => void): void => {
    this.getAccessToken(renew).then(
      (token) => callback(null, token.accessToken, token.expires),
      (err: Error) => callback(err),
    );
  };

  private async refresh(): Promise<AccessToken> {
    if (!this.refreshToken) throw new OAuth2TokenError('no OAuth2 refresh token configured', true);
    const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: this.refreshToken, client_id: this.settings.clientId });
    if (this.settings.clientSecret) form.set('client_secret', this.settings.clientSecret);
    if (this.settings.scope) form.set('scope', this.settings.scope);

    let response: Response;
    try {
      response = await fetch(this.tokenUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: form.toString(),
        signal: AbortSignal.timeout(this.settings.requestTimeoutMs),
      });
    } catch (err) {
      throw new OAuth2TokenError(`OAuth2 token endpoint ${this.tokenUrl} unreachable: ${(err as Error).message}`, false);
    }
    const data = (await response.json().catch(() => undefined)) as Record<string, unknown> | undefined;
    const errorCode = typeof data?.error === 'string' ? data.error : undefined;
    if (!response.ok || errorCode) {
      const description = typeof data?.error_description === 'string' ? ` (${data.error_description.slice(0, 200)})` : '';
      const permanent = errorCode !== undefined && PERMANENT_ERRORS.has(errorCode);
      const what = permanent ? 'refused the refresh token or client' : 'failed';
      throw new OAuth2TokenError(`OAuth2 token endpoint ${what}: HTTP ${response.status} ${errorCode ?? ''}${description}`.trim(), permanent);
    }
    const accessToken = typeof data?.access_token === 'string' ? data.access_token : undefined;
    if (!accessToken) throw new OAuth2TokenError('OAuth2 token endpoint answered without an access_token', false);
    const expiresIn = Number(data?.expires_in);
    this.current = { accessToken, expires: Number.isFinite(expiresIn) && expiresIn > 0 ? this.now() + expiresIn * 1000 : 0 };
    if (typeof data?.refresh_token === 'string' && data.refresh_token !== this.refreshToken) {
      // Microsoft rotates refresh tokens; the new one is kept in memory (the config file is not rewritten).
      this.refreshToken = data.refresh_token;
      this.logger.info({ user: this.settings.user }, 'upstream.oauth2.refresh-token-rotated');
    }
    this.logger.debug({ user: this.settings.user, expiresInSeconds: Number.isFinite(expiresIn) ? expiresIn : undefined }, 'upstream.oauth2.token-refreshed');
    return this.current;
  }
}
