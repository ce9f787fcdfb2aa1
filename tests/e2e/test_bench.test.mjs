// The load generator's own correctness on a tiny run (issue 4): magpie-bench drives the test
// server with small send, fanout, person and mixed workloads for about a second each, and its
// machine-readable report (--json) must show acknowledged sends, the deliveries owed, and
// lost 0 / duplicated 0 / errors 0, with exit status 0. No figure is asserted beyond "non-zero":
// tests never assert speed.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { useServer } from './lib/harness.mjs';
import { MAGPIE_BIN } from './lib/server.mjs';

const BENCH_BIN = path.join(path.dirname(MAGPIE_BIN), 'bench', 'magpie-bench');
const h = useServer();

/** Run magpie-bench against the test server; resolve {code, stdout, stderr, result}. */
function runBench(args, timeoutMs = 20000, onStderr = () => {}) {
  const full = [
    '--addr', `127.0.0.1:${h.srv.tcpPort}`,
    '--api', h.srv.httpBase,
    '--server-pid', String(h.srv.proc.pid),
    '--warmup', '0.3', '--duration', '1', '--drain', '3',
    '--json', ...args,
  ];
  return new Promise((resolve, reject) => {
    const p = spawn(BENCH_BIN, full, { stdio: ['ignore', 'pipe', 'pipe'] });
    p.stderr.on('data', (d) => onStderr(String(d)));
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('error', (e) => { clearTimeout(timer); reject(e); });
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      const line = stdout.trim().split('\n').filter((l) => l.startsWith('{')).pop();
      let result = null;
      try { result = line ? JSON.parse(line) : null; } catch { /* reported below */ }
      resolve({ code, signal, stdout, stderr, result, cmd: `${BENCH_BIN} ${full.join(' ')}` });
    });
  });
}

function assertClean(r, { deliveries }) {
  const ctx = `\n$ ${r.cmd}\nexit ${r.code} ${r.signal ?? ''}\nstdout:\n${r.stdout}\nstderr (tail):\n${r.stderr.slice(-3000)}`;
  assert.ok(r.result, `a JSON report line on stdout${ctx}`);
  const j = r.result;
  assert.equal(r.code, 0, `exit status 0${ctx}`);
  assert.equal(j.aborted, null, `not aborted${ctx}`);
  assert.equal(j.conn_failed, 0, `every connection came up${ctx}`);
  assert.equal(j.conn_ok, j.connections, `conn_ok = connections${ctx}`);
  assert.ok(j.acked > 0 && j.acked_in_window > 0 && j.sends_per_s > 0, `SENDs acknowledged${ctx}`);
  assert.equal(j.acked, j.sent, `every SEND acknowledged after the drain${ctx}`);
  assert.ok(j.sendack_ms && j.sendack_ms.n > 0, `SENDACK latency measured${ctx}`);
  if (deliveries) {
    assert.ok(j.deliveries > 0 && j.deliveries_per_s > 0, `RECVs delivered${ctx}`);
    assert.equal(j.deliveries, j.deliveries_owed, `every owed delivery arrived${ctx}`);
    assert.ok(j.e2e_ms && j.e2e_ms.n > 0, `end-to-end latency measured${ctx}`);
  } else {
    assert.equal(j.deliveries, 0, `no deliveries expected${ctx}`);
  }
  assert.equal(j.lost, 0, `lost 0${ctx}`);
  assert.equal(j.duplicated, 0, `duplicated 0${ctx}`);
  assert.equal(j.errors, 0, `errors 0${ctx}`);
  assert.ok(j.server_rss_kib > 0, `server RSS read from /proc${ctx}`);
}

h.test('magpie-bench is built next to the server', () => {
  assert.ok(fs.existsSync(BENCH_BIN), `${BENCH_BIN} exists (built with the project)`);
});

h.test('send: 5 groups of 10, acknowledged, no loss', async () => {
  const r = await runBench(['--workload', 'send', '--groups', '5', '--members', '10', '--window', '4']);
  assertClean(r, { deliveries: false });
  assert.equal(r.result.connections, 5);
});

h.test('fanout: 1 group of 50 with 20 online, every RECV delivered once', async () => {
  const r = await runBench(['--workload', 'fanout', '--members', '50', '--online', '20', '--window', '4']);
  assertClean(r, { deliveries: true });
  assert.equal(r.result.connections, 21);
  assert.equal(r.result.deliveries, r.result.acked * 20, 'each acknowledged message reached all 20 receivers');
  assert.equal(r.result.msgkey_checked, r.result.recvs, 'by default every RECV\'s msgKey is checked');
});

h.test('fanout with --verify-every 4: a quarter of the msgKeys checked, still nothing lost', async () => {
  const r = await runBench(['--workload', 'fanout', '--members', '30', '--online', '10', '--window', '4',
    '--verify-every', '4']);
  assertClean(r, { deliveries: true });
  const { recvs, msgkey_checked: checked } = r.result;
  assert.ok(recvs >= r.result.deliveries, 'every RECV counted');
  // one in four per load thread, counting from each thread's first RECV
  assert.ok(checked >= Math.floor(recvs / 4) && checked <= Math.ceil(recvs / 4) + 1,
    `msgKey checked on about 1 in 4 RECVs (${checked} of ${recvs})`);
});

