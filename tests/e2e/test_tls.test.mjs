// TLS (docs/tls.md): the binary protocol on tlsAddr, WebSocket on wssAddr (also with the official
// JS SDK), the HTTP API on httpsAddr; TLS 1.0/1.1 refused, tls.minVersion=1.3 refuses 1.2;
// SIGHUP swaps the certificate for new handshakes while open connections keep working, and a
// broken file keeps the old one; garbage on a TLS port closes only that connection; a bad
// certificate at start-up stops the server with a clear message.

import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { test } from 'node:test';
import { useServer, uid } from './lib/harness.mjs';
import { freePort, MAGPIE_BIN } from './lib/server.mjs';
import { SdkUser, ConnectStatus } from './lib/sdk.mjs';
import { WkClient, REASON, sleep } from './lib/wkproto.mjs';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'magpie-tls-'));
function makeCert(name) {
  const cert = path.join(dir, `${name}.crt`); const key = path.join(dir, `${name}.key`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=${name}`,
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
  return { cert, key, pem: fs.readFileSync(cert) };
}
const first = makeCert('magpie-first');
const second = makeCert('magpie-second');
// The server reads these paths; the test swaps their contents for the reload.
const live = { cert: path.join(dir, 'live.crt'), key: path.join(dir, 'live.key') };
fs.copyFileSync(first.cert, live.cert);
fs.copyFileSync(first.key, live.key);
const ca = Buffer.concat([first.pem, second.pem]);
process.env.NODE_EXTRA_CA_CERTS = path.join(dir, 'ca.pem'); // for the SDK's child processes
fs.writeFileSync(process.env.NODE_EXTRA_CA_CERTS, ca);

const [tlsPort, wssPort, httpsPort] = [await freePort(), await freePort(), await freePort()];
const h = useServer({ args: [`--tlsAddr=127.0.0.1:${tlsPort}`, `--wssAddr=127.0.0.1:${wssPort}`,
  `--httpsAddr=127.0.0.1:${httpsPort}`, `--tls.certFile=${live.cert}`, `--tls.keyFile=${live.key}`] });
const sdks = [];
h.cleanup(() => Promise.all(sdks.map((s) => s.close())));

async function tlsLogin(user, opts = {}) {
  const c = h.track(await WkClient.tls(tlsPort, { ca, ...opts }).open());
  const ack = await c.connect({ uid: user });
  assert.equal(ack.reasonCode, REASON.SUCCESS);
  return c;
}

/** The CN of the certificate a fresh handshake on port presents. */
function peerCN(port) {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca }, () => { resolve(s.getPeerCertificate().subject.CN); s.destroy(); });
    s.on('error', reject);
  });
}

/** openssl s_client with one protocol version: 'ok' (handshake done) or the failure text. */
function sClient(port, versionFlag) {
  const r = spawnSync('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, versionFlag, '-cipher', 'DEFAULT@SECLEVEL=0', '-brief'],
    { input: '', encoding: 'utf8', timeout: 10000 });
  const out = `${r.stdout}\n${r.stderr}`;
  return /CONNECTION ESTABLISHED/.test(out) ? 'ok' : out;
}

h.test('binary protocol over TLS: CONNECT and encrypted messages both ways with a plain TCP client', async () => {
  const a = uid('ta'); const b = uid('tb');
  const ca_ = await tlsLogin(a);
  const cb = await h.login(b);
  const ack = await ca_.send({ channelId: b, channelType: 1, payload: { type: 1, content: 'over tls' } });
  assert.equal(ack.reasonCode, REASON.SUCCESS);
  assert.equal((await cb.waitRecv((p) => p.clientMsgNo === ack.sent.clientMsgNo)).json.content, 'over tls');
  const back = await cb.send({ channelId: a, channelType: 1, payload: { type: 1, content: 'x'.repeat(70000) } });
  const r = await ca_.waitRecv((p) => p.clientMsgNo === back.sent.clientMsgNo);
  assert.equal(r.json.content.length, 70000, 'a RECV larger than one TLS record arrives whole');
  assert.equal((await ca_.ping()).type, 8);
});

h.test('WSS carries the protocol, and the official JS SDK connects over wss:// and receives', async () => {
  const a = uid('wa'); const su = uid('ws');
  const w = h.track(await WkClient.wss(wssPort, { ca }).open());
  assert.equal((await w.connect({ uid: a })).reasonCode, REASON.SUCCESS);
  const s = await SdkUser.spawn(`sdk:${su}`);
  sdks.push(s);
  await s.connect({ addr: `wss://127.0.0.1:${wssPort}`, uid: su, token: 'any' });
  assert.equal((await s.waitStatus(ConnectStatus.Connected, 8000)).reasonCode, 1, s.describe());
  const ack = await w.send({ channelId: su, channelType: 1, payload: { type: 1, content: 'to the SDK over wss' } });
  assert.equal(ack.reasonCode, REASON.SUCCESS);
  const m = await s.waitMessage((x) => x.fromUID === a, 8000);
  assert.equal(m.text, 'to the SDK over wss');
  const local = await s.sendText(a, 1, 'from the SDK over wss');
  assert.equal((await w.waitRecv((p) => p.clientMsgNo === local.clientMsgNo, 8000)).json.content, 'from the SDK over wss');
  const r = await h.srv.http('GET', '/route');
  assert.equal(r.status, 200);
  assert.equal(r.json.wss_addr, `wss://127.0.0.1:${wssPort}`, '/route tells clients where WSS is');
});

