// disableCMDMessageSync: true (http-api.md §4.5): /message/sync answers [] and /message/syncack
// does nothing, while command messages are still delivered to online members.

import assert from 'node:assert/strict';
import { useServer, uid, b64json } from './lib/harness.mjs';

const h = useServer({ args: ['--disableCMDMessageSync=true'] });

h.test('sync answers [] and syncack OK; online delivery unchanged', async () => {
  const a = uid('da'); const b = uid('db');
  const ca = await h.login(a);
  for (const to of [a, b]) {
    const r = await h.srv.post('/message/send', { from_uid: '', channel_id: to, channel_type: 1, header: { sync_once: 1 }, payload: b64json({ type: 99 }) });
    assert.equal(r.status, 200, r.text);
  }
  const got = await ca.waitRecv();
  assert.equal(got.syncOnce, true);
  const s = await h.srv.post('/message/sync', { uid: b, limit: 10 });
  assert.equal(s.status, 200);
  assert.deepEqual(s.json, []);
  const k = await h.srv.post('/message/syncack', { uid: b, last_message_seq: 1 });
  assert.deepEqual(k.json, { status: 200 });
  // Validation still applies.
  const bad = await h.srv.post('/message/sync', {});
  assert.equal(bad.status, 400);
});
