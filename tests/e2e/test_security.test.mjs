// Security properties with managerToken and tokenAuthOn configured: the API refuses requests
// without the manager token (http-api.md §2.3); authentication cannot be bypassed with packet
// tricks (SEND or RECVACK before CONNECT, a second CONNECT, also over JSON-RPC, wire-protocol.md
// §8.3); tampered SENDs are refused with reason 9 and not stored (§7.7); secrets never reach the
// server's log, even at debug level. Covered elsewhere and not repeated: 401 for /user/token
// without or with a wrong token and the manager uid's CONNECT (test_connect_roles), a wrong
// msgKey and undecryptable payloads (test_bad_input), CONNECT token checks (test_token_auth).

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import net from 'node:net';
import { useServer, uid, personFakeId, b64json } from './lib/harness.mjs';
import { PT, REASON, encodeSend, encodeRecvack, encodeConnect, x25519KeyPair, sleep } from './lib/wkproto.mjs';

const MT = `mgr-${crypto.randomBytes(12).toString('hex')}`;
const h = useServer({ args: ['--tokenAuthOn=true', `--managerToken=${MT}`, '--logger.level=1'] });
const auth = { headers: { token: MT } };
const secrets = new Set([MT]);       // every secret used during the run: none may appear in the log
const sessions = [];                 // client sessions, whose AES keys are secrets too

async function register(user, deviceFlag = 0) {
  const token = `tok-${crypto.randomBytes(12).toString('hex')}`;
  const r = await h.srv.post('/user/token', { uid: user, token, device_flag: deviceFlag, device_level: 1 }, auth);
  assert.equal(r.status, 200, r.text);
  secrets.add(token);
  return token;
}

async function user(prefix, opts = {}) {
  const u = uid(prefix);
  const token = await register(u);
  const c = await h.login(u, { token, ...opts });
  sessions.push(c);
  return { u, token, c };
}

async function history(loginUid, channelId, channelType) {
  const r = await h.srv.post('/channel/messagesync', { login_uid: loginUid, channel_id: channelId, channel_type: channelType, start_message_seq: 0, end_message_seq: 0, limit: 100, pull_mode: 1 }, auth);
  assert.equal(r.status, 200, r.text);
  return r.json.messages;
}

async function group(members) {
  const g = uid('sg');
  const r = await h.srv.post('/channel', { channel_id: g, channel_type: 2, subscribers: members }, auth);
  assert.equal(r.status, 200, r.text);
  return g;
}

/** A well-behaved pair still works (with tokens). */
async function healthy(label) {
  const a = await user('ha'); const b = await user('hb');
  const ack = await a.c.send({ channelId: b.u, channelType: 1, payload: { type: 1, content: label } });
  assert.equal(ack.reasonCode, REASON.SUCCESS, label);
  await b.c.waitRecv((p) => p.clientMsgNo === ack.sent.clientMsgNo);
  a.c.close(); b.c.close();
}

// ---------------------------------------------------------------- HTTP API and managerToken

h.test('API without the manager token: 401 with an empty body on every endpoint and method, nothing done', async () => {
  const a = uid('na'); const b = uid('nb');
  const body = { from_uid: a, channel_id: b, channel_type: 1, payload: b64json({ type: 1, content: 'no token' }) };
  for (const headers of [{}, { token: 'wrong' }, { token: MT.slice(0, -1) + (MT.endsWith('0') ? '1' : '0') }, { token: `${MT}x` }, { token: '' }, { Authorization: `Bearer ${MT}` }]) {
    const label = JSON.stringify(Object.keys(headers).length ? headers : 'no header').replace(MT, '<MT>');
    for (const [method, path, b] of [['POST', '/message/send', body], ['GET', '/health'], ['GET', '/route?uid=x'], ['POST', '/channel', { channel_id: uid('g'), channel_type: 2, subscribers: [a] }], ['GET', '/varz'], ['GET', '/connz'], ['OPTIONS', '/message/send'], ['POST', '/no/such/path', {}]]) {
      const r = await h.srv.http(method, path, b, { headers });
      assert.equal(r.status, 401, `${method} ${path} with ${label}`);
      assert.equal(r.text, '', `${method} ${path}: empty body`);
      assert.equal(r.headers.get('access-control-allow-origin'), null, 'the check runs before CORS');
    }
  }
  assert.equal((await history(a, personFakeId(a, b), 1)).length, 0, 'the unauthenticated /message/send stored nothing');
  // With the token: accepted.
  const ok = await h.srv.post('/message/send', body, auth);
  assert.equal(ok.status, 200, ok.text);
  assert.equal((await history(a, personFakeId(a, b), 1)).length, 1);
  assert.equal((await h.srv.http('OPTIONS', '/message/send', undefined, auth)).status, 204);
  assert.equal((await h.srv.get('/varz', auth)).status, 200);
});

