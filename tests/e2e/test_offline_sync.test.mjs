// Offline catch-up over HTTP: /conversation/sync, /channel/messagesync and the conversation
// read-pointer endpoints (http-api.md §4.5, §4.6, §5.9, §5.10).

import assert from 'node:assert/strict';
import { useServer, uid } from './lib/harness.mjs';
import { REASON } from './lib/wkproto.mjs';

const h = useServer();

async function sendN(sender, to, n, tag) {
  const acks = [];
  for (let i = 1; i <= n; i++) {
    const payload = { type: 1, content: `${tag} #${i}` };
    const ack = await sender.send({ channelId: to, channelType: 1, payload });
    assert.equal(ack.reasonCode, REASON.SUCCESS);
    acks.push({ ...ack, payload });
  }
  return acks;
}

async function convSync(user, body = {}) {
  const r = await h.srv.post('/conversation/sync', { uid: user, msg_count: 20, ...body });
  assert.equal(r.status, 200, `/conversation/sync: ${r.text}`);
  assert.ok(Array.isArray(r.json), `/conversation/sync answers a bare array: ${r.text}`);
  return r.json;
}

const find = (list, id, type = 1) => list.find((c) => c.channel_id === id && c.channel_type === type);
const b64 = (obj) => Buffer.from(JSON.stringify(obj)).toString('base64');

h.test('u2 offline: 5 messages show up in conversation sync and message sync', async () => {
  const u1 = uid('u1'); const u2 = uid('u2');
  const c1 = await h.login(u1);
  const acks = await sendN(c1, u2, 5, 'offline');
  assert.deepEqual(acks.map((a) => a.messageSeq), [1, 2, 3, 4, 5]);

  // Conversation list for u2.
  const list = await convSync(u2);
  const conv = find(list, u1);
  assert.ok(conv, `u2 has a conversation with u1: ${JSON.stringify(list)}`);
  assert.equal(conv.unread, 5);
  assert.equal(conv.last_msg_seq, 5);
  assert.equal(conv.last_client_msg_no, acks[4].sent.clientMsgNo);
  assert.equal(conv.readed_to_msg_seq, 0);
  assert.equal(conv.offset_msg_seq, 0);
  const nowS = Math.floor(Date.now() / 1000);
  assert.ok(Math.abs(conv.timestamp - nowS) <= 5, 'timestamp in seconds');
  assert.deepEqual(conv.recents.map((m) => m.message_seq), [5, 4, 3, 2, 1], 'recents newest-first');
  assert.equal(conv.recents[0].payload, b64(acks[4].payload));
  assert.equal(conv.recents[0].from_uid, u1);
  assert.equal(conv.recents[0].message_idstr, String(acks[4].messageId));

  // msg_count 0 answers an empty list.
  const zero = await h.srv.post('/conversation/sync', { uid: u2, msg_count: 0 });
  assert.deepEqual(zero.json, [], 'msg_count 0 -> []');
  // last_msg_seqs: the client already has up to seq 3, so only 4 and 5 come back.
  const partial = find(await convSync(u2, { last_msg_seqs: `${u1}:1:3` }), u1);
  assert.deepEqual(partial.recents.map((m) => m.message_seq), [5, 4], 'recents above the client\'s seq');
  // With msg_count 1, only the newest message.
  const one = find(await convSync(u2, { msg_count: 1 }), u1);
  assert.deepEqual(one.recents.map((m) => m.message_seq), [5]);

  // The sender's own view: newest message is its own, so unread 0.
  const mine = find(await convSync(u1), u2);
  assert.ok(mine, 'sender also has the conversation');
  assert.equal(mine.unread, 0);
  assert.equal(mine.last_msg_seq, 5);

  // Message sync, pull up from the start.
  const r = await h.srv.post('/channel/messagesync', {
    login_uid: u2, channel_id: u1, channel_type: 1, start_message_seq: 0, end_message_seq: 0, limit: 100, pull_mode: 1,
  });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.more, 0);
  assert.equal(r.json.start_message_seq, 0);
  assert.equal(r.json.end_message_seq, 0);
  const msgs = r.json.messages;
  assert.deepEqual(msgs.map((m) => m.message_seq), [1, 2, 3, 4, 5], 'ascending');
  msgs.forEach((m, i) => {
    assert.equal(m.payload, b64(acks[i].payload), `payload of seq ${i + 1}`);
    assert.equal(m.message_idstr, String(acks[i].messageId), 'message_idstr = SENDACK messageId');
    assert.equal(typeof m.message_id, 'number');
    assert.equal(m.client_msg_no, acks[i].sent.clientMsgNo);
    assert.equal(m.from_uid, u1);
    assert.equal(m.channel_id, u2, 'person MessageResp channel_id = the uid that is not from_uid');
    assert.equal(m.channel_type, 1);
    assert.equal(m.header.red_dot, 1);
    assert.ok(Math.abs(m.timestamp - nowS) <= 5);
  });
  // The other participant sees the same messages.
  const r1 = await h.srv.post('/channel/messagesync', {
    login_uid: u1, channel_id: u2, channel_type: 1, start_message_seq: 0, end_message_seq: 0, limit: 100, pull_mode: 1,
  });
  assert.deepEqual(r1.json.messages.map((m) => m.message_idstr), msgs.map((m) => m.message_idstr));
});

