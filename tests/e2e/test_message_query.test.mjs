// Looking up stored messages: POST /messages, POST /message, GET /message/byclientmsgno and
// GET /channel/last_message (http-api.md §2.2, §3.5, §4.5, §5.3). Answers are MessageResp objects;
// "not found" is 200 {"status":404}; a message_id only finds messages of the requested channel.

import assert from 'node:assert/strict';
import { useServer, uid, b64json, personFakeId } from './lib/harness.mjs';
import { REASON } from './lib/wkproto.mjs';

const h = useServer();

const NOT_FOUND = { status: 404 };
// WuKongIM's MessageResp field order (types.MessageResp), for a message without topic.
const RESP_KEYS = ['header', 'setting', 'message_id', 'message_idstr', 'client_msg_no', 'message_seq', 'from_uid',
  'channel_id', 'channel_type', 'expire', 'timestamp', 'payload'];

async function apiSend(body) {
  const r = await h.srv.post('/message/send', body);
  assert.equal(r.status, 200, `/message/send: ${r.text}`);
  return r.json.data;
}

/** JSON text with BigInt values written as exact integers (message ids exceed 2^53). */
function bigJson(body) {
  return JSON.stringify(body, (k, v) => (typeof v === 'bigint' ? `#big#${v}` : v)).replace(/"#big#(-?\d+)"/g, '$1');
}

async function post200(path, body) {
  const text = bigJson(body);
  const r = await h.srv.post(path, text);
  assert.equal(r.status, 200, `${path} ${text}: ${r.status} ${r.text}`);
  return r.json;
}

async function get200(path) {
  const r = await h.srv.get(path);
  assert.equal(r.status, 200, `${path}: ${r.status} ${r.text}`);
  return r.json;
}

async function expect400(method, path, body, what) {
  const r = method === 'GET' ? await h.srv.get(path) : await h.srv.post(path, body);
  assert.equal(r.status, 400, `${what}: ${path} ${typeof body === 'string' ? body : JSON.stringify(body)} -> ${r.status} ${r.text}`);
  assert.equal(r.json?.status, 400, `${what}: envelope`);
  assert.deepEqual(Object.keys(r.json).sort(), ['msg', 'status'], `${what}: only msg and status`);
  assert.ok(r.json.msg.length > 0, `${what}: msg`);
  return r.json.msg;
}

/** The whole history of a channel as /channel/messagesync returns it (the reference MessageResp). */
async function history(login, channelId, channelType) {
  const j = await post200('/channel/messagesync', {
    login_uid: login, channel_id: channelId, channel_type: channelType, start_message_seq: 0, end_message_seq: 0, limit: 100, pull_mode: 1,
  });
  return j.messages;
}

/** u1 sends 4 messages to u2 over TCP (seqs 1..4); returns the acks and the stored history. */
async function personChat() {
  const u1 = uid('qa'); const u2 = uid('qb');
  const c1 = await h.login(u1);
  const acks = [];
  for (let i = 1; i <= 4; i++) {
    const ack = await c1.send({ channelId: u2, channelType: 1, payload: { type: 1, content: `m${i}` }, clientMsgNo: `cmn-${u1}-${i}` });
    assert.equal(ack.reasonCode, REASON.SUCCESS);
    acks.push(ack);
  }
  return { u1, u2, acks, msgs: await history(u2, u1, 1) };
}

h.test('a MessageResp is exact: fields, values and WuKongIM key order', async () => {
  const { u1, u2, acks, msgs } = await personChat();
  const m = (await post200('/messages', { login_uid: u2, channel_id: u1, channel_type: 1, message_seqs: [2] })).messages[0];
  assert.deepEqual(m, {
    header: { no_persist: 0, red_dot: 1, sync_once: 0 },
    setting: 0,
    message_id: Number(acks[1].messageId),
    message_idstr: String(acks[1].messageId),
    client_msg_no: `cmn-${u1}-2`,
    message_seq: 2,
    from_uid: u1,
    channel_id: u2,
    channel_type: 1,
    expire: 0,
    timestamp: msgs[1].timestamp,
    payload: b64json({ type: 1, content: 'm2' }),
  });
  assert.ok(Math.abs(m.timestamp - Date.now() / 1000) < 10, 'timestamp in seconds');
  assert.deepEqual(Object.keys(m), RESP_KEYS);
  assert.deepEqual(m, msgs[1], 'the same object /channel/messagesync returns');
});