h.test('HTTPS API answers like the plain one', async () => {
  const res = await new Promise((resolve, reject) => {
    const req = tls.connect({ host: '127.0.0.1', port: httpsPort, ca }, () => {
      req.write('GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    });
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => resolve(body));
    req.on('error', reject);
  });
  assert.match(res, /^HTTP\/1\.1 200/);
  assert.match(res, /"status":"ok"/);
});

h.test('TLS 1.0 and 1.1 are refused on every TLS port; 1.2 and 1.3 are accepted, 1.3 preferred', async () => {
  for (const port of [tlsPort, wssPort, httpsPort]) {
    for (const v of ['-tls1', '-tls1_1']) assert.notEqual(sClient(port, v), 'ok', `${v} on ${port}`);
    assert.equal(sClient(port, '-tls1_2'), 'ok', `TLS 1.2 on ${port}`);
    assert.equal(sClient(port, '-tls1_3'), 'ok', `TLS 1.3 on ${port}`);
  }
  const s = tls.connect({ host: '127.0.0.1', port: tlsPort, ca });
  await new Promise((r) => s.once('secureConnect', r));
  assert.equal(s.getProtocol(), 'TLSv1.3');
  s.destroy();
});

h.test('garbage on a TLS port closes only that connection', async () => {
  const a = uid('ga');
  const keep = await tlsLogin(a);
  for (const bytes of [Buffer.from([0x10, 0x05, 0x04, 0x00, 0x00, 0x00, 0x00]), Buffer.from([0x16, 0x03, 0x01, 0x00, 0x40, 0x01]), crypto.randomBytes(3000)]) {
    const s = net.connect({ host: '127.0.0.1', port: tlsPort });
    await new Promise((r) => s.once('connect', r));
    s.write(bytes);
    if (bytes.length === 6) s.end(); // a truncated ClientHello, then EOF
    await new Promise((r) => { s.once('close', r); s.on('error', () => {}); });
  }
  assert.equal((await keep.ping()).type, 8, 'the established TLS connection still works');
  await h.assertHealthy('after garbage on the TLS port');
});

h.test('SIGHUP: new handshakes get the new certificate, open connections keep going; a broken file keeps the old one', async () => {
  const a = uid('ha'); const b = uid('hb');
  assert.equal(await peerCN(tlsPort), 'magpie-first');
  const before = await tlsLogin(a);
  const cb = await h.login(b);
  fs.copyFileSync(second.cert, live.cert);
  fs.copyFileSync(second.key, live.key);
  h.srv.proc.kill('SIGHUP');
  let cn = '';
  for (let i = 0; i < 50 && cn !== 'magpie-second'; i++) { cn = await peerCN(tlsPort); if (cn !== 'magpie-second') await sleep(50); }
  assert.equal(cn, 'magpie-second', 'tlsAddr presents the new certificate');
  assert.equal(await peerCN(wssPort), 'magpie-second');
  assert.equal(await peerCN(httpsPort), 'magpie-second');
  const ack = await cb.send({ channelId: a, channelType: 1, payload: { type: 1, content: 'after reload' } });
  assert.equal((await before.waitRecv((p) => p.clientMsgNo === ack.sent.clientMsgNo)).json.content, 'after reload');
  fs.writeFileSync(live.key, 'not a key\n');
  h.srv.proc.kill('SIGHUP');
  await sleep(300);
  assert.match(h.srv.tail(20), /TLS reload failed/);
  assert.equal(await peerCN(tlsPort), 'magpie-second', 'the previous certificate is still served');
  assert.equal((await before.ping()).type, 8);
  fs.copyFileSync(second.key, live.key);
});

test('tls.minVersion=1.3 refuses TLS 1.2', async () => {
  const port = await freePort();
  const srv = await spawnMagpie([`--tlsAddr=127.0.0.1:${port}`, '--tls.minVersion=1.3', `--tls.certFile=${first.cert}`, `--tls.keyFile=${first.key}`]);
  try {
    await waitPort(port);
    assert.notEqual(sClient(port, '-tls1_2'), 'ok');
    assert.equal(sClient(port, '-tls1_3'), 'ok');
  } finally {
    if (srv.exitCode === null && srv.signalCode === null) { srv.kill('SIGTERM'); await new Promise((r) => srv.once('exit', r)); }
  }
});

test('a missing or mismatched certificate stops the start-up with a clear message', () => {
  const base = ['--addr=127.0.0.1:0', '--wsAddr=127.0.0.1:0', '--httpAddr=127.0.0.1:0', '--manager.on=false', '--demo.on=false', `--dataDir=${path.join(dir, 'bad')}`];
  let r = spawnSync(MAGPIE_BIN, [...base, '--tlsAddr=127.0.0.1:1', `--tls.certFile=${path.join(dir, 'nope.crt')}`, `--tls.keyFile=${first.key}`], { encoding: 'utf8', timeout: 10000 });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /cannot load the certificate/);
  r = spawnSync(MAGPIE_BIN, [...base, '--wssAddr=127.0.0.1:1', `--tls.certFile=${first.cert}`, `--tls.keyFile=${second.key}`], { encoding: 'utf8', timeout: 10000 });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /cannot load the private key.*mismatch|does not match/);
  r = spawnSync(MAGPIE_BIN, [...base, '--httpsAddr=127.0.0.1:1'], { encoding: 'utf8', timeout: 10000 });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /need tls\.certFile/);
});

async function spawnMagpie(args) {
  const ports = [`--addr=127.0.0.1:${await freePort()}`, `--wsAddr=127.0.0.1:${await freePort()}`, `--httpAddr=127.0.0.1:${await freePort()}`, '--manager.on=false', '--demo.on=false'];
  return spawn(MAGPIE_BIN, [...ports, `--dataDir=${fs.mkdtempSync(path.join(dir, 'd-'))}`, ...args], { stdio: 'ignore' });
}
async function waitPort(port) {
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise((r) => { const s = net.connect({ host: '127.0.0.1', port }); s.once('connect', () => { s.destroy(); r(true); }); s.once('error', () => r(false)); });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`port ${port} never opened`);
}
