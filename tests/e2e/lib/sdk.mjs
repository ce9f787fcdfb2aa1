// sdk.mjs - drive the real wukongimjssdk@1.0.4 from a test. Each SdkUser is a child process
// (lib/sdk_child.mjs) holding one WKSDK.shared() singleton; events come back over IPC and are kept
// in order so tests can wait for them.

import { fork } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const SDK_BUNDLE = path.resolve(HERE, '..', '.build', 'wksdk.cjs');

/** ConnectStatus values of SDK 1.0.4. */
export const ConnectStatus = Object.freeze({ Disconnect: 0, Connected: 1, Connecting: 2, ConnectFail: 3, ConnectKick: 4 });

export class SdkUser {
  constructor(name) {
    this.name = name;
    this.events = [];
    this.logs = [];
    this.waiters = new Set();
    this.pending = new Map();
    this.nextId = 1;
  }

  /** Fork the child and wait until it has loaded the SDK. */
  static async spawn(name = 'sdk') {
    if (!fs.existsSync(SDK_BUNDLE)) throw new Error(`${SDK_BUNDLE} missing: run "npm run setup" (npm test does it)`);
    const u = new SdkUser(name);
    u.child = fork(path.join(HERE, 'sdk_child.mjs'), [], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    u.child.stdout.on('data', (d) => u.logs.push(`[stdout] ${d}`));
    u.child.stderr.on('data', (d) => u.logs.push(`[stderr] ${d}`));
    u.exited = new Promise((r) => u.child.on('exit', (code, sig) => { u.logs.push(`[exit ${code} ${sig}]`); r(); }));
    u.child.on('message', (m) => u._onMessage(m));
    // Never let a stuck child keep the test process alive, and never leave one behind.
    u.child.unref();
    u.child.channel?.unref();
    const killChild = () => { try { u.child.kill('SIGKILL'); } catch { /* gone */ } };
    process.once('exit', killChild);
    u.exited.then(() => process.removeListener('exit', killChild));
    await u.waitEvent((e) => e.ev === 'ready', 10000, 'child ready');
    return u;
  }

  _onMessage(m) {
    if (m.ev === 'log') { this.logs.push(m.text); return; }
    if (m.ev === 'reply') {
      const p = this.pending.get(m.id);
      if (p) { this.pending.delete(m.id); if (m.error) p.reject(new Error(m.error)); else p.resolve(m.result); }
      return;
    }
    if (m.ev === 'error') this.logs.push(`[ERROR] ${m.text}`);
    m.at = Date.now();
    this.events.push(m);
    for (const w of [...this.waiters]) {
      if (w.pred(m)) w.resolve(m);
    }
  }

  _call(cmd, args = {}, timeoutMs = 5000) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => { this.pending.delete(id); reject(new Error(`${this.name}: ${cmd} timed out`)); }, timeoutMs);
      this.pending.set(id, { resolve: (v) => { clearTimeout(t); resolve(v); }, reject: (e) => { clearTimeout(t); reject(e); } });
      this.child.send({ cmd, id, ...args });
    });
  }

  /** Resolve with the first event (past or future) matching pred. */
  waitEvent(pred, timeoutMs = 5000, what = 'event') {
    const hit = this.events.find(pred);
    if (hit) return Promise.resolve(hit);
    return new Promise((resolve, reject) => {
      const w = {
        pred,
        resolve: (e) => { clearTimeout(w.timer); this.waiters.delete(w); resolve(e); },
      };
      w.timer = setTimeout(() => {
        this.waiters.delete(w);
        reject(new Error(`${this.name}: timed out after ${timeoutMs} ms waiting for ${what}; events: ${this.describe()}`));
      }, timeoutMs);
      this.waiters.add(w);
    });
  }

  describe() {
    return JSON.stringify(this.events.filter((e) => e.ev !== 'wsout').slice(-10)) +
      `\nwsout headers: ${this.events.filter((e) => e.ev === 'wsout').map((e) => e.header.toString(16)).join(',')}` +
      `\nSDK log tail:\n${this.logs.slice(-25).join('\n')}`;
  }

  /** Start connecting (status events follow). */
  connect({ addr, uid, token = '', heartbeatInterval }) {
    this.uid = uid;
    return this._call('connect', { addr, uid, token, heartbeatInterval });
  }

  /** Wait for a connect-status event; returns it. */
  waitStatus(status, timeoutMs = 5000) {
    return this.waitEvent((e) => e.ev === 'status' && e.status === status, timeoutMs, `status ${status}`);
  }

  /** chatManager.send(new MessageText(text), new Channel(id, type)); resolves with the local message. */
  sendText(channelId, channelType, text) { return this._call('send', { channelId, channelType, text }); }

  /** Incoming messages (not the local echo the SDK emits for its own sends). */
  received() { return this.events.filter((e) => e.ev === 'message' && e.message.messageID !== undefined).map((e) => e.message); }

  waitMessage(pred, timeoutMs = 5000) {
    return this.waitEvent((e) => e.ev === 'message' && e.message.messageID !== undefined && pred(e.message), timeoutMs, 'message').then((e) => e.message);
  }

  errors() { return this.events.filter((e) => e.ev === 'error'); }

  async close() {
    if (!this.child || this.child.exitCode !== null) return;
    try { this.child.send({ cmd: 'exit' }); } catch { /* already gone */ }
    const t = setTimeout(() => this.child.kill('SIGKILL'), 2000);
    await this.exited;
    clearTimeout(t);
  }
}
