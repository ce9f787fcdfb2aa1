// System accounts (http-api.md §4.2, §5.11): GET /user/systemuids, systemuids_add / _remove
// (persisted) and _add_to_cache / _remove_from_cache (memory only). A system account sends to
// any channel without blacklist, whitelist or subscriber checks (ban and disband still apply),
// and as a person recipient it skips its own lists. Tests run in order: the list is global.

import assert from 'node:assert/strict';
import { useServer, uid } from './lib/harness.mjs';
import { PT, REASON } from './lib/wkproto.mjs';

const h = useServer();

async function ok(path, body) {
  const r = await h.srv.post(path, body);
  assert.equal(r.status, 200, `${path}: ${r.status} ${r.text}`);
  assert.deepEqual(r.json, { status: 200 }, path);
  return r;
}

async function listed() {
  const r = await h.srv.get('/user/systemuids');
  assert.equal(r.status, 200, r.text);
  return r.json === null ? null : [...r.json].sort();
}

const say = (content) => ({ type: 1, content });

h.test('GET /user/systemuids is null at first; add, remove and list exactly what was stored', async () => {
  assert.equal(await listed(), null, 'no system uids: null (the built-in ____system is not listed)');
  const [s1, s2, s3] = [uid('sys1'), uid('sys2'), uid('sys3')];
  await ok('/user/systemuids_add', { uids: [s1, s2] });
  assert.deepEqual(await listed(), [s1, s2].sort());
  await ok('/user/systemuids_add', { uids: [s2, s3] });
  assert.deepEqual(await listed(), [s1, s2, s3].sort(), 'adding twice keeps one entry');
  await ok('/user/systemuids_remove', { uids: [s1, uid('never')] });
  assert.deepEqual(await listed(), [s2, s3].sort(), 'removing an unknown uid is fine');
  await ok('/user/systemuids_remove', { uids: [s2, s3] });
  assert.equal(await listed(), null, 'empty again: null');
});

h.test('bad bodies get 400 with a clear msg and change nothing', async () => {
  const keep = uid('keep');
  await ok('/user/systemuids_add', { uids: [keep] });
  const cases = [
    [{}, /uids is required/],
    [{ uids: [] }, /uids is required/],
    [{ uids: null }, /uids is required/],
    [{ uids: 'abc' }, /uids/],
    [{ uids: [1] }, /uids/],
    [{ uids: ['ok1', 'a@b'] }, /uids\[1\] is not a valid uid/],
    [{ uids: ['  '] }, /uids\[0\] is not a valid uid/],
    [{ uids: ['x#y'] }, /not a valid uid/],
    ['[]', /object/],
    ['not json', /./],
  ];
  for (const path of ['/user/systemuids_add', '/user/systemuids_remove', '/user/systemuids_add_to_cache',
    '/user/systemuids_remove_from_cache']) {
    for (const [body, msg] of cases) {
      const r = await h.srv.post(path, body);
      assert.equal(r.status, 400, `${path} ${JSON.stringify(body)}: ${r.text}`);
      assert.equal(r.json.status, 400);
      assert.match(r.json.msg, msg, `${path} ${JSON.stringify(body)}`);
    }
  }
  // 'ok1' of the mixed list was not added either
  assert.deepEqual(await listed(), [keep]);
  await ok('/user/systemuids_remove', { uids: [keep] });
});

h.test('a system account sends to a group it is not in, past blacklist and whitelist; members receive', async () => {
  const s = uid('sa'); const m = uid('sm'); const g = uid('sg');
  await ok('/channel', { channel_id: g, channel_type: 2, subscribers: [m] });
  const cs = await h.login(s);
  const cm = await h.login(m);
  const before = await cs.send({ channelId: g, channelType: 2, payload: say('not yet') });
  assert.equal(before.reasonCode, REASON.SUBSCRIBER_NOT_EXIST, 'an ordinary non-member gets 3');

  await ok('/user/systemuids_add', { uids: [s] });
  const a1 = await cs.send({ channelId: g, channelType: 2, payload: say('as system account') });
  assert.equal(a1.reasonCode, REASON.SUCCESS);
  assert.equal(a1.messageSeq, 1);
  const r = await cm.waitRecv((p) => p.messageId === a1.messageId);
  assert.equal(r.fromUid, s);
  assert.equal(r.channelId, g);

  await ok('/channel/blacklist_add', { channel_id: g, channel_type: 2, uids: [s] });
  await ok('/channel/whitelist_add', { channel_id: g, channel_type: 2, uids: [m] });
  const a2 = await cs.send({ channelId: g, channelType: 2, payload: say('blacklisted, not whitelisted') });
  assert.equal(a2.reasonCode, REASON.SUCCESS, 'lists do not apply to a system account');
  await cm.waitRecv((p) => p.messageId === a2.messageId);
  assert.equal((await cs.collect((p) => p.type === PT.RECV, 200)).length, 0, 'not a member: no copy back');

  await ok('/user/systemuids_remove', { uids: [s] });
  const a3 = await cs.send({ channelId: g, channelType: 2, payload: say('ordinary again') });
  assert.equal(a3.reasonCode, REASON.IN_BLACKLIST, 'removed: the lists apply again');
});

