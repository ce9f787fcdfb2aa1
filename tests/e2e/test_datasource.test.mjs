// Datasource (http-api.md §7, v1 behaviour; docs/datasource.md): the server asks a business
// system over HTTP for a channel's subscribers, blacklist, whitelist and channel info the first
// time its owner needs them, and for the system uids before the first send check. Answers are
// cached (datasource.cacheTTL, or until the HTTP API changes the same data); when the datasource
// fails, onFailure=deny refuses the send (nothing stored) and onFailure=stored uses the data
// stored through the HTTP API. Sends behind a pending answer wait in order, up to maxParked.
//
// A real HTTP datasource runs in this process; it answers from the tables below and records
// every request. Channel ids are unique per test, so tests only look at their own requests.

import assert from 'node:assert/strict';
import http from 'node:http';
import { useServer, uid } from './lib/harness.mjs';
import { freePort } from './lib/server.mjs';
import { REASON, sleep } from './lib/wkproto.mjs';

function startDatasource() {
  const ds = {
    log: [],            // every request body, parsed
    subscribers: {},    // channel_id -> [uid]
    blacklist: {},      // channel_id -> [uid]
    whitelist: {},      // channel_id -> [uid]
    info: {},           // channel_id -> {ban, disband, large}
    sysuids: [],
    behaviour: {},      // channel_id (or "<cmd> <path>") -> '500' | 'hang' | 'malformed' | 'reset' | { delayMs }
    hanging: [],
  };
  const answer = (cmd, data) => {
    const id = data?.channel_id;
    switch (cmd) {
      case 'getSubscribers': return ds.subscribers[id] ?? [];
      case 'getBlacklist': return ds.blacklist[id] ?? [];
      case 'getWhitelist': return ds.whitelist[id] ?? [];
      case 'getChannelInfo': return ds.info[id] ?? { large: 0, ban: 0, disband: 0 };
      case 'getSystemUIDs': return ds.sysuids;
      default: return null;
    }
  };
  ds.server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      let q;
      try { q = JSON.parse(body); } catch { q = { bad: body }; }
      ds.log.push({ ...q, path: req.url, contentType: req.headers['content-type'], method: req.method });
      const b = ds.behaviour[q.data?.channel_id] ?? ds.behaviour[`${q.cmd} ${req.url}`];
      if (b === 'hang') { ds.hanging.push(res); return; }
      if (b === 'reset') { req.socket.destroy(); return; }
      if (b === '500') { res.writeHead(500); res.end('internal error'); return; }
      if (b === 'malformed') { res.writeHead(200, { 'Content-Type': 'application/json' }); res.end('{"uids": ["a", '); return; }
      const send = () => {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify(answer(q.cmd, q.data)));
      };
      if (b?.delayMs) setTimeout(send, b.delayMs); else send();
    });
  });
  ds.asked = (cmd, channelId) => ds.log.filter((r) => r.cmd === cmd && (channelId === undefined || r.data?.channel_id === channelId)).length;
  ds.close = () => { for (const r of ds.hanging) r.destroy(); ds.server.closeAllConnections?.(); ds.server.close(); };
  return new Promise((resolve) => ds.server.listen(0, '127.0.0.1', () => { ds.port = ds.server.address().port; resolve(ds); }));
}

const ds = await startDatasource();
const SYS = uid('dsys');
ds.sysuids = [SYS];
const url = (name) => `http://127.0.0.1:${ds.port}/datasource/${name}`;

// deny, channel info from the datasource, cached until invalidated, few parked sends
const h = useServer({
  name: 'datasource-deny',
  args: [`--datasource.addr=${url('deny')}`, '--datasource.channelInfoOn=true', '--datasource.timeout=1s',
    '--datasource.onFailure=deny', '--datasource.maxParked=8'],
});
// stored fallback and a cache TTL
const TTL_MS = 2000;
const hs = useServer({
  name: 'datasource-stored',
  args: [`--datasource.addr=${url('stored')}`, '--datasource.timeout=1s', '--datasource.onFailure=stored',
    `--datasource.cacheTTL=${TTL_MS}ms`],
});
// nothing listens at the datasource address
const closedPort = await freePort();
const hd = useServer({
  name: 'datasource-down',
  args: [`--datasource.addr=http://127.0.0.1:${closedPort}/ds`, '--datasource.onFailure=deny'],
});
// WuKongIM v2.2.5's datasource: only the system uids
const hv = useServer({ name: 'datasource-v2', args: [`--datasource.addr=${url('v2')}`, '--datasource.channelDataOn=false'] });
// getSystemUIDs failing at first
const hr = useServer({ name: 'datasource-sysretry', args: [`--datasource.addr=${url('sysretry')}`, '--datasource.onFailure=stored'] });
hr.cleanup(() => ds.close());

