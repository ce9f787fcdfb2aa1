// server.mjs - start, stop, kill -9 and restart the real magpie binary for one test file, on free
// ports and a private temporary data directory; plus a small HTTP helper. Server stderr/stdout are
// captured so a failing test can show them (and they are written to tests/e2e/artifacts/).

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const E2E_DIR = path.resolve(HERE, '..');
export const REPO_DIR = path.resolve(E2E_DIR, '..', '..');
export const MAGPIE_BIN = process.env.MAGPIE_BIN || path.join(REPO_DIR, 'build', 'magpie');
export const WORKERS = Number(process.env.MAGPIE_TEST_WORKERS || 2);
export const ARTIFACTS_DIR = path.join(E2E_DIR, 'artifacts');

/**
 * Reserve a free TCP port on 127.0.0.1: try to listen on it, then close. Ports are drawn at random
 * from below the kernel's ephemeral range, so the many outbound client sockets of parallel test
 * files cannot take them between this check and the server's bind.
 */
function tryListen(port) {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.unref();
    s.once('error', () => resolve(null));
    s.listen(port, '127.0.0.1', () => {
      const got = s.address().port;
      s.close(() => resolve(got));
    });
  });
}

function ephemeralLow() {
  try {
    const [lo] = fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (lo > 12000) return lo;
  } catch { /* not Linux */ }
  return 32768;
}
const PORT_LO = 10000;
const PORT_HI = ephemeralLow();

export async function freePort() {
  for (let i = 0; i < 50; i++) {
    const p = await tryListen(PORT_LO + Math.floor(Math.random() * (PORT_HI - PORT_LO)));
    if (p) return p;
  }
  return tryListen(0);
}

async function distinctFreePorts(n) {
  const ports = new Set();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}

