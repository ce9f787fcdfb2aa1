// Send permissions and their SENDACK reason codes: blacklist 4, whitelist 13, channel ban 19,
// disband 24, send ban 25 (http-api.md §4.4, §5.6; wire-protocol.md §6.1).

import assert from 'node:assert/strict';
import { useServer, uid } from './lib/harness.mjs';
import { PT, REASON } from './lib/wkproto.mjs';

const h = useServer();

async function ok(path, body) {
  const r = await h.srv.post(path, body);
  assert.equal(r.status, 200, `${path}: ${r.status} ${r.text}`);
  return r;
}

h.test('person blacklist: the recipient\'s list blocks the sender with 4; removal restores', async () => {
  const a = uid('pa'); const b = uid('pb');
  const cb = await h.login(b);
  const ca = await h.login(a);
  await ok('/channel/blacklist_add', { channel_id: b, channel_type: 1, uids: [a] });
  const bad = await ca.send({ channelId: b, channelType: 1, payload: { type: 1, content: 'blocked' } });
  assert.equal(bad.reasonCode, REASON.IN_BLACKLIST);
  assert.equal(bad.messageSeq, 0);
  assert.equal((await cb.collect((p) => p.type === PT.RECV, 300)).length, 0, 'not delivered');
  // b can still write to a (only b's list is involved).
  const back = await cb.send({ channelId: a, channelType: 1, payload: { type: 1, content: 'b to a' } });
  assert.equal(back.reasonCode, REASON.SUCCESS);
  await ok('/channel/blacklist_remove', { channel_id: b, channel_type: 1, uids: [a] });
  const good = await ca.send({ channelId: b, channelType: 1, payload: { type: 1, content: 'unblocked' } });
  assert.equal(good.reasonCode, REASON.SUCCESS);
  assert.deepEqual((await cb.waitRecv()).json, { type: 1, content: 'unblocked' });
});

h.test('group blacklist blocks sending (4) but the member still receives', async () => {
  const a = uid('ga'); const b = uid('gb'); const g = uid('gg');
  await ok('/channel', { channel_id: g, channel_type: 2, subscribers: [a, b] });
  await ok('/channel/blacklist_add', { channel_id: g, channel_type: 2, uids: [b] });
  const cb = await h.login(b);
  const ca = await h.login(a);
  const bad = await cb.send({ channelId: g, channelType: 2, payload: { type: 1, content: 'x' } });
  assert.equal(bad.reasonCode, REASON.IN_BLACKLIST);
  const fine = await ca.send({ channelId: g, channelType: 2, payload: { type: 1, content: 'to all' } });
  assert.equal(fine.reasonCode, REASON.SUCCESS);
  const r = await cb.waitRecv();
  assert.equal(r.fromUid, a, 'blacklisted subscriber still receives group messages');
});

h.test('group whitelist: non-listed member gets 13; listed member may send', async () => {
  const a = uid('wa'); const b = uid('wb'); const g = uid('wg');
  await ok('/channel', { channel_id: g, channel_type: 2, subscribers: [a, b] });
  await ok('/channel/whitelist_add', { channel_id: g, channel_type: 2, uids: [a] });
  const ca = await h.login(a);
  const cb = await h.login(b);
  assert.equal((await cb.send({ channelId: g, channelType: 2, payload: { type: 1, content: 'x' } })).reasonCode, REASON.NOT_IN_WHITELIST);
  assert.equal((await ca.send({ channelId: g, channelType: 2, payload: { type: 1, content: 'y' } })).reasonCode, REASON.SUCCESS);
  const wl = await h.srv.get(`/channel/whitelist?channel_id=${g}&channel_type=2`);
  assert.equal(wl.status, 200, wl.text);
  assert.deepEqual(wl.json.map((m) => m.uid), [a], 'GET /channel/whitelist lists member objects');
  await ok('/channel/whitelist_remove_all', { channel_id: g, channel_type: 2 });
  assert.equal((await cb.send({ channelId: g, channelType: 2, payload: { type: 1, content: 'z' } })).reasonCode, REASON.SUCCESS, 'empty whitelist = no restriction');
});

h.test('banned group: 19; un-banned (channel info overwritten): success', async () => {
  const a = uid('ba'); const g = uid('bg');
  await ok('/channel', { channel_id: g, channel_type: 2, subscribers: [a], ban: 1 });
  const ca = await h.login(a);
  assert.equal((await ca.send({ channelId: g, channelType: 2, payload: { type: 1, content: 'x' } })).reasonCode, REASON.BAN);
  await ok('/channel/info', { channel_id: g, channel_type: 2 });
  assert.equal((await ca.send({ channelId: g, channelType: 2, payload: { type: 1, content: 'y' } })).reasonCode, REASON.SUCCESS);
});

h.test('subscriber_remove takes away send and receive rights', async () => {
  const a = uid('ra'); const b = uid('rb'); const g = uid('rg');
  await ok('/channel', { channel_id: g, channel_type: 2, subscribers: [a, b] });
  await ok('/channel/subscriber_remove', { channel_id: g, channel_type: 2, subscribers: [b] });
  const cb = await h.login(b);
  const ca = await h.login(a);
  assert.equal((await cb.send({ channelId: g, channelType: 2, payload: { type: 1, content: 'x' } })).reasonCode, REASON.SUBSCRIBER_NOT_EXIST);
  assert.equal((await ca.send({ channelId: g, channelType: 2, payload: { type: 1, content: 'y' } })).reasonCode, REASON.SUCCESS);
  assert.equal((await cb.collect((p) => p.type === PT.RECV, 400)).length, 0);
});