const say = (content) => ({ type: 1, content });
const RATE_LIMIT = 22; // reason code RateLimit (spec §3.3)

async function ok(srv, path, body) {
  const r = await srv.post(path, body);
  assert.equal(r.status, 200, `${path}: ${r.status} ${r.text}`);
  return r;
}

async function stored(srv, login, channelId, channelType) {
  const r = await ok(srv, '/channel/messagesync', {
    login_uid: login, channel_id: channelId, channel_type: channelType, start_message_seq: 0, end_message_seq: 0, limit: 100, pull_mode: 1,
  });
  return r.json.messages ?? [];
}

async function varz(srv) {
  const r = await srv.get('/varz');
  assert.equal(r.status, 200, r.text);
  return r.json.datasource;
}

h.test('subscribers come from the datasource: its members receive, a stored-only member does not', async () => {
  const [a, b, c] = [uid('a'), uid('b'), uid('c')];
  const g = uid('g');
  ds.subscribers[g] = [a, b];
  await ok(h.srv, '/channel', { channel_id: g, channel_type: 2, subscribers: [c] }); // stored, not asked for
  const cb = await h.login(b);
  const cc = await h.login(c);
  const ca = await h.login(a);
  const ack = await ca.send({ channelId: g, channelType: 2, payload: say('hello members') });
  assert.equal(ack.reasonCode, REASON.SUCCESS);
  const r = await cb.waitRecv((p) => p.messageId === ack.messageId);
  assert.deepEqual(r.json, say('hello members'));
  const atC = await cc.collect((p) => p.messageId === ack.messageId, 300);
  assert.equal(atC.length, 0, 'c is only in the stored list: no delivery');
  const refused = await cc.send({ channelId: g, channelType: 2, payload: say('me too') });
  assert.equal(refused.reasonCode, REASON.SUBSCRIBER_NOT_EXIST, 'c is not a subscriber for the datasource');

  for (const cmd of ['getSubscribers', 'getBlacklist', 'getWhitelist', 'getChannelInfo']) {
    const reqs = ds.log.filter((q) => q.cmd === cmd && q.data?.channel_id === g);
    assert.equal(reqs.length, 1, `${cmd} asked once for ${g}`);
    assert.deepEqual(reqs[0].data, { channel_id: g, channel_type: 2 });
    assert.equal(reqs[0].method, 'POST');
    assert.match(reqs[0].contentType, /application\/json/);
  }

  // an API send to the same channel reaches the datasource's members too
  const api = await ok(h.srv, '/message/send', { channel_id: g, channel_type: 2, payload: Buffer.from(JSON.stringify(say('from api'))).toString('base64') });
  assert.equal(api.json.status, 200, api.text);
  await cb.waitRecv((p) => p.messageSeq === api.json.data.message_seq && p.json?.content === 'from api');
});

h.test('blacklist and whitelist come from the datasource (group and person) with the spec reason codes', async () => {
  const [a, b, c, d] = [uid('a'), uid('b'), uid('c'), uid('d')];
  const g = uid('g');
  ds.subscribers[g] = [a, b, c, d];
  ds.blacklist[g] = [b];
  ds.whitelist[g] = [a, b, c];
  const [ca, cb, cd] = [await h.login(a), await h.login(b), await h.login(d)];
  assert.equal((await cb.send({ channelId: g, channelType: 2, payload: say('x') })).reasonCode, REASON.IN_BLACKLIST);
  assert.equal((await cd.send({ channelId: g, channelType: 2, payload: say('x') })).reasonCode, REASON.NOT_IN_WHITELIST);
  assert.equal((await ca.send({ channelId: g, channelType: 2, payload: say('x') })).reasonCode, REASON.SUCCESS);

  // person: the recipient's own blacklist (channel_id = its uid, channel_type 1)
  const [x, y] = [uid('x'), uid('y')];
  ds.blacklist[x] = [y];
  const cy = await h.login(y);
  const toX = await cy.send({ channelId: x, channelType: 1, payload: say('hi x') });
  assert.equal(toX.reasonCode, REASON.IN_BLACKLIST);
  const q = ds.log.find((r) => r.cmd === 'getBlacklist' && r.data?.channel_id === x);
  assert.deepEqual(q.data, { channel_id: x, channel_type: 1 });
  assert.equal(ds.asked('getSubscribers', x), 0, 'no subscribers for a person channel');
  const cx = await h.login(x);
  assert.equal((await cx.send({ channelId: y, channelType: 1, payload: say('hi y') })).reasonCode, REASON.SUCCESS,
    'y has no blacklist');
});