h.test('messagesync paging: limit/more, pull up from s, pull down from s', async () => {
  const u1 = uid('u1'); const u2 = uid('u2');
  const c1 = await h.login(u1);
  await sendN(c1, u2, 5, 'paging');
  const sync = async (b) => {
    const r = await h.srv.post('/channel/messagesync', { login_uid: u2, channel_id: u1, channel_type: 1, ...b });
    assert.equal(r.status, 200, r.text);
    return r.json;
  };
  let j = await sync({ start_message_seq: 0, end_message_seq: 0, limit: 2, pull_mode: 1 });
  assert.deepEqual(j.messages.map((m) => m.message_seq), [4, 5], 's=e=0: the newest L, ascending');
  assert.equal(j.more, 1, 'more = 1 when exactly L returned');
  j = await sync({ start_message_seq: 2, end_message_seq: 0, limit: 100, pull_mode: 1 });
  assert.deepEqual(j.messages.map((m) => m.message_seq), [2, 3, 4, 5]);
  j = await sync({ start_message_seq: 2, end_message_seq: 4, limit: 100, pull_mode: 1 });
  assert.deepEqual(j.messages.map((m) => m.message_seq), [2, 3], 'end is exclusive');
  j = await sync({ start_message_seq: 4, end_message_seq: 0, limit: 2, pull_mode: 0 });
  assert.deepEqual(j.messages.map((m) => m.message_seq), [3, 4], 'pull down: (s-L, s]');
  j = await sync({ start_message_seq: 4, end_message_seq: 1, limit: 100, pull_mode: 0 });
  assert.deepEqual(j.messages.map((m) => m.message_seq), [2, 3, 4], 'pull down: (e, s]');
  j = await sync({ start_message_seq: 0, end_message_seq: 0, limit: 0, pull_mode: 1 });
  assert.deepEqual(j.messages, [], 'limit 0 returns nothing');
  const never = await sync({ channel_id: uid('nobody'), start_message_seq: 0, end_message_seq: 0, limit: 10, pull_mode: 1 });
  assert.deepEqual(never, { start_message_seq: 0, end_message_seq: 0, more: 0, messages: [] });
});

