// CONNECT / CONNACK over TCP and WebSocket at protocol versions 2, 4 and 5, and PING -> PONG
// (wire-protocol.md §3.2, §4.2, §1.5, §8.2).

import assert from 'node:assert/strict';
import { useServer, uid } from './lib/harness.mjs';
import { PT, PT_NAME, PING, REASON, encodeConnect, x25519KeyPair, sleep } from './lib/wkproto.mjs';

const h = useServer();

const ALNUM16 = /^[0-9a-zA-Z]{16}$/;

function assertKeys(ack) {
  assert.equal(ack.serverKey.length, 44, 'serverKey is Base64 of 32 bytes (44 chars)');
  assert.match(ack.serverKey, /^[A-Za-z0-9+/]{43}=$/);
  assert.equal(Buffer.from(ack.serverKey, 'base64').length, 32);
  assert.match(ack.salt, ALNUM16, 'salt: 16 chars of [0-9a-zA-Z]');
}

function assertTimeDiff(ack, clientTimestamp, sentAt) {
  // timeDiff = server_now_ms - clientTimestamp; the client clock was shifted back by 5 s.
  const expected = sentAt - clientTimestamp;
  const got = Number(ack.timeDiff);
  assert.ok(Math.abs(got - expected) < 2000, `timeDiff ${got} should be about ${expected}`);
}

function assertOneMessagePerPacket(c) {
  if (c.kind !== 'ws') return;
  for (const m of c.wsMessages) {
    assert.equal(m.binary, true, 'server WS messages are binary');
    assert.equal(m.packets, 1, `each WS message holds exactly one packet (got ${m.packets}, ${m.bytes} bytes)`);
    assert.equal(m.leftover, 0, 'no packet split across WS messages');
  }
}

for (const transport of ['tcp', 'ws']) {
  h.test(`${transport}: v2 CONNACK has header 0x20, no serverVersion, no nodeId`, async () => {
    const c = transport === 'ws' ? await h.ws() : await h.tcp();
    const clientTimestamp = Date.now() - 5000;
    const sentAt = Date.now();
    const ack = await c.connect({ uid: uid('c2'), version: 2, deviceFlag: 1, clientTimestamp });
    assert.equal(ack.raw[0], 0x20, 'byte 0');
    assert.equal(ack.hasServerVersion, false);
    assert.equal(ack.reasonCode, REASON.SUCCESS);
    assertKeys(ack);
    assert.equal(ack.nodeId, undefined);
    assert.equal(ack.raw[1], 73, 'remaining length = 8 + 1 + 2+44 + 2+16');
    assert.equal(ack.raw.length, 75);
    assertTimeDiff(ack, clientTimestamp, sentAt);
    assert.deepEqual(c.errors, []);
    assertOneMessagePerPacket(c);
  });

  for (const version of [4, 5]) {
    h.test(`${transport}: v${version} CONNACK has header 0x21, serverVersion ${version}, nodeId`, async () => {
      const c = transport === 'ws' ? await h.ws() : await h.tcp();
      const clientTimestamp = Date.now() - 5000;
      const sentAt = Date.now();
      const ack = await c.connect({ uid: uid(`c${version}`), version, clientTimestamp });
      assert.equal(ack.raw[0], 0x21, 'byte 0');
      assert.equal(ack.serverVersion, version, 'serverVersion = negotiated version');
      assert.equal(ack.reasonCode, REASON.SUCCESS);
      assertKeys(ack);
      assert.equal(typeof ack.nodeId, 'bigint', 'nodeId present at v4+');
      assert.equal(ack.trailing, 0, 'no bytes after nodeId');
      assert.equal(ack.raw[1], 82, 'remaining length = 1 + 73 + 8');
      assertTimeDiff(ack, clientTimestamp, sentAt);
      assertOneMessagePerPacket(c);
    });
  }

  h.test(`${transport}: each PING gets exactly one 0x80 byte`, async () => {
    const c = await h.login(uid('p'), { transport });
    const before = c.rawIn.length;
    const pong = await c.ping();
    assert.equal(pong.type, PT.PONG);
    await sleep(300);
    const after = Buffer.concat(c.rawIn.slice(before));
    assert.equal(after.toString('hex'), '80', 'one PING -> exactly the single byte 0x80');
    // Three more PINGs in one write: three PONGs, still one byte each.
    const mark = c.rawIn.length;
    await c.write(Buffer.from([0x70, 0x70, 0x70]));
    await c.waitType(PT.PONG); await c.waitType(PT.PONG); await c.waitType(PT.PONG);
    await sleep(300);
    assert.equal(Buffer.concat(c.rawIn.slice(mark)).toString('hex'), '808080');
    assertOneMessagePerPacket(c);
    assert.equal(c.isClosed, false);
  });

  h.test(`${transport}: session keys from CONNACK work (encrypted self-check via a send)`, async () => {
    // Guards the key exchange: a SEND built with the derived key and IV must verify server-side.
    const a = await h.login(uid('k'), { transport, version: 2 });
    const b = await h.login(uid('k'), { transport, version: 5 });
    const ack = await a.send({ channelId: b.uid, channelType: 1, payload: { type: 1, content: 'key check' } });
    assert.equal(ack.reasonCode, REASON.SUCCESS);
    const r = await b.waitRecv();
    assert.deepEqual(r.json, { type: 1, content: 'key check' });
  });
}

