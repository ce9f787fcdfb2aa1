// wkproto.mjs - an independent WuKongIM binary-protocol client for the e2e tests, written from
// shared/spec/wire-protocol.md only (never from the server's sources), so that a bug shared by the
// server's codec and this client cannot hide. It covers protocol versions 2..5: packet codec,
// X25519 + AES-128-CBC + MD5 msgKey crypto (§7), and TCP / WebSocket transports (§8).
//
// Every inbound RECV is checked: its msgKey is recomputed (§7.6) and its payload decrypted. The
// results are attached to the packet (msgKeyValid, plaintext, json); waitRecv() fails the test if
// the server's msgKey is wrong, and auto-RECVACK is only sent for RECVs that verify, as SDK 1.0.4
// does.

import net from 'node:net';
import tls from 'node:tls';
import crypto from 'node:crypto';
import { WebSocket } from 'ws';

export const PT = Object.freeze({
  CONNECT: 1, CONNACK: 2, SEND: 3, SENDACK: 4, RECV: 5, RECVACK: 6, PING: 7, PONG: 8,
  DISCONNECT: 9, SUB: 10, SUBACK: 11, EVENT: 12,
});
export const PT_NAME = Object.fromEntries(Object.entries(PT).map(([k, v]) => [v, k]));

// Header flag bits (low nibble of byte 0), §1.3.
export const FLAG = Object.freeze({ DUP: 0x08, SYNC_ONCE: 0x04, RED_DOT: 0x02, NO_PERSIST: 0x01 });
// Setting byte bits as the current server defines them, §5.
export const SETTING = Object.freeze({ RECEIPT: 0x80, SIGNAL: 0x20, NO_ENCRYPT: 0x10, TOPIC: 0x08, STREAM: 0x02 });

export const REASON = Object.freeze({
  UNKNOWN: 0, SUCCESS: 1, AUTH_FAIL: 2, SUBSCRIBER_NOT_EXIST: 3, IN_BLACKLIST: 4,
  CHANNEL_NOT_EXIST: 5, MSG_KEY_ERROR: 8, PAYLOAD_DECODE_ERROR: 9, CONNECT_KICK: 12, NOT_IN_WHITELIST: 13,
  SYSTEM_ERROR: 15, BAN: 19, CLIENT_KEY_IS_EMPTY: 21, DISBAND: 24, SEND_BAN: 25,
});

export const MAX_REMAINING_LENGTH = 268435455;

// ---------------------------------------------------------------- varint (§1.4)

/** Encode a remaining length. 0 is encoded as one 0x00 byte (§1.4 quirk: safe either way). */
export function encodeVarint(value) {
  if (value < 0 || value > MAX_REMAINING_LENGTH) throw new RangeError(`varint out of range: ${value}`);
  if (value === 0) return Buffer.from([0]);
  const out = [];
  while (value > 0) {
    let b = value % 128;
    value = Math.floor(value / 128);
    if (value > 0) b |= 0x80;
    out.push(b);
  }
  return Buffer.from(out);
}

/**
 * Decode a varint at buf[offset]. Returns {value, length} when complete, null when more bytes are
 * needed, and throws when a 4th byte still has its continuation bit set.
 */
export function decodeVarint(buf, offset = 0) {
  let value = 0;
  for (let i = 0; i < 4; i++) {
    if (offset + i >= buf.length) return null;
    const b = buf[offset + i];
    value += (b & 0x7f) * 2 ** (7 * i);
    if ((b & 0x80) === 0) return { value, length: i + 1 };
  }
  throw new Error('varint: continuation bit set on 4th byte');
}

// ---------------------------------------------------------------- primitive writer / reader (§2)

class Writer {
  constructor() { this.parts = []; }
  u8(v) { this.parts.push(Buffer.from([v & 0xff])); return this; }
  u16(v) { const b = Buffer.alloc(2); b.writeUInt16BE(v); this.parts.push(b); return this; }
  u32(v) { const b = Buffer.alloc(4); b.writeUInt32BE(Number(v) >>> 0); this.parts.push(b); return this; }
  i32(v) { const b = Buffer.alloc(4); b.writeInt32BE(Number(v)); this.parts.push(b); return this; }
  i64(v) { const b = Buffer.alloc(8); b.writeBigInt64BE(BigInt(v)); this.parts.push(b); return this; }
  u64(v) { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(v)); this.parts.push(b); return this; }
  str(s) {
    const b = Buffer.isBuffer(s) ? s : Buffer.from(String(s ?? ''), 'utf8');
    if (b.length > 0xffff) throw new RangeError('string too long');
    this.u16(b.length);
    this.parts.push(b);
    return this;
  }
  raw(b) { this.parts.push(Buffer.isBuffer(b) ? b : Buffer.from(b)); return this; }
  bytes() { return Buffer.concat(this.parts); }
}

