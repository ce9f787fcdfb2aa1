// HTTP API conventions: /health, /route, CORS headers and OPTIONS preflight, 404 for unknown
// paths, /channel/max_message_seq (http-api.md §2, §4.1, §4.5).

import assert from 'node:assert/strict';
import { useServer, uid } from './lib/harness.mjs';

const h = useServer();

h.test('GET /health -> 200 {"status":"ok"}', async () => {
  const r = await h.srv.get('/health');
  assert.equal(r.status, 200);
  assert.deepEqual(r.json, { status: 'ok' });
});

h.test('GET /route returns the client addresses', async () => {
  const r = await h.srv.get(`/route?uid=${uid('r')}`);
  assert.equal(r.status, 200, r.text);
  assert.equal(typeof r.json.tcp_addr, 'string');
  assert.ok(r.json.tcp_addr.endsWith(`:${h.srv.tcpPort}`), `tcp_addr ${r.json.tcp_addr}`);
  assert.ok(r.json.ws_addr.startsWith('ws://') && r.json.ws_addr.endsWith(`:${h.srv.wsPort}`), `ws_addr ${r.json.ws_addr}`);
  assert.equal(r.json.wss_addr, '');
});

h.test('CORS: every response has the headers; OPTIONS preflight -> 204', async () => {
  const r = await h.srv.get('/health');
  assert.equal(r.headers.get('access-control-allow-origin'), '*');
  const o = await h.srv.http('OPTIONS', '/message/send', undefined, { headers: { origin: 'http://example.test', 'access-control-request-method': 'POST' } });
  assert.equal(o.status, 204);
  assert.equal(o.headers.get('access-control-allow-origin'), '*');
  assert.match(o.headers.get('access-control-allow-methods') ?? '', /POST/);
  assert.match(o.headers.get('access-control-allow-headers') ?? '', /token/i);
});

h.test('unknown path and wrong method -> 404', async () => {
  assert.equal((await h.srv.get('/definitely/not/here')).status, 404);
  assert.equal((await h.srv.get('/message/send')).status, 404, 'GET on a POST route is 404 (no 405)');
});

h.test('GET /channel/max_message_seq follows sends', async () => {
  const a = uid('ma'); const b = uid('mb');
  let r = await h.srv.get(`/channel/max_message_seq?channel_id=${b}&channel_type=1&login_uid=${a}`);
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { message_seq: 0 });
  const ca = await h.login(a);
  for (let i = 0; i < 3; i++) await ca.send({ channelId: b, channelType: 1, payload: { type: 1, content: `${i}` } });
  r = await h.srv.get(`/channel/max_message_seq?channel_id=${b}&channel_type=1&login_uid=${a}`);
  assert.deepEqual(r.json, { message_seq: 3 });
  r = await h.srv.get(`/channel/max_message_seq?channel_id=${a}&channel_type=1&login_uid=${b}`);
  assert.deepEqual(r.json, { message_seq: 3 }, 'same person channel from the other side');
});
