#!/usr/bin/env node
// crash.mjs - crash safety under load. Starts magpie on its own ports and data dir, then
// repeats: magpie-bench `mixed` load with --ack-log (a fresh --prefix per cycle), SIGKILL the
// server at a random moment, let the bench notice (exit status 4), restart the server on the
// same data dir, and verify through the HTTP API (verify.mjs):
//   * this cycle's channels in full: every acknowledged message stored with the acknowledged
//     message_seq, client_msg_no and message_id; seqs 1..max contiguous, no duplicates, each
//     the sender's k-th SEND; conversations and unread counts of sender and readers;
//     then each channel's next message (/message/send) must get the stored max + 1;
//   * every earlier cycle's channels: unchanged last seq and newest message each cycle, and
//     the full check again every --full-every cycles and after the last cycle.
// Any failure stops the run with exit status 1 and keeps the work dir. See README.md.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { Api, chanKey, planChannels, pool, quickCheck, readAckLog, sendNext, verifyChannel } from './verify.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '..', '..');

const USAGE = `usage: node tests/crash/crash.mjs [options]
  --cycles N        kill/restart cycles (default 20)
  --seed S          seed of the random kill times (default: random; printed)
  --kill-min S      earliest kill, seconds after the load started (default 0.3)
  --kill-max S      latest kill (default 3)
  --full-every K    full re-check of all earlier cycles every K cycles (default 10; 0 = only
                    at the end); the other cycles re-check them quickly
  --rate R          bench --rate: SENDs per second in total (default 0: closed loop, each sender keeps 16 SENDs in flight)
  --pairs N         person pairs per cycle (default 50)
  --groups N        groups per cycle (default 20), of --group-size members (default 10)
  --big-members N   members of the big group (default 20), --big-online N of them online (default 5)
  --workers N       server --workers (default 2)
  --port-base P     server ports P (tcp), P+1 (ws), P+2 (http) (default: free ports)
  --dir DIR         work dir: data/, acks/, logs (default: a new /tmp/crash-XXXXXX)
  --keep            keep the work dir after a successful run (it is always kept on failure)
  --bin PATH        server binary (default build/magpie or $MAGPIE_BIN)
  --bench PATH      bench binary (default build/bench/magpie-bench or $MAGPIE_BENCH)`;

function parseArgs(argv) {
  const o = {
    cycles: 20, seed: Math.floor(Math.random() * 2 ** 31), killMin: 0.3, killMax: 3, fullEvery: 10, rate: 0,
    pairs: 50, groups: 20, groupSize: 10, bigMembers: 20, bigOnline: 5, workers: 2, portBase: 0, dir: '', keep: false,
    bin: process.env.MAGPIE_BIN || path.join(REPO, 'build', 'magpie'),
    bench: process.env.MAGPIE_BENCH || path.join(REPO, 'build', 'bench', 'magpie-bench'),
  };
  const num = { cycles: 'cycles', seed: 'seed', 'kill-min': 'killMin', 'kill-max': 'killMax', 'full-every': 'fullEvery', rate: 'rate', pairs: 'pairs', groups: 'groups', 'group-size': 'groupSize', 'big-members': 'bigMembers', 'big-online': 'bigOnline', workers: 'workers', 'port-base': 'portBase' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const name = a.replace(/^--/, '').split('=')[0];
    const val = () => (a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv[++i]);
    if (name === 'help') { console.log(USAGE); process.exit(0); }
    if (name === 'keep') o.keep = true;
    else if (name === 'dir' || name === 'bin' || name === 'bench') o[name] = val();
    else if (num[name]) {
      const v = Number(val());
      if (!Number.isFinite(v) || v < 0) { console.error(`--${name}: want a number >= 0\n${USAGE}`); process.exit(2); }
      o[num[name]] = v;
    } else { console.error(`unknown option ${a}\n${USAGE}`); process.exit(2); }
  }
  if (o.killMax < o.killMin || o.cycles < 1 || o.bigOnline + 1 > o.bigMembers || o.groupSize < 2) {
    console.error(`bad options: need kill-min <= kill-max, cycles >= 1, big-online < big-members, group-size >= 2\n${USAGE}`);
    process.exit(2);
  }
  return o;
}

