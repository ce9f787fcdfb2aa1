// Inbound framing: TCP and WebSocket are byte streams to the server. Packets may be split at any
// byte, several may arrive in one read or one WS message, WS messages may be fragmented, and
// WS control frames are answered (wire-protocol.md §8.1, §8.2, §8.5).

import assert from 'node:assert/strict';
import { useServer, uid } from './lib/harness.mjs';
import { PT, REASON, encodeConnect, sleep, x25519KeyPair, x25519Shared, deriveSession, WkClient } from './lib/wkproto.mjs';

const h = useServer();

h.test('TCP: CONNECT and SENDs dribbled one byte at a time', async () => {
  const peer = await h.login(uid('fp'));
  const c = await h.tcp();
  const me = uid('fd');
  // Build the CONNECT by hand so it can be split.
  c.keys = x25519KeyPair();
  const connect = encodeConnect({ version: 4, uid: me, deviceId: 'dribble', clientKey: c.keys.publicRaw.toString('base64') });
  for (const byte of connect) { await c.write(Buffer.from([byte])); await sleep(2); }
  const ack = await c.waitType(PT.CONNACK);
  assert.equal(ack.reasonCode, REASON.SUCCESS);
  // Derive the session the same way connect() does.
  c.session = deriveSession(x25519Shared(c.keys.privateKey, Buffer.from(ack.serverKey, 'base64')), ack.salt);
  c.version = 4;
  const s = c.buildSend({ channelId: peer.uid, channelType: 1, payload: { type: 1, content: 'dribbled' } });
  for (const byte of s.bytes) await c.write(Buffer.from([byte]));
  const sack = await c.waitType(PT.SENDACK);
  assert.equal(sack.reasonCode, REASON.SUCCESS);
  const r = await peer.waitRecv();
  assert.deepEqual(r.json, { type: 1, content: 'dribbled' });
});

h.test('TCP: many packets coalesced in one write are all processed in order', async () => {
  const peer = await h.login(uid('cp'));
  const c = await h.login(uid('cs'));
  const sends = Array.from({ length: 20 }, (_, i) => c.buildSend({ channelId: peer.uid, channelType: 1, payload: { type: 1, content: `c${i}` } }));
  await c.write(Buffer.concat([Buffer.from([0x70]), ...sends.map((s) => s.bytes), Buffer.from([0x70])]));
  for (let i = 0; i < 20; i++) {
    const a = await c.waitType(PT.SENDACK, 3000, (p) => p.clientSeq === sends[i].clientSeq);
    assert.equal(a.reasonCode, REASON.SUCCESS);
    assert.equal(a.messageSeq, i + 1);
  }
  await c.waitType(PT.PONG); await c.waitType(PT.PONG);
  for (let i = 0; i < 20; i++) {
    const r = await peer.waitRecv();
    assert.equal(r.json.content, `c${i}`, 'delivered in order');
  }
});

h.test('TCP: a packet split with the varint cut in the middle', async () => {
  const peer = await h.login(uid('vp'));
  const c = await h.login(uid('vs'));
  // 300-byte plaintext gives a SEND with a two-byte remaining length; cut inside it.
  const s = c.buildSend({ channelId: peer.uid, channelType: 1, payload: { type: 1, content: 'v'.repeat(300) } });
  assert.ok(s.bytes[1] & 0x80, 'two-byte varint');
  await c.write(s.bytes.subarray(0, 2));
  await sleep(100);
  await c.write(s.bytes.subarray(2, 40));
  await sleep(100);
  await c.write(s.bytes.subarray(40));
  const a = await c.waitType(PT.SENDACK);
  assert.equal(a.reasonCode, REASON.SUCCESS);
  assert.equal((await peer.waitRecv()).json.content.length, 300);
});

