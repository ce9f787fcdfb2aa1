// POST /user/onlinestatus (http-api.md §4.2): one entry per live authenticated connection,
// gathered from the uid owners; and POST /user/update_plugin_no, stored per uid.

import assert from 'node:assert/strict';
import { useServer, uid } from './lib/harness.mjs';

const h = useServer();

async function online(body) {
  return h.srv.post('/user/onlinestatus', body);
}

/** Poll until fn() is true (the registry is updated asynchronously after a close). */
async function eventually(fn, what, ms = 3000) {
  const end = Date.now() + ms;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

h.test('one entry per connection, in request order; offline uids are absent', async () => {
  const a = uid('oa'); const b = uid('ob'); const c = uid('oc');
  await h.login(a, { deviceFlag: 0 });
  await h.login(a, { deviceFlag: 1, transport: 'ws' });
  await h.login(c, { deviceFlag: 2 });
  const r = await online([c, b, a]);
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, [
    { uid: c, device_flag: 2, online: 1 },
    { uid: a, device_flag: 0, online: 1 },
    { uid: a, device_flag: 1, online: 1 },
  ]);
  assert.equal(r.text, `[{"uid":"${c}","device_flag":2,"online":1},{"uid":"${a}","device_flag":0,"online":1},{"uid":"${a}","device_flag":1,"online":1}]`);
});

h.test('many uids across owners; a repeated uid is listed once', async () => {
  const users = Array.from({ length: 12 }, () => uid('om'));
  for (const u of users.slice(0, 6)) await h.login(u);
  const r = await online([...users, users[0], users[0]]);
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, users.slice(0, 6).map((u) => ({ uid: u, device_flag: 0, online: 1 })));
});

h.test('nobody online answers [], an empty or null list answers OK', async () => {
  let r = await online([uid('nobody')]);
  assert.equal(r.status, 200);
  assert.equal(r.text, '[]');
  r = await online([]);
  assert.equal(r.status, 200);
  assert.deepEqual(r.json, { status: 200 });
  r = await online('null');
  assert.equal(r.status, 200);
  assert.deepEqual(r.json, { status: 200 });
});

h.test('a closed or unauthenticated connection is not online', async () => {
  const u = uid('oc');
  const c = await h.login(u);
  assert.equal((await online([u])).json.length, 1);
  c.close();
  await eventually(async () => (await online([u])).text === '[]', 'the closed connection to leave');
  const raw = await h.tcp(); // connected socket, no CONNECT
  assert.equal(raw.isClosed, false);
  assert.equal((await online([u])).text, '[]');
});

h.test('bad input: 400 with a message', async () => {
  const cases = [
    ['{"uids":["a"]}', /array of strings/],
    ['[1,2]', /element 0/],
    ['["a",{"x":1}]', /element 1/],
    ['"a"', /array of strings/],
    ['[', /malformed JSON/],
    ['', /empty/],
    [JSON.stringify(Array.from({ length: 10001 }, (_, i) => `u${i}`)), /at most 10000 uids/],
  ];
  for (const [body, re] of cases) {
    const r = await online(body);
    assert.equal(r.status, 400, `${body.slice(0, 40)}: ${r.text}`);
    assert.equal(r.json.status, 400);
    assert.match(r.json.msg, re, body.slice(0, 40));
  }
  const max = await online(Array.from({ length: 10000 }, (_, i) => `u${i}`));
  assert.equal(max.status, 200, 'exactly 10000 uids is fine');
  assert.equal(max.text, '[]');
  await h.assertHealthy();
});

// ---- /user/update_plugin_no (Magpie stores the binding; it has no plugins to call)

h.test('/user/update_plugin_no stores the number and answers OK', async () => {
  const u = uid('pl');
  let r = await h.srv.post('/user/update_plugin_no', { uid: u, plugin_no: 'ai.assistant' });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { status: 200 });
  r = await h.srv.post('/user/update_plugin_no', { uid: u, plugin_no: '' });
  assert.equal(r.status, 200, 'an empty plugin_no unbinds');
  r = await h.srv.post('/user/update_plugin_no', { uid: u });
  assert.equal(r.status, 200, 'plugin_no may be left out');
});

h.test('/user/update_plugin_no bad input: 400', async () => {
  const cases = [
    [{ plugin_no: 'p' }, /uid is required/],
    [{ uid: '', plugin_no: 'p' }, /uid is required/],
    [{ uid: 'a@b', plugin_no: 'p' }, /uid must not contain/],
    [{ uid: 5, plugin_no: 'p' }, /"uid" must be a string/],
    [{ uid: 'u1', plugin_no: 7 }, /"plugin_no" must be a string/],
    [{ uid: 'u1', plugin_no: 'x'.repeat(129) }, /longer than 128/],
    ['[]', /JSON object/],
    ['{"uid":', /malformed JSON/],
  ];
  for (const [body, re] of cases) {
    const r = await h.srv.post('/user/update_plugin_no', body);
    assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.text}`);
    assert.match(r.json.msg, re);
  }
});