class Reader {
  constructor(buf) { this.buf = buf; this.off = 0; }
  need(n, what) {
    if (this.off + n > this.buf.length) {
      throw new Error(`decode: body too short reading ${what} (need ${n} at ${this.off}, have ${this.buf.length})`);
    }
  }
  u8(w = 'u8') { this.need(1, w); return this.buf[this.off++]; }
  u16(w = 'u16') { this.need(2, w); const v = this.buf.readUInt16BE(this.off); this.off += 2; return v; }
  u32(w = 'u32') { this.need(4, w); const v = this.buf.readUInt32BE(this.off); this.off += 4; return v; }
  i32(w = 'i32') { this.need(4, w); const v = this.buf.readInt32BE(this.off); this.off += 4; return v; }
  i64(w = 'i64') { this.need(8, w); const v = this.buf.readBigInt64BE(this.off); this.off += 8; return v; }
  u64(w = 'u64') { this.need(8, w); const v = this.buf.readBigUInt64BE(this.off); this.off += 8; return v; }
  strBuf(w = 'str') { const n = this.u16(w); this.need(n, w); const b = this.buf.subarray(this.off, this.off + n); this.off += n; return b; }
  str(w = 'str') { return this.strBuf(w).toString('utf8'); }
  rest() { const b = this.buf.subarray(this.off); this.off = this.buf.length; return b; }
  remaining() { return this.buf.length - this.off; }
}

/** Frame a body: byte 0 then remaining-length varint then body. */
export function frame(type, flags, body) {
  return Buffer.concat([Buffer.from([((type & 0x0f) << 4) | (flags & 0x0f)]), encodeVarint(body.length), body]);
}

// ---------------------------------------------------------------- encoders (client -> server)

export function encodeConnect({ version = 4, deviceFlag = 0, deviceId = '', uid = '', token = '', clientTimestamp = Date.now(), clientKey = '', flags = 0 }) {
  const body = new Writer().u8(version).u8(deviceFlag).str(deviceId).str(uid).str(token)
    .i64(clientTimestamp).str(clientKey).bytes();
  return frame(PT.CONNECT, flags, body);
}

export function encodeSend({ version, flags = FLAG.RED_DOT, setting = 0, clientSeq, clientMsgNo = '', streamNo = '', channelId, channelType, expire = 0, msgKey = '', topic = '', payload }) {
  const w = new Writer().u8(setting).u32(clientSeq).str(clientMsgNo);
  if (version >= 2 && version <= 4 && (setting & SETTING.STREAM)) w.str(streamNo);
  w.str(channelId).u8(channelType);
  if (version >= 3) w.u32(expire);
  w.str(msgKey);
  if (setting & SETTING.TOPIC) w.str(topic);
  w.raw(payload);
  return frame(PT.SEND, flags, w.bytes());
}

export function encodeRecvack({ version, flags = 0, messageId, messageSeq }) {
  const w = new Writer().i64(messageId);
  if (version >= 6) w.u64(messageSeq); else w.u32(messageSeq);
  return frame(PT.RECVACK, flags, w.bytes());
}

export const PING = Buffer.from([0x70]);

// ---------------------------------------------------------------- decoders (server -> client)

/**
 * Decode one complete packet (byte 0 .. end of body). `version` is the negotiated version used for
 * version-gated fields. Throws on a malformed body. The result always has type, flags, raw.
 */
