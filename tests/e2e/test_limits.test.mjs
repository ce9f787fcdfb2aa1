// Bounded resources (docs/reliability.md "Limits"): every test starts its own server with one small
// limit, exceeds it, checks the server's answer, and checks that a well-behaved client connected
// before the abuse is unaffected (it still sends and receives) and that new clients still get in.
// Covered elsewhere and not repeated here: maxPacketSize framing details (test_bad_input), a
// silent pre-auth connection (test_heartbeat), a stuck receiver not stalling others
// (test_slow_consumer).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import { MagpieServer, MAGPIE_BIN } from './lib/server.mjs';
import { uid, personFakeId } from './lib/harness.mjs';
import { WkClient, PT, REASON, encodeVarint, encodeConnect, x25519KeyPair, sleep } from './lib/wkproto.mjs';
import { parseExposition, sampleValue } from './lib/prom.mjs';

const SANITIZED = fs.readFileSync(MAGPIE_BIN).includes('__asan_init');
let serial = 0;

/** A server of its own for one test: fn(s) gets helpers; the server is disposed afterwards. */
function limitTest(title, args, fn, timeout = 60000) {
  test(title, { timeout }, async (t) => {
    const srv = new MagpieServer({ args, name: `test_limits_${++serial}` });
    const clients = [];
    const s = {
      srv,
      note: (msg) => t.diagnostic(msg),
      track: (c) => { clients.push(c); return c; },
      tcp: async () => s.track(await WkClient.tcp(srv.tcpPort).open()),
      ws: async () => s.track(await WkClient.ws(srv.wsPort).open()),
      login: async (user, { transport = 'tcp', ...o } = {}) => {
        const c = transport === 'ws' ? await s.ws() : await s.tcp();
        const ack = await c.connect({ uid: user, ...o });
        assert.equal(ack.reasonCode, REASON.SUCCESS, `CONNACK for ${user}`);
        return c;
      },
      /** A connected pair that must keep working through the abuse. */
      bystanders: async () => {
        const a = uid('by'); const b = uid('bz');
        return { a, b, ca: await s.login(a), cb: await s.login(b, { transport: 'ws' }) };
      },
      /** The bystanders (still) exchange a message both ways and answer PING. */
      checkBystanders: async ({ a, b, ca, cb }, label) => {
        assert.equal(ca.isClosed || cb.isClosed, false, `${label}: bystanders still connected`);
        const ack = await ca.send({ channelId: b, channelType: 1, payload: { type: 1, content: label } });
        assert.equal(ack.reasonCode, REASON.SUCCESS, `${label}: bystander SENDACK`);
        const r = await cb.waitRecv((p) => p.clientMsgNo === ack.sent.clientMsgNo);
        assert.deepEqual(r.json, { type: 1, content: label });
        const back = await cb.send({ channelId: a, channelType: 1, payload: { type: 1, content: `${label} back` } });
        assert.equal(back.reasonCode, REASON.SUCCESS);
        await ca.waitRecv((p) => p.clientMsgNo === back.sent.clientMsgNo);
        await ca.ping();
      },
      /** A fresh pair can connect and exchange a message. */
      checkNewClients: async (label) => {
        const p = await s.bystanders();
        await s.checkBystanders(p, `${label} (new clients)`);
        p.ca.close(); p.cb.close();
      },
    };
    await srv.start();
    try {
      await fn(s);
      assert.ok(srv.alive(), 'magpie still running');
    } catch (e) {
      try { e.message = `${e.message}\n${srv.tail(40)}`; } catch { /* read-only */ }
      throw e;
    } finally {
      for (const c of clients) c.close();
      await srv.dispose();
    }
    assert.deepEqual(srv.problems(), [], `sanitizer or shutdown problems (artifacts/${srv.name}.log)`);
  });
}

