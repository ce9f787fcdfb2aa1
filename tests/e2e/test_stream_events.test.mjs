// Streaming messages (http-api.md §5.14, wire-protocol.md §4.10): POST /message/event on an
// is_stream anchor answers with msg_event_seq and stream_status, pushes EVENT frames in order to
// online protocol-v5 members (never to v2 clients such as SDK 1.0.4), repeats and events after the
// end change nothing; POST /message/eventsync projects one state per key; /channel/messagesync adds
// event_meta / event_sync_hint / stream_data / end to stream messages (basic and full mode), also
// after a graceful restart (delta text kept) and kill -9 (persisted states kept); bad input is
// refused with 400 and changes nothing.

import assert from 'node:assert/strict';
import { useServer, uid, b64json } from './lib/harness.mjs';
import { PT, SETTING } from './lib/wkproto.mjs';

const h = useServer();

const PLAIN_KEYS = ['header', 'setting', 'message_id', 'message_idstr', 'client_msg_no', 'message_seq', 'from_uid',
  'channel_id', 'channel_type', 'expire', 'timestamp', 'payload'];

async function group(members) {
  const g = uid('sg');
  const r = await h.srv.post('/channel', { channel_id: g, channel_type: 2, subscribers: members });
  assert.equal(r.status, 200, r.text);
  return g;
}

/** Send a message through the API; is_stream 1 unless stream is false. Returns data. */
async function anchor({ from, channel, type = 2, cmn = uid('cmn'), stream = true }) {
  const r = await h.srv.post('/message/send', {
    from_uid: from, channel_id: channel, channel_type: type, client_msg_no: cmn,
    payload: b64json({ type: 1, content: 'thinking...' }), is_stream: stream ? 1 : 0,
  });
  assert.equal(r.status, 200, r.text);
  return r.json.data;
}

async function ev(body, status = 200) {
  const r = await h.srv.post('/message/event', body);
  assert.equal(r.status, status, `/message/event ${JSON.stringify(body).slice(0, 160)} -> ${r.status} ${r.text}`);
  return r.json;
}

async function eventsync(body) {
  const r = await h.srv.post('/message/eventsync', body);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.status, 200);
  return r.json.data;
}

async function messagesync(loginUid, channelId, channelType, mode) {
  const body = { login_uid: loginUid, channel_id: channelId, channel_type: channelType, start_message_seq: 0, end_message_seq: 0, limit: 100, pull_mode: 1 };
  if (mode) body.event_summary_mode = mode;
  const r = await h.srv.post('/channel/messagesync', body);
  assert.equal(r.status, 200, r.text);
  return r.json.messages;
}

/** The EVENT data JSON text Magpie must send (field order of WuKongIM's eventPushData). */
function eventData({ cmn, channel, type, from, idstr, key = 'main', seq, status = 'open', vis = '', payload }) {
  let s = `{"client_msg_no":${JSON.stringify(cmn)},"channel_id":${JSON.stringify(channel)},"channel_type":${type},`
    + `"from_uid":${JSON.stringify(from)},"message_id":${idstr},"event_key":${JSON.stringify(key)},`
    + `"msg_event_seq":${seq},"stream_status":"${status}"`;
  if (vis) s += `,"visibility":${JSON.stringify(vis)}`;
  if (payload !== undefined) s += `,"payload":${JSON.stringify(payload)}`;
  return `${s}}`;
}

const text = (delta) => ({ kind: 'text', delta });
const isEvent = (p) => p.type === PT.EVENT;

