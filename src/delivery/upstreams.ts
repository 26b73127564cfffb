/**
 * One upstream account: its nodemailer transport, the endpoint in use (tls 465 / starttls 587 / auto),
 * its state (upstream-states.ts: the states and which changes are allowed), pause and pacing.
 *
 * Transport: a nodemailer pool per upstream on the SMTP client thread (smtp-thread.ts; credentials are
 * fixed per pool, so new settings get a new pool), maxConnections from the
 * config, maxRequeues 0. The pool reuses TLS sessions for bursts of scans to the same account, which is
 * the common case; requeues are off because a connection lost mid-send may already have delivered the
 * message, and our durable queue decides about retries itself (FACTS §2.3).
 *
 * Security: tls = implicit TLS; starttls = requireTLS (STARTTLS or nothing, never plaintext); auto = probe
 * implicit TLS on tlsPort, then STARTTLS on starttlsPort, remember what worked. forceAuth: a server that
 * does not offer AUTH gets an AUTH attempt anyway and fails, so mail never leaves unauthenticated.
 */
import type { SavedUpstreamState } from '../store/tables.js';
import type { DeliveryConfig, UpstreamConfig } from '../config/index.js';
import type { GatewayEventBus } from '../shared/events.js';
import type { Logger } from '../observability/logger.js';
import { nextRetryDelay } from '../queue/index.js';
import { classifyUpstreamError, describeUpstreamError, type UpstreamErrorLike } from './classify.js';
import { OAuth2TokenProvider } from './oauth2.js';
import { Pacing } from './pacing.js';
import type { SmtpThread } from './smtp-thread.js';
import { errorFrom, type MailSpec, type TransportSpec } from './smtp-thread-protocol.js';
import { assertUpstreamTransition, canUpstreamTransition, type UpstreamState } from './upstream-states.js';

export interface Endpoint {
  port: number;
  security: 'tls' | 'starttls';
}

/** One message to send; MAIL FROM is always the upstream's account, so the caller does not give it. */
export type OutgoingMail = Omit<MailSpec, 'from'>;

/** A nodemailer error as thrown by sendMail/verify. */
export type UpstreamSendError = Error & UpstreamErrorLike & { recipient?: string; rejected?: string[]; rejectedErrors?: UpstreamSendError[] };

export interface SendResult {
  accepted: string[];
  rejected: string[];
  rejectedErrors: UpstreamSendError[];
  response: string;
}

export interface UpstreamDeps {
  logger: Logger;
  /** Where upstream.added and upstream.state-changed go (metrics subscribe in app.ts). */
  events: GatewayEventBus;
  /** EHLO name. */
  hostname: string;
  now: () => number;
  /** The upstream accepted a login again after refusing its credentials: held messages may go. */
  onCredentialsAccepted?: () => void;
  /** Keeps what `auto` chose and a quota pause across restarts (the store's upstream_state table). */
  persistence?: UpstreamStatePersistence;
  /** Where nodemailer runs: the SMTP client thread, shared by all upstreams. */
  smtp: SmtpThread;
}

/** What an upstream keeps across a restart (the store owns its shape). */
export type { SavedUpstreamState };

export interface UpstreamStatePersistence {
  load(name: string): SavedUpstreamState | undefined;
  save(name: string, state: SavedUpstreamState): void;
}

const DAY_MS = 24 * 60 * 60 * 1000;
const GREETING_TIMEOUT_MS = 30_000;

export class Upstream {
  state: UpstreamState = 'unknown';
  lastSuccessAt?: number;
  lastError?: { at: number; message: string; code?: string; responseCode?: number };
  /** Deliveries running now (the worker keeps this <= maxConnections). */
  busy = 0;
  pausedUntil?: number;
  pacing: Pacing;
  /** The endpoint in use (for auto: the one that worked). */
  endpoint?: Endpoint;
  private pauseLevel = 0;
  /** The SMTP thread's pooled transport in use: its key changes with the endpoint and the settings. */
  private transport?: { endpoint: Endpoint; key: string };
  private transportGeneration = 0;
  private probing?: Promise<Endpoint>;
  private tokens?: OAuth2TokenProvider;
  private readonly logger: Logger;