/** Open n raw TCP sockets at once; resolves with which ones the server closed within ms. */
async function burst(port, n, ms) {
  const socks = await Promise.all(Array.from({ length: n }, () => new Promise((resolve) => {
    const so = net.connect({ host: '127.0.0.1', port });
    so.closedEarly = false;
    so.on('error', () => {});
    so.on('close', () => { so.closedEarly = true; });
    so.once('connect', () => resolve(so));
    so.once('error', () => resolve(so));
  })));
  await sleep(ms);
  const closed = socks.filter((so) => so.closedEarly).length;
  for (const so of socks) so.destroy();
  return { opened: n - closed, closed };
}

/**
 * A raw HTTP/1.1 keep-alive connection (fetch would pool and reuse connections behind our back).
 * c.request(path) writes one GET and resolves with {status, body}, or with null when the server
 * closes the connection without answering. c.closedAt: when the server (or c.close) closed it.
 */
async function httpConn(s, port) {
  const sock = net.connect({ host: '127.0.0.1', port });
  const c = { closedAt: null, received: 0 };
  let buf = Buffer.alloc(0);
  let wake = () => {};
  sock.on('error', () => {});                   // a reset shows as 'close', which is what we test
  sock.on('data', (d) => { buf = Buffer.concat([buf, d]); c.received += d.length; wake(); });
  sock.on('close', () => { c.closedAt = Date.now(); wake(); });
  await new Promise((resolve) => { sock.once('connect', resolve); sock.once('close', resolve); });
  c.openedAt = Date.now();
  const answer = () => {
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0) return null;
    const head = buf.subarray(0, end).toString();
    const len = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
    if (buf.length < end + 4 + len) return null;
    const body = buf.subarray(end + 4, end + 4 + len).toString();
    buf = buf.subarray(end + 4 + len);
    return { status: Number(head.split(' ')[1]), body };
  };
  c.request = async (urlPath, { timeoutMs = 5000, close = false } = {}) => {
    if (c.closedAt === null) sock.write(`GET ${urlPath} HTTP/1.1\r\nHost: 127.0.0.1\r\n${close ? 'Connection: close\r\n' : ''}\r\n`);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const a = answer();
      if (a) return a;
      if (c.closedAt !== null) return null;
      assert.ok(Date.now() < deadline, `an answer to GET ${urlPath} or a close within ${timeoutMs} ms`);
      await new Promise((r) => { wake = r; setTimeout(r, 50); });
    }
  };
  c.waitClosed = async (ms) => {
    for (const end = Date.now() + ms; c.closedAt === null && Date.now() < end;) await new Promise((r) => { wake = r; setTimeout(r, 50); });
    return c.closedAt !== null;
  };
  c.write = (bytes) => { if (c.closedAt === null) sock.write(bytes); };
  c.close = () => sock.destroy();
  return s.track(c);
}

/** GET /metrics on the manager port over a connection of its own, closed afterwards. */
async function scrape(s) {
  const c = await httpConn(s, s.srv.managerPort);
  const r = await c.request('/metrics', { close: true });
  assert.equal(r?.status, 200, 'a /metrics answer');
  assert.equal(await c.waitClosed(2000), true, 'Connection: close is honoured');
  return parseExposition(r.body);
}

async function history(srv, loginUid, channelId, channelType) {
  const r = await srv.post('/channel/messagesync', { login_uid: loginUid, channel_id: channelId, channel_type: channelType, start_message_seq: 0, end_message_seq: 0, limit: 1000, pull_mode: 1 });
  assert.equal(r.status, 200, r.text);
  return r.json.messages;
}

// ---------------------------------------------------------------- maxPacketSize

