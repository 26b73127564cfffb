/**
 * Why a message is held, and which event releases it: the one place that says so. A hold is either the
 * system's (a cause the gateway can see go away) or an operator's (`admin`, released only by an operator).
 *
 *   reason                 owner   released by
 *   no-upstream            system  device-has-upstream, config-reloaded, start-up (each only when the device has one)
 *   upstream-auth-failed   system  credentials-proven, config-reloaded, start-up (each only when that upstream no
 *                                  longer refuses), operator
 *   admin                  admin   operator
 *
 * `operator` (an admin's release or retry) releases every reason.
 */
export const HOLD_REASONS = ['no-upstream', 'upstream-auth-failed', 'admin'] as const;
export type HoldReason = (typeof HOLD_REASONS)[number];

export type HoldOwner = 'system' | 'admin';

export type ReleaseEvent = 'device-has-upstream' | 'credentials-proven' | 'config-reloaded' | 'start-up' | 'operator';

export interface HoldRule {
  owner: HoldOwner;
  /** What is wrong, in words an office admin understands. */
  text: string;
  /** What to do about it. */
  fix: string;
  releasedBy: readonly ReleaseEvent[];
}

export const HOLD_RULES: Readonly<Record<HoldReason, HoldRule>> = {
  'no-upstream': {
    owner: 'system',
    text: 'The scan waits because its device has no upstream (Gmail account) to send it through.',
    fix: "Give the device an upstream (the device's `upstream` key, or PATCH /api/devices/NAME), then reload or restart; held scans go out by themselves.",
    releasedBy: ['device-has-upstream', 'config-reloaded', 'start-up', 'operator'],
  },
  'upstream-auth-failed': {
    owner: 'system',
    text: 'The scan waits because the upstream account refused its login (user name, app password or OAuth token).',
    fix: 'Correct the upstream credentials in the config and reload, or run "verify" on the upstream; held scans go out once a login succeeds.',
    releasedBy: ['credentials-proven', 'config-reloaded', 'start-up', 'operator'],
  },
  admin: {
    owner: 'admin',
    text: 'The scan was held by an administrator.',
    fix: 'Release it (POST /api/messages/ID/release) when it should go out.',
    releasedBy: ['operator'],
  },
};

export interface Hold {
  /** The hold reason (named `code` for the API's `held.code`). */
  code: HoldReason;
  /** The particular cause, in words (e.g. which upstream refused and its reply). */
  reason: string;
  owner: HoldOwner;
  /** Epoch ms the hold started. */
  since: number;
  /** An operator's note on an admin hold. */
  note?: string;
}

export function isHoldReason(value: string): value is HoldReason {
  return (HOLD_REASONS as readonly string[]).includes(value);
}

export function releasedBy(reason: HoldReason, event: ReleaseEvent): boolean {
  return HOLD_RULES[reason].releasedBy.includes(event);
}

/** A hold for `reason`; an unknown legacy code (from an imported record) becomes its nearest reason. */
export function makeHold(reason: HoldReason | string, detail: string | undefined, since: number, note?: string): Hold {
  const code: HoldReason = isHoldReason(reason) ? reason : 'no-upstream';
  return { code, reason: detail ?? HOLD_RULES[code].text, owner: HOLD_RULES[code].owner, since, ...(note ? { note } : {}) };
}
