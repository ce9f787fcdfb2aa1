// The conversation helper endpoints (http-api.md §4.6, §5.9): /conversation/channels lists the
// user's conversation channels by stored id, /conversation/syncByChannels answers one
// /conversation/sync-shaped row per requested channel (also without messages), and
// /conversation/syncMessages answers recent messages per stored channel with the user's last seq.

import assert from 'node:assert/strict';
import { useServer, uid, b64json, personFakeId } from './lib/harness.mjs';
import { REASON } from './lib/wkproto.mjs';

const h = useServer();

async function post200(path, body) {
  const r = await h.srv.post(path, body);
  assert.equal(r.status, 200, `${path} ${JSON.stringify(body)}: ${r.status} ${r.text}`);
  return r.json;
}

async function expect400(path, body, what) {
  const r = await h.srv.post(path, body);
  assert.equal(r.status, 400, `${what}: ${path} ${typeof body === 'string' ? body : JSON.stringify(body)?.slice(0, 200)} -> ${r.status} ${r.text}`);
  assert.deepEqual(Object.keys(r.json ?? {}).sort(), ['msg', 'status'], `${what}: envelope`);
  assert.equal(r.json.status, 400);
  return r.json.msg;
}

async function sendN(client, channelId, channelType, n, tag) {
  const acks = [];
  for (let i = 1; i <= n; i++) {
    const ack = await client.send({ channelId, channelType, payload: { type: 1, content: `${tag} ${i}` } });
    assert.equal(ack.reasonCode, REASON.SUCCESS);
    acks.push(ack);
  }
  return acks;
}

async function history(login, channelId, channelType) {
  const j = await post200('/channel/messagesync', {
    login_uid: login, channel_id: channelId, channel_type: channelType, start_message_seq: 0, end_message_seq: 0, limit: 1000, pull_mode: 1,
  });
  return j.messages;
}

const convSync = async (user, body = {}) => post200('/conversation/sync', { uid: user, msg_count: 20, ...body });
const find = (list, id, type) => list.find((c) => c.channel_id === id && c.channel_type === type);
const newestFirst = (msgs) => [...msgs].reverse();

h.test('POST /conversation/channels: stored ids, most recently updated first', async () => {
  const me = uid('cm'); const peer = uid('cp'); const g = uid('cg');
  let r = await h.srv.post('/channel', { channel_id: g, channel_type: 2, subscribers: [me, peer] });
  assert.equal(r.status, 200, r.text);
  const cp = await h.login(peer);
  await sendN(cp, g, 2, 1, 'to the group');
  await sendN(cp, me, 1, 1, 'hello');
  assert.deepEqual(await post200('/conversation/channels', { uid: me }), [
    { channel_id: personFakeId(me, peer), channel_type: 1 },
    { channel_id: g, channel_type: 2 },
  ], 'the person chat (fake id) was updated after the join');
  // Reading the group moves its read pointer and so updates the row: it moves to the front.
  r = await h.srv.post('/conversations/clearUnread', { uid: me, channel_id: g, channel_type: 2 });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(await post200('/conversation/channels', { uid: me }), [
    { channel_id: g, channel_type: 2 },
    { channel_id: personFakeId(me, peer), channel_type: 1 },
  ]);
  // A deleted conversation keeps its row, so it is still listed (as in WuKongIM).
  r = await h.srv.post('/conversations/delete', { uid: me, channel_id: peer, channel_type: 1 });
  assert.equal(r.status, 200, r.text);
  const after = await post200('/conversation/channels', { uid: me });
  assert.deepEqual(after.map((c) => c.channel_id).sort(), [g, personFakeId(me, peer)].sort());
  assert.deepEqual(await post200('/conversation/channels', { uid: uid('nobody') }), [], 'no conversations: []');
  assert.deepEqual((await post200('/conversation/channels', { uid: peer })).map((c) => c.channel_id), [personFakeId(me, peer), g],
    'the sender has both rows');
});

