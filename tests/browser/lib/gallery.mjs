// Shared helpers of the browser tests: the settings scripts/browser-test passes in, a
// headless Chromium, screenshots, and the few steps (log in, add a user) most tests take.
//
// Each run has a gallery of its own with a new database, so users have fixed names; each
// spec file adds and uses its own (auth: carol; admin: alice, bob; images: dave).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

function required(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(
      `${name} is not set: run the browser tests with scripts/browser-test, which starts a gallery and sets it`,
    );
  }
  return value;
}

export const env = {
  baseURL: required('GALLERY_URL').replace(/\/$/, ''),
  adminUser: process.env.GALLERY_ADMIN_USERNAME || 'admin',
  adminPassword: required('GALLERY_ADMIN_PASSWORD'),
  screenshots: required('SCREENSHOT_DIR'),
  fixtures: required('FIXTURES_DIR'),
  chromium: process.env.CHROMIUM || '/usr/bin/chromium',
  // The gallery binary, for a spec that needs a server of its own (other settings).
  galleryBin: process.env.GALLERY_BIN,
};

export const VIEWPORT = { width: 1000, height: 700 };

// Without the background-networking flags Chromium keeps calling home on a closed network.
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** A headless Chromium with a fresh, temporary profile (Playwright makes and removes it). */
export async function launch() {
  if (!fs.existsSync(env.chromium)) {
    throw new Error(`Chromium not found at ${env.chromium}: apt-get install -y chromium`);
  }
  return chromium.launch({ executablePath: env.chromium, headless: true, args: CHROMIUM_ARGS });
}

/**
 * A new browser context (its own cookies: one per person; `options` as Playwright's
 * newContext takes them: colorScheme, hasTouch...) and a page in it. The page
 * records what the browser complained about (script errors, CSP violations) in
 * `page.problems`; `assertNoProblems(page)` checks it.
 */
export async function openPage(browser, options = {}) {
  const context = await browser.newContext({ baseURL: env.baseURL, viewport: VIEWPORT, ...options });
  context.setDefaultTimeout(15_000);
  const page = await context.newPage();
  page.problems = [];
  page.on('pageerror', (err) => page.problems.push(`script error: ${err.message}`));
  page.on('console', (msg) => {
    // A page answered with 401/403/404 on purpose is logged as "Failed to load resource".
    if (msg.type() === 'error' && !/Failed to load resource/.test(msg.text())) {
      page.problems.push(`console error on ${page.url()}: ${msg.text()}`);
    }
  });
  return page;
}

export function assertNoProblems(page) {
  assert.deepEqual(page.problems, [], 'the browser reported errors');
}

/** Saves <SCREENSHOT_DIR>/<name>.png (the viewport only, to keep them small). */
export async function screenshot(page, name) {
  fs.mkdirSync(env.screenshots, { recursive: true });
  await page.screenshot({ path: path.join(env.screenshots, `${name}.png`), type: 'png' });
}

export function fixture(name) {
  return path.join(env.fixtures, name);
}

/** The path of the page's URL (no origin, no query). */
export function pathOf(page) {
  return new URL(page.url()).pathname;
}

/**
 * Fills and submits the login form at /login (opening it unless already there) and
 * returns the response to the POST (a 303 is followed, so a success shows the next page).
 */
export async function login(page, username, password) {
  if (pathOf(page) !== '/login') {
    await page.goto('/login');
  }
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/login'),
    page.getByRole('button', { name: 'Log in' }).click(),
  ]);
  await page.waitForLoadState('load');
  return response;
}

/** Logs in and checks it worked (the home page or `next` is shown, with the nav). */
export async function loginOk(page, username, password) {
  await login(page, username, password);
  assert.notEqual(pathOf(page), '/login', `login as ${username} failed: ${await page.locator('main').innerText()}`);
  await page.getByRole('button', { name: 'Log out' }).waitFor();
}

/** Clicks a submit button and waits for the page the form leads to. */
export async function submit(page, button) {
  await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), button.click()]);
}

/** The row of the admin page's user table for `username`. */
export function userRow(page, username) {
  return page.locator('table.users tbody tr').filter({
    has: page.locator('td:first-child', { hasText: new RegExp(`^${username}$`) }),
  });
}

/** The cells of a user's row: [username, full name, admin, images]. */
export async function rowCells(page, username) {
  const cells = await userRow(page, username).locator('td').allInnerTexts();
  return cells.slice(0, 4).map((c) => c.trim());
}

/** As an admin (logged in on `adminPage`), adds a user through the admin form. */
export async function addUser(adminPage, { username, password, fullName, admin = false }) {
  await adminPage.goto('/admin/users/new');
  await adminPage.getByLabel('Username').fill(username);
  await adminPage.getByLabel('Password').fill(password);
  await adminPage.getByLabel('Full name').fill(fullName);
  await adminPage.getByLabel('Administrator').setChecked(admin);
  await submit(adminPage, adminPage.getByRole('button', { name: 'Add user' }));
  assert.equal(pathOf(adminPage), '/admin', `adding ${username} failed: ${await adminPage.locator('main').innerText()}`);
  await userRow(adminPage, username).waitFor();
}