export function decodePacket(raw, version) {
  const header = raw[0];
  const type = header >> 4;
  const flags = header & 0x0f;
  const base = {
    type, name: PT_NAME[type] ?? `TYPE${type}`, flags, raw: Buffer.from(raw),
    dup: !!(flags & FLAG.DUP), syncOnce: !!(flags & FLAG.SYNC_ONCE),
    redDot: !!(flags & FLAG.RED_DOT), noPersist: !!(flags & FLAG.NO_PERSIST),
  };
  if (type === PT.PING || type === PT.PONG) return base;
  const vl = decodeVarint(raw, 1);
  const body = raw.subarray(1 + vl.length, 1 + vl.length + vl.value);
  const r = new Reader(body);
  switch (type) {
    case PT.CONNACK: {
      const p = { ...base, hasServerVersion: !!(flags & 0x01) };
      if (p.hasServerVersion) p.serverVersion = r.u8('serverVersion');
      p.timeDiff = r.i64('timeDiff');
      p.reasonCode = r.u8('reasonCode');
      p.serverKey = r.str('serverKey');
      p.salt = r.str('salt');
      const negotiated = p.hasServerVersion ? p.serverVersion : version;
      if (negotiated >= 4 && r.remaining() >= 8) p.nodeId = r.u64('nodeId');
      p.trailing = r.remaining();
      return p;
    }
    case PT.SENDACK: {
      const p = { ...base };
      p.messageId = r.i64('messageID');
      p.clientSeq = r.u32('clientSeq');
      p.messageSeq = version >= 6 ? Number(r.u64('messageSeq')) : r.u32('messageSeq');
      p.reasonCode = r.u8('reasonCode');
      if (r.remaining() >= 2) p.clientMsgNo = r.str('clientMsgNo');
      p.trailing = r.remaining();
      return p;
    }
    case PT.RECV: {
      const p = { ...base };
      p.setting = r.u8('setting');
      p.msgKey = r.str('msgKey');
      p.fromUid = r.str('fromUID');
      p.channelId = r.str('channelID');
      p.channelType = r.u8('channelType');
      if (version >= 3) p.expire = r.u32('expire');
      p.clientMsgNo = r.str('clientMsgNo');
      if (version >= 2 && version <= 4 && (p.setting & SETTING.STREAM)) {
        p.streamFlag = r.u8('streamFlag');
        p.streamNo = r.str('streamNo');
        p.streamId = r.u64('streamId');
      }
      p.messageId = r.i64('messageID');
      p.messageSeq = version >= 6 ? Number(r.u64('messageSeq')) : r.u32('messageSeq');
      p.timestamp = r.i32('timestamp');
      if (p.setting & SETTING.TOPIC) p.topic = r.str('topic');
      p.payload = Buffer.from(r.rest());
      return p;
    }
    case PT.DISCONNECT: {
      const p = { ...base };
      p.reasonCode = r.u8('reasonCode');
      p.reason = r.str('reason');
      return p;
    }
    case PT.SUBACK: {
      const p = { ...base };
      p.subNo = r.str(); p.channelId = r.str(); p.channelType = r.u8(); p.action = r.u8(); p.reasonCode = r.u8();
      return p;
    }
    case PT.EVENT: {
      const p = { ...base };
      p.id = r.str(); p.eventType = r.str(); p.timestamp = r.i64(); p.data = Buffer.from(r.rest());
      return p;
    }
    default:
      return { ...base, body: Buffer.from(body) };
  }
}

/**
 * Incremental splitter: feed bytes, get complete raw packets. PING/PONG are one byte. Throws on a
 * bad varint (which the client records as a protocol error from the server).
 */
export class PacketSplitter {
  constructor() { this.buf = Buffer.alloc(0); }
  push(chunk) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : Buffer.from(chunk);
    const out = [];
    for (;;) {
      if (this.buf.length === 0) break;
      const type = this.buf[0] >> 4;
      if (type === PT.PING || type === PT.PONG) {
        out.push(this.buf.subarray(0, 1));
        this.buf = this.buf.subarray(1);
        continue;
      }
      const vl = decodeVarint(this.buf, 1);
      if (!vl) break;
      const total = 1 + vl.length + vl.value;
      if (this.buf.length < total) break;
      out.push(this.buf.subarray(0, total));
      this.buf = this.buf.subarray(total);
    }
    return out;
  }
  get pending() { return this.buf.length; }
}

// ---------------------------------------------------------------- crypto (§7)

const X25519_SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');
const X25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

export function md5hex(data) { return crypto.createHash('md5').update(data).digest('hex'); }