h.test('POST /messages: seqs, then ids, then client_msg_nos; missing ones skipped', async () => {
  const { u1, u2, acks, msgs } = await personChat();
  const j = await post200('/messages', {
    login_uid: u2, channel_id: u1, channel_type: 1,
    message_seqs: [3, 99, 1, 0],
    message_ids: [acks[3].messageId, 0, -5, 123456789],
    client_msg_nos: [`cmn-${u1}-2`, 'no-such', ''],
  });
  assert.deepEqual(j, { start_message_seq: 0, end_message_seq: 0, more: 0, messages: [msgs[2], msgs[0], msgs[3], msgs[1]] });

  // The sender's side names the channel by the other uid; the messages are the same.
  const mine = await post200('/messages', { login_uid: u1, channel_id: u2, channel_type: 1, message_seqs: [1, 2, 3, 4] });
  assert.deepEqual(mine.messages, msgs);

  // Duplicates are answered as often as asked; null elements read as 0 / "" and find nothing.
  const dup = await post200('/messages', { login_uid: u2, channel_id: u1, channel_type: 1, message_seqs: [4, 4, null], client_msg_nos: [null] });
  assert.deepEqual(dup.messages, [msgs[3], msgs[3]]);

  // Nothing asked, or nothing found: an empty list (never null).
  assert.deepEqual(await post200('/messages', { login_uid: u2, channel_id: u1, channel_type: 1 }),
    { start_message_seq: 0, end_message_seq: 0, more: 0, messages: [] });
  assert.deepEqual((await post200('/messages', { login_uid: u2, channel_id: uid('nobody'), channel_type: 1, message_seqs: [1] })).messages, []);
  assert.deepEqual((await post200('/messages', { login_uid: u2, channel_id: u1, channel_type: 2, message_seqs: [1] })).messages, [],
    'the same id with another channel type is another channel');
  assert.deepEqual((await post200('/messages', { login_uid: u2, channel_id: u1, channel_type: 0, message_seqs: [1] })).messages, []);

  // A person channel can be named by its stored id, without login_uid.
  const fake = await post200('/messages', { channel_id: personFakeId(u1, u2), channel_type: 1, message_seqs: [1] });
  assert.deepEqual(fake.messages, [msgs[0]]);
});

h.test('POST /messages: a message_id of another channel is not answered', async () => {
  const a = await personChat();
  const b = await personChat();
  const otherId = b.acks[0].messageId;
  const j = await post200('/messages', { login_uid: a.u2, channel_id: a.u1, channel_type: 1, message_ids: [otherId, a.acks[0].messageId] });
  assert.deepEqual(j.messages, [a.msgs[0]], 'only the message of the requested channel');
  // A third user asking for a's chat by naming a.u1 as the peer gets another channel entirely.
  const outsider = uid('qo');
  const o = await post200('/messages', { login_uid: outsider, channel_id: a.u1, channel_type: 1, message_ids: [a.acks[0].messageId], message_seqs: [1] });
  assert.deepEqual(o.messages, []);
  // Same for a client_msg_no that exists only in another channel.
  const c = await post200('/messages', { login_uid: a.u2, channel_id: a.u1, channel_type: 1, client_msg_nos: [`cmn-${b.u1}-1`] });
  assert.deepEqual(c.messages, []);
});