h.test('person: 10 pairs over 2 threads and 2 source addresses', async () => {
  const r = await runBench(['--workload', 'person', '--pairs', '10', '--window', '4', '--threads', '2', '--sources', '2']);
  assertClean(r, { deliveries: true });
  assert.equal(r.result.deliveries, r.result.acked, 'one delivery per acknowledged person message');
});

h.test('mixed: pairs, small groups and a big group at a paced rate', async () => {
  const r = await runBench(['--workload', 'mixed', '--pairs', '5', '--groups', '3', '--group-size', '5',
    '--members', '40', '--online', '10', '--window', '4', '--rate', '500']);
  assertClean(r, { deliveries: true });
  for (const [name, part] of Object.entries(r.result.parts)) {
    assert.ok(part.sends_per_s > 0, `part ${name} sent`);
    assert.equal(part.lost, 0, `part ${name} lost 0`);
  }
});

/** Ack log lines "channel_id channel_type client_msg_no message_id message_seq from_uid". */
function ackLines(file) {
  const text = fs.readFileSync(file, 'utf8');
  assert.ok(text === '' || text.endsWith('\n'), 'the ack log ends with a whole line');
  return text.split('\n').filter(Boolean).map((l) => {
    const f = l.split(' ');
    assert.equal(f.length, 6, `ack log line "${l}"`);
    return { channel: f[0], type: Number(f[1]), cmn: f[2], id: f[3], seq: Number(f[4]), from: f[5] };
  });
}

h.test('--ack-log: one line per SENDACK, naming the stored message', async () => {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'bench-acks-')), 'acks.log');
  const prefix = `al${Date.now() % 100000}_`;
  const r = await runBench(['--workload', 'person', '--pairs', '3', '--window', '4', '--threads', '2', '--prefix', prefix, '--ack-log', file]);
  assertClean(r, { deliveries: true });
  const lines = ackLines(file);
  assert.equal(lines.length, r.result.acked, 'as many lines as SENDACKs');
  const pair0 = lines.filter((l) => l.channel === `${prefix}b0`).sort((a, b) => a.seq - b.seq);
  assert.ok(pair0.length > 0);
  pair0.forEach((l, i) => {
    assert.deepEqual([l.type, l.seq, l.from], [1, i + 1, `${prefix}a0`]);
    assert.match(l.cmn, new RegExp(`^[0-9a-f]{16}-${prefix}-0-${i + 1}$`), 'random-looking head, then the name');
  });
  assert.equal(new Set(pair0.map((l) => l.cmn.slice(0, 16))).size, pair0.length, 'no two heads alike');
  const stored = []; // paged: a fast server stores more than one page (10,000) in the run
  for (let start = 1; ; start = stored.length + 1) {
    const sync = await h.srv.post('/channel/messagesync', { login_uid: `${prefix}a0`, channel_id: `${prefix}b0`, channel_type: 1, start_message_seq: start, end_message_seq: 0, limit: 10000, pull_mode: 1 });
    stored.push(...sync.json.messages.map((m) => [m.message_seq, m.client_msg_no, m.message_idstr]));
    if (sync.json.messages.length < 10000) break;
  }
  assert.deepEqual(stored, pair0.map((l) => [l.seq, l.cmn, l.id]));
  fs.rmSync(path.dirname(file), { recursive: true, force: true });
});

h.test('--cmn seq: client_msg_no is prefix-connection-seq, without the random head', async () => {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'bench-acks-')), 'acks.log');
  const prefix = `cs${Date.now() % 100000}_`;
  const r = await runBench(['--workload', 'person', '--pairs', '2', '--window', '2', '--duration', '0.5', '--prefix', prefix, '--cmn', 'seq', '--ack-log', file]);
  assertClean(r, { deliveries: true });
  const pair0 = ackLines(file).filter((l) => l.channel === `${prefix}b0`).sort((a, b) => a.seq - b.seq);
  assert.ok(pair0.length > 0);
  pair0.forEach((l, i) => assert.equal(l.cmn, `${prefix}-0-${i + 1}`));
  fs.rmSync(path.dirname(file), { recursive: true, force: true });
});

h.test('the server killed during the load: the bench reports what it got and exits with status 4', async () => {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'bench-acks-')), 'acks.log');
  let ready;
  const loadRunning = new Promise((resolve) => { ready = resolve; });
  let err = '';
  const run = runBench(['--workload', 'person', '--pairs', '5', '--window', '4', '--rate', '2000', '--duration', '20', '--ack-log', file], 30000,
    (d) => { err += d; if (/connections ready/.test(err)) ready(); });
  await loadRunning;
  await new Promise((res) => setTimeout(res, 700));
  await h.srv.kill9();
  const r = await run;
  await h.srv.restart();
  const ctx = `\nexit ${r.code} ${r.signal ?? ''}\nstdout:\n${r.stdout}\nstderr (tail):\n${r.stderr.slice(-2000)}`;
  assert.equal(r.code, 4, `exit status 4${ctx}`);
  assert.match(r.result?.aborted ?? '', /server went away/, ctx);
  assert.ok(r.result.acked > 0, `SENDs were acknowledged before the kill${ctx}`);
  assert.equal(ackLines(file).length, r.result.acked, 'every SENDACK handled is in the ack log');
  fs.rmSync(path.dirname(file), { recursive: true, force: true });
});
