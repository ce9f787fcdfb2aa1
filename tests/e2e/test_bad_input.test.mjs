// Malformed and hostile input, one case per test. Protocol errors close the offending connection
// (or, for SEND crypto failures, answer SENDACK 9 and keep it); HTTP errors answer 400. After every
// case a separate healthy pair of clients must still connect and exchange a message
// (wire-protocol.md §1.2, §1.4, §7.7, §8.3, §8.5; http-api.md §2.2).

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { useServer, uid, b64json } from './lib/harness.mjs';
import { PT, REASON, frame, encodeVarint, encodeSend, decodeVarint } from './lib/wkproto.mjs';

const MAX = 4096;
const h = useServer({ args: [`--maxPacketSize=${MAX}`] });

/** A test that ends by checking that the server still serves a fresh pair of clients. */
function badCase(title, fn) {
  h.test(title, async (t) => {
    await fn(t);
    await h.assertHealthy(title);
  });
}

async function pair() {
  const a = uid('ba'); const b = uid('bb');
  const cb = await h.login(b);
  const ca = await h.login(a);
  return { ca, cb, a, b };
}

async function assertClosedNoReply(c, what, ms = 3000) {
  assert.equal(await c.waitClosed(ms), true, `${what}: connection should be closed`);
}

/** Build a SEND whose body is exactly `size` bytes. */
function sendOfBodySize(c, to, size) {
  for (let k = 0; k < size; k++) {
    const payload = { type: 1, content: 'p'.repeat(k) };
    const probe = c.buildSend({ channelId: to, channelType: 1, payload, clientMsgNo: 'x', clientSeq: 1 });
    const body = probe.bytes.length - 1 - decodeVarint(probe.bytes, 1).length;
    const diff = size - body;
    if (diff >= 0 && diff <= 40) {
      c.clientSeq = 0;
      const s = c.buildSend({ channelId: to, channelType: 1, payload, clientMsgNo: 'x'.repeat(1 + diff) });
      assert.equal(s.bytes.length - 1 - decodeVarint(s.bytes, 1).length, size);
      return s;
    }
  }
  throw new Error('could not size a SEND');
}

badCase(`SEND with a body of exactly maxPacketSize (${MAX}) is accepted`, async () => {
  const { ca, cb, b } = await pair();
  const s = sendOfBodySize(ca, b, MAX);
  await ca.write(s.bytes);
  const ack = await ca.waitType(PT.SENDACK, 3000, (p) => p.clientSeq === s.clientSeq);
  assert.equal(ack.reasonCode, REASON.SUCCESS);
  const r = await cb.waitRecv();
  assert.deepEqual(r.plaintext, s.plaintext);
});

badCase(`remaining length maxPacketSize+1 closes the connection`, async () => {
  const { ca, b } = await pair();
  const s = sendOfBodySize(ca, b, MAX + 1);
  await ca.write(s.bytes);
  await assertClosedNoReply(ca, 'oversized SEND');
  assert.equal(ca.history.filter((p) => p.type === PT.SENDACK).length, 0, 'no SENDACK for an oversized packet');
});

badCase('an oversized length is rejected from the header alone (no need to send the body)', async () => {
  const { ca } = await pair();
  // Claim a 2 MiB body and send only 10 bytes of it: the server must not wait for the rest.
  await ca.write(Buffer.concat([Buffer.from([0x32]), encodeVarint(2 * 1024 * 1024), Buffer.alloc(10)]));
  await assertClosedNoReply(ca, 'oversized header');
});

badCase('oversized packet before CONNECT closes the connection', async () => {
  const c = await h.tcp();
  await c.write(Buffer.concat([Buffer.from([0x10]), encodeVarint(MAX + 1), Buffer.alloc(64)]));
  await assertClosedNoReply(c, 'oversized CONNECT');
});

badCase('4-byte varint with the continuation bit set closes the connection', async () => {
  const { ca } = await pair();
  await ca.write(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01, 0x00, 0x00]));
  await assertClosedNoReply(ca, 'bad varint');
});

badCase('packet type 0 closes the connection', async () => {
  const { ca } = await pair();
  await ca.write(Buffer.from([0x00, 0x01, 0x00]));
  await assertClosedNoReply(ca, 'type 0');
});

badCase('packet type 13 closes the connection', async () => {
  const { ca } = await pair();
  await ca.write(Buffer.from([0xd0, 0x01, 0x00]));
  await assertClosedNoReply(ca, 'type 13');
});

badCase('packet type 15 over WebSocket closes the connection', async () => {
  const a = uid('bw');
  const c = await h.login(a, { transport: 'ws' });
  await c.write(Buffer.from([0xf0, 0x02, 0x00, 0x00]));
  await assertClosedNoReply(c, 'type 15 (ws)');
});

badCase('SEND before CONNECT closes the connection without a SENDACK', async () => {
  const c = await h.tcp();
  const bytes = encodeSend({ version: 4, clientSeq: 1, clientMsgNo: 'early', channelId: 'someone', channelType: 1, msgKey: '', payload: Buffer.from('{"type":1}') });
  await c.write(bytes);
  await assertClosedNoReply(c, 'SEND before CONNECT');
  assert.equal(c.history.length, 0, `nothing sent back: ${c.describeHistory()}`);
});

