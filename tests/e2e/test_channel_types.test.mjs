// Channel types (http-api.md §3.1, §5.6, §5.15): who may send and who receives, per type.
// Customer service (3) and info (6) are public; data (7) and live (9) check senders normally and
// keep no conversations; visitors (10) admit their visitor; agent (11) channels are "uid@agent"
// and admit only those two; community (4, 5) and agent groups (12) work like groups; a command
// channel X____cmd uses the members and rules of X; large=1 changes nothing.
// Temp channels (8) are in test_temp_channel.

import assert from 'node:assert/strict';
import { useServer, uid, b64json } from './lib/harness.mjs';
import { PT, REASON } from './lib/wkproto.mjs';

const h = useServer();
const CHANNEL_ID_ERROR = 16; // reason code (http-api.md §3.3)

async function ok(path, body) {
  const r = await h.srv.post(path, body);
  assert.equal(r.status, 200, `${path}: ${r.status} ${r.text}`);
  assert.deepEqual(r.json, { status: 200 }, path);
}

const say = (content) => ({ type: 1, content });
const recvs = (c, ms = 300) => c.collect((p) => p.type === PT.RECV, ms);

async function convSync(user) {
  const r = await h.srv.post('/conversation/sync', { uid: user, msg_count: 5 });
  assert.equal(r.status, 200, r.text);
  return r.json;
}

/** c receives the message of ack in channel (id, type) from `from`. */
async function gets(c, ack, id, type, from) {
  const r = await c.waitRecv((p) => p.messageId === ack.messageId);
  assert.equal(r.channelId, id, `${c.name}: channelId`);
  assert.equal(r.channelType, type, `${c.name}: channelType`);
  assert.equal(r.fromUid, from, `${c.name}: fromUid`);
  return r;
}

h.test('customer service (3): anyone may send, even when banned; subscribers and the visitor of "visitor|..." receive', async () => {
  const v = uid('csv'); const staff = uid('css'); const x = uid('csx');
  const cs = `${v}|${uid('sess')}`;
  await ok('/channel', { channel_id: cs, channel_type: 3, subscribers: [staff], ban: 1 });
  const [cv, cstaff, cx] = [await h.login(v), await h.login(staff), await h.login(x)];
  const ack = await cx.send({ channelId: cs, channelType: 3, payload: say('hello support') });
  assert.equal(ack.reasonCode, REASON.SUCCESS, 'public: no ban check, no sender check');
  await gets(cstaff, ack, cs, 3, x);
  await gets(cv, ack, cs, 3, x);
  assert.equal((await recvs(cx)).length, 0, 'the sender is not a member');

  // the visitor listed as a subscriber as well still gets one copy
  const cs2 = `${v}|${uid('sess')}`;
  await ok('/channel', { channel_id: cs2, channel_type: 3, subscribers: [staff, v] });
  const ack2 = await cstaff.send({ channelId: cs2, channelType: 3, payload: say('once') });
  await gets(cv, ack2, cs2, 3, staff);
  assert.equal((await recvs(cv)).length, 0, 'no duplicate for the visitor');
});

h.test('info (6): public, even when banned; subscribers receive', async () => {
  const m = uid('im'); const x = uid('ix'); const ch = uid('info');
  await ok('/channel', { channel_id: ch, channel_type: 6, subscribers: [m], ban: 1 });
  const [cm, cx] = [await h.login(m), await h.login(x)];
  const ack = await cx.send({ channelId: ch, channelType: 6, payload: say('news') });
  assert.equal(ack.reasonCode, REASON.SUCCESS);
  await gets(cm, ack, ch, 6, x);
  assert.equal((await recvs(cx)).length, 0);
});

for (const [type, name] of [[7, 'data'], [9, 'live']]) {
  h.test(`${name} (${type}): normal sender checks, subscribers receive, no conversations`, async () => {
    const a = uid('da'); const b = uid('db'); const x = uid('dx'); const ch = uid(name);
    await ok('/channel', { channel_id: ch, channel_type: type, subscribers: [a, b] });
    const [ca, cb, cx] = [await h.login(a), await h.login(b), await h.login(x)];
    const ack = await ca.send({ channelId: ch, channelType: type, payload: say('tick') });
    assert.equal(ack.reasonCode, REASON.SUCCESS);
    assert.equal(ack.messageSeq, 1, 'stored');
    await gets(cb, ack, ch, type, a);
    assert.equal((await cx.send({ channelId: ch, channelType: type, payload: say('x') })).reasonCode, REASON.SUBSCRIBER_NOT_EXIST);
    await ok('/channel/blacklist_add', { channel_id: ch, channel_type: type, uids: [b] });
    assert.equal((await cb.send({ channelId: ch, channelType: type, payload: say('x') })).reasonCode, REASON.IN_BLACKLIST);
    await ok('/channel/blacklist_remove', { channel_id: ch, channel_type: type, uids: [b] });
    await ok('/channel/subscriber_remove', { channel_id: ch, channel_type: type, subscribers: [b] });
    await ok('/channel/subscriber_add', { channel_id: ch, channel_type: type, subscribers: [b] });
    for (const u of [a, b]) {
      assert.deepEqual((await convSync(u)).filter((c) => c.channel_id === ch), [], `${u}: no conversation`);
    }
    await ok('/channel/info', { channel_id: ch, channel_type: type, ban: 1 });
    assert.equal((await ca.send({ channelId: ch, channelType: type, payload: say('x') })).reasonCode, REASON.BAN);
  });
}