h.test('POST /messages on a group, messages sent over TCP and over HTTP', async () => {
  const owner = uid('go'); const member = uid('gm'); const g = uid('grp');
  let r = await h.srv.post('/channel', { channel_id: g, channel_type: 2, subscribers: [owner, member] });
  assert.equal(r.status, 200, r.text);
  const co = await h.login(owner);
  const ack = await co.send({ channelId: g, channelType: 2, payload: { type: 1, content: 'tcp' }, clientMsgNo: `g-${g}-1` });
  assert.equal(ack.reasonCode, REASON.SUCCESS);
  const d = await apiSend({ from_uid: member, channel_id: g, channel_type: 2, payload: b64json({ type: 1, content: 'http' }), client_msg_no: `g-${g}-2` });
  assert.equal(d.message_seq, 2);
  const sys = await apiSend({ channel_id: g, channel_type: 2, payload: b64json({ type: 1, content: 'system' }) });
  const msgs = await history(owner, g, 2);
  assert.equal(msgs.length, 3);
  const j = await post200('/messages', {
    channel_id: g, channel_type: 2, message_seqs: [2], message_ids: [BigInt(d.message_idstr), BigInt(sys.message_idstr)], client_msg_nos: [`g-${g}-1`],
  });
  assert.deepEqual(j.messages, [msgs[1], msgs[1], msgs[2], msgs[0]]);
  assert.equal(j.messages[0].channel_id, g);
  assert.equal(j.messages[0].from_uid, member);
  assert.equal(j.messages[2].from_uid, '', 'the system sender reads as ""');
  r = await h.srv.post('/messages', { login_uid: 'ignored-for-groups', channel_id: g, channel_type: 2, message_seqs: [3] });
  assert.deepEqual(r.json.messages, [msgs[2]]);
});

h.test('POST /message: by message_id or client_msg_no; 200 {"status":404} when absent', async () => {
  const { u1, u2, acks, msgs } = await personChat();
  const body = { login_uid: u2, channel_id: u1, channel_type: 1 };
  assert.deepEqual(await post200('/message', { ...body, message_id: acks[2].messageId }), msgs[2]);
  assert.deepEqual(await post200('/message', { ...body, client_msg_no: `cmn-${u1}-4` }), msgs[3]);
  assert.deepEqual(await post200('/message', { login_uid: u1, channel_id: u2, channel_type: 1, client_msg_no: `cmn-${u1}-1` }), msgs[0],
    'the sender finds it too');
  assert.deepEqual(await post200('/message', { ...body, message_id: acks[0].messageId, client_msg_no: `cmn-${u1}-4` }), msgs[0],
    'message_id wins over client_msg_no');
  assert.deepEqual(await post200('/message', { ...body, message_id: 0, client_msg_no: `cmn-${u1}-3` }), msgs[2], 'message_id 0 = not given');
  assert.deepEqual(await post200('/message', { channel_id: personFakeId(u1, u2), channel_type: 1, client_msg_no: `cmn-${u1}-2` }), msgs[1],
    'a fake id needs no login_uid');

  assert.deepEqual(await post200('/message', { ...body, message_id: 1 }), NOT_FOUND);
  assert.deepEqual(await post200('/message', { ...body, client_msg_no: 'nope' }), NOT_FOUND);
  assert.deepEqual(await post200('/message', { ...body, channel_type: 2, message_id: acks[0].messageId }), NOT_FOUND,
    'an id of another channel is not found');
  const other = await personChat();
  assert.deepEqual(await post200('/message', { ...body, message_id: other.acks[0].messageId }), NOT_FOUND);
  assert.deepEqual(await post200('/message', { login_uid: uid('x'), channel_id: u1, channel_type: 1, message_id: acks[0].messageId }), NOT_FOUND,
    'an outsider cannot read the chat by id');
});

