// Token authentication (--tokenAuthOn=true): POST /user/token, then CONNECT with the right token
// succeeds and anything else gets a failing CONNACK (reason 2) followed by a close
// (http-api.md §4.2, §5.1; wire-protocol.md §4.2, §8.3).

import assert from 'node:assert/strict';
import { useServer, uid } from './lib/harness.mjs';
import { PT, REASON } from './lib/wkproto.mjs';

const h = useServer({ args: ['--tokenAuthOn=true'] });

async function register(user, token, deviceFlag = 0, extra = {}) {
  const r = await h.srv.post('/user/token', { uid: user, token, device_flag: deviceFlag, ...extra });
  assert.equal(r.status, 200, `/user/token: ${r.text}`);
  assert.deepEqual(r.json, { status: 200 });
}

/** Connect expecting failure: returns the CONNACK; asserts the socket is then closed. */
async function expectRejected(opts, transport = 'tcp') {
  const c = transport === 'ws' ? await h.ws() : await h.tcp();
  const ack = await c.connect(opts);
  assert.notEqual(ack.reasonCode, REASON.SUCCESS, 'CONNACK must not be success');
  assert.equal(ack.serverKey, '', 'failing CONNACK carries no server key');
  assert.equal(ack.salt, '', 'failing CONNACK carries no salt');
  assert.equal(await c.waitClosed(3000), true, 'server closes the connection after a failing CONNACK');
  return ack;
}

h.test('right token connects and can message; wrong token -> CONNACK 2 then close', async () => {
  const u = uid('tu'); const peer = uid('tp');
  await register(u, 'secret-1', 0);
  await register(peer, 'secret-2', 0);
  const cp = await h.login(peer, { token: 'secret-2', deviceFlag: 0 });
  const c = await h.login(u, { token: 'secret-1', deviceFlag: 0 });
  const ack = await c.send({ channelId: peer, channelType: 1, payload: { type: 1, content: 'authed' } });
  assert.equal(ack.reasonCode, REASON.SUCCESS);
  await cp.waitRecv();

  const bad = await expectRejected({ uid: u, token: 'secret-X', deviceFlag: 0, version: 2 });
  assert.equal(bad.reasonCode, REASON.AUTH_FAIL);
  assert.equal(bad.raw[0], 0x20, 'v2 failing CONNACK: flags 0, no serverVersion');
  assert.equal(bad.raw.toString('hex').slice(20), '0200000000', 'reason 2, serverKey "", salt "" (V2c layout)');
});

h.test('wrong token over WebSocket at v4 -> CONNACK 2 then close', async () => {
  const u = uid('tw');
  await register(u, 'tok', 1);
  const bad = await expectRejected({ uid: u, token: 'nope', deviceFlag: 1, version: 4 }, 'ws');
  assert.equal(bad.reasonCode, REASON.AUTH_FAIL);
});

h.test('empty token -> CONNACK 2', async () => {
  const u = uid('te');
  await register(u, 'tok', 0);
  const bad = await expectRejected({ uid: u, token: '', deviceFlag: 0 });
  assert.equal(bad.reasonCode, REASON.AUTH_FAIL);
});

h.test('unknown uid -> CONNACK 2', async () => {
  const bad = await expectRejected({ uid: uid('never'), token: 'whatever', deviceFlag: 0 });
  assert.equal(bad.reasonCode, REASON.AUTH_FAIL);
});

h.test('tokens are per device flag: APP token does not log in WEB', async () => {
  const u = uid('tf');
  await register(u, 'app-token', 0);
  const bad = await expectRejected({ uid: u, token: 'app-token', deviceFlag: 1 });
  assert.equal(bad.reasonCode, REASON.AUTH_FAIL);
  await register(u, 'web-token', 1);
  await h.login(u, { token: 'web-token', deviceFlag: 1 });
  await h.login(u, { token: 'app-token', deviceFlag: 0 });
});

h.test('re-registering replaces the token', async () => {
  const u = uid('tr');
  await register(u, 'old', 0);
  await register(u, 'new', 0);
  const bad = await expectRejected({ uid: u, token: 'old', deviceFlag: 0 });
  assert.equal(bad.reasonCode, REASON.AUTH_FAIL);
  await h.login(u, { token: 'new', deviceFlag: 0 });
});

for (const badUid of ['a@b', 'a#b', 'a&b', '']) {
  h.test(`uid ${JSON.stringify(badUid)} -> non-success CONNACK and close`, async () => {
    if (badUid) {
      const r = await h.srv.post('/user/token', { uid: badUid, token: 't', device_flag: 0 });
      assert.equal(r.status, 400, `/user/token rejects uid ${badUid}: ${r.status} ${r.text}`);
    }
    const c = await h.tcp();
    const ack = await c.connect({ uid: badUid, token: 't', deviceFlag: 0, version: 4 });
    assert.equal(ack.type, PT.CONNACK);
    assert.notEqual(ack.reasonCode, REASON.SUCCESS);
    assert.equal(await c.waitClosed(3000), true, 'connection closed');
  });
}

h.test('/user/token validation: missing uid or token -> 400', async () => {
  for (const body of [{ token: 't', device_flag: 0 }, { uid: uid('v'), device_flag: 0 }, { uid: uid('v'), token: '', device_flag: 0 }]) {
    const r = await h.srv.post('/user/token', body);
    assert.equal(r.status, 400, `${JSON.stringify(body)} -> ${r.status} ${r.text}`);
    assert.equal(r.json?.status, 400);
    assert.ok(r.json.msg);
  }
});

h.test('after all the rejections the server still serves authenticated users', async () => {
  const a = uid('ok'); const b = uid('ok');
  await register(a, 'ta', 0); await register(b, 'tb', 0);
  const cb = await h.login(b, { token: 'tb' });
  const ca = await h.login(a, { token: 'ta' });
  const ack = await ca.send({ channelId: b, channelType: 1, payload: { type: 1, content: 'still fine' } });
  assert.equal(ack.reasonCode, REASON.SUCCESS);
  const r = await cb.waitRecv();
  assert.deepEqual(r.json, { type: 1, content: 'still fine' });
});
