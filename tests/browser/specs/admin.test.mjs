// The admin pages: add a user, modify them (full name, admin flag, password), delete them
// after the confirmation page; and a non-admin refused with 403.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  addUser, assertNoProblems, env, launch, login, loginOk, openPage, pathOf, rowCells,
  screenshot, submit, userRow,
} from '../lib/gallery.mjs';

describe('admin: users', () => {
  let browser;
  let admin;
  const username = 'alice';
  const firstPassword = 'first-password-1';
  const newPassword = 'second-password-2';

  before(async () => {
    browser = await launch();
    admin = await openPage(browser);
    await loginOk(admin, env.adminUser, env.adminPassword);
  });
  after(async () => {
    await browser?.close();
  });

  test('an admin adds a user, who can then log in', async () => {
    await admin.getByRole('link', { name: 'Manage users' }).click();
    await admin.waitForURL('**/admin');
    const [, adminName, adminFlag] = await rowCells(admin, env.adminUser);
    assert.deepEqual([adminName, adminFlag], ['Administrator', 'yes']);
    await userRow(admin, env.adminUser).locator('small', { hasText: '(you)' }).waitFor();
    await admin.getByRole('link', { name: 'Add user' }).click();
    await admin.waitForURL('**/admin/users/new');
    await admin.getByLabel('Username').fill(username);
    await admin.getByLabel('Password').fill(firstPassword);
    await admin.getByLabel('Full name').fill('Alice Liddell');
    assert.equal(await admin.getByLabel('Administrator').isChecked(), false);
    await screenshot(admin, 'admin-add-user');
    await submit(admin, admin.getByRole('button', { name: 'Add user' }));

    assert.equal(pathOf(admin), '/admin');
    assert.deepEqual(await rowCells(admin, username), [username, 'Alice Liddell', 'no', '0']);
    await screenshot(admin, 'admin-users');

    const alice = await openPage(browser);
    await loginOk(alice, username, firstPassword);
    assert.equal(await alice.locator('h1').innerText(), 'Hello, Alice Liddell');
    assert.equal(await alice.locator('header nav').getByRole('link', { name: 'Admin' }).count(), 0);
    await alice.context().close();
    assertNoProblems(admin);
  });

  test('an admin modifies the full name, the admin flag and the password', async () => {
    await admin.goto('/admin');
    await userRow(admin, username).getByRole('link', { name: 'Modify' }).click();
    await admin.waitForURL('**/admin/users/*/edit');
    assert.equal(await admin.locator('h1').innerText(), `Modify ${username}`);
    assert.equal(await admin.getByLabel('Full name').inputValue(), 'Alice Liddell');
    assert.equal(await admin.getByLabel('New password').inputValue(), '');
    assert.equal(await admin.getByLabel('Administrator').isChecked(), false);

    await admin.getByLabel('Full name').fill('Alice P. Liddell');
    await admin.getByLabel('Administrator').check();
    await admin.getByLabel('New password').fill(newPassword);
    await screenshot(admin, 'admin-modify-user');
    await submit(admin, admin.getByRole('button', { name: 'Save' }));

    assert.equal(pathOf(admin), '/admin');
    assert.deepEqual(await rowCells(admin, username), [username, 'Alice P. Liddell', 'yes', '0']);

    // The old password no longer works; the new one does, and she is now an admin.
    const alice = await openPage(browser);
    const refused = await login(alice, username, firstPassword);
    assert.equal(refused.status(), 401);
    await loginOk(alice, username, newPassword);
    assert.equal(await alice.locator('h1').innerText(), 'Hello, Alice P. Liddell');
    await alice.locator('header nav').getByRole('link', { name: 'Admin' }).click();
    await alice.waitForURL('**/admin');
    await userRow(alice, username).locator('small', { hasText: '(you)' }).waitFor();
    await alice.context().close();

    // Modify again leaving the password empty: the password is kept; the flag comes off.
    await userRow(admin, username).getByRole('link', { name: 'Modify' }).click();
    await admin.waitForURL('**/admin/users/*/edit');
    assert.equal(await admin.getByLabel('Full name').inputValue(), 'Alice P. Liddell');
    assert.equal(await admin.getByLabel('Administrator').isChecked(), true);
    await admin.getByLabel('Administrator').uncheck();
    await submit(admin, admin.getByRole('button', { name: 'Save' }));
    assert.deepEqual(await rowCells(admin, username), [username, 'Alice P. Liddell', 'no', '0']);
    const again = await openPage(browser);
    await loginOk(again, username, newPassword);
    assert.equal(await again.locator('header nav').getByRole('link', { name: 'Admin' }).count(), 0);
    await again.context().close();
    assertNoProblems(admin);
  });

  test('an admin deletes a user after a confirmation page', async () => {
    // Alice is logged in elsewhere while she is deleted.
    const alice = await openPage(browser);
    await loginOk(alice, username, newPassword);

    await admin.goto('/admin');
    await userRow(admin, username).getByRole('link', { name: 'Delete' }).click();
    await admin.waitForURL('**/admin/users/*/delete');
    assert.equal(await admin.locator('h1').innerText(), `Delete ${username}?`);
    const text = await admin.locator('main').innerText();
    assert.match(text, /This deletes Alice P\. Liddell and all 0 of their images\. It cannot be undone\./);
    await screenshot(admin, 'admin-delete-confirm');

    // Cancel keeps her.
    await admin.getByRole('link', { name: 'Cancel' }).click();
    await admin.waitForURL('**/admin');
    assert.equal(await userRow(admin, username).count(), 1);

    await userRow(admin, username).getByRole('link', { name: 'Delete' }).click();
    await admin.waitForURL('**/admin/users/*/delete');
    await submit(admin, admin.getByRole('button', { name: 'Delete user and images' }));
    assert.equal(pathOf(admin), '/admin');
    assert.equal(await userRow(admin, username).count(), 0);
    assert.equal(await userRow(admin, env.adminUser).count(), 1);

    // Her open session is over, and she can no longer log in.
    await alice.reload();
    assert.equal(pathOf(alice), '/login');
    const refused = await login(alice, username, newPassword);
    assert.equal(refused.status(), 401);
    await alice.context().close();
    assertNoProblems(admin);
  });

  test('a non-admin is refused the admin pages with 403', async () => {
    const name = 'bob';
    await addUser(admin, { username: name, password: 'bob-password-1', fullName: 'Bob Plain' });
    const bob = await openPage(browser);
    await loginOk(bob, name, 'bob-password-1');
    assert.equal(await bob.locator('header nav').getByRole('link', { name: 'Admin' }).count(), 0);
    assert.equal(await bob.getByRole('link', { name: 'Manage users' }).count(), 0);

    const response = await bob.goto('/admin');
    assert.equal(response.status(), 403);
    assert.equal(await bob.locator('h1').innerText(), 'Forbidden');
    assert.equal(await bob.getByRole('alert').innerText(), 'Only administrators can open this page.');
    assert.equal(await bob.locator('table.users').count(), 0);
    await screenshot(bob, 'admin-forbidden');
    for (const url of ['/admin/users/new', '/admin/users/1/edit', '/admin/users/1/delete']) {
      assert.equal((await bob.goto(url)).status(), 403, url);
    }
    // A forged form post is refused as well (no token of an admin page to send).
    const post = await bob.request.post('/admin/users', {
      form: { username: 'mallory', password: 'mallory-pass', full_name: 'Mallory' },
      maxRedirects: 0,
    });
    assert.equal(post.status(), 403);
    await bob.context().close();
    assertNoProblems(admin);
  });
});
