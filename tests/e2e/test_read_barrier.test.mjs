// The message log and the API (docs/reliability.md "The message log"): a SENDACK, or an
// answer to POST /message/send, comes once the message is in the log, before LMDB has it.
// This server applies the log to LMDB only every 5 s, so anything read straight from LMDB
// would miss the messages just sent:
// * routes that read messages, seqs or conversations wait for a read barrier and see them;
// * routes that only write (or read other data) skip the barrier, and their writes, run in
//   order after the messages, still see them.

import assert from 'node:assert/strict';
import { useServer, uid } from './lib/harness.mjs';
import { REASON } from './lib/wkproto.mjs';

const h = useServer({ args: ['--store.applyInterval=5s'] });

async function barriers() {
  const r = await h.srv.get('/varz');
  assert.equal(r.status, 200, r.text);
  return r.json.store.read_barriers;
}

async function ok(method, path, body) {
  const r = method === 'GET' ? await h.srv.get(path) : await h.srv.post(path, body);
  assert.equal(r.status, 200, `${method} ${path}: ${r.status} ${r.text}`);
  return r;
}

async function groupWithMessages(n) {
  const a = uid('ra'); const b = uid('rb'); const g = uid('rg');
  await ok('POST', '/channel', { channel_id: g, channel_type: 2, subscribers: [a, b] });
  const ca = await h.login(a);
  const acks = [];
  for (let i = 0; i < n; i++) {
    const ack = await ca.send({ channelId: g, channelType: 2, payload: { type: 1, content: `m${i}` }, clientMsgNo: `${g}-${i}` });
    assert.equal(ack.reasonCode, REASON.SUCCESS);
    acks.push(ack);
  }
  return { a, b, g, ca, acks };
}

h.test('acknowledged messages are readable at once through every message-reading route', async () => {
  const { a, b, g, acks } = await groupWithMessages(3);
  const before = await barriers();

  const sync = await ok('POST', '/channel/messagesync', {
    login_uid: b, channel_id: g, channel_type: 2, start_message_seq: 0, end_message_seq: 0, limit: 100, pull_mode: 1,
  });
  assert.deepEqual(sync.json.messages.map((m) => m.message_seq), [1, 2, 3], 'history has all three');

  const max = await ok('GET', `/channel/max_message_seq?channel_id=${g}&channel_type=2`);
  assert.equal(max.json.message_seq, 3);

  const byCmn = await ok('GET', `/message/byclientmsgno?channel_id=${g}&channel_type=2&client_msg_no=${g}-2`);
  assert.equal(byCmn.json.message_idstr, String(acks[2].messageId));

  const conv = await ok('POST', '/conversation/sync', { uid: b, msg_count: 1 });
  const c = conv.json.find((x) => x.channel_id === g && x.channel_type === 2);
  assert.ok(c, 'the group is in the member\'s conversations');
  assert.equal(c.unread, 3);
  assert.equal(c.last_msg_seq, 3);
  assert.equal(c.recents[0].from_uid, a);

  assert.ok(await barriers() >= before + 4, 'each of the four reads waited for a barrier');
});

h.test('routes that only write take no barrier, and their writes see the logged messages', async () => {
  const { a, b, g, ca, acks } = await groupWithMessages(3);
  const c = uid('rc');
  const before = await barriers();

  // Runs in the writer after the three messages: "1 unread" means read up to seq 2.
  await ok('POST', '/conversations/setUnread', { uid: b, channel_id: g, channel_type: 2, unread: 1 });
  await ok('POST', '/user/token', { uid: c, token: 'tok-c', device_flag: 1, device_level: 1 });
  await ok('POST', '/channel/subscriber_add', { channel_id: g, channel_type: 2, subscribers: [c] });
  await ok('GET', `/channel/whitelist?channel_id=${g}&channel_type=2`);
  // A duplicate of a message still in flight to LMDB is answered with the original.
  const dup = await ok('POST', '/message/send', {
    from_uid: a, channel_id: g, channel_type: 2, client_msg_no: `${g}-1`,
    payload: Buffer.from(JSON.stringify({ type: 1, content: 'm1' })).toString('base64'),
  });
  assert.equal(dup.json.data.message_idstr, String(acks[1].messageId), 'the duplicate got the original message id');
  const fresh = await ok('POST', '/message/send', {
    from_uid: a, channel_id: g, channel_type: 2,
    payload: Buffer.from(JSON.stringify({ type: 1, content: 'from the API' })).toString('base64'),
  });
  assert.ok(BigInt(fresh.json.data.message_idstr) > BigInt(acks[2].messageId));
  assert.equal(await barriers(), before, 'none of these waited for a barrier');

  // The member added just now may send at once.
  const cc = await h.login(c);
  const ack = await cc.send({ channelId: g, channelType: 2, payload: { type: 1, content: 'new member' } });
  assert.equal(ack.reasonCode, REASON.SUCCESS);
  assert.equal(ack.messageSeq, 5, 'after the three socket messages and the API one');

  const conv = await ok('POST', '/conversation/sync', { uid: b, msg_count: 1 });
  const row = conv.json.find((x) => x.channel_id === g && x.channel_type === 2);
  assert.equal(row.last_msg_seq, 5);
  assert.equal(row.unread, 3, 'read up to 2 (setUnread saw seqs 1-3), then seqs 3, 4 and 5');
  ca.close();
});
