// JSON-RPC over WebSocket and TCP (wire-protocol.md §9): a client whose first byte is '{' speaks
// WuKongIM's JSON-RPC dialect (as EasyJSSDK does) and interoperates with binary clients: connect,
// send (answered with the SENDACK fields), recv notifications with base64 plaintext payloads,
// recvack, ping, disconnect notifications on a kick, and errors for bad requests.

import assert from 'node:assert/strict';
import net from 'node:net';
import WebSocket from 'ws';
import { useServer, uid, b64json } from './lib/harness.mjs';
import { PT, sleep } from './lib/wkproto.mjs';

const h = useServer();

/** A minimal JSON-RPC client over WebSocket text messages or raw TCP. */
class RpcClient {
  constructor() { this.inbox = []; this.waiters = []; this.closed = false; this.buf = ''; }

  static async ws(port) {
    const c = new RpcClient();
    c.sock = new WebSocket(`ws://127.0.0.1:${port}/`);
    c.sock.on('message', (data, isBinary) => { c.binaryFrames = (c.binaryFrames ?? 0) + (isBinary ? 1 : 0); c.push(JSON.parse(data.toString('utf8'))); });
    c.sock.on('close', () => { c.closed = true; c.wake(); });
    c.sock.on('error', () => {});
    await new Promise((res, rej) => { c.sock.once('open', res); c.sock.once('error', rej); });
    c.write = (obj) => c.sock.send(typeof obj === 'string' ? obj : JSON.stringify(obj));
    c.close = () => c.sock.terminate();
    return c;
  }

  static async tcp(port) {
    const c = new RpcClient();
    c.sock = net.connect(port, '127.0.0.1');
    c.sock.on('data', (d) => c.feed(d.toString('utf8')));
    c.sock.on('close', () => { c.closed = true; c.wake(); });
    c.sock.on('error', () => {});
    await new Promise((res, rej) => { c.sock.once('connect', res); c.sock.once('error', rej); });
    c.write = (obj) => c.sock.write(typeof obj === 'string' ? obj : JSON.stringify(obj));
    c.close = () => c.sock.destroy();
    return c;
  }

  // TCP delivers a byte stream of back-to-back JSON objects: split on balanced braces.
  feed(text) {
    this.buf += text;
    for (;;) {
      let depth = 0; let inStr = false; let esc = false; let end = -1;
      for (let i = 0; i < this.buf.length; i++) {
        const ch = this.buf[i];
        if (inStr) { if (esc) esc = false; else if (ch === '\\') esc = true; else if (ch === '"') inStr = false; continue; }
        if (ch === '"') inStr = true; else if (ch === '{') depth++; else if (ch === '}' && --depth === 0) { end = i; break; }
      }
      if (end < 0) return;
      this.push(JSON.parse(this.buf.slice(0, end + 1)));
      this.buf = this.buf.slice(end + 1);
    }
  }

  push(msg) { this.inbox.push(msg); this.wake(); }
  wake() { for (const w of this.waiters.splice(0)) w(); }

