// Temp channels (http-api.md §4.4, §5.13): POST /tmpchannel/subscriber_set installs an in-memory
// recipient set for (channel_id, 8). Messages to the channel are stored and pushed to that set
// only; any sender may send (ban and disband still apply); without a set nobody receives; a set
// unused for tag.expire is dropped, and every set is lost on restart.

import assert from 'node:assert/strict';
import { useServer, uid, b64json } from './lib/harness.mjs';
import { PT, REASON, sleep } from './lib/wkproto.mjs';

const EXPIRE_MS = 3000;
const h = useServer({ args: [`--tag.expire=${EXPIRE_MS}ms`] });

async function ok(path, body) {
  const r = await h.srv.post(path, body);
  assert.equal(r.status, 200, `${path}: ${r.status} ${r.text}`);
  assert.deepEqual(r.json, { status: 200 }, path);
}

async function apiSend(channelId, content, from = '') {
  const r = await h.srv.post('/message/send', { from_uid: from, channel_id: channelId, channel_type: 8, payload: b64json({ type: 1, content }) });
  assert.equal(r.status, 200, `/message/send: ${r.text}`);
  return r.json.data;
}

const isMsg = (d) => (p) => p.messageId.toString() === d.message_idstr;
const recvs = (c, ms = 300) => c.collect((p) => p.type === PT.RECV, ms);

h.test('the set receives API and client sends; others do not; messages are stored', async () => {
  const a = uid('ta'); const b = uid('tb'); const c = uid('tc'); const x = uid('tx'); const t = uid('tmp');
  const [ca, cb, cc, cx] = [await h.login(a), await h.login(b), await h.login(c), await h.login(x)];
  await ok('/tmpchannel/subscriber_set', { channel_id: t, uids: [a, b, b] });

  const d = await apiSend(t, 'from the API');
  assert.equal(d.message_seq, 1, 'stored: seq 1');
  for (const conn of [ca, cb]) {
    const r = await conn.waitRecv(isMsg(d));
    assert.equal(r.channelId, t);
    assert.equal(r.channelType, 8);
    assert.equal(r.fromUid, '');
  }
  assert.equal((await recvs(cb)).length, 0, 'a repeated uid gets one copy');

  // x is not in the set and not a subscriber of anything: it may send all the same
  const ack = await cx.send({ channelId: t, channelType: 8, payload: { type: 1, content: 'from x' } });
  assert.equal(ack.reasonCode, REASON.SUCCESS, 'no permission checks on temp channels');
  assert.equal(ack.messageSeq, 2);
  await ca.waitRecv((p) => p.messageId === ack.messageId);
  await cb.waitRecv((p) => p.messageId === ack.messageId);
  assert.equal((await recvs(cc)).length, 0, 'c is not in the set');
  assert.equal((await recvs(cx)).length, 0, 'the sender is not in the set');

  const sync = await h.srv.post('/channel/messagesync', { login_uid: c, channel_id: t, channel_type: 8, limit: 10 });
  assert.equal(sync.status, 200, sync.text);
  assert.deepEqual(sync.json.messages.map((m) => [m.message_seq, m.from_uid]), [[1, ''], [2, x]]);

  const conv = await h.srv.post('/conversation/sync', { uid: a, msg_count: 5 });
  assert.deepEqual(conv.json.filter((v) => v.channel_id === t), [], 'no conversation for a temp channel');
});

h.test('a new set replaces the old one; without a set nobody receives', async () => {
  const a = uid('ra'); const b = uid('rb'); const t = uid('tmp'); const none = uid('none');
  const ca = await h.login(a); const cb = await h.login(b);
  await ok('/tmpchannel/subscriber_set', { channel_id: t, uids: [a] });
  await ok('/tmpchannel/subscriber_set', { channel_id: t, uids: [b], channel_type: 2 });
  const d = await apiSend(t, 'to the new set');
  await cb.waitRecv(isMsg(d));
  assert.equal((await recvs(ca)).length, 0, 'a was only in the replaced set');

  const n = await apiSend(none, 'nobody');
  assert.equal(n.message_seq, 1, 'stored even without recipients');
  assert.equal((await recvs(ca)).length + (await recvs(cb, 50)).length, 0);
});