  constructor(
    public config: UpstreamConfig,
    private readonly deps: UpstreamDeps,
  ) {
    this.logger = deps.logger.child({ upstream: config.name });
    this.pacing = new Pacing(config.ratePerMinute, config.ratePerDay);
    this.tokens = this.createTokenProvider();
    if (config.security !== 'auto') this.endpoint = { port: config.port, security: config.security };
    this.restore(deps.now());
    deps.events.emit('upstream.added', { upstream: config.name, state: this.state });
  }

  /** What `auto` chose and a pause still running, from before the restart (same settings only). */
  private restore(now: number): void {
    const saved = this.deps.persistence?.load(this.config.name);
    if (!saved || saved.configKey !== this.configKey()) return;
    if (this.config.security === 'auto' && saved.securityChosen && saved.portChosen) this.endpoint = { port: saved.portChosen, security: saved.securityChosen };
    if (saved.pausedUntil !== undefined && saved.pausedUntil > now) {
      this.pausedUntil = saved.pausedUntil;
      this.pauseLevel = saved.pauseLevel ?? 1;
      this.state = 'quota-paused';
    }
  }

  private persist(): void {
    this.deps.persistence?.save(this.config.name, {
      configKey: this.configKey(),
      securityChosen: this.config.security === 'auto' ? this.endpoint?.security : undefined,
      portChosen: this.config.security === 'auto' ? this.endpoint?.port : undefined,
      pausedUntil: this.pausedUntil,
      pauseLevel: this.pauseLevel,
    });
  }

  private configKey(): string {
    const c = this.config;
    return JSON.stringify([c.host, c.security, c.port, c.tlsPort, c.starttlsPort, c.user]);
  }

  get name(): string {
    return this.config.name;
  }

  /** New settings (credentials fixed, host changed...): start over with a fresh transport and state. */
  reconfigure(config: UpstreamConfig): void {
    this.closeTransport(false);
    this.config = config;
    this.pacing = new Pacing(config.ratePerMinute, config.ratePerDay);
    this.tokens = this.createTokenProvider();
    this.endpoint = config.security === 'auto' ? undefined : { port: config.port, security: config.security };
    this.resume();
    this.lastError = undefined;
    this.setState('unknown');
  }

  /** Clears a pause (admin retry, new config); the state is decided by the next attempt. */
  resume(): void {
    const wasPaused = this.pausedUntil !== undefined;
    this.pausedUntil = undefined;
    this.pauseLevel = 0;
    if (wasPaused) this.persist();
  }

  /** Forget failure state and pause (admin retry); the next attempt decides the state. */
  reset(): void {
    this.resume();
    this.setState('unknown');
  }

  /** Earliest time a new message may start: after a pause and within the pacing limits. */
  blockedUntil(now: number): number {
    return Math.max(this.pausedUntil ?? 0, this.pacing.nextAllowedAt(now));
  }

  /** Pauses the upstream: short = back-off from retryBase, long = the daily window (retryMax doubling, at most 24 h). */
  pause(kind: 'short' | 'long', delivery: DeliveryConfig, now: number): number {
    // Attempts in flight on other connections report the same refusal: only the first one backs off further.
    if (this.pausedUntil !== undefined && this.pausedUntil > now) return this.pausedUntil;
    this.pauseLevel++;
    const duration =
      kind === 'long'
        ? Math.min(DAY_MS, delivery.retryMaxMs * 2 ** (this.pauseLevel - 1))
        : nextRetryDelay(this.pauseLevel, delivery.retryBaseMs, delivery.retryMaxMs);
    this.pausedUntil = now + duration;
    this.persist();
    return this.pausedUntil;
  }

  /**
   * The upstream answered 250 (or, with `loginOnly`, accepted a login). A login alone says nothing about a
   * sending quota, so it lifts only a pause that was about TLS.
   */
  noteSuccess(now: number, { loginOnly = false } = {}): void {
    const credentialsWereRefused = this.state === 'auth-failed';
    if (!loginOnly || this.state === 'tls-failed') this.resume();
    if (!loginOnly) this.lastSuccessAt = now;
    this.setState(loginOnly && this.pausedUntil !== undefined && this.pausedUntil > now ? this.state : 'up');
    if (credentialsWereRefused) this.deps.onCredentialsAccepted?.();
  }