h.test('POST /conversation/syncByChannels: one row per channel, in request order, also without messages', async () => {
  const me = uid('sm'); const peer = uid('sp'); const g = uid('sg'); const empty = uid('se');
  await post200('/channel', { channel_id: g, channel_type: 2, subscribers: [me, peer] });
  await post200('/channel', { channel_id: empty, channel_type: 2, subscribers: [me] });
  const cp = await h.login(peer);
  await sendN(cp, me, 1, 4, 'dm');
  await sendN(cp, g, 2, 3, 'group');

  const rows = await post200('/conversation/syncByChannels', {
    uid: me,
    channels: [{ channel_id: g, channel_type: 2 }, { channel_id: peer, channel_type: 1 }, { channel_id: uid('ghost'), channel_type: 2 },
      { channel_id: empty, channel_type: 2 }, { channel_id: g, channel_type: 2 }],
    msg_count: 20,
  });
  assert.equal(rows.length, 5, 'one row per requested channel, duplicates included');
  // Rows with messages are exactly what /conversation/sync answers for them.
  const list = await convSync(me);
  assert.deepEqual(rows[0], find(list, g, 2));
  assert.deepEqual(rows[1], find(list, peer, 1));
  assert.deepEqual(rows[4], rows[0]);
  const dm = await history(me, peer, 1);
  assert.deepEqual(rows[1], {
    channel_id: peer, channel_type: 1, unread: 4, timestamp: dm[3].timestamp, last_msg_seq: 4, last_client_msg_no: dm[3].client_msg_no,
    offset_msg_seq: 0, readed_to_msg_seq: 0, version: dm[3].timestamp * 1e9, recents: newestFirst(dm),
  });
  // A channel nobody ever used: an empty row.
  assert.deepEqual(rows[2], {
    channel_id: rows[2].channel_id, channel_type: 2, unread: 0, timestamp: 0, last_msg_seq: 0, last_client_msg_no: '',
    offset_msg_seq: 0, readed_to_msg_seq: 0, version: 0, recents: [],
  });
  // A joined channel without messages: empty too, version = the row's update time in ns.
  const { version, ...rest } = rows[3];
  assert.deepEqual(rest, {
    channel_id: empty, channel_type: 2, unread: 0, timestamp: 0, last_msg_seq: 0, last_client_msg_no: '',
    offset_msg_seq: 0, readed_to_msg_seq: 0, recents: [],
  });
  assert.ok(Math.abs(version / 1e9 - Date.now() / 1000) < 60, `version ${version} is the row's updated_at in ns`);
});

h.test('syncByChannels: default msg_count 15, no deleted or read bound, read state kept', async () => {
  const me = uid('dm'); const peer = uid('dp');
  const cp = await h.login(peer);
  await sendN(cp, me, 1, 17, 'many');
  const dm = await history(me, peer, 1);
  let [row] = await post200('/conversation/syncByChannels', { uid: me, channels: [{ channel_id: peer, channel_type: 1 }] });
  assert.deepEqual(row.recents, newestFirst(dm).slice(0, 15), 'msg_count missing: the newest 15');
  [row] = await post200('/conversation/syncByChannels', { uid: me, channels: [{ channel_id: peer, channel_type: 1 }], msg_count: 0 });
  assert.equal(row.recents.length, 15, 'msg_count 0: 15');
  assert.equal(row.unread, 17);

  await post200('/conversations/setUnread', { uid: me, channel_id: peer, channel_type: 1, unread: 5 });
  [row] = await post200('/conversation/syncByChannels', { uid: me, channels: [{ channel_id: peer, channel_type: 1 }], msg_count: 3 });
  assert.deepEqual(row.recents.map((m) => m.message_seq), [17, 16, 15], 'no read-pointer bound');
  assert.equal(row.unread, 5);
  assert.equal(row.readed_to_msg_seq, 12);
  // Magpie's delete also marks the conversation read.
  await post200('/conversations/delete', { uid: me, channel_id: peer, channel_type: 1 });
  assert.equal(find(await convSync(me), peer, 1), undefined, '/conversation/sync hides the deleted conversation');
  [row] = await post200('/conversation/syncByChannels', { uid: me, channels: [{ channel_id: peer, channel_type: 1 }], msg_count: 3 });
  assert.deepEqual(row.recents.map((m) => m.message_seq), [17, 16, 15], 'syncByChannels ignores the delete point');
  assert.equal(row.unread, 0);
  assert.equal(row.readed_to_msg_seq, 17);

  // The sender's own view: its newest message is its own, so nothing is unread.
  [row] = await post200('/conversation/syncByChannels', { uid: peer, channels: [{ channel_id: me, channel_type: 1 }], msg_count: 1 });
  assert.equal(row.channel_id, me);
  assert.equal(row.unread, 0);
  assert.equal(row.readed_to_msg_seq, 17);
  assert.deepEqual(row.recents, [dm[16]]);
});

