/**
 * A real browser for the browser tests: Debian's `chromium` driven by
 * `puppeteer-core` (which downloads nothing). The one place that decides
 * whether the browser tests can run: where no Chromium exists, each browser
 * suite is skipped with {@link NO_CHROMIUM} as its one-line reason, and the
 * rest of `npm test` runs. CI installs it (`.ci/run`).
 *
 * ```ts
 * describe('in Chromium', { skip: NO_CHROMIUM }, () => {
 *   it('…', async (t) => {
 *     const page = await newPage(t);
 *   });
 * });
 * ```
 */
import { accessSync, constants } from 'node:fs';
import type { Browser, Page } from 'puppeteer-core';
import { onCleanup, type Cleanup } from './cleanup.js';
import { tempDir } from './temp.js';

/** Where Chromium is looked for: `PUPPETEER_EXECUTABLE_PATH` first, then Debian's and others' names. */
const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];

function executable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The Chromium to drive, or null when there is none. */
export const CHROMIUM_PATH: string | null = (() => {
  const chosen = process.env['PUPPETEER_EXECUTABLE_PATH'];
  if (chosen) return executable(chosen) ? chosen : null;
  return CANDIDATES.find(executable) ?? null;
})();

/** Why the browser tests cannot run here (a `describe` skip reason), or false when they can. */
export const NO_CHROMIUM: string | false =
  CHROMIUM_PATH === null
    ? `no Chromium (${process.env['PUPPETEER_EXECUTABLE_PATH'] || CANDIDATES[0]}): browser tests skipped; install it with \`apt-get install chromium\``
    : false;

/**
 * Headless, offline-quiet: as root the sandbox cannot start; the rest keeps
 * it from reaching for the internet (updates, sync, field trials).
 */
const ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Launch Chromium with a fresh profile; closed at cleanup. */
export async function launchBrowser(t: Cleanup): Promise<Browser> {
  if (CHROMIUM_PATH === null) throw new Error(String(NO_CHROMIUM));
  const userDataDir = tempDir(t, 'chromium-profile-');
  // Loaded here: the suites that import test/support without a browser do not pay for it.
  const { default: puppeteer } = await import('puppeteer-core');
  const browser = await puppeteer.launch({ executablePath: CHROMIUM_PATH, headless: true, userDataDir, args: ARGS });
  onCleanup(t, () => browser.close());
  return browser;
}

/** A page of its own browser, of the given size; every error the page throws is collected in `errors`. */
export async function newPage(t: Cleanup, viewport = { width: 1280, height: 900 }): Promise<{ page: Page; errors: string[] }> {
  const browser = await launchBrowser(t);
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error instanceof Error ? error.message : String(error)));
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(message.text());
  });
  await page.setViewport(viewport);
  return { page, errors };
}
