// The everyday gallery, as one family member (erin) uses it: uploads sent one by one with
// progress, a bad file failing alone and retried alone, duplicates skipped, a 200-photo
// batch, a quota; a photo's details and no location in the original a browser downloads;
// the viewer's arrow keys, swipe and Escape; a selection trashed with one undo and
// downloaded as a ZIP; her sessions; dark mode; and an automated accessibility check
// (axe-core) of every page with no serious violation.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import zlib from 'node:zlib';
import { after, before, describe, test } from 'node:test';

import {
  addUser, assertNoProblems, env, fixture, launch, login, loginOk, openPage, pathOf,
  screenshot, submit,
} from '../lib/gallery.mjs';

const require = createRequire(import.meta.url);
const AXE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const USER = 'erin';
const PASSWORD = 'family-password-1';

/** A tiny PNG whose bytes differ for every seed (a batch of distinct photos). */
function png(seed) {
  const w = 8, h = 6;
  const raw = Buffer.alloc((w * 3 + 1) * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const at = y * (w * 3 + 1) + 1 + x * 3;
      raw[at] = (seed * 7 + x) & 255;
      raw[at + 1] = (seed >> 8) & 255;
      raw[at + 2] = (y * 40) & 255;
    }
  }
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(zlib.crc32(Buffer.concat([Buffer.from(type), data])));
    return Buffer.concat([len, Buffer.from(type), data, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; ihdr[9] = 2; // 8-bit RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(raw)), chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** Waits for the gallery page with exactly this query (after an upload). */
function galleryWith(page, search) {
  return page.waitForURL((u) => u.pathname === '/gallery' && u.search === search, { timeout: 180_000 });
}

/** Chooses `files` on the upload page and presses Upload (the script takes over). */
async function chooseAndUpload(page, files) {
  await page.goto('/upload');
  await page.locator('input[type=file]').setInputFiles(files);
  await page.getByRole('button', { name: 'Upload', exact: true }).click();
}

/** Axe-core on the current page: the serious and critical violations, described. */
async function seriousViolations(page) {
  await page.evaluate(AXE);
  const result = await page.evaluate(() =>
    window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21aa'] } }));
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
}

describe('family: uploads, details, viewer, selection, sessions, dark mode, accessibility', () => {
  let browser;
  let page;
  let admin;
  let photoId;
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'gallery-family-'));

  before(async () => {
    browser = await launch();
    admin = await openPage(browser);
    await loginOk(admin, env.adminUser, env.adminPassword);
    await addUser(admin, { username: USER, password: PASSWORD, fullName: 'Erin Family' });
    page = await openPage(browser, { hasTouch: true });
    await loginOk(page, USER, PASSWORD);
  });
  after(async () => {
    await browser?.close();
    fs.rmSync(scratch, { recursive: true, force: true });
  });

  test('files go one by one with progress; a bad one fails alone, with its reason, and retries alone', async () => {
    const bad = path.join(scratch, 'notes.jpg');
    fs.writeFileSync(bad, 'not a photo at all');
    await chooseAndUpload(page, [fixture('rocket.jpg'), bad, fixture('camera.png')]);
    await page.locator('#files li').nth(2).waitFor();
    assert.equal(await page.locator('#files progress').count(), 3, 'a progress bar per file');
    await page.locator('#files li.failed').waitFor();
    await page.waitForFunction(() => document.querySelectorAll('#files li.done').length === 2);
    const failed = page.locator('#files li.failed');
    assert.match(await failed.innerText(), /notes\.jpg.*not a supported image type/s);
    assert.match(await page.locator('#summary').innerText(), /2 uploaded, 1 failed\./);
    await screenshot(page, 'upload-progress');
    // Retry sends that file alone: it fails again for the same reason, nothing else moves.
    await page.getByRole('button', { name: 'Retry notes.jpg' }).click();
    await page.waitForFunction(() => /2 uploaded, 1 failed\./.test(document.getElementById('summary').textContent)
      && document.querySelector('#files li.failed button'));
    await Promise.all([
      galleryWith(page, '?uploaded=2'),
      page.getByRole('link', { name: 'See them in the gallery' }).click(),
    ]);
    assert.equal(await page.locator('h1').innerText(), 'My images 2');
    assertNoProblems(page);
  });

  test('a photo she has already is skipped and said so', async () => {
    await Promise.all([
      galleryWith(page, '?uploaded=0&skipped=1'),
      chooseAndUpload(page, [fixture('rocket.jpg')]),
    ]);
    await page.getByText('1 file was skipped: you have it already.').waitFor();
    assert.equal(await page.locator('h1').innerText(), 'My images 2');
  });

  test('two hundred photos go through in one batch', async () => {
    const files = [];
    for (let i = 0; i < 200; i++) {
      const file = path.join(scratch, `batch-${String(i).padStart(3, '0')}.png`);
      fs.writeFileSync(file, png(i + 1));
      files.push(file);
    }
    await Promise.all([galleryWith(page, '?uploaded=200'), chooseAndUpload(page, files)]);
    assert.equal(await page.locator('h1').innerText(), 'My images 202');
  });

  test('a quota refuses what does not fit, saying how much is left', async () => {
    await admin.goto('/admin');
    const row = admin.locator('table.users tbody tr').filter({ hasText: USER });
    await row.getByRole('link', { name: 'Modify' }).click();
    await admin.waitForURL('**/edit');
    const edit = admin.url();
    await admin.getByLabel('Storage quota (MB)').fill('1');
    await submit(admin, admin.getByRole('button', { name: 'Save' }));
    await chooseAndUpload(page, [fixture('large-12mp-exif-rot6.jpg')]);
    await page.locator('#files li.failed').waitFor();
    assert.match(await page.locator('#files li.failed').innerText(), /is left of your 1\.0 MB of storage/);
    await page.goto('/account');
    await page.getByText(/of 1\.0 MB/).waitFor();
    // No limit again.
    await admin.goto(edit);
    await admin.getByLabel('Storage quota (MB)').fill('');
    await submit(admin, admin.getByRole('button', { name: 'Save' }));
  });

  test('a photo shows its details, and the original she downloads has no location', async () => {
    await Promise.all([galleryWith(page, '?uploaded=1'), chooseAndUpload(page, [fixture('exif-gps.jpg')])]);
    await page.goto('/gallery?sort=uploaded');
    await page.locator('ul.grid a[title="exif-gps.jpg"]').click();
    await page.waitForURL('**/images/*');
    photoId = pathOf(page).split('/')[2];
    const details = Object.fromEntries(
      await page.locator('figcaption dl dt').evaluateAll((dts) =>
        dts.map((dt) => [dt.textContent.trim(), dt.nextElementSibling.textContent.trim()])),
    );
    assert.equal(details.Camera, 'Google Pixel 8');
    assert.equal(details.Taken, '2024-07-14 18:32');
    assert.equal(details.Exposure, '6.9 mm · f/1.8 · 1/250 s · ISO 200');
    assert.equal(details.Location, 'Recorded, removed from the stored original');
    await screenshot(page, 'image-details');
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('link', { name: 'Download original' }).click(),
    ]);
    assert.equal(download.suggestedFilename(), 'exif-gps.jpg');
    const bytes = fs.readFileSync(await download.path());
    assert.equal(bytes.indexOf('GPSLatitude'), -1, 'no XMP position');
    assert.ok(bytes.length > 100_000 && bytes[0] === 0xff && bytes[1] === 0xd8, 'the whole JPEG');
    // 48°51'29.59" was stored as the rationals 48/1 51/1 2959/100: none of it is left.
    assert.equal(bytes.indexOf(Buffer.from([0, 0, 0x0b, 0x8f, 0, 0, 0, 100])), -1, 'no GPS rational');
    assertNoProblems(page);
  });

  test('the viewer steps with the arrow keys and a swipe, and Escape goes back to the grid where it was', async () => {
    await page.goto('/gallery');
    await page.locator('ul.grid a').nth(1).click();
    await page.waitForURL('**/images/*');
    const start = pathOf(page);
    const next = await page.locator('a[rel=next]').getAttribute('href');
    const prev = await page.locator('a[rel=prev]').getAttribute('href');
    await page.keyboard.press('ArrowRight');
    await page.waitForURL(`**${next}`);
    await page.keyboard.press('ArrowLeft');
    await page.waitForURL(`**${start}`);
    // A swipe to the right is "previous".
    await page.locator('figure.full img').evaluate((img) => {
      const touch = (x) => new Touch({ identifier: 1, target: img, clientX: x, clientY: 200 });
      img.dispatchEvent(new TouchEvent('touchstart', { touches: [touch(100)], changedTouches: [touch(100)], bubbles: true }));
      img.dispatchEvent(new TouchEvent('touchend', { touches: [], changedTouches: [touch(300)], bubbles: true }));
    });
    await page.waitForURL(`**${prev}`);
    await page.getByRole('button', { name: 'Actual size' }).waitFor();
    await page.keyboard.press('Escape');
    await page.waitForURL('**/gallery');

    // Coming back to the grid from an image far down it: where it was.
    const far = page.locator('ul.grid a').nth(40);
    await far.scrollIntoViewIfNeeded();
    const before = await page.evaluate(() => window.scrollY);
    assert.ok(before > 500, `scrolled down (${before})`);
    await far.click();
    await page.waitForURL('**/images/*');
    await page.keyboard.press('Escape');
    await page.waitForURL('**/gallery');
    await page.waitForFunction((y) => Math.abs(window.scrollY - y) < 50, before);
    assertNoProblems(page);
  });

  test('a selection is trashed with one undo, and downloads as one ZIP', async () => {
    await page.goto('/gallery');
    const boxes = page.locator('input.pick');
    await boxes.nth(0).click();
    await boxes.nth(3).click({ modifiers: ['Shift'] });
    await page.getByText('4 selected').waitFor();
    await screenshot(page, 'gallery-selection');
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: 'Download selected (ZIP)' }).click(),
    ]);
    assert.match(download.suggestedFilename(), /^gallery-.*-4-images\.zip$/);
    const zip = fs.readFileSync(await download.path());
    assert.equal(zip.subarray(0, 2).toString(), 'PK');

    await submit(page, page.getByRole('button', { name: 'Move selected to trash' }));
    await page.getByText('4 images were moved to the trash.').waitFor();
    assert.equal(await page.locator('h1').innerText(), 'My images 199');
    await submit(page, page.getByRole('button', { name: 'Undo' }));
    assert.equal(await page.locator('h1').innerText(), 'My images 203');
    assertNoProblems(page);
  });

  test('she sees her sessions, signs another one out, and a password change ends the rest', async () => {
    const phone = await openPage(browser, { userAgent: 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1' });
    await loginOk(phone, USER, PASSWORD);
    await page.goto('/account');
    const row = page.locator('table.sessions tbody tr').filter({ hasText: 'Safari on iPhone' });
    await row.waitFor();
    await page.getByText('This device').waitFor();
    await screenshot(page, 'account');
    await submit(page, row.getByRole('button', { name: /Sign out/ }));
    await page.getByText('That session has been signed out.').waitFor();
    await phone.goto('/gallery');
    assert.equal(pathOf(phone), '/login', 'the phone is signed out');

    await loginOk(phone, USER, PASSWORD);
    await page.getByLabel('Current password').fill(PASSWORD);
    await page.getByLabel('New password', { exact: true }).fill('family-password-2');
    await page.getByLabel('New password again').fill('family-password-2');
    await submit(page, page.getByRole('button', { name: 'Change password' }));
    await page.getByText('Password changed.', { exact: false }).waitFor();
    // Within the cache's second the other session's pages are refused too.
    await phone.waitForTimeout(1200);
    await phone.goto('/gallery');
    assert.equal(pathOf(phone), '/login', 'the old session elsewhere ended');
    assert.equal((await login(phone, USER, PASSWORD)).status(), 401, 'the old password is refused');
    await phone.context().close();
  });

  test('dark mode follows the system', async () => {
    const dark = await openPage(browser, { colorScheme: 'dark' });
    await loginOk(dark, USER, 'family-password-2');
    await dark.goto('/gallery');
    const bg = await dark.evaluate(() => getComputedStyle(document.body).backgroundColor);
    const [r, g, b] = bg.match(/\d+/g).map(Number);
    assert.ok(r + g + b < 120, `a dark background, not ${bg}`);
    await screenshot(dark, 'gallery-dark');
    await dark.context().close();
  });

  test('every page passes an automated accessibility check (axe-core), light and dark', async () => {
    // Axe is injected by the test, so these contexts let a script past the CSP.
    for (const scheme of ['light', 'dark']) {
      const p = await openPage(browser, { colorScheme: scheme, bypassCSP: true });
      const pages = ['/login'];
      const problems = [];
      for (const url of pages) {
        await p.goto(url);
        for (const v of await seriousViolations(p)) problems.push(`${scheme} ${url}: ${v}`);
      }
      await loginOk(p, USER, 'family-password-2');
      for (const url of ['/', '/gallery', `/images/${photoId}`, '/upload', '/trash', '/account']) {
        await p.goto(url);
        for (const v of await seriousViolations(p)) problems.push(`${scheme} ${url}: ${v}`);
      }
      assert.deepEqual(problems, [], 'serious or critical accessibility violations');
      await p.context().close();
    }
    const a11yAdmin = await openPage(browser, { bypassCSP: true });
    await loginOk(a11yAdmin, env.adminUser, env.adminPassword);
    for (const url of ['/admin', '/admin/users/new']) {
      await a11yAdmin.goto(url);
      assert.deepEqual(await seriousViolations(a11yAdmin), [], url);
    }
    await a11yAdmin.context().close();
  });
});