h.test('ban and disband still refuse a system account; a group that does not exist gives 5', async () => {
  const s = uid('sb'); const g = uid('sbg'); const d = uid('sdg');
  await ok('/user/systemuids_add', { uids: [s] });
  await ok('/channel', { channel_id: g, channel_type: 2, subscribers: [uid('x')], ban: 1 });
  await ok('/channel', { channel_id: d, channel_type: 2, subscribers: [uid('x')] });
  await ok('/channel/delete', { channel_id: d, channel_type: 2 });
  const cs = await h.login(s);
  assert.equal((await cs.send({ channelId: g, channelType: 2, payload: say('x') })).reasonCode, REASON.BAN);
  assert.equal((await cs.send({ channelId: d, channelType: 2, payload: say('x') })).reasonCode, REASON.DISBAND);
  assert.equal((await cs.send({ channelId: uid('nog'), channelType: 2, payload: say('x') })).reasonCode,
    REASON.CHANNEL_NOT_EXIST);
  await ok('/user/systemuids_remove', { uids: [s] });
});

h.test('person: a system account passes the recipient\'s blacklist; as recipient it skips its own lists', async () => {
  const s = uid('ps'); const u = uid('pu'); const v = uid('pv');
  await ok('/user/systemuids_add', { uids: [s] });
  await ok('/channel/blacklist_add', { channel_id: u, channel_type: 1, uids: [s, v] });
  await ok('/channel/blacklist_add', { channel_id: s, channel_type: 1, uids: [v] });
  const cs = await h.login(s);
  const cu = await h.login(u);
  const cv = await h.login(v);
  const a = await cs.send({ channelId: u, channelType: 1, payload: say('to u') });
  assert.equal(a.reasonCode, REASON.SUCCESS, 'u blacklisted the system account: still delivered');
  const r = await cu.waitRecv((p) => p.messageId === a.messageId);
  assert.equal(r.channelId, s);
  // v is on the system account's own blacklist, which does not count for a system recipient
  const b = await cv.send({ channelId: s, channelType: 1, payload: say('to the system account') });
  assert.equal(b.reasonCode, REASON.SUCCESS);
  const rs = await cs.waitRecv((p) => p.messageId === b.messageId);
  assert.equal(rs.fromUid, v, 'a system account is a normal user otherwise: it connects and receives');
  // an ordinary sender is still held by u's blacklist
  assert.equal((await cv.send({ channelId: u, channelType: 1, payload: say('x') })).reasonCode, REASON.IN_BLACKLIST);
  await ok('/user/systemuids_remove', { uids: [s] });
});

h.test('cache-only entries act at once, are not listed, and vanish on restart; stored ones are reloaded', async () => {
  const cached = uid('cc'); const stored = uid('cs'); const m = uid('cm'); const g = uid('cg');
  await ok('/channel', { channel_id: g, channel_type: 2, subscribers: [m] });
  await ok('/user/systemuids_add_to_cache', { uids: [cached] });
  await ok('/user/systemuids_add', { uids: [stored] });
  assert.deepEqual(await listed(), [stored], 'GET lists the stored uids only');

  let cc = await h.login(cached);
  assert.equal((await cc.send({ channelId: g, channelType: 2, payload: say('cached') })).reasonCode, REASON.SUCCESS);
  await ok('/user/systemuids_remove_from_cache', { uids: [cached] });
  assert.equal((await cc.send({ channelId: g, channelType: 2, payload: say('x') })).reasonCode,
    REASON.SUBSCRIBER_NOT_EXIST, 'removed from the cache');
  await ok('/user/systemuids_add_to_cache', { uids: [cached] });
  cc.close();

  await h.srv.restart();
  assert.deepEqual(await listed(), [stored], 'the stored list survives a restart');
  const cst = await h.login(stored);
  assert.equal((await cst.send({ channelId: g, channelType: 2, payload: say('stored') })).reasonCode, REASON.SUCCESS,
    'the stored system account is loaded into the cache at start-up');
  cc = await h.login(cached);
  assert.equal((await cc.send({ channelId: g, channelType: 2, payload: say('x') })).reasonCode,
    REASON.SUBSCRIBER_NOT_EXIST, 'the cache-only entry is gone after the restart');

  // removing a stored uid from the cache only lasts until the next restart
  await ok('/user/systemuids_remove_from_cache', { uids: [stored] });
  assert.equal((await cst.send({ channelId: g, channelType: 2, payload: say('x') })).reasonCode,
    REASON.SUBSCRIBER_NOT_EXIST);
  assert.deepEqual(await listed(), [stored], 'still stored');
  await ok('/user/systemuids_remove', { uids: [stored] });
  assert.equal(await listed(), null);
});
