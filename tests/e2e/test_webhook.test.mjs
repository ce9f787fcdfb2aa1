// Webhooks (http-api.md §6; docs/webhooks.md): POST <webhook.httpAddr>?event=<name> with a JSON
// body. user.onlinestatus (strings with counts), msg.offline (one MessageResp per message with the
// recipients that are offline, none when all are online) and msg.notify (arrays of stored
// MessageResp, batched by msgNotifyEventCountPerPush) go to a real HTTP receiver in this process.
// Failures are retried with back-off up to msgNotifyEventRetryMaxCount, counted in /varz, and a
// receiver that is down or hangs never holds up message delivery nor the shutdown.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { useServer, uid, b64json } from './lib/harness.mjs';
import { freePort, MAGPIE_BIN } from './lib/server.mjs';
import { REASON, FLAG, sleep } from './lib/wkproto.mjs';

// One receiver for every server of this file; each server posts to its own path. behaviour[path]:
// { mode: 'hang' | '500' } or { fail: n } (answer 500 to the next n msg.notify POSTs).
function handler(rx) {
  return (req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      const u = new URL(req.url, 'http://receiver');
      const rec = { path: u.pathname, event: u.searchParams.get('event'), method: req.method, contentType: req.headers['content-type'], text: body };
      try { rec.body = JSON.parse(body); } catch { rec.body = undefined; }
      const b = rx.behaviour[u.pathname] ?? {};
      rx.posts.push(rec);
      if (b.mode === 'hang') { rec.status = 'hang'; rx.hanging.push(res); return; }
      rec.status = 200;
      if (b.mode === '500') rec.status = 500;
      else if (b.fail > 0 && rec.event === 'msg.notify') { b.fail--; rec.status = 500; }
      res.writeHead(rec.status, { 'Content-Type': 'text/plain' });
      res.end(rec.status === 200 ? 'ok' : 'failed');
    });
  };
}

function listen(rx, port = 0) {
  const server = http.createServer(handler(rx));
  rx.servers.push(server);
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve(server.address().port)));
}

const rx = { posts: [], behaviour: {}, hanging: [], servers: [] };
const port = await listen(rx);
rx.close = () => {
  for (const r of rx.hanging) r.destroy();
  for (const s of rx.servers) { s.closeAllConnections?.(); s.close(); }
};
const hookUrl = (p) => `http://127.0.0.1:${port}${p}`;

const MAIN = '/hook/main';
const PER_PUSH = 10;
const h = useServer({
  name: 'webhook-main',
  args: [`--webhook.httpAddr=${hookUrl(MAIN)}`, '--webhook.msgNotifyEventPushInterval=200ms',
    `--webhook.msgNotifyEventCountPerPush=${PER_PUSH}`],
});
const RETRY = '/hook/retry';
rx.behaviour[RETRY] = { fail: 2 };
const hr = useServer({
  name: 'webhook-retry',
  args: [`--webhook.httpAddr=${hookUrl(RETRY)}`, '--webhook.msgNotifyEventPushInterval=100ms', '--webhook.focusEvents=msg.notify'],
});
const FAIL = '/hook/fail';
rx.behaviour[FAIL] = { mode: '500' };
const hx = useServer({
  name: 'webhook-fail',
  args: [`--webhook.httpAddr=${hookUrl(FAIL)}`, '--webhook.msgNotifyEventPushInterval=50ms', '--webhook.msgNotifyEventRetryMaxCount=2'],
});
const HANG = '/hook/hang';
rx.behaviour[HANG] = { mode: 'hang' };
const HANG_MAX = 20;
const hh = useServer({
  name: 'webhook-hang',
  args: [`--webhook.httpAddr=${hookUrl(HANG)}`, '--webhook.msgNotifyEventPushInterval=50ms', `--webhook.maxPending=${HANG_MAX}`],
});
const downPort = await freePort();
const hd = useServer({
  name: 'webhook-down',
  args: [`--webhook.httpAddr=http://127.0.0.1:${downPort}/hook/down`, '--webhook.msgNotifyEventPushInterval=100ms',
    '--webhook.msgNotifyEventRetryMaxCount=100', '--webhook.focusEvents=msg.notify'],
});
const savedPort = await freePort();
const hp = useServer({
  name: 'webhook-restart',
  args: [`--webhook.httpAddr=http://127.0.0.1:${savedPort}/hook/saved`, '--webhook.msgNotifyEventPushInterval=100ms',
    '--webhook.msgNotifyEventRetryMaxCount=1000', '--webhook.focusEvents=msg.notify'],
});
const TOKEN = '/hook/token';
const ht = useServer({ name: 'webhook-token', args: ['--tokenAuthOn=true', `--webhook.httpAddr=${hookUrl(TOKEN)}`, '--webhook.focusEvents=msg.offline'] });
ht.cleanup(() => rx.close());