h.test('clearUnread, setUnread (forward only) and delete', async () => {
  const u1 = uid('u1'); const u2 = uid('u2'); const u3 = uid('u3');
  const c1 = await h.login(u1);
  await sendN(c1, u2, 5, 'to u2');
  await sendN(c1, u3, 5, 'to u3');
  const ok = async (path, body) => {
    const r = await h.srv.post(path, body);
    assert.equal(r.status, 200, `${path}: ${r.text}`);
    assert.deepEqual(r.json, { status: 200 });
  };

  // clearUnread: read-to = last seq.
  await ok('/conversations/clearUnread', { uid: u2, channel_id: u1, channel_type: 1, message_seq: 0 });
  let conv = find(await convSync(u2), u1);
  assert.equal(conv.unread, 0);
  assert.equal(conv.readed_to_msg_seq, 5);
  // setUnread cannot move a read conversation back.
  await ok('/conversations/setUnread', { uid: u2, channel_id: u1, channel_type: 1, unread: 2 });
  conv = find(await convSync(u2), u1);
  assert.equal(conv.unread, 0, 'setUnread is forward-only: already read to 5, stays read');

  // On an unread conversation setUnread moves forward: 5 unread -> 2.
  await ok('/conversations/setUnread', { uid: u3, channel_id: u1, channel_type: 1, unread: 2 });
  conv = find(await convSync(u3), u1);
  assert.equal(conv.unread, 2);
  assert.equal(conv.readed_to_msg_seq, 3);
  await ok('/conversations/setUnread', { uid: u3, channel_id: u1, channel_type: 1, unread: 4 });
  conv = find(await convSync(u3), u1);
  assert.equal(conv.unread, 2, 'asking for more unread does not move the pointer back');
  await ok('/conversations/setUnread', { uid: u3, channel_id: u1, channel_type: 1, unread: 0 });
  conv = find(await convSync(u3), u1);
  assert.equal(conv.unread, 0, 'unread 0 = read to last seq');

  // only_unread hides read conversations.
  const onlyUnread = await convSync(u3, { only_unread: 1 });
  assert.equal(find(onlyUnread, u1), undefined, 'only_unread=1 skips a fully read conversation');

  // delete hides it until a newer message arrives.
  await ok('/conversations/delete', { uid: u2, channel_id: u1, channel_type: 1 });
  assert.equal(find(await convSync(u2), u1), undefined, 'deleted conversation is hidden');
  const ack = await c1.send({ channelId: u2, channelType: 1, payload: { type: 1, content: 'after delete' } });
  assert.equal(ack.messageSeq, 6);
  conv = find(await convSync(u2), u1);
  assert.ok(conv, 'a new message brings the conversation back');
  assert.equal(conv.last_msg_seq, 6);
  assert.deepEqual(conv.recents.map((m) => m.message_seq), [6], 'only messages after the delete point');
  assert.equal(conv.unread, 1);
});

h.test('group conversation: created at join, unread counts only later messages', async () => {
  const a = uid('a'); const b = uid('b'); const g = uid('g');
  const ca = await h.login(a);
  let r = await h.srv.post('/channel', { channel_id: g, channel_type: 2, subscribers: [a] });
  assert.equal(r.status, 200, r.text);
  await ca.send({ channelId: g, channelType: 2, payload: { type: 1, content: 'before b joined' } });
  r = await h.srv.post('/channel/subscriber_add', { channel_id: g, channel_type: 2, subscribers: [b] });
  assert.equal(r.status, 200, r.text);
  await ca.send({ channelId: g, channelType: 2, payload: { type: 1, content: 'after b joined 1' } });
  await ca.send({ channelId: g, channelType: 2, payload: { type: 1, content: 'after b joined 2' } });
  const conv = find(await convSync(b), g, 2);
  assert.ok(conv, 'b has the group conversation');
  assert.equal(conv.last_msg_seq, 3);
  assert.equal(conv.unread, 2, 'only messages after joining are unread');
});

h.test('invalid requests get 400', async () => {
  for (const [path, body] of [
    ['/channel/messagesync', { channel_id: 'x', channel_type: 1, limit: 10 }],
    ['/conversations/setUnread', { uid: 'x', channel_id: 'y', channel_type: 0, unread: 1 }],
    ['/conversations/delete', { channel_id: 'y', channel_type: 1 }],
  ]) {
    const r = await h.srv.post(path, body);
    assert.equal(r.status, 400, `${path} ${JSON.stringify(body)} -> ${r.status} ${r.text}`);
    assert.equal(r.json?.status, 400);
    assert.ok(r.json.msg, 'non-empty msg');
  }
});
