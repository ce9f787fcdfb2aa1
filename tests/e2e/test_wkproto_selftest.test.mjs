// The test client itself against the spec's vectors (wire-protocol.md §1.4, §7.9, §13). No server:
// if these fail, every other result in this suite is suspect.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  encodeVarint, decodeVarint, encodeConnect, encodeSend, encodeRecvack, decodePacket,
  PacketSplitter, x25519KeyPair, x25519Shared, deriveSession, Session, PT, FLAG,
} from './lib/wkproto.mjs';

const hex = (s) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

test('varint examples (§1.4)', () => {
  const cases = [[12, '0c'], [127, '7f'], [128, '8001'], [213, 'd501'], [321, 'c102'], [16383, 'ff7f'], [16384, '808001'], [1048576, '808040'], [268435455, 'ffffff7f']];
  for (const [v, h] of cases) {
    assert.equal(encodeVarint(v).toString('hex'), h, `encode ${v}`);
    assert.deepEqual(decodeVarint(hex(h)), { value: v, length: h.length / 2 }, `decode ${h}`);
  }
  assert.equal(decodeVarint(hex('80')), null, 'incomplete varint waits');
  assert.throws(() => decodeVarint(hex('ffffffff01')), /4th byte/);
});

test('X25519 + key derivation worked example (§7.9)', () => {
  const client = x25519KeyPair(Buffer.from('0123456789abcdef0123456789abcdef', 'ascii'));
  assert.equal(client.publicRaw.toString('base64'), 'hlF7wMOf6Ha3ZGy1407gPa9xzLrWdFDBapcK2MvAPn4=');
  const server = x25519KeyPair(hex('0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20'));
  assert.equal(server.publicRaw.toString('base64'), 'B6N8vBQgk8i3VdwbEOhstCY3StFqqFPtC9/AsrhtHHw=');
  const s1 = x25519Shared(client.privateKey, server.publicRaw);
  const s2 = x25519Shared(server.privateKey, client.publicRaw);
  assert.equal(s1.toString('hex'), '4556e110d50f5f9fb0871b27adaa947f9ead6688599435824f585e6482b81250');
  assert.deepEqual(s1, s2);
  const sess = deriveSession(s1, 'a1B2c3D4e5F6g7H8');
  assert.equal(sess.aesKey.toString('ascii'), '4989ad64ccaf943d');
});

test('payload encryption and msgKeys (§7.9)', () => {
  const sess = new Session(Buffer.from('4989ad64ccaf943d'), Buffer.from('a1B2c3D4e5F6g7H8'));
  const wire = sess.encryptB64(Buffer.from('{"content":"hi","type":1}'));
  assert.equal(wire, '+AE5c4WmG8GulT9emlNiVUnrlTxM7ocLTWoF+SztK/Q=');
  assert.equal(sess.decryptB64(wire).toString(), '{"content":"hi","type":1}');
  assert.equal(sess.sendMsgKey({ clientSeq: 1, clientMsgNo: 'cmn1', channelId: 'u2', channelType: 1, payloadB64: wire }), '0efe6776a486c329dfc55501bdbf7728');
  assert.equal(sess.recvMsgKey({ messageId: 1234567890123n, messageSeq: 7, clientMsgNo: 'cmn1', timestamp: 1700000001, fromUid: 'u1', channelId: 'u1', channelType: 1, payloadB64: wire }), 'f874a77c6d21b020b881b91a6b117b29');
  assert.throws(() => sess.decryptB64('not base64!'), /base64/);
  assert.throws(() => sess.decryptB64(Buffer.from('abc').toString('base64')), /multiple of 16/);
});

test('V1 CONNECT encodes byte-exact', () => {
  const b = encodeConnect({ version: 2, deviceFlag: 1, deviceId: 'd1W', uid: 'u1', token: 'tk1', clientTimestamp: 1700000000000, clientKey: 'hlF7wMOf6Ha3ZGy1407gPa9xzLrWdFDBapcK2MvAPn4=' });
  assert.equal(b.toString('hex'), '104602010003643157000275310003746b310000018bcfe56800002c686c4637774d4f66364861335a47793134303767506139787a4c7257644644426170634b324d7641506e343d');
});