h.test('EVENT frames reach v5 members in order with the exact data; a v2 client gets none and stays connected', async () => {
  const bot = uid('bot'); const a = uid('a'); const b = uid('b');
  const g = await group([a, b]);
  const ca = await h.login(a, { version: 5 });
  const ca2 = await h.login(a, { version: 5, transport: 'ws', deviceFlag: 1 });
  const cb = await h.login(b, { version: 2 });
  const cmn = uid('cmn');
  const d = await anchor({ from: bot, channel: g, cmn });
  const recv = await ca.waitRecv((p) => p.clientMsgNo === cmn);
  assert.equal(recv.setting & SETTING.STREAM, SETTING.STREAM, 'the anchor carries the stream bit');

  const base = { channel_id: g, channel_type: 2, client_msg_no: cmn };
  const sent = [
    { event_id: 'd1', event_type: 'stream.delta', visibility: 'public', occurred_at: 1700000000001, payload: text('Hel') },
    { event_id: 'd2', event_type: 'STREAM.Delta', occurred_at: 1700000000002, payload: text('lo') },
    { event_id: 't1', event_type: 'tool.call', event_key: 'tool', visibility: 'private', occurred_at: 1700000000003, payload: { name: 'search', args: [1, 'x'] } },
    { event_id: 'c1', event_type: 'stream.close', occurred_at: 1700000000004, payload: { end_reason: 0 } },
    { event_id: 'f1', event_type: 'stream.finish', occurred_at: 1700000000005 },
  ];
  const expect = [
    { key: 'main', seq: 0, status: 'open', type: 'stream.delta' },
    { key: 'main', seq: 0, status: 'open', type: 'stream.delta' },
    { key: 'tool', seq: 1, status: 'open', type: 'tool.call' },
    { key: 'main', seq: 2, status: 'closed', type: 'stream.close' },
    { key: '__finish__', seq: 3, status: 'closed', type: 'stream.finish' },
  ];
  for (let i = 0; i < sent.length; i++) {
    const r = await ev({ ...base, ...sent[i] });
    assert.deepEqual(r, {
      status: 200,
      data: { client_msg_no: cmn, event_key: expect[i].key, event_id: sent[i].event_id, msg_event_seq: expect[i].seq, stream_status: expect[i].status, channel_id: g, channel_type: 2, from_uid: bot },
    }, `response to ${sent[i].event_id}`);
  }
  for (const c of [ca, ca2]) {
    for (let i = 0; i < sent.length; i++) {
      const f = await c.waitType(PT.EVENT, 3000);
      assert.equal(f.id, sent[i].event_id, `${c.name}: EVENT ${i} in order`);
      assert.equal(f.eventType, expect[i].type, 'type = event_type, lower-case');
      assert.equal(f.timestamp, BigInt(sent[i].occurred_at), 'timestamp = occurred_at');
      assert.equal(f.data.toString('utf8'), eventData({
        cmn, channel: g, type: 2, from: bot, idstr: d.message_idstr, key: expect[i].key, seq: expect[i].seq,
        status: expect[i].status, vis: sent[i].visibility, payload: sent[i].payload,
      }), `${c.name}: data of ${sent[i].event_id}`);
    }
  }
  await cb.waitRecv((p) => p.clientMsgNo === cmn).catch(() => {}); // v2 decodes stream RECVs its own way
  const extra = await cb.collect(isEvent, 300);
  assert.equal(extra.length, 0, 'no EVENT frame for a version-2 client');
  assert.equal((await cb.ping()).type, PT.PONG, 'the v2 client is still connected');
  assert.equal(cb.isClosed, false);
  assert.deepEqual(cb.errors, [], 'the v2 client decoded everything it got');
});