const say = (content) => ({ type: 1, content });
const decode = (b64) => JSON.parse(Buffer.from(b64, 'base64').toString('utf8'));

async function waitUntil(what, fn, timeoutMs = 10000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

const okPosts = (p, event) => rx.posts.filter((r) => r.path === p && r.event === event && r.status === 200);
const notified = (p) => okPosts(p, 'msg.notify').flatMap((r) => r.body);
const offlineOf = (p, clientMsgNo) => okPosts(p, 'msg.offline').filter((r) => r.body.client_msg_no === clientMsgNo);

async function ok(srv, urlPath, body) {
  const r = await srv.post(urlPath, body);
  assert.equal(r.status, 200, `${urlPath}: ${r.status} ${r.text}`);
  return r;
}

async function hookz(srv) {
  const r = await srv.get('/varz');
  assert.equal(r.status, 200, r.text);
  return r.json.webhook;
}

// ---- user.onlinestatus ----------------------------------------------------------------------

function parseStatus(s) {
  const m = /^(.+)-(\d+)-([01])-(\d+)-(\d+)-(\d+)$/.exec(s);
  assert.ok(m, `status string ${s}`);
  return { uid: m[1], flag: +m[2], online: +m[3], connId: m[4], flagCount: +m[5], total: +m[6] };
}

h.test('user.onlinestatus: one string per connection change, with the device flag and the counts after it, in order', async () => {
  const a = uid('on');
  const mine = () => okPosts(MAIN, 'user.onlinestatus').flatMap((r) => r.body).filter((s) => s.startsWith(`${a}-`)).map(parseStatus);
  const app = await h.login(a, { deviceFlag: 0 });
  const web = await h.login(a, { deviceFlag: 1 });
  await waitUntil('two online entries', () => mine().length >= 2);
  const [e1, e2] = mine();
  assert.deepEqual({ ...e1, connId: undefined }, { uid: a, flag: 0, online: 1, connId: undefined, flagCount: 1, total: 1 });
  assert.deepEqual({ ...e2, connId: undefined }, { uid: a, flag: 1, online: 1, connId: undefined, flagCount: 1, total: 2 });
  assert.notEqual(e1.connId, e2.connId);
  app.close();
  await waitUntil('the first offline entry', () => mine().length >= 3);
  assert.deepEqual(mine()[2], { uid: a, flag: 0, online: 0, connId: e1.connId, flagCount: 0, total: 1 });
  web.close();
  await waitUntil('the second offline entry', () => mine().length >= 4);
  assert.deepEqual(mine()[3], { uid: a, flag: 1, online: 0, connId: e2.connId, flagCount: 0, total: 0 });
  const post = okPosts(MAIN, 'user.onlinestatus').find((r) => r.text.includes(`"${a}-`));
  assert.equal(post.method, 'POST');
  assert.match(post.contentType, /^application\/json/);
  assert.ok(Array.isArray(post.body));
});

// ---- msg.offline --------------------------------------------------------------------------------

h.test('msg.offline: a group message lists only the members with no connection, not the sender nor online members', async () => {
  const [a, b, c, d] = [uid('a'), uid('b'), uid('c'), uid('d')];
  const g = uid('g');
  await ok(h.srv, '/channel', { channel_id: g, channel_type: 2, subscribers: [a, b, c, d] });
  const cb = await h.login(b);
  const ca = await h.login(a);
  const before = Math.floor(Date.now() / 1000);
  const ack = await ca.send({ channelId: g, channelType: 2, payload: say('to the group') });
  assert.equal(ack.reasonCode, REASON.SUCCESS);
  await cb.waitRecv((p) => p.clientMsgNo === ack.sent.clientMsgNo);
  const [post] = await waitUntil('msg.offline', () => offlineOf(MAIN, ack.sent.clientMsgNo).length && offlineOf(MAIN, ack.sent.clientMsgNo));
  const o = post.body;
  assert.deepEqual([...o.to_uids].sort(), [c, d].sort(), 'only the members that are not connected');
  assert.equal(o.from_uid, a);
  assert.equal(o.channel_id, g);
  assert.equal(o.channel_type, 2);
  assert.equal(o.message_seq, ack.messageSeq);
  assert.equal(o.message_idstr, String(ack.messageId));
  assert.deepEqual(decode(o.payload), say('to the group'));
  assert.deepEqual(o.header, { no_persist: 0, red_dot: 1, sync_once: 0 });
  assert.ok(o.timestamp >= before - 1 && o.timestamp <= Math.floor(Date.now() / 1000) + 1, `push time ${o.timestamp}`);
  assert.equal(typeof o.source_id, 'number');
  assert.equal(o.compress, undefined);
  await sleep(300);
  assert.equal(offlineOf(MAIN, ack.sent.clientMsgNo).length, 1, 'one POST per message');
});

h.test('msg.offline: nothing when every recipient is online; a person message names the recipient as channel_id', async () => {
  const [a, b, c] = [uid('a'), uid('b'), uid('c')];
  const ca = await h.login(a);
  const cb = await h.login(b);
  const online = await ca.send({ channelId: b, channelType: 1, payload: say('you are here') });
  await cb.waitRecv((p) => p.clientMsgNo === online.sent.clientMsgNo);
  const away = await ca.send({ channelId: c, channelType: 1, payload: say('you are away') });
  const [post] = await waitUntil('msg.offline for c', () => offlineOf(MAIN, away.sent.clientMsgNo).length && offlineOf(MAIN, away.sent.clientMsgNo));
  assert.deepEqual(post.body.to_uids, [c]);
  assert.equal(post.body.channel_id, c, 'the channel as the sender addressed it');
  assert.equal(post.body.channel_type, 1);
  assert.equal(post.body.from_uid, a);
  // msg.notify of both messages has arrived by now or soon; msg.offline is sent before it
  await waitUntil('msg.notify of both', () => notified(MAIN).filter((m) => [online.sent.clientMsgNo, away.sent.clientMsgNo].includes(m.client_msg_no)).length === 2);
  await sleep(200);
  assert.equal(offlineOf(MAIN, online.sent.clientMsgNo).length, 0, 'no msg.offline when every recipient is online');
});

h.test('msg.offline and msg.notify of a system message: raw sender vs blanked; no_persist only in msg.offline with seq 0', async () => {
  const c = uid('c');
  const sent = await ok(h.srv, '/message/send', { from_uid: '', channel_id: c, channel_type: 1, payload: b64json(say('from the system')) });
  const id = sent.json.data.message_idstr;
  const off = await waitUntil('msg.offline', () => okPosts(MAIN, 'msg.offline').find((r) => r.body.message_idstr === id));
  assert.equal(off.body.from_uid, '____system');
  assert.deepEqual(off.body.to_uids, [c]);
  assert.equal(off.body.channel_id, c);
  const n = await waitUntil('msg.notify', () => notified(MAIN).find((m) => m.message_idstr === id));
  assert.equal(n.from_uid, '', 'msg.notify blanks the system sender');
  assert.equal(n.channel_id, c);
  assert.equal(n.message_seq, sent.json.data.message_seq);
  assert.deepEqual(decode(n.payload), say('from the system'));
  assert.equal(n.to_uids, undefined);

  const np = await ok(h.srv, '/message/send', { from_uid: '', channel_id: c, channel_type: 1, header: { no_persist: 1 }, payload: b64json(say('fleeting')) });
  const npId = np.json.data.message_idstr;
  const npOff = await waitUntil('msg.offline of no_persist', () => okPosts(MAIN, 'msg.offline').find((r) => r.body.message_idstr === npId));
  assert.equal(npOff.body.message_seq, 0);
  assert.equal(npOff.body.header.no_persist, 1);
  const after = await ok(h.srv, '/message/send', { from_uid: '', channel_id: c, channel_type: 1, payload: b64json(say('stored again')) });
  await waitUntil('msg.notify of the next stored message', () => notified(MAIN).find((m) => m.message_idstr === after.json.data.message_idstr));
  assert.equal(notified(MAIN).filter((m) => m.message_idstr === npId).length, 0, 'no msg.notify for a no_persist message');
});

// ---- msg.notify ---------------------------------------------------------------------------------

h.test('msg.notify: every stored message once, in arrays of at most msgNotifyEventCountPerPush, far fewer POSTs than messages; /varz counts them', async () => {
  const [a, b] = [uid('a'), uid('b')];
  const g = uid('g');
  await ok(h.srv, '/channel', { channel_id: g, channel_type: 2, subscribers: [a, b] });
  const v0 = await hookz(h.srv);
  const cb = await h.login(b);
  const ca = await h.login(a);
  const N = 35;
  const acks = [];
  for (let i = 0; i < N; i++) acks.push(await ca.send({ channelId: g, channelType: 2, payload: say(`n${i}`) }));
  await cb.waitRecv((p) => p.clientMsgNo === acks[N - 1].sent.clientMsgNo);
  const nos = new Set(acks.map((k) => k.sent.clientMsgNo));
  const mine = () => notified(MAIN).filter((m) => nos.has(m.client_msg_no));
  await waitUntil('all msg.notify', () => mine().length >= N);
  const got = mine();
  assert.equal(got.length, N, 'each message once');
  assert.deepEqual(got.map((m) => m.message_seq), acks.map((k) => k.messageSeq), 'in order, with their seqs');
  got.forEach((m, i) => {
    assert.equal(m.from_uid, a);
    assert.equal(m.channel_id, g);
    assert.equal(m.channel_type, 2);
    assert.equal(m.message_idstr, String(acks[i].messageId));
    assert.deepEqual(decode(m.payload), say(`n${i}`));
  });
  const posts = okPosts(MAIN, 'msg.notify').filter((r) => r.body.some((m) => nos.has(m.client_msg_no)));
  for (const p of posts) {
    assert.ok(Array.isArray(p.body));
    assert.ok(p.body.length <= PER_PUSH, `a POST of ${p.body.length} messages`);
  }
  assert.ok(posts.length < N, `${posts.length} POSTs for ${N} messages`);
  const v1 = await waitUntil('counters', async () => { const v = await hookz(h.srv); return v['msg.notify'].sent - v0['msg.notify'].sent >= N && v; });
  assert.equal(v1.enabled, true);
  assert.equal(v1['msg.notify'].failed, 0);
  assert.equal(v1['msg.notify'].dropped, 0);
  assert.ok(v1['user.onlinestatus'].sent >= v0['user.onlinestatus'].sent + 2);
});

// ---- retries, focusEvents ---------------------------------------------------------------------

hr.test('a failed msg.notify batch (500) is sent again until it is answered 200; focusEvents=msg.notify sends nothing else', async () => {
  const [a, b, c] = [uid('a'), uid('b'), uid('c')];
  const ca = await hr.login(a);
  await hr.login(b);
  const acks = [];
  for (let i = 0; i < 3; i++) acks.push(await ca.send({ channelId: i ? b : c, channelType: 1, payload: say(`r${i}`) }));
  const nos = new Set(acks.map((k) => k.sent.clientMsgNo));
  await waitUntil('the messages after the failures', () => notified(RETRY).filter((m) => nos.has(m.client_msg_no)).length >= 3);
  const failures = rx.posts.filter((r) => r.path === RETRY && r.status === 500);
  assert.ok(failures.length >= 2, 'two POSTs answered 500');
  assert.ok(failures.every((r) => r.body.some((m) => nos.has(m.client_msg_no))), 'the failed POSTs carried these messages');
  const v = await hookz(hr.srv);
  assert.ok(v['msg.notify'].failed >= 2);
  assert.ok(v['msg.notify'].sent >= 3);
  assert.equal(v['msg.notify'].dropped, 0);
  await sleep(300);
  assert.deepEqual([...new Set(rx.posts.filter((r) => r.path === RETRY).map((r) => r.event))], ['msg.notify'],
    'no user.onlinestatus nor msg.offline outside focusEvents');
  assert.equal(v['msg.offline'].sent + v['user.onlinestatus'].sent, 0);
});

hx.test('a receiver that always fails: msg.notify dropped after msgNotifyEventRetryMaxCount attempts, msg.offline not retried; all counted', async () => {
  const [a, c] = [uid('a'), uid('c')];
  const ca = await hx.login(a);
  const acks = [];
  for (let i = 0; i < 3; i++) acks.push(await ca.send({ channelId: c, channelType: 1, payload: say(`x${i}`) }));
  const v = await waitUntil('drops', async () => { const s = await hookz(hx.srv); return s['msg.notify'].dropped >= 3 && s['msg.offline'].dropped >= 3 && s; });
  assert.ok(v['msg.notify'].failed >= 2);
  assert.equal(v['msg.notify'].sent, 0);
  assert.ok(v['msg.offline'].failed >= 3);
  for (const k of acks) {
    const tries = rx.posts.filter((r) => r.path === FAIL && r.event === 'msg.notify' && r.body.some((m) => m.client_msg_no === k.sent.clientMsgNo));
    assert.equal(tries.length, 2, 'two attempts per message');
    assert.equal(rx.posts.filter((r) => r.path === FAIL && r.event === 'msg.offline' && r.body.client_msg_no === k.sent.clientMsgNo).length, 1);
  }
});

hd.test('receiver down (connection refused), then up: the pending msg.notify events arrive', async () => {
  const [a, b] = [uid('a'), uid('b')];
  const ca = await hd.login(a);
  const ack = await ca.send({ channelId: b, channelType: 1, payload: say('while down') });
  await waitUntil('a failed attempt', async () => (await hookz(hd.srv))['msg.notify'].failed >= 1);
  await listen(rx, downPort);
  const m = await waitUntil('the message', () => notified('/hook/down').find((x) => x.client_msg_no === ack.sent.clientMsgNo), 20000);
  assert.deepEqual(decode(m.payload), say('while down'));
  const v = await hookz(hd.srv);
  assert.ok(v['msg.notify'].sent >= 1);
  assert.equal(v['msg.notify'].dropped, 0);
});

hp.test('msg.notify events not yet delivered survive a clean restart', async () => {
  const [a, b] = [uid('a'), uid('b')];
  const ca = await hp.login(a);
  const acks = [];
  for (let i = 0; i < 3; i++) acks.push(await ca.send({ channelId: b, channelType: 1, payload: say(`kept${i}`) }));
  await waitUntil('a failed attempt', async () => (await hookz(hp.srv))['msg.notify'].failed >= 1);
  ca.close();
  await hp.srv.restart();
  await listen(rx, savedPort);
  const nos = acks.map((k) => k.sent.clientMsgNo);
  await waitUntil('the saved messages', () => notified('/hook/saved').filter((m) => nos.includes(m.client_msg_no)).length >= 3, 20000);
  const got = notified('/hook/saved').filter((m) => nos.includes(m.client_msg_no));
  assert.deepEqual(got.map((m) => decode(m.payload)), [0, 1, 2].map((i) => say(`kept${i}`)));
  assert.deepEqual(got.map((m) => m.message_seq), acks.map((k) => k.messageSeq));
  assert.ok(got.every((m) => m.from_uid === a && m.channel_id === b));
});

ht.test('with tokenAuthOn, a recipient counts as offline for msg.offline unless a master (device_level 1) connection is online', async () => {
  const [a, master, slave] = [uid('a'), uid('m'), uid('s')];
  for (const [u, level] of [[a, 1], [master, 1], [slave, 0]]) await ok(ht.srv, '/user/token', { uid: u, token: 't', device_flag: 0, device_level: level });
  const ca = await ht.login(a, { token: 't' });
  const cm = await ht.login(master, { token: 't' });
  const cs = await ht.login(slave, { token: 't' });
  const g = uid('g');
  await ok(ht.srv, '/channel', { channel_id: g, channel_type: 2, subscribers: [a, master, slave] });
  const ack = await ca.send({ channelId: g, channelType: 2, payload: say('who needs a push') });
  await cm.waitRecv((p) => p.clientMsgNo === ack.sent.clientMsgNo);
  await cs.waitRecv((p) => p.clientMsgNo === ack.sent.clientMsgNo);
  const [post] = await waitUntil('msg.offline', () => offlineOf(TOKEN, ack.sent.clientMsgNo).length && offlineOf(TOKEN, ack.sent.clientMsgNo));
  assert.deepEqual(post.body.to_uids, [slave], 'the slave-only recipient needs an offline push; the master one does not');
});

// ---- a hanging receiver ---------------------------------------------------------------------

hh.test('a receiver that never answers holds up neither delivery nor memory: beyond webhook.maxPending events are dropped and counted', async () => {
  const [a, b] = [uid('a'), uid('b')];
  const cb = await hh.login(b);
  const ca = await hh.login(a);
  const N = 200;
  let last;
  for (let i = 0; i < N; i++) {
    last = await ca.send({ channelId: b, channelType: 1, payload: say(`h${i}`), flags: FLAG.RED_DOT });
    assert.equal(last.reasonCode, REASON.SUCCESS);
  }
  await cb.waitRecv((p) => p.clientMsgNo === last.sent.clientMsgNo, 10000);
  await waitUntil('a hanging POST', () => rx.hanging.length > 0);
  const v = await waitUntil('every message accounted for', async () => {
    const s = await hookz(hh.srv);
    return s['msg.notify'].pending + s['msg.notify'].dropped === N && s;
  });
  assert.equal(v['msg.notify'].sent, 0);
  assert.ok(v['msg.notify'].pending > 0 && v['msg.notify'].pending <= HANG_MAX, `pending ${v['msg.notify'].pending}, bounded`);
  assert.ok(v['msg.notify'].dropped >= N - HANG_MAX);
  // the harness then stops the server with requests hanging: it must exit promptly and cleanly
});

// ---- configuration ------------------------------------------------------------------------------

function runMagpie(args) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'magpie-e2e-'));
  try {
    return spawnSync(MAGPIE_BIN, [`--dataDir=${dir}`, '--addr=127.0.0.1:0', ...args], { encoding: 'utf8', timeout: 10000 });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

h.test('webhook.grpcAddr and unknown focusEvents are refused at startup with a clear message', () => {
  const g = runMagpie(['--webhook.grpcAddr=127.0.0.1:6979']);
  assert.notEqual(g.status, 0);
  assert.match(g.stderr, /webhook\.grpcAddr.*gRPC webhooks are not supported/);
  const f = runMagpie([`--webhook.httpAddr=${hookUrl('/x')}`, '--webhook.focusEvents=msg.notify,msg.everything']);
  assert.notEqual(f.status, 0);
  assert.match(f.stderr, /msg\.everything/);
});
