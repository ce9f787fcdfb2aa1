// Unread counts (http-api.md §4.6, §5.9) are server state per uid, not per device: two devices of
// the same uid (APP over TCP, WEB over WebSocket) both receive every message, RECVACKs do not move
// the read pointer, and /conversation/sync answers the same counts whichever device reconnects.
// Read pointers move through setUnread / clearUnread (forward only), delete, and the user's own
// messages. version > 0 makes /conversation/sync incremental: like only_unread=1, only
// conversations with messages above the read pointer, and only those messages.

import assert from 'node:assert/strict';
import { useServer, uid, b64json } from './lib/harness.mjs';
import { PT, REASON } from './lib/wkproto.mjs';

const h = useServer();

async function post200(path, body) {
  const r = await h.srv.post(path, body);
  assert.equal(r.status, 200, `${path} ${JSON.stringify(body)}: ${r.status} ${r.text}`);
  return r.json;
}

const convSync = (user, body = {}) => post200('/conversation/sync', { uid: user, msg_count: 20, ...body });
const find = (list, id, type) => list.find((c) => c.channel_id === id && c.channel_type === type);
const seqs = (conv) => conv.recents.map((m) => m.message_seq);

/** Both devices of a uid: APP (flag 0) over TCP and WEB (flag 1) over WebSocket. */
async function devices(user) {
  const app = await h.login(user, { deviceFlag: 0 });
  const web = await h.login(user, { deviceFlag: 1, transport: 'ws' });
  return { app, web, all: [app, web] };
}

async function tcpSend(client, channelId, channelType, content) {
  const ack = await client.send({ channelId, channelType, payload: { type: 1, content } });
  assert.equal(ack.reasonCode, REASON.SUCCESS, `SENDACK for ${content}`);
  return ack.messageSeq;
}

async function apiSend(from, channelId, channelType, content) {
  const j = await post200('/message/send', { from_uid: from, channel_id: channelId, channel_type: channelType, payload: b64json({ type: 1, content }) });
  return j.data.message_seq;
}

/** Every device receives the message with this seq (and acknowledges it). */
async function allReceive(devs, seq, fromUid) {
  for (const d of devs) {
    const p = await d.waitRecv((x) => x.messageSeq === seq && x.fromUid === fromUid);
    assert.equal(p.type, PT.RECV);
  }
}

/** The conversation as /conversation/sync and /conversation/syncByChannels answer it (they agree). */
async function state(user, channelId, channelType) {
  const conv = find(await convSync(user), channelId, channelType);
  const [byChannel] = await post200('/conversation/syncByChannels', { uid: user, channels: [{ channel_id: channelId, channel_type: channelType }], msg_count: 20 });
  if (conv) assert.deepEqual(byChannel, conv, 'syncByChannels answers the same row');
  return { conv, unread: byChannel.unread, readed: byChannel.readed_to_msg_seq, last: byChannel.last_msg_seq };
}

async function expectState(user, channelId, channelType, want, what) {
  const s = await state(user, channelId, channelType);
  assert.deepEqual({ unread: s.unread, readed: s.readed, last: s.last }, want, `${what}: ${user} in ${channelId}`);
  return s;
}