badCase('PING before CONNECT closes the connection', async () => {
  const c = await h.tcp();
  await c.write(Buffer.from([0x70]));
  await assertClosedNoReply(c, 'PING before CONNECT');
  assert.equal(c.history.filter((p) => p.type === PT.PONG).length, 0);
});

badCase('a second CONNECT after authentication is not accepted as a new login', async () => {
  const { ca } = await pair();
  const before = ca.history.length;
  await ca.write(frame(PT.CONNECT, 0, Buffer.from([4, 0, 0, 1, 0x7a, 0, 1, 0x7a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])));
  // Either ignored (then the connection still works) or closed; never a second CONNACK.
  await ca.collect(() => false, 500);
  assert.equal(ca.history.slice(before).filter((p) => p.type === PT.CONNACK).length, 0, 'no second CONNACK');
});

badCase('truncated SEND body (fields longer than the packet) closes the connection', async () => {
  const { ca } = await pair();
  // setting, clientSeq, then a clientMsgNo claiming 200 bytes inside a 9-byte body.
  await ca.write(frame(PT.SEND, 0x02, Buffer.from([0, 0, 0, 0, 1, 0x00, 0xc8, 0x41, 0x41])));
  await assertClosedNoReply(ca, 'truncated SEND');
  assert.equal(ca.history.filter((p) => p.type === PT.SENDACK).length, 0);
});

badCase('CONNECT with a string length past the body closes the connection', async () => {
  const c = await h.tcp();
  await c.write(frame(PT.CONNECT, 0, Buffer.from([4, 0, 0x7f, 0xff, 0x41])));
  await assertClosedNoReply(c, 'bad CONNECT');
  // Closing silently (v2.2.5) or after a failing CONNACK (HEAD) are both fine; success is not.
  assert.deepEqual(c.history.filter((p) => p.type !== PT.CONNACK || p.reasonCode === REASON.SUCCESS), [], c.describeHistory());
});

badCase('CONNECT with an invalid clientKey is refused', async () => {
  const c = await h.tcp();
  const ack = await c.connect({ uid: uid('ck'), clientKey: 'AAAA' }).catch(() => null);
  if (ack) assert.notEqual(ack.reasonCode, REASON.SUCCESS, 'a 3-byte client key cannot succeed');
  assert.equal(await c.waitClosed(3000), true, 'closed after the refusal');
});

badCase('SEND with a wrong msgKey -> SENDACK 9; the connection stays usable', async () => {
  const { ca, cb, b } = await pair();
  const bad = await ca.send({ channelId: b, channelType: 1, payload: { type: 1, content: 'forged' }, msgKey: '0'.repeat(32) });
  assert.equal(bad.reasonCode, REASON.PAYLOAD_DECODE_ERROR, 'reason 9 for a msgKey mismatch');
  assert.equal(bad.messageSeq, 0);
  assert.equal(bad.clientSeq, bad.sent.clientSeq);
  assert.equal(bad.raw[0], 0x42, 'flags echoed on a failing SENDACK');
  const good = await ca.send({ channelId: b, channelType: 1, payload: { type: 1, content: 'genuine' } });
  assert.equal(good.reasonCode, REASON.SUCCESS);
  assert.equal(good.messageSeq, 1, 'the rejected SEND consumed no seq');
  const r = await cb.waitRecv();
  assert.deepEqual(r.json, { type: 1, content: 'genuine' }, 'only the genuine message is delivered');
  assert.equal((await cb.collect((p) => p.type === PT.RECV, 300)).length, 0);
});

badCase('SEND with an empty msgKey while encrypted -> SENDACK 9', async () => {
  const { ca, b } = await pair();
  const bad = await ca.send({ channelId: b, channelType: 1, payload: { type: 1, content: 'x' }, msgKey: '' });
  assert.equal(bad.reasonCode, REASON.PAYLOAD_DECODE_ERROR);
  await ca.ping();
});

for (const [label, makeWire] of [
  ['not Base64', () => Buffer.from('this is *not* base64!!')],
  ['Base64 of 5 bytes (not a multiple of 16)', () => Buffer.from(crypto.randomBytes(5).toString('base64'))],
  ['empty payload', () => Buffer.alloc(0)],
  ['block-aligned ciphertext with invalid PKCS#7 padding', (c) => {
    const cipher = crypto.createCipheriv('aes-128-cbc', c.session.aesKey, c.session.iv);
    cipher.setAutoPadding(false);
    const plain = Buffer.concat([Buffer.from('{"type":1,"x":1}'), Buffer.alloc(15, 0x41), Buffer.from([0x00])]);
    return Buffer.from(Buffer.concat([cipher.update(plain), cipher.final()]).toString('base64'));
  }],
]) {
  badCase(`encrypted payload that is ${label} -> SENDACK 9 (msgKey correct)`, async () => {
    const { ca, cb, b } = await pair();
    const bad = await ca.send({ channelId: b, channelType: 1, payload: {}, rawPayload: makeWire(ca) });
    assert.equal(bad.reasonCode, REASON.PAYLOAD_DECODE_ERROR);
    assert.equal(bad.messageSeq, 0);
    const good = await ca.send({ channelId: b, channelType: 1, payload: { type: 1, content: 'ok' } });
    assert.equal(good.reasonCode, REASON.SUCCESS);
    await cb.waitRecv();
  });
}

