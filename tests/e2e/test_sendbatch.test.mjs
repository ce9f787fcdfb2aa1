// POST /message/sendbatch (http-api.md §4.5): one object {header, from_uid, subscribers, payload};
// a separate person message from from_uid to each subscriber, each with a fresh client_msg_no.
// The answer is always 200 {"fail_uids","reason","reason_code"} once every send is stored or
// refused (Magpie); a malformed body gets 400 and sends nothing.

import assert from 'node:assert/strict';
import { useServer, uid, b64json } from './lib/harness.mjs';
import { PT, REASON } from './lib/wkproto.mjs';

const h = useServer();
const CHANNEL_ID_ERROR = 16; // reason code (http-api.md §3.3)

async function batch(body) {
  const r = await h.srv.post('/message/sendbatch', body);
  assert.equal(r.status, 200, `/message/sendbatch: ${r.status} ${r.text}`);
  return r.json;
}

async function maxSeq(login, peer) {
  const r = await h.srv.get(`/channel/max_message_seq?channel_id=${peer}&channel_type=1&login_uid=${login}`);
  assert.equal(r.status, 200, r.text);
  return r.json.message_seq;
}

h.test('each subscriber gets its own person message from from_uid, with its own client_msg_no', async () => {
  const s = uid('bs'); const a = uid('ba'); const b = uid('bb'); const c = uid('bc');
  const [ca, cb, cs] = [await h.login(a), await h.login(b), await h.login(s)];
  const payload = { type: 1, content: 'notice' };
  const res = await batch({ header: { red_dot: 1 }, from_uid: s, subscribers: [a, b, c], payload: b64json(payload) });
  assert.deepEqual(res, { fail_uids: [], reason: [], reason_code: [] });

  const ra = await ca.waitRecv();
  const rb = await cb.waitRecv();
  for (const [r, label] of [[ra, 'a'], [rb, 'b']]) {
    assert.equal(r.channelType, 1, label);
    assert.equal(r.channelId, s, `${label}: person RECV names the sender`);
    assert.equal(r.fromUid, s);
    assert.equal(r.redDot, true);
    assert.equal(r.messageSeq, 1, `${label}: first message of its own person channel`);
    assert.deepEqual(r.json, payload);
    assert.match(r.clientMsgNo, /^[0-9a-f]{32}0$/, 'a generated client_msg_no');
  }
  assert.notEqual(ra.clientMsgNo, rb.clientMsgNo, 'a fresh client_msg_no per message');
  // the sender's own device gets a copy of each, named by the peer, without red dot
  const own = [await cs.waitRecv(), await cs.waitRecv(), await cs.waitRecv()].map((r) => [r.channelId, r.redDot]).sort();
  assert.deepEqual(own, [[a, false], [b, false], [c, false]].sort());
  for (const u of [a, b, c]) assert.equal(await maxSeq(s, u), 1, `stored in the person channel with ${u}`);
  const hist = await h.srv.post('/channel/messagesync', { login_uid: c, channel_id: s, channel_type: 1, limit: 5 });
  assert.deepEqual(hist.json.messages.map((m) => [m.from_uid, m.message_seq]), [[s, 1]], 'offline c can sync it');
});

h.test('a repeated subscriber gets two messages; an invalid one is reported per uid', async () => {
  const s = uid('rs'); const a = uid('ra');
  const ca = await h.login(a);
  const res = await batch({ from_uid: s, subscribers: [a, 'bad@uid', a, '  '], payload: b64json({ type: 1, content: 'x' }) });
  assert.deepEqual(res, {
    fail_uids: ['bad@uid', '  '], reason: ['invalid uid', 'invalid uid'],
    reason_code: [CHANNEL_ID_ERROR, CHANNEL_ID_ERROR],
  });
  const seqs = [(await ca.waitRecv()).messageSeq, (await ca.waitRecv()).messageSeq].sort();
  assert.deepEqual(seqs, [1, 2]);
  assert.equal(await maxSeq(s, a), 2);
});

h.test('header flags pass through (no_persist: delivered, not stored)', async () => {
  const s = uid('ns'); const a = uid('na');
  const ca = await h.login(a);
  assert.deepEqual(await batch({ header: { no_persist: 1, red_dot: 0 }, from_uid: s, subscribers: [a], payload: b64json({ type: 1 }) }),
    { fail_uids: [], reason: [], reason_code: [] });
  const r = await ca.waitRecv();
  assert.equal(r.noPersist, true);
  assert.equal(r.redDot, false);
  assert.equal(r.messageSeq, 0);
  assert.equal(await maxSeq(s, a), 0);
});

h.test('malformed bodies get 400 with a clear msg and send nothing', async () => {
  const s = uid('ms'); const a = uid('ma');
  const ca = await h.login(a);
  const p = b64json({ type: 1, content: 'x' });
  const cases = [
    [{ subscribers: [a], payload: p }, /from_uid is required/],
    [{ from_uid: '  ', subscribers: [a], payload: p }, /from_uid is required/],
    [{ from_uid: 'x@y', subscribers: [a], payload: p }, /from_uid must not contain/],
    [{ from_uid: s, payload: p }, /subscribers is required/],
    [{ from_uid: s, subscribers: [], payload: p }, /subscribers is required/],
    [{ from_uid: s, subscribers: a, payload: p }, /subscribers/],
    [{ from_uid: s, subscribers: [1], payload: p }, /subscribers/],
    [{ from_uid: s, subscribers: [a] }, /payload is required/],
    [{ from_uid: s, subscribers: [a], payload: '' }, /payload is required/],
    [{ from_uid: s, subscribers: [a], payload: 'not base64!' }, /payload must be standard base64/],
    [{ from_uid: s, subscribers: [a], payload: p, header: { red_dot: 2 } }, /header/],
    [{ from_uid: 7, subscribers: [a], payload: p }, /from_uid/],
    [[{ from_uid: s, subscribers: [a], payload: p }], /object/],
    ['{"from_uid":', /./],
  ];
  for (const [body, msg] of cases) {
    const r = await h.srv.post('/message/sendbatch', body);
    assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.text}`);
    assert.equal(r.json.status, 400);
    assert.match(r.json.msg, msg, JSON.stringify(body));
  }
  assert.equal((await ca.collect((x) => x.type === PT.RECV, 300)).length, 0, 'nothing was sent');
  assert.equal(await maxSeq(s, a), 0);
});
