// Kicks between connections of the same uid and device flag (wire-protocol.md §4.8, §8.7;
// http-api.md §4.2, §5.2). Token auth is on so device levels come from /user/token.

import assert from 'node:assert/strict';
import { useServer, uid } from './lib/harness.mjs';
import { PT, REASON } from './lib/wkproto.mjs';

const KICK_DELAY_MS = 500;
const h = useServer({ args: ['--tokenAuthOn=true', `--kickCloseDelay=${KICK_DELAY_MS}ms`] });

async function register(user, token, deviceFlag, deviceLevel) {
  const r = await h.srv.post('/user/token', { uid: user, token, device_flag: deviceFlag, device_level: deviceLevel });
  assert.equal(r.status, 200, r.text);
}

h.test('master login kicks the same-flag device (DISCONNECT 12) but not other flags', async () => {
  const u = uid('km');
  await register(u, 'app', 0, 1);
  await register(u, 'web', 1, 1);
  const old = await h.login(u, { token: 'app', deviceFlag: 0, deviceId: 'phone-1' });
  const web = await h.login(u, { token: 'web', deviceFlag: 1, deviceId: 'browser-1' });
  const t0 = Date.now();
  const fresh = await h.login(u, { token: 'app', deviceFlag: 0, deviceId: 'phone-2' });
  const d = await old.waitType(PT.DISCONNECT, 3000);
  assert.equal(d.raw[0], 0x90);
  assert.equal(d.reasonCode, REASON.CONNECT_KICK);
  assert.ok(d.reason.length > 0, 'reason text');
  assert.equal(await old.waitClosed(KICK_DELAY_MS + 2500), true, 'kicked connection closed');
  assert.ok(Date.now() - t0 >= KICK_DELAY_MS * 0.7, 'closed after the kick delay, not at once');
  assert.equal(web.history.filter((p) => p.type === PT.DISCONNECT).length, 0, 'other device flag untouched');
  assert.equal(web.isClosed, false);
  await fresh.ping();
  await web.ping();
});

h.test('the kicked device no longer receives messages; the new one does', async () => {
  const u = uid('kr'); const peer = uid('kp');
  await register(u, 't', 0, 1);
  await register(peer, 'p', 0, 0);
  const old = await h.login(u, { token: 't', deviceFlag: 0, deviceId: 'a' });
  const fresh = await h.login(u, { token: 't', deviceFlag: 0, deviceId: 'b' });
  await old.waitType(PT.DISCONNECT);
  await old.waitClosed(KICK_DELAY_MS + 2500);
  const cp = await h.login(peer, { token: 'p' });
  const ack = await cp.send({ channelId: u, channelType: 1, payload: { type: 1, content: 'who gets it' } });
  assert.equal(ack.reasonCode, REASON.SUCCESS);
  await fresh.waitRecv();
  assert.equal(old.history.filter((p) => p.type === PT.RECV).length, 0);
});

h.test('slave logins coexist; only the same deviceId is replaced, silently', async () => {
  const u = uid('ks');
  await register(u, 's', 0, 0);
  const a = await h.login(u, { token: 's', deviceFlag: 0, deviceId: 'dev-a' });
  const b = await h.login(u, { token: 's', deviceFlag: 0, deviceId: 'dev-b' });
  const a2 = await h.login(u, { token: 's', deviceFlag: 0, deviceId: 'dev-a' });
  assert.equal(await a.waitClosed(KICK_DELAY_MS + 2500), true, 'old connection with the same deviceId closed');
  assert.equal(a.history.filter((p) => p.type === PT.DISCONNECT).length, 0, 'without a DISCONNECT');
  assert.equal(b.isClosed, false, 'a slave with another deviceId stays');
  await b.ping();
  await a2.ping();
});

h.test('/user/device_quit disconnects the device and invalidates its token', async () => {
  const u = uid('kq');
  await register(u, 'q', 0, 0);
  const c = await h.login(u, { token: 'q', deviceFlag: 0 });
  const r = await h.srv.post('/user/device_quit', { uid: u, device_flag: 0 });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { status: 200 });
  const d = await c.waitType(PT.DISCONNECT, 3000);
  assert.equal(d.reasonCode, REASON.CONNECT_KICK);
  assert.equal(await c.waitClosed(KICK_DELAY_MS + 2500), true);
  const again = await h.tcp();
  const ack = await again.connect({ uid: u, token: 'q', deviceFlag: 0 });
  assert.equal(ack.reasonCode, REASON.AUTH_FAIL, 'the old token no longer works');
});