h.test('visitors (10): the visitor (= channel id) may always send; subscribers and the visitor receive', async () => {
  const v = uid('vv'); const staff = uid('vs'); const x = uid('vx');
  await ok('/channel', { channel_id: v, channel_type: 10, subscribers: [staff] });
  const [cv, cv2, cstaff, cx] = [await h.login(v), await h.login(v, { deviceFlag: 1 }), await h.login(staff), await h.login(x)];
  const ack = await cv.send({ channelId: v, channelType: 10, payload: say('help') });
  assert.equal(ack.reasonCode, REASON.SUCCESS, 'the visitor is not a subscriber and may send');
  await gets(cstaff, ack, v, 10, v);
  const own = await gets(cv2, ack, v, 10, v);
  assert.equal(own.redDot, false, 'the visitor\'s other device');
  assert.equal((await recvs(cv)).length, 0, 'not to the sending connection');

  const reply = await cstaff.send({ channelId: v, channelType: 10, payload: say('how can I help') });
  assert.equal(reply.reasonCode, REASON.SUCCESS);
  await gets(cv, reply, v, 10, staff);
  await gets(cv2, reply, v, 10, staff);
  assert.equal((await cx.send({ channelId: v, channelType: 10, payload: say('x') })).reasonCode, REASON.SUBSCRIBER_NOT_EXIST);

  // a visitor whose channel was never created still reaches its own other devices
  const w = uid('vw');
  const [cw, cw2] = [await h.login(w), await h.login(w, { deviceFlag: 2 })];
  const solo = await cw.send({ channelId: w, channelType: 10, payload: say('anyone?') });
  assert.equal(solo.reasonCode, REASON.SUCCESS);
  await gets(cw2, solo, w, 10, w);
});

h.test('agent (11): "uid@agent" is built from the sender and channel_id; only the two take part', async () => {
  const u = uid('au'); const a = uid('ag'); const x = uid('ax');
  const [cu, cu2, ca, cx] = [await h.login(u), await h.login(u, { deviceFlag: 1 }), await h.login(a), await h.login(x)];
  // The client sends channel_id = the agent uid, as WuKongIM clients do.
  const ack = await cu.send({ channelId: a, channelType: 11, payload: say('question') });
  assert.equal(ack.reasonCode, REASON.SUCCESS);
  assert.equal(ack.messageSeq, 1);
  await gets(ca, ack, a, 11, u);
  const own = await gets(cu2, ack, a, 11, u);
  assert.equal(own.redDot, false);

  // Magpie: the agent answers in the same channel by naming its stored id.
  const answer = await ca.send({ channelId: `${u}@${a}`, channelType: 11, payload: say('answer') });
  assert.equal(answer.reasonCode, REASON.SUCCESS);
  assert.equal(answer.messageSeq, 2, 'same channel u@a');
  await gets(cu, answer, a, 11, a);
  await gets(cu2, answer, a, 11, a);

  // Nobody else can name it; '@' stays an error for every other type.
  assert.equal((await cx.send({ channelId: `${u}@${a}`, channelType: 11, payload: say('x') })).reasonCode, CHANNEL_ID_ERROR);
  assert.equal((await cu.send({ channelId: `${u}@bad#id`, channelType: 11, payload: say('x') })).reasonCode, CHANNEL_ID_ERROR);
  assert.equal((await cu.send({ channelId: `${u}@${a}`, channelType: 2, payload: say('x') })).reasonCode, CHANNEL_ID_ERROR);
  assert.equal((await recvs(ca)).length + (await recvs(cu, 50)).length, 0);

  // The API builds the id the same way: from_uid@channel_id.
  const r = await h.srv.post('/message/send', { from_uid: u, channel_id: a, channel_type: 11, payload: b64json(say('via API')) });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.data.message_seq, 3);
  await ca.waitRecv((p) => p.messageId.toString() === r.json.data.message_idstr);
  const hist = await h.srv.post('/channel/messagesync', { login_uid: u, channel_id: `${u}@${a}`, channel_type: 11, limit: 10 });
  assert.deepEqual(hist.json.messages.map((m) => [m.message_seq, m.from_uid]), [[1, u], [2, a], [3, u]]);
});

