/**
 * The one place a login is decided and recorded, for SMTP AUTH and POP3 alike:
 *   lock-out check and reservation (one step) -> at most one real password check (off the event loop)
 *   -> the reservation settled with the verdict -> one `login.attempted` event with the true reason
 *   (metrics, device status, the doctor listen). The reservation is what keeps parallel guesses within the
 *   limit: an attempt is counted from its check on, not only once its password has been found wrong.
 *
 * What a guesser can learn is nothing: every failure (unknown login, wrong password, a method the device
 * cannot do, a lock-out) gets the same refusal, is counted the same way and is answered after the same
 * fixed delay (smtp.authFailureDelay, a timer, so the real work is hidden whatever it cost). Only once the
 * password was verified correct may the reply say what else is wrong (device disabled, wrong address).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Device, DeviceRegistry } from '../devices/index.js';
import type { GatewayEventBus, LoginAttempt, LoginReason } from '../shared/events.js';
import type { LockoutState, LoginReservation } from './lockout.js';

export type LoginProof =
  | { kind: 'password'; password: string }
  /** CRAM-MD5 or APOP: the client's answer, checked against the stored plaintext secret. */
  | { kind: 'challenge'; matches(secret: string): boolean };

export interface LoginRequest {
  protocol: 'smtp' | 'pop3';
  sessionId: string;
  remoteAddress: string;
  /** PLAIN, LOGIN, CRAM-MD5, USER, APOP. */
  method: string;
  username: string;
  proof: LoginProof;
}

/** `invalid` and `locked` are what a guesser may hear; `disabled` and `wrong-address` only the password's owner. */
export type LoginRefusal = 'invalid' | 'locked' | 'disabled' | 'wrong-address';

export type LoginOutcome =
  | { ok: true; device: Device }
  | { ok: false; refusal: LoginRefusal; reason: LoginReason; device?: Device; lockedUntil?: number; lockStarted?: boolean };

export interface LoginRecorderOptions {
  devices: DeviceRegistry;
  lockout: LockoutState;
  events: GatewayEventBus;
  /** Read at each attempt (config reload). */
  failureDelayMs: () => number;
}

export class LoginRecorder {
  constructor(private readonly options: LoginRecorderOptions) {}

  get lockout(): LockoutState {
    return this.options.lockout;
  }

  async attempt(request: LoginRequest): Promise<LoginOutcome> {
    const started = Date.now();
    const outcome = await this.decide(request);
    if (!outcome.ok) {
      const wait = started + this.options.failureDelayMs() - Date.now();
      if (wait > 0) await sleep(wait);
    }
    this.record({
      protocol: request.protocol,
      sessionId: request.sessionId,
      remoteAddress: request.remoteAddress,
      username: request.username.slice(0, 64),
      device: outcome.device?.name,
      method: request.method,
      ok: outcome.ok,
      reason: outcome.ok ? 'ok' : outcome.reason,
      ...(outcome.ok || !outcome.lockStarted ? {} : { lockedOut: true }),
    });
    return outcome;
  }

  /** Identification without a password (an expired POP3 grant, say): recorded, never counted. */
  record(attempt: Omit<LoginAttempt, 'at'>): void {
    this.options.events.emit('login.attempted', { ...attempt, at: Date.now() });
  }

  /** The device's own network: its allowFrom, or an address it authenticated from in the last day. */
  isHome(device: Device, address: string): boolean {
    return this.options.devices.isPinnedTo(device, address) || this.options.lockout.seenFrom(device.name, address);
  }

  /** Some device lives at this address (pinned, or authenticated from it in the last day). */
  isDeviceAddress(address: string): boolean {
    return this.options.devices.isPinnedAddress(address) || this.options.lockout.seenAny(address);
  }

  private async decide(request: LoginRequest): Promise<LoginOutcome> {
    const { devices, lockout } = this.options;
    const found = request.username ? devices.findByUsername(request.username) : undefined;
    const device = found?.auth === 'password' ? found : undefined;

    const admit = () => lockout.admit(request.remoteAddress, request.username, device !== undefined && this.isHome(device, request.remoteAddress));
    let admission = admit();
    // Bounded: a wait ends when an attempt in flight on the same counter settles, and its check is bounded.
    while (admission.kind === 'wait') {
      await admission.settled;
      admission = admit();
    }
    if (admission.kind === 'locked') return { ok: false, refusal: 'locked', reason: 'locked-out', device, lockedUntil: admission.lock.until };
    const { reservation } = admission;

    let verdict: boolean | 'unavailable';
    try {
      if (request.proof.kind === 'password') {
        verdict = await devices.verifyPasswordAsync(device, request.proof.password);
      } else {
        const secret = device && devices.challengeSecret(device);
        verdict = device === undefined ? false : secret === undefined ? 'unavailable' : request.proof.matches(secret);
      }
    } catch (err) {
      reservation.cancel();
      throw err;
    }

    if (verdict === true && device) {
      // Verified: from here on the reply may be specific. Not a success either way, so nothing is forgiven.
      const refusal = !device.enabled ? 'disabled' : !devices.isAllowedFrom(device, request.remoteAddress) ? 'wrong-address' : undefined;
      if (refusal) return this.fail(reservation, refusal, refusal, device);
      reservation.succeeded();
      lockout.markSeen(device.name, request.remoteAddress);
      return { ok: true, device };
    }
    const reason: LoginReason = !device ? 'unknown-user' : verdict === 'unavailable' ? 'method-unavailable' : 'bad-password';
    return this.fail(reservation, 'invalid', reason, device);
  }

  private fail(reservation: LoginReservation, refusal: LoginRefusal, reason: LoginReason, device: Device | undefined): LoginOutcome {
    const started = reservation.failed();
    return { ok: false, refusal, reason, device, ...(started ? { lockedUntil: started.until, lockStarted: true } : {}) };
  }
}
