// The real JavaScript SDK wukongimjssdk@1.0.4 (protocol v2 over WebSocket) against magpie, each SDK
// user in its own child process, paired with raw protocol clients (wire-protocol.md §3.3, §12).
// Retries are set to 1 s so a missing SDK RECVACK (e.g. a wrong RECV msgKey) would show up as a
// second delivery.

import assert from 'node:assert/strict';
import { useServer, uid } from './lib/harness.mjs';
import { SdkUser, ConnectStatus } from './lib/sdk.mjs';
import { PT, REASON, sleep } from './lib/wkproto.mjs';

const h = useServer({ args: ['--messageRetry.interval=1s', '--messageRetry.scanInterval=200ms'] });
const sdks = [];
h.cleanup(() => Promise.all(sdks.map((s) => s.close())));

async function sdkLogin(user) {
  const s = await SdkUser.spawn(`sdk:${user}`);
  sdks.push(s);
  await s.connect({ addr: `ws://127.0.0.1:${h.srv.wsPort}`, uid: user, token: 'any' });
  const st = await s.waitStatus(ConnectStatus.Connected, 5000);
  assert.equal(st.reasonCode, 1);
  return s;
}

function assertSdkClean(s) {
  assert.deepEqual(s.errors(), [], `SDK raised errors:\n${s.describe()}`);
  const statuses = s.events.filter((e) => e.ev === 'status').map((e) => e.status);
  assert.deepEqual(statuses, [ConnectStatus.Connected], `exactly one status change (no reconnects):\n${s.describe()}`);
  const connects = s.events.filter((e) => e.ev === 'wsout' && (e.header >> 4) === PT.CONNECT);
  assert.equal(connects.length, 1, 'one CONNECT: the SDK never had to reconnect');
}

h.test('SDK connects (status Connected, reason 1) and its CONNECT is what the spec says', async () => {
  const s = await sdkLogin(uid('s'));
  const connect = s.events.find((e) => e.ev === 'wsout' && e.header === 0x10);
  assert.ok(connect, 'SDK sent CONNECT 0x10');
  const raw = Buffer.from(connect.hex, 'hex');
  assert.equal(raw[2], 2, 'SDK announces protocol version 2');
  assert.equal(raw[3], 1, 'deviceFlag WEB');
  assertSdkClean(s);
});

h.test('SDK -> raw client: text arrives, verifies and decrypts; SDK gets its SENDACK', async () => {
  const su = uid('s'); const ru = uid('r');
  const raw = await h.login(ru, { version: 4 });
  const s = await sdkLogin(su);
  const text = 'hello from the SDK ✓ 你好';
  const local = await s.sendText(ru, 1, text);
  assert.equal(local.clientSeq, 1);
  const r = await raw.waitRecv((p) => p.fromUid === su, 5000);
  assert.equal(r.channelId, su);
  assert.equal(r.channelType, 1);
  assert.equal(r.clientMsgNo, local.clientMsgNo, 'clientMsgNo from the SDK');
  assert.deepEqual(r.json, { content: text, type: 1 });
  assert.equal(r.redDot, true, 'SDK sets RedDot');
  const ack = await s.waitEvent((e) => e.ev === 'sendack' && e.clientSeq === 1, 5000, 'sendack');
  assert.equal(ack.reasonCode, REASON.SUCCESS);
  assert.equal(ack.messageSeq, 1);
  assert.equal(ack.messageID, String(r.messageId), 'SDK sees the same messageID');
  assertSdkClean(s);
});