/** New X25519 key pair; privateRaw may be given (32 bytes) for reproducible vectors. */
export function x25519KeyPair(privateRaw) {
  let privateKey;
  if (privateRaw) {
    privateKey = crypto.createPrivateKey({ key: Buffer.concat([X25519_PKCS8_PREFIX, Buffer.from(privateRaw)]), format: 'der', type: 'pkcs8' });
  } else {
    privateKey = crypto.generateKeyPairSync('x25519').privateKey;
  }
  const publicKey = crypto.createPublicKey(privateKey);
  const publicRaw = Buffer.from(publicKey.export({ format: 'jwk' }).x, 'base64url');
  return { privateKey, publicKey, publicRaw };
}

export function x25519Shared(privateKey, peerPublicRaw) {
  const peer = Buffer.from(peerPublicRaw);
  if (peer.length !== 32) throw new Error(`server public key is ${peer.length} bytes, want 32`);
  const publicKey = crypto.createPublicKey({ key: Buffer.concat([X25519_SPKI_PREFIX, peer]), format: 'der', type: 'spki' });
  return crypto.diffieHellman({ privateKey, publicKey });
}

/** AES key/IV derivation, §7.2: key = first 16 hex chars of md5(base64(shared)) as ASCII; IV = salt. */
export function deriveSession(sharedSecret, salt) {
  const aesKey = Buffer.from(md5hex(Buffer.from(sharedSecret).toString('base64')).slice(0, 16), 'ascii');
  const iv = Buffer.from(salt.length > 16 ? salt.slice(0, 16) : salt, 'ascii');
  if (iv.length !== 16) throw new Error(`salt must be 16 chars, got ${JSON.stringify(salt)}`);
  return new Session(aesKey, iv);
}

export class Session {
  constructor(aesKey, iv) { this.aesKey = Buffer.from(aesKey); this.iv = Buffer.from(iv); }
  /** AES-128-CBC/PKCS7 then standard Base64 text (§7.3). */
  encryptB64(plain) {
    const c = crypto.createCipheriv('aes-128-cbc', this.aesKey, this.iv);
    return Buffer.concat([c.update(Buffer.from(plain)), c.final()]).toString('base64');
  }
  /** Inverse of encryptB64; throws on bad base64 / length / padding. */
  decryptB64(b64text) {
    const text = Buffer.from(b64text).toString('ascii');
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) throw new Error('payload is not standard base64');
    const ct = Buffer.from(text, 'base64');
    if (ct.length === 0 || ct.length % 16 !== 0) throw new Error(`ciphertext length ${ct.length} not a multiple of 16`);
    const d = crypto.createDecipheriv('aes-128-cbc', this.aesKey, this.iv);
    return Buffer.concat([d.update(ct), d.final()]);
  }
  /** msgKey = hex(md5(base64(AES(sign)))) (§7.5/§7.6). */
  msgKey(sign) { return md5hex(Buffer.from(this.encryptB64(Buffer.from(sign, 'utf8')), 'ascii')); }
  sendMsgKey({ clientSeq, clientMsgNo, channelId, channelType, payloadB64 }) {
    return this.msgKey(`${clientSeq}${clientMsgNo}${channelId}${channelType}${Buffer.from(payloadB64).toString('utf8')}`);
  }
  recvMsgKey({ messageId, messageSeq, clientMsgNo, timestamp, fromUid, channelId, channelType, payloadB64 }) {
    return this.msgKey(`${messageId}${messageSeq}${clientMsgNo}${timestamp}${fromUid}${channelId}${channelType}${Buffer.from(payloadB64).toString('utf8')}`);
  }
}

// ---------------------------------------------------------------- transports

class TcpTransport {
  constructor(host, port) { this.host = host; this.port = port; this.kind = 'tcp'; }
  open(onData, onClose) {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: this.host, port: this.port });
      this.sock = s;
      s.setNoDelay(true);
      let opened = false;
      s.once('connect', () => { opened = true; resolve(); });
      s.on('data', (d) => onData(d, false));
      s.on('error', (e) => { if (!opened) reject(e); });
      s.on('close', () => onClose());
    });
  }
  write(buf) {
    return new Promise((resolve) => {
      if (!this.sock || this.sock.destroyed) { resolve(false); return; }
      this.sock.write(buf, (err) => resolve(!err));
    });
  }
  close() { if (this.sock && !this.sock.destroyed) this.sock.destroy(); }
  end() { if (this.sock && !this.sock.destroyed) this.sock.end(); }
}