for (const version of [1, 3]) {
  h.test(`tcp: v${version} CONNACK has header 0x20 and no nodeId; messages flow at v${version}`, async () => {
    const c = await h.tcp();
    const ack = await c.connect({ uid: uid(`v${version}`), version });
    assert.equal(ack.raw[0], 0x20);
    assert.equal(ack.reasonCode, REASON.SUCCESS);
    assert.equal(ack.raw[1], 73, 'no serverVersion byte, no nodeId');
    const peer = await h.login(uid('pv'), { version });
    const sack = await c.send({ channelId: peer.uid, channelType: 1, payload: { type: 1, content: `at v${version}` } });
    assert.equal(sack.reasonCode, REASON.SUCCESS);
    const r = await peer.waitRecv();
    assert.equal(r.expire, version >= 3 ? 0 : undefined);
    assert.deepEqual(r.json, { type: 1, content: `at v${version}` });
  });
}

h.test('a client announcing a version above the server\'s gets serverVersion = the server\'s maximum', async () => {
  const c = await h.tcp();
  const ack = await c.connect({ uid: uid('v9'), version: 9 });
  assert.equal(ack.raw[0], 0x21);
  assert.ok(ack.serverVersion === 5 || ack.serverVersion === 6, `serverVersion ${ack.serverVersion} (5, or 6 if v6 is implemented)`);
  assert.equal(ack.reasonCode, REASON.SUCCESS);
  const peer = await h.login(uid('p9'));
  const sack = await c.send({ channelId: peer.uid, channelType: 1, payload: { type: 1, content: 'negotiated' } });
  assert.equal(sack.reasonCode, REASON.SUCCESS);
  assert.equal(sack.messageSeq, 1);
});

for (const badUid of ['a@b', 'x#y', 'p&q', '', '   ']) {
  h.test(`uid ${JSON.stringify(badUid)} is refused even without token auth`, async () => {
    const c = await h.tcp();
    let ack = null;
    try { ack = await c.connect({ uid: badUid, version: 4 }); } catch { /* closed without CONNACK */ }
    assert.equal(ack?.reasonCode === REASON.SUCCESS, false, 'must not succeed');
    assert.equal(await c.waitClosed(3000), true, 'connection closed');
  });
}

h.test('two connections get different server keys and salts', async () => {
  const a = await h.tcp();
  const b = await h.tcp();
  const ka = await a.connect({ uid: uid('d'), version: 2 });
  const kb = await b.connect({ uid: uid('d'), version: 2 });
  assert.notEqual(ka.serverKey, kb.serverKey, 'server key is per connection');
  assert.notEqual(ka.salt, kb.salt, 'salt is per connection');
});

// The CONNACK is the client's proof that it is online: a peer may send to it the moment it
// has one (a call invitation right after the callee connects). The server registers the
// connection with its uid's presence owner (another worker, half the time) before it
// answers, so such a message is pushed in real time, not only found by a later sync.
h.test('a message sent as soon as the recipient holds its CONNACK is pushed to it', async () => {
  const sender = uid('cs');
  const cs = await h.login(sender);
  const round = async (i) => {
    const b = uid(`cr${i}`);
    const cb = await h.login(b, { transport: i % 2 ? 'ws' : 'tcp' });
    const ack = await cs.send({ channelId: b, channelType: 1, payload: { type: 1, content: `now ${i}` } });
    assert.equal(ack.reasonCode, REASON.SUCCESS);
    const r = await cb.waitRecv((p) => p.clientMsgNo === ack.sent.clientMsgNo, 5000);
    assert.equal(r.json.content, `now ${i}`);
    cb.close();
  };
  for (let i = 0; i < 200; i += 10) {
    await Promise.all(Array.from({ length: 10 }, (_, k) => round(i + k)));
  }
});

for (const transport of ['tcp', 'ws']) {
  h.test(`${transport}: packets pipelined behind CONNECT are answered after the CONNACK, in order`, async () => {
    const c = transport === 'ws' ? await h.ws() : await h.tcp();
    const pings = Buffer.concat([PING, PING, PING]);
    await c.write(Buffer.concat([encodeConnect({ version: 4, uid: uid('pp'), deviceId: 'pipe1', clientKey: x25519KeyPair().publicRaw.toString('base64') }), pings]));
    for (let i = 0; i < 3; i++) await c.waitType(PT.PONG);
    assert.deepEqual(c.history.map((p) => PT_NAME[p.type]), ['CONNACK', 'PONG', 'PONG', 'PONG']);
    assert.equal(c.history[0].reasonCode, REASON.SUCCESS);
  });
}