function tcpProbe(port, timeoutMs = 500) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    const done = (ok) => { clearTimeout(t); s.destroy(); resolve(ok); };
    const t = setTimeout(() => done(false), timeoutMs);
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export class MagpieServer {
  /**
   * opts.args: extra flags, e.g. ['--tokenAuthOn=true']; opts.workers; opts.name (for artifacts).
   */
  constructor({ args = [], workers = WORKERS, name = 'server' } = {}) {
    this.extraArgs = args;
    this.workers = workers;
    this.name = name;
    this.log = '';
    this.proc = null;
    this.exits = [];
  }

  get httpBase() { return `http://127.0.0.1:${this.httpPort}`; }
  /** The manager/monitor server (manager.addr: /metrics, /web/, /manager/login). */
  get managerBase() { return `http://127.0.0.1:${this.managerPort}`; }
  /** The chat demo server (demo.addr). */
  get demoBase() { return `http://127.0.0.1:${this.demoPort}`; }

  args() {
    return [
      `--addr=127.0.0.1:${this.tcpPort}`,
      `--wsAddr=127.0.0.1:${this.wsPort}`,
      `--httpAddr=127.0.0.1:${this.httpPort}`,
      `--manager.addr=127.0.0.1:${this.managerPort}`,
      `--demo.addr=127.0.0.1:${this.demoPort}`,
      `--dataDir=${this.dataDir}`,
      `--workers=${this.workers}`,
      ...this.extraArgs,
    ];
  }

  /** First start: allocates ports and a data dir. */
  async start() {
    if (!fs.existsSync(MAGPIE_BIN)) throw new Error(`magpie binary not found at ${MAGPIE_BIN} (set MAGPIE_BIN)`);
    this.dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'magpie-e2e-'));
    await this._spawnOnFreePorts(false);
    return this;
  }

  /**
   * Spawn; if a port turned out to be taken (another process won the race), pick new ports and
   * try again. keepPorts: try the current ports first (restart).
   */
  async _spawnOnFreePorts(keepPorts) {
    for (let attempt = 0; ; attempt++) {
      if (!keepPorts || attempt > 0) {
        [this.tcpPort, this.wsPort, this.httpPort, this.managerPort, this.demoPort] = await distinctFreePorts(5);
      }
      try {
        await this._spawn();
        return;
      } catch (e) {
        const inUse = /address already in use|EADDRINUSE/i.test(this.log.slice(-2000));
        if (!inUse || attempt >= 4) throw e;
        this.log += `\n=== a port was taken; retrying on new ports\n`;
      }
    }
  }

  async _spawn() {
    const args = this.args();
    this.log += `\n=== spawn ${MAGPIE_BIN} ${args.join(' ')}\n`;
    const proc = spawn(MAGPIE_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    const append = (d) => { this.log += d.toString(); if (this.log.length > 4_000_000) this.log = this.log.slice(-2_000_000); };
    proc.stdout.on('data', append);
    proc.stderr.on('data', append);
    proc.exited = new Promise((resolve) => {
      proc.on('exit', (code, signal) => {
        this.log += `\n=== exit code=${code} signal=${signal}\n`;
        this.exits.push({ code, signal });
        resolve({ code, signal });
      });
    });
    await this.waitReady(10000);
  }

  /** Poll GET /health until 200 and TCP + WS listeners accept. */
  async waitReady(timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      if (this.proc.exitCode !== null || this.proc.signalCode !== null) {
        throw new Error(`magpie exited during startup (code ${this.proc.exitCode}, signal ${this.proc.signalCode})\n${this.tail()}`);
      }
      try {
        const r = await fetch(`${this.httpBase}/health`, { signal: AbortSignal.timeout(500) });
        await r.text();
        // 401: a managerToken is configured, and the API is up all the same.
        if ((r.status === 200 || r.status === 401) && await tcpProbe(this.tcpPort) && await tcpProbe(this.wsPort)) return;
        last = `health ${r.status}`;
      } catch (e) {
        last = e.cause?.code ?? e.message;
      }
      await sleep(50);
    }
    throw new Error(`magpie not ready after ${timeoutMs} ms (${last})\n${this.tail()}`);
  }

  /** Graceful stop (SIGTERM, then SIGKILL after 3 s). */
  async stop() {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    p.kill('SIGTERM');
    const r = await Promise.race([p.exited, sleep(3000).then(() => null)]);
    if (r === null) {
      this.log += '\n=== did not exit 3 s after SIGTERM; sending SIGKILL\n';
      p.kill('SIGKILL');
      await p.exited;
    }
  }

  /** kill -9, wait for the exit. */
  async kill9() {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    p.kill('SIGKILL');
    await p.exited;
  }

  /** Start again on the same data dir (same ports unless one was taken meanwhile). */
  async restart() {
    await this.stop();
    await this._spawnOnFreePorts(true);
  }

  /** Stop and remove the data directory; write the log to artifacts/. */
  async dispose() {
    await this.stop();
    try {
      fs.mkdirSync(ARTIFACTS_DIR, { recursive: true });
      fs.writeFileSync(path.join(ARTIFACTS_DIR, `${this.name}.log`), this.log);
    } catch { /* artifacts are best effort */ }
    if (this.dataDir) fs.rmSync(this.dataDir, { recursive: true, force: true });
  }

  /**
   * Problems visible in the server's output or exits: sanitizer reports (when MAGPIE_BIN is a
   * -DMAGPIE_SANITIZE=ON build) and a graceful stop that needed SIGKILL.
   */
  problems() {
    const out = [];
    for (const line of this.log.split('\n')) {
      if (/ERROR: (Address|Leak|Memory|Thread|UndefinedBehavior)Sanitizer|runtime error:|SUMMARY: \w+Sanitizer/.test(line)) out.push(line.trim());
    }
    if (this.log.includes('did not exit 3 s after SIGTERM')) out.push('did not exit within 3 s of SIGTERM');
    return out;
  }

  alive() { return !!this.proc && this.proc.exitCode === null && this.proc.signalCode === null; }

  tail(n = 60) {
    const lines = this.log.split('\n');
    return `--- magpie output (last ${Math.min(n, lines.length)} lines) ---\n${lines.slice(-n).join('\n')}`;
  }

  /**
   * HTTP request; body objects are JSON-encoded, strings are sent verbatim.
   * Resolves {status, json, text, headers}. json is undefined when the body is not JSON.
   */
  async http(method, urlPath, body, { timeoutMs = 5000, headers = {}, base = this.httpBase } = {}) {
    const init = { method, headers: { ...headers }, signal: AbortSignal.timeout(timeoutMs) };
    if (body !== undefined) {
      init.body = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
      init.headers['content-type'] ??= 'application/json';
    }
    const r = await fetch(`${base}${urlPath}`, init);
    const text = await r.text();
    let json;
    try { json = text.length ? JSON.parse(text) : undefined; } catch { json = undefined; }
    return { status: r.status, json, text, headers: r.headers };
  }

  post(urlPath, body, opts) { return this.http('POST', urlPath, body, opts); }
  get(urlPath, opts) { return this.http('GET', urlPath, undefined, opts); }
}