h.test('POST /conversation/syncMessages: newest or oldest first from last_msg_seq, user_last_msg_seq', async () => {
  const a = uid('ma'); const b = uid('mb'); const g = uid('mg');
  const ca = await h.login(a);
  const cb = await h.login(b);
  await sendN(ca, b, 1, 3, 'a');
  await sendN(cb, a, 1, 2, 'b');
  const fake = personFakeId(a, b);
  const dm = await history(a, b, 1);
  const sync = (body) => post200('/conversation/syncMessages', { uid: a, ...body });
  const one = async (channel, body = {}) => (await sync({ channels: [channel], ...body }))[0];

  assert.deepEqual(await one({ channel_id: fake, channel_type: 1, last_msg_seq: 0 }, { msg_count: 2, order_by_last: 1 }),
    { channel_id: fake, channel_type: 1, messages: [dm[4], dm[3]], user_last_msg_seq: 3 });
  assert.deepEqual((await one({ channel_id: fake, channel_type: 1, last_msg_seq: 3 }, { msg_count: 10, order_by_last: 1 })).messages,
    [dm[4], dm[3], dm[2]], 'order_by_last 1: seqs >= last_msg_seq, newest first');
  assert.deepEqual((await one({ channel_id: fake, channel_type: 1, last_msg_seq: 2 }, { msg_count: 2 })).messages,
    [dm[1], dm[2]], 'order_by_last 0: the first msg_count from last_msg_seq, ascending');
  assert.deepEqual((await one({ channel_id: fake, channel_type: 1 })).messages, dm, 'from the start; msg_count default 15');
  assert.deepEqual((await one({ channel_id: fake, channel_type: 1, last_msg_seq: 6 }, { order_by_last: 1 })).messages, [], 'above the last seq');
  assert.deepEqual((await one({ channel_id: fake, channel_type: 1, last_msg_seq: 5 }, { order_by_last: 1 })).messages, [dm[4]]);
  assert.equal((await post200('/conversation/syncMessages', { uid: b, channels: [{ channel_id: fake, channel_type: 1 }] }))[0].user_last_msg_seq, 5);
  assert.equal((await post200('/conversation/syncMessages', { channels: [{ channel_id: fake, channel_type: 1 }] }))[0].user_last_msg_seq, 0,
    'no uid: 0');
  assert.deepEqual(await one({ channel_id: b, channel_type: 1 }), { channel_id: b, channel_type: 1, messages: [], user_last_msg_seq: 0 },
    'the peer uid is not the stored id of a person channel');

  // A group, with messages from the API too; answered in request order.
  await post200('/channel', { channel_id: g, channel_type: 2, subscribers: [a, b] });
  await sendN(ca, g, 2, 1, 'ga');
  await post200('/message/send', { from_uid: b, channel_id: g, channel_type: 2, payload: b64json({ type: 1, content: 'gb' }) });
  const gm = await history(a, g, 2);
  const both = await sync({ channels: [{ channel_id: g, channel_type: 2 }, { channel_id: fake, channel_type: 1, last_msg_seq: 5 }], order_by_last: 1 });
  assert.deepEqual(both, [
    { channel_id: g, channel_type: 2, messages: [gm[1], gm[0]], user_last_msg_seq: 1 },
    { channel_id: fake, channel_type: 1, messages: [dm[4]], user_last_msg_seq: 3 },
  ]);
  assert.deepEqual(await sync({}), [], 'no channels: []');
  assert.deepEqual(await sync({ channels: [] }), []);
});

h.test('stream messages carry their stream fields (mode full) in recents and messages, not in /messages', async () => {
  const bot = uid('bot'); const a = uid('sa'); const g = uid('sg');
  await post200('/channel', { channel_id: g, channel_type: 2, subscribers: [a] });
  const cmn = uid('cmn');
  await post200('/message/send', { from_uid: bot, channel_id: g, channel_type: 2, client_msg_no: cmn, payload: b64json({ type: 1, content: '...' }), is_stream: 1 });
  const base = { channel_id: g, channel_type: 2, client_msg_no: cmn };
  await post200('/message/event', { ...base, event_id: 'e1', event_type: 'stream.delta', payload: { kind: 'text', delta: 'Hel' } });
  await post200('/message/event', { ...base, event_id: 'e2', event_type: 'stream.delta', payload: { kind: 'text', delta: 'lo' } });
  const [full] = (await post200('/channel/messagesync', {
    login_uid: a, channel_id: g, channel_type: 2, start_message_seq: 0, end_message_seq: 0, limit: 10, pull_mode: 1, event_summary_mode: 'full',
  })).messages;
  assert.ok(full.event_meta?.has_events, `messagesync has the stream fields: ${JSON.stringify(full)}`);
  assert.equal(full.event_meta.events[0].snapshot?.text, 'Hello');
  assert.deepEqual(find(await convSync(a), g, 2).recents, [full], '/conversation/sync recents');
  const [row] = await post200('/conversation/syncByChannels', { uid: a, channels: [{ channel_id: g, channel_type: 2 }] });
  assert.deepEqual(row.recents, [full], 'syncByChannels recents');
  const [entry] = await post200('/conversation/syncMessages', { uid: a, channels: [{ channel_id: g, channel_type: 2 }] });
  assert.deepEqual(entry.messages, [full], 'syncMessages messages');
  const { messages: [plain] } = await post200('/messages', { channel_id: g, channel_type: 2, message_seqs: [1] });
  const { end, end_reason: er, error, stream_data: sd, event_meta: em, event_sync_hint: hint, ...rest } = full;
  assert.deepEqual(plain, rest, '/messages answers the plain MessageResp, as WuKongIM');
});