h.test('WS: one packet split over several binary messages; several packets in one message', async () => {
  const peer = await h.login(uid('wp'));
  const c = await h.login(uid('ws'), { transport: 'ws', version: 2 });
  const s1 = c.buildSend({ channelId: peer.uid, channelType: 1, payload: { type: 1, content: 'split' } });
  await c.write(s1.bytes.subarray(0, 5));
  await c.write(s1.bytes.subarray(5, 30));
  await c.write(s1.bytes.subarray(30));
  assert.equal((await c.waitType(PT.SENDACK, 3000, (p) => p.clientSeq === s1.clientSeq)).reasonCode, REASON.SUCCESS);
  const s2 = c.buildSend({ channelId: peer.uid, channelType: 1, payload: { type: 1, content: 'two' } });
  const s3 = c.buildSend({ channelId: peer.uid, channelType: 1, payload: { type: 1, content: 'three' } });
  await c.write(Buffer.concat([s2.bytes, Buffer.from([0x70]), s3.bytes]));
  assert.equal((await c.waitType(PT.SENDACK, 3000, (p) => p.clientSeq === s2.clientSeq)).messageSeq, 2);
  assert.equal((await c.waitType(PT.SENDACK, 3000, (p) => p.clientSeq === s3.clientSeq)).messageSeq, 3);
  await c.waitType(PT.PONG);
  assert.deepEqual([(await peer.waitRecv()).json.content, (await peer.waitRecv()).json.content, (await peer.waitRecv()).json.content], ['split', 'two', 'three']);
  // The server still answers one packet per WS message.
  for (const m of c.wsMessages) assert.equal(m.packets, 1);
});

h.test('WS: fragmented message (FIN=0 + continuation frames) is reassembled', async () => {
  const peer = await h.login(uid('fp'));
  const c = await h.login(uid('fs'), { transport: 'ws' });
  const s = c.buildSend({ channelId: peer.uid, channelType: 1, payload: { type: 1, content: 'fragmented' } });
  const ws = c.transport.ws;
  const send = (buf, fin) => new Promise((res, rej) => ws.send(buf, { binary: true, fin }, (e) => (e ? rej(e) : res())));
  await send(s.bytes.subarray(0, 7), false);
  await send(s.bytes.subarray(7, 20), false);
  await send(s.bytes.subarray(20), true);
  const a = await c.waitType(PT.SENDACK);
  assert.equal(a.reasonCode, REASON.SUCCESS);
  assert.deepEqual((await peer.waitRecv()).json, { type: 1, content: 'fragmented' });
});

h.test('WS: a control Ping frame gets a Pong with the same data', async () => {
  const c = await h.login(uid('cp'), { transport: 'ws' });
  const ws = c.transport.ws;
  const pong = new Promise((res) => ws.once('pong', (d) => res(Buffer.from(d))));
  ws.ping(Buffer.from('are-you-there'));
  let t;
  const got = await Promise.race([pong, new Promise((res) => { t = setTimeout(() => res(null), 3000); })]);
  clearTimeout(t);
  assert.ok(got, 'pong received');
  assert.equal(got.toString(), 'are-you-there');
  await c.ping();
});

h.test('WS: a client Close frame is answered and the connection ends cleanly', async () => {
  const c = await h.login(uid('cc'), { transport: 'ws' });
  const ws = c.transport.ws;
  const closed = new Promise((res) => ws.once('close', (code) => res(code)));
  ws.close(1000, 'bye');
  let t;
  const code = await Promise.race([closed, new Promise((res) => { t = setTimeout(() => res(null), 3000); })]);
  clearTimeout(t);
  assert.equal(code, 1000, 'server echoed the close frame');
});

h.test('WS: any request path is accepted for the upgrade', async () => {
  const c = h.track(await WkClient.ws(h.srv.wsPort, { path: '/some/other/path?x=1' }).open());
  const ack = await c.connect({ uid: uid('pp'), version: 2 });
  assert.equal(ack.reasonCode, REASON.SUCCESS);
});
