// Command messages (http-api.md §4.5, §5.7, §5.8): an API send with header.sync_once=1 goes to the
// channel's command channel X____cmd, is pushed to online members with the SyncOnce flag, never
// shows up in /conversation/sync or the channel's own history, and is fetched offline with
// /message/sync and acknowledged with /message/syncack (or by a master device's RECVACK).
// `subscribers` sends target a uid list instead of a channel.

import assert from 'node:assert/strict';
import { useServer, uid, b64json } from './lib/harness.mjs';
import { PT, sleep } from './lib/wkproto.mjs';

// Token auth on, so device levels (master/slave) come from /user/token.
const h = useServer({ args: ['--tokenAuthOn=true'] });

async function register(user, { token = 't', deviceFlag = 0, deviceLevel = 0 } = {}) {
  const r = await h.srv.post('/user/token', { uid: user, token, device_flag: deviceFlag, device_level: deviceLevel });
  assert.equal(r.status, 200, r.text);
}

async function login(user, opts = {}) {
  return h.login(user, { token: 't', ...opts });
}

async function send(body) {
  const r = await h.srv.post('/message/send', body);
  assert.equal(r.status, 200, `/message/send: ${r.status} ${r.text}`);
  assert.equal(r.json.status, 200);
  return r.json.data;
}

async function sync(user, limit) {
  const r = await h.srv.post('/message/sync', limit === undefined ? { uid: user } : { uid: user, limit });
  assert.equal(r.status, 200, r.text);
  assert.ok(Array.isArray(r.json), `bare array: ${r.text}`);
  return r.json;
}

async function syncack(user) {
  const r = await h.srv.post('/message/syncack', { uid: user, last_message_seq: 1 });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { status: 200 });
}

const cmd = (n) => ({ type: 99, cmd: 'refresh', n });

h.test('group command: online members get SyncOnce RECV; offline members sync it once; chat untouched', async () => {
  const a = uid('ca'); const b = uid('cb'); const g = uid('cg');
  await register(a); await register(b);
  assert.equal((await h.srv.post('/channel', { channel_id: g, channel_type: 2, subscribers: [a, b] })).status, 200);
  const ca = await login(a);
  const d = await send({ from_uid: '', channel_id: g, channel_type: 2, header: { sync_once: 1, red_dot: 0 }, payload: b64json(cmd(1)) });
  assert.equal(d.message_seq, 1, 'first message of the command channel');

  const r = await ca.waitRecv();
  assert.equal(r.syncOnce, true);
  assert.equal(r.channelId, g, 'RECV names the channel, not its command channel');
  assert.equal(r.channelType, 2);
  assert.equal(r.fromUid, '');
  assert.deepEqual(r.json, cmd(1));

  // Not part of the chat: no seq consumed, no history, no conversation.
  const max = await h.srv.get(`/channel/max_message_seq?channel_id=${g}&channel_type=2`);
  assert.deepEqual(max.json, { message_seq: 0 });
  const hist = await h.srv.post('/channel/messagesync', { login_uid: b, channel_id: g, channel_type: 2, start_message_seq: 0, end_message_seq: 0, limit: 10, pull_mode: 1 });
  assert.deepEqual(hist.json.messages, []);
  const convs = await h.srv.post('/conversation/sync', { uid: b, msg_count: 5 });
  assert.deepEqual(convs.json, []);

  // b was offline: /message/sync returns it, in MessageResp form.
  const got = await sync(b);
  assert.equal(got.length, 1);
  const m = got[0];
  assert.equal(m.message_idstr, d.message_idstr);
  assert.equal(m.message_seq, 1);
  assert.equal(m.channel_id, g);
  assert.equal(m.channel_type, 2);
  assert.equal(m.from_uid, '');
  assert.deepEqual(m.header, { no_persist: 0, red_dot: 0, sync_once: 1 });
  assert.equal(m.payload, b64json(cmd(1)));

  // Without an ack the same command comes again; after the ack it is gone.
  assert.equal((await sync(b)).length, 1);
  await syncack(b);
  assert.deepEqual(await sync(b), []);

  // A later command is returned; the acknowledged one is not.
  await send({ from_uid: '', channel_id: g, channel_type: 2, header: { sync_once: 1 }, payload: b64json(cmd(2)) });
  const again = await sync(b);
  assert.deepEqual(again.map((x) => x.message_seq), [2]);
});

