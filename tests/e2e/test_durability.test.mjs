// Durability: every SENDACKed message survives kill -9 with the same seq and id, and sequences
// continue after restart (DESIGN.md §4: SENDACK only after the commit is durable).

import assert from 'node:assert/strict';
import { useServer, uid } from './lib/harness.mjs';
import { REASON } from './lib/wkproto.mjs';

const h = useServer();

async function syncAll(loginUid, channelId, channelType) {
  const r = await h.srv.post('/channel/messagesync', {
    login_uid: loginUid, channel_id: channelId, channel_type: channelType,
    start_message_seq: 0, end_message_seq: 0, limit: 1000, pull_mode: 1,
  });
  assert.equal(r.status, 200, r.text);
  return r.json.messages;
}

h.test('50 acknowledged messages survive kill -9; seqs continue at N+1', async () => {
  const u1 = uid('d1'); const u2 = uid('d2'); const u3 = uid('d3'); const g = uid('dg');
  const r = await h.srv.post('/channel', { channel_id: g, channel_type: 2, subscribers: [u1, u2, u3] });
  assert.equal(r.status, 200, r.text);

  const c1 = await h.login(u1);
  const c2 = await h.login(u2, { transport: 'ws' });
  const sent = { person: [], group: [] };
  for (let i = 0; i < 50; i++) {
    const group = i % 5 === 1 || i % 5 === 3;    // 20 group, 30 person, interleaved
    const from = i % 7 === 0 ? c2 : c1;           // some from the other side / other transport
    const to = group ? g : (from === c1 ? u2 : u1);
    const payload = { type: 1, content: `durable ${i}`, n: i };
    const ack = await from.send({ channelId: to, channelType: group ? 2 : 1, payload });
    assert.equal(ack.reasonCode, REASON.SUCCESS, `message ${i}`);
    (group ? sent.group : sent.person).push({ seq: ack.messageSeq, id: String(ack.messageId), payload, from: from.uid });
  }
  assert.deepEqual(sent.person.map((m) => m.seq), Array.from({ length: 30 }, (_, i) => i + 1), 'person seqs 1..30 before crash');
  assert.deepEqual(sent.group.map((m) => m.seq), Array.from({ length: 20 }, (_, i) => i + 1), 'group seqs 1..20 before crash');

  await h.srv.kill9();
  c1.close(); c2.close();
  await h.srv.restart();

  const check = async (kind, msgs) => {
    const expected = sent[kind];
    assert.equal(msgs.length, expected.length, `${kind}: all ${expected.length} acknowledged messages present after restart`);
    msgs.forEach((m, i) => {
      assert.equal(m.message_seq, i + 1, `${kind}: seqs contiguous`);
      assert.equal(m.message_seq, expected[i].seq);
      assert.equal(m.message_idstr, expected[i].id, `${kind} seq ${i + 1}: same message id`);
      assert.equal(m.from_uid, expected[i].from);
      assert.deepEqual(JSON.parse(Buffer.from(m.payload, 'base64').toString()), expected[i].payload);
    });
  };
  await check('person', await syncAll(u1, u2, 1));
  await check('group', await syncAll(u3, g, 2));

  // Conversations survived too.
  const conv = await h.srv.post('/conversation/sync', { uid: u3, msg_count: 1 });
  assert.equal(conv.status, 200);
  const gc = conv.json.find((c) => c.channel_id === g && c.channel_type === 2);
  assert.ok(gc, 'group conversation of u3 survives restart');
  assert.equal(gc.last_msg_seq, 20);

  // New sends continue the sequences; subscribers survived (u1 may still send to g).
  const n1 = await h.login(u1);
  const n3 = await h.login(u3);
  const p = await n1.send({ channelId: u2, channelType: 1, payload: { type: 1, content: 'after restart' } });
  assert.equal(p.reasonCode, REASON.SUCCESS);
  assert.equal(p.messageSeq, 31, 'person channel continues at N+1');
  const q = await n1.send({ channelId: g, channelType: 2, payload: { type: 1, content: 'group after restart' } });
  assert.equal(q.reasonCode, REASON.SUCCESS);
  assert.equal(q.messageSeq, 21, 'group channel continues at N+1');
  assert.ok(q.messageId > BigInt(sent.group[19].id), 'message ids keep increasing after restart');
  const got = await n3.waitRecv((m) => m.messageId === q.messageId);
  assert.equal(got.messageSeq, 21);
  // Dedupe / ids: no id reused.
  const all = new Set([...sent.person, ...sent.group].map((m) => m.id));
  assert.equal(all.size, 50, 'message ids unique');
  assert.equal(all.has(String(p.messageId)), false);
});

h.test('SIGTERM with clients still connected: clean exit (code 0) within 3 s, data kept', async () => {
  const a = uid('sa'); const b = uid('sb');
  const cb = await h.login(b, { transport: 'ws' });
  const ca = await h.login(a);
  const extra = await Promise.all([1, 2, 3].map((i) => h.login(uid('sx'), { transport: i % 2 ? 'tcp' : 'ws' })));
  const ack = await ca.send({ channelId: b, channelType: 1, payload: { type: 1, content: 'before sigterm' } });
  assert.equal(ack.reasonCode, REASON.SUCCESS);
  await cb.waitRecv();
  const t0 = Date.now();
  await h.srv.stop();
  const exit = h.srv.exits.at(-1);
  assert.deepEqual(exit, { code: 0, signal: null }, `graceful exit after SIGTERM (took ${Date.now() - t0} ms)`);
  assert.deepEqual(h.srv.problems(), [], 'no sanitizer reports / forced kill during shutdown');
  for (const c of [ca, cb, ...extra]) assert.equal(await c.waitClosed(1000), true, `${c.name} was disconnected`);
  await h.srv.restart();
  const msgs = await syncAll(b, a, 1);
  assert.deepEqual(msgs.map((m) => m.message_idstr), [String(ack.messageId)]);
});

h.test('graceful restart keeps everything too', async () => {
  const a = uid('ga'); const b = uid('gb');
  const ca = await h.login(a);
  for (let i = 1; i <= 3; i++) {
    const ack = await ca.send({ channelId: b, channelType: 1, payload: { type: 1, content: `g${i}` } });
    assert.equal(ack.messageSeq, i);
  }
  ca.close();
  await h.srv.restart();
  const msgs = await syncAll(b, a, 1);
  assert.deepEqual(msgs.map((m) => m.message_seq), [1, 2, 3]);
  const c = await h.login(a);
  const ack = await c.send({ channelId: b, channelType: 1, payload: { type: 1, content: 'g4' } });
  assert.equal(ack.messageSeq, 4);
});