h.test('invalid requests -> 400 {"msg","status":400}', async () => {
  const ch = { channel_id: 'g', channel_type: 2 };
  for (const path of ['/conversation/channels', '/conversation/syncByChannels', '/conversation/syncMessages']) {
    await expect400(path, '{"uid":', `${path}: malformed JSON`);
    await expect400(path, '', `${path}: empty body`);
    await expect400(path, '[]', `${path}: not an object`);
    await expect400(path, { uid: 7, channels: [ch] }, `${path}: uid a number`);
  }
  await expect400('/conversation/channels', {}, 'channels: uid missing');
  await expect400('/conversation/channels', { uid: ' ' }, 'channels: uid blank');

  const by = '/conversation/syncByChannels';
  await expect400(by, { channels: [ch] }, 'uid missing');
  await expect400(by, { uid: 'u' }, 'channels missing');
  await expect400(by, { uid: 'u', channels: [] }, 'channels empty');
  await expect400(by, { uid: 'u', channels: null }, 'channels null');
  await expect400(by, { uid: 'u', channels: ch }, 'channels an object');
  await expect400(by, { uid: 'u', channels: [null] }, 'a null entry');
  await expect400(by, { uid: 'u', channels: ['g'] }, 'a string entry');
  await expect400(by, { uid: 'u', channels: [{ channel_type: 2 }] }, 'channel_id missing');
  await expect400(by, { uid: 'u', channels: [{ channel_id: 'g' }] }, 'channel_type missing');
  await expect400(by, { uid: 'u', channels: [{ channel_id: 'g', channel_type: '2' }] }, 'channel_type a string');
  await expect400(by, { uid: 'u', channels: [{ channel_id: 'g', channel_type: 300 }] }, 'channel_type out of range');
  await expect400(by, { uid: 'u', channels: [ch], msg_count: '5' }, 'msg_count a string');
  assert.match(await expect400(by, { uid: 'u', channels: [ch], msg_count: 10001 }, 'msg_count above the cap'), /10000/);
  const many = Array.from({ length: 1001 }, (_, i) => ({ channel_id: `c${i}`, channel_type: 2 }));
  assert.match(await expect400(by, { uid: 'u', channels: many }, 'too many channels'), /1000/);
  assert.equal((await post200(by, { uid: 'u', channels: many.slice(1), msg_count: 10000 })).length, 1000, '1000 channels are allowed');

  const sm = '/conversation/syncMessages';
  await expect400(sm, { uid: 'u', channels: ch }, 'channels an object');
  await expect400(sm, { uid: 'u', channels: [null] }, 'a null entry');
  await expect400(sm, { uid: 'u', channels: [{ channel_id: '', channel_type: 2 }] }, 'channel_id empty');
  await expect400(sm, { uid: 'u', channels: [{ channel_id: 'g', channel_type: 2, last_msg_seq: -1 }] }, 'negative last_msg_seq');
  await expect400(sm, { uid: 'u', channels: [{ channel_id: 'g', channel_type: 2, last_msg_seq: 1.5 }] }, 'fractional last_msg_seq');
  await expect400(sm, { uid: 'u', channels: [ch], order_by_last: '1' }, 'order_by_last a string');
  await expect400(sm, { uid: 'u', channels: [ch], msg_count: 20000 }, 'msg_count above the cap');
  await expect400(sm, { uid: 'u', channels: many }, 'too many channels');
  await h.assertHealthy('after invalid conversation requests');
});
