/**
 * Optional pacing per upstream (messages per minute and per day, sliding windows) so a busy printer does
 * not trip Gmail's limits. In memory only: after a restart the windows start empty, which at worst lets
 * one window's worth through early; the upstream's own quota reply still pauses it (classify.ts).
 */
const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;

export class Pacing {
  private readonly sent: number[] = [];

  constructor(
    private readonly perMinute?: number,
    private readonly perDay?: number,
  ) {}

  get enabled(): boolean {
    return Boolean(this.perMinute || this.perDay);
  }

  /** Earliest time a message may start (<= now: it may start now). */
  nextAllowedAt(now: number): number {
    if (!this.enabled) return now;
    this.forget(now);
    let at = now;
    if (this.perMinute) at = Math.max(at, this.slotFreedAt(now, MINUTE, this.perMinute));
    if (this.perDay) at = Math.max(at, this.slotFreedAt(now, DAY, this.perDay));
    return at;
  }

  /** Counts a message as started now. */
  record(now: number): void {
    if (this.enabled) this.sent.push(now);
  }

  /** How many sends in the last minute and day (status display). */
  usage(now: number): { lastMinute: number; lastDay: number } {
    this.forget(now);
    return { lastMinute: this.sent.filter((t) => t > now - MINUTE).length, lastDay: this.sent.length };
  }

  private slotFreedAt(now: number, window: number, limit: number): number {
    const inWindow = this.sent.filter((t) => t > now - window);
    if (inWindow.length < limit) return now;
    // The oldest send that must leave the window before another may start.
    return inWindow[inWindow.length - limit] + window;
  }

  private forget(now: number): void {
    while (this.sent.length > 0 && this.sent[0] <= now - DAY) this.sent.shift();
  }
}