h.test('person command: across channels, oldest first, capped by limit, acknowledged per page', async () => {
  const u = uid('pu'); const p1 = uid('pp'); const p2 = uid('pq');
  const ids = [];
  ids.push((await send({ from_uid: p1, channel_id: u, channel_type: 1, header: { sync_once: 1 }, payload: b64json(cmd(1)) })).message_idstr);
  ids.push((await send({ from_uid: p2, channel_id: u, channel_type: 1, header: { sync_once: 1 }, payload: b64json(cmd(2)) })).message_idstr);
  ids.push((await send({ from_uid: p1, channel_id: u, channel_type: 1, header: { sync_once: 1 }, payload: b64json(cmd(3)) })).message_idstr);

  const page = await sync(u, 2);
  assert.deepEqual(page.map((m) => m.message_idstr), ids.slice(0, 2), 'oldest two, across both channels');
  assert.deepEqual(page.map((m) => [m.from_uid, m.channel_id]), [[p1, u], [p2, u]], 'MessageResp: channel_id is the side that is not the sender');
  await syncack(u);
  const rest = await sync(u);
  assert.deepEqual(rest.map((m) => m.message_idstr), [ids[2]]);
  await syncack(u);
  assert.deepEqual(await sync(u), []);

  // The sender has read its own commands.
  assert.deepEqual(await sync(p1), []);
  // Person chat history is untouched.
  const hist = await h.srv.post('/channel/messagesync', { login_uid: u, channel_id: p1, channel_type: 1, start_message_seq: 0, end_message_seq: 0, limit: 10, pull_mode: 1 });
  assert.deepEqual(hist.json.messages, []);
});

h.test('a master device RECVACK marks the command read; a slave RECVACK does not', async () => {
  const m = uid('mm'); const s = uid('ms');
  await register(m, { deviceLevel: 1 });
  await register(s, { deviceLevel: 0 });
  const cm = await login(m); // autoAck: RECVACK is sent on receipt
  const cs = await login(s);
  const dm = await send({ from_uid: '', channel_id: m, channel_type: 1, header: { sync_once: 1 }, payload: b64json(cmd('m')) });
  const ds = await send({ from_uid: '', channel_id: s, channel_type: 1, header: { sync_once: 1 }, payload: b64json(cmd('s')) });
  assert.equal((await cm.waitRecv()).messageId.toString(), dm.message_idstr);
  assert.equal((await cs.waitRecv()).messageId.toString(), ds.message_idstr);
  let left;
  for (let i = 0; i < 50; i++) { // the pointer moves through a store commit after the ack
    left = await sync(m);
    if (left.length === 0) break;
    await sleep(50);
  }
  assert.deepEqual(left, [], 'master ack consumed the command');
  const slaveLeft = await sync(s);
  assert.deepEqual(slaveLeft.map((x) => x.message_idstr), [ds.message_idstr], 'slave ack leaves it for /message/sync');
});

h.test('no_persist + sync_once: delivered online only, never synced', async () => {
  const a = uid('na'); const b = uid('nb');
  await register(a);
  const ca = await login(a);
  const d = await send({ from_uid: '', channel_id: a, channel_type: 1, header: { sync_once: 1, no_persist: 1 }, payload: b64json(cmd('online')) });
  assert.equal(d.message_seq, 0);
  const r = await ca.waitRecv();
  assert.equal(r.syncOnce, true);
  assert.equal(r.noPersist, true);
  assert.equal(r.messageSeq, 0);
  await send({ from_uid: '', channel_id: b, channel_type: 1, header: { sync_once: 1, no_persist: 1 }, payload: b64json(cmd('lost')) });
  assert.deepEqual(await sync(a), []);
  assert.deepEqual(await sync(b), []);
});

