// CONNECT for the special uids of http-api.md §5.1 with tokenAuthOn: the manager uid authenticates
// with managerToken (not a /user/token token) and is a slave; visitor uids (suffix ___vstr) connect
// without a registered token; everyone else still needs theirs.

import assert from 'node:assert/strict';
import { useServer, uid } from './lib/harness.mjs';
import { REASON } from './lib/wkproto.mjs';

const MT = 'manager-secret';
const h = useServer({ args: ['--tokenAuthOn=true', `--managerToken=${MT}`] });
const auth = { headers: { token: MT } };

async function connect(user, token) {
  const c = await h.tcp();
  return c.connect({ uid: user, token });
}

h.test('the manager uid connects with managerToken only', async () => {
  assert.equal((await connect('____manager', MT)).reasonCode, REASON.SUCCESS);
  assert.equal((await connect('____manager', 'wrong')).reasonCode, REASON.AUTH_FAIL);
  assert.equal((await connect('____manager', '')).reasonCode, REASON.AUTH_FAIL);
  // A /user/token token for the manager uid does not replace managerToken.
  const r = await h.srv.post('/user/token', { uid: '____manager', token: 'tok', device_flag: 0 }, auth);
  assert.equal(r.status, 200, r.text);
  assert.equal((await connect('____manager', 'tok')).reasonCode, REASON.AUTH_FAIL);
});

h.test('visitors connect without a registered token; ordinary uids do not', async () => {
  const v = `${uid('guest')}___vstr`;
  assert.equal((await connect(v, 'anything')).reasonCode, REASON.SUCCESS);
  const u = uid('plain');
  assert.equal((await connect(u, 'anything')).reasonCode, REASON.AUTH_FAIL);
  const r = await h.srv.post('/user/token', { uid: u, token: 'mine', device_flag: 0 }, auth);
  assert.equal(r.status, 200, r.text);
  assert.equal((await connect(u, 'mine')).reasonCode, REASON.SUCCESS);
  // The suffix alone is not a visitor uid.
  assert.equal((await connect('___vstr', 'x')).reasonCode, REASON.AUTH_FAIL);
});

h.test('a banned visitor is refused with reason 19', async () => {
  const v = `${uid('bad')}___vstr`;
  const r = await h.srv.post('/channel', { channel_id: v, channel_type: 1, ban: 1 }, auth);
  assert.equal(r.status, 200, r.text);
  assert.equal((await connect(v, 'x')).reasonCode, REASON.BAN);
});

h.test('with managerToken the API needs the token header (401 without it, nothing changed)', async () => {
  const u = uid('nt');
  const r = await h.srv.post('/user/token', { uid: u, token: 'x', device_flag: 0 });
  assert.equal(r.status, 401);
  const wrong = await h.srv.post('/user/token', { uid: u, token: 'x', device_flag: 0 }, { headers: { token: 'nope' } });
  assert.equal(wrong.status, 401);
  assert.equal((await connect(u, 'x')).reasonCode, REASON.AUTH_FAIL, 'the token was not registered');
  const ok = await h.srv.get('/health', auth);
  assert.deepEqual(ok.json, { status: 'ok' });
});
