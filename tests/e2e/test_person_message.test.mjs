// Person (1:1) messages: SENDACK fields and contiguous seqs, RECV to the peer with the channel id
// rewritten to the sender, RECV to the sender's other device with RedDot cleared, and no echo to
// the sending connection (wire-protocol.md §4.4, §4.5, §7.6, §8.6).

import assert from 'node:assert/strict';
import { useServer, uid } from './lib/harness.mjs';
import { PT, REASON, FLAG } from './lib/wkproto.mjs';

const h = useServer();

h.test('u1 -> u2: SENDACKs, RECVs to u2 and to u1\'s other device, none to the sender', async () => {
  const u1 = uid('u1'); const u2 = uid('u2');
  const recv2 = await h.login(u2, { version: 2, autoAck: false });                 // TCP v2: no expire
  const other1 = await h.login(u1, { transport: 'ws', version: 5, deviceFlag: 1 }); // u1's second device
  const sender = await h.login(u1, { version: 4, deviceFlag: 0 });

  const m1 = { type: 1, content: 'hello u2 ✓ 你好' };
  const m2 = { type: 1, content: 'second' };
  const ack1 = await sender.send({ channelId: u2, channelType: 1, payload: m1, clientMsgNo: 'cmn-first-1' });
  assert.equal(ack1.raw[0], 0x42, 'SENDACK byte 0 echoes the SEND flags (RedDot)');
  assert.equal(ack1.reasonCode, REASON.SUCCESS);
  assert.equal(ack1.clientSeq, ack1.sent.clientSeq);
  assert.equal(ack1.messageSeq, 1);
  assert.ok(ack1.messageId > 0n, 'messageId > 0');
  const ack2 = await sender.send({ channelId: u2, channelType: 1, payload: m2 });
  assert.equal(ack2.reasonCode, REASON.SUCCESS);
  assert.equal(ack2.messageSeq, 2, 'messageSeq contiguous');
  assert.notEqual(ack2.messageId, ack1.messageId);
  assert.ok(ack2.messageId > ack1.messageId, 'snowflake ids increase');

  // The peer: channelId rewritten to the sender uid, RedDot kept, verified msgKey.
  const r1 = await recv2.waitRecv((p) => p.messageId === ack1.messageId);
  const now = Math.floor(Date.now() / 1000);
  assert.equal(r1.raw[0], 0x52, 'RECV byte 0: RedDot copied from SEND');
  assert.equal(r1.setting, 0);
  assert.equal(r1.fromUid, u1);
  assert.equal(r1.channelId, u1, 'person RECV to the target carries channelId = sender');
  assert.equal(r1.channelType, 1);
  assert.equal(r1.clientMsgNo, 'cmn-first-1');
  assert.equal(r1.messageSeq, 1);
  assert.equal(r1.expire, undefined, 'no expire field at v2');
  assert.ok(Math.abs(r1.timestamp - now) <= 5, `timestamp ${r1.timestamp} is server time in seconds`);
  assert.deepEqual(r1.json, m1, 'decrypts to the same JSON');
  assert.deepEqual(r1.plaintext, ack1.sent.plaintext, 'byte-identical plaintext');
  await recv2.recvack(r1);
  const r2 = await recv2.waitRecv((p) => p.messageId === ack2.messageId);
  assert.equal(r2.messageSeq, 2);
  assert.deepEqual(r2.json, m2);
  await recv2.recvack(r2);

  // The sender's other device: channelId = peer, RedDot cleared.
  const o1 = await other1.waitRecv((p) => p.messageId === ack1.messageId);
  assert.equal(o1.raw[0], 0x50, 'RedDot cleared for the sender\'s own devices');
  assert.equal(o1.fromUid, u1);
  assert.equal(o1.channelId, u2, 'sender\'s other device sees channelId = peer');
  assert.equal(o1.channelType, 1);
  assert.equal(o1.expire, 0, 'v5 RECV carries expire (0)');
  assert.deepEqual(o1.json, m1);
  const o2 = await other1.waitRecv((p) => p.messageId === ack2.messageId);
  assert.equal(o2.messageSeq, 2);

  // Each device got each message once; the sending connection got nothing.
  const extra = await sender.collect((p) => p.type === PT.RECV, 500);
  assert.deepEqual(extra.map((p) => p.messageSeq), [], 'the sending connection does not receive its own message');
  const dup2 = await recv2.collect((p) => p.type === PT.RECV, 200);
  assert.equal(dup2.length, 0, 'u2 gets each message once');
  const dupO = await other1.collect((p) => p.type === PT.RECV, 200);
  assert.equal(dupO.length, 0, 'u1\'s other device gets each message once');
  for (const m of other1.wsMessages) assert.equal(m.packets, 1, 'one packet per WS message');
  for (const c of [recv2, other1, sender]) assert.deepEqual(c.errors, []);
});

h.test('the peer answers: u2 -> u1 continues the same channel sequence', async () => {
  const u1 = uid('u1'); const u2 = uid('u2');
  const c1 = await h.login(u1);
  const c2 = await h.login(u2);
  const a = await c1.send({ channelId: u2, channelType: 1, payload: { type: 1, content: 'ping' } });
  const b = await c2.send({ channelId: u1, channelType: 1, payload: { type: 1, content: 'pong' } });
  assert.equal(a.messageSeq, 1);
  assert.equal(b.messageSeq, 2, 'both directions share one person channel');
  const r = await c1.waitRecv((p) => p.messageId === b.messageId);
  assert.equal(r.channelId, u2);
  assert.equal(r.fromUid, u2);
});

h.test('SEND flags are echoed in SENDACK and copied to RECV (SyncOnce, no RedDot)', async () => {
  const u1 = uid('u1'); const u2 = uid('u2');
  const c2 = await h.login(u2);
  const c1 = await h.login(u1);
  const ack = await c1.send({ channelId: u2, channelType: 1, payload: { type: 1, content: 'f' }, flags: FLAG.SYNC_ONCE });
  assert.equal(ack.raw[0], 0x44, 'SENDACK echoes SyncOnce');
  assert.equal(ack.reasonCode, REASON.SUCCESS);
  const r = await c2.waitRecv();
  assert.equal(r.raw[0], 0x54, 'RECV carries SyncOnce and no RedDot');
});

h.test('SEND to yourself is delivered to your other devices only', async () => {
  const u1 = uid('self');
  const other = await h.login(u1, { deviceFlag: 1, transport: 'ws' });
  const c = await h.login(u1);
  const ack = await c.send({ channelId: u1, channelType: 1, payload: { type: 1, content: 'note to self' } });
  assert.equal(ack.reasonCode, REASON.SUCCESS);
  assert.equal(ack.messageSeq, 1);
  const r = await other.waitRecv();
  assert.equal(r.channelId, u1);
  assert.equal(r.fromUid, u1);
  assert.equal(r.redDot, false);
  const echo = await c.collect((p) => p.type === PT.RECV, 400);
  assert.equal(echo.length, 0);
});
