// The monitor web UI on the manager port (/web/, docs/monitoring.md), in headless Chromium: live
// numbers and charts from /metrics that follow real traffic, the manager login, user and channel
// lookups, and the recent warnings (here: a webhook receiver that is down). Screenshot:
// tests/e2e/artifacts/monitor.png.

import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import { useServer, uid } from './lib/harness.mjs';
import { freePort } from './lib/server.mjs';
import { launchBrowser, newPage, screenshot } from './lib/browser.mjs';

const deadPort = await freePort(); // nothing listens there: every webhook POST fails, and is logged
const h = useServer({ args: [`--webhook.httpAddr=http://127.0.0.1:${deadPort}/hook`, '--webhook.focusEvents=user.onlinestatus'] });
let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

/** Wait until the element's text, as a number, satisfies pred (the page polls every second). */
function waitNumber(page, sel, pred, what) {
  return page.waitForFunction(([s, src]) => {
    const el = document.querySelector(s);
    // eslint-disable-next-line no-new-func
    return el && new Function('n', `return ${src}`)(Number(el.textContent));
  }, [sel, pred], { timeout: 10000 }).catch((e) => { throw new Error(`${what}: ${e.message}`); });
}

h.test('live numbers follow the traffic; login, lookups and recent warnings work', async () => {
  const page = await newPage(browser, 'monitor');
  await page.goto(`${h.srv.managerBase}/`);
  assert.equal(new URL(page.url()).pathname, '/web/', '/ leads to the monitor');
  await page.waitForSelector('#updated[data-ok="1"]');
  await waitNumber(page, '#connections', 'n === 0', 'no connections yet');

  const a = uid('mona');
  const g = uid('mong');
  const b = uid('monb');
  assert.equal((await h.srv.post('/channel', { channel_id: g, channel_type: 2, subscribers: [a, b] })).status, 200);
  const ca = await h.login(a);
  const cb = await h.login(b, { transport: 'ws' });
  await waitNumber(page, '#connections', 'n === 2', 'two connections');
  await waitNumber(page, '#online-users', 'n === 2', 'two users online');
  for (let i = 0; i < 5; i++) {
    const ack = await ca.send({ channelId: g, channelType: 2, payload: { type: 1, content: `monitored ${i}` } });
    assert.equal(ack.reasonCode, 1);
  }
  await cb.waitRecv((p) => p.json?.content === 'monitored 4');
  await waitNumber(page, '#sends-total', 'n === 5', 'five sends');
  await page.waitForFunction(() => /ms/.test(document.querySelector('#latency').textContent) || document.querySelector('#latency').textContent.includes('–'));
  assert.match(await page.textContent('#rss'), /MiB|KiB|GiB/);

  // log in (guest/guest is prefilled), then look up a user and a channel
  await page.waitForSelector('#login-view:not([hidden])');
  await page.click('#login');
  await page.waitForSelector('#tools:not([hidden])');
  await page.fill('#lookup-uid', b);
  await page.click('#lookup-user');
  await page.waitForSelector('#user-summary');
  assert.match(await page.textContent('#user-summary'), /online on 1 device\(s\); 1 connection\(s\)/);
  const cells = await page.$$eval('#user-result td', (tds) => tds.map((td) => td.textContent));
  assert.ok(cells.includes(b) && cells.some((t) => /^App\(/.test(t)), `the connection's row: ${cells.join(' | ')}`);
  await page.fill('#lookup-channel', g);
  await page.click('#lookup-channel-btn');
  await page.waitForSelector('#channel-summary');
  assert.equal(await page.textContent('#channel-summary'), `${g}: 5 recent message(s)`);
  const texts = await page.$$eval('#channel-result td', (tds) => tds.map((td) => td.textContent));
  assert.ok(texts.includes('monitored 0') && texts.includes('monitored 4'), 'message texts decoded');

  // the webhook receiver is down: the failed POST is a warning the page lists
  await page.waitForSelector('#logs li.warn:has-text("POST failed")', { timeout: 15000 });
  assert.match(await page.textContent('#logs li.warn'), /level=warn comp=webhook msg="POST failed/);

  await screenshot(page, 'monitor.png');

  // a reload keeps the login
  await page.reload();
  await page.waitForSelector('#tools:not([hidden])');
  await page.waitForSelector('#updated[data-ok="1"]');
  await waitNumber(page, '#connections', 'n === 2', 'still two connections after the reload');
  assert.deepEqual(page.problems, []);
  await page.context().close();
  ca.close(); cb.close();
});
