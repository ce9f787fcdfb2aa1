// GET /connz and GET /varz (http-api.md §4.7): connection listing with WuKongIM's ConnInfo, sort
// keys and paging, gathered from every worker; server variables; and the /docs* endpoints as
// WuKongIM answers them in release mode (§4.1).

import assert from 'node:assert/strict';
import { useServer, uid } from './lib/harness.mjs';

const h = useServer();

const CONN_KEYS = ['id', 'uid', 'ip', 'port', 'last_activity', 'uptime', 'idle', 'pending_bytes', 'in_msgs', 'out_msgs',
  'in_msg_bytes', 'out_msg_bytes', 'in_packets', 'out_packets', 'in_packet_bytes', 'out_packet_bytes', 'device',
  'device_id', 'version', 'proxy_type_format', 'leader_id', 'node_id'];
const VARZ_KEYS = ['server_id', 'server_name', 'version', 'connections', 'user_handler_count', 'user_handler_conn_count',
  'uptime', 'goroutine', 'mem', 'cpu', 'in_msgs', 'out_msgs', 'in_bytes', 'out_bytes', 'slow_clients', 'retry_queue',
  'tcp_addr', 'ws_addr', 'wss_addr', 'manager_addr', 'manager_on', 'commit', 'commit_date', 'tree_state', 'api_url',
  'manager_uid', 'manager_token_on', 'conversation_cache_count', 'store', 'datasource', 'webhook'];
const RFC3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$/;
const DURATION = /^(\d+y)?(\d+d)?(\d+h)?(\d+m)?\d+s$/;

async function connz(query) {
  const r = await h.srv.get(`/connz?${query}`);
  assert.equal(r.status, 200, r.text);
  return r.json;
}

async function varz(query = '') {
  const r = await h.srv.get(`/varz${query}`);
  assert.equal(r.status, 200, r.text);
  return r.json;
}

function localPort(c) {
  return c.kind === 'tcp' ? c.transport.sock.localPort : c.transport.ws._socket.localPort;
}

async function sendN(from, to, n) {
  for (let i = 0; i < n; i++) {
    const ack = await from.send({ channelId: to, channelType: 1, payload: { type: 1, content: `m${i}` } });
    assert.equal(ack.reasonCode, 1);
  }
}

h.test('/connz lists authenticated connections with WuKongIM\'s ConnInfo', async () => {
  const tag = uid('cz');
  const a = await h.login(`${tag}a`, { deviceFlag: 0, deviceId: 'phone-1' });
  const b = await h.login(`${tag}b`, { deviceFlag: 1, deviceId: 'browser-1', transport: 'ws' });
  await h.tcp(); // pre-auth: not listed
  const t0 = Date.now();
  const z = await connz(`uid=${tag}`);
  assert.deepEqual(Object.keys(z), ['connections', 'now', 'total', 'offset', 'limit']);
  assert.match(z.now, RFC3339);
  assert.ok(Math.abs(Date.parse(z.now) - t0) < 5000, 'now is the current time');
  assert.equal(z.total, 2);
  assert.equal(z.offset, 0);
  assert.equal(z.limit, 20);
  assert.equal(z.connections.length, 2);
  const ca = z.connections.find((c) => c.uid === `${tag}a`);
  const cb = z.connections.find((c) => c.uid === `${tag}b`);
  for (const c of z.connections) {
    assert.deepEqual(Object.keys(c), CONN_KEYS);
    assert.ok(Number.isSafeInteger(c.id) && c.id > 0);
    assert.equal(c.ip, '127.0.0.1');
    assert.match(c.last_activity, RFC3339);
    assert.ok(Math.abs(Date.parse(c.last_activity) - t0) < 5000);
    assert.match(c.uptime, DURATION);
    assert.match(c.idle, DURATION);
    assert.equal(c.version, 4);
    assert.equal(c.proxy_type_format, '本地连接');
    assert.equal(c.leader_id, 1001);
    assert.equal(c.node_id, 1001);
    assert.equal(c.pending_bytes, 0);
    assert.equal(c.in_msgs, 0);
    assert.equal(c.out_msgs, 0);
    assert.equal(c.in_packets, 1, 'the CONNECT');
    assert.equal(c.out_packets, 1, 'the CONNACK');
    assert.ok(c.in_packet_bytes > 0 && c.out_packet_bytes > 0);
  }
  assert.ok(ca && cb);
  assert.ok(z.connections[0].id < z.connections[1].id, 'id order');
  assert.equal(ca.port, localPort(a));
  assert.equal(ca.device, 'App(从)'); // tokenAuthOn is off: every device is a slave
  assert.equal(ca.device_id, 'phone-1');
  assert.equal(cb.port, localPort(b));
  assert.equal(cb.device, 'Web(从)');
  assert.equal(cb.device_id, 'browser-1');
});

