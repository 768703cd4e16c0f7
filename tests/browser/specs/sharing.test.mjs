// Sharing, as a family does it: gina puts photos in an album, shares it with a password,
// and a grandparent with no account (a browser of their own) opens the link, types the
// password and browses with the viewer; gina revokes the link and the same browser now
// gets the not-found page. Screenshots of the album, the link, the shared grid and viewer.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { after, before, describe, test } from 'node:test';

import {
  addUser, assertNoProblems, env, fixture, launch, loginOk, openPage, pathOf, screenshot, submit,
} from '../lib/gallery.mjs';

const require = createRequire(import.meta.url);
const AXE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const USER = 'gina';
const PASSWORD = 'sharing-password-1';
const LINK_PASSWORD = 'for-grandma';

async function seriousViolations(page) {
  await page.evaluate(AXE);
  const result = await page.evaluate(() =>
    window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21aa'] } }));
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
}

describe('sharing: an album, a link with a password, a visitor without an account, revocation', () => {
  let browser;
  let page;
  let link;

  before(async () => {
    browser = await launch();
    const admin = await openPage(browser);
    await loginOk(admin, env.adminUser, env.adminPassword);
    await addUser(admin, { username: USER, password: PASSWORD, fullName: 'Gina Family' });
    page = await openPage(browser);
    await loginOk(page, USER, PASSWORD);
    await page.goto('/upload');
    await page.locator('input[type=file]').setInputFiles(
      ['exif-gps.jpg', 'rocket.jpg', 'camera.png'].map(fixture),
    );
    await Promise.all([
      page.waitForURL((u) => u.pathname === '/gallery' && u.search === '?uploaded=3', { timeout: 120_000 }),
      page.getByRole('button', { name: 'Upload', exact: true }).click(),
    ]);
  });
  after(async () => {
    await browser?.close();
  });

  test('she selects photos, makes an album of them and shares it with a password', async () => {
    await page.goto('/gallery');
    await page.getByRole('button', { name: 'Select all on this page' }).click();
    await submit(page, page.getByRole('button', { name: 'Add selected to an album…' }));
    assert.equal(await page.locator('h1').innerText(), 'Add 3 photos to an album');
    await page.getByLabel('Title of a new album').fill("Grandma's visit");
    await submit(page, page.getByRole('button', { name: 'Add' }));
    assert.match(pathOf(page), /^\/albums\/[0-9a-f-]{36}$/);
    await page.getByText('3 photos added.').waitFor();
    assert.equal(await page.locator('ol.grid li').count(), 3);
    await screenshot(page, 'album');

    await page.getByLabel('Password (optional)').fill(LINK_PASSWORD);
    await page.getByLabel('Expires after (days, optional)').fill('30');
    await page.getByLabel('Allow downloading the originals').check();
    await submit(page, page.getByRole('button', { name: 'Create a link' }));
    assert.equal(await page.locator('h1').innerText(), 'Link created');
    link = await page.getByLabel('The link').inputValue();
    assert.match(link, new RegExp(`^${env.baseURL}/s/[A-Za-z0-9_-]{43}$`));
    await screenshot(page, 'share-link');
    assertNoProblems(page);
  });

  test('a visitor with no account types the password and browses with the viewer', async () => {
    const visitor = await openPage(browser);
    const first = await visitor.goto(link);
    assert.equal(first.status(), 200);
    assert.equal(first.headers()['x-robots-tag'], 'noindex, nofollow, noarchive');
    await visitor.getByRole('heading', { name: 'These photos are protected' }).waitFor();
    // A wrong password is the same not-found page as a link that does not exist.
    await visitor.getByLabel('Password').fill('grandpa');
    const [wrong] = await Promise.all([
      visitor.waitForResponse((r) => r.request().method() === 'POST'),
      visitor.getByRole('button', { name: 'Open' }).click(),
    ]);
    assert.equal(wrong.status(), 404);
    await visitor.goto(link);
    await visitor.getByLabel('Password').fill(LINK_PASSWORD);
    await submit(visitor, visitor.getByRole('button', { name: 'Open' }));
    await visitor.getByRole('heading', { name: /Grandma's visit/ }).waitFor();
    const thumbs = visitor.locator('ol.grid img');
    assert.equal(await thumbs.count(), 3);
    await visitor.waitForFunction(() => [...document.querySelectorAll('ol.grid img')].every((i) => i.complete && i.naturalWidth > 0));
    // Nothing of gina's account is reachable from here.
    assert.equal(await visitor.locator('a[href^="/gallery"], a[href^="/albums"], a[href^="/images"]').count(), 0);
    assert.equal(await visitor.getByRole('button', { name: 'Log out' }).count(), 0);
    assert.deepEqual(await seriousViolations(visitor), []);
    await screenshot(visitor, 'shared-album');

    // The viewer: arrow keys step through the album, Escape goes back to its grid.
    await visitor.locator('ol.grid a').first().click();
    await visitor.waitForURL(/\/s\/[^/]+\/i\/[^/]+$/);
    const start = pathOf(visitor);
    await visitor.locator('figure.full img').evaluate((img) => img.decode());
    assert.ok(await visitor.locator('figure.full img').evaluate((img) => img.naturalWidth > 0));
    await visitor.getByRole('link', { name: 'Download original' }).waitFor();
    await screenshot(visitor, 'shared-viewer');
    await visitor.keyboard.press('ArrowRight');
    await visitor.waitForURL((u) => u.pathname !== start && u.pathname.includes('/i/'));
    await visitor.keyboard.press('ArrowLeft');
    await visitor.waitForURL((u) => u.pathname === start);
    await visitor.keyboard.press('Escape');
    await visitor.waitForURL((u) => /^\/s\/[^/]+$/.test(u.pathname));
    assert.deepEqual(await seriousViolations(visitor), []);
    assertNoProblems(visitor);
    page.visitor = visitor;
  });

  test('she revokes the link, and the same visitor now gets the not-found page', async () => {
    await page.goto('/shares');
    const row = page.locator('table.links tbody tr').first();
    assert.match(await row.innerText(), /Grandma's visit/);
    assert.match(await row.locator('td').nth(5).innerText(), /^[1-9]/, 'the visit is counted');
    await submit(page, row.getByRole('button', { name: /^Revoke/ }));
    assert.equal(pathOf(page), '/shares');
    assert.match(await page.locator('table.links tbody tr').first().innerText(), /revoked/);

    const visitor = page.visitor;
    const again = await visitor.goto(link);
    assert.equal(again.status(), 404);
    await visitor.getByRole('heading', { name: 'Not found' }).waitFor();
    assertNoProblems(visitor);
  });
});