h.test('msg_event_seq is shared across keys; repeats and events after the end change nothing', async () => {
  const bot = uid('bot'); const a = uid('a');
  const g = await group([a]);
  const ca = await h.login(a, { version: 5 });
  const cmn = uid('cmn');
  await anchor({ from: bot, channel: g, cmn });
  const E = async (extra, status = 200) => (await ev({ channel_id: g, channel_type: 2, client_msg_no: cmn, ...extra }, status)).data;
  const pick = (x) => [x.event_key, x.event_id, x.msg_event_seq, x.stream_status];

  assert.deepEqual(pick(await E({ event_id: 'e1', event_type: 'stream.delta', payload: text('a') })), ['main', 'e1', 0, 'open']);
  assert.deepEqual(pick(await E({ event_id: 's1', event_type: 'stream.snapshot', payload: { kind: 'text', text: 'draft' } })), ['main', 's1', 1, 'open']);
  assert.deepEqual(pick(await E({ event_id: 'e2', event_type: 'stream.delta', payload: text('!') })), ['main', 'e2', 1, 'open'], 'a delta reports its key\'s last persisted seq');
  assert.deepEqual(pick(await E({ event_id: 't1', event_type: 'stream.delta', event_key: 'tool', payload: text('x') })), ['tool', 't1', 0, 'open']);
  assert.deepEqual(pick(await E({ event_id: 't2', event_type: 'tool.result', event_key: 'tool', payload: { ok: true } })), ['tool', 't2', 2, 'open']);
  // Repeating the last event_id of a key answers the same state and pushes nothing.
  assert.deepEqual(pick(await E({ event_id: 't2', event_type: 'tool.result', event_key: 'tool', payload: { ok: false } })), ['tool', 't2', 2, 'open']);
  assert.deepEqual(pick(await E({ event_id: 'e2', event_type: 'stream.delta', payload: text('!') })), ['main', 'e2', 1, 'open']);
  assert.deepEqual(pick(await E({ event_id: 'c1', event_type: 'stream.close', payload: { end_reason: 2 } })), ['main', 'c1', 3, 'closed']);
  // After the end: the projected state of the key (its last event), nothing stored or pushed.
  assert.deepEqual(pick(await E({ event_id: 'late1', event_type: 'stream.delta', payload: text('late') })), ['main', 'c1', 3, 'closed']);
  assert.deepEqual(pick(await E({ event_id: 'late2', event_type: 'stream.snapshot', payload: { kind: 'text', text: 'no' } })), ['main', 'c1', 3, 'closed']);
  assert.deepEqual(pick(await E({ event_id: 't3', event_type: 'stream.error', event_key: 'tool', payload: { error: 'boom' } })), ['tool', 't3', 4, 'error']);
  assert.deepEqual(pick(await E({ event_id: 'x1', event_type: 'stream.cancel', event_key: 'side' })), ['side', 'x1', 5, 'cancelled']);
  assert.deepEqual(pick(await E({ event_id: 'f1', event_type: 'stream.finish' })), ['__finish__', 'f1', 6, 'closed']);
  assert.deepEqual(pick(await E({ event_id: 'f1', event_type: 'stream.finish' })), ['__finish__', 'f1', 6, 'closed']);
  // A completed message takes no more events, on any key.
  assert.deepEqual(pick(await E({ event_id: 'n1', event_type: 'stream.delta', event_key: 'new', payload: text('no') })), ['new', 'n1', 6, 'closed']);

  const accepted = ['e1', 's1', 'e2', 't1', 't2', 'c1', 't3', 'x1', 'f1'];
  const got = [];
  for (let i = 0; i < accepted.length; i++) got.push((await ca.waitType(PT.EVENT, 3000)).id);
  assert.deepEqual(got, accepted, 'one EVENT per accepted event, in order');
  assert.equal((await ca.collect(isEvent, 300)).length, 0, 'nothing for repeats and refused events');

  const [m] = await messagesync(a, g, 2, 'full');
  assert.equal(m.end, 1);
  assert.equal(m.end_reason, 2);
  assert.equal(Buffer.from(m.stream_data, 'base64').toString(), 'draft!');
  assert.deepEqual(m.event_meta, {
    has_events: true, completed: true, event_version: 5, last_msg_event_seq: 5, event_count: 3,
    events: [
      { event_key: 'main', status: 'closed', last_msg_event_seq: 3, snapshot: { kind: 'text', text: 'draft!' }, end_reason: 2 },
      { event_key: 'side', status: 'cancelled', last_msg_event_seq: 5 },
      { event_key: 'tool', status: 'error', last_msg_event_seq: 4, snapshot: { kind: 'text', text: 'x' }, error: 'boom' },
    ],
  });
});