  async next(pred, timeoutMs = 3000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.inbox.findIndex(pred);
      if (i >= 0) return this.inbox.splice(i, 1)[0];
      if (this.closed) throw new Error('connection closed while waiting');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timeout; inbox: ${JSON.stringify(this.inbox)}`);
      await new Promise((res) => { this.waiters.push(res); setTimeout(res, left); });
    }
  }

  async call(method, params, id = `${method}-${Math.random().toString(16).slice(2)}`) {
    this.write({ jsonrpc: '2.0', method, id, ...(params === undefined ? {} : { params }) });
    return this.next((m) => m.id === id);
  }

  async waitClosed(timeoutMs = 3000) {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed && Date.now() < deadline) await sleep(20);
    return this.closed;
  }
}

const clients = [];
async function rpc(kind = 'ws') {
  const c = kind === 'ws' ? await RpcClient.ws(h.srv.wsPort) : await RpcClient.tcp(h.srv.tcpPort);
  clients.push(c);
  h.cleanup(() => c.close());
  return c;
}

h.test('connect, send to a binary client, receive from it, recvack, ping (WebSocket)', async () => {
  const a = uid('ja'); const b = uid('jb');
  const ca = await rpc('ws');
  const r = await ca.call('connect', { uid: a, token: 'x', deviceFlag: 1 }, 'req-conn-1');
  assert.deepEqual(Object.keys(r), ['jsonrpc', 'id', 'result']);
  assert.equal(r.result.reasonCode, 1);
  assert.equal(r.result.serverVersion, 5);
  assert.equal(typeof r.result.nodeId, 'number');
  assert.equal(r.result.serverKey, undefined, 'no encryption: no serverKey');
  assert.equal(r.result.salt, undefined);
  assert.equal(ca.binaryFrames ?? 0, 0, 'answers are text messages');

  const cb = await h.login(b);
  const payload = { type: 1, content: 'hi from json-rpc' };
  const s = await ca.call('send', { channelId: b, channelType: 1, clientMsgNo: 'cmn-j1', header: { redDot: true }, payload: b64json(payload) }, 'req-send-1');
  assert.equal(s.result.reasonCode, 1);
  assert.equal(s.result.messageSeq, 1);
  assert.match(s.result.messageId, /^[1-9][0-9]*$/, 'messageId is a decimal string');
  assert.deepEqual(s.result.header, { redDot: true });
  const got = await cb.waitRecv();
  assert.equal(String(got.messageId), s.result.messageId);
  assert.equal(got.fromUid, a);
  assert.equal(got.clientMsgNo, 'cmn-j1');
  assert.deepEqual(got.json, payload, 'the binary client decrypts what the JSON-RPC client sent');

  const back = { type: 1, content: 'hi from binary' };
  const ack = await cb.send({ channelId: a, channelType: 1, payload: back });
  const n = await ca.next((m) => m.method === 'recv');
  assert.equal(n.jsonrpc, '2.0');
  assert.equal(n.id, undefined);
  assert.equal(n.params.messageId, String(ack.messageId));
  assert.equal(n.params.messageSeq, 2);
  assert.equal(n.params.fromUid, b);
  assert.equal(n.params.channelId, b);
  assert.equal(n.params.channelType, 1);
  assert.equal(n.params.clientMsgNo, ack.sent.clientMsgNo);
  assert.deepEqual(n.params.header, { redDot: true });
  assert.equal(n.params.msgKey, undefined, 'no msgKey without encryption');
  assert.deepEqual(JSON.parse(Buffer.from(n.params.payload, 'base64').toString('utf8')), back);
  ca.write({ jsonrpc: '2.0', method: 'recvack', params: { messageId: n.params.messageId, messageSeq: n.params.messageSeq } });

  const pong = await ca.call('ping', undefined, 'req-ping-1');
  assert.deepEqual(pong, { jsonrpc: '2.0', id: 'req-ping-1' });
});

h.test('JSON-RPC over raw TCP; a generated clientMsgNo; history has the message', async () => {
  const a = uid('ta'); const b = uid('tb');
  const ca = await rpc('tcp');
  assert.equal((await ca.call('connect', { uid: a, token: 'x' })).result.reasonCode, 1);
  const s = await ca.call('send', { channelId: b, channelType: 1, payload: b64json({ type: 1, content: 'tcp' }) });
  assert.equal(s.result.reasonCode, 1);
  const hist = await h.srv.post('/channel/messagesync', { login_uid: b, channel_id: a, channel_type: 1, start_message_seq: 0, end_message_seq: 0, limit: 5, pull_mode: 1 });
  assert.equal(hist.json.messages.length, 1);
  assert.equal(hist.json.messages[0].message_idstr, s.result.messageId);
  assert.match(hist.json.messages[0].client_msg_no, /^[0-9a-f]{32}0$/);
  assert.deepEqual((await ca.call('ping')).result, undefined);
});

h.test('a kick arrives as a disconnect notification', async () => {
  const a = uid('ka');
  const ca = await rpc('ws');
  assert.equal((await ca.call('connect', { uid: a, token: 'x', deviceFlag: 1 })).result.reasonCode, 1);
  const q = await h.srv.post('/user/device_quit', { uid: a, device_flag: 1 });
  assert.equal(q.status, 200);
  const d = await ca.next((m) => m.method === 'disconnect');
  assert.equal(d.params.reasonCode, 12);
  assert.equal(typeof d.params.reason, 'string');
  assert.equal(await ca.waitClosed(5000), true);
});

h.test('bad requests: errors keep the connection, protocol violations close it', async () => {
  const first = await rpc('ws');
  first.write({ jsonrpc: '2.0', method: 'ping', id: 'p' });
  assert.equal(await first.waitClosed(), true, 'anything but connect first closes');

  const refused = await rpc('ws');
  const nack = await refused.call('connect', { uid: 'bad@uid', token: 'x' }, 'nc');
  assert.equal(nack.result.reasonCode, 2, 'a refused connect is answered (WuKongIM stays silent)');
  assert.equal(await refused.waitClosed(), true);

  const c = await rpc('ws');
  assert.equal((await c.call('connect', { uid: uid('bc'), token: 'x' })).result.reasonCode, 1);
  const sub = await c.call('subscribe', { channelId: 'x' }, 'sub-1');
  assert.deepEqual(sub, { jsonrpc: '2.0', id: 'sub-1', error: { code: 0, message: 'method subscribe is not supported' } });
  const badPayload = await c.call('send', { channelId: 'x', channelType: 1, payload: 'not base64!' }, 'bp');
  assert.equal(badPayload.error.code, 0);
  assert.match(badPayload.error.message, /payload/);
  const badType = await c.call('send', { channelId: 'x', channelType: 'one', payload: 'e30=' }, 'bt');
  assert.match(badType.error.message, /channelType/);
  const badChannel = await c.call('send', { channelId: 'x', channelType: 99, payload: 'e30=' }, 'ct');
  assert.equal(badChannel.result.reasonCode, 23, 'an unknown channel type is a SENDACK refusal');
  assert.deepEqual(await c.call('ping', undefined, 'still'), { jsonrpc: '2.0', id: 'still' });
  c.write('{"jsonrpc":"2.0","method":');
  c.write('"ping","id":"split"}');
  assert.deepEqual(await c.next((m) => m.id === 'split'), { jsonrpc: '2.0', id: 'split' }, 'an object split over two messages');
  c.write('{not json}');
  assert.equal(await c.waitClosed(), true, 'undecodable JSON closes the connection');

  const bin = await h.login(uid('hb'));
  assert.equal((await bin.ping()).type, PT.PONG, 'binary clients unaffected');
});