h.test('GET /message/byclientmsgno: person channels by their fake id', async () => {
  const { u1, u2, msgs } = await personChat();
  const fake = personFakeId(u1, u2);
  const q = (id, type, cmn) => `/message/byclientmsgno?channel_id=${encodeURIComponent(id)}&channel_type=${type}&client_msg_no=${encodeURIComponent(cmn)}`;
  assert.deepEqual(await get200(q(fake, 1, `cmn-${u1}-3`)), msgs[2]);
  assert.deepEqual(await get200(q(fake, 1, 'missing')), NOT_FOUND);
  assert.deepEqual(await get200(q(u1, 1, `cmn-${u1}-3`)), NOT_FOUND, 'the peer uid is not the stored id');
  assert.deepEqual(await get200(q(fake, 2, `cmn-${u1}-3`)), NOT_FOUND, 'another channel type');

  const g = uid('bg');
  await h.srv.post('/channel', { channel_id: g, channel_type: 2, subscribers: [u1] });
  const d = await apiSend({ from_uid: u1, channel_id: g, channel_type: 2, payload: b64json({ type: 1, content: 'g' }), client_msg_no: 'same-cmn' });
  const [gm] = await history(u1, g, 2);
  assert.equal(gm.message_idstr, d.message_idstr);
  assert.deepEqual(await get200(q(g, 2, 'same-cmn')), gm);
  assert.deepEqual(await get200(q(g, 2, `cmn-${u1}-3`)), NOT_FOUND, 'a client_msg_no of another channel');
});

h.test('GET /channel/last_message: newest message, 404 for a channel without messages', async () => {
  const { u1, u2, msgs } = await personChat();
  const q = (login, id, type) => `/channel/last_message?login_uid=${login}&channel_id=${encodeURIComponent(id)}&channel_type=${type}`;
  assert.deepEqual(await get200(q(u2, u1, 1)), msgs[3]);
  assert.deepEqual(await get200(q(u1, u2, 1)), msgs[3], 'both sides see the same last message');
  assert.deepEqual(await get200(`/channel/last_message?channel_id=${encodeURIComponent(personFakeId(u1, u2))}&channel_type=1`), msgs[3]);
  // A newer message from the other side, over HTTP.
  const d = await apiSend({ from_uid: u2, channel_id: u1, channel_type: 1, payload: b64json({ type: 1, content: 'reply' }) });
  const last = await get200(q(u1, u2, 1));
  assert.equal(last.message_idstr, d.message_idstr);
  assert.equal(last.message_seq, 5);
  assert.equal(last.from_uid, u2);
  assert.equal(last.channel_id, u1);
  assert.equal(last.payload, b64json({ type: 1, content: 'reply' }));

  assert.deepEqual(await get200(q(u1, uid('never'), 1)), NOT_FOUND, 'no message ever');
  const g = uid('lg');
  await h.srv.post('/channel', { channel_id: g, channel_type: 2, subscribers: [u1] });
  assert.deepEqual(await get200(`/channel/last_message?channel_id=${g}&channel_type=2`), NOT_FOUND, 'an existing channel without messages');
  assert.deepEqual(await get200(`/channel/last_message?channel_id=${g}&channel_type=abc`), NOT_FOUND, 'a channel_type that is not a number reads as 0');
});