h.test('channel info from the datasource: ban refuses with 19, disband with 24', async () => {
  const a = uid('a');
  const [g1, g2] = [uid('gban'), uid('gdis')];
  ds.subscribers[g1] = [a];
  ds.subscribers[g2] = [a];
  ds.info[g1] = { large: 0, ban: 1, disband: 0 };
  ds.info[g2] = { large: 0, ban: 0, disband: 1 };
  const ca = await h.login(a);
  assert.equal((await ca.send({ channelId: g1, channelType: 2, payload: say('x') })).reasonCode, REASON.BAN);
  assert.equal((await ca.send({ channelId: g2, channelType: 2, payload: say('x') })).reasonCode, REASON.DISBAND);
  assert.equal((await stored(h.srv, a, g1, 2)).length, 0);

  // a channel that was fine, then disbanded in the business system and deleted through the API
  const g3 = uid('glater');
  ds.subscribers[g3] = [a];
  assert.equal((await ca.send({ channelId: g3, channelType: 2, payload: say('x') })).reasonCode, REASON.SUCCESS);
  ds.info[g3] = { large: 0, ban: 0, disband: 1 };
  assert.equal((await ca.send({ channelId: g3, channelType: 2, payload: say('x') })).reasonCode, REASON.SUCCESS,
    'cached: not asked again yet');
  await ok(h.srv, '/channel/delete', { channel_id: g3, channel_type: 2 });
  assert.equal((await ca.send({ channelId: g3, channelType: 2, payload: say('x') })).reasonCode, REASON.DISBAND);
  assert.equal(ds.asked('getChannelInfo', g3), 2);
});

h.test('getSystemUIDs: a uid the datasource names is a system account; asked once, with data {}', async () => {
  const g = uid('g'); const m = uid('m');
  ds.subscribers[g] = [m];
  const cm = await h.login(m);
  const cs = await h.login(SYS);
  const ack = await cs.send({ channelId: g, channelType: 2, payload: say('from a system account') });
  assert.equal(ack.reasonCode, REASON.SUCCESS, 'a system account sends to a group it is not in');
  await cm.waitRecv((p) => p.messageId === ack.messageId);
  const reqs = ds.log.filter((q) => q.cmd === 'getSystemUIDs' && q.path === '/datasource/deny');
  assert.equal(reqs.length, 1, 'loaded once and cached');
  assert.deepEqual(reqs[0].data, {});
  const other = uid('o');
  const co = await h.login(other);
  assert.equal((await co.send({ channelId: g, channelType: 2, payload: say('x') })).reasonCode, REASON.SUBSCRIBER_NOT_EXIST);
});

h.test('answers are cached: a second send does not ask again; an API change of the channel does', async () => {
  const [a, b] = [uid('a'), uid('b')];
  const g = uid('g');
  ds.subscribers[g] = [a, b];
  const ca = await h.login(a);
  for (let i = 0; i < 3; i++) assert.equal((await ca.send({ channelId: g, channelType: 2, payload: say(`m${i}`) })).reasonCode, REASON.SUCCESS);
  assert.equal(ds.asked('getSubscribers', g), 1);
  assert.equal(ds.asked('getBlacklist', g), 1);

  ds.blacklist[g] = [a];
  await ok(h.srv, '/channel/blacklist_add', { channel_id: g, channel_type: 2, uids: [a] });
  assert.equal((await ca.send({ channelId: g, channelType: 2, payload: say('after') })).reasonCode, REASON.IN_BLACKLIST);
  assert.equal(ds.asked('getBlacklist', g), 2, 'asked again after the API changed the channel');
  assert.equal(ds.asked('getSubscribers', g), 2);
});

h.test('deny: a datasource answering 500, hanging past the timeout or resetting refuses the send and stores nothing', async () => {
  const a = uid('a');
  for (const behaviour of ['500', 'hang', 'reset']) {
    const g = uid(`g${behaviour}`);
    ds.subscribers[g] = [a];
    ds.behaviour[g] = behaviour;
    const ca = await h.login(a);
    const ack = await ca.send({ channelId: g, channelType: 2, payload: say('x') }, 5000);
    assert.equal(ack.reasonCode, REASON.SYSTEM_ERROR, `${behaviour}: SENDACK 15`);
    const api = await h.srv.post('/message/send', { channel_id: g, channel_type: 2, payload: Buffer.from('{}').toString('base64') });
    assert.equal(api.status, 400, `${behaviour}: ${api.text}`);
    assert.match(api.json.msg, /datasource unavailable/);
    assert.equal((await stored(h.srv, a, g, 2)).length, 0, `${behaviour}: nothing stored`);

    delete ds.behaviour[g]; // back up: the next send asks again and goes through
    const again = await ca.send({ channelId: g, channelType: 2, payload: say('y') }, 5000);
    assert.equal(again.reasonCode, REASON.SUCCESS, `${behaviour}: recovered`);
    assert.equal(again.messageSeq, 1);
    ca.close();
  }
  const v = await varz(h.srv);
  assert.ok(v.requests.getSubscribers.failed >= 3, JSON.stringify(v));
  assert.ok(v.unavailable >= 6, JSON.stringify(v));
  assert.ok(v.outages >= 1);
});