h.test('/connz counts messages, packets and bytes per connection', async () => {
  const tag = uid('cc');
  const a = await h.login(`${tag}s`);
  const b = await h.login(`${tag}r`);
  await sendN(a, `${tag}r`, 3);
  for (let i = 0; i < 3; i++) await b.waitRecv();
  await a.ping();
  const z = await connz(`uid=${tag}&sort=inMsgDesc`);
  assert.equal(z.total, 2);
  const [s, r] = z.connections;
  assert.equal(s.uid, `${tag}s`);
  assert.equal(s.in_msgs, 3);
  assert.equal(s.in_packets, 5, 'CONNECT, 3 SEND, PING');
  assert.ok(s.in_msg_bytes > 0 && s.in_msg_bytes < s.in_packet_bytes);
  assert.equal(s.out_packets, 5, 'CONNACK, 3 SENDACK, PONG');
  assert.equal(s.out_msgs, 0);
  assert.equal(s.out_msg_bytes, 0);
  assert.equal(r.uid, `${tag}r`);
  assert.equal(r.out_msgs, 3);
  assert.ok(r.out_msg_bytes > 0 && r.out_msg_bytes < r.out_packet_bytes);
  // RECVACKs were sent by the client (autoAck); give them a moment to be read
  for (let i = 0; i < 40; i++) {
    const again = (await connz(`uid=${tag}r`)).connections[0];
    if (again.in_packets === 4) break;
    await new Promise((res) => setTimeout(res, 50));
  }
  assert.equal((await connz(`uid=${tag}r`)).connections[0].in_packets, 4, 'CONNECT and 3 RECVACK');
});

