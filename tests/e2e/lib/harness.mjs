// harness.mjs - per-test-file scaffolding on top of node:test: one magpie server per file (started
// in before(), disposed in after()), client tracking (closed after every test), unique ids, and
// failure messages that carry the tail of the server's output.

import { before, after, afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import crypto from 'node:crypto';
import zlib from 'node:zlib';
import { MagpieServer } from './server.mjs';
import { WkClient, PT, REASON } from './wkproto.mjs';

/** Servers started by useServer in this test process and not disposed yet. */
const liveServers = new Set();

const FILE = path.basename(process.argv[1] ?? 'e2e', '.test.mjs');

/** A short unique id with the given prefix (safe for uids and channel ids: [A-Za-z0-9_]). */
export function uid(prefix = 'u') {
  return `${prefix}${crypto.randomBytes(4).toString('hex')}`;
}

/**
 * The stored id of the person channel between uids a and b (http-api.md §5.3): the uid with the
 * larger CRC32-IEEE goes first, "A@B" (a tie puts b first).
 */
export function personFakeId(a, b) {
  return zlib.crc32(Buffer.from(a, 'utf8')) > zlib.crc32(Buffer.from(b, 'utf8')) ? `${a}@${b}` : `${b}@${a}`;
}

/** Base64 of a JSON object's UTF-8 text (HTTP payload fields). */
export function b64json(obj) { return Buffer.from(JSON.stringify(obj), 'utf8').toString('base64'); }

/**
 * Register hooks for a server shared by all tests of this file. Returns a handle:
 *   h.srv               the MagpieServer (after before() ran)
 *   h.test(name, fn)    like node:test's test(), but failures include the server output tail and
 *                       the test fails if the server process died
 *   h.tcp(opts)/h.ws(opts)   opened, tracked WkClient
 *   h.login(uid, opts)  opened + connected client; asserts CONNACK success
 *   h.assertHealthy()   a fresh pair of clients can still exchange a message
 */
export function useServer({ args = [], name = FILE, workers } = {}) {
  const h = { srv: null, clients: [], failed: false, cleanups: [] };
  /** Run fn in after(), before the server is stopped (e.g. closing SDK child processes). */
  h.cleanup = (fn) => { h.cleanups.push(fn); };

  before(async () => {
    h.srv = new MagpieServer({ args, name, workers });
    liveServers.add(h.srv);
    await h.srv.start();
  });

  afterEach(() => {
    for (const c of h.clients) c.close();
    h.clients = [];
  });

  after(async () => {
    for (const fn of h.cleanups) {
      try { await fn(); } catch (e) { process.stderr.write(`[${name}] cleanup failed: ${e?.stack ?? e}\n`); }
    }
    for (const c of h.clients) c.close();
    if (!h.srv) return;
    if (h.failed) process.stderr.write(`\n[${name}] server output after failure:\n${h.srv.tail(200)}\n`);
    await h.srv.dispose();
    liveServers.delete(h.srv);
    const problems = h.srv.problems();
    if (problems.length) {
      // node:test skips the after hooks that follow a failed one: stop every other server of
      // this file now, or they would keep the test process (and CI) waiting until its timeout.
      for (const other of liveServers) await other.dispose().catch(() => {});
      liveServers.clear();
      throw new Error(`magpie reported problems (full log: tests/e2e/artifacts/${name}.log):\n${problems.join('\n')}\n${h.srv.tail(80)}`);
    }
  });

  h.test = (title, fnOrOpts, maybeFn) => {
    const fn = typeof fnOrOpts === 'function' ? fnOrOpts : maybeFn;
    const opts = typeof fnOrOpts === 'function' ? {} : fnOrOpts;
    return test(title, { timeout: 30000, ...opts }, async (t) => {
      try {
        if (!h.srv || !h.srv.alive()) throw new Error('magpie is not running at test start');
        await fn(t);
        if (!h.srv.alive()) throw new Error('magpie process died during the test');
      } catch (e) {
        h.failed = true;
        if (h.srv && e && typeof e === 'object') {
          try { e.message = `${e.message}\n${h.srv.tail(40)}`; } catch { /* read-only message */ }
        }
        throw e;
      }
    });
  };

  h.track = (c) => { h.clients.push(c); return c; };
  h.tcp = async (opts = {}) => h.track(await WkClient.tcp(h.srv.tcpPort, opts).open());
  h.ws = async (opts = {}) => h.track(await WkClient.ws(h.srv.wsPort, opts).open());

  /** Connected client; transport 'tcp' (default) or 'ws'. Asserts CONNACK reason 1. */
  h.login = async (user, { transport = 'tcp', autoAck = true, name, ...connectOpts } = {}) => {
    const c = transport === 'ws' ? await h.ws({ autoAck, name: name ?? `${user}/ws` }) : await h.tcp({ autoAck, name: name ?? `${user}/tcp` });
    const ack = await c.connect({ uid: user, ...connectOpts });
    assert.equal(ack.reasonCode, REASON.SUCCESS, `CONNACK for ${user} should succeed`);
    return c;
  };

  /** A fresh sender and receiver can still connect and exchange a message (used after bad input). */
  h.assertHealthy = async (label = 'healthy pair') => {
    const a = uid('ha'); const b = uid('hb');
    const cb = await h.login(b);
    const ca = await h.login(a);
    const ack = await ca.send({ channelId: b, channelType: 1, payload: { type: 1, content: label } });
    assert.equal(ack.reasonCode, REASON.SUCCESS, `${label}: SENDACK reason`);
    const r = await cb.waitRecv((p) => p.clientMsgNo === ack.sent.clientMsgNo);
    assert.deepEqual(r.json, { type: 1, content: label });
    const pong = await ca.ping();
    assert.equal(pong.type, PT.PONG);
    ca.close(); cb.close();
  };

  return h;
}