/** The binary protocol over TLS (tlsAddr). tlsOpts: node tls.connect options (ca, minVersion...). */
class TlsTransport extends TcpTransport {
  constructor(host, port, tlsOpts) { super(host, port); this.kind = 'tls'; this.tlsOpts = tlsOpts; }
  open(onData, onClose) {
    return new Promise((resolve, reject) => {
      const s = tls.connect({ host: this.host, port: this.port, ...this.tlsOpts });
      this.sock = s;
      s.setNoDelay(true);
      let opened = false;
      s.once('secureConnect', () => { opened = true; resolve(); });
      s.on('data', (d) => onData(d, false));
      s.on('error', (e) => { if (!opened) reject(e); });
      s.on('close', () => onClose());
    });
  }
}

class WsTransport {
  constructor(url, wsOpts = {}) { this.url = url; this.kind = 'ws'; this.wsOpts = wsOpts; }
  open(onData, onClose) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url, { perMessageDeflate: false, handshakeTimeout: 5000, ...this.wsOpts });
      this.ws = ws;
      let opened = false;
      ws.on('open', () => { opened = true; resolve(); });
      ws.on('message', (data, isBinary) => onData(Buffer.from(data), true, isBinary));
      ws.on('error', (e) => { if (!opened) reject(e); });
      ws.on('close', () => onClose());
    });
  }
  write(buf) {
    return new Promise((resolve) => {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) { resolve(false); return; }
      this.ws.send(buf, { binary: true }, (err) => resolve(!err));
    });
  }
  close() { if (this.ws) this.ws.terminate(); }
  end() { if (this.ws) this.ws.close(); }
}

// ---------------------------------------------------------------- client

let idCounter = 0;

/**
 * A protocol client. Create with WkClient.tcp(port) / WkClient.ws(port), then open().
 * Inbound packets are decoded into `inbox` (all of them, in order, in `history` too); waitFor()
 * takes the first unconsumed packet matching a predicate.
 */
export class WkClient {
  static tcp(port, opts = {}) { return new WkClient(new TcpTransport(opts.host ?? '127.0.0.1', port), opts); }
  static ws(port, opts = {}) { return new WkClient(new WsTransport(`ws://${opts.host ?? '127.0.0.1'}:${port}${opts.path ?? '/'}`), opts); }
  static tls(port, tlsOpts, opts = {}) { return new WkClient(new TlsTransport(opts.host ?? '127.0.0.1', port, tlsOpts), opts); }
  static wss(port, tlsOpts, opts = {}) { return new WkClient(new WsTransport(`wss://127.0.0.1:${port}/`, tlsOpts), opts); }

  constructor(transport, { autoAck = true, name } = {}) {
    this.transport = transport;
    this.autoAck = autoAck;
    this.name = name ?? `client${++idCounter}`;
    this.splitter = new PacketSplitter();
    this.history = [];          // every decoded packet, in arrival order
    this.inbox = [];            // not yet consumed by waitFor
    this.waiters = new Set();
    this.errors = [];           // protocol errors detected in server output
    this.wsMessages = [];       // per WS message: number of packets it completed, leftover bytes
    this.rawIn = [];            // every inbound chunk (TCP read or WS message), for byte-level checks
    this.version = 4;
    this.clientSeq = 0;
    this.session = null;
    this.isClosed = false;
    this.closed = new Promise((r) => { this._resolveClosed = r; });
  }

  get kind() { return this.transport.kind; }

  async open() {
    await this.transport.open((d, isWs, isBinary) => this._onData(d, isWs, isBinary), () => this._onClose());
    return this;
  }

  _onClose() {
    if (this.isClosed) return;
    this.isClosed = true;
    this._resolveClosed(true);
    for (const w of this.waiters) w.onClose();
  }

  _onData(chunk, isWs, isBinary) {
    this.rawIn.push(Buffer.from(chunk));
    let raws;
    try {
      raws = this.splitter.push(chunk);
    } catch (e) {
      this.errors.push(`framing: ${e.message}`);
      return;
    }
    if (isWs) this.wsMessages.push({ binary: isBinary, packets: raws.length, leftover: this.splitter.pending, bytes: chunk.length });
    for (const raw of raws) {
      let p;
      try {
        p = decodePacket(raw, this.version);
      } catch (e) {
        this.errors.push(`decode ${PT_NAME[raw[0] >> 4]}: ${e.message} raw=${raw.toString('hex')}`);
        continue;
      }
      p.at = Date.now();
      if (p.type === PT.RECV) this._verifyRecv(p);
      this.history.push(p);
      this.inbox.push(p);
      if (p.type === PT.RECV && this.autoAck && p.msgKeyValid && p.decryptOk !== false) {
        this.recvack(p).catch(() => {});
      }
    }
    this._pump();
  }