h.test('person chat: unread is per uid across devices, setUnread/clearUnread, own messages, reconnects, delete', async () => {
  const alice = uid('ua'); const bob = uid('ub');
  let a = await devices(alice);
  const cb = await h.login(bob);

  // Three messages over TCP and one over HTTP; both of alice's devices get and acknowledge each.
  for (let i = 1; i <= 3; i++) assert.equal(await tcpSend(cb, alice, 1, `b${i}`), i);
  assert.equal(await apiSend(bob, alice, 1, 'b4 via api'), 4);
  for (let seq = 1; seq <= 4; seq++) await allReceive(a.all, seq, bob);
  await expectState(alice, bob, 1, { unread: 4, readed: 0, last: 4 }, 'RECVACKs from both devices read nothing');
  const { conv } = await state(alice, bob, 1);
  assert.deepEqual(seqs(conv), [4, 3, 2, 1]);
  await expectState(bob, alice, 1, { unread: 0, readed: 4, last: 4 }, 'the sender has read its own messages');

  // setUnread: 1 left unread.
  await post200('/conversations/setUnread', { uid: alice, channel_id: bob, channel_type: 1, unread: 1 });
  await expectState(alice, bob, 1, { unread: 1, readed: 3, last: 4 }, 'after setUnread 1');

  // alice answers from the web device: her app device sees her own message, bob gets it.
  assert.equal(await tcpSend(a.web, bob, 1, 'a5 from web'), 5);
  const echo = await a.app.waitRecv((x) => x.messageSeq === 5);
  assert.equal(echo.fromUid, alice);
  assert.equal(echo.channelId, bob, 'her other device sees the peer as the channel');
  await cb.waitRecv((x) => x.messageSeq === 5);
  await expectState(alice, bob, 1, { unread: 0, readed: 5, last: 5 }, 'her own message reads the chat');
  await expectState(bob, alice, 1, { unread: 1, readed: 4, last: 5 }, 'bob has one unread');

  // Two more from bob.
  await tcpSend(cb, alice, 1, 'b6');
  await apiSend(bob, alice, 1, 'b7 via api');
  for (const seq of [6, 7]) await allReceive(a.all, seq, bob);
  await expectState(alice, bob, 1, { unread: 2, readed: 5, last: 7 }, 'two new');

  // Both devices go away; a message arrives meanwhile; both come back.
  for (const d of a.all) d.close();
  await Promise.all(a.all.map((d) => d.waitClosed()));
  assert.equal(await apiSend(bob, alice, 1, 'b8 while offline'), 8);
  await expectState(alice, bob, 1, { unread: 3, readed: 5, last: 8 }, 'offline');
  a = await devices(alice);
  await expectState(alice, bob, 1, { unread: 3, readed: 5, last: 8 }, 'reconnecting changes nothing');

  // clearUnread from "one device" is the uid's state: read to the last seq, and setUnread cannot undo it.
  await post200('/conversations/clearUnread', { uid: alice, channel_id: bob, channel_type: 1, message_seq: 0 });
  await expectState(alice, bob, 1, { unread: 0, readed: 8, last: 8 }, 'after clearUnread');
  await post200('/conversations/setUnread', { uid: alice, channel_id: bob, channel_type: 1, unread: 3 });
  await expectState(alice, bob, 1, { unread: 0, readed: 8, last: 8 }, 'setUnread is forward-only');

  // A setUnread larger than the history leaves one unread.
  await tcpSend(cb, alice, 1, 'b9');
  await tcpSend(cb, alice, 1, 'b10');
  for (const seq of [9, 10]) await allReceive(a.all, seq, bob);
  await expectState(alice, bob, 1, { unread: 2, readed: 8, last: 10 }, 'two new after the clear');
  await post200('/conversations/setUnread', { uid: alice, channel_id: bob, channel_type: 1, unread: 1000 });
  await expectState(alice, bob, 1, { unread: 1, readed: 9, last: 10 }, 'unread above last_seq means read to last_seq - 1');

  // delete hides the conversation and reads it; the next message brings it back with only itself.
  await post200('/conversations/delete', { uid: alice, channel_id: bob, channel_type: 1 });
  assert.equal(find(await convSync(alice), bob, 1), undefined, 'deleted: hidden');
  await expectState(alice, bob, 1, { unread: 0, readed: 10, last: 10 }, 'deleted');
  assert.equal(await apiSend(bob, alice, 1, 'b11 after delete'), 11);
  await allReceive(a.all, 11, bob);
  const back = find(await convSync(alice), bob, 1);
  assert.deepEqual({ unread: back.unread, readed: back.readed_to_msg_seq, last: back.last_msg_seq, recents: seqs(back) },
    { unread: 1, readed: 10, last: 11, recents: [11] }, 'back after a new message, only what came after the delete');
  await expectState(bob, alice, 1, { unread: 0, readed: 11, last: 11 }, 'bob is unaffected by alice\'s delete');
});

h.test('group: unread per member across devices, own messages from either device, reconnects', async () => {
  const alice = uid('ga'); const bob = uid('gb'); const carol = uid('gc'); const g = uid('grp');
  await post200('/channel', { channel_id: g, channel_type: 2, subscribers: [alice, bob, carol] });
  let a = await devices(alice);
  const cc = await h.login(carol);

  await tcpSend(cc, g, 2, 'c1');
  await tcpSend(cc, g, 2, 'c2');
  await apiSend(bob, g, 2, 'b3 via api');
  await allReceive(a.all, 1, carol);
  await allReceive(a.all, 2, carol);
  await allReceive(a.all, 3, bob);
  await expectState(alice, g, 2, { unread: 3, readed: 0, last: 3 }, 'three in the group');
  await expectState(bob, g, 2, { unread: 0, readed: 3, last: 3 }, 'bob sent the newest');
  await expectState(carol, g, 2, { unread: 1, readed: 2, last: 3 }, 'carol read up to her own');

  // alice writes from the app device; her web device gets the RECV.
  assert.equal(await tcpSend(a.app, g, 2, 'a4 from app'), 4);
  const echo = await a.web.waitRecv((x) => x.messageSeq === 4);
  assert.equal(echo.fromUid, alice);
  assert.equal(echo.channelId, g);
  await expectState(alice, g, 2, { unread: 0, readed: 4, last: 4 }, 'own message');
  await expectState(bob, g, 2, { unread: 1, readed: 3, last: 4 }, 'bob');
  await expectState(carol, g, 2, { unread: 2, readed: 2, last: 4 }, 'carol');
  await post200('/conversations/setUnread', { uid: carol, channel_id: g, channel_type: 2, unread: 1 });
  await expectState(carol, g, 2, { unread: 1, readed: 3, last: 4 }, 'carol after setUnread 1');

  // alice reconnects only her web device, and writes from it after two more from carol.
  a.web.close();
  await a.web.waitClosed();
  await tcpSend(cc, g, 2, 'c5');
  await tcpSend(cc, g, 2, 'c6');
  await allReceive([a.app], 5, carol);
  await allReceive([a.app], 6, carol);
  await expectState(alice, g, 2, { unread: 2, readed: 4, last: 6 }, 'two from carol');
  a.web = await h.login(alice, { deviceFlag: 1, transport: 'ws' });
  await expectState(alice, g, 2, { unread: 2, readed: 4, last: 6 }, 'after the web device reconnected');
  await tcpSend(cc, g, 2, 'c7');
  await allReceive([a.app, a.web], 7, carol);
  await expectState(alice, g, 2, { unread: 3, readed: 4, last: 7 }, 'both devices got c7');
  assert.equal(await tcpSend(a.web, g, 2, 'a8 from web'), 8);
  await expectState(alice, g, 2, { unread: 0, readed: 8, last: 8 }, 'own message from the other device');
  await expectState(carol, g, 2, { unread: 1, readed: 7, last: 8 }, 'carol read up to her c7');

  await post200('/conversations/clearUnread', { uid: bob, channel_id: g, channel_type: 2 });
  await expectState(bob, g, 2, { unread: 0, readed: 8, last: 8 }, 'bob after clearUnread');
});

