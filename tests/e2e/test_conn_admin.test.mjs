// POST /conn/kick and POST /conn/remove (http-api.md §4.3): kick sends DISCONNECT (reason 12,
// "server kick") and closes after kickCloseDelay (2 s, WuKongIM's fixed delay); remove closes at
// once without a DISCONNECT. Connection ids come from /connz.

import assert from 'node:assert/strict';
import { useServer, uid } from './lib/harness.mjs';
import { PT, REASON } from './lib/wkproto.mjs';

const h = useServer();

/** The connection ids of uid from /connz, in id order. */
async function connIds(user) {
  const r = await h.srv.get(`/connz?uid=${user}&limit=100`);
  assert.equal(r.status, 200, r.text);
  return r.json.connections.filter((c) => c.uid === user).map((c) => c.id);
}

async function oneId(user) {
  const ids = await connIds(user);
  assert.equal(ids.length, 1, `one connection of ${user}`);
  assert.ok(Number.isSafeInteger(ids[0]) && ids[0] > 0, `conn id ${ids[0]} is a safe positive integer`);
  return ids[0];
}

const disconnects = (c) => c.history.filter((p) => p.type === PT.DISCONNECT);

h.test('kick: DISCONNECT 12 "server kick", closed about 2 s later', async () => {
  const u = uid('kk');
  const c = await h.login(u);
  const id = await oneId(u);
  const t0 = Date.now();
  const r = await h.srv.post('/conn/kick', { uid: u, conn_id: id });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.text, '{"status":200}');
  const d = await c.waitType(PT.DISCONNECT, 2000);
  assert.equal(d.reasonCode, REASON.CONNECT_KICK);
  assert.equal(d.reason, 'server kick');
  assert.equal(await c.waitClosed(5000), true, 'closed after the delay');
  const took = Date.now() - t0;
  assert.ok(took >= 1500, `closed after ${took} ms, not at once`);
  assert.deepEqual(await connIds(u), []);
});

h.test('remove: closed at once, no DISCONNECT', async () => {
  const u = uid('kr');
  const c = await h.login(u, { transport: 'ws' });
  const id = await oneId(u);
  const t0 = Date.now();
  const r = await h.srv.post('/conn/remove', { uid: u, conn_id: id, node_id: 1001, op_node_id: 1001 });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { status: 200 });
  assert.equal(await c.waitClosed(1500), true);
  assert.ok(Date.now() - t0 < 1500, 'closed at once');
  assert.equal(disconnects(c).length, 0);
});

h.test('without uid the id alone is enough; only that connection goes', async () => {
  const u = uid('kn');
  const a = await h.login(u, { deviceId: 'dev-a' });
  const b = await h.login(u, { deviceId: 'dev-b' });
  const ids = await connIds(u);
  assert.equal(ids.length, 2);
  const r = await h.srv.post('/conn/remove', { conn_id: ids[0] });
  assert.equal(r.status, 200, r.text);
  const closed = await Promise.race([a.closed.then(() => a), b.closed.then(() => b)]);
  await closed.waitClosed(1500);
  const other = closed === a ? b : a;
  assert.equal(other.isClosed, false);
  await other.ping();
  assert.deepEqual(await connIds(u), [ids[1]]);
});

h.test('connections on every worker can be kicked by id', async () => {
  const users = Array.from({ length: 16 }, () => uid('kw'));
  const clients = [];
  for (const u of users) clients.push(await h.login(u));
  const ids = [];
  for (const u of users) ids.push(await oneId(u));
  // the low 6 bits of an id are its worker; the kernel spreads 16 connections over both
  const workers = new Set(ids.map((id) => id % 64));
  assert.equal(workers.size, h.srv.workers, `connections on ${[...workers]} of ${h.srv.workers} workers`);
  for (const [i, u] of users.entries()) {
    const r = await h.srv.post('/conn/remove', { uid: u, conn_id: ids[i] });
    assert.equal(r.status, 200, r.text);
  }
  for (const c of clients) assert.equal(await c.waitClosed(2000), true, `${c.name} closed`);
});

h.test('unknown id, or a uid that is not the connection\'s: OK and nothing happens', async () => {
  const u = uid('ku'); const other = uid('ko');
  const c = await h.login(u);
  const id = await oneId(u);
  for (const [path, body] of [
    ['/conn/kick', { uid: other, conn_id: id }],
    ['/conn/remove', { uid: other, conn_id: id }],
    ['/conn/kick', { conn_id: id + 64 * 1000 }],
    ['/conn/remove', { conn_id: 63 }],
    ['/conn/kick', { conn_id: -5 }],
    ['/conn/remove', { conn_id: Number.MAX_SAFE_INTEGER }],
  ]) {
    const r = await h.srv.post(path, body);
    assert.equal(r.status, 200, `${path} ${JSON.stringify(body)}: ${r.text}`);
    assert.deepEqual(r.json, { status: 200 });
  }
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(c.isClosed, false);
  assert.equal(disconnects(c).length, 0);
  await c.ping();
});

h.test('bad input: 400 with a message, and nobody is disconnected', async () => {
  const u = uid('kb');
  const c = await h.login(u);
  const id = await oneId(u);
  const cases = [
    [{ uid: u }, /conn_id is required/],
    [{ uid: u, conn_id: 0 }, /conn_id is required/],
    [{ uid: u, conn_id: String(id) }, /"conn_id" must be an integer, got a string/],
    [{ uid: u, conn_id: id + 0.5 }, /"conn_id" must be an integer/],
    [{ uid: 7, conn_id: id }, /"uid" must be a string/],
    [{ uid: 'a@b', conn_id: id }, /uid is not a valid uid/],
    [{ uid: u, conn_id: id, node_id: 1002 }, /node_id 1002 is not this node/],
    [{ uid: u, conn_id: id, op_node_id: 7 }, /op_node_id 7 is not this node/],
    [{ uid: u, conn_id: id, node_id: -1 }, /"node_id" is out of range/],
    [{ uid: u, conn_id: id, op_node_id: 'x' }, /"op_node_id" must be an integer/],
    ['[1]', /JSON object/],
    ['{"conn_id":', /malformed JSON/],
    ['', /empty/],
  ];
  for (const path of ['/conn/kick', '/conn/remove']) {
    for (const [body, re] of cases) {
      const r = await h.srv.post(path, body);
      assert.equal(r.status, 400, `${path} ${JSON.stringify(body)}: ${r.text}`);
      assert.equal(r.json.status, 400);
      assert.match(r.json.msg, re, `${path} ${JSON.stringify(body)}`);
    }
  }
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(c.isClosed, false, 'still connected');
  assert.equal(disconnects(c).length, 0, 'no DISCONNECT');
  await c.ping();
  assert.deepEqual(await connIds(u), [id]);
});
