// RECV re-delivery: an unacknowledged RECV is re-sent byte-identically (no DUP) after
// messageRetry.interval until a RECVACK arrives; NoPersist messages are never retried
// (wire-protocol.md §4.6, §8.6; http-api.md §5.15).

import assert from 'node:assert/strict';
import { useServer, uid } from './lib/harness.mjs';
import { PT, REASON, FLAG, sleep } from './lib/wkproto.mjs';

const INTERVAL_MS = 1000;
const MAX_COUNT = 2;
const h = useServer({ args: ['--messageRetry.interval=1s', '--messageRetry.scanInterval=200ms', `--messageRetry.maxCount=${MAX_COUNT}`] });

h.test('unacked RECV is re-sent byte-identically; RECVACK stops it', async () => {
  const a = uid('ra'); const b = uid('rb');
  const cb = await h.login(b, { autoAck: false });
  const ca = await h.login(a);
  const ack = await ca.send({ channelId: b, channelType: 1, payload: { type: 1, content: 'ack me' } });
  assert.equal(ack.reasonCode, REASON.SUCCESS);

  const r1 = await cb.waitRecv((p) => p.messageId === ack.messageId);
  const r2 = await cb.waitRecv((p) => p.messageId === ack.messageId, INTERVAL_MS + 3000);
  const gap = r2.at - r1.at;
  assert.ok(gap >= INTERVAL_MS * 0.7, `retry came ${gap} ms after the first RECV, not before ~interval`);
  assert.ok(gap <= INTERVAL_MS + 2500, `retry came ${gap} ms after the first RECV`);
  assert.equal(r2.dup, false, 'no DUP flag on retries');
  assert.equal(r2.raw.toString('hex'), r1.raw.toString('hex'), 'retry is byte-identical');

  await cb.recvack(r2);
  await sleep(200);
  const later = await cb.collect((p) => p.type === PT.RECV, INTERVAL_MS * 2 + 700);
  assert.deepEqual(later.map((p) => p.messageSeq), [], 'no retries after RECVACK');
  // The sender's connection never sees retries either.
  assert.equal(ca.history.filter((p) => p.type === PT.RECV).length, 0);
});

h.test('RECVACK for one message leaves the other message\'s retry running', async () => {
  const a = uid('ma'); const b = uid('mb');
  const cb = await h.login(b, { autoAck: false });
  const ca = await h.login(a);
  const k1 = await ca.send({ channelId: b, channelType: 1, payload: { type: 1, content: 'one' } });
  const k2 = await ca.send({ channelId: b, channelType: 1, payload: { type: 1, content: 'two' } });
  const m1 = await cb.waitRecv((p) => p.messageId === k1.messageId);
  await cb.waitRecv((p) => p.messageId === k2.messageId);
  await cb.recvack(m1);
  const again = await cb.waitRecv((p) => p.messageId === k2.messageId, INTERVAL_MS + 3000);
  assert.equal(again.messageSeq, 2);
  await cb.recvack(again);
  const rest = await cb.collect((p) => p.type === PT.RECV, INTERVAL_MS + 1200);
  assert.deepEqual(rest.map((p) => p.messageSeq), [], 'message 1 was acked, so only message 2 was retried');
});

h.test('retries are per connection: acking on one device does not stop the other\'s', async () => {
  const a = uid('pa'); const b = uid('pb');
  const b1 = await h.login(b, { autoAck: false, deviceFlag: 0 });
  const b2 = await h.login(b, { autoAck: false, deviceFlag: 1, transport: 'ws' });
  const ca = await h.login(a);
  const k = await ca.send({ channelId: b, channelType: 1, payload: { type: 1, content: 'two devices' } });
  const x1 = await b1.waitRecv((p) => p.messageId === k.messageId);
  await b2.waitRecv((p) => p.messageId === k.messageId);
  await b1.recvack(x1);
  const retry2 = await b2.waitRecv((p) => p.messageId === k.messageId, INTERVAL_MS + 3000);
  await b2.recvack(retry2);
  const left1 = await b1.collect((p) => p.type === PT.RECV, 300);
  assert.equal(left1.length, 0, 'the acked device gets no retry');
});

h.test(`retries stop after messageRetry.maxCount (${MAX_COUNT}) re-sends`, async () => {
  const a = uid('xa'); const b = uid('xb');
  const cb = await h.login(b, { autoAck: false });
  const ca = await h.login(a);
  const ack = await ca.send({ channelId: b, channelType: 1, payload: { type: 1, content: 'never acked' } });
  const copies = await cb.collect((p) => p.type === PT.RECV && p.messageId === ack.messageId, INTERVAL_MS * (MAX_COUNT + 3) + 500);
  assert.equal(copies.length, 1 + MAX_COUNT, `first delivery + ${MAX_COUNT} retries, then give up (got ${copies.length})`);
  for (const c of copies) assert.equal(c.raw.toString('hex'), copies[0].raw.toString('hex'));
});

h.test('NoPersist messages are not retried and get messageSeq 0', async () => {
  const a = uid('na'); const b = uid('nb');
  const cb = await h.login(b, { autoAck: false });
  const ca = await h.login(a);
  const ack = await ca.send({ channelId: b, channelType: 1, payload: { type: 1, content: 'ephemeral' }, flags: FLAG.NO_PERSIST | FLAG.RED_DOT });
  assert.equal(ack.reasonCode, REASON.SUCCESS);
  assert.equal(ack.messageSeq, 0, 'not persisted -> seq 0');
  assert.equal(ack.raw[0], 0x43, 'SENDACK echoes NoPersist|RedDot');
  const r = await cb.waitRecv();
  assert.equal(r.noPersist, true);
  assert.equal(r.messageSeq, 0);
  const more = await cb.collect((p) => p.type === PT.RECV, INTERVAL_MS * 2 + 500);
  assert.equal(more.length, 0, 'no retry for NoPersist');
  const r2 = await h.srv.post('/channel/messagesync', { login_uid: b, channel_id: a, channel_type: 1, start_message_seq: 0, end_message_seq: 0, limit: 10, pull_mode: 1 });
  assert.deepEqual(r2.json.messages, [], 'NoPersist message is not stored');
});

h.test('retries stop when the connection closes; the next connection does not get old retries', async () => {
  const a = uid('ca'); const b = uid('cb');
  const cb = await h.login(b, { autoAck: false });
  const ca = await h.login(a);
  await ca.send({ channelId: b, channelType: 1, payload: { type: 1, content: 'then gone' } });
  await cb.waitRecv();
  cb.close();
  const cb2 = await h.login(b, { autoAck: false });
  const got = await cb2.collect((p) => p.type === PT.RECV, INTERVAL_MS * 2 + 500);
  assert.equal(got.length, 0, 'offline messages are synced over HTTP, not pushed on connect');
  assert.equal(h.srv.alive(), true);
});
