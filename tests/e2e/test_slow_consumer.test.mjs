// A receiver that stops reading must not stall the server: senders keep getting SENDACKs and other
// receivers keep getting RECVs while the stuck connection's output queue is bounded (DESIGN.md §3:
// per-connection output queue with a byte limit).

import assert from 'node:assert/strict';
import { useServer, uid } from './lib/harness.mjs';
import { REASON } from './lib/wkproto.mjs';

const h = useServer({ args: ['--outBufferLimit=1048576'] });

h.test('one stuck receiver does not block the sender or the other receivers', async () => {
  const a = uid('sa'); const fast = uid('sf'); const slow = uid('ss'); const g = uid('sg');
  const r = await h.srv.post('/channel', { channel_id: g, channel_type: 2, subscribers: [a, fast, slow] });
  assert.equal(r.status, 200, r.text);
  const cs = await h.login(slow);
  const cf = await h.login(fast, { transport: 'ws' });
  const ca = await h.login(a);
  cs.transport.sock.pause();   // stop reading: the kernel buffers fill, then the server's queue

  const N = 200;
  const content = 'z'.repeat(64 * 1024);
  const t0 = Date.now();
  for (let i = 0; i < N; i++) {
    const ack = await ca.send({ channelId: g, channelType: 2, payload: { type: 1, content, i } }, 5000);
    assert.equal(ack.reasonCode, REASON.SUCCESS, `message ${i}`);
  }
  const sendMs = Date.now() - t0;
  for (let i = 0; i < N; i++) {
    const m = await cf.waitRecv(() => true, 5000);
    assert.equal(m.json.i, i, 'fast receiver gets every message in order');
  }
  assert.ok(sendMs < 20000, `sending ${N} x 64 KB took ${sendMs} ms`);
  // The server is still responsive to new work.
  await h.assertHealthy('while a receiver is stuck');
  // ~17 MB of RECVs (more than the kernel socket buffers can absorb) against a 1 MiB output limit: the stuck connection must have been dropped
  // (its unread data is discarded when we resume reading, and the socket ends).
  cs.transport.sock.resume();
  assert.equal(await cs.waitClosed(5000), true, 'the stuck connection was closed when its output queue overflowed');
});