/** mulberry32: the kill times are reproducible from --seed. */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
}

function tcpProbe(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    const done = (ok) => { clearTimeout(t); s.destroy(); resolve(ok); };
    const t = setTimeout(() => done(false), 500);
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/** A child process with its exit as a promise; stdout/stderr appended to files. */
function launch(bin, args, outFile, errFile) {
  const out = fs.openSync(outFile, 'a');
  const err = fs.openSync(errFile, 'a');
  const p = spawn(bin, args, { stdio: ['ignore', out, err] });
  fs.closeSync(out);
  fs.closeSync(err);
  p.exited = new Promise((resolve) => p.on('exit', (code, signal) => resolve({ code, signal })));
  return p;
}

class Server {
  constructor(o, ports) {
    this.o = o;
    [this.tcp, this.ws, this.http] = ports;
    this.proc = null;
    this.log = path.join(o.dir, 'server.log');
  }

  async start() {
    fs.appendFileSync(this.log, `\n=== start ${new Date().toISOString()}\n`);
    this.logFrom = fs.statSync(this.log).size;
    const t0 = Date.now();
    this.proc = launch(this.o.bin, [`--addr=127.0.0.1:${this.tcp}`, `--wsAddr=127.0.0.1:${this.ws}`,
      `--httpAddr=127.0.0.1:${this.http}`, '--manager.on=false', '--demo.on=false', `--dataDir=${path.join(this.o.dir, 'data')}`, `--workers=${this.o.workers}`],
    this.log, this.log);
    let exited = null;
    this.proc.exited.then((e) => { exited = e; });
    while (Date.now() - t0 < 30000) {
      if (exited) throw new Error(`the server exited while starting (${JSON.stringify(exited)}); see ${this.log}`);
      try {
        const r = await fetch(`http://127.0.0.1:${this.http}/health`, { signal: AbortSignal.timeout(500) });
        await r.text();
        if (r.status === 200 && await tcpProbe(this.tcp)) return Date.now() - t0;
      } catch { /* not up yet */ }
      await sleep(20);
    }
    throw new Error(`the server was not ready after 30 s; see ${this.log}`);
  }

  /** error-level lines the server logged since its last start. */
  errorLines() {
    const fd = fs.openSync(this.log, 'r');
    const len = fs.fstatSync(fd).size - this.logFrom;
    const buf = Buffer.alloc(Math.max(0, len));
    fs.readSync(fd, buf, 0, buf.length, this.logFrom);
    fs.closeSync(fd);
    return buf.toString('utf8').split('\n').filter((l) => /^\S+ error /.test(l));
  }

  async kill9() {
    this.proc.kill('SIGKILL');
    await this.proc.exited;
  }

  async stop() {
    if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode !== null) return null;
    this.proc.kill('SIGTERM');
    const r = await Promise.race([this.proc.exited, sleep(10000).then(() => null)]);
    if (!r) await this.kill9();
    return r;
  }
}

/** Start the bench for one cycle; resolves once its load is running. */
async function startBench(o, server, prefix, ackLog, cycleDir) {
  const args = ['--addr', `127.0.0.1:${server.tcp}`, '--api', `http://127.0.0.1:${server.http}`, '--workload', 'mixed',
    '--pairs', o.pairs, '--groups', o.groups, '--group-size', o.groupSize, '--members', o.bigMembers,
    '--online', o.bigOnline, '--rate', o.rate, '--duration', 300, '--warmup', 0, '--drain', 0, '--json',
    '--prefix', prefix, '--ack-log', ackLog].map(String);
  const errFile = path.join(cycleDir, `${prefix}bench.err`);
  const outFile = path.join(cycleDir, `${prefix}bench.json`);
  const b = launch(o.bench, args, outFile, errFile);
  b.outFile = outFile;
  b.errFile = errFile;
  let exited = null;
  b.exited.then((e) => { exited = e; });
  const t0 = Date.now();
  while (Date.now() - t0 < 60000) {
    if (exited) throw new Error(`the bench exited before its load started (${JSON.stringify(exited)}): ${fs.readFileSync(errFile, 'utf8').slice(-500)}`);
    const err = fs.readFileSync(errFile, 'utf8');
    const m = /(\d+) of (\d+) connections ready/.exec(err);
    if (m) {
      if (m[1] !== m[2]) throw new Error(`the bench connected only ${m[1]} of ${m[2]}`);
      return b;
    }
    await sleep(10);
  }
  throw new Error('the bench did not start its load within 60 s');
}