test('V2 / V2b / V2c CONNACK decode', () => {
  const v2 = decodePacket(hex('2049fffffffffffffa2401002c42364e38764251676b38693356647762454f687374435933537446717146507443392f41737268744848773d001061314232633344346535463667374838'), 2);
  assert.equal(v2.hasServerVersion, false);
  assert.equal(v2.timeDiff, -1500n);
  assert.equal(v2.reasonCode, 1);
  assert.equal(v2.serverKey, 'B6N8vBQgk8i3VdwbEOhstCY3StFqqFPtC9/AsrhtHHw=');
  assert.equal(v2.salt, 'a1B2c3D4e5F6g7H8');
  assert.equal(v2.nodeId, undefined);
  const v2b = decodePacket(hex('215205fffffffffffffa2401002c42364e38764251676b38693356647762454f687374435933537446717146507443392f41737268744848773d0010613142326333443465354636673748380000000000000001'), 5);
  assert.equal(v2b.serverVersion, 5);
  assert.equal(v2b.nodeId, 1n);
  assert.equal(v2b.trailing, 0);
  const v2c = decodePacket(hex('200d00000000000000000200000000'), 2);
  assert.equal(v2c.reasonCode, 2);
  assert.equal(v2c.serverKey, '');
});

test('V3 SEND encodes byte-exact with the session', () => {
  const sess = new Session(Buffer.from('4989ad64ccaf943d'), Buffer.from('a1B2c3D4e5F6g7H8'));
  const wire = Buffer.from(sess.encryptB64(Buffer.from('{"content":"hi","type":1}')));
  const msgKey = sess.sendMsgKey({ clientSeq: 1, clientMsgNo: 'cmn1', channelId: 'u2', channelType: 1, payloadB64: wire });
  const b = encodeSend({ version: 2, flags: FLAG.RED_DOT, setting: 0, clientSeq: 1, clientMsgNo: 'cmn1', channelId: 'u2', channelType: 1, msgKey, payload: wire });
  assert.equal(b.toString('hex'), '325e00000000010004636d6e310002753201002030656665363737366134383663333239646663353535303162646266373732382b4145356334576d473847756c5439656d6c4e6956556e726c54784d376f634c54576f462b537a744b2f513d');
});

test('V4 SENDACK, V5 RECV decode; V6 RECVACK encode', () => {
  const ack = decodePacket(hex('42110000011f71fb04cb000000010000000701'), 2);
  assert.equal(ack.type, PT.SENDACK);
  assert.equal(ack.redDot, true);
  assert.equal(ack.messageId, 1234567890123n);
  assert.equal(ack.clientSeq, 1);
  assert.equal(ack.messageSeq, 7);
  assert.equal(ack.reasonCode, 1);
  const recv = decodePacket(hex('526e00002066383734613737633664323162303230623838316239316136623131376232390002753100027531010004636d6e310000011f71fb04cb000000076553f1012b4145356334576d473847756c5439656d6c4e6956556e726c54784d376f634c54576f462b537a744b2f513d'), 2);
  assert.equal(recv.msgKey, 'f874a77c6d21b020b881b91a6b117b29');
  assert.equal(recv.fromUid, 'u1');
  assert.equal(recv.channelId, 'u1');
  assert.equal(recv.channelType, 1);
  assert.equal(recv.clientMsgNo, 'cmn1');
  assert.equal(recv.messageId, 1234567890123n);
  assert.equal(recv.messageSeq, 7);
  assert.equal(recv.timestamp, 1700000001);
  assert.equal(recv.payload.toString(), '+AE5c4WmG8GulT9emlNiVUnrlTxM7ocLTWoF+SztK/Q=');
  const ra = encodeRecvack({ version: 2, flags: recv.flags, messageId: recv.messageId, messageSeq: recv.messageSeq });
  assert.equal(ra.toString('hex'), '620c0000011f71fb04cb00000007');
});

test('V9 RECV at v5 (topic, expire) and V11 RECV at v4 with stream fields decode', () => {
  const v9 = decodePacket(hex('552f1800000003313233000433343334020000000a0002633200000000000004c7008cf9966553f10000017468656c6c6f'), 5);
  assert.equal(v9.noPersist && v9.syncOnce, true);
  assert.equal(v9.expire, 10);
  assert.equal(v9.messageId, 1223n);
  assert.equal(v9.messageSeq, 9238934);
  assert.equal(v9.topic, 't');
  assert.equal(v9.payload.toString(), 'hello');
  const v11 = decodePacket(hex('50320200000002753100026731020000000000026333010002733100000000000000630000000000000063000000016553f10078'), 4);
  assert.equal(v11.streamNo, 's1');
  assert.equal(v11.streamId, 99n);
  assert.equal(v11.messageSeq, 1);
  assert.equal(v11.payload.toString(), 'x');
});

test('splitter handles coalesced and split input', () => {
  const all = Buffer.concat([hex('80'), hex('42110000011f71fb04cb000000010000000701'), hex('80')]);
  const sp = new PacketSplitter();
  const got = [];
  for (const byte of all) got.push(...sp.push(Buffer.from([byte])));
  assert.equal(got.length, 3);
  assert.equal(new PacketSplitter().push(all).length, 3);
});