h.test('sends parked behind one slow answer complete in order; beyond maxParked they are refused with 22', async () => {
  const [a, b] = [uid('a'), uid('b')];
  const g = uid('gslow');
  ds.subscribers[g] = [a, b];
  ds.behaviour[g] = { delayMs: 600 };
  const cb = await h.login(b);
  const ca = await h.login(a);
  const sends = [];
  for (let i = 0; i < 12; i++) sends.push(ca.send({ channelId: g, channelType: 2, payload: say(`n${i}`) }, 8000));
  const acks = await Promise.all(sends);
  const okAcks = acks.filter((k) => k.reasonCode === REASON.SUCCESS);
  assert.equal(okAcks.length, 8, `maxParked=8: ${acks.map((k) => k.reasonCode)}`);
  assert.deepEqual(acks.slice(0, 8).map((k) => k.messageSeq), [1, 2, 3, 4, 5, 6, 7, 8], 'in sending order');
  assert.deepEqual(acks.slice(8).map((k) => k.reasonCode), [RATE_LIMIT, RATE_LIMIT, RATE_LIMIT, RATE_LIMIT]);
  for (let i = 0; i < 8; i++) {
    const r = await cb.waitRecv((p) => p.messageSeq === i + 1 && p.channelId === g);
    assert.deepEqual(r.json, say(`n${i}`));
  }
  assert.equal(ds.asked('getSubscribers', g), 1, 'one request shared by every parked send');
  const v = await varz(h.srv);
  assert.ok(v.parked >= 8 && v.refused_full >= 4, JSON.stringify(v));
});

h.test('malformed datasource JSON: the send is refused, the server stays up', async () => {
  const a = uid('a');
  const g = uid('gbad');
  ds.subscribers[g] = [a];
  ds.behaviour[g] = 'malformed';
  const ca = await h.login(a);
  assert.equal((await ca.send({ channelId: g, channelType: 2, payload: say('x') })).reasonCode, REASON.SYSTEM_ERROR);
  await h.assertHealthy('after malformed datasource JSON');
});

h.test('shutting down with sends parked behind a hanging answer: a clean exit, then service as before', async () => {
  const [a, b] = [uid('a'), uid('b')];
  const g = uid('gstop');
  ds.subscribers[g] = [a, b];
  ds.behaviour[g] = 'hang';
  const ca = await h.login(a);
  for (let i = 0; i < 3; i++) ca.write(ca.buildSend({ channelId: g, channelType: 2, payload: say(`p${i}`) }).bytes);
  const api = h.srv.post('/message/send', { channel_id: g, channel_type: 2, payload: Buffer.from('{}').toString('base64') })
    .catch(() => null); // its connection closes with the server
  while (ds.asked('getSubscribers', g) === 0) await sleep(20); // parked now
  await h.srv.restart();
  await api;
  assert.ok(!h.srv.log.includes('did not exit'), 'stopped promptly');
  delete ds.behaviour[g];
  const cb = await h.login(b);
  const ca2 = await h.login(a);
  const ack = await ca2.send({ channelId: g, channelType: 2, payload: say('after restart') });
  assert.equal(ack.reasonCode, REASON.SUCCESS);
  await cb.waitRecv((p) => p.messageId === ack.messageId);
});

hs.test('stored: a failing datasource falls back to the subscribers stored through the API', async () => {
  const [a, b] = [uid('a'), uid('b')];
  for (const behaviour of ['500', 'hang']) {
    const g = uid(`gs${behaviour}`);
    ds.subscribers[g] = [uid('nobody')];
    ds.behaviour[g] = behaviour;
    await ok(hs.srv, '/channel', { channel_id: g, channel_type: 2, subscribers: [a, b] });
    const cb = await hs.login(b);
    const ca = await hs.login(a);
    const ack = await ca.send({ channelId: g, channelType: 2, payload: say(`fallback ${behaviour}`) }, 5000);
    assert.equal(ack.reasonCode, REASON.SUCCESS, behaviour);
    const r = await cb.waitRecv((p) => p.messageId === ack.messageId);
    assert.deepEqual(r.json, say(`fallback ${behaviour}`));
    assert.equal((await stored(hs.srv, a, g, 2)).length, 1);
    ca.close(); cb.close();
  }
  assert.ok((await varz(hs.srv)).fallbacks >= 2);
});

