// The manager port (http-api.md §4.8, docs/monitoring.md): POST /manager/login issues HS256 JWTs
// signed with jwt.secret for the auth.users entries (guest/guest, read-only, when none are
// configured); /manager/login, /web* and /metrics* are public, everything else needs the JWT
// (Authorization: Bearer or ?Authorization=) or the managerToken header, and a read-only user
// only gets the routes that read. /varz and /connz answer on the manager port as on the API port.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { useServer, uid } from './lib/harness.mjs';

const SECRET = 'test-secret-0123456789';
const guest = useServer({ name: 'manager-guest', args: [`--jwt.secret=${SECRET}`] });
const users = useServer({
  name: 'manager-users',
  args: ['--auth.users=admin:s3cret:*,viewer:look:*:r', '--managerToken=mtok'],
});
const random = useServer({ name: 'manager-random-secret' });

const b64url = (buf) => Buffer.from(buf).toString('base64url');

/** A JWT as a third party would make it (to test what the server accepts). */
function makeJwt(claims, { secret = SECRET, alg = 'HS256' } = {}) {
  const head = b64url(JSON.stringify({ alg, typ: 'JWT' }));
  const body = b64url(JSON.stringify(claims));
  const sig = alg === 'none' ? '' : b64url(crypto.createHmac('sha256', secret).update(`${head}.${body}`).digest());
  return `${head}.${body}.${sig}`;
}

function mgr(h, method, urlPath, body, headers = {}) {
  return h.srv.http(method, urlPath, body, { base: h.srv.managerBase, headers });
}

async function login(h, username, password, base) {
  return h.srv.http('POST', '/manager/login', { username, password }, { base: base ?? h.srv.managerBase });
}

guest.test('guest/guest logs in when no users are configured; the token is an HS256 JWT with WuKongIM\'s claims', async () => {
  const r = await login(guest, 'guest', 'guest');
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(Object.keys(r.json).sort(), ['exp', 'permissions', 'token', 'username']);
  assert.equal(r.json.username, 'guest');
  const now = Date.now() / 1000;
  assert.ok(Math.abs(r.json.exp - (now + 30 * 86400)) < 120, 'jwt.expire defaults to 30 days');
  const [head, body, sig] = r.json.token.split('.');
  assert.deepEqual(JSON.parse(Buffer.from(head, 'base64url')), { alg: 'HS256', typ: 'JWT' });
  const claims = JSON.parse(Buffer.from(body, 'base64url'));
  assert.equal(claims.username, 'guest');
  assert.equal(claims.iss, 'wukongim');
  assert.equal(claims.exp, r.json.exp);
  assert.ok(Math.abs(claims.iat - now) < 60);
  const want = b64url(crypto.createHmac('sha256', SECRET).update(`${head}.${body}`).digest());
  assert.equal(sig, want, 'signed with jwt.secret');
});

guest.test('wrong credentials are refused', async () => {
  for (const [u, p] of [['guest', 'nope'], ['nobody', 'guest'], ['', ''], ['guest', '']]) {
    const r = await login(guest, u, p);
    assert.equal(r.status, 400, `${u}/${p}: ${r.text}`);
    assert.equal(r.json.status, 400);
    assert.equal(r.json.token, undefined);
  }
  const bad = await mgr(guest, 'POST', '/manager/login', 'not json');
  assert.equal(bad.status, 400);
});

guest.test('public paths need no token; the rest answer 401 {"error"} without one', async () => {
  assert.equal((await mgr(guest, 'GET', '/metrics')).status, 200);
  const web = await mgr(guest, 'GET', '/web/');
  assert.equal(web.status, 200, 'the monitor UI');
  assert.match(web.headers.get('content-type'), /text\/html/);
  for (const p of ['/varz', '/connz', '/logs/recent', '/health', '/nosuchpath']) {
    const r = await mgr(guest, 'GET', p);
    assert.equal(r.status, 401, `${p}: ${r.text}`);
    assert.equal(typeof r.json.error, 'string', `${p}: {"error":...}`);
  }
});

