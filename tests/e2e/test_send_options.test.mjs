// SEND options that the server passes through: the setting byte is copied verbatim into RECV,
// the topic field (setting 0x08) and expire (v3+) travel to receivers of any version and into the
// stored message (wire-protocol.md §4.3, §4.5, §5; http-api.md §3.5).

import assert from 'node:assert/strict';
import { useServer, uid } from './lib/harness.mjs';
import { REASON, SETTING } from './lib/wkproto.mjs';

const h = useServer();

async function stored(loginUid, channelId) {
  const r = await h.srv.post('/channel/messagesync', { login_uid: loginUid, channel_id: channelId, channel_type: 1, start_message_seq: 0, end_message_seq: 0, limit: 10, pull_mode: 1 });
  assert.equal(r.status, 200, r.text);
  return r.json.messages;
}

h.test('setting byte (Receipt|Signal) is copied verbatim into RECV and stored', async () => {
  const a = uid('sa'); const b = uid('sb');
  const cb = await h.login(b, { version: 2 });
  const ca = await h.login(a, { version: 5 });
  const setting = SETTING.RECEIPT | SETTING.SIGNAL;
  const ack = await ca.send({ channelId: b, channelType: 1, payload: { type: 1, content: 'receipt please' }, setting });
  assert.equal(ack.reasonCode, REASON.SUCCESS);
  const r = await cb.waitRecv();
  assert.equal(r.setting, setting);
  assert.deepEqual(r.json, { type: 1, content: 'receipt please' });
  const [m] = await stored(b, a);
  assert.equal(m.setting, setting);
});

h.test('topic (setting 0x08) reaches v2 and v5 receivers and the store', async () => {
  const a = uid('ta'); const b = uid('tb');
  const b2 = await h.login(b, { version: 2 });
  const b5 = await h.login(b, { version: 5, transport: 'ws', deviceFlag: 1 });
  const ca = await h.login(a, { version: 4 });
  const ack = await ca.send({ channelId: b, channelType: 1, payload: { type: 1, content: 'with topic' }, topic: 'weather' });
  assert.equal(ack.reasonCode, REASON.SUCCESS);
  for (const c of [b2, b5]) {
    const r = await c.waitRecv();
    assert.equal(r.setting & SETTING.TOPIC, SETTING.TOPIC);
    assert.equal(r.topic, 'weather', `${c.name}: topic`);
    assert.deepEqual(r.json, { type: 1, content: 'with topic' }, `${c.name}: payload after the topic`);
  }
  const [m] = await stored(b, a);
  assert.equal(m.topic, 'weather');
});

h.test('expire from a v3+ SEND reaches v3+ receivers and the store; v2 receivers get no field', async () => {
  const a = uid('ea'); const b = uid('eb');
  const b2 = await h.login(b, { version: 2 });
  const b3 = await h.login(b, { version: 3, deviceFlag: 2 });
  const ca = await h.login(a, { version: 5 });
  const ack = await ca.send({ channelId: b, channelType: 1, payload: { type: 1, content: 'expiring' }, expire: 100 });
  assert.equal(ack.reasonCode, REASON.SUCCESS);
  const r2 = await b2.waitRecv();
  assert.equal(r2.expire, undefined);
  assert.deepEqual(r2.json, { type: 1, content: 'expiring' });
  const r3 = await b3.waitRecv();
  assert.equal(r3.expire, 100);
  const [m] = await stored(b, a);
  assert.equal(m.expire, 100);
});

h.test('a message without RedDot is delivered and stored without it', async () => {
  const a = uid('ra'); const b = uid('rb');
  const cb = await h.login(b);
  const ca = await h.login(a);
  const ack = await ca.send({ channelId: b, channelType: 1, payload: { type: 1, content: 'quiet' }, flags: 0 });
  assert.equal(ack.raw[0], 0x40);
  const r = await cb.waitRecv();
  assert.equal(r.raw[0], 0x50);
  const [m] = await stored(b, a);
  assert.equal(m.header.red_dot, 0);
});

h.test('an empty clientMsgNo is accepted', async () => {
  const a = uid('ca'); const b = uid('cb');
  const cb = await h.login(b);
  const ca = await h.login(a);
  const ack = await ca.send({ channelId: b, channelType: 1, payload: { type: 1, content: 'no cmn' }, clientMsgNo: '' });
  assert.equal(ack.reasonCode, REASON.SUCCESS);
  const r = await cb.waitRecv();
  assert.deepEqual(r.json, { type: 1, content: 'no cmn' });
  // A second empty clientMsgNo must not be treated as a duplicate of the first.
  const ack2 = await ca.send({ channelId: b, channelType: 1, payload: { type: 1, content: 'no cmn 2' }, clientMsgNo: '' });
  assert.equal(ack2.reasonCode, REASON.SUCCESS);
  assert.equal(ack2.messageSeq, ack.messageSeq + 1, 'empty clientMsgNo is not a dedupe key');
  await cb.waitRecv();
});