h.test('eventsync: one projected state per key, by seq; key, private, cursor and limit filters', async () => {
  const bot = uid('bot');
  const g = await group([uid('a')]);
  const cmn = uid('cmn');
  await anchor({ from: bot, channel: g, cmn });
  const base = { channel_id: g, channel_type: 2, client_msg_no: cmn };
  await ev({ ...base, event_id: 'm1', event_type: 'stream.delta', payload: text('a') });
  await ev({ ...base, event_id: 'm2', event_type: 'stream.delta', payload: text('b') });
  await ev({ ...base, event_id: 'm3', event_type: 'stream.close', visibility: 'public', occurred_at: 1700000000100 });
  await ev({ ...base, event_id: 't1', event_type: 'tool.call', event_key: 'tool', visibility: 'private', occurred_at: 1700000000200, payload: { q: 1 } });
  await ev({ ...base, event_id: 'r1', event_type: 'stream.snapshot', event_key: 'think', visibility: 'restricted', occurred_at: 1700000000300, payload: { kind: 'text', text: 'hmm' } });
  await ev({ ...base, event_id: 'd1', event_type: 'stream.delta', event_key: 'draft', payload: text('only deltas') });

  const main = { event_id: 'm3', event_key: 'main', event_type: 'stream.close', msg_event_seq: 1, occurred_at: 1700000000100, payload: { kind: 'text', text: 'ab' }, visibility: 'public' };
  const tool = { event_id: 't1', event_key: 'tool', event_type: 'tool.call', msg_event_seq: 2, occurred_at: 1700000000200, payload: { end_reason: 0, status: 'open' }, visibility: 'private' };
  const think = { event_id: 'r1', event_key: 'think', event_type: 'stream.snapshot', msg_event_seq: 3, occurred_at: 1700000000300, payload: { kind: 'text', text: 'hmm' }, visibility: 'restricted' };

  assert.deepEqual(await eventsync(base), {
    client_msg_no: cmn, events: [main], filtered_by_event_key: '', from_msg_event_seq: 0, more: 0, next_msg_event_seq: 1,
  }, 'private and restricted left out; a key with only deltas has no persisted event');
  const all = await eventsync({ ...base, include_private: 1 });
  assert.deepEqual(all.events, [main, tool, think]);
  assert.equal(all.next_msg_event_seq, 3);
  const byKey = await eventsync({ ...base, include_private: 1, event_key: ' tool ' });
  assert.deepEqual(byKey.events, [tool]);
  assert.equal(byKey.filtered_by_event_key, ' tool ');
  const after = await eventsync({ ...base, include_private: 1, from_msg_event_seq: 1 });
  assert.deepEqual(after.events, [tool, think]);
  const page = await eventsync({ ...base, include_private: 1, from_msg_event_seq: 1, limit: 1 });
  assert.deepEqual([page.events, page.more, page.next_msg_event_seq], [[tool], 1, 2]);
  const none = await eventsync({ ...base, client_msg_no: 'no-such-message' });
  assert.deepEqual([none.events, none.more, none.next_msg_event_seq], [[], 0, 0], 'an unknown message has no events');

  for (const [body, re] of [
    [{ client_msg_no: cmn }, /channel_id is required/],
    [{ channel_id: g, channel_type: 2 }, /client_msg_no is required/],
    [{ ...base, limit: -1 }, /limit must not be negative/],
    [{ ...base, from_msg_event_seq: 'x' }, /from_msg_event_seq/],
  ]) {
    const r = await h.srv.post('/message/eventsync', body);
    assert.equal(r.status, 400, r.text);
    assert.match(r.json.msg, re);
  }
});