// ---------------------------------------------------------------- packets before CONNECT

h.test('SEND before CONNECT: connection closed, no answer, nothing stored or delivered', async () => {
  const b = await user('pb');
  const victim = uid('pv');
  const g = await group([victim, b.u]);
  for (const transport of ['tcp', 'ws']) {
    const c = transport === 'ws' ? await h.ws() : await h.tcp();
    await c.write(Buffer.concat([
      encodeSend({ version: 4, clientSeq: 1, clientMsgNo: 'pre1', channelId: g, channelType: 2, msgKey: '', payload: Buffer.from('{"type":1}') }),
      encodeSend({ version: 4, clientSeq: 2, clientMsgNo: 'pre2', channelId: b.u, channelType: 1, msgKey: '', payload: Buffer.from('{"type":1}') }),
    ]));
    assert.equal(await c.waitClosed(3000), true, `${transport}: closed`);
    assert.equal(c.history.length, 0, `${transport}: no reply ${c.describeHistory()}`);
  }
  assert.equal((await history(b.u, g, 2)).length, 0, 'nothing stored in the group');
  assert.equal((await b.c.collect((p) => p.type === PT.RECV, 300)).length, 0, 'nothing delivered');
});

h.test('RECVACK and PING before CONNECT: connection closed without an answer', async () => {
  for (const bytes of [encodeRecvack({ version: 4, messageId: 1n, messageSeq: 1 }), Buffer.from([0x70])]) {
    const c = await h.tcp();
    await c.write(bytes);
    assert.equal(await c.waitClosed(3000), true, 'closed');
    assert.equal(c.history.length, 0, c.describeHistory());
  }
});

h.test('JSON-RPC send before connect: closed, nothing stored', async () => {
  const b = await user('jb');
  const g = await group([b.u]);
  const s = net.connect(h.srv.tcpPort, '127.0.0.1');
  s.on('error', () => {});
  let got = '';
  s.on('data', (d) => { got += d.toString(); });
  const closed = new Promise((r) => s.on('close', r));
  await new Promise((r) => s.once('connect', r));
  s.write(JSON.stringify({ jsonrpc: '2.0', method: 'send', id: 's1', params: { channelId: g, channelType: 2, payload: b64json({ type: 1 }) } }));
  await Promise.race([closed, sleep(3000)]);
  assert.equal(s.destroyed || s.readyState === 'closed', true, 'closed');
  assert.doesNotMatch(got, /"reasonCode":1\b/, 'no successful answer');
  assert.equal((await history(b.u, g, 2)).length, 0);
});

// ---------------------------------------------------------------- second CONNECT