h.test('raw client -> SDK: listener fires with the content; SDK RECVACK stops retries', async () => {
  const su = uid('s'); const ru = uid('r');
  const s = await sdkLogin(su);
  const raw = await h.login(ru, { transport: 'tcp', version: 5 });
  const payload = { type: 1, content: 'hello SDK, 你好 👋' };
  const ack = await raw.send({ channelId: su, channelType: 1, payload });
  assert.equal(ack.reasonCode, REASON.SUCCESS);
  const m = await s.waitMessage((x) => x.fromUID === ru, 5000);
  assert.equal(m.text, payload.content);
  assert.equal(m.contentType, 1);
  assert.equal(m.channelID, ru);
  assert.equal(m.channelType, 1);
  assert.equal(m.messageID, String(ack.messageId));
  assert.equal(m.messageSeq, ack.messageSeq);
  assert.equal(m.reddot, true);
  // The SDK answered with a RECVACK (type 6) echoing the RECV's RedDot.
  const ra = await s.waitEvent((e) => e.ev === 'wsout' && (e.header >> 4) === PT.RECVACK, 3000, 'SDK RECVACK');
  assert.equal(ra.header, 0x62);
  // No retry follows: the SDK would report the message a second time.
  await sleep(2600);
  const copies = s.received().filter((x) => x.messageID === String(ack.messageId));
  assert.equal(copies.length, 1, `delivered once, no retry after the SDK's RECVACK:\n${s.describe()}`);
  assertSdkClean(s);
});

h.test('several messages both ways keep order and stay intact (no coalescing issues)', async () => {
  const su = uid('s'); const ru = uid('r');
  const s = await sdkLogin(su);
  const raw = await h.login(ru, { transport: 'ws', version: 2 });
  const N = 10;
  // Burst from raw to SDK: the server must write one packet per WS message or SDK 1.0.4 corrupts them.
  await Promise.all(Array.from({ length: N }, (_, i) => raw.send({ channelId: su, channelType: 1, payload: { type: 1, content: `burst ${i}` } })));
  const deadline = Date.now() + 5000;
  while (s.received().length < N && Date.now() < deadline) await sleep(50);
  const got = s.received().map((m) => m.text);
  assert.deepEqual(got, Array.from({ length: N }, (_, i) => `burst ${i}`), `SDK received all ${N} in order:\n${s.describe()}`);
  for (let i = 0; i < N; i++) await s.sendText(ru, 1, `back ${i}`);
  for (let i = 0; i < N; i++) {
    const r = await raw.waitRecv((p) => p.json?.content === `back ${i}`, 5000);
    assert.equal(r.fromUid, su);
  }
  assertSdkClean(s);
});

h.test('group: SDK message reaches the other members; member message reaches the SDK', async () => {
  const su = uid('s'); const b = uid('b'); const c = uid('c'); const g = uid('g');
  const r = await h.srv.post('/channel', { channel_id: g, channel_type: 2, subscribers: [su, b, c] });
  assert.equal(r.status, 200, r.text);
  const s = await sdkLogin(su);
  const cb = await h.login(b, { version: 2 });
  const cc = await h.login(c, { transport: 'ws', version: 5 });
  await s.sendText(g, 2, 'hi group from the SDK');
  for (const conn of [cb, cc]) {
    const m = await conn.waitRecv((p) => p.fromUid === su, 5000);
    assert.equal(m.channelId, g);
    assert.equal(m.channelType, 2);
    assert.deepEqual(m.json, { content: 'hi group from the SDK', type: 1 });
  }
  const sack = await s.waitEvent((e) => e.ev === 'sendack', 5000, 'group sendack');
  assert.equal(sack.reasonCode, REASON.SUCCESS);
  const ack = await cb.send({ channelId: g, channelType: 2, payload: { type: 1, content: 'hi SDK' } });
  const m = await s.waitMessage((x) => x.messageID === String(ack.messageId), 5000);
  assert.equal(m.channelID, g);
  assert.equal(m.channelType, 2);
  assert.equal(m.fromUID, b);
  assert.equal(m.text, 'hi SDK');
  assertSdkClean(s);
});

h.test('SDK survives an idle period with its own heartbeat (PING every 500 ms)', async () => {
  const su = uid('s');
  const s = await SdkUser.spawn(`sdk:${su}`);
  sdks.push(s);
  await s.connect({ addr: `ws://127.0.0.1:${h.srv.wsPort}`, uid: su, token: 'x', heartbeatInterval: 500 });
  await s.waitStatus(ConnectStatus.Connected);
  await sleep(2000);
  const pings = s.events.filter((e) => e.ev === 'wsout' && e.header === 0x70).length;
  assert.ok(pings >= 2, `SDK sent PINGs (${pings})`);
  assertSdkClean(s);
});