badCase('very long uid / channel id / clientMsgNo get an answer, never a crash', async () => {
  // 2 KB ids and a 3 KB clientMsgNo: well inside the protocol's 32767-byte strings, but beyond
  // typical storage key limits. Success or a failure code are both fine; silence or a crash is not.
  const long = (p, n) => p + 'x'.repeat(n - p.length);
  const c = await h.tcp();
  let ack = null;
  try { ack = await c.connect({ uid: long('lu', 2000) }); } catch { /* refused by closing */ }
  if (!ack || ack.reasonCode !== REASON.SUCCESS) assert.equal(await c.waitClosed(3000), true, 'refused long uid -> closed');
  const { ca, cb, b } = await pair();
  const s1 = await ca.send({ channelId: long('lc', 2000), channelType: 2, payload: { type: 1, content: 'x' } });
  assert.notEqual(s1.reasonCode, REASON.SUCCESS, 'no such 2 KB group, so no success');
  const s2 = await ca.send({ channelId: b, channelType: 1, payload: { type: 1, content: 'long cmn' }, clientMsgNo: long('cmn', 3000) });
  if (s2.reasonCode === REASON.SUCCESS) {
    const r = await cb.waitRecv();
    assert.equal(r.clientMsgNo.length, 3000, 'clientMsgNo delivered intact');
  }
  const s3 = await ca.send({ channelId: b, channelType: 1, payload: { type: 1, content: 'normal after long' } });
  assert.equal(s3.reasonCode, REASON.SUCCESS, 'the connection still works');
  const hr = await h.srv.post('/channel', { channel_id: long('hg', 2000), channel_type: 2, subscribers: [long('hs', 2000)] });
  assert.ok(hr.status === 200 || hr.status === 400, `HTTP long ids: ${hr.status}`);
  const tr = await h.srv.post('/user/token', { uid: long('ht', 2000), token: 't', device_flag: 0 });
  assert.ok(tr.status === 200 || tr.status === 400, `HTTP long uid: ${tr.status}`);
});

// ---------------------------------------------------------------- HTTP

async function expect400(path, body) {
  const r = await h.srv.post(path, body);
  assert.equal(r.status, 400, `${path} ${typeof body === 'string' ? body : JSON.stringify(body)} -> ${r.status} ${r.text}`);
  assert.equal(r.json?.status, 400, `body ${r.text}`);
  assert.equal(typeof r.json.msg, 'string');
  assert.ok(r.json.msg.length > 0, 'msg non-empty');
}

for (const path of ['/message/send', '/channel', '/user/token', '/channel/messagesync', '/conversation/sync']) {
  badCase(`malformed JSON to POST ${path} -> 400`, async () => {
    await expect400(path, '{"channel_id": "x", ');
    await expect400(path, 'not json at all');
  });
}

badCase('wrong JSON types -> 400', async () => {
  await expect400('/channel', { channel_id: 123, channel_type: 2 });
  await expect400('/channel', { channel_id: uid('g'), channel_type: '2' });
  await expect400('/message/send', { from_uid: 'a', channel_id: 'b', channel_type: 1, payload: 12 });
  await expect400('/channel', { channel_id: uid('g'), channel_type: 2.5 });
  await expect400('/channel', '[1,2,3]');
  await expect400('/channel', 'null');
  await expect400('/channel', { channel_id: uid('g'), channel_type: 2, subscribers: 'a' });
});

badCase('missing required fields -> 400', async () => {
  await expect400('/message/send', { from_uid: 'a', channel_id: 'b', channel_type: 1 });
  await expect400('/message/send', { from_uid: 'a', channel_id: 'b', channel_type: 1, payload: '' });
  await expect400('/message/send', { from_uid: 'a', channel_type: 1, payload: b64json({ type: 1 }) });
  await expect400('/channel', { channel_type: 2, subscribers: ['a'] });
  await expect400('/channel', { channel_id: uid('g'), channel_type: 0 });
  await expect400('/channel', { channel_id: uid('g') });
  await expect400('/channel', { channel_id: 'bad@id', channel_type: 2 });
  await expect400('/channel', { channel_id: uid('p'), channel_type: 1, subscribers: ['a'] });
});

badCase('a huge JSON body does not crash the server', async () => {
  const r = await h.srv.post('/channel', JSON.stringify({ channel_id: uid('g'), channel_type: 2, subscribers: Array.from({ length: 20000 }, (_, i) => `m${i}`) }));
  assert.ok([200, 400, 413].includes(r.status), `status ${r.status}`);
});

badCase('unknown path -> 404', async () => {
  const r = await h.srv.post('/no/such/endpoint', {});
  assert.equal(r.status, 404);
});
