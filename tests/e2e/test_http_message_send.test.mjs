// POST /message/send: HTTP-originated messages to person and group channels reach online members
// as RECV with the given from_uid; the response carries message_id, message_idstr and
// message_seq; invalid requests answer 400 (http-api.md §4.5, §5.6, §5.11).

import assert from 'node:assert/strict';
import { useServer, uid, b64json } from './lib/harness.mjs';
import { PT, REASON } from './lib/wkproto.mjs';

const h = useServer();

async function apiSend(body) {
  const r = await h.srv.post('/message/send', body);
  assert.equal(r.status, 200, `/message/send: ${r.status} ${r.text}`);
  assert.equal(r.json.status, 200);
  const d = r.json.data;
  assert.ok(d, 'data present');
  assert.equal(typeof d.message_id, 'number');
  assert.equal(typeof d.message_idstr, 'string');
  assert.match(d.message_idstr, /^[1-9][0-9]*$/);
  assert.equal(typeof d.message_seq, 'number');
  assert.equal(typeof d.client_msg_no, 'string');
  assert.ok(d.client_msg_no.length > 0);
  return d;
}

h.test('person: from_uid a to b reaches b (channelId a) and a\'s devices (channelId b)', async () => {
  const a = uid('ha'); const b = uid('hb');
  const cb = await h.login(b, { version: 2 });
  const ca = await h.login(a, { version: 5, transport: 'ws' });
  const payload = { type: 1, content: 'from the backend' };
  const d = await apiSend({ from_uid: a, channel_id: b, channel_type: 1, payload: b64json(payload), header: { red_dot: 1 }, client_msg_no: 'api-cmn-1' });
  assert.equal(d.message_seq, 1);
  assert.equal(d.client_msg_no, 'api-cmn-1');

  const r = await cb.waitRecv();
  assert.equal(String(r.messageId), d.message_idstr);
  assert.equal(r.messageSeq, 1);
  assert.equal(r.fromUid, a);
  assert.equal(r.channelId, a, 'target sees channelId = sender');
  assert.equal(r.channelType, 1);
  assert.equal(r.clientMsgNo, 'api-cmn-1');
  assert.equal(r.redDot, true);
  assert.deepEqual(r.json, payload);

  const o = await ca.waitRecv();
  assert.equal(o.channelId, b, 'sender\'s device sees channelId = peer');
  assert.equal(o.fromUid, a);
  assert.equal(o.redDot, false, 'RedDot cleared for the sender uid');
  assert.deepEqual(o.json, payload);

  // A client send continues the same channel seq.
  const next = await cb.send({ channelId: a, channelType: 1, payload: { type: 1, content: 'reply' } });
  assert.equal(next.messageSeq, 2);
  // And the stored message matches the response.
  const s = await h.srv.post('/channel/messagesync', { login_uid: b, channel_id: a, channel_type: 1, start_message_seq: 0, end_message_seq: 0, limit: 10, pull_mode: 1 });
  assert.equal(s.json.messages[0].message_idstr, d.message_idstr);
  assert.equal(s.json.messages[0].payload, b64json(payload));
});

h.test('group: every online member gets it, from a non-member and from the system uid too', async () => {
  const a = uid('ga'); const b = uid('gb'); const c = uid('gc'); const g = uid('gg');
  const r = await h.srv.post('/channel', { channel_id: g, channel_type: 2, subscribers: [a, b, c] });
  assert.equal(r.status, 200, r.text);
  const ca = await h.login(a); const cb = await h.login(b, { transport: 'ws' }); const cc = await h.login(c, { version: 2 });

  const p1 = { type: 1, content: 'group via api' };
  const d1 = await apiSend({ from_uid: a, channel_id: g, channel_type: 2, payload: b64json(p1) });
  assert.equal(d1.message_seq, 1);
  for (const conn of [ca, cb, cc]) {
    const m = await conn.waitRecv((x) => String(x.messageId) === d1.message_idstr);
    assert.equal(m.fromUid, a);
    assert.equal(m.channelId, g);
    assert.equal(m.channelType, 2);
    assert.deepEqual(m.json, p1);
  }

  // The API sender bypasses the subscriber check (system device).
  const stranger = uid('st');
  const d2 = await apiSend({ from_uid: stranger, channel_id: g, channel_type: 2, payload: b64json({ type: 1, content: 'stranger' }) });
  assert.equal(d2.message_seq, 2);
  for (const conn of [ca, cb, cc]) {
    const m = await conn.waitRecv((x) => String(x.messageId) === d2.message_idstr);
    assert.equal(m.fromUid, stranger);
  }

  // Empty from_uid = the system uid, shown as "".
  const d3 = await apiSend({ channel_id: g, channel_type: 2, payload: b64json({ type: 1, content: 'system says hi' }) });
  assert.equal(d3.message_seq, 3);
  const m3 = await cb.waitRecv((x) => String(x.messageId) === d3.message_idstr);
  assert.equal(m3.fromUid, '', 'system sender appears as ""');
  const s = await h.srv.post('/channel/messagesync', { login_uid: a, channel_id: g, channel_type: 2, start_message_seq: 0, end_message_seq: 0, limit: 10, pull_mode: 1 });
  assert.deepEqual(s.json.messages.map((m) => m.from_uid), [a, stranger, '']);
});

