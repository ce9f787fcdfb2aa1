// Many connections (spread over the workers) sending into one channel at once: message_seq stays
// gap-free and unique, every member receives every message exactly once and in seq order, and the
// stored history matches (DESIGN.md §3, §4; http-api.md §5.4).

import assert from 'node:assert/strict';
import { useServer, uid } from './lib/harness.mjs';
import { REASON, PT } from './lib/wkproto.mjs';

const h = useServer();

h.test('10 senders x 20 messages into one group: seqs 1..200, each member gets all, in order', async () => {
  const SENDERS = 10; const PER = 20; const TOTAL = SENDERS * PER;
  const g = uid('cg');
  const senders = Array.from({ length: SENDERS }, () => uid('cs'));
  const listeners = [uid('cl'), uid('cl')];
  const r = await h.srv.post('/channel', { channel_id: g, channel_type: 2, subscribers: [...senders, ...listeners] });
  assert.equal(r.status, 200, r.text);
  const lc = [await h.login(listeners[0]), await h.login(listeners[1], { transport: 'ws', version: 2 })];
  const sc = [];
  for (const [i, s] of senders.entries()) sc.push(await h.login(s, { transport: i % 2 ? 'ws' : 'tcp' }));

  const acks = (await Promise.all(sc.map(async (c, i) => {
    const out = [];
    for (let k = 0; k < PER; k++) {
      const a = await c.send({ channelId: g, channelType: 2, payload: { type: 1, content: `s${i}m${k}` } }, 5000);
      assert.equal(a.reasonCode, REASON.SUCCESS);
      out.push(a);
    }
    return out;
  }))).flat();
  const seqs = acks.map((a) => a.messageSeq).sort((x, y) => x - y);
  assert.deepEqual(seqs, Array.from({ length: TOTAL }, (_, i) => i + 1), 'seqs are exactly 1..200');
  assert.equal(new Set(acks.map((a) => String(a.messageId))).size, TOTAL, 'ids unique');

  for (const c of lc) {
    const got = [];
    while (got.length < TOTAL) got.push(await c.waitRecv(() => true, 5000));
    assert.deepEqual(got.map((p) => p.messageSeq), Array.from({ length: TOTAL }, (_, i) => i + 1), `${c.name}: all 200, in seq order`);
    assert.equal((await c.collect((p) => p.type === PT.RECV, 300)).length, 0, 'no duplicates');
  }
  // Each sender received everyone else's messages but not its own.
  const s0 = sc[0];
  const mine = await s0.collect((p) => p.type === PT.RECV, 200);
  assert.equal(mine.length, TOTAL - PER);
  assert.equal(mine.filter((p) => p.fromUid === senders[0]).length, 0);

  const hist = await h.srv.post('/channel/messagesync', { login_uid: listeners[0], channel_id: g, channel_type: 2, start_message_seq: 0, end_message_seq: 0, limit: 1000, pull_mode: 1 });
  assert.deepEqual(hist.json.messages.map((m) => m.message_seq), Array.from({ length: TOTAL }, (_, i) => i + 1));
  const bySeq = new Map(acks.map((a) => [a.messageSeq, String(a.messageId)]));
  for (const m of hist.json.messages) assert.equal(m.message_idstr, bySeq.get(m.message_seq));
});

h.test('many person channels in parallel each count from 1', async () => {
  const pairs = await Promise.all(Array.from({ length: 12 }, async () => {
    const a = uid('pa'); const b = uid('pb');
    return { a: await h.login(a), b: await h.login(b) };
  }));
  await Promise.all(pairs.map(async ({ a, b }) => {
    for (let i = 1; i <= 5; i++) {
      const ack = await a.send({ channelId: b.uid, channelType: 1, payload: { type: 1, content: `${i}` } });
      assert.equal(ack.messageSeq, i);
    }
    for (let i = 1; i <= 5; i++) assert.equal((await b.waitRecv()).messageSeq, i);
  }));
});

h.test('large payloads (200 KB) over TCP and WS both ways', async () => {
  const a = await h.login(uid('la'), { transport: 'ws' });
  const b = await h.login(uid('lb'));
  const big = 'x'.repeat(200 * 1024);
  const k1 = await a.send({ channelId: b.uid, channelType: 1, payload: { type: 1, content: big } }, 5000);
  assert.equal(k1.reasonCode, REASON.SUCCESS);
  assert.equal((await b.waitRecv(() => true, 5000)).json.content.length, big.length);
  const k2 = await b.send({ channelId: a.uid, channelType: 1, payload: { type: 1, content: big } }, 5000);
  assert.equal(k2.reasonCode, REASON.SUCCESS);
  assert.equal((await a.waitRecv(() => true, 5000)).json.content, big);
});

h.test('300 connections opened at once all get CONNACK; one group message reaches all of them', async () => {
  const N = 300;
  const g = uid('bg');
  const users = Array.from({ length: N }, () => uid('bu'));
  const r = await h.srv.post('/channel', { channel_id: g, channel_type: 2, subscribers: users });
  assert.equal(r.status, 200, r.text);
  const clients = await Promise.all(users.map((u, i) => h.login(u, { transport: i % 3 === 0 ? 'ws' : 'tcp', version: 2 + (i % 4) })));
  const ack = await clients[0].send({ channelId: g, channelType: 2, payload: { type: 1, content: 'to 299' } }, 5000);
  assert.equal(ack.reasonCode, REASON.SUCCESS);
  const got = await Promise.all(clients.slice(1).map((c) => c.waitRecv((p) => p.messageId === ack.messageId, 8000)));
  assert.equal(got.length, N - 1);
  for (const m of got) assert.deepEqual(m.json, { type: 1, content: 'to 299' });
  for (const c of clients) c.close();
});
