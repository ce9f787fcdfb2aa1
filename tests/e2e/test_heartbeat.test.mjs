// Idle timeouts: client-driven heartbeats keep a connection alive; a silent authenticated one is
// closed after connIdleTime; a connection that never sends CONNECT is closed after preAuthTimeout
// (wire-protocol.md §8.3, §8.4).

import assert from 'node:assert/strict';
import { useServer, uid } from './lib/harness.mjs';
import { sleep } from './lib/wkproto.mjs';

const IDLE_MS = 2000;
const PREAUTH_MS = 1000;
const h = useServer({ args: ['--connIdleTime=2s', '--preAuthTimeout=1s'] });

async function closedAfter(c, startMs, limitMs) {
  const closed = await c.waitClosed(limitMs);
  return closed ? Date.now() - startMs : null;
}

h.test('pinging every 500 ms keeps TCP and WS connections alive for 5 s', async () => {
  const t = await h.login(uid('hb'), { transport: 'tcp' });
  const w = await h.login(uid('hb'), { transport: 'ws', version: 2 });
  const end = Date.now() + 5000;
  let pongs = 0;
  while (Date.now() < end) {
    await Promise.all([t.ping(1500), w.ping(1500)]);
    pongs += 2;
    await sleep(500);
  }
  assert.equal(t.isClosed, false, 'TCP connection still open');
  assert.equal(w.isClosed, false, 'WS connection still open');
  assert.ok(pongs >= 16, `every PING answered (${pongs} PONGs)`);
});

h.test('WebSocket control Ping frames alone also keep a WS connection alive', async () => {
  const w = await h.login(uid('cp'), { transport: 'ws' });
  const end = Date.now() + 4000;
  while (Date.now() < end) {
    w.transport.ws.ping();
    await sleep(500);
  }
  assert.equal(w.isClosed, false, 'control frames count as inbound activity');
  await w.ping();
});

h.test('sending messages (not only PINGs) also counts as activity', async () => {
  const a = uid('act'); const b = uid('act');
  const cb = await h.login(b);
  const ca = await h.login(a);
  const end = Date.now() + 3500;
  while (Date.now() < end) {
    await ca.send({ channelId: b, channelType: 1, payload: { type: 1, content: 'tick' } });
    await cb.ping();
    await sleep(600);
  }
  assert.equal(ca.isClosed, false, 'a sender that only sends SENDs stays connected');
});

h.test('a silent authenticated client is closed after connIdleTime (~2 s)', async () => {
  const c = await h.tcp();
  const w = await h.ws();
  await Promise.all([c.connect({ uid: uid('quiet') }), w.connect({ uid: uid('quiet'), version: 2 })]);
  const start = Date.now();
  const [tc, wc] = await Promise.all([closedAfter(c, start, IDLE_MS + 3000), closedAfter(w, start, IDLE_MS + 3000)]);
  assert.notEqual(tc, null, 'silent TCP client closed');
  assert.notEqual(wc, null, 'silent WS client closed');
  for (const [label, ms] of [['tcp', tc], ['ws', wc]]) {
    assert.ok(ms >= IDLE_MS * 0.75, `${label}: closed after ${ms} ms, not before ~connIdleTime`);
    assert.ok(ms <= IDLE_MS + 2500, `${label}: closed after ${ms} ms, within connIdleTime + slack`);
  }
});

h.test('a connection that never sends CONNECT is closed after preAuthTimeout (~1 s)', async () => {
  const start = Date.now();
  const c = await h.tcp();
  const w = await h.ws();
  const [tc, wc] = await Promise.all([closedAfter(c, start, PREAUTH_MS + 3000), closedAfter(w, start, PREAUTH_MS + 3000)]);
  assert.notEqual(tc, null, 'pre-auth TCP closed');
  assert.notEqual(wc, null, 'pre-auth WS closed');
  for (const [label, ms] of [['tcp', tc], ['ws', wc]]) {
    assert.ok(ms >= PREAUTH_MS * 0.7, `${label}: closed after ${ms} ms, not before ~preAuthTimeout`);
    assert.ok(ms <= PREAUTH_MS + 2500, `${label}: closed after ${ms} ms`);
  }
});

h.test('after the idle closes, new clients still work', async () => {
  await h.assertHealthy('post-idle');
});