h.test('invalid requests -> 400 {"msg","status":400}', async () => {
  const ok = { login_uid: 'a', channel_id: 'b', channel_type: 1 };
  // POST /messages
  await expect400('POST', '/messages', '{"channel_id":', 'malformed JSON');
  await expect400('POST', '/messages', '', 'empty body');
  await expect400('POST', '/messages', [1], 'not an object');
  await expect400('POST', '/messages', { channel_type: 2, message_seqs: [1] }, 'channel_id missing');
  await expect400('POST', '/messages', { channel_id: '  ', channel_type: 2 }, 'channel_id blank');
  await expect400('POST', '/messages', { channel_id: 'b', channel_type: 1, message_seqs: [1] }, 'person without login_uid');
  await expect400('POST', '/messages', { ...ok, channel_id: 5 }, 'channel_id a number');
  await expect400('POST', '/messages', { ...ok, channel_type: 256 }, 'channel_type out of range');
  await expect400('POST', '/messages', { ...ok, message_seqs: '1' }, 'message_seqs a string');
  await expect400('POST', '/messages', { ...ok, message_seqs: ['1'] }, 'message_seqs of strings');
  await expect400('POST', '/messages', { ...ok, message_seqs: [1.5] }, 'fractional seq');
  await expect400('POST', '/messages', { ...ok, message_seqs: [-1] }, 'negative seq');
  await expect400('POST', '/messages', { ...ok, message_seqs: [4294967296] }, 'seq above uint32');
  await expect400('POST', '/messages', { ...ok, message_ids: [{}] }, 'message_ids of objects');
  await expect400('POST', '/messages', { ...ok, client_msg_nos: [1] }, 'client_msg_nos of numbers');
  await expect400('POST', '/messages', { ...ok, client_msg_nos: 'x' }, 'client_msg_nos a string');
  const big = Array.from({ length: 10001 }, (_, i) => i + 1);
  assert.match(await expect400('POST', '/messages', { ...ok, message_seqs: big }, 'too many seqs'), /10000/);
  await expect400('POST', '/messages', { ...ok, message_ids: big }, 'too many ids');
  await expect400('POST', '/messages', { ...ok, client_msg_nos: big.map(String) }, 'too many client_msg_nos');
  const atCap = await post200('/messages', { ...ok, message_seqs: big.slice(1) });
  assert.deepEqual(atCap.messages, [], '10000 entries are allowed');

  // POST /message
  await expect400('POST', '/message', '{', 'malformed JSON');
  await expect400('POST', '/message', { channel_type: 2, message_id: 1 }, 'channel_id missing');
  await expect400('POST', '/message', { channel_id: 'g', message_id: 1 }, 'channel_type missing');
  await expect400('POST', '/message', { channel_id: 'g', channel_type: 0, message_id: 1 }, 'channel_type 0');
  await expect400('POST', '/message', { channel_id: 'b', channel_type: 1, message_id: 1 }, 'person without login_uid');
  await expect400('POST', '/message', { channel_id: 'g', channel_type: 2 }, 'neither message_id nor client_msg_no');
  await expect400('POST', '/message', { channel_id: 'g', channel_type: 2, client_msg_no: ' ' }, 'blank client_msg_no');
  await expect400('POST', '/message', { channel_id: 'g', channel_type: 2, message_id: '1' }, 'message_id a string');
  await expect400('POST', '/message', { channel_id: 'g', channel_type: 2, message_id: 1.5 }, 'message_id fractional');
  await expect400('POST', '/message', { channel_id: 'g', channel_type: 2, client_msg_no: 7 }, 'client_msg_no a number');

  // GET /message/byclientmsgno
  await expect400('GET', '/message/byclientmsgno?channel_type=2&client_msg_no=x', undefined, 'channel_id missing');
  await expect400('GET', '/message/byclientmsgno?channel_id=g&client_msg_no=x', undefined, 'channel_type missing');
  await expect400('GET', '/message/byclientmsgno?channel_id=g&channel_type=x&client_msg_no=x', undefined, 'channel_type not a number');
  await expect400('GET', '/message/byclientmsgno?channel_id=g&channel_type=2', undefined, 'client_msg_no missing');
  await expect400('GET', '/message/byclientmsgno?channel_id=g&channel_type=2&client_msg_no=%20', undefined, 'client_msg_no blank');

  // GET /channel/last_message
  await expect400('GET', '/channel/last_message?channel_type=2', undefined, 'channel_id missing');
  await expect400('GET', '/channel/last_message?channel_id=b&channel_type=1', undefined, 'person without login_uid');
  await expect400('GET', '/channel/last_message?channel_id=b&channel_type=1&login_uid=%20', undefined, 'person with a blank login_uid');

  // The wrong method is 404, as for every route.
  assert.equal((await h.srv.get('/messages')).status, 404);
  assert.equal((await h.srv.post('/message/byclientmsgno', {})).status, 404);
  await h.assertHealthy('after invalid queries');
});
