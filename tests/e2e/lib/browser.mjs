// browser.mjs - headless Chromium for the web UI tests, driven by playwright-core (no browser
// download: the Debian package `chromium`, installed by scripts/deps.sh). Screenshots go to
// tests/e2e/artifacts/. Page errors and failed console messages are collected so a test can
// assert the page ran cleanly.

import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { ARTIFACTS_DIR } from './server.mjs';

export const CHROMIUM = process.env.MAGPIE_CHROMIUM || '/usr/bin/chromium';

export async function launchBrowser() {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: run scripts/deps.sh (Debian package chromium) or set MAGPIE_CHROMIUM`);
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
}

/** A page in its own context (own localStorage), with its errors collected in page.problems. */
export async function newPage(browser, name) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 700 } });
  const page = await context.newPage();
  page.problems = [];
  page.on('pageerror', (e) => page.problems.push(`${name}: page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') page.problems.push(`${name}: console error: ${m.text()}`); });
  page.setDefaultTimeout(10000);
  return page;
}

export async function screenshot(page, file) {
  fs.mkdirSync(ARTIFACTS_DIR, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS_DIR, file), fullPage: true });
}
