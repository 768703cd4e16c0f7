// Logging in (right and wrong password, back to where you were headed) and logging out
// (after which the back button must not bring a private page back).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  addUser, assertNoProblems, env, launch, login, loginOk, openPage, pathOf, screenshot,
  submit,
} from '../lib/gallery.mjs';

describe('login and logout', () => {
  let browser;
  before(async () => {
    browser = await launch();
  });
  after(async () => {
    await browser?.close();
  });

  test('a wrong password shows the message on a 401 page and logs nobody in', async () => {
    const page = await openPage(browser);
    await page.goto('/login');
    const response = await login(page, env.adminUser, 'not-the-password');

    assert.equal(response.status(), 401);
    assert.equal(pathOf(page), '/login');
    await assert.doesNotReject(page.getByRole('alert').filter({ hasText: 'Invalid username or password.' }).waitFor());
    // The name is kept, the password is not; no navigation of a logged-in user.
    assert.equal(await page.getByLabel('Username').inputValue(), env.adminUser);
    assert.equal(await page.getByLabel('Password').inputValue(), '');
    assert.equal(await page.getByRole('button', { name: 'Log out' }).count(), 0);
    await screenshot(page, 'login-wrong-password');

    // Still logged out: a private page sends us back to the login form.
    await page.goto('/gallery');
    assert.equal(pathOf(page), '/login');
    assertNoProblems(page);
    await page.context().close();
  });

  test('the right password logs in, greets by full name, and returns to the page asked for', async () => {
    const page = await openPage(browser);
    await page.goto('/login');
    await screenshot(page, 'login');
    const response = await login(page, env.adminUser, env.adminPassword);

    assert.equal(response.status(), 303, 'a successful login redirects');
    assert.equal(pathOf(page), '/');
    assert.equal(await page.locator('h1').innerText(), 'Hello, Administrator');
    assert.equal(await page.locator('header .who').innerText(), 'Administrator');
    for (const name of ['My images', 'Upload', 'Admin']) {
      assert.equal(await page.locator('header nav').getByRole('link', { name, exact: true }).count(), 1, name);
    }
    await screenshot(page, 'home');
    await page.context().close();

    // A private page while logged out: login, then straight back to it.
    const other = await openPage(browser);
    await other.goto('/upload');
    assert.equal(pathOf(other), '/login');
    assert.equal(new URL(other.url()).searchParams.get('next'), '/upload');
    await loginOk(other, env.adminUser, env.adminPassword);
    assert.equal(pathOf(other), '/upload');
    assertNoProblems(other);
    await other.context().close();
  });

  test('after logout the back button shows the login page, not private pages', async () => {
    const admin = await openPage(browser);
    await loginOk(admin, env.adminUser, env.adminPassword);
    const username = 'carol';
    const fullName = 'Back Button Tester';
    await addUser(admin, { username, password: 'back-button-pw', fullName });
    await admin.context().close();

    const page = await openPage(browser);
    await loginOk(page, username, 'back-button-pw');
    await page.goto('/gallery');
    await page.getByText('No images yet.').waitFor();
    await page.goto('/upload');
    await page.getByRole('heading', { name: 'Upload images' }).waitFor();

    await submit(page, page.getByRole('button', { name: 'Log out' }));
    assert.equal(pathOf(page), '/login');

    // Back through the history: every private page comes back as the login form.
    for (const wanted of ['/upload', '/gallery']) {
      const response = await page.goBack({ waitUntil: 'load' });
      await page.waitForLoadState('load');
      assert.equal(pathOf(page), '/login', `back towards ${wanted} showed ${page.url()}`);
      const text = await page.locator('body').innerText();
      assert.ok(!text.includes(fullName), `the user's name is visible after logout: ${text}`);
      assert.ok(!text.includes('No images yet.') && !text.includes('Upload images'), `private content after logout: ${text}`);
      assert.equal(await page.getByRole('button', { name: 'Log out' }).count(), 0);
      assert.ok(response === null || response.status() < 400, 'going back reloaded the page');
      if (wanted === '/gallery') await screenshot(page, 'logout-back-button');
    }
    // And the old session is gone on the server too.
    await page.goto('/');
    assert.equal(pathOf(page), '/login');
    assertNoProblems(page);
    await page.context().close();
  });
});
