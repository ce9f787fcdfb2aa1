// GET /metrics on the manager port (docs/monitoring.md): a valid Prometheus exposition (every
// sample in a HELP/TYPE family, cumulative histograms ending in +Inf, counters that never
// decrease), and counters that follow real traffic exactly: SENDs, SENDACKs, deliveries, packets
// by type, connections by transport and device, the SENDACK latency and store histograms.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import { useServer, uid } from './lib/harness.mjs';
import { parseExposition, sampleValue, counterSamples } from './lib/prom.mjs';

const h = useServer();

async function scrape() {
  const r = await h.srv.get('/metrics', { base: h.srv.managerBase });
  assert.equal(r.status, 200, r.text);
  assert.match(r.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  return parseExposition(r.text);
}

const v = (fam, name, labels) => sampleValue(fam, name, labels) ?? assert.fail(`no sample ${name} ${JSON.stringify(labels)}`);

/** Every counter (and histogram series) of `after` is >= its value in `before`. */
function assertNoCounterDecreased(before, after) {
  const b = counterSamples(before);
  const a = counterSamples(after);
  for (const [k, val] of b) {
    assert.ok(a.has(k), `${k} disappeared`);
    assert.ok(a.get(k) >= val, `${k} decreased: ${val} -> ${a.get(k)}`);
  }
}

async function sendN(from, channelId, channelType, n, tag) {
  for (let i = 0; i < n; i++) {
    const ack = await from.send({ channelId, channelType, payload: { type: 1, content: `${tag} ${i}` } });
    assert.equal(ack.reasonCode, 1, 'SENDACK success');
  }
}

h.test('the exposition is valid and names the documented families', async () => {
  const fam = await scrape();
  for (const name of ['magpie_connections', 'magpie_clients', 'magpie_packets_received_total', 'magpie_packets_sent_total',
    'magpie_received_bytes_total', 'magpie_sent_bytes_total', 'magpie_sends_total', 'magpie_deliveries_total',
    'magpie_sendack_latency_seconds', 'magpie_store_commit_seconds', 'magpie_store_batch_ops', 'magpie_queue_depth',
    'magpie_memory_rss_bytes', 'magpie_memory_anon_bytes', 'magpie_datasource_requests_total',
    'magpie_webhook_events_total', 'magpie_log_lines_total', 'magpie_connections_refused_total', 'magpie_http_connections']) {
    assert.ok(fam.has(name), `family ${name}`);
  }
  for (const limit of ['maxConnections', 'connRateLimit', 'httpMaxConnections'])
    assert.equal(v(fam, 'magpie_connections_refused_total', { limit }), 0, `nothing refused by ${limit}`);
  assert.ok(v(fam, 'magpie_http_connections') >= 1, 'the scrape itself is an open HTTP connection');
  assert.equal(fam.get('magpie_sendack_latency_seconds').type, 'histogram');
  assert.equal(fam.get('magpie_sends_total').type, 'counter');
  assert.equal(fam.get('magpie_connections').type, 'gauge');
  assert.ok(v(fam, 'magpie_memory_rss_bytes') > 1 << 20, 'RSS in bytes');
  assert.ok(v(fam, 'magpie_memory_anon_bytes') > 0);
  assert.ok(v(fam, 'magpie_queue_depth', { queue: 'store' }) >= 0);
  assert.ok(v(fam, 'magpie_queue_depth', { queue: 'worker0' }) >= 0);
  assert.equal(v(fam, 'magpie_webhook_events_total', { event: 'msg.notify', result: 'ok' }), 0, 'no webhook configured');
  assert.equal(v(fam, 'magpie_datasource_requests_total', { cmd: 'getSubscribers', result: 'ok' }), 0);
});

h.test('/metrics is on the manager port only, and public there', async () => {
  const api = await h.srv.get('/metrics');
  assert.equal(api.status, 404, 'not on the API port (as WuKongIM)');
  const r = await fetch(`${h.srv.managerBase}/metrics`);
  assert.equal(r.status, 200, 'no token needed');
  await r.text();
});

h.test('person messages move sends, deliveries, packets by type and the latency histogram by exactly N', async () => {
  const N = 7;
  const a = uid('ma');
  const b = uid('mb');
  const before = await scrape();
  const cb = await h.login(b);
  const ca = await h.login(a);
  await sendN(ca, b, 1, N, 'person');
  for (let i = 0; i < N; i++) await cb.waitRecv((p) => p.json?.content === `person ${i}`);
  const after = await scrape();
  const d = (name, labels) => v(after, name, labels) - v(before, name, labels);
  assert.equal(d('magpie_sends_total', { result: 'ok' }), N, 'stored sends');
  assert.equal(d('magpie_sends_total', { result: 'refused' }), 0);
  assert.equal(d('magpie_deliveries_total'), N, 'one RECV per message to the one recipient');
  assert.equal(d('magpie_packets_received_total', { type: 'send' }), N);
  assert.equal(d('magpie_packets_received_total', { type: 'connect' }), 2);
  assert.equal(d('magpie_packets_sent_total', { type: 'connack' }), 2);
  assert.equal(d('magpie_packets_sent_total', { type: 'sendack' }), N);
  assert.equal(d('magpie_packets_sent_total', { type: 'recv' }), N);
  assert.ok(d('magpie_received_bytes_total', { type: 'send' }) > N * 20, 'SEND bytes counted');
  assert.ok(d('magpie_sent_bytes_total', { type: 'recv' }) > N * 20, 'RECV bytes counted');
  assert.equal(d('magpie_sendack_latency_seconds_count'), N, 'one latency observation per SENDACK');
  assert.ok(d('magpie_sendack_latency_seconds_sum') > 0, 'latencies add up to more than nothing');
  assertNoCounterDecreased(before, after);
  // The LMDB commit follows the message log (SENDACK and RECV do not wait for it; docs/reliability.md)
  let committed = after;
  const dc = (name) => v(committed, name) - v(before, name);
  for (let i = 0; i < 100 && !(dc('magpie_store_batch_ops_sum') >= N); i++) {
    await new Promise((res) => setTimeout(res, 20));
    committed = await scrape();
  }
  assert.ok(dc('magpie_store_commit_seconds_count') >= 1, 'the store committed');
  assert.ok(dc('magpie_store_batch_ops_sum') >= N, 'at least one store op per message');
  assert.equal(dc('magpie_store_log_records_total'), N, 'each message made durable in the message log first');
  assert.ok(dc('magpie_store_log_flush_seconds_count') >= 1 && dc('magpie_store_log_flush_seconds_count') <= N);

  // the RECVACKs come in (autoAck) and are counted too
  const acked = await scrape();
  assert.ok(v(acked, 'magpie_packets_received_total', { type: 'recvack' }) - v(before, 'magpie_packets_received_total', { type: 'recvack' }) <= N);
});

h.test('group messages: deliveries grow by N per online member', async () => {
  const N = 4;
  const g = uid('mg');
  const members = [uid('m1'), uid('m2'), uid('m3')];
  const r = await h.srv.post('/channel', { channel_id: g, channel_type: 2, subscribers: members });
  assert.equal(r.status, 200, r.text);
  const clients = [];
  for (const m of members) clients.push(await h.login(m));
  const before = await scrape();
  await sendN(clients[0], g, 2, N, 'group');
  for (const c of clients.slice(1)) for (let i = 0; i < N; i++) await c.waitRecv((p) => p.json?.content === `group ${i}`);
  const after = await scrape();
  const d = (name, labels) => v(after, name, labels) - v(before, name, labels);
  assert.equal(d('magpie_sends_total', { result: 'ok' }), N);
  assert.equal(d('magpie_deliveries_total'), 2 * N, 'every message to the two other members');
  assert.equal(d('magpie_packets_sent_total', { type: 'recv' }), 2 * N);
  assertNoCounterDecreased(before, after);
});

h.test('refused SENDs are counted as refused', async () => {
  const a = uid('mr');
  const ca = await h.login(a);
  const before = await scrape();
  // a group that does not exist: SENDACK with a refusal reason, nothing stored
  const ack = await ca.send({ channelId: uid('nogroup'), channelType: 2, payload: { type: 1, content: 'x' } });
  assert.notEqual(ack.reasonCode, 1);
  const after = await scrape();
  assert.equal(v(after, 'magpie_sends_total', { result: 'refused' }) - v(before, 'magpie_sends_total', { result: 'refused' }), 1);
  assert.equal(v(after, 'magpie_sends_total', { result: 'ok' }) - v(before, 'magpie_sends_total', { result: 'ok' }), 0);
});

h.test('connections are gauges by transport and device flag', async () => {
  const before = await scrape();
  const a = uid('mc');
  const tcp = await h.login(a, { deviceFlag: 0 });
  const ws = await h.login(uid('mw'), { transport: 'ws', deviceFlag: 1 });
  const pre = await h.tcp(); // not authenticated: a connection, not a client
  let mid = await scrape();
  const d = (fam, name, labels) => v(fam, name, labels) - v(before, name, labels);
  assert.equal(d(mid, 'magpie_connections', { transport: 'tcp' }), 2);
  assert.equal(d(mid, 'magpie_connections', { transport: 'ws' }), 1);
  assert.equal(d(mid, 'magpie_clients', { device: 'app' }), 1);
  assert.equal(d(mid, 'magpie_clients', { device: 'web' }), 1);
  assert.ok(v(mid, 'magpie_online_users') >= 2);
  tcp.close(); ws.close(); pre.close();
  // gauges go back down once the server has seen the closes
  for (let i = 0; i < 50; i++) {
    mid = await scrape();
    if (d(mid, 'magpie_connections', { transport: 'tcp' }) === 0 && d(mid, 'magpie_connections', { transport: 'ws' }) === 0) break;
    await new Promise((res) => setTimeout(res, 50));
  }
  assert.equal(d(mid, 'magpie_connections', { transport: 'tcp' }), 0);
  assert.equal(d(mid, 'magpie_clients', { device: 'web' }), 0);
});

h.test('the Grafana dashboard (deploy/grafana/magpie.json) queries only series the server exports', async () => {
  const dash = JSON.parse(fs.readFileSync(new URL('../../deploy/grafana/magpie.json', import.meta.url), 'utf8'));
  const fam = await scrape();
  const exported = new Set();
  for (const [name, f] of fam) for (const s of f.samples) { exported.add(name); exported.add(s.name); }
  const panels = dash.panels.filter((p) => p.type !== 'row');
  assert.ok(panels.length >= 10, 'a dashboard, not a stub');
  const used = new Set();
  for (const p of panels) {
    assert.ok(p.targets?.length > 0, `panel "${p.title}" has queries`);
    for (const t of p.targets) {
      const names = t.expr.match(/\bmagpie_[a-z0-9_]+/g) || [];
      assert.ok(names.length > 0, `"${p.title}" queries a magpie series: ${t.expr}`);
      for (const n of names) {
        assert.ok(exported.has(n), `"${p.title}" queries ${n}, which /metrics does not export`);
        used.add(n);
      }
      // every label matcher names a label the series really has
      for (const [, n, body] of t.expr.matchAll(/(magpie_[a-z0-9_]+)\{([^}]*)\}/g)) {
        const f = [...fam.values()].find((x) => x.samples.some((s) => s.name === n));
        for (const [, label] of body.matchAll(/([a-z_]+)=~?"/g)) {
          if (label === 'instance') continue; // added by Prometheus at scrape time
          assert.ok(f.samples.some((s) => s.name === n && label in s.labels), `${n} has no label ${label}`);
        }
      }
    }
  }
  for (const must of ['magpie_sendack_latency_seconds_bucket', 'magpie_store_commit_seconds_bucket', 'magpie_connections',
    'magpie_sends_total', 'magpie_deliveries_total', 'magpie_queue_depth', 'magpie_webhook_events_total', 'magpie_memory_anon_bytes'])
    assert.ok(used.has(must), `the dashboard shows ${must}`);
});