h.test('/connz sorts, pages and filters by uid substring', async () => {
  const tag = uid('cs');
  const pause = () => new Promise((r) => setTimeout(r, 5)); // distinct start times for sort=uptime
  const peer = await h.login(`${tag}peer`);
  const senders = [];
  for (let i = 0; i < 4; i++) { await pause(); senders.push(await h.login(`${tag}x${i}`)); }
  for (let i = 0; i < 4; i++) await sendN(senders[i], `${tag}peer`, i + 1);
  await peer.collect(() => true, 100);
  const all = await connz(`uid=${tag}&limit=10`);
  assert.equal(all.total, 5);
  const ids = all.connections.map((c) => c.id);
  assert.deepEqual(ids, [...ids].sort((x, y) => x - y), 'default order: id');
  const uids = (z) => z.connections.map((c) => c.uid);
  assert.deepEqual(uids(await connz(`uid=${tag}x&sort=inMsgDesc`)), [3, 2, 1, 0].map((i) => `${tag}x${i}`));
  assert.deepEqual(uids(await connz(`uid=${tag}x&sort=inMsg`)), [0, 1, 2, 3].map((i) => `${tag}x${i}`));
  assert.deepEqual(uids(await connz(`uid=${tag}&sort=outMsgDesc&limit=1`)), [`${tag}peer`]);
  assert.deepEqual((await connz(`uid=${tag}&sort=idDesc`)).connections.map((c) => c.id), [...ids].reverse());
  for (const key of ['inMsgBytes', 'outMsgBytes', 'inPacket', 'outPacket', 'inPacketBytes', 'outPacketBytes',
    'pendingBytes', 'uptime', 'idle', 'protoVersion']) {
    for (const sort of [key, `${key}Desc`]) assert.equal((await connz(`uid=${tag}&sort=${sort}`)).connections.length, 5, sort);
  }
  const byAge = [`${tag}peer`, ...[0, 1, 2, 3].map((i) => `${tag}x${i}`)];
  assert.deepEqual(uids(await connz(`uid=${tag}&sort=uptime`)), byAge, 'uptime: oldest first');
  assert.deepEqual(uids(await connz(`uid=${tag}&sort=uptimeDesc`)), [...byAge].reverse());
  const ip = await connz(`uid=${tag}x&sort=inPacketBytesDesc`);
  assert.deepEqual(uids(ip), [3, 2, 1, 0].map((i) => `${tag}x${i}`));
  // paging
  const page = await connz(`uid=${tag}&offset=1&limit=2`);
  assert.equal(page.total, 5);
  assert.equal(page.offset, 1);
  assert.equal(page.limit, 2);
  assert.deepEqual(page.connections.map((c) => c.id), ids.slice(1, 3));
  const past = await connz(`uid=${tag}&offset=99`);
  assert.deepEqual(past.connections, []);
  assert.equal(past.total, 5);
  // lenient numbers, as WuKongIM (parse errors mean 0; limit 0 means 20)
  const lenient = await connz(`uid=${tag}&offset=abc&limit=-3&sort=nonsense`);
  assert.equal(lenient.offset, 0);
  assert.equal(lenient.limit, 20);
  assert.deepEqual(lenient.connections.map((c) => c.id), ids);
  assert.equal((await connz(`uid=${tag}&offset=-4`)).offset, 0);
  assert.equal((await connz('limit=100000')).limit, 10000, 'limit is capped');
  const far = await connz(`uid=${tag}&offset=9223372036854775807`);
  assert.deepEqual(far.connections, []);
  assert.equal(far.total, 5);
  const none = await connz(`uid=${uid('zz')}`);
  assert.deepEqual(none.connections, []);
  assert.equal(none.total, 0);
  assert.equal((await connz(`uid=${tag}&node_id=1001`)).total, 5);
});

h.test('/connz and /varz refuse another node_id', async () => {
  for (const path of ['/connz?node_id=1002', '/varz?node_id=7']) {
    const r = await h.srv.get(path);
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json.status, 400);
    assert.match(r.json.msg, /is not this node/);
  }
});