h.test('messagesync: stream fields in full and basic mode; other messages are unchanged', async () => {
  const bot = uid('bot'); const a = uid('a');
  const g = await group([a]);
  const plain = await anchor({ from: bot, channel: g, stream: false });
  const silent = await anchor({ from: bot, channel: g }); // a stream message without events
  const cmn = uid('cmn');
  const s = await anchor({ from: bot, channel: g, cmn });
  const base = { channel_id: g, channel_type: 2, client_msg_no: cmn };
  await ev({ ...base, event_id: 'd1', event_type: 'stream.delta', payload: text('Hello, ') });
  await ev({ ...base, event_id: 'd2', event_type: 'stream.delta', payload: text('wörld') });
  await ev({ ...base, event_id: 'e1', event_type: 'stream.error', event_key: 'tool', payload: { error: 'timeout' } });

  const check = async (mode) => {
    const msgs = await messagesync(a, g, 2, mode);
    assert.equal(msgs.length, 3);
    const byCmn = Object.fromEntries(msgs.map((m) => [m.client_msg_no, m]));
    assert.deepEqual(Object.keys(byCmn[plain.client_msg_no]), PLAIN_KEYS, 'a plain message has no stream fields');
    assert.deepEqual(Object.keys(byCmn[silent.client_msg_no]), PLAIN_KEYS, 'a stream message without events neither');
    const m = byCmn[cmn];
    assert.equal(m.message_idstr, s.message_idstr);
    assert.equal(m.setting, 2);
    assert.deepEqual(Object.keys(m), ['header', 'setting', 'message_id', 'message_idstr', 'client_msg_no', 'stream_data',
      'event_meta', 'event_sync_hint', 'message_seq', 'from_uid', 'channel_id', 'channel_type', 'expire', 'timestamp', 'payload'],
    'stream fields sit after client_msg_no, as in WuKongIM');
    assert.equal(Buffer.from(m.stream_data, 'base64').toString('utf8'), 'Hello, wörld', 'stream_data: the main text');
    assert.deepEqual(m.event_sync_hint, { client_msg_no: cmn, from_msg_event_seq: 0 });
    return m.event_meta;
  };
  const full = { kind: 'text', text: 'Hello, wörld' };
  const metaBase = { has_events: true, completed: false, event_version: 1, last_msg_event_seq: 1, event_count: 2, open_event_count: 1 };
  assert.deepEqual(await check(undefined), { ...metaBase, events: [{ event_key: 'main', status: 'open', snapshot: full }, { event_key: 'tool', status: 'error', last_msg_event_seq: 1, error: 'timeout' }] }, 'default is full');
  assert.deepEqual(await check('full'), { ...metaBase, events: [{ event_key: 'main', status: 'open', snapshot: full }, { event_key: 'tool', status: 'error', last_msg_event_seq: 1, error: 'timeout' }] });
  assert.deepEqual(await check(' FULL '), { ...metaBase, events: [{ event_key: 'main', status: 'open', snapshot: full }, { event_key: 'tool', status: 'error', last_msg_event_seq: 1, error: 'timeout' }] }, 'trimmed, any case');
  assert.deepEqual(await check('basic'), { ...metaBase, events: [{ event_key: 'main', status: 'open' }, { event_key: 'tool', status: 'error', last_msg_event_seq: 1, error: 'timeout' }] }, 'basic: no snapshots');

  // An error on main: end, error; cancel on another key does not touch the legacy fields.
  await ev({ ...base, event_id: 'e2', event_type: 'stream.error', payload: { error: 'model overloaded' } });
  const [, , m] = await messagesync(a, g, 2, 'basic');
  assert.equal(m.end, 1);
  assert.equal(m.error, 'model overloaded');
  assert.equal(m.end_reason, undefined);
  assert.equal(Buffer.from(m.stream_data, 'base64').toString('utf8'), 'Hello, wörld', 'the text of an errored stream is kept');
  assert.deepEqual(Object.keys(m).slice(5, 10), ['end', 'error', 'stream_data', 'event_meta', 'event_sync_hint']);
});

