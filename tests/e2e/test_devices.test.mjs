// Devices (http-api.md §5.2, §5.7, §5.15): master/slave kick rules between connections of the
// same uid and device flag, /user/token with device_level 1, and multi-device sync: a message
// reaches the sender's other devices (without red dot) but never the sending connection.
// Token auth is on so device levels come from /user/token.

import assert from 'node:assert/strict';
import { useServer, uid, b64json } from './lib/harness.mjs';
import { PT, REASON } from './lib/wkproto.mjs';

const KICK_DELAY_MS = 500;
const h = useServer({ args: ['--tokenAuthOn=true', `--kickCloseDelay=${KICK_DELAY_MS}ms`] });

async function register(user, deviceFlag, deviceLevel, token = 't') {
  const r = await h.srv.post('/user/token', { uid: user, token, device_flag: deviceFlag, device_level: deviceLevel });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { status: 200 });
}

const login = (user, deviceFlag, deviceId, opts = {}) => h.login(user, { token: 't', deviceFlag, deviceId, ...opts });
const disconnects = (c) => c.history.filter((p) => p.type === PT.DISCONNECT);
const say = (content) => ({ type: 1, content });

h.test('a new master kicks the older same-flag connection with another device id (12, then closed)', async () => {
  const u = uid('dm');
  await register(u, 0, 1);
  await register(u, 1, 0);
  const web = await login(u, 1, 'browser');
  let old = await login(u, 0, 'phone-1');
  for (const next of ['phone-2', 'phone-3']) {
    const t0 = Date.now();
    const fresh = await login(u, 0, next);
    const d = await old.waitType(PT.DISCONNECT, 3000);
    assert.equal(d.reasonCode, REASON.CONNECT_KICK);
    assert.ok(d.reason.length > 0, 'reason text');
    assert.equal(await old.waitClosed(KICK_DELAY_MS + 2500), true, 'closed after kickCloseDelay');
    assert.ok(Date.now() - t0 >= KICK_DELAY_MS * 0.7, 'not closed at once');
    await fresh.ping();
    old = fresh;
  }
  assert.equal(disconnects(web).length, 0, 'another device flag is untouched');
  assert.equal(web.isClosed, false);
  await web.ping();
});

h.test('a master re-login with the same device id replaces the old connection silently', async () => {
  const u = uid('dr');
  await register(u, 0, 1);
  await register(u, 2, 1);
  const old = await login(u, 0, 'same-phone');
  const other = await login(u, 2, 'pc');
  const fresh = await login(u, 0, 'same-phone');
  assert.equal(await old.waitClosed(KICK_DELAY_MS + 2500), true);
  assert.equal(disconnects(old).length, 0, 'no DISCONNECT for the same device id');
  assert.equal(other.isClosed, false);
  await fresh.ping();
});

h.test('slaves coexist with each other and with a master; a slave replaces only its own device id', async () => {
  const u = uid('ds');
  await register(u, 1, 1, 'master');
  const m = await h.login(u, { token: 'master', deviceFlag: 1, deviceId: 'tab-m' });
  await register(u, 1, 0, 't'); // the WEB token is now a slave token (kicks after 10 s only with level 1)
  const a = await login(u, 1, 'tab-a');
  const b = await login(u, 1, 'tab-b');
  const a2 = await login(u, 1, 'tab-a');
  assert.equal(await a.waitClosed(KICK_DELAY_MS + 2500), true, 'same device id replaced');
  assert.equal(disconnects(a).length, 0);
  for (const c of [m, b, a2]) {
    assert.equal(c.isClosed, false);
    assert.equal(disconnects(c).length, 0, 'a slave login kicks nobody else');
    await c.ping();
  }
});

h.test('/user/token with device_level 1 kicks the same-flag connections (12), closing them after 10 s', async () => {
  const u = uid('dt');
  await register(u, 0, 0);
  await register(u, 1, 0);
  const app = await login(u, 0, 'p');
  const web = await login(u, 1, 'w');
  const t0 = Date.now();
  await register(u, 0, 1, 'new');
  const d = await app.waitType(PT.DISCONNECT, 3000);
  assert.equal(d.reasonCode, REASON.CONNECT_KICK);
  assert.equal(await app.waitClosed(5000), false, 'still open well after kickCloseDelay');
  assert.equal(await app.waitClosed(9000), true, 'closed about 10 s after the kick');
  assert.ok(Date.now() - t0 >= 9000, `closed after ${Date.now() - t0} ms`);
  assert.equal(disconnects(web).length, 0);
  assert.equal(web.isClosed, false);
});

h.test('person: the sender\'s other devices get the message named by the peer, without red dot', async () => {
  const a = uid('pa'); const b = uid('pb');
  for (const f of [0, 1, 2]) await register(a, f, 0);
  await register(b, 0, 0);
  const [a0, a1, a2, b0] = [await login(a, 0, 'a0'), await login(a, 1, 'a1'), await login(a, 2, 'a2'), await login(b, 0, 'b0')];
  const ack = await a0.send({ channelId: b, channelType: 1, payload: say('hi b') });
  assert.equal(ack.reasonCode, REASON.SUCCESS);
  const rb = await b0.waitRecv((p) => p.messageId === ack.messageId);
  assert.equal(rb.channelId, a);
  assert.equal(rb.redDot, true);
  for (const c of [a1, a2]) {
    const r = await c.waitRecv((p) => p.messageId === ack.messageId);
    assert.equal(r.channelId, b, 'the sender\'s devices see the peer');
    assert.equal(r.fromUid, a);
    assert.equal(r.redDot, false);
    assert.deepEqual(r.json, say('hi b'));
  }
  assert.equal((await a0.collect((p) => p.type === PT.RECV, 300)).length, 0, 'not echoed to the sending connection');

  // An API send from a reaches every device of a (there is no sending connection).
  const api = await h.srv.post('/message/send', { from_uid: a, channel_id: b, channel_type: 1, header: { red_dot: 1 }, payload: b64json(say('from the back end')) });
  assert.equal(api.status, 200, api.text);
  for (const c of [a0, a1, a2]) {
    const r = await c.waitRecv((p) => p.messageId.toString() === api.json.data.message_idstr);
    assert.equal(r.channelId, b);
    assert.equal(r.redDot, false);
  }
  assert.equal((await b0.waitRecv((p) => p.messageId.toString() === api.json.data.message_idstr)).redDot, true);
});

h.test('group: the sender\'s other devices get the message without red dot, the sending connection nothing', async () => {
  const a = uid('ga'); const b = uid('gb'); const g = uid('gg');
  await register(a, 0, 0); await register(a, 1, 0); await register(b, 0, 0);
  const r = await h.srv.post('/channel', { channel_id: g, channel_type: 2, subscribers: [a, b] });
  assert.equal(r.status, 200, r.text);
  const [a0, a1, b0] = [await login(a, 0, 'a0'), await login(a, 1, 'a1'), await login(b, 0, 'b0')];
  const ack = await a1.send({ channelId: g, channelType: 2, payload: say('to the group') });
  assert.equal(ack.reasonCode, REASON.SUCCESS);
  const own = await a0.waitRecv((p) => p.messageId === ack.messageId);
  assert.equal(own.channelId, g);
  assert.equal(own.redDot, false);
  const other = await b0.waitRecv((p) => p.messageId === ack.messageId);
  assert.equal(other.redDot, true);
  assert.equal((await a1.collect((p) => p.type === PT.RECV, 300)).length, 0);
});