hs.test('cacheTTL: within the TTL the answer is reused, after it the datasource is asked again', async () => {
  const [a, b] = [uid('a'), uid('b')];
  const g = uid('gttl');
  ds.subscribers[g] = [a, b];
  const ca = await hs.login(a);
  assert.equal((await ca.send({ channelId: g, channelType: 2, payload: say('1') })).reasonCode, REASON.SUCCESS);
  assert.equal((await ca.send({ channelId: g, channelType: 2, payload: say('2') })).reasonCode, REASON.SUCCESS);
  assert.equal(ds.asked('getSubscribers', g), 1);
  assert.equal(ds.asked('getChannelInfo', g), 0, 'channelInfoOn is off here');
  await sleep(TTL_MS + 300);
  ds.subscribers[g] = [b]; // a left the group in the business system
  const third = await ca.send({ channelId: g, channelType: 2, payload: say('3') });
  assert.equal(ds.asked('getSubscribers', g), 2);
  assert.equal(third.reasonCode, REASON.SUBSCRIBER_NOT_EXIST, 'the new answer is used');
});

hd.test('a datasource nobody listens at: deny refuses, /varz shows the failures, the server stays up', async () => {
  const a = uid('a');
  const g = uid('g');
  await ok(hd.srv, '/channel', { channel_id: g, channel_type: 2, subscribers: [a] });
  const ca = await hd.login(a);
  assert.equal((await ca.send({ channelId: g, channelType: 2, payload: say('x') })).reasonCode, REASON.SYSTEM_ERROR);
  assert.equal((await stored(hd.srv, a, g, 2)).length, 0);
  const v = await varz(hd.srv);
  assert.equal(v.enabled, true);
  assert.equal(v.down, true);
  assert.ok(v.requests.getSystemUIDs.failed >= 1 && v.requests.getSubscribers.failed >= 1, JSON.stringify(v));
  assert.ok(v.unavailable >= 1);
});

hv.test('channelDataOn=false: only getSystemUIDs is asked; channel data comes from the store', async () => {
  const [a, b] = [uid('a'), uid('b')];
  const g = uid('gv2');
  ds.subscribers[g] = [uid('nobody')];
  await ok(hv.srv, '/channel', { channel_id: g, channel_type: 2, subscribers: [a, b] });
  const cb = await hv.login(b);
  const ca = await hv.login(a);
  const ack = await ca.send({ channelId: g, channelType: 2, payload: say('v2') });
  assert.equal(ack.reasonCode, REASON.SUCCESS);
  await cb.waitRecv((p) => p.messageId === ack.messageId);
  const cs = await hv.login(SYS);
  assert.equal((await cs.send({ channelId: g, channelType: 2, payload: say('sys') })).reasonCode, REASON.SUCCESS,
    'the datasource system uid is a system account');
  const asked = ds.log.filter((q) => q.path === '/datasource/v2').map((q) => q.cmd);
  assert.deepEqual(asked, ['getSystemUIDs']);
});

hr.test('getSystemUIDs failing: sends go on without datasource system accounts; it is asked again later', async () => {
  ds.behaviour['getSystemUIDs /datasource/sysretry'] = '500';
  const g = uid('gr'); const m = uid('m');
  ds.subscribers[g] = [m];
  const cs = await hr.login(SYS);
  const first = await cs.send({ channelId: g, channelType: 2, payload: say('x') });
  assert.equal(first.reasonCode, REASON.SUBSCRIBER_NOT_EXIST, 'not a system account while getSystemUIDs fails');
  const sysAsked = () => ds.log.filter((q) => q.path === '/datasource/sysretry' && q.cmd === 'getSystemUIDs').length;
  assert.equal(sysAsked(), 1);
  delete ds.behaviour['getSystemUIDs /datasource/sysretry'];
  await sleep(1200); // failed getSystemUIDs is asked again after a second
  const again = await cs.send({ channelId: g, channelType: 2, payload: say('y') });
  assert.equal(again.reasonCode, REASON.SUCCESS, 'a system account once getSystemUIDs answered');
  assert.equal(sysAsked(), 2);
});
