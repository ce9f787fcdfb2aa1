// Header flags on client SENDs (http-api.md §3.4, §5.7; wire-protocol.md header bits):
// NoPersist is delivered but not stored, gets seq 0 and touches no conversation; RedDot is
// forwarded but cleared for the sender's own devices and does not change the server's unread
// count; a client's SyncOnce SEND is stored in the channel itself (only API sends are re-routed
// to the command channel).

import assert from 'node:assert/strict';
import { useServer, uid } from './lib/harness.mjs';
import { FLAG, PT, REASON, sleep } from './lib/wkproto.mjs';

const h = useServer();

const history = async (login, channel, type) =>
  (await h.srv.post('/channel/messagesync', { login_uid: login, channel_id: channel, channel_type: type, start_message_seq: 0, end_message_seq: 0, limit: 50, pull_mode: 1 })).json.messages;
const conversations = async (user) => (await h.srv.post('/conversation/sync', { uid: user, msg_count: 5 })).json;

h.test('NoPersist: delivered with seq 0, not stored, no conversation, seq not consumed', async () => {
  const a = uid('na'); const b = uid('nb');
  const ca = await h.login(a); const cb = await h.login(b);
  const ack = await ca.send({ channelId: b, channelType: 1, payload: { type: 1, content: 'typing…' }, flags: FLAG.NO_PERSIST });
  assert.equal(ack.reasonCode, REASON.SUCCESS);
  assert.equal(ack.messageSeq, 0, 'SENDACK seq 0');
  const r = await cb.waitRecv();
  assert.equal(r.noPersist, true);
  assert.equal(r.messageSeq, 0);
  assert.equal(r.channelId, a);
  assert.deepEqual(await history(b, a, 1), []);
  assert.deepEqual(await conversations(a), [], 'no conversation for the sender');
  assert.deepEqual(await conversations(b), [], 'no conversation for the recipient');
  // The next persisted message is seq 1.
  const next = await ca.send({ channelId: b, channelType: 1, payload: { type: 1, content: 'real' } });
  assert.equal(next.messageSeq, 1);
  assert.equal((await conversations(b)).length, 1);
});

h.test('NoPersist in a group reaches online members only and is never synced', async () => {
  const a = uid('ga'); const b = uid('gb'); const c = uid('gc'); const g = uid('gg');
  assert.equal((await h.srv.post('/channel', { channel_id: g, channel_type: 2, subscribers: [a, b, c] })).status, 200);
  const ca = await h.login(a); const cb = await h.login(b);
  const ack = await ca.send({ channelId: g, channelType: 2, payload: { type: 1, content: 'live' }, flags: FLAG.NO_PERSIST | FLAG.RED_DOT });
  assert.equal(ack.messageSeq, 0);
  const r = await cb.waitRecv();
  assert.equal(r.noPersist, true);
  assert.deepEqual(await history(c, g, 2), []);
  const max = await h.srv.get(`/channel/max_message_seq?channel_id=${g}&channel_type=2`);
  assert.deepEqual(max.json, { message_seq: 0 });
});

h.test('RedDot: forwarded to recipients, cleared for the sender\'s other devices, ignored by unread', async () => {
  const a = uid('ra'); const b = uid('rb');
  const phone = await h.login(a, { deviceFlag: 0 });
  const web = await h.login(a, { deviceFlag: 1, transport: 'ws' });
  const cb = await h.login(b);
  await phone.send({ channelId: b, channelType: 1, payload: { type: 1, content: 'dot' }, flags: FLAG.RED_DOT });
  await phone.send({ channelId: b, channelType: 1, payload: { type: 1, content: 'quiet' }, flags: 0 });
  const r1 = await cb.waitRecv((p) => p.json?.content === 'dot');
  const r2 = await cb.waitRecv((p) => p.json?.content === 'quiet');
  assert.equal(r1.redDot, true);
  assert.equal(r2.redDot, false);
  const own = await web.waitRecv((p) => p.json?.content === 'dot');
  assert.equal(own.redDot, false, 'the sender\'s other device gets it without RedDot');
  assert.equal(own.channelId, b, 'the sender\'s other device sees the peer as channel');
  await sleep(50);
  assert.equal(phone.history.filter((p) => p.type === PT.RECV).length, 0, 'not echoed to the sending connection');
  const msgs = await history(b, a, 1);
  assert.deepEqual(msgs.map((m) => m.header.red_dot), [1, 0], 'stored as sent');
  const [conv] = await conversations(b);
  assert.equal(conv.unread, 2, 'unread counts every message, red dot or not');
});

h.test('a client SyncOnce SEND is stored in the channel itself, flag kept', async () => {
  const a = uid('sa'); const b = uid('sb');
  const ca = await h.login(a); const cb = await h.login(b);
  const ack = await ca.send({ channelId: b, channelType: 1, payload: { type: 99 }, flags: FLAG.SYNC_ONCE });
  assert.equal(ack.messageSeq, 1);
  const r = await cb.waitRecv();
  assert.equal(r.syncOnce, true);
  const msgs = await history(b, a, 1);
  assert.equal(msgs.length, 1);
  assert.deepEqual(msgs[0].header, { no_persist: 0, red_dot: 0, sync_once: 1 });
  assert.deepEqual((await h.srv.post('/message/sync', { uid: b })).json, [], 'not a command-channel message');
});
