import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

/** Debian's chromium package; the driver never downloads a browser of its own. */
export const CHROMIUM = '/usr/bin/chromium';

/**
 * Why the browser tests cannot run here, or null when they can. Missing Chromium is a reason to
 * skip only where the test command could not install it (not root); as root it is a failure.
 */
export function browserUnavailable(): { skip: string } | { fail: string } | null {
  if (existsSync(CHROMIUM)) return null;
  if (process.getuid?.() === 0) return { fail: `${CHROMIUM} is missing although the tests run as root: scripts/ensure-system-deps.sh installs the Debian package chromium` };
  return { skip: `${CHROMIUM} is missing: install Debian's chromium package (sudo apt-get install chromium) to run the browser tests` };
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
}