h.test('/varz reports the server', async () => {
  const before = await varz();
  assert.deepEqual(Object.keys(before), VARZ_KEYS);
  assert.equal(before.datasource.enabled, false, 'no datasource configured');
  assert.equal(before.datasource.requests.getSubscribers.ok, 0);
  assert.equal(before.webhook.enabled, false, 'no webhook configured');
  assert.deepEqual(before.webhook['msg.notify'], { sent: 0, failed: 0, dropped: 0, pending: 0 });
  assert.equal(before.server_id, '1001');
  assert.equal(before.server_name, 'Magpie');
  assert.match(before.version, /^\d+\.\d+\.\d+/);
  assert.match(before.uptime, DURATION);
  assert.ok(before.goroutine >= h.srv.workers + 1, 'threads');
  assert.ok(before.mem > 1 << 20, 'RSS in bytes');
  assert.equal(typeof before.cpu, 'number');
  assert.ok(before.cpu >= 0);
  assert.match((await h.srv.get('/varz')).text, /"cpu":\d+\.\d,/, 'one decimal, printed as Go prints it');
  assert.equal(before.tcp_addr, `127.0.0.1:${h.srv.tcpPort}`);
  assert.equal(before.ws_addr, `ws://127.0.0.1:${h.srv.wsPort}`);
  assert.equal(before.wss_addr, '');
  assert.match(before.api_url, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.equal(before.manager_on, 1, 'the monitor server is on by default');
  assert.equal(before.manager_addr, `127.0.0.1:${h.srv.managerPort}`);
  assert.equal(before.manager_uid, '____manager');
  assert.equal(before.manager_token_on, 0);
  assert.equal(before.conversation_cache_count, 0);

  const tag = uid('vz');
  const a = await h.login(`${tag}a`);
  const b = await h.login(`${tag}b`);
  await h.login(`${tag}b`, { transport: 'ws' });
  await h.tcp(); // pre-auth counts as a connection, not as a user
  await sendN(a, `${tag}b`, 2);
  await b.waitRecv(); await b.waitRecv();
  const after = await varz();
  assert.ok(after.connections >= before.connections + 4, `connections ${before.connections} -> ${after.connections}`);
  assert.ok(after.user_handler_count >= before.user_handler_count + 2);
  assert.ok(after.user_handler_conn_count >= before.user_handler_conn_count + 3);
  assert.ok(after.in_msgs >= before.in_msgs + 2);
  assert.ok(after.out_msgs >= before.out_msgs + 4, 'two RECVs to each of b\'s connections');
  assert.ok(after.in_bytes > before.in_bytes);
  assert.ok(after.out_bytes > before.out_bytes);
  assert.equal(after.conns, undefined, 'conns only with show=conn');
  // Magpie's addition: the group-commit writer's counters. The LMDB commit follows the
  // message log, so it may come a few ms after the RECVs.
  let stored = after;
  for (let i = 0; i < 100 && stored.store.ops < before.store.ops + 2; i++) {
    await new Promise((res) => setTimeout(res, 20));
    stored = await varz();
  }
  assert.ok(stored.store.ops >= before.store.ops + 2, 'the two messages were written');
  assert.ok(stored.store.commits > before.store.commits, 'in at least one more commit');
  assert.ok(after.store.largest_batch >= 1);
  assert.equal(after.store.commit_failures, 0);
  assert.ok(after.store.map_size > 0);

  // totals survive the connections that made them
  a.close();
  await new Promise((r) => setTimeout(r, 200));
  assert.ok((await varz()).in_msgs >= after.in_msgs);
});

h.test('/varz?show=conn lists the busiest connections', async () => {
  const tag = uid('vc');
  const a = await h.login(`${tag}a`);
  await h.login(`${tag}b`);
  await sendN(a, `${tag}b`, 50); // more than any other connection of this file
  const v = await varz('?show=conn&conn_limit=1');
  assert.equal(v.conns.length, 1);
  assert.deepEqual(Object.keys(v.conns[0]), CONN_KEYS);
  assert.equal(v.conns[0].uid, `${tag}a`);
  assert.equal(v.conns[0].in_msgs, 50);
  const d = await varz('?show=conn');
  assert.ok(d.conns.length >= 2 && d.conns.length <= 20);
  for (let i = 1; i < d.conns.length; i++) assert.ok(d.conns[i - 1].in_msgs >= d.conns[i].in_msgs, 'in_msgs descending');
  // conns sits where Go's struct puts it, right before conversation_cache_count
  const at = VARZ_KEYS.indexOf('conversation_cache_count');
  assert.deepEqual(Object.keys(d), [...VARZ_KEYS.slice(0, at), 'conns', ...VARZ_KEYS.slice(at)]);
});

h.test('/docs* answer as WuKongIM in release mode', async () => {
  for (const path of ['/docs', '/docs/', '/docs/openapi.json']) {
    const r = await h.srv.get(path);
    assert.equal(r.status, 403, path);
    assert.match(r.headers.get('content-type'), /application\/json/);
    assert.equal(r.headers.get('access-control-allow-origin'), '*');
    assert.deepEqual(Object.keys(r.json), ['error', 'message', 'mode', 'suggestion']);
    assert.equal(r.json.error, 'Documentation endpoints are disabled in release mode');
    assert.equal(r.json.mode, 'release');
  }
  const r = await h.srv.get('/docs/health');
  assert.equal(r.status, 200);
  assert.deepEqual(r.json, {
    description: 'Documentation service is disabled in release mode', mode: 'release', service: 'docs', status: 'disabled',
  });
  assert.equal((await h.srv.post('/docs', {})).status, 404, 'GET only');
});
