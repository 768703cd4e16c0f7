// A new user's images, in order: the empty gallery, several images uploaded at once through
// the file picker, the grid of thumbnails, one image's page, and deleting it.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  addUser, assertNoProblems, env, fixture, launch, loginOk, openPage, pathOf, screenshot,
  submit,
} from '../lib/gallery.mjs';

// Every supported type; the 12 MP photo is left to the API tests (slow in a debug build).
const FILES = [
  'rocket.jpg',
  'camera.png',
  'chelsea-animated.gif',
  'rocket.webp',
  'chelsea-exif-rot6.jpg',
  'astronaut-alpha.png',
];

/** Waits until every image on the page has loaded (scrolling lazy ones into view). */
async function allImagesLoaded(page, selector) {
  const images = page.locator(selector);
  const count = await images.count();
  for (let i = 0; i < count; i++) {
    const img = images.nth(i);
    await img.scrollIntoViewIfNeeded();
    await page.waitForFunction((el) => el.complete, await img.elementHandle());
    const loaded = await img.evaluate((el) => ({ w: el.naturalWidth, h: el.naturalHeight, src: el.currentSrc }));
    assert.ok(loaded.w > 0 && loaded.h > 0, `image ${loaded.src} did not load`);
  }
  await page.evaluate(() => window.scrollTo(0, 0));
  return count;
}