for (const [type, name] of [[4, 'community'], [5, 'community topic'], [12, 'agent group']]) {
  h.test(`${name} (${type}) works like a group`, async () => {
    const a = uid('ga'); const b = uid('gb'); const x = uid('gx'); const ch = uid('grp');
    await ok('/channel', { channel_id: ch, channel_type: type, subscribers: [a, b] });
    const [ca, cb, cx] = [await h.login(a), await h.login(b), await h.login(x)];
    const ack = await ca.send({ channelId: ch, channelType: type, payload: say('hi') });
    assert.equal(ack.reasonCode, REASON.SUCCESS);
    await gets(cb, ack, ch, type, a);
    assert.equal((await cx.send({ channelId: ch, channelType: type, payload: say('x') })).reasonCode, REASON.SUBSCRIBER_NOT_EXIST);
    const conv = (await convSync(b)).find((c) => c.channel_id === ch);
    assert.equal(conv?.unread, 1, 'a conversation is kept');
  });
}

h.test('a command channel X____cmd uses the members and rules of X', async () => {
  const a = uid('ka'); const b = uid('kb'); const c = uid('kc'); const x = uid('kx'); const g = uid('kg');
  await ok('/channel', { channel_id: g, channel_type: 2, subscribers: [a, b] });
  const [ca, cb, cc, cx] = [await h.login(a), await h.login(b), await h.login(c), await h.login(x)];
  const cmd = (n) => ({ from_uid: a, channel_id: g, channel_type: 2, header: { sync_once: 1 }, payload: b64json({ type: 99, n }) });
  const s1 = await h.srv.post('/message/send', cmd(1));
  assert.equal(s1.status, 200, s1.text);
  const r1 = await cb.waitRecv((p) => p.messageId.toString() === s1.json.data.message_idstr);
  assert.equal(r1.syncOnce, true);
  assert.equal(r1.channelId, g);

  // membership changes of X reach its command channel (its cached members are dropped)
  await ok('/channel/subscriber_add', { channel_id: g, channel_type: 2, subscribers: [c] });
  const s2 = await h.srv.post('/message/send', cmd(2));
  await cc.waitRecv((p) => p.messageId.toString() === s2.json.data.message_idstr);
  await ok('/channel/subscriber_remove', { channel_id: g, channel_type: 2, subscribers: [c] });
  const s3 = await h.srv.post('/message/send', cmd(3));
  await cb.waitRecv((p) => p.messageId.toString() === s3.json.data.message_idstr);
  assert.equal((await recvs(cc)).filter((p) => p.messageId.toString() === s3.json.data.message_idstr).length, 0);

  // a client writing to X____cmd directly is checked against X
  const bad = await cx.send({ channelId: `${g}____cmd`, channelType: 2, payload: say('x') });
  assert.equal(bad.reasonCode, REASON.SUBSCRIBER_NOT_EXIST);
  await ok('/channel/blacklist_add', { channel_id: g, channel_type: 2, uids: [b] });
  assert.equal((await cb.send({ channelId: `${g}____cmd`, channelType: 2, payload: say('x') })).reasonCode, REASON.IN_BLACKLIST);

  // X's ban holds for its command channel too
  await ok('/channel/info', { channel_id: g, channel_type: 2, ban: 1 });
  const banned = await h.srv.post('/message/send', cmd(4));
  assert.equal(banned.status, 400, banned.text);
  assert.equal(banned.json.reason_code, REASON.BAN);
  assert.equal((await ca.send({ channelId: `${g}____cmd`, channelType: 2, payload: say('x') })).reasonCode, REASON.BAN);
});

h.test('large=1 changes nothing: read diffusion, one conversation per member from join time', async () => {
  const a = uid('la'); const b = uid('lb'); const c = uid('lc'); const g = uid('large');
  await ok('/channel', { channel_id: g, channel_type: 2, large: 1, subscribers: [a, b] });
  const [ca, cb] = [await h.login(a), await h.login(b)];
  for (const n of [1, 2]) {
    const ack = await ca.send({ channelId: g, channelType: 2, payload: say(`m${n}`) });
    assert.equal(ack.messageSeq, n);
    await gets(cb, ack, g, 2, a);
  }
  await ok('/channel/subscriber_add', { channel_id: g, channel_type: 2, subscribers: [c] });
  const cc = await h.login(c);
  const ack = await ca.send({ channelId: g, channelType: 2, payload: say('m3') });
  await gets(cc, ack, g, 2, a);
  const convB = (await convSync(b)).find((v) => v.channel_id === g);
  const convC = (await convSync(c)).find((v) => v.channel_id === g);
  assert.equal(convB.unread, 3, 'b joined before every message');
  assert.equal(convC.unread, 1, 'c\'s row was created at join time, read up to seq 2');
  assert.equal(convC.readed_to_msg_seq, 2);
  assert.equal((await convSync(a)).find((v) => v.channel_id === g).unread, 0, 'the sender read its own');
});