/** The bench must notice the server vanished, exit 4 and report no error but the disconnects. */
async function benchOutcome(b, fail) {
  const r = await Promise.race([b.exited, sleep(20000).then(() => null)]);
  if (!r) {
    b.kill('SIGKILL');
    fail('the bench did not exit within 20 s after the server was killed');
    return null;
  }
  if (r.code !== 4) fail(`the bench exited with ${JSON.stringify(r)}, want status 4 (server went away)`);
  let j = null;
  try { j = JSON.parse(fs.readFileSync(b.outFile, 'utf8').trim().split('\n').pop()); } catch { /* below */ }
  if (!j) { fail(`the bench printed no JSON report (${b.outFile})`); return null; }
  const d = j.error_detail ?? {};
  for (const k of ['sendack_failed', 'sendack_unknown', 'bad_msgkey', 'bad_payload', 'proto_errors', 'unexpected', 'conn_failed', 'connack_refused']) {
    if (d[k]) fail(`bench: ${k} = ${d[k]}`);
  }
  if (j.duplicated) fail(`bench: ${j.duplicated} messages delivered twice`);
  return j;
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  for (const f of [o.bin, o.bench]) if (!fs.existsSync(f)) { console.error(`not found: ${f} (build first)`); process.exit(2); }
  o.dir = o.dir || fs.mkdtempSync(path.join(os.tmpdir(), 'crash-'));
  fs.mkdirSync(path.join(o.dir, 'acks'), { recursive: true });
  const ports = o.portBase ? [o.portBase, o.portBase + 1, o.portBase + 2] : [await freePort(), await freePort(), await freePort()];
  const random = rng(o.seed);
  const runId = (o.seed % 46656).toString(36).padStart(3, '0');
  console.log(`crash: seed ${o.seed}, ${o.cycles} cycles, kill ${o.killMin}-${o.killMax} s into the load, ` +
    `rate ${o.rate || 'closed loop'}, ${o.pairs} pairs + ${o.groups} groups x ${o.groupSize} + 1 group of ${o.bigMembers} ` +
    `(${o.bigOnline} online), workers ${o.workers}, dir ${o.dir}`);

  const failures = [];
  const fail = (s) => {
    failures.push(s);
    if (failures.length <= 20) console.log(`  FAIL ${s}`);
    else if (failures.length === 21) console.log('  FAIL ... (only the first 20 failures are printed)');
  };
  const server = new Server(o, ports);
  const api = new Api(`http://127.0.0.1:${server.http}`);
  const verified = []; // {ch, rec: {max, last}, ackFile}: every channel of every finished cycle
  const t0 = Date.now();
  let totals = { acked: 0, stored: 0, unacked: 0, ackChecks: 0 };
  let bench = null;
  const cleanup = () => { try { server.proc?.kill('SIGKILL'); bench?.kill('SIGKILL'); } catch { /* gone */ } };
  process.on('SIGINT', () => { cleanup(); process.exit(130); });

  try {
    await server.start();
    for (let cycle = 1; cycle <= o.cycles && !failures.length; cycle++) {
      const tc = Date.now();
      const prefix = `k${runId}_${cycle}_`;
      const ackFile = path.join(o.dir, 'acks', `${prefix}acks.log`);
      const killAfter = o.killMin + random() * (o.killMax - o.killMin);
      bench = await startBench(o, server, prefix, ackFile, path.join(o.dir, 'acks'));
      await sleep(killAfter * 1000);
      for (const l of server.errorLines().slice(0, 5)) fail(`server log: ${l}`);
      await server.kill9();
      const report = await benchOutcome(bench, fail);
      bench = null;
      const restartMs = await server.start();

      // This cycle, in full.
      const chans = planChannels(prefix, o);
      const { acks, n: nAcks } = readAckLog(ackFile, fail);
      if (report && report.acked !== nAcks) fail(`the bench reports ${report.acked} SENDACKs, its ack log has ${nAcks} lines`);
      const known = new Set(chans.map((c) => chanKey(c.id, c.type)));
      for (const k of acks.keys()) if (!known.has(k)) fail(`ack log names an unknown channel ${k}`);
      let stored = 0;
      let unacked = 0;
      await pool(chans, 4, async (ch) => {
        const rec = await verifyChannel(api, ch, acks.get(chanKey(ch.id, ch.type)), fail);
        stored += rec.max;
        unacked += rec.unacked;
        await sendNext(api, ch, rec, fail);
        verified.push({ ch, rec, ackFile });
      });
      totals.acked += nAcks;
      totals.ackChecks += nAcks;
      totals.stored += stored;
      totals.unacked += unacked;

      // Earlier cycles: quick, or in full every --full-every cycles and at the end.
      const earlier = verified.filter((v) => v.ackFile !== ackFile);
      const full = cycle === o.cycles || (o.fullEvery > 0 && cycle % o.fullEvery === 0);
      if (full && earlier.length) totals.ackChecks += await fullRecheck(api, earlier, fail);
      else await quickCheck(api, earlier, fail);
      for (const l of server.errorLines().slice(0, 5)) fail(`server log after the restart: ${l}`);

      console.log(`cycle ${String(cycle).padStart(3)}: killed ${killAfter.toFixed(2)} s into the load; ` +
        `${nAcks} acked, ${stored} stored (${unacked} without SENDACK); restart ${restartMs} ms; ` +
        `${chans.length} channels continued at max + 1; ` +
        `${full ? 'full' : 'quick'} re-check of ${earlier.length} earlier channels; ` +
        `${((Date.now() - tc) / 1000).toFixed(1)} s; ${failures.length ? 'FAILED' : 'ok'}`);
    }
    if (!failures.length) {
      const r = await server.stop();
      if (r && r.code !== 0) fail(`graceful stop at the end: ${JSON.stringify(r)}`);
    }
  } catch (e) {
    fail(`harness: ${e.stack || e}`);
  } finally {
    cleanup();
  }
  const secs = ((Date.now() - t0) / 1000).toFixed(0);
  console.log(`crash: seed ${o.seed}: ${failures.length ? 'FAILED' : 'passed'}: cycles ${failures.length ? 'stopped early' : o.cycles}, ` +
    `acknowledged messages ${totals.acked} (each checked after its own cycle; ${totals.ackChecks} ack checks in all), ` +
    `stored ${totals.stored} (${totals.unacked} stored without a SENDACK: in flight at the kill), ` +
    `channels ${verified.length}, failures ${failures.length}, ${secs} s`);
  if (failures.length) {
    console.log(`crash: work dir kept: ${o.dir} (server.log, data/, acks/); repeat with --seed ${o.seed}`);
    process.exit(1);
  }
  if (!o.keep) fs.rmSync(o.dir, { recursive: true, force: true });
  else console.log(`crash: work dir kept: ${o.dir}`);
}

/** Full re-check of earlier channels; returns the number of acknowledged messages checked. */
async function fullRecheck(api, earlier, fail) {
  const byFile = new Map();
  let n = 0;
  for (const v of earlier) {
    if (!byFile.has(v.ackFile)) byFile.set(v.ackFile, readAckLog(v.ackFile, fail).acks);
  }
  await pool(earlier, 4, async (v) => {
    const acks = byFile.get(v.ackFile).get(chanKey(v.ch.id, v.ch.type));
    const rec = await verifyChannel(api, v.ch, acks, fail);
    if (rec.max !== v.rec.max || rec.last?.id !== v.rec.last?.id || rec.last?.cmn !== v.rec.last?.cmn)
      fail(`${v.ch.id}: changed since its own cycle: max ${v.rec.max} -> ${rec.max}`);
    n += acks?.size ?? 0;
  });
  return n;
}

main().then(() => process.exit(process.exitCode ?? 0));
