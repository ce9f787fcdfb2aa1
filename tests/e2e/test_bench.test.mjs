// The load generator's own correctness on a tiny run (issue 4): magpie-bench drives the test
// server with small send, fanout, person and mixed workloads for about a second each, and its
// machine-readable report (--json) must show acknowledged sends, the deliveries owed, and
// lost 0 / duplicated 0 / errors 0, with exit status 0. No figure is asserted beyond "non-zero":
// tests never assert speed.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { useServer } from './lib/harness.mjs';
import { MAGPIE_BIN } from './lib/server.mjs';

const BENCH_BIN = path.join(path.dirname(MAGPIE_BIN), 'bench', 'magpie-bench');
const h = useServer();

/** Run magpie-bench against the test server; resolve {code, stdout, stderr, result}. */
function runBench(args, timeoutMs = 20000) {
  const full = [
    '--addr', `127.0.0.1:${h.srv.tcpPort}`,
    '--api', h.srv.httpBase,
    '--server-pid', String(h.srv.proc.pid),
    '--warmup', '0.3', '--duration', '1', '--drain', '3',
    '--json', ...args,
  ];
  return new Promise((resolve, reject) => {
    const p = spawn(BENCH_BIN, full, { stdio: ['ignore', 'pipe', 'pipe'] });
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