h.test('person channel: EVENT reaches both sides; from_uid may be left out; eventsync with from_uid', async () => {
  const u1 = uid('p1'); const u2 = uid('p2');
  const c1 = await h.login(u1, { version: 5 });
  const c2 = await h.login(u2, { version: 5, transport: 'ws' });
  const cmn = uid('cmn');
  const d = await anchor({ from: u1, channel: u2, type: 1, cmn });
  let r = await ev({ channel_id: u2, channel_type: 1, from_uid: u1, client_msg_no: cmn, event_id: 'a', event_type: 'stream.delta', payload: text('hi') });
  assert.deepEqual(r.data, { client_msg_no: cmn, event_key: 'main', event_id: 'a', msg_event_seq: 0, stream_status: 'open', channel_id: u2, channel_type: 1, from_uid: u1 });
  r = await ev({ channel_id: u2, channel_type: 1, client_msg_no: cmn, event_id: 'b', event_type: 'stream.close' });
  assert.deepEqual([r.data.from_uid, r.data.msg_event_seq, r.data.stream_status], [u1, 1, 'closed'], 'the sender of the anchor fills from_uid');
  for (const c of [c1, c2]) {
    const f1 = await c.waitType(PT.EVENT, 3000);
    const f2 = await c.waitType(PT.EVENT, 3000);
    assert.deepEqual([f1.id, f2.id], ['a', 'b'], `${c.name}: both events`);
    assert.equal(f1.data.toString(), eventData({ cmn, channel: u2, type: 1, from: u1, idstr: d.message_idstr, seq: 0, payload: text('hi') }));
  }
  const es = await eventsync({ channel_id: u2, channel_type: 1, from_uid: u1, client_msg_no: cmn });
  assert.deepEqual(es.events.map((e) => [e.event_id, e.payload]), [['b', { kind: 'text', text: 'hi' }]]);
  const [m] = await messagesync(u2, u1, 1, 'full');
  assert.equal(m.end, 1);
  assert.equal(Buffer.from(m.stream_data, 'base64').toString(), 'hi');
  // The wrong sender names another person channel, where the message does not exist.
  r = await h.srv.post('/message/event', { channel_id: u2, channel_type: 1, from_uid: uid('x'), client_msg_no: cmn, event_id: 'c', event_type: 'stream.delta' });
  assert.equal(r.status, 400);
  assert.match(r.json.msg, /no message with client_msg_no/);
});