  /** An attempt or check failed; `state` is what the failure says about the upstream (classify.ts). */
  noteFailure(err: UpstreamErrorLike, state: UpstreamState | undefined, now: number): void {
    this.lastError = { at: now, message: describeUpstreamError(err), code: err.code, responseCode: err.responseCode };
    // A failure never lifts auth-failed (upstream-states.ts): the refusal stands until proof or a change.
    if (state && this.state !== 'auth-failed' && canUpstreamTransition(this.state, state)) this.setState(state, this.lastError.message);
  }

  async send(mail: OutgoingMail): Promise<SendResult> {
    const endpoint = await this.resolveEndpoint();
    // MAIL FROM is always the account: Gmail only sends as the authenticated user.
    const spec: MailSpec = { ...mail, from: this.config.user };
    try {
      const outcome = await this.deps.smtp.send(this.transportFor(endpoint), this.transportSpec(endpoint), spec, this.tokens?.provision);
      return { ...outcome, rejectedErrors: outcome.rejectedErrors.map((facts) => errorFrom(facts) as UpstreamSendError) };
    } catch (err) {
      this.forgetEndpointAfter(err as UpstreamSendError);
      throw err;
    }
  }

  /** Connect, TLS, AUTH, QUIT (admin "verify"); resolves with the endpoint used. */
  async verify(): Promise<Endpoint> {
    const endpoint = await this.resolveEndpoint();
    try {
      await this.deps.smtp.verify(this.transportFor(endpoint), this.transportSpec(endpoint), this.tokens?.provision);
    } catch (err) {
      this.forgetEndpointAfter(err as UpstreamSendError);
      throw err;
    }
    return endpoint;
  }

  close(force = false): void {
    this.closeTransport(force);
  }

  // ---- internals ----

  private setState(next: UpstreamState, reason?: string): void {
    if (next === this.state) return;
    const previous = this.state;
    assertUpstreamTransition(this.name, previous, next);
    this.state = next;
    this.deps.events.emit('upstream.state-changed', { upstream: this.name, previous, state: next, reason });
    const facts = { previous, state: next, host: this.config.host, user: this.config.user, reason };
    switch (next) {
      case 'auth-failed':
        this.logger.error(
          {
            ...facts,
            action: `fix the ${this.config.auth === 'oauth2' ? 'OAuth2 refresh token' : 'password'} of upstream '${this.name}' and reload the config; its messages are held until then`,
          },
          'upstream.auth-failed',
        );
        break;
      case 'tls-failed':
        this.logger.error(
          { ...facts, action: 'check the upstream host, port, security and tls settings; messages wait and the upstream is re-tried with back-off' },
          'upstream.tls-failed',
        );
        break;
      case 'unreachable':
      case 'quota-paused':
        this.logger.warn({ ...facts, pausedUntil: this.pausedUntil }, `upstream.${next}`);
        break;
      default:
        this.logger.info(facts, `upstream.${next}`);
    }
  }

  private createTokenProvider(): OAuth2TokenProvider | undefined {
    const oauth2 = this.config.auth === 'oauth2' ? this.config.oauth2 : undefined;
    if (!oauth2) return undefined;
    return new OAuth2TokenProvider(
      {
        user: this.config.user,
        clientId: oauth2.clientId,
        clientSecret: oauth2.clientSecret,
        refreshToken: oauth2.refreshToken,
        tokenUrl: oauth2.tokenUrl,
        scope: oauth2.scope,
        requestTimeoutMs: this.config.connectionTimeoutMs,
      },
      this.logger,
      this.deps.now,
    );
  }