h.test('version > 0: incremental /conversation/sync, only messages above the read pointer', async () => {
  const alice = uid('va'); const bob = uid('vb'); const dave = uid('vd'); const g = uid('vg');
  await post200('/channel', { channel_id: g, channel_type: 2, subscribers: [alice, bob] });
  const cb = await h.login(bob);
  const cd = await h.login(dave);
  for (let i = 1; i <= 5; i++) await tcpSend(cb, alice, 1, `b${i}`);
  for (let i = 1; i <= 2; i++) await tcpSend(cb, g, 2, `g${i}`);
  for (let i = 1; i <= 3; i++) await tcpSend(cd, alice, 1, `d${i}`);
  await post200('/conversations/setUnread', { uid: alice, channel_id: bob, channel_type: 1, unread: 3 });
  await post200('/conversations/clearUnread', { uid: alice, channel_id: g, channel_type: 2 });
  await post200('/conversations/clearUnread', { uid: alice, channel_id: dave, channel_type: 1 });

  // version 0: everything, with full recents.
  const full = await convSync(alice);
  assert.deepEqual(full.map((c) => [c.channel_id, seqs(c)]).sort(), [[bob, [5, 4, 3, 2, 1]], [dave, [3, 2, 1]], [g, [2, 1]]].sort());
  const version = Math.max(...full.map((c) => c.version));
  assert.ok(version > 0);

  // version > 0: only the conversation with unread messages, and only those messages.
  let inc = await convSync(alice, { version });
  assert.equal(inc.length, 1, JSON.stringify(inc.map((c) => c.channel_id)));
  const fullBob = find(full, bob, 1);
  assert.deepEqual(inc[0], { ...fullBob, recents: fullBob.recents.slice(0, 3) }, 'bob: the 3 unread, the rest of the row unchanged');
  assert.equal(inc[0].unread, 3);
  assert.equal(inc[0].readed_to_msg_seq, 2);
  assert.deepEqual(await convSync(alice, { only_unread: 1 }), inc, 'the same as only_unread=1');
  assert.deepEqual(await convSync(alice, { version: 1 }), inc, 'only version > 0 matters, not its value');
  assert.deepEqual(seqs((await convSync(alice, { version, msg_count: 2 }))[0]), [5, 4], 'msg_count still limits');

  // The client's own last_msg_seqs win over the read pointer.
  inc = await convSync(alice, { version, last_msg_seqs: `${bob}:1:4|${dave}:1:1` });
  assert.deepEqual(inc.map((c) => [c.channel_id, seqs(c)]).sort(), [[bob, [5]], [dave, [3, 2]]].sort());
  assert.equal(find(inc, dave, 1).unread, 0, 'dave\'s chat is read; unread comes from the read pointer');

  // A new group message makes the group part of the increment, with only that message.
  await tcpSend(cb, g, 2, 'g3');
  inc = await convSync(alice, { version });
  assert.deepEqual(inc.map((c) => [c.channel_id, seqs(c), c.unread]).sort(), [[bob, [5, 4, 3], 3], [g, [3], 1]].sort());
  assert.deepEqual(seqs(find(await convSync(alice, { version, exclude_channel_types: [2] }), bob, 1)), [5, 4, 3]);
  assert.equal((await convSync(alice, { version, exclude_channel_types: [2] })).length, 1, 'excluded types are left out');

  // alice answers bob: that chat is read (her own message), so it leaves the increment.
  const ca = await h.login(alice);
  await tcpSend(ca, bob, 1, 'a6');
  inc = await convSync(alice, { version });
  assert.deepEqual(inc.map((c) => c.channel_id), [g]);
  // Reading the group empties the increment.
  await post200('/conversations/clearUnread', { uid: alice, channel_id: g, channel_type: 2 });
  assert.deepEqual(await convSync(alice, { version }), []);
  assert.equal((await convSync(alice)).length, 3, 'a full sync still lists all three');
});