h.test('state survives a graceful restart (delta text kept) and kill -9 (persisted states kept)', async () => {
  const bot = uid('bot'); const a = uid('a');
  const g = await group([a]);
  const cmn = uid('cmn');
  await anchor({ from: bot, channel: g, cmn });
  const base = { channel_id: g, channel_type: 2, client_msg_no: cmn };
  await ev({ ...base, event_id: 'd1', event_type: 'stream.delta', payload: text('Hello') });
  await ev({ ...base, event_id: 't1', event_type: 'tool.call', event_key: 'tool', payload: { n: 1 } });
  await ev({ ...base, event_id: 'd2', event_type: 'stream.delta', payload: text(' world') });

  await h.srv.restart(); // SIGTERM: the delta text is stored on the way down
  let [m] = await messagesync(a, g, 2, 'full');
  assert.equal(m.end, undefined);
  assert.equal(Buffer.from(m.stream_data, 'base64').toString(), 'Hello world');
  assert.deepEqual(m.event_meta.events[0], { event_key: 'main', status: 'open', snapshot: { kind: 'text', text: 'Hello world' } });
  // A retry of the last delta is still recognized, and the text continues.
  let r = await ev({ ...base, event_id: 'd2', event_type: 'stream.delta', payload: text(' world') });
  assert.deepEqual([r.data.msg_event_seq, r.data.stream_status], [0, 'open']);
  await ev({ ...base, event_id: 'd3', event_type: 'stream.delta', payload: text('!') });
  r = await ev({ ...base, event_id: 'c1', event_type: 'stream.close', payload: { end_reason: 1 } });
  assert.equal(r.data.msg_event_seq, 2, 'msg_event_seq continues after a restart');

  await h.srv.kill9();
  await h.srv.restart();
  [m] = await messagesync(a, g, 2, 'full');
  assert.equal(m.end, 1);
  assert.equal(m.end_reason, 1);
  assert.equal(Buffer.from(m.stream_data, 'base64').toString(), 'Hello world!', 'the final text is one stored message');
  assert.deepEqual(m.event_meta, {
    has_events: true, completed: false, event_version: 2, last_msg_event_seq: 2, event_count: 2, open_event_count: 1,
    events: [
      { event_key: 'main', status: 'closed', last_msg_event_seq: 2, snapshot: { kind: 'text', text: 'Hello world!' }, end_reason: 1 },
      { event_key: 'tool', status: 'open', last_msg_event_seq: 1 },
    ],
  });
  r = await ev({ ...base, event_id: 'late', event_type: 'stream.delta', payload: text('x') });
  assert.deepEqual([r.data.event_id, r.data.msg_event_seq, r.data.stream_status], ['c1', 2, 'closed'], 'still terminal after kill -9');
  r = await ev({ ...base, event_id: 'f1', event_type: 'stream.finish' });
  assert.equal(r.data.msg_event_seq, 3);
  const es = await eventsync(base);
  assert.deepEqual(es.events.map((e) => [e.event_key, e.msg_event_seq, e.event_type]),
    [['main', 2, 'stream.close'], ['__finish__', 3, 'stream.finish'], ['tool', 3, 'stream.finish']], 'finish closed the open tool key');
});