for (const kind of ['same uid', 'another uid']) {
  h.test(`a second CONNECT (${kind}) on an authenticated connection is refused and changes nothing`, async () => {
    const a = await user('sa'); const victim = await user('sv'); const z = await user('sz');
    const g = await group([a.u, victim.u, z.u]);
    const target = kind === 'same uid' ? a : victim;
    // The second CONNECT carries valid credentials of the target, followed in the same write by
    // a SEND that would be attributed to whoever the connection is after it.
    const second = encodeConnect({ version: 4, uid: target.u, token: target.token, deviceId: 'evil', clientKey: x25519KeyPair().publicRaw.toString('base64') });
    const s = a.c.buildSend({ channelId: g, channelType: 2, payload: { type: 1, content: 'after second connect' } });
    await a.c.write(Buffer.concat([second, s.bytes]));
    assert.equal(await a.c.waitClosed(3000), true, 'the connection is closed');
    assert.equal(a.c.history.filter((p) => p.type === PT.CONNACK).length, 1, 'no second CONNACK');
    assert.equal(a.c.history.filter((p) => p.type === PT.SENDACK).length, 0, 'the trailing SEND was not processed');
    // Nobody became the target: messages to the target reach only the target's own connection.
    const m = await z.c.send({ channelId: victim.u, channelType: 1, payload: { type: 1, content: 'for the victim' } });
    assert.equal(m.reasonCode, REASON.SUCCESS);
    await victim.c.waitRecv((p) => p.clientMsgNo === m.sent.clientMsgNo);
    assert.equal(a.c.history.filter((p) => p.type === PT.RECV).length, 0, 'the attacker received nothing');
    assert.equal((await history(z.u, g, 2)).length, 0, 'nothing stored in the group');
    assert.equal((await z.c.collect((p) => p.type === PT.RECV, 300)).length, 0, 'nothing delivered to the group');
    const on = await h.srv.post('/user/onlinestatus', [victim.u], auth);
    assert.equal(on.status, 200, on.text);
    assert.equal(on.json.filter((e) => e.uid === victim.u && e.online === 1).length, 1, `one connection for the victim: ${on.text}`);
    // The victim is unaffected and can still talk; a fresh login of the attacker works too.
    const back = await victim.c.send({ channelId: z.u, channelType: 1, payload: { type: 1, content: 'still me' } });
    assert.equal(back.reasonCode, REASON.SUCCESS);
    const r = await z.c.waitRecv((p) => p.clientMsgNo === back.sent.clientMsgNo);
    assert.equal(r.fromUid, victim.u);
    await healthy(`after a second CONNECT (${kind})`);
  });
}

h.test('JSON-RPC: a second connect as another uid closes the connection', async () => {
  const a = uid('ja'); const victim = await user('jv');
  const ta = await register(a);
  const s = net.connect(h.srv.tcpPort, '127.0.0.1');
  s.on('error', () => {});
  let got = '';
  s.on('data', (d) => { got += d.toString(); });
  const closed = new Promise((r) => s.on('close', r));
  await new Promise((r) => s.once('connect', r));
  s.write(JSON.stringify({ jsonrpc: '2.0', method: 'connect', id: 'c1', params: { uid: a, token: ta } }));
  for (let i = 0; i < 50 && !got.includes('"c1"'); i++) await sleep(20);
  assert.match(got, /"reasonCode":1/, `first connect succeeds: ${got}`);
  s.write(JSON.stringify({ jsonrpc: '2.0', method: 'connect', id: 'c2', params: { uid: victim.u, token: victim.token } }));
  const res = await Promise.race([closed.then(() => 'closed'), sleep(3000).then(() => 'open')]);
  assert.equal(res, 'closed');
  assert.doesNotMatch(got, /"id":"c2","result":\{[^}]*"reasonCode":1[,}]/, `no second successful connect: ${got}`);
  s.destroy();
});

// ---------------------------------------------------------------- tampering