h.test('message ids from the API are unique and increasing', async () => {
  const a = uid('ia'); const b = uid('ib');
  const ids = [];
  for (let i = 0; i < 5; i++) {
    const d = await apiSend({ from_uid: a, channel_id: b, channel_type: 1, payload: b64json({ type: 1, content: `n${i}` }) });
    assert.equal(d.message_seq, i + 1);
    ids.push(BigInt(d.message_idstr));
  }
  for (let i = 1; i < ids.length; i++) assert.ok(ids[i] > ids[i - 1]);
});

h.test('50 parallel /message/send requests into one group get seqs 1..50', async () => {
  const g = uid('pg'); const m = uid('pm');
  const r = await h.srv.post('/channel', { channel_id: g, channel_type: 2, subscribers: [m] });
  assert.equal(r.status, 200, r.text);
  const cm = await h.login(m);
  const ds = await Promise.all(Array.from({ length: 50 }, (_, i) => apiSend({ from_uid: uid('f'), channel_id: g, channel_type: 2, payload: b64json({ type: 1, content: `p${i}` }) })));
  assert.deepEqual(ds.map((d) => d.message_seq).sort((x, y) => x - y), Array.from({ length: 50 }, (_, i) => i + 1));
  const seen = [];
  for (let i = 0; i < 50; i++) seen.push((await cm.waitRecv(() => true, 5000)).messageSeq);
  assert.deepEqual(seen, Array.from({ length: 50 }, (_, i) => i + 1), 'the member receives all 50 in seq order');
});

h.test('no_persist via the API is delivered, not stored, seq 0', async () => {
  const a = uid('na'); const b = uid('nb');
  const cb = await h.login(b);
  const d = await apiSend({ from_uid: a, channel_id: b, channel_type: 1, payload: b64json({ type: 1, content: 'np' }), header: { no_persist: 1 } });
  assert.equal(d.message_seq, 0);
  const r = await cb.waitRecv();
  assert.equal(r.noPersist, true);
  const s = await h.srv.post('/channel/messagesync', { login_uid: b, channel_id: a, channel_type: 1, start_message_seq: 0, end_message_seq: 0, limit: 10, pull_mode: 1 });
  assert.deepEqual(s.json.messages, []);
});

h.test('sending to a disbanded group is refused; banned sender over TCP gets SENDACK 19/25', async () => {
  const a = uid('da'); const b = uid('db'); const g = uid('dg');
  let r = await h.srv.post('/channel', { channel_id: g, channel_type: 2, subscribers: [a, b] });
  assert.equal(r.status, 200, r.text);
  r = await h.srv.post('/channel/delete', { channel_id: g, channel_type: 2 });
  assert.equal(r.status, 200, r.text);
  const ca = await h.login(a);
  const ack = await ca.send({ channelId: g, channelType: 2, payload: { type: 1, content: 'x' } });
  assert.equal(ack.reasonCode, REASON.DISBAND, 'SENDACK 24 for a disbanded channel');
  // send_ban on the sender's own person channel -> 25.
  r = await h.srv.post('/channel', { channel_id: a, channel_type: 1, send_ban: 1 });
  assert.equal(r.status, 200, r.text);
  const ack2 = await ca.send({ channelId: b, channelType: 1, payload: { type: 1, content: 'y' } });
  assert.equal(ack2.reasonCode, REASON.SEND_BAN, 'SENDACK 25 for a send-banned user');
  const none = await ca.collect((p) => p.type === PT.RECV, 10);
  assert.equal(none.length, 0);
});

h.test('invalid /message/send requests -> 400', async () => {
  const ok = { from_uid: 'x1', channel_id: 'x2', channel_type: 1, payload: b64json({ type: 1 }) };
  const cases = [
    [{ ...ok, channel_type: 0 }, 'channel_type 0'],
    [{ ...ok, channel_type: 99 }, 'unknown channel_type 99'],
    [{ ...ok, payload: undefined }, 'missing payload'],
    [{ ...ok, payload: '' }, 'empty payload'],
    [{ ...ok, payload: '***not base64***' }, 'payload not base64'],
    [{ ...ok, channel_id: 'a@b' }, 'channel_id with @'],
    [{ ...ok, channel_id: '' }, 'empty channel_id without subscribers'],
    [{ ...ok, channel_id: '', subscribers: ['x2'] }, 'subscribers without sync_once'],
  ];
  for (const [body, label] of cases) {
    const r = await h.srv.post('/message/send', JSON.parse(JSON.stringify(body)));
    assert.equal(r.status, 400, `${label}: ${r.status} ${r.text}`);
    assert.equal(r.json?.status, 400, `${label}: body ${r.text}`);
    assert.ok(r.json.msg, `${label}: msg`);
  }
  // None of the rejected requests created a message.
  const s = await h.srv.post('/channel/messagesync', { login_uid: 'x1', channel_id: 'x2', channel_type: 1, start_message_seq: 0, end_message_seq: 0, limit: 10, pull_mode: 1 });
  assert.deepEqual(s.json.messages, []);
});