describe('images: empty gallery, upload, grid, image page, trash', () => {
  let browser;
  let page;
  const username = 'dave';
  const fullName = 'Photo Tester';
  let rocketId;

  before(async () => {
    browser = await launch();
    const admin = await openPage(browser);
    await loginOk(admin, env.adminUser, env.adminPassword);
    await addUser(admin, { username, password: 'photos-password', fullName });
    await admin.context().close();
    page = await openPage(browser);
    await loginOk(page, username, 'photos-password');
  });
  after(async () => {
    await browser?.close();
  });

  test('a new user sees the empty state, which links to the upload page', async () => {
    await page.getByRole('link', { name: 'View my images' }).click();
    await page.waitForURL('**/gallery');
    assert.equal(await page.locator('h1').innerText(), 'My images 0');
    await page.getByText('No images yet.').waitFor();
    assert.equal(await page.locator('ul.grid img').count(), 0);
    await screenshot(page, 'gallery-empty');

    await page.getByRole('link', { name: 'Upload your first images' }).click();
    await page.waitForURL('**/upload');
    await page.getByRole('heading', { name: 'Upload images' }).waitFor();
    assertNoProblems(page);
  });

  test('several images are uploaded at once through the file picker', async () => {
    assert.equal(pathOf(page), '/upload');
    const picker = page.locator('input[type=file][name=files]');
    assert.equal(await picker.getAttribute('multiple'), '');
    await picker.setInputFiles(FILES.map(fixture));
    // upload.js counts the chosen files.
    await page.locator('#chosen').filter({ hasText: `${FILES.length} files chosen` }).waitFor();
    await screenshot(page, 'upload-chosen');

    await submit(page, page.getByRole('button', { name: 'Upload' }));
    assert.equal(pathOf(page), '/gallery', `the upload failed: ${await page.locator('main').innerText()}`);
    assertNoProblems(page);
  });

  test('the gallery shows a grid of thumbnails, one per image', async () => {
    assert.equal(pathOf(page), '/gallery');
    assert.equal(await page.locator('h1').innerText(), `My images ${FILES.length}`);
    assert.equal(await page.getByText('No images yet.').count(), 0);
    const alts = await page.locator('ul.grid li a img').evaluateAll((imgs) => imgs.map((i) => i.alt));
    assert.deepEqual([...alts].sort(), [...FILES].sort());
    assert.equal(await allImagesLoaded(page, 'ul.grid img'), FILES.length);
    // Thumbnails, not the originals: at most 400 px on the long edge.
    const sizes = await page.locator('ul.grid img').evaluateAll((imgs) =>
      imgs.map((i) => ({ src: i.getAttribute('src'), w: i.naturalWidth, h: i.naturalHeight })));
    for (const s of sizes) {
      assert.match(s.src, /^\/images\/[^/]+\/thumb$/);
      assert.ok(Math.max(s.w, s.h) <= 400, `${s.src} is ${s.w}x${s.h}`);
    }
    // Turned upright per EXIF (orientation 6 on a landscape picture: a portrait thumbnail).
    const rotated = page.locator('ul.grid img[alt="chelsea-exif-rot6.jpg"]');
    const [w, h] = await rotated.evaluate((el) => [el.naturalWidth, el.naturalHeight]);
    assert.ok(w < h, `the EXIF-rotated thumbnail is ${w}x${h}, not portrait`);
    await screenshot(page, 'gallery-grid');

    // The home page counts them too.
    await page.goto('/');
    assert.equal(await page.locator('main p').first().innerText(), `You have ${FILES.length} images.`);
    await page.goto('/gallery');
    assertNoProblems(page);
  });

  test('a thumbnail opens the image page with the full image and its details', async () => {
    await page.locator('ul.grid a[title="rocket.jpg"]').click();
    await page.waitForURL('**/images/*');
    rocketId = pathOf(page).split('/')[2];
    assert.ok(rocketId, 'the image page has an id');
    assert.equal(await page.locator('h1').innerText(), 'rocket.jpg');
    assert.equal(await page.title(), 'rocket.jpg · Gallery');

    const img = page.locator('figure.full img');
    assert.equal(await img.getAttribute('src'), `/images/${rocketId}/original`);
    await allImagesLoaded(page, 'figure.full img');
    const natural = await img.evaluate((el) => `${el.naturalWidth} × ${el.naturalHeight}`);
    const details = Object.fromEntries(
      await page.locator('figcaption dl dt').evaluateAll((dts) =>
        dts.map((dt) => [dt.textContent.trim(), dt.nextElementSibling.textContent.trim()])),
    );
    assert.equal(details.Dimensions, natural, 'the dimensions shown are those of the image');
    assert.equal(details.Type, 'image/jpeg');
    assert.match(details.Size, /\d/);
    assert.match(details.Uploaded, /\d/);
    await page.getByRole('link', { name: 'All images' }).waitFor();
    // Six images: at least one neighbour to step to.
    assert.ok((await page.locator('a[rel=prev], a[rel=next]').count()) >= 1, 'previous/next links');
    await screenshot(page, 'image-page');
    assertNoProblems(page);
  });

  test('deleting moves the image to the trash, undo brings it back, the trash deletes it for good', async () => {
    assert.equal(pathOf(page), `/images/${rocketId}`);
    await submit(page, page.getByRole('button', { name: 'Move to trash' }));
    // Gone from the gallery at once, with an undo on the next page.
    assert.equal(pathOf(page), '/gallery');
    assert.equal(await page.locator('h1').innerText(), `My images ${FILES.length - 1}`);
    assert.equal(await page.locator('ul.grid a[title="rocket.jpg"]').count(), 0);
    await page.getByRole('status').filter({ hasText: 'moved to the trash' }).waitFor();
    await screenshot(page, 'gallery-undo');
    await submit(page, page.getByRole('button', { name: 'Undo' }));
    assert.equal(pathOf(page), '/gallery');
    assert.equal(await page.locator('ul.grid a[title="rocket.jpg"]').count(), 1);

    // Again, then from the trash: deleted for good.
    await page.goto(`/images/${rocketId}`);
    await submit(page, page.getByRole('button', { name: 'Move to trash' }));
    await page.getByRole('link', { name: 'Trash', exact: true }).click();
    await page.waitForURL('**/trash');
    assert.equal(await page.locator('ul.grid img[alt="rocket.jpg"]').count(), 1);
    assert.match(await page.locator('ul.grid .left').first().innerText(), /Deleted for good in 30 days/);
    await screenshot(page, 'trash');
    await submit(page, page.getByRole('button', { name: 'Delete rocket.jpg for good' }));
    assert.equal(pathOf(page), '/trash');
    await page.getByText('The trash is empty.').waitFor();

    // The bytes are gone on the server (asked past the browser's cache, which keeps image
    // bytes for a year: they are served `private, max-age=31536000, immutable`).
    for (const url of [`/images/${rocketId}/original`, `/images/${rocketId}/thumb`]) {
      const response = await page.request.get(url);
      assert.equal(response.status(), 404, url);
    }
    const response = await page.goto(`/images/${rocketId}`);
    assert.equal(response.status(), 404);
    assert.equal(await page.locator('h1').innerText(), 'Not found');
    assert.equal(await page.getByRole('alert').innerText(), 'There is nothing here.');
    await screenshot(page, 'image-deleted-404');
    assertNoProblems(page);
  });
});