h.test('tampered SENDs (payload swapped, channel changed, msgKey from another SEND) -> SENDACK 9, not stored', async () => {
  const a = await user('ta'); const b = await user('tb'); const c3 = await user('tc');
  const fake = personFakeId(a.u, b.u);
  const genuine = a.c.buildSend({ channelId: b.u, channelType: 1, payload: { type: 1, content: 'genuine' } });
  const other = a.c.buildSend({ channelId: b.u, channelType: 1, payload: { type: 1, content: 'forged!' } });
  const cases = {
    // Another valid ciphertext under the genuine SEND's msgKey.
    'payload swapped': { channelId: b.u, payload: {}, rawPayload: other.wirePayload, msgKey: a.c.session.sendMsgKey({ clientSeq: 100, clientMsgNo: 'm100', channelId: b.u, channelType: 1, payloadB64: genuine.wirePayload }), clientSeq: 100, clientMsgNo: 'm100' },
    // One ciphertext byte flipped after signing.
    'payload bit flipped': (() => {
      const w = Buffer.from(genuine.wirePayload); w[5] = w[5] === 0x41 ? 0x42 : 0x41;
      return { channelId: b.u, payload: {}, rawPayload: w, msgKey: a.c.session.sendMsgKey({ clientSeq: 101, clientMsgNo: 'm101', channelId: b.u, channelType: 1, payloadB64: genuine.wirePayload }), clientSeq: 101, clientMsgNo: 'm101' };
    })(),
    // Signed for b, sent to c3.
    'channel changed': { channelId: c3.u, payload: {}, rawPayload: genuine.wirePayload, msgKey: a.c.session.sendMsgKey({ clientSeq: 102, clientMsgNo: 'm102', channelId: b.u, channelType: 1, payloadB64: genuine.wirePayload }), clientSeq: 102, clientMsgNo: 'm102' },
    // Signed with another connection's session keys.
    'key of another session': { channelId: b.u, payload: {}, rawPayload: genuine.wirePayload, msgKey: c3.c.session.sendMsgKey({ clientSeq: 103, clientMsgNo: 'm103', channelId: b.u, channelType: 1, payloadB64: genuine.wirePayload }), clientSeq: 103, clientMsgNo: 'm103' },
  };
  for (const [label, opts] of Object.entries(cases)) {
    const ack = await a.c.send({ channelType: 1, ...opts });
    assert.equal(ack.reasonCode, REASON.PAYLOAD_DECODE_ERROR, `${label}: reason 9 (§7.7)`);
    assert.equal(ack.messageSeq, 0, label);
  }
  assert.equal((await history(a.u, fake, 1)).length, 0, 'nothing stored for b');
  assert.equal((await history(a.u, personFakeId(a.u, c3.u), 1)).length, 0, 'nothing stored for c3');
  assert.equal((await b.c.collect((p) => p.type === PT.RECV, 300)).length + (await c3.c.collect((p) => p.type === PT.RECV, 10)).length, 0, 'nothing delivered');
  const ok = await a.c.send({ channelId: b.u, channelType: 1, payload: { type: 1, content: 'genuine' } });
  assert.equal(ok.reasonCode, REASON.SUCCESS, 'the connection stays usable');
  assert.equal(ok.messageSeq, 1, 'the refused SENDs consumed no seq');
});

// ---------------------------------------------------------------- secrets in the log

h.test('the server log (debug level) contains no manager token, user token or session key', async () => {
  // Some more traffic that touches secrets: failed logins with real tokens of other users, a
  // refused manager login, kicks, API calls with wrong tokens.
  const a = await user('la'); const b = await user('lb');
  const bad = await h.tcp();
  await bad.connect({ uid: a.u, token: b.token }).catch(() => null);
  const mgr = await h.tcp();
  await mgr.connect({ uid: '____manager', token: `${MT}-wrong` }).catch(() => null);
  secrets.add(`${MT}-wrong`);
  const good = await h.tcp();
  assert.equal((await good.connect({ uid: '____manager', token: MT })).reasonCode, REASON.SUCCESS);
  await a.c.send({ channelId: b.u, channelType: 1, payload: { type: 1, content: 'x' } });
  await b.c.waitRecv();
  await h.srv.post('/user/token', { uid: a.u, token: 'again-secret-token', device_flag: 0 }, auth);
  secrets.add('again-secret-token');
  await sleep(300);
  // The server's own output only: the harness adds "=== spawn <command line>" lines.
  const log = h.srv.log.split('\n').filter((l) => !l.startsWith('=== ')).join('\n');
  assert.ok(log.length > 0 && /debug|DEBUG/.test(log), 'debug logging was on');
  for (const s of secrets) assert.equal(log.includes(s), false, `secret ${s.slice(0, 6)}… appears in the log`);
  for (const c of [...sessions, good]) {
    if (!c.session) continue;
    for (const form of [c.session.aesKey.toString('latin1'), c.session.aesKey.toString('hex'), c.session.aesKey.toString('base64')]) {
      assert.equal(log.includes(form), false, 'an AES session key appears in the log');
    }
  }
});