h.test('a sync_once API send stays in the temp channel (no command channel) and reaches the set', async () => {
  const a = uid('sa'); const t = uid('tmp');
  const ca = await h.login(a);
  await ok('/tmpchannel/subscriber_set', { channel_id: t, uids: [a] });
  const r = await h.srv.post('/message/send', { channel_id: t, channel_type: 8, header: { sync_once: 1 }, payload: b64json({ type: 99 }) });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.data.message_seq, 1);
  const got = await ca.waitRecv(isMsg(r.json.data));
  assert.equal(got.syncOnce, true);
  assert.equal(got.channelId, t);
  const max = await h.srv.get(`/channel/max_message_seq?channel_id=${t}&channel_type=8`);
  assert.equal(max.json.message_seq, 1, 'stored in the temp channel itself');
});

h.test('ban and disband of the temp channel still refuse', async () => {
  const a = uid('ba'); const t = uid('tmp'); const t2 = uid('tmp');
  await ok('/channel', { channel_id: t, channel_type: 8, ban: 1 });
  await ok('/channel', { channel_id: t2, channel_type: 8 });
  await ok('/channel/delete', { channel_id: t2, channel_type: 8 });
  await ok('/tmpchannel/subscriber_set', { channel_id: t, uids: [a] });
  const ca = await h.login(a);
  assert.equal((await ca.send({ channelId: t, channelType: 8, payload: { type: 1, content: 'x' } })).reasonCode, REASON.BAN);
  assert.equal((await ca.send({ channelId: t2, channelType: 8, payload: { type: 1, content: 'x' } })).reasonCode, REASON.DISBAND);
  const r = await h.srv.post('/message/send', { channel_id: t, channel_type: 8, payload: b64json({ type: 1 }) });
  assert.equal(r.status, 400, r.text);
  assert.equal(r.json.reason_code, REASON.BAN);
});

h.test('bad bodies get 400 and leave the installed set alone', async () => {
  const a = uid('va'); const t = uid('tmp');
  const ca = await h.login(a);
  await ok('/tmpchannel/subscriber_set', { channel_id: t, uids: [a] });
  const cases = [
    [{ uids: [a] }, /channel_id is required/],
    [{ channel_id: '  ', uids: [a] }, /channel_id is required/],
    [{ channel_id: 'x@y', uids: [a] }, /channel_id must not contain/],
    [{ channel_id: t }, /uids is required/],
    [{ channel_id: t, uids: [] }, /uids is required/],
    [{ channel_id: t, uids: 'abc' }, /uids/],
    [{ channel_id: t, uids: [7] }, /uids/],
    [{ channel_id: t, uids: [''] }, /blank/],
    [{ channel_id: t, uids: ['ok', 'a&b'] }, /uids\[1\] is not a valid uid/],
    [{ channel_id: 5, uids: [a] }, /channel_id/],
    ['[]', /object/],
  ];
  for (const [body, msg] of cases) {
    const r = await h.srv.post('/tmpchannel/subscriber_set', body);
    assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.text}`);
    assert.equal(r.json.status, 400);
    assert.match(r.json.msg, msg, JSON.stringify(body));
  }
  const d = await apiSend(t, 'still a');
  await ca.waitRecv(isMsg(d));
});

h.test(`a set unused for tag.expire (${EXPIRE_MS} ms here) is dropped; use keeps it`, async () => {
  const a = uid('ea'); const t = uid('tmp');
  const ca = await h.login(a);
  await ok('/tmpchannel/subscriber_set', { channel_id: t, uids: [a] });
  for (let i = 0; i < 3; i++) {
    await sleep(EXPIRE_MS / 3);
    const d = await apiSend(t, `kept alive ${i}`);
    await ca.waitRecv(isMsg(d));
  }
  await sleep(EXPIRE_MS + 700);
  const d = await apiSend(t, 'too late');
  assert.ok(d.message_seq > 0, 'still stored');
  assert.equal((await recvs(ca)).length, 0, 'the idle set was dropped');
});

h.test('sets are lost on restart', async () => {
  const a = uid('la'); const t = uid('tmp');
  await ok('/tmpchannel/subscriber_set', { channel_id: t, uids: [a] });
  await h.srv.restart();
  const ca = await h.login(a);
  const d = await apiSend(t, 'after restart');
  assert.equal(d.message_seq, 1);
  assert.equal((await recvs(ca)).length, 0);
});