limitTest('maxPacketSize: an oversized packet closes only its own connection', ['--maxPacketSize=4096'], async (s) => {
  const by = await s.bystanders();
  const bad = await s.login(uid('big'));
  const hdr = Buffer.concat([Buffer.from([0x32]), encodeVarint(4097)]);
  await bad.write(Buffer.concat([hdr, Buffer.alloc(100)]));
  assert.equal(await bad.waitClosed(3000), true, 'oversized SEND closes the connection');
  assert.equal(bad.history.filter((p) => p.type === PT.SENDACK).length, 0, 'no SENDACK');
  const ws = await s.login(uid('bigws'), { transport: 'ws' });
  await ws.write(Buffer.concat([hdr, Buffer.alloc(4097)]));
  assert.equal(await ws.waitClosed(3000), true, 'oversized SEND over WebSocket closes the connection');
  await s.checkBystanders(by, 'after oversized packets');
  await s.checkNewClients('after oversized packets');
});

// ---------------------------------------------------------------- maxConnections

limitTest('maxConnections: the connection past the limit is closed at accept; a freed slot is reusable', ['--maxConnections=4'], async (s) => {
  // The harness's readiness probes are connections too: wait until the server has let them go.
  // A probe the client already closed may still wait in the accept queue of a busy worker, so
  // ask for zero connections six times in a row (300 ms), not once.
  for (let i = 0, zeros = 0; i < 100 && zeros < 6; i++) {
    zeros = (await s.srv.get('/varz')).json.connections === 0 ? zeros + 1 : 0;
    await sleep(50);
  }
  const by = await s.bystanders();                  // 2 of 4
  const idle = [await s.tcp(), await s.tcp()];      // 4 of 4 (pre-auth connections count too)
  // With 2 workers each accepts on its own socket, so a later connect can be accepted first:
  // let the server count all four before the fifth arrives.
  for (let i = 0; i < 100 && (await s.srv.get('/varz')).json.connections !== 4; i++) await sleep(20);
  const over = await s.tcp();
  assert.equal(await over.waitClosed(2000), true, 'the 5th connection is closed');
  const r = await over.connect({ uid: uid('over'), timeoutMs: 500 }).catch(() => null);
  assert.equal(r, null, 'no CONNACK for a refused connection');
  await s.checkBystanders(by, 'at maxConnections');
  idle[0].close();
  for (let i = 0; i < 50 && (await s.srv.get('/varz')).json.connections !== 3; i++) await sleep(50);
  const again = await s.login(uid('again'));        // the freed slot is usable
  await again.ping();
  const hr = await s.srv.get('/health');            // the HTTP API is not counted
  assert.equal(hr.status, 200);
  const fam = await scrape(s);
  assert.ok(sampleValue(fam, 'magpie_connections_refused_total', { limit: 'maxConnections' }) >= 1, 'the refusal is counted');
});

// ---------------------------------------------------------------- connRateLimit

limitTest('connRateLimit: a burst beyond the per-IP limit is closed at accept, later connections are accepted',
  ['--connRateLimit=5', '--connRateBurst=8', '--connRateLimitLoopback=true'], async (s) => {
    const by = await s.bystanders();               // with the readiness probes: < 8 tokens spent
    await sleep(1800);                              // the bucket refills (8 tokens)
    const r = await burst(s.srv.tcpPort, 20, 500);
    s.note(`burst of 20: ${r.opened} accepted, ${r.closed} refused`);
    assert.ok(r.closed >= 9, `most of a 20-connection burst is refused (opened ${r.opened}, closed ${r.closed})`);
    assert.ok(r.opened >= 7 && r.opened <= 11, `about connRateBurst accepted (opened ${r.opened})`);
    await s.checkBystanders(by, 'during a connection flood');
    await sleep(1200);
    await s.checkNewClients('after the flood');
    const log = s.srv.log.split('\n').filter((l) => l.includes('connRateLimit=5') && l.includes('refused'));
    s.note(`${log.length} refusal log line(s)`);
    assert.ok(log.length >= 1 && log.length <= 3, `refusals are logged in aggregate, not per connection (${log.length} lines)`);
    const fam = await scrape(s);
    assert.ok(sampleValue(fam, 'magpie_connections_refused_total', { limit: 'connRateLimit' }) >= r.closed, 'refusals are counted');
  });

limitTest('connRateLimit: loopback sources are exempt by default', ['--connRateLimit=2', '--connRateBurst=2'], async (s) => {
  const r = await burst(s.srv.tcpPort, 20, 500);
  assert.equal(r.closed, 0, `no loopback connection refused (closed ${r.closed})`);
  await s.checkNewClients('loopback exempt');
});

// ---------------------------------------------------------------- preAuthTimeout (slowloris)

limitTest('preAuthTimeout: silent and trickling (slowloris) connections are closed; authenticated ones stay',
  ['--preAuthTimeout=1s'], async (s) => {
    const by = await s.bystanders();
    const start = Date.now();
    const silent = await s.tcp();
    // A CONNECT written one byte every 100 ms: each byte is activity, but the deadline counts
    // from accept, not from the last byte.
    const trickle = await s.tcp();
    const connect = encodeConnect({ version: 4, uid: uid('slow'), deviceId: 'd', clientKey: x25519KeyPair().publicRaw.toString('base64') });
    let stop = false;
    const dribble = (async () => {
      for (let i = 0; i < connect.length && !stop && !trickle.isClosed; i++) { await trickle.write(connect.subarray(i, i + 1)); await sleep(100); }
    })();
    // The same over WebSocket: an HTTP upgrade request dribbled byte by byte.
    const raw = net.connect({ host: '127.0.0.1', port: s.srv.wsPort });
    raw.on('error', () => {});
    let rawClosedAt = null;
    raw.on('close', () => { rawClosedAt = Date.now(); });
    const upgrade = Buffer.from(`GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    const dribbleWs = (async () => {
      for (let i = 0; i < upgrade.length && !stop && rawClosedAt === null; i++) { raw.write(upgrade.subarray(i, i + 1)); await sleep(100); }
    })();
    assert.equal(await silent.waitClosed(4000), true, 'silent connection closed');
    assert.equal(await trickle.waitClosed(4000), true, 'trickling connection closed');
    const trickleMs = Date.now() - start;
    for (let i = 0; i < 40 && rawClosedAt === null; i++) await sleep(100);
    stop = true;
    await Promise.all([dribble, dribbleWs]);
    raw.destroy();
    assert.notEqual(rawClosedAt, null, 'trickling WebSocket handshake closed');
    assert.ok(trickleMs < 4000, `trickle closed after ${trickleMs} ms (timeout 1 s, sweep 250 ms)`);
    assert.equal(trickle.history.filter((p) => p.type === PT.CONNACK).length, 0, 'the dribbled CONNECT never completed');
    await s.checkBystanders(by, 'after slowloris');   // older than preAuthTimeout, still open
    await s.checkNewClients('after slowloris');
  });

// ---------------------------------------------------------------- sendRateLimit

limitTest('sendRateLimit: SENDs over the limit get SENDACK 22 and are not stored; other connections are unaffected',
  ['--sendRateLimit=5', '--sendRateBurst=5'], async (s) => {
    const by = await s.bystanders();
    const a = uid('fl'); const b = uid('fr');
    const cb = await s.login(b);
    const ca = await s.login(a);
    const sends = Array.from({ length: 30 }, (_, i) => ca.buildSend({ channelId: b, channelType: 1, payload: { type: 1, i } }));
    await ca.write(Buffer.concat(sends.map((x) => x.bytes)));  // one write: no time to refill
    const acks = [];
    for (const x of sends) acks.push(await ca.waitType(PT.SENDACK, 5000, (p) => p.clientSeq === x.clientSeq));
    const ok = acks.filter((p) => p.reasonCode === REASON.SUCCESS);
    const limited = acks.filter((p) => p.reasonCode === 22);
    assert.equal(ok.length + limited.length, 30, `only success or RateLimit (22): ${acks.map((p) => p.reasonCode)}`);
    assert.ok(ok.length >= 5 && ok.length <= 6, `the burst of 5 passes (${ok.length} succeeded)`);
    for (const p of limited) assert.equal(p.messageSeq, 0, 'a refused SEND has no seq');
    assert.deepEqual(ok.map((p) => p.clientSeq), sends.slice(0, ok.length).map((x) => x.clientSeq), 'the first ones pass');
    await s.checkBystanders(by, 'while a connection is rate limited');
    const stored = await history(s.srv, a, personFakeId(a, b), 1);
    assert.equal(stored.length, ok.length, 'only accepted SENDs are stored');
    const got = await cb.collect((p) => p.type === PT.RECV, 300);
    assert.equal(got.length, ok.length, 'only accepted SENDs are delivered');
    await sleep(1100);                                         // tokens come back
    const later = await ca.send({ channelId: b, channelType: 1, payload: { type: 1, later: true } });
    assert.equal(later.reasonCode, REASON.SUCCESS, 'the limit is a rate: later SENDs pass');
  });

limitTest('sendRateLimit: a connection that keeps flooding far above the limit is closed',
  ['--sendRateLimit=5', '--sendRateBurst=5'], async (s) => {
    const by = await s.bystanders();
    const a = uid('ff'); const b = uid('fg');
    const ca = await s.login(a);
    const sends = Array.from({ length: 400 }, (_, i) => ca.buildSend({ channelId: b, channelType: 1, payload: { type: 1, i } }).bytes);
    await ca.write(Buffer.concat(sends));
    assert.equal(await ca.waitClosed(5000), true, 'closed after 100 + 10 * burst refusals in a row');
    const acks = ca.history.filter((p) => p.type === PT.SENDACK);
    assert.ok(acks.length >= 150 && acks.length < 400, `answered until closed (${acks.length} SENDACKs)`);
    const stored = await history(s.srv, b, personFakeId(a, b), 1);
    assert.ok(stored.length <= 6, `at most the burst is stored (${stored.length})`);
    await s.checkBystanders(by, 'after a flooder was closed');
    await s.checkNewClients('after a flooder was closed');
  });

// ---------------------------------------------------------------- httpBodyLimit

limitTest('httpBodyLimit: a larger body gets 413, the API and clients keep working', ['--httpBodyLimit=2KiB'], async (s) => {
  const by = await s.bystanders();
  const big = JSON.stringify({ from_uid: by.a, channel_id: by.b, channel_type: 1, payload: Buffer.from('x'.repeat(4000)).toString('base64') });
  const r = await s.srv.post('/message/send', big);
  assert.equal(r.status, 413, r.text);
  assert.equal(r.json?.status, 413, r.text);
  const r2 = await s.srv.post('/channel', JSON.stringify({ channel_id: uid('g'), channel_type: 2, subscribers: Array.from({ length: 400 }, (_, i) => `member${i}`) }));
  assert.equal(r2.status, 413, r2.text);
  const small = await s.srv.post('/message/send', { from_uid: by.a, channel_id: by.b, channel_type: 1, payload: Buffer.from('{"type":1,"content":"small"}').toString('base64') });
  assert.equal(small.status, 200, small.text);
  const m = await by.cb.waitRecv((p) => p.json?.content === 'small');
  assert.equal(m.fromUid, by.a);
  assert.equal(by.cb.history.filter((p) => p.type === PT.RECV && p.plaintext?.length > 1000).length, 0, 'the 413 message was not sent');
  await s.checkBystanders(by, 'after 413');
});

// ---------------------------------------------------------------- httpMaxConnections

limitTest('httpMaxConnections: the HTTP connection past the cap is closed unanswered; open ones keep working; a freed slot is reusable',
  ['--httpMaxConnections=3', '--httpRequestTimeout=60s'], async (s) => {
    const by = await s.bystanders();
    // The readiness probes' fetch keeps its connection alive for a few seconds (undici's
    // keep-alive timeout): wait until a scrape sees only its own connection, twice in a row.
    for (let i = 0, alone = 0; i < 200 && alone < 2; i++) {
      alone = sampleValue(await scrape(s), 'magpie_http_connections') === 1 ? alone + 1 : 0;
      if (alone < 2) await sleep(50);
    }
    const kept = [];
    for (let i = 0; i < 3; i++) {
      const c = await httpConn(s, s.srv.httpPort);
      assert.equal((await c.request('/health'))?.status, 200, `keep-alive connection ${i + 1} of 3 is served`);
      kept.push(c);
    }
    let refused = 0;
    const over = await httpConn(s, s.srv.httpPort);
    assert.equal(await over.request('/health'), null, 'the 4th connection is closed without an answer');
    assert.equal(over.received, 0, 'not a byte of answer');
    refused++;
    // A burst of 20 more: all closed at accept, and logged in aggregate.
    const burstConns = await Promise.all(Array.from({ length: 20 }, () => httpConn(s, s.srv.httpPort)));
    for (const c of burstConns) assert.equal(await c.waitClosed(3000), true, 'a connection past the cap is closed');
    assert.equal(burstConns.reduce((n, c) => n + c.received, 0), 0, 'no answers past the cap');
    refused += burstConns.length;
    await s.checkBystanders(by, 'HTTP at its cap');
    await s.checkNewClients('HTTP at its cap');
    for (const [i, c] of kept.entries()) assert.equal((await c.request('/health'))?.status, 200, `connection ${i + 1} still served`);
    // Closing one frees its slot once the server has seen the close: retry until then.
    kept[0].close();
    let again = null;
    for (let i = 0; i < 40 && !again; i++) {
      await sleep(50);
      const c = await httpConn(s, s.srv.httpPort);
      if ((await c.request('/health'))?.status === 200) again = c;
      else refused++;
    }
    assert.ok(again, 'a new connection is served after one of the three closed');
    await s.checkBystanders(by, 'HTTP slot freed');
    again.close();
    let fam = null;
    for (let i = 0; i < 40 && !fam; i++) {  // the scrape needs the slot `again` held
      await sleep(50);
      const r = await (await httpConn(s, s.srv.managerPort)).request('/metrics', { close: true });
      if (r) fam = parseExposition(r.body);
      else refused++;
    }
    assert.ok(fam, 'the manager port (under the same cap) answers a scrape');
    assert.equal(sampleValue(fam, 'magpie_connections_refused_total', { limit: 'httpMaxConnections' }), refused,
      'every connection closed at accept is counted');
    assert.equal(sampleValue(fam, 'magpie_http_connections'), 3, 'two kept connections and the scrape');
    const lines = s.srv.log.split('\n').filter((l) => l.includes('refused HTTP connections') && l.includes('httpMaxConnections=3'));
    s.note(`${refused} refused, ${lines.length} log line(s)`);
    assert.ok(lines.length >= 1 && lines.length <= 4, `refusals are logged in aggregate, not per connection (${lines.length} lines)`);
  });

// ---------------------------------------------------------------- httpRequestTimeout (slowloris)

limitTest('httpRequestTimeout: silent, idle keep-alive and trickling HTTP connections are closed; active ones are served',
  ['--httpRequestTimeout=1s'], async (s) => {
    const by = await s.bystanders();
    const silent = await httpConn(s, s.srv.httpPort);
    const idle = await httpConn(s, s.srv.httpPort);
    assert.equal((await idle.request('/health'))?.status, 200);
    const answeredAt = Date.now();
    // Request headers written one byte every 100 ms: the deadline counts from accept, not
    // from the last byte.
    const trickle = await httpConn(s, s.srv.httpPort);
    const head = Buffer.from('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ' + 'x'.repeat(60) + '\r\n\r\n');
    const dribble = (async () => {
      for (let i = 0; i < head.length && trickle.closedAt === null; i++) { trickle.write(head.subarray(i, i + 1)); await sleep(100); }
    })();
    // A client that keeps asking is served past the timeout: it restarts after each answer.
    const active = await httpConn(s, s.srv.httpPort);
    for (let i = 0; i < 5; i++) {
      assert.equal((await active.request('/health'))?.status, 200, `active request ${i + 1}`);
      await sleep(400);
    }
    await dribble;
    assert.equal(trickle.received, 0, 'the trickled request got no answer');
    for (const [name, c, from] of [['silent', silent, silent.openedAt], ['idle keep-alive', idle, answeredAt],
      ['trickling', trickle, trickle.openedAt]]) {
      assert.equal(await c.waitClosed(4000), true, `${name} connection closed`);
      const ms = c.closedAt - from;
      s.note(`${name}: closed ${ms} ms after accept or its answer`);
      assert.ok(ms >= 700 && ms < 4000, `${name}: closed after ${ms} ms (timeout 1 s)`);
    }
    assert.equal(silent.received, 0, 'nothing sent to the silent connection');
    await s.checkBystanders(by, 'after HTTP timeouts');
  });

// ---------------------------------------------------------------- outBufferLimit

function rssAnonKb(pid) {
  const st = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/RssAnon:\s+(\d+)/.exec(st)[1]);
}

limitTest('outBufferLimit: a receiver that stops reading is disconnected; server memory stays flat; others keep receiving',
  ['--outBufferLimit=1MiB'], async (s) => {
    const by = await s.bystanders();
    const a = uid('oa'); const fast = uid('of'); const slow = uid('os'); const g = uid('og');
    const r = await s.srv.post('/channel', { channel_id: g, channel_type: 2, subscribers: [a, fast, slow] });
    assert.equal(r.status, 200, r.text);
    const cs = await s.login(slow);
    const cf = await s.login(fast, { transport: 'ws' });
    const ca = await s.login(a);
    // Warm up (scratch buffers, store pages) so the baseline is fair.
    const content = 'z'.repeat(128 * 1024);
    for (let i = 0; i < 4; i++) await ca.send({ channelId: g, channelType: 2, payload: { type: 1, content, warm: i } }, 5000);
    await cs.collect(() => true, 200);
    await cf.collect(() => true, 200);
    cs.transport.sock.pause();                       // stop reading
    const before = rssAnonKb(s.srv.proc.pid);
    let peak = before;
    const N = 320;                                   // 40 MiB pushed at the stuck receiver
    for (let i = 0; i < N; i++) {
      const ack = await ca.send({ channelId: g, channelType: 2, payload: { type: 1, content, i } }, 5000);
      assert.equal(ack.reasonCode, REASON.SUCCESS, `message ${i}`);
      await cf.waitRecv((p) => p.json?.i === i, 5000);
      if (i % 16 === 0) peak = Math.max(peak, rssAnonKb(s.srv.proc.pid));
    }
    peak = Math.max(peak, rssAnonKb(s.srv.proc.pid));
    const growMb = (peak - before) / 1024;
    s.note(`anonymous RSS ${before} kB before, peak ${peak} kB (+${growMb.toFixed(1)} MiB)`);
    if (!SANITIZED) assert.ok(growMb < 24, `anonymous RSS grew ${growMb.toFixed(1)} MiB for 40 MiB pushed at a 1 MiB limit`);
    await s.checkBystanders(by, 'while a receiver is stuck');
    cs.transport.sock.resume();
    assert.equal(await cs.waitClosed(5000), true, 'the stuck receiver was disconnected');
    const varz = await s.srv.get('/varz');
    if (varz.json && 'slow_clients' in varz.json) assert.ok(varz.json.slow_clients >= 1, 'counted as a slow client');
  }, 90000);