  /** Everything the SMTP thread needs to open connections to this upstream at `endpoint`. */
  private transportSpec(endpoint: Endpoint): TransportSpec {
    const { tls } = this.config;
    return {
      host: this.config.host,
      port: endpoint.port,
      secure: endpoint.security === 'tls',
      requireTLS: endpoint.security === 'starttls',
      servername: tls.servername,
      tls: { rejectUnauthorized: tls.rejectUnauthorized, servername: tls.servername, minVersion: tls.minVersion, ca: tls.ca },
      name: this.deps.hostname,
      connectionTimeout: this.config.connectionTimeoutMs,
      greetingTimeout: Math.min(GREETING_TIMEOUT_MS, this.config.connectionTimeoutMs),
      socketTimeout: this.config.socketTimeoutMs,
      maxConnections: this.config.maxConnections,
      auth: this.tokens ? { user: this.config.user, oauth2: true } : { user: this.config.user, pass: this.config.password },
    };
  }

  /** The key of the pooled transport for `endpoint` (credentials are fixed per pool: new settings, new key). */
  private transportFor(endpoint: Endpoint): string {
    if (this.transport && sameEndpoint(this.transport.endpoint, endpoint)) return this.transport.key;
    this.closeTransport(false);
    this.transport = { endpoint, key: `${this.config.name}#${++this.transportGeneration}` };
    return this.transport.key;
  }

  private closeTransport(force: boolean): void {
    const transport = this.transport;
    this.transport = undefined;
    if (transport) this.deps.smtp.close(transport.key, force);
  }

  private async resolveEndpoint(): Promise<Endpoint> {
    if (this.endpoint) return this.endpoint;
    this.probing ??= this.probeAuto().finally(() => {
      this.probing = undefined;
    });
    return this.probing;
  }

  /** auto: implicit TLS on tlsPort first, then STARTTLS on starttlsPort; connect + TLS only, no AUTH. */
  private async probeAuto(): Promise<Endpoint> {
    const candidates: Endpoint[] = [
      { port: this.config.tlsPort, security: 'tls' },
      { port: this.config.starttlsPort, security: 'starttls' },
    ];
    const failures: Array<{ endpoint: Endpoint; err: UpstreamSendError }> = [];
    for (const endpoint of candidates) {
      try {
        await this.probe(endpoint);
        this.endpoint = endpoint;
        this.persist();
        this.logger.info(
          { host: this.config.host, port: endpoint.port, security: endpoint.security, tried: failures.map((f) => `${f.endpoint.security}:${f.endpoint.port}`) },
          'upstream.auto.selected',
        );
        return endpoint;
      } catch (err) {
        failures.push({ endpoint, err: err as UpstreamSendError });
        this.logger.debug(
          { port: endpoint.port, security: endpoint.security, err: describeUpstreamError(err as UpstreamSendError) },
          'upstream.auto.probe-failed',
        );
      }
    }
    // Report the TLS problem when there is one (more telling than a closed port), with both tries.
    const chosen = failures.find((f) => classifyUpstreamError(f.err).category === 'tls') ?? failures[failures.length - 1];
    const summary = failures
      .map((f) => `${f.endpoint.security === 'tls' ? 'implicit TLS' : 'STARTTLS'} on port ${f.endpoint.port}: ${describeUpstreamError(f.err)}`)
      .join('; ');
    throw Object.assign(new Error(`no usable endpoint (security auto): ${summary}`), {
      code: chosen.err.code,
      originalCode: chosen.err.originalCode,
      command: chosen.err.command,
      responseCode: chosen.err.responseCode,
    });
  }

  private probe(endpoint: Endpoint): Promise<void> {
    const spec = this.transportSpec(endpoint);
    return this.deps.smtp.probe({ ...spec, auth: { user: spec.auth.user } });
  }

  /** auto: after a connection-level failure, probe again next time (the other port may be the one now). */
  private forgetEndpointAfter(err: UpstreamSendError): void {
    if (this.config.security !== 'auto') return;
    const category = classifyUpstreamError(err).category;
    if (category === 'network' || category === 'timeout' || category === 'tls') this.endpoint = undefined;
  }
}

function sameEndpoint(a: Endpoint, b: Endpoint): boolean {
  return a.port === b.port && a.security === b.security;
}