h.test('subscribers send: online subscribers get it, offline ones sync it, others never see it', async () => {
  const a = uid('sa'); const b = uid('sb'); const c = uid('sc');
  await register(a); await register(c);
  const ca = await login(a); const cc = await login(c);
  const d = await send({ from_uid: '', header: { sync_once: 1 }, subscribers: [a, b, a], payload: b64json(cmd('subs')) });
  assert.ok(d.message_seq >= 1);
  const r = await ca.waitRecv();
  assert.equal(r.syncOnce, true);
  assert.equal(r.channelType, 8);
  assert.deepEqual(r.json, cmd('subs'));
  await sleep(100);
  assert.equal(ca.history.filter((p) => p.type === PT.RECV).length, 1, 'a repeated subscriber gets one copy');
  assert.equal(cc.history.filter((p) => p.type === PT.RECV).length, 0, 'non-subscriber gets nothing');
  const got = await sync(b);
  assert.deepEqual(got.map((m) => m.message_idstr), [d.message_idstr]);
  assert.equal(got[0].channel_type, 8);
  assert.deepEqual(await sync(c), []);

  // Not persisted: online only, seq 0.
  const d2 = await send({ from_uid: '', header: { sync_once: 1, no_persist: 1 }, subscribers: [a], payload: b64json(cmd('live')) });
  assert.equal(d2.message_seq, 0);
  const r2 = await ca.waitRecv((p) => String(p.messageId) === d2.message_idstr);
  assert.equal(r2.noPersist, true);
});

h.test('bad input answers 400 and changes nothing', async () => {
  const u = uid('bu');
  await send({ from_uid: '', channel_id: u, channel_type: 1, header: { sync_once: 1 }, payload: b64json(cmd('keep')) });
  const bad = [
    ['/message/sync', {}, /uid is required/],
    ['/message/sync', { uid: 5 }, /uid/],
    ['/message/sync', { uid: u, limit: -1 }, /limit/],
    ['/message/sync', { uid: u, limit: 'x' }, /limit/],
    ['/message/sync', { uid: 'a@b' }, /uid/],
    ['/message/syncack', { uid: u }, /last_message_seq/],
    ['/message/syncack', { last_message_seq: 3 }, /uid is required/],
    ['/message/syncack', { uid: u, last_message_seq: -1 }, /last_message_seq/],
    ['/message/send', { subscribers: [u], payload: b64json(cmd(0)) }, /sync_once/],
    ['/message/send', { subscribers: [u], channel_id: u, channel_type: 1, header: { sync_once: 1 }, payload: b64json(cmd(0)) }, /both/],
    ['/message/send', { subscribers: [u, 'x@y'], header: { sync_once: 1 }, payload: b64json(cmd(0)) }, /subscribers\[1\]/],
    ['/message/send', { subscribers: [u, 7], header: { sync_once: 1 }, payload: b64json(cmd(0)) }, /subscribers/],
    ['/message/send', { subscribers: 'u', header: { sync_once: 1 }, payload: b64json(cmd(0)) }, /subscribers/],
  ];
  await h.srv.post('/message/sync', { uid: u }); // remember a position: a bad syncack must not use it
  for (const [path, body, re] of bad) {
    const r = await h.srv.post(path, body);
    assert.equal(r.status, 400, `${path} ${JSON.stringify(body)} -> ${r.status} ${r.text}`);
    assert.equal(r.json.status, 400);
    assert.match(r.json.msg, re, `${path} ${JSON.stringify(body)}`);
  }
  const malformed = await h.srv.post('/message/sync', '{"uid":');
  assert.equal(malformed.status, 400);
  const got = await sync(u);
  assert.deepEqual(got.map((m) => m.payload), [b64json(cmd('keep'))], 'nothing acknowledged, nothing added');
  await register(u);
  const c = await login(u);
  assert.equal((await c.ping()).type, PT.PONG, 'server still serves connections');
});