  _verifyRecv(p) {
    if (!this.session) { p.msgKeyValid = p.msgKey === ''; p.plaintext = p.payload; return; }
    const expected = this.session.recvMsgKey({
      messageId: p.messageId, messageSeq: p.messageSeq, clientMsgNo: p.clientMsgNo, timestamp: p.timestamp,
      fromUid: p.fromUid, channelId: p.channelId, channelType: p.channelType, payloadB64: p.payload,
    });
    p.expectedMsgKey = expected;
    p.msgKeyValid = expected === p.msgKey;
    try {
      p.plaintext = this.session.decryptB64(p.payload);
      p.decryptOk = true;
      try { p.json = JSON.parse(p.plaintext.toString('utf8')); } catch { p.json = undefined; }
    } catch (e) {
      p.decryptOk = false;
      p.decryptError = e.message;
    }
  }

  _pump() {
    for (const w of [...this.waiters]) {
      const i = this.inbox.findIndex(w.pred);
      if (i >= 0) {
        const [p] = this.inbox.splice(i, 1);
        w.resolve(p);
      }
    }
  }

  /**
   * Resolve with the first unconsumed inbound packet matching pred (consuming it). Rejects after
   * timeoutMs, or when the connection closes first.
   */
  waitFor(pred, timeoutMs = 3000, what = 'packet') {
    const i = this.inbox.findIndex(pred);
    if (i >= 0) return Promise.resolve(this.inbox.splice(i, 1)[0]);
    return new Promise((resolve, reject) => {
      const w = {
        pred,
        resolve: (p) => { clearTimeout(w.timer); this.waiters.delete(w); resolve(p); },
        onClose: () => {
          // Let packets that arrived together with the FIN be matched first.
          setImmediate(() => {
            if (!this.waiters.has(w)) return;
            clearTimeout(w.timer); this.waiters.delete(w);
            reject(new Error(`${this.name}: connection closed while waiting for ${what}; seen: ${this.describeHistory()}`));
          });
        },
      };
      w.timer = setTimeout(() => {
        this.waiters.delete(w);
        reject(new Error(`${this.name}: timed out after ${timeoutMs} ms waiting for ${what}; seen: ${this.describeHistory()}`));
      }, timeoutMs);
      this.waiters.add(w);
      if (this.isClosed) w.onClose();
    });
  }

  /** Wait for a packet of the given type (consumes it). */
  waitType(type, timeoutMs = 3000, extraPred = () => true) {
    return this.waitFor((p) => p.type === type && extraPred(p), timeoutMs, PT_NAME[type]);
  }

  /**
   * Wait for a RECV matching pred; fails if the server's msgKey does not verify or the payload does
   * not decrypt (§7.6) - a compatible client would drop such a message.
   */
  async waitRecv(pred = () => true, timeoutMs = 3000) {
    const p = await this.waitFor((x) => x.type === PT.RECV && pred(x), timeoutMs, 'RECV');
    if (!p.msgKeyValid) {
      throw new Error(`${this.name}: RECV msgKey mismatch: server sent ${p.msgKey}, expected ${p.expectedMsgKey} (raw ${p.raw.toString('hex')})`);
    }
    if (this.session && !p.decryptOk) throw new Error(`${this.name}: RECV payload does not decrypt: ${p.decryptError}`);
    return p;
  }

  /** Resolve with the list of matching packets that arrive (unconsumed) within ms; consumes them. */
  async collect(pred, ms) {
    await sleep(ms);
    const got = [];
    this.inbox = this.inbox.filter((p) => { if (pred(p)) { got.push(p); return false; } return true; });
    return got;
  }

  /** Resolves true if the connection closes within timeoutMs, false otherwise. */
  async waitClosed(timeoutMs = 3000) {
    if (this.isClosed) return true;
    let t;
    const r = await Promise.race([this.closed, new Promise((res) => { t = setTimeout(() => res(false), timeoutMs); })]);
    clearTimeout(t);
    return r === true;
  }

