/**
 * Live status of each device, fed by gateway events. `state` uses the printer's own words for the
 * SMTP connection status (WorkCentre 6505DN "SMTP Server Connection Status"), applied to the whole trip
 * of its last scan: the admin sees what the printer would show if it could see Gmail.
 */
import type { GatewayEventBus } from '../shared/events.js';

export type PrinterState = 'Stop' | 'Not connected' | 'Connection in progress' | 'Operating' | 'Unable to connect';

export interface DeviceStatus {
  state: PrinterState;
  lastSeenAt?: string;
  lastSeenAddress?: string;
  lastMessageAt?: string;
  lastDeliveredAt?: string;
  lastError?: { at: string; message: string };
  /** Failed logins naming this device in the last hour. */
  recentAuthFailures: number;
  lastAuthFailureAt?: string;
  /** Mechanism of the last successful login (PLAIN, LOGIN, CRAM-MD5, POP3-USER, POP3-APOP). */
  lastAuthMethod?: string;
  counts: { received: number; delivered: number; failed: number };
}

/** Where statuses are kept across restarts (the store database's device_status table). */
export interface DeviceStatusPersistence {
  load(): Array<{ name: string; status: DeviceStatus }>;
  save(entries: Array<{ name: string; status: DeviceStatus }>): void;
  remove(name: string): void;
}

/** Changes are written at most this often (and at shutdown). */
const SAVE_EVERY_MS = 1_000;
const ZERO_COUNTS = { received: 0, delivered: 0, failed: 0 };

interface Tracked {
  status: DeviceStatus;
  authFailures: number[];
  /** Messages of this device received or queued and not yet finished. */
  inFlight: Set<string>;
}

const HOUR = 3_600_000;

export class DeviceStatusTracker {
  private readonly devices = new Map<string, Tracked>();

  private readonly dirty = new Set<string>();
  private saveTimer?: NodeJS.Timeout;

  constructor(
    events: GatewayEventBus,
    private readonly now: () => number = Date.now,
    private readonly persistence?: DeviceStatusPersistence,
  ) {
    // Last state, counts and errors survive a restart; "in progress" is rebuilt from what is queued.
    for (const { name, status } of persistence?.load() ?? []) {
      this.devices.set(name, {
        status: { ...status, recentAuthFailures: 0, counts: { ...ZERO_COUNTS, ...status.counts } },
        authFailures: [],
        inFlight: new Set(),
      });
    }
    const changed = (device?: string) => {
      if (device) this.markDirty(device);
    };
    for (const name of [
      'login.attempted',
      'message.receiving',
      'message.rejected',
      'message.queued',
      'message.delivered',
      'message.deferred',
      'message.held',
      'message.failed',
    ] as const) {
      events.on(name, (event: { device?: string }) => changed(event.device));
    }
    // A deleted device (API delete, or gone from the config at a reload) leaves no status behind.
    events.on('device.removed', ({ name }) => this.forget(name));
    events.on('login.attempted', ({ ok, protocol, device, method, remoteAddress, reason }) => {
      if (!device || reason === 'pop-grant-expired') return;
      if (ok) {
        this.seen(device, remoteAddress);
        this.track(device).status.lastAuthMethod = protocol === 'pop3' ? `POP3-${method}` : method;
        return;
      }
      const tracked = this.track(device);
      const at = this.now();
      tracked.authFailures = [...tracked.authFailures.filter((t) => at - t < HOUR), at];
      tracked.status.lastAuthFailureAt = new Date(at).toISOString();
      tracked.status.lastError = { at: new Date(at).toISOString(), message: `authentication failed: ${reason}` };
    });
    events.on('message.receiving', ({ device, sessionId }) => {
      this.track(device).inFlight.add(`session:${sessionId}`);
      this.seen(device);
    });
    events.on('message.rejected', ({ device, sessionId, code, reason }) => {
      if (!device) return;
      const tracked = this.track(device);
      tracked.inFlight.delete(`session:${sessionId}`);
      this.fail(tracked, `refused with ${code}: ${reason}`);
    });
    events.on('message.queued', ({ id, device }) => {
      const tracked = this.track(device);
      for (const key of tracked.inFlight) if (key.startsWith('session:')) tracked.inFlight.delete(key);
      tracked.inFlight.add(id);
      tracked.status.counts.received++;
      tracked.status.lastMessageAt = new Date(this.now()).toISOString();
    });
    events.on('message.delivered', ({ id, device }) => {
      const tracked = this.track(device);
      tracked.inFlight.delete(id);
      tracked.status.counts.delivered++;
      tracked.status.lastDeliveredAt = new Date(this.now()).toISOString();
      tracked.status.state = 'Operating';
    });
    events.on('message.deferred', ({ device, reason }) => {
      this.track(device).status.lastError = { at: new Date(this.now()).toISOString(), message: reason };
    });
    events.on('message.held', ({ id, device, reason }) => {
      const tracked = this.track(device);
      tracked.inFlight.delete(id);
      this.fail(tracked, reason);
    });
    events.on('message.failed', ({ id, device, reason }) => {
      const tracked = this.track(device);
      tracked.inFlight.delete(id);
      tracked.status.counts.failed++;
      this.fail(tracked, reason);
    });
    events.on('message.deleted', ({ id, device }) => this.track(device).inFlight.delete(id));
    // A session that ends after MAIL FROM without a queued message (QUIT, RSET, disconnect) is no longer in progress.
    events.on('session.closed', ({ sessionId, device }) => {
      if (device) this.devices.get(device)?.inFlight.delete(`session:${sessionId}`);
    });
  }

  /** Status of one device; `enabled: false` shows as the printer's "Stop". */
  get(device: string, enabled = true): DeviceStatus {
    const tracked = this.devices.get(device);
    const at = this.now();
    const base: DeviceStatus = tracked
      ? { ...tracked.status, counts: { ...tracked.status.counts }, recentAuthFailures: tracked.authFailures.filter((t) => at - t < HOUR).length }
      : { state: 'Not connected', recentAuthFailures: 0, counts: { received: 0, delivered: 0, failed: 0 } };
    if (!enabled) base.state = 'Stop';
    else if (tracked && tracked.inFlight.size > 0) base.state = 'Connection in progress';
    return base;
  }

  forget(device: string): void {
    this.devices.delete(device);
    this.dirty.delete(device);
    this.persistence?.remove(device);
  }

  /** Messages of `device` still on their way at start-up (queued or deferred): shown as in progress. */
  restoreInFlight(device: string, id: string): void {
    this.track(device).inFlight.add(id);
  }

  /** Writes pending changes now (shutdown). */
  saveNow(): void {
    clearTimeout(this.saveTimer);
    this.saveTimer = undefined;
    if (!this.persistence || this.dirty.size === 0) return;
    const entries = [...this.dirty].flatMap((name) => {
      const tracked = this.devices.get(name);
      return tracked ? [{ name, status: { ...tracked.status, counts: { ...tracked.status.counts } } }] : [];
    });
    this.dirty.clear();
    this.persistence.save(entries);
  }

  private markDirty(device: string): void {
    if (!this.persistence) return;
    this.dirty.add(device);
    if (this.saveTimer) return;
    this.saveTimer = setTimeout(() => this.saveNow(), SAVE_EVERY_MS);
    this.saveTimer.unref();
  }

  private seen(device: string, address?: string): void {
    const tracked = this.track(device);
    tracked.status.lastSeenAt = new Date(this.now()).toISOString();
    if (address) tracked.status.lastSeenAddress = address;
  }

  private fail(tracked: Tracked, message: string): void {
    tracked.status.lastError = { at: new Date(this.now()).toISOString(), message };
    tracked.status.state = 'Unable to connect';
  }

  private track(device: string): Tracked {
    let tracked = this.devices.get(device);
    if (!tracked) {
      tracked = {
        status: { state: 'Not connected', recentAuthFailures: 0, counts: { received: 0, delivered: 0, failed: 0 } },
        authFailures: [],
        inFlight: new Set(),
      };
      this.devices.set(device, tracked);
    }
    return tracked;
  }
}