h.test('bad input: 400 with a clear message, nothing stored or pushed', async () => {
  const bot = uid('bot'); const a = uid('a');
  const g = await group([a]);
  const ca = await h.login(a, { version: 5 });
  const cmn = uid('cmn');
  await anchor({ from: bot, channel: g, cmn });
  const plain = await anchor({ from: bot, channel: g, stream: false });
  const base = { channel_id: g, channel_type: 2, client_msg_no: cmn };
  await ev({ ...base, event_id: 's1', event_type: 'stream.snapshot', payload: { kind: 'text', text: 'kept' } });
  assert.equal((await ca.waitType(PT.EVENT, 3000)).id, 's1');
  const before = await messagesync(a, g, 2, 'full');

  const good = { ...base, event_id: 'bad', event_type: 'stream.delta', payload: text('!') };
  const drop = (k) => { const o = { ...good }; delete o[k]; return o; };
  const cases = [
    [drop('channel_id'), /channel_id is required/],
    [drop('client_msg_no'), /client_msg_no is required/],
    [drop('event_id'), /event_id is required/],
    [drop('event_type'), /event_type is required/],
    [{ ...good, event_id: '   ' }, /event_id is required/],
    ['{"channel_id":', /malformed JSON/],
    ['[1,2]', /must be a JSON object/],
    ['', /empty/],
    [{ ...good, event_id: 7 }, /"event_id" must be a string/],
    [{ ...good, channel_type: '2' }, /"channel_type" must be an integer/],
    [{ ...good, occurred_at: 'now' }, /"occurred_at" must be an integer/],
    [{ ...good, occurred_at: 1.5 }, /"occurred_at" must be an integer/],
    [{ ...good, headers: 'x' }, /"headers" must be an object/],
    [{ ...good, headers: { trace: 1 } }, /headers\.trace must be a string/],
    [{ ...good, event_key: 5 }, /"event_key" must be a string/],
    [{ ...good, message_id: 'x' }, /"message_id" must be an integer/],
    [{ ...good, client_msg_no: 'no-such-message' }, /no message with client_msg_no "no-such-message"/],
    [{ ...good, client_msg_no: plain.client_msg_no }, /is not a stream message/],
    [{ ...good, channel_type: 0 }, /unknown channel_type 0/],
    [{ ...good, channel_type: 99 }, /unknown channel_type 99/],
    [{ ...good, channel_id: 'a#b' }, /channel_id must not contain/],
    [{ ...good, visibility: 'secret' }, /visibility must be public, private or restricted/],
    [{ ...good, event_key: '__finish__' }, /reserved for stream\.finish/],
    [{ ...good, event_key: 'a\u0001b' }, /event_key must not contain control characters/],
    [{ ...good, event_id: 'x'.repeat(201) }, /event_id is longer than 200 bytes/],
    [{ ...good, event_key: 'k'.repeat(101) }, /event_key is longer than 100 bytes/],
    [{ ...good, payload: { kind: 'text', delta: 'x'.repeat(70000) } }, /payload is larger than 65536 bytes/],
  ];
  for (const [body, re] of cases) {
    const r = await h.srv.post('/message/event', body);
    assert.equal(r.status, 400, `${JSON.stringify(body).slice(0, 120)} -> ${r.status} ${r.text}`);
    assert.equal(r.json?.status, 400, r.text);
    assert.match(r.json.msg, re, `${JSON.stringify(body).slice(0, 120)}`);
  }
  assert.equal((await ca.collect(isEvent, 300)).length, 0, 'nothing pushed');
  assert.deepEqual(await messagesync(a, g, 2, 'full'), before, 'nothing changed');
  // The anchor still takes events.
  const ok = await ev(good);
  assert.equal(ok.data.event_id, 'bad');
  await h.assertHealthy('after bad stream events');
});

h.test('limits: snapshot text per key and event keys per message', async () => {
  const bot = uid('bot');
  const g = await group([uid('a')]);
  const cmn = uid('cmn');
  await anchor({ from: bot, channel: g, cmn });
  const base = { channel_id: g, channel_type: 2, client_msg_no: cmn };
  const chunk = 'y'.repeat(60000);
  for (let i = 0; i < 17; i++) await ev({ ...base, event_id: `big${i}`, event_type: 'stream.delta', payload: text(chunk) });
  const r = await h.srv.post('/message/event', { ...base, event_id: 'big17', event_type: 'stream.delta', payload: text(chunk) });
  assert.equal(r.status, 400, r.text);
  assert.match(r.json.msg, /snapshot text of event_key "main" would exceed 1048576 bytes/);
  const [m] = await messagesync(uid('v'), g, 2, 'basic');
  assert.equal(Buffer.from(m.stream_data, 'base64').length, 17 * 60000, 'the text stays as it was');

  for (let i = 1; i < 64; i++) await ev({ ...base, event_id: `k${i}`, event_type: 'stream.delta', event_key: `k${i}`, payload: text('.') });
  const over = await h.srv.post('/message/event', { ...base, event_id: 'k64', event_type: 'stream.delta', event_key: 'k64', payload: text('.') });
  assert.equal(over.status, 400, over.text);
  assert.match(over.json.msg, /at most 64 event keys/);
  const fin = await ev({ ...base, event_id: 'f', event_type: 'stream.finish' });
  assert.deepEqual([fin.data.msg_event_seq, fin.data.stream_status], [1, 'closed'], 'stream.finish is always possible');
  const [done] = await messagesync(uid('v'), g, 2, 'basic');
  assert.equal(done.event_meta.completed, true);
  assert.equal(done.event_meta.event_count, 64);
  assert.equal(done.event_meta.open_event_count, undefined, 'finish closed every key');
  assert.equal(done.end, 1);
});
