// Group messages: POST /channel with subscribers, fan-out to every member connection except the
// sending one, SENDACK 3 for a non-subscriber (http-api.md §4.4, §5.6; wire-protocol.md §8.6).

import assert from 'node:assert/strict';
import { useServer, uid } from './lib/harness.mjs';
import { PT, REASON } from './lib/wkproto.mjs';

const h = useServer();

async function createGroup(id, subscribers) {
  const r = await h.srv.post('/channel', { channel_id: id, channel_type: 2, subscribers });
  assert.equal(r.status, 200, `POST /channel: ${r.text}`);
  assert.deepEqual(r.json, { status: 200 });
}

h.test('a sends to g1: b, c and a\'s other device receive; non-subscriber d gets SENDACK 3', async () => {
  const a = uid('a'); const b = uid('b'); const c = uid('c'); const d = uid('d');
  const g = uid('g1');
  await createGroup(g, [a, b, c]);

  const cb = await h.login(b, { version: 2 });
  const cc = await h.login(c, { transport: 'ws', version: 5 });
  const ca2 = await h.login(a, { transport: 'ws', version: 2, deviceFlag: 1 });
  const ca = await h.login(a, { version: 4 });
  const cd = await h.login(d, { version: 4 });

  const payload = { type: 1, content: 'hi group' };
  const ack = await ca.send({ channelId: g, channelType: 2, payload });
  assert.equal(ack.reasonCode, REASON.SUCCESS);
  assert.equal(ack.messageSeq, 1);

  for (const [conn, label] of [[cb, 'b'], [cc, 'c'], [ca2, 'a/other device']]) {
    const r = await conn.waitRecv((p) => p.messageId === ack.messageId);
    assert.equal(r.channelId, g, `${label}: channelId`);
    assert.equal(r.channelType, 2, `${label}: channelType`);
    assert.equal(r.fromUid, a, `${label}: fromUid`);
    assert.equal(r.messageSeq, 1);
    assert.equal(r.clientMsgNo, ack.sent.clientMsgNo);
    assert.deepEqual(r.json, payload, `${label}: payload`);
    assert.equal(r.redDot, label !== 'a/other device', `${label}: RedDot (cleared for the sender's devices)`);
  }
  assert.equal((await ca.collect((p) => p.type === PT.RECV, 400)).length, 0, 'the sending connection gets no RECV');
  assert.equal((await cd.collect((p) => p.type === PT.RECV, 10)).length, 0, 'non-subscriber gets no RECV');

  // Non-subscriber d.
  const bad = await cd.send({ channelId: g, channelType: 2, payload: { type: 1, content: 'intruder' } });
  assert.equal(bad.reasonCode, REASON.SUBSCRIBER_NOT_EXIST, 'SENDACK reason 3');
  assert.equal(bad.messageSeq, 0, 'messageSeq 0 on failure');
  assert.equal(bad.clientSeq, bad.sent.clientSeq);
  const leaked = await cb.collect((p) => p.type === PT.RECV, 400);
  assert.equal(leaked.length, 0, 'the rejected message is not delivered');

  // The next member message still gets seq 2 (the rejected send used no seq).
  const ack2 = await cb.send({ channelId: g, channelType: 2, payload: { type: 1, content: 'from b' } });
  assert.equal(ack2.reasonCode, REASON.SUCCESS);
  assert.equal(ack2.messageSeq, 2);
  for (const conn of [ca, ca2, cc]) {
    const r = await conn.waitRecv((p) => p.messageId === ack2.messageId);
    assert.equal(r.fromUid, b);
    assert.equal(r.channelId, g);
  }
  // And d is still connected: a failing SEND does not close the connection.
  await cd.ping();
});

h.test('POST /channel again with reset=1 replaces the subscribers', async () => {
  const a = uid('a'); const b = uid('b'); const c = uid('c');
  const g = uid('g2');
  await createGroup(g, [a, b]);
  const r = await h.srv.post('/channel', { channel_id: g, channel_type: 2, subscribers: [a, c], reset: 1 });
  assert.equal(r.status, 200, r.text);
  const cb = await h.login(b);
  const cc = await h.login(c);
  const ca = await h.login(a);
  const ack = await ca.send({ channelId: g, channelType: 2, payload: { type: 1, content: 'after reset' } });
  assert.equal(ack.reasonCode, REASON.SUCCESS);
  await cc.waitRecv((p) => p.messageId === ack.messageId);
  assert.equal((await cb.collect((p) => p.type === PT.RECV, 400)).length, 0, 'removed member receives nothing');
  const nb = await cb.send({ channelId: g, channelType: 2, payload: { type: 1, content: 'x' } });
  assert.equal(nb.reasonCode, REASON.SUBSCRIBER_NOT_EXIST);
});

h.test('POST /channel/subscriber_add lets a new member send and receive', async () => {
  const a = uid('a'); const e = uid('e');
  const g = uid('g3');
  await createGroup(g, [a]);
  const ce = await h.login(e);
  const before = await ce.send({ channelId: g, channelType: 2, payload: { type: 1, content: 'x' } });
  assert.equal(before.reasonCode, REASON.SUBSCRIBER_NOT_EXIST);
  const r = await h.srv.post('/channel/subscriber_add', { channel_id: g, channel_type: 2, subscribers: [e] });
  assert.equal(r.status, 200, r.text);
  const ca = await h.login(a);
  const after = await ce.send({ channelId: g, channelType: 2, payload: { type: 1, content: 'joined' } });
  assert.equal(after.reasonCode, REASON.SUCCESS);
  assert.equal(after.messageSeq, 1);
  const got = await ca.waitRecv();
  assert.equal(got.fromUid, e);
});
