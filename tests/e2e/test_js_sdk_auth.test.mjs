// The real wukongimjssdk@1.0.4 against a server with --tokenAuthOn=true: the registered token
// connects; a wrong token yields status ConnectFail with reason code 2, and the SDK then stops
// reconnecting (wire-protocol.md §4.2, §12; http-api.md §5.1).

import assert from 'node:assert/strict';
import { useServer, uid } from './lib/harness.mjs';
import { SdkUser, ConnectStatus } from './lib/sdk.mjs';
import { PT, REASON, sleep } from './lib/wkproto.mjs';

const h = useServer({ args: ['--tokenAuthOn=true'] });
const sdks = [];
h.cleanup(() => Promise.all(sdks.map((s) => s.close())));

async function register(user, token) {
  const r = await h.srv.post('/user/token', { uid: user, token, device_flag: 1, device_level: 0 });
  assert.equal(r.status, 200, r.text);
}

async function spawnAndConnect(user, token) {
  const s = await SdkUser.spawn(`sdk:${user}`);
  sdks.push(s);
  await s.connect({ addr: `ws://127.0.0.1:${h.srv.wsPort}`, uid: user, token });
  return s;
}

h.test('registered token: SDK connects and can exchange a message', async () => {
  const su = uid('s'); const ru = uid('r');
  await register(su, 'sdk-token');
  const r = await h.srv.post('/user/token', { uid: ru, token: 'raw-token', device_flag: 0 });
  assert.equal(r.status, 200);
  const s = await spawnAndConnect(su, 'sdk-token');
  const st = await s.waitStatus(ConnectStatus.Connected);
  assert.equal(st.reasonCode, REASON.SUCCESS);
  const raw = await h.login(ru, { token: 'raw-token' });
  const ack = await raw.send({ channelId: su, channelType: 1, payload: { type: 1, content: 'authed hello' } });
  assert.equal(ack.reasonCode, REASON.SUCCESS);
  const m = await s.waitMessage((x) => x.fromUID === ru);
  assert.equal(m.text, 'authed hello');
});

h.test('wrong token: status ConnectFail with reason 2, and no reconnect', async () => {
  const su = uid('s');
  await register(su, 'right');
  const s = await spawnAndConnect(su, 'wrong');
  const st = await s.waitStatus(ConnectStatus.ConnectFail, 5000);
  assert.equal(st.reasonCode, REASON.AUTH_FAIL, 'reason code 2');
  // SDK 1.0.4 retries 3 s after a close unless it got a failing CONNACK; wait past that.
  await sleep(3800);
  const connects = s.events.filter((e) => e.ev === 'wsout' && (e.header >> 4) === PT.CONNECT);
  assert.equal(connects.length, 1, `one CONNECT only:\n${s.describe()}`);
  assert.equal(s.events.some((e) => e.ev === 'status' && e.status === ConnectStatus.Connected), false);
  assert.deepEqual(s.errors(), []);
});

h.test('unregistered uid: ConnectFail with reason 2', async () => {
  const s = await spawnAndConnect(uid('nobody'), 'whatever');
  const st = await s.waitStatus(ConnectStatus.ConnectFail, 5000);
  assert.equal(st.reasonCode, REASON.AUTH_FAIL);
});