  describeHistory(max = 12) {
    const h = this.history.slice(-max).map((p) => {
      let s = p.name;
      if (p.reasonCode !== undefined) s += `(reason ${p.reasonCode})`;
      if (p.type === PT.RECV) s += `(${p.fromUid}->${p.channelId}/${p.channelType} seq ${p.messageSeq})`;
      if (p.type === PT.SENDACK) s += `(cseq ${p.clientSeq} seq ${p.messageSeq})`;
      return s;
    });
    return `[${h.join(', ')}]${this.isClosed ? ' closed' : ''}${this.errors.length ? ' errors: ' + this.errors.join('; ') : ''}`;
  }

  write(buf) { return this.transport.write(Buffer.from(buf)); }

  /**
   * Send CONNECT and wait for CONNACK. On success derives the session keys. Options:
   * uid, token, deviceFlag (0), deviceId (random), version (4), clientKey (override), timeoutMs.
   */
  async connect({ uid, token = '', deviceFlag = 0, deviceId, version = 4, clientKey, clientTimestamp = Date.now(), timeoutMs = 3000 } = {}) {
    this.version = Math.min(version, 5) || 1;
    this.uid = uid;
    this.keys = x25519KeyPair();
    const key = clientKey ?? this.keys.publicRaw.toString('base64');
    this.sentTimestamp = clientTimestamp;
    await this.write(encodeConnect({
      version, deviceFlag, deviceId: deviceId ?? crypto.randomBytes(16).toString('hex') + 'T', uid, token, clientTimestamp, clientKey: key,
    }));
    const ack = await this.waitType(PT.CONNACK, timeoutMs);
    if (ack.hasServerVersion) this.version = ack.serverVersion;
    if (ack.reasonCode === REASON.SUCCESS && ack.serverKey) {
      const shared = x25519Shared(this.keys.privateKey, Buffer.from(ack.serverKey, 'base64'));
      this.session = deriveSession(shared, ack.salt);
    }
    this.connack = ack;
    return ack;
  }

  nextClientSeq() { return ++this.clientSeq; }

  /**
   * Build (without sending) an encrypted SEND. payload: object (JSON), string or Buffer plaintext.
   * Overrides: msgKey, rawPayload (already-encrypted bytes on the wire), clientSeq, flags, setting.
   */
  buildSend({ channelId, channelType, payload, clientMsgNo, clientSeq, flags = FLAG.RED_DOT, setting = 0, expire = 0, topic, msgKey, rawPayload }) {
    const plain = Buffer.isBuffer(payload) ? payload : Buffer.from(typeof payload === 'string' ? payload : JSON.stringify(payload), 'utf8');
    const cseq = clientSeq ?? this.nextClientSeq();
    const cmn = clientMsgNo ?? crypto.randomBytes(16).toString('hex');
    let wire;
    if (rawPayload !== undefined) wire = Buffer.from(rawPayload);
    else wire = this.session ? Buffer.from(this.session.encryptB64(plain), 'ascii') : plain;
    let key = msgKey;
    if (key === undefined) {
      key = this.session ? this.session.sendMsgKey({ clientSeq: cseq, clientMsgNo: cmn, channelId, channelType, payloadB64: wire }) : '';
    }
    const bytes = encodeSend({ version: this.version, flags, setting: setting | (topic ? SETTING.TOPIC : 0), clientSeq: cseq, clientMsgNo: cmn, channelId, channelType, expire, msgKey: key, topic, payload: wire });
    return { bytes, clientSeq: cseq, clientMsgNo: cmn, plaintext: plain, wirePayload: wire };
  }

  /** Send a SEND and resolve with its SENDACK (matched by clientSeq). Returns the ack with .sent attached. */
  async send(opts, timeoutMs = 3000) {
    const s = this.buildSend(opts);
    await this.write(s.bytes);
    const ack = await this.waitType(PT.SENDACK, timeoutMs, (p) => p.clientSeq === s.clientSeq);
    ack.sent = s;
    return ack;
  }

  recvack(p, flags) {
    const f = flags ?? (p.flags & (FLAG.NO_PERSIST | FLAG.SYNC_ONCE | FLAG.RED_DOT));
    return this.write(encodeRecvack({ version: this.version, flags: f, messageId: p.messageId, messageSeq: p.messageSeq }));
  }

  /** Send PING and wait for the PONG. Returns the PONG packet. */
  async ping(timeoutMs = 3000) {
    await this.write(PING);
    return this.waitType(PT.PONG, timeoutMs);
  }

  close() { this.transport.close(); }
}

export function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }
