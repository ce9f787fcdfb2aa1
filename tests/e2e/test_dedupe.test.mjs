// De-duplication by client_msg_no (DESIGN.md §4 step 2): a repeated SEND from the same sender on
// the same channel is acknowledged with the original messageSeq/messageId and is neither stored
// nor delivered twice. SDK 1.0.4 re-sends unacknowledged SENDs after a reconnect with the same
// clientSeq and clientMsgNo (wire-protocol.md §4.3, §12), which is the main real-world case.

import assert from 'node:assert/strict';
import { useServer, uid } from './lib/harness.mjs';
import { PT, REASON } from './lib/wkproto.mjs';

const h = useServer();

async function history(loginUid, channelId, channelType) {
  const r = await h.srv.post('/channel/messagesync', {
    login_uid: loginUid, channel_id: channelId, channel_type: channelType,
    start_message_seq: 0, end_message_seq: 0, limit: 100, pull_mode: 1,
  });
  assert.equal(r.status, 200, r.text);
  return r.json.messages;
}

h.test('same clientMsgNo twice on one connection: same seq and id, delivered and stored once', async () => {
  const a = uid('da'); const b = uid('db');
  const cb = await h.login(b);
  const ca = await h.login(a);
  const first = await ca.send({ channelId: b, channelType: 1, payload: { type: 1, content: 'once' }, clientMsgNo: 'dup-1' });
  const second = await ca.send({ channelId: b, channelType: 1, payload: { type: 1, content: 'once' }, clientMsgNo: 'dup-1' });
  assert.equal(first.reasonCode, REASON.SUCCESS);
  assert.equal(second.reasonCode, REASON.SUCCESS, 'the duplicate is acknowledged as success');
  assert.equal(second.clientSeq, second.sent.clientSeq, 'each SENDACK echoes its own clientSeq');
  assert.equal(second.messageSeq, first.messageSeq, 'same messageSeq');
  assert.equal(second.messageId, first.messageId, 'same messageId');

  const r = await cb.waitRecv();
  assert.equal(r.messageId, first.messageId);
  const extra = await cb.collect((p) => p.type === PT.RECV, 600);
  assert.equal(extra.length, 0, 'the receiver gets the RECV once');
  const msgs = await history(b, a, 1);
  assert.equal(msgs.length, 1, 'stored once');
  assert.equal(msgs[0].client_msg_no, 'dup-1');

  const next = await ca.send({ channelId: b, channelType: 1, payload: { type: 1, content: 'next' } });
  assert.equal(next.messageSeq, first.messageSeq + 1, 'no seq consumed by the duplicate');
});

h.test('SDK-style resend after reconnect (same clientSeq and clientMsgNo, new session keys) is deduplicated', async () => {
  const a = uid('ra'); const b = uid('rb');
  const cb = await h.login(b);
  const c1 = await h.login(a, { transport: 'ws', version: 2, deviceFlag: 1 });
  const first = await c1.send({ channelId: b, channelType: 1, payload: { type: 1, content: 'resent' }, clientMsgNo: 'sdkstyle3', clientSeq: 1 });
  assert.equal(first.reasonCode, REASON.SUCCESS);
  c1.close();
  const c2 = await h.login(a, { transport: 'ws', version: 2, deviceFlag: 1 });
  const again = await c2.send({ channelId: b, channelType: 1, payload: { type: 1, content: 'resent' }, clientMsgNo: 'sdkstyle3', clientSeq: 1 });
  assert.equal(again.reasonCode, REASON.SUCCESS);
  assert.equal(again.messageSeq, first.messageSeq);
  assert.equal(again.messageId, first.messageId);
  await cb.waitRecv();
  assert.equal((await cb.collect((p) => p.type === PT.RECV, 600)).length, 0, 'delivered once');
  assert.equal((await history(a, b, 1)).length, 1);
});

h.test('same clientMsgNo in a group: one message', async () => {
  const a = uid('ga'); const b = uid('gb'); const g = uid('gg');
  const r = await h.srv.post('/channel', { channel_id: g, channel_type: 2, subscribers: [a, b] });
  assert.equal(r.status, 200, r.text);
  const cb = await h.login(b);
  const ca = await h.login(a);
  const x = await ca.send({ channelId: g, channelType: 2, payload: { type: 1, content: 'g' }, clientMsgNo: 'gdup' });
  const y = await ca.send({ channelId: g, channelType: 2, payload: { type: 1, content: 'g' }, clientMsgNo: 'gdup' });
  assert.equal(y.reasonCode, REASON.SUCCESS);
  assert.equal(y.messageId, x.messageId);
  assert.equal(y.messageSeq, x.messageSeq);
  await cb.waitRecv();
  assert.equal((await cb.collect((p) => p.type === PT.RECV, 600)).length, 0);
  assert.equal((await history(b, g, 2)).length, 1);
});

h.test('the same clientMsgNo on a different channel is a different message', async () => {
  const a = uid('xa'); const b = uid('xb'); const c = uid('xc');
  const cb = await h.login(b);
  const cc = await h.login(c);
  const ca = await h.login(a);
  const toB = await ca.send({ channelId: b, channelType: 1, payload: { type: 1, content: 'b' }, clientMsgNo: 'shared-no' });
  const toC = await ca.send({ channelId: c, channelType: 1, payload: { type: 1, content: 'c' }, clientMsgNo: 'shared-no' });
  assert.equal(toB.reasonCode, REASON.SUCCESS);
  assert.equal(toC.reasonCode, REASON.SUCCESS);
  assert.notEqual(toC.messageId, toB.messageId);
  assert.deepEqual((await cb.waitRecv()).json, { type: 1, content: 'b' });
  assert.deepEqual((await cc.waitRecv()).json, { type: 1, content: 'c' });
});

h.test('the duplicate is also recognised after a restart', async () => {
  const a = uid('pa'); const b = uid('pb');
  const ca = await h.login(a);
  const first = await ca.send({ channelId: b, channelType: 1, payload: { type: 1, content: 'persisted' }, clientMsgNo: 'restart-dup' });
  ca.close();
  await h.srv.restart();
  const c2 = await h.login(a);
  const again = await c2.send({ channelId: b, channelType: 1, payload: { type: 1, content: 'persisted' }, clientMsgNo: 'restart-dup' });
  assert.equal(again.reasonCode, REASON.SUCCESS);
  assert.equal(again.messageId, first.messageId);
  assert.equal(again.messageSeq, first.messageSeq);
  assert.equal((await history(a, b, 1)).length, 1);
});
