/**
 * Debian's chromium driven by playwright-core (no browser download), headless, with the flags that keep it
 * off the internet (FACTS 11.3). When chromium is missing the browser suite is skipped with the reason,
 * unless SCANRELAY_REQUIRE_ALL=1 (CI), which turns the skip into a failure.
 */
import { existsSync } from 'node:fs';
import type { Browser } from 'playwright-core';

export const CHROMIUM_PATH = process.env.SCANRELAY_CHROMIUM ?? '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
];

/** Why the browser suite cannot run here, or undefined when it can. Throws under SCANRELAY_REQUIRE_ALL=1. */
export function browserUnavailable(): string | undefined {
  const reason = existsSync(CHROMIUM_PATH)
    ? undefined
    : `browser tests skipped: ${CHROMIUM_PATH} not found (apt-get install -y --no-install-recommends chromium, or set SCANRELAY_CHROMIUM)`;
  if (reason && process.env.SCANRELAY_REQUIRE_ALL === '1') throw new Error(`${reason}; SCANRELAY_REQUIRE_ALL=1 makes this a failure`);
  if (reason) console.warn(reason);
  return reason;
}

export async function launchBrowser(): Promise<Browser> {
  const { chromium } = await import('playwright-core');
  return chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: CHROMIUM_ARGS });
}
