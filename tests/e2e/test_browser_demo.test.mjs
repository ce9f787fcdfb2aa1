// The chat demo on demo.addr (http-api.md §1, docs/monitoring.md), in headless Chromium: "/"
// redirects to /chatdemo?apiurl=<API>; two browser pages log in as two users with the official JS
// SDK, exchange messages 1:1 and in a group, and after a reload see the history and the unread
// counts the server keeps. Screenshots: tests/e2e/artifacts/demo-*.png.

import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import { useServer, uid } from './lib/harness.mjs';
import { launchBrowser, newPage, screenshot } from './lib/browser.mjs';

const h = useServer();
let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

async function loginAs(page, user) {
  await page.goto(`${h.srv.demoBase}/`);
  await page.fill('#uid', user);
  await page.click('#login');
  await page.waitForSelector('#status[data-status="connected"]');
}

async function say(page, text) {
  await page.fill('#text', text);
  await page.click('#send');
  // acknowledged: the SENDACK gave it a message_seq
  await page.waitForSelector(`.msg.mine[data-seq]:has(.text:text-is("${text}"))`);
}

const conv = (id, type) => `#conversations li[data-channel="${id}:${type}"]`;
const unreadOf = (page, id, type) => page.textContent(`${conv(id, type)} .unread`);

h.test('/ redirects to /chatdemo with the API URL, and the page loads the SDK', async () => {
  const r = await fetch(`${h.srv.demoBase}/`, { redirect: 'manual' });
  assert.equal(r.status, 302);
  assert.equal(r.headers.get('location'), `/chatdemo?apiurl=${encodeURIComponent(h.srv.httpBase)}`);
  const page = await newPage(browser, 'load');
  await page.goto(`${h.srv.demoBase}/`);
  assert.equal(new URL(page.url()).pathname, '/chatdemo');
  assert.equal(await page.textContent('#apiurl'), h.srv.httpBase);
  assert.equal(await page.evaluate(() => typeof WK.WKSDK.shared), 'function', 'the bundled SDK is loaded');
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

h.test('two users chat 1:1 and in a group; after a reload history and unread counts are there', async () => {
  const alice = uid('alice');
  const bob = uid('bob');
  const group = uid('grp');
  const pa = await newPage(browser, 'alice');
  const pb = await newPage(browser, 'bob');
  await loginAs(pa, alice);
  await loginAs(pb, bob);

  // 1:1: alice writes, bob sees an unread conversation, opens it, answers
  await pa.fill('#peer', bob);
  await pa.click('#open-chat');
  await say(pa, 'hi bob');
  await pb.waitForSelector(`${conv(alice, 1)} .unread[data-count="1"]`);
  await pb.click(conv(alice, 1));
  await pb.waitForSelector('.msg:has(.text:text-is("hi bob"))');
  await say(pb, 'hi alice');
  await pa.waitForSelector('.msg:not(.mine):has(.text:text-is("hi alice"))');
  await screenshot(pa, 'demo-1to1-alice.png');

  // group: alice creates it with bob and writes twice; bob is in the 1:1 chat, so the group is unread
  await pa.fill('#group-id', group);
  await pa.fill('#group-members', bob);
  await pa.click('#create-group');
  await pa.waitForSelector(`${conv(group, 2)}.active`);
  await say(pa, 'hello group');
  await say(pa, 'anyone?');
  await pb.waitForSelector(`${conv(group, 2)} .unread[data-count="2"]`);
  await screenshot(pb, 'demo-group-unread-bob.png');

  // reload bob: logged in again from localStorage; the server kept the unread counts
  await pb.reload();
  await pb.waitForSelector('#status[data-status="connected"]');
  await pb.waitForSelector(`${conv(group, 2)} .unread[data-count="2"]`);
  assert.equal(await unreadOf(pb, alice, 1), '0', 'the 1:1 chat was read before the reload');
  await pb.click(conv(group, 2));
  await pb.waitForSelector('.msg:has(.text:text-is("anyone?"))');
  const texts = await pb.$$eval('#messages .msg .text', (els) => els.map((e) => e.textContent));
  assert.deepEqual(texts, ['hello group', 'anyone?'], 'group history in order');
  await pb.waitForSelector(`${conv(group, 2)} .unread[data-count="0"]`, { state: "attached" });
  await say(pb, 'here');
  await pa.waitForSelector('.msg:not(.mine):has(.text:text-is("here"))');

  // reload alice: the 1:1 history is kept
  await pa.reload();
  await pa.waitForSelector('#status[data-status="connected"]');
  await pa.click(conv(bob, 1));
  await pa.waitForSelector('.msg:has(.text:text-is("hi alice"))');
  const hist = await pa.$$eval('#messages .msg .text', (els) => els.map((e) => e.textContent));
  assert.deepEqual(hist, ['hi bob', 'hi alice']);
  await screenshot(pa, 'demo-history-alice.png');
  await screenshot(pb, 'demo-group-bob.png');

  // the server agrees: bob has read everything
  const convs = (await h.srv.post('/conversation/sync', { uid: bob, version: 0, msg_count: 1 })).json;
  assert.deepEqual(convs.map((c) => c.unread), convs.map(() => 0));
  assert.deepEqual([...pa.problems, ...pb.problems], []);
  await pa.context().close();
  await pb.context().close();
});
