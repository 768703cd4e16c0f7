// The trash's expiry, in a browser, on a gallery of this spec's own whose trash keeps
// images for about 26 seconds (`--trash-days 0.0003`): an image restored from the trash
// page in time comes back; one left there is deleted for good by the purge, and its page
// is then not found.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { assertNoProblems, env, fixture, launch, loginOk, pathOf, screenshot, submit } from '../lib/gallery.mjs';

const PASSWORD = 'expiry-admin-password';

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Set when the gallery could not be started at all (no such binary). */
let startError = null;

async function untilReady(url, server, logPath) {
  for (let i = 0; i < 300; i++) {
    assert.equal(startError, null, `the gallery could not start: ${startError}`);
    assert.equal(server.exitCode, null, `the gallery exited during startup:\n${fs.readFileSync(logPath, 'utf8')}`);
    try {
      if ((await fetch(`${url}/readyz`)).ok) return;
    } catch { /* not listening yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the gallery at ${url} was not ready within 30 s`);
}

describe('trash: restored in time, deleted for good after --trash-days', () => {
  let browser;
  let page;
  let server;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gallery-expiry-'));
  const logPath = path.join(dir, 'server.log');
  const log = fs.openSync(logPath, 'a');

  before(async () => {
    assert.ok(env.galleryBin, 'GALLERY_BIN is not set: run with scripts/browser-test');
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    server = spawn(env.galleryBin, [
      'serve', '--bind', `127.0.0.1:${port}`,
      '--database-url', `sqlite://${dir}/gallery.db`, '--storage', `file://${dir}/images`,
      '--drain-secs', '0', '--trash-days', '0.0003',
    ], { env: { PATH: process.env.PATH, GALLERY_ADMIN_PASSWORD: PASSWORD }, stdio: ['ignore', log, log] });
    server.on('error', (err) => { startError = err; });
    // However the run ends, the server goes with it (an `after` may not run if `before`
    // failed).
    process.on('exit', () => server.kill('SIGKILL'));
    await untilReady(url, server, logPath);
    browser = await launch();
    const context = await browser.newContext({ baseURL: url, viewport: { width: 1000, height: 700 } });
    context.setDefaultTimeout(15_000);
    page = await context.newPage();
    page.problems = [];
    page.on('pageerror', (err) => page.problems.push(`script error: ${err.message}`));
    await loginOk(page, 'admin', PASSWORD);
  });
  after(async () => {
    await browser?.close();
    if (server && server.exitCode === null) {
      const exited = new Promise((resolve) => server.once('exit', resolve));
      server.kill('SIGTERM');
      await exited;
    }
    fs.closeSync(log);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('restored from the trash page in time, it is back in the gallery', async () => {
    await page.goto('/upload');
    await page.locator('input[type=file]').setInputFiles([fixture('rocket.jpg')]);
    await Promise.all([
      page.waitForURL((u) => u.pathname === '/gallery' && u.search === '?uploaded=1'),
      page.getByRole('button', { name: 'Upload', exact: true }).click(),
    ]);
    await page.locator('ul.grid a').first().click();
    await page.waitForURL('**/images/*');
    await submit(page, page.getByRole('button', { name: 'Move to trash' }));
    await page.goto('/trash');
    assert.match(await page.locator('ul.grid .left').innerText(), /Deleted for good in a minute or so/);
    assert.match(await page.locator('main > p').first().innerText(), /stay here for 1 minute/);
    await submit(page, page.getByRole('button', { name: 'Restore rocket.jpg' }));
    assert.equal(pathOf(page), '/trash');
    await page.getByText('The trash is empty.').waitFor();
    await page.goto('/gallery');
    assert.equal(await page.locator('h1').innerText(), 'My images 1');
  });

  test('left in the trash, the purge deletes it for good', async () => {
    await page.locator('ul.grid a').first().click();
    await page.waitForURL('**/images/*');
    const image = pathOf(page);
    await submit(page, page.getByRole('button', { name: 'Move to trash' }));
    // The purge runs every 2.6 s here; the image's 26 seconds run out.
    let emptied = false;
    for (let i = 0; i < 100 && !emptied; i++) {
      await page.waitForTimeout(500);
      await page.goto('/trash');
      emptied = (await page.getByText('The trash is empty.').count()) === 1;
    }
    assert.ok(emptied, 'the trash was not emptied by the purge');
    await screenshot(page, 'trash-expired');
    const response = await page.goto(image);
    assert.equal(response.status(), 404);
    await page.goto('/gallery');
    assert.equal(await page.locator('h1').innerText(), 'My images 0');
    assertNoProblems(page);
  });
});