guest.test('a JWT opens the reading routes, in the Authorization header or the query; guest cannot write', async () => {
  const { token } = (await login(guest, 'guest', 'guest')).json;
  const varz = await mgr(guest, 'GET', '/varz', undefined, { authorization: `Bearer ${token}` });
  assert.equal(varz.status, 200, varz.text);
  assert.equal(varz.json.manager_on, 1);
  assert.equal(varz.json.manager_addr, `127.0.0.1:${guest.srv.managerPort}`);
  const connz = await mgr(guest, 'GET', `/connz?limit=5&Authorization=${token}`);
  assert.equal(connz.status, 200, connz.text);
  assert.deepEqual(Object.keys(connz.json).sort(), ['connections', 'limit', 'now', 'offset', 'total']);
  const online = await mgr(guest, 'POST', '/user/onlinestatus', [uid('x')], { authorization: `Bearer ${token}` });
  assert.equal(online.status, 200, 'a POST that only reads is allowed');
  const write = await mgr(guest, 'POST', '/user/token', { uid: uid('w'), token: 't', device_flag: 0 }, { authorization: `Bearer ${token}` });
  assert.equal(write.status, 403, write.text);
  assert.equal(typeof write.json.error, 'string');
});

guest.test('forged, tampered, expired and alg=none tokens are refused', async () => {
  const now = Math.floor(Date.now() / 1000);
  const good = makeJwt({ username: 'guest', iss: 'wukongim', iat: now, exp: now + 60 });
  assert.equal((await mgr(guest, 'GET', '/varz', undefined, { authorization: `Bearer ${good}` })).status, 200,
    'a token made with the same secret is valid (the check is the signature, not a server-side session)');
  const cases = {
    expired: makeJwt({ username: 'guest', iss: 'wukongim', iat: now - 100, exp: now - 10 }),
    otherSecret: makeJwt({ username: 'guest', exp: now + 60 }, { secret: 'not-the-secret' }),
    algNone: makeJwt({ username: 'guest', exp: now + 60 }, { alg: 'none' }),
    unknownUser: makeJwt({ username: 'mallory', exp: now + 60 }),
    tampered: (() => { const [h0, , s] = good.split('.'); return `${h0}.${b64url(JSON.stringify({ username: 'guest', exp: now + 999999 }))}.${s}`; })(),
    garbage: 'a.b.c',
  };
  for (const [name, tok] of Object.entries(cases)) {
    const r = await mgr(guest, 'GET', '/varz', undefined, { authorization: `Bearer ${tok}` });
    assert.equal(r.status, 401, `${name}: ${r.text}`);
  }
});

guest.test('/manager/login also answers on the API port', async () => {
  const r = await login(guest, 'guest', 'guest', guest.srv.httpBase);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.username, 'guest');
});

users.test('configured users replace guest; "*" may write, "*:r" only read; the manager token opens everything', async () => {
  assert.equal((await login(users, 'guest', 'guest')).status, 400, 'no guest once auth.users is set');
  const admin = await login(users, 'admin', 's3cret');
  assert.equal(admin.status, 200, admin.text);
  assert.equal(admin.json.permissions, '*');
  const viewer = await login(users, 'viewer', 'look');
  assert.equal(viewer.status, 200, viewer.text);
  assert.equal(viewer.json.permissions, '*:r');
  const body = { uid: uid('t'), token: 'tk', device_flag: 0, device_level: 1 };
  const byAdmin = await mgr(users, 'POST', '/user/token', body, { authorization: `Bearer ${admin.json.token}` });
  assert.equal(byAdmin.status, 200, byAdmin.text);
  const byViewer = await mgr(users, 'POST', '/user/token', body, { authorization: `Bearer ${viewer.json.token}` });
  assert.equal(byViewer.status, 403);
  const byToken = await mgr(users, 'GET', '/varz', undefined, { token: 'mtok' });
  assert.equal(byToken.status, 200, 'managerToken header');
  assert.equal((await mgr(users, 'GET', '/varz', undefined, { token: 'wrong' })).status, 401);
  // the API port keeps its own rule: the managerToken header, not a JWT
  const api = await users.srv.get('/varz', { headers: { authorization: `Bearer ${admin.json.token}` } });
  assert.equal(api.status, 401);
});

random.test('without jwt.secret a random key is created in dataDir/jwt.secret and survives a restart', async () => {
  const keyFile = path.join(random.srv.dataDir, 'jwt.secret');
  const key = fs.readFileSync(keyFile, 'utf8');
  assert.ok(key.length >= 32, 'a long random key');
  assert.equal(fs.statSync(keyFile).mode & 0o077, 0, 'readable by the server\'s user only');
  const { token } = (await login(random, 'guest', 'guest')).json;
  const [head, body, sig] = token.split('.');
  assert.equal(sig, b64url(crypto.createHmac('sha256', key).update(`${head}.${body}`).digest()));
  await random.srv.restart();
  assert.equal(fs.readFileSync(keyFile, 'utf8'), key, 'the same key after a restart');
  const r = await mgr(random, 'GET', '/varz', undefined, { authorization: `Bearer ${token}` });
  assert.equal(r.status, 200, 'a token from before the restart is still valid');
});
