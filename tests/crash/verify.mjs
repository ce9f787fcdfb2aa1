// verify.mjs - the checks of the crash-safety run, through the HTTP API only (docs/api.md).
//
// A cycle's channels are those magpie-bench's `mixed` workload creates (bench/plan.c): person
// pairs "<p>a<i>" -> "<p>b<i>", groups "<p>g<i>" whose member u0 sends, and the big group
// "<p>fan" whose member f0 sends. Each channel has exactly one sender on one connection, so
// its k-th stored message must be the sender's k-th SEND: client_msg_no "<h>-<p>-<idx>-<k>" and
// a payload with "seq":k, "src":idx. That single rule catches lost, duplicated, reordered and
// foreign messages; the ack log then pins every acknowledged (message_seq, client_msg_no,
// message_id), and the conversation rows must agree with the stored messages.

import fs from 'node:fs';

/** The channels (and who sends / reads them) of one bench `mixed` run with prefix p. */
export function planChannels(p, w) {
  const chans = [];
  for (let i = 0; i < w.pairs; i++) {
    chans.push({ prefix: p, type: 1, id: `${p}b${i}`, sender: `${p}a${i}`, idx: 2 * i, readers: [`${p}b${i}`] });
  }
  const np = 2 * w.pairs;
  for (let g = 0; g < w.groups; g++) {
    // u1 never connects; the last member neither.
    const readers = [`${p}g${g}u1`];
    if (w.groupSize > 2) readers.push(`${p}g${g}u${w.groupSize - 1}`);
    chans.push({ prefix: p, type: 2, id: `${p}g${g}`, sender: `${p}g${g}u0`, idx: np + g, readers });
  }
  // f1 is an online receiver, the last member never connects.
  chans.push({ prefix: p, type: 2, id: `${p}fan`, sender: `${p}f0`, idx: np + w.groups, readers: [`${p}f1`, `${p}f${w.bigMembers - 1}`] });
  return chans;
}

const M64 = (1n << 64n) - 1n;

/**
 * The client_msg_no magpie-bench sends as connection idx's k-th SEND (bench/client.c
 * client_msg_no): a splitmix64 hash of (idx, k) in 16 hex digits, random-looking as a real
 * SDK's, then "<p>-<idx>-<k>".
 */
export function benchCmn(p, idx, k) {
  let h = (((BigInt(idx) << 32n) | BigInt(k)) + 0x9e3779b97f4a7c15n) & M64;
  h = ((h ^ (h >> 30n)) * 0xbf58476d1ce4e5b9n) & M64;
  h = ((h ^ (h >> 27n)) * 0x94d049bb133111ebn) & M64;
  h ^= h >> 31n;
  return `${h.toString(16).padStart(16, '0')}-${p}-${idx}-${k}`;
}

/** key of a channel as the ack log names it: "<channel_id> <channel_type>". */
export const chanKey = (id, type) => `${id} ${type}`;

/**
 * Parse an ack log: "channel_id channel_type client_msg_no message_id message_seq from_uid"
 * per line. Returns Map chanKey -> Map(seq -> {cmn, id, from}); problems go to fail().
 */
export function readAckLog(file, fail) {
  const acks = new Map();
  let n = 0;
  const text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
  const lines = text.split('\n');
  if (lines[lines.length - 1] !== '') fail(`${file}: the last line is incomplete`);
  for (const line of lines) {
    if (!line) continue;
    const f = line.split(' ');
    if (f.length !== 6 || !/^\d+$/.test(f[4]) || !/^-?\d+$/.test(f[3])) {
      fail(`${file}: malformed line "${line}"`);
      continue;
    }
    const [id, type, cmn, mid, seq, from] = f;
    const key = chanKey(id, Number(type));
    if (!acks.has(key)) acks.set(key, new Map());
    const m = acks.get(key);
    const s = Number(seq);
    if (m.has(s)) fail(`${key}: two SENDACKs carry message_seq ${s} (${m.get(s).cmn}, ${cmn})`);
    m.set(s, { cmn, id: mid, from });
    n++;
  }
  return { acks, n };
}

// CRC32-IEEE, for the person-channel fake id (spec http-api.md §5.3).
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();
function crc32(s) {
  let c = 0xffffffff;
  for (const b of Buffer.from(s)) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
/** The stored id of a person channel between a and b: the uid with the larger CRC32 first. */
export const fakeId = (a, b) => (crc32(a) > crc32(b) ? `${a}@${b}` : `${b}@${a}`);

export class Api {
  constructor(base) { this.base = base; }

  async req(method, path, body) {
    let lastErr;
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const r = await fetch(this.base + path, {
          method,
          headers: body ? { 'content-type': 'application/json' } : undefined,
          body: body ? JSON.stringify(body) : undefined,
          signal: AbortSignal.timeout(30000),
        });
        const text = await r.text();
        if (r.status !== 200) throw new Error(`${method} ${path} ${JSON.stringify(body ?? '')}: HTTP ${r.status} ${text.slice(0, 300)}`);
        return JSON.parse(text);
      } catch (e) {
        if (/HTTP \d/.test(e.message)) throw e; // an answer, not a transport hiccup
        lastErr = e;
      }
    }
    throw new Error(`${method} ${path}: ${lastErr.cause?.code ?? lastErr.message}`);
  }

  post(path, body) { return this.req('POST', path, body); }
  get(path) { return this.req('GET', path); }
}

/** Every stored message of a channel, ascending, paging with pull_mode 1 (docs/api.md). */
async function allMessages(api, ch) {
  const out = [];
  const limit = 10000;
  for (let start = 1; ;) {
    const r = await api.post('/channel/messagesync', {
      login_uid: ch.sender, channel_id: ch.id, channel_type: ch.type,
      start_message_seq: start, end_message_seq: 0, limit, pull_mode: 1,
    });
    out.push(...r.messages);
    if (r.messages.length < limit) return out;
    start = r.messages[r.messages.length - 1].message_seq + 1;
  }
}

function payloadOf(m) {
  try { return JSON.parse(Buffer.from(m.payload, 'base64').toString('utf8')); } catch { return null; }
}

/**
 * Full check of one channel: the messages, the acknowledged sends, the conversations.
 * acks: Map seq -> {cmn, id, from} (may be undefined: nothing acknowledged).
 * Returns {max, last: {cmn, id} | null, acked, unacked (stored without a SENDACK)} and calls
 * fail(text) per problem.
 */
export async function verifyChannel(api, ch, acks, fail) {
  const name = `${ch.type === 1 ? 'person' : 'group'} ${ch.id}`;
  const { message_seq: max } = await api.get(
    `/channel/max_message_seq?channel_id=${encodeURIComponent(ch.id)}&channel_type=${ch.type}&login_uid=${encodeURIComponent(ch.sender)}`);
  const msgs = await allMessages(api, ch);
  if (msgs.length !== max) fail(`${name}: max_message_seq ${max} but ${msgs.length} messages stored`);
  const ids = new Set();
  const bad = [];
  msgs.forEach((m, i) => {
    const k = i + 1;
    const want = benchCmn(ch.prefix, ch.idx, k);
    const p = payloadOf(m);
    const why = [];
    if (m.message_seq !== k) why.push(`message_seq ${m.message_seq} (gap or duplicate)`);
    if (m.client_msg_no !== want) why.push(`client_msg_no ${m.client_msg_no}, want ${want}`);
    if (m.from_uid !== ch.sender) why.push(`from_uid ${m.from_uid}`);
    if (m.channel_id !== ch.id || m.channel_type !== ch.type) why.push(`channel ${m.channel_id}/${m.channel_type}`);
    if (!p || p.seq !== k || p.src !== ch.idx) why.push(`payload ${p ? JSON.stringify({ seq: p.seq, src: p.src }) : 'unreadable'}`);
    if (ids.has(m.message_idstr)) why.push(`message_id ${m.message_idstr} repeated`);
    ids.add(m.message_idstr);
    if (why.length) bad.push(`#${k}: ${why.join(', ')}`);
  });
  if (bad.length) fail(`${name}: ${bad.length} stored messages out of place: ${bad.slice(0, 5).join('; ')}${bad.length > 5 ? '; ...' : ''}`);

  let acked = 0;
  let ackedStored = 0;
  const missing = [];
  for (const [seq, a] of acks ?? []) {
    acked++;
    const m = msgs[seq - 1]?.message_seq === seq ? msgs[seq - 1] : msgs.find((x) => x.message_seq === seq);
    if (a.from !== ch.sender) fail(`${name}: SENDACK logged for sender ${a.from}, the channel's sender is ${ch.sender}`);
    if (!m) missing.push(`seq ${seq} (${a.cmn}) not stored`);
    else if (m.client_msg_no !== a.cmn || m.message_idstr !== a.id)
      missing.push(`seq ${seq}: acknowledged ${a.cmn}/${a.id}, stored ${m.client_msg_no}/${m.message_idstr}`);
    else ackedStored++;
  }
  if (missing.length) fail(`${name}: ${missing.length} of ${acked} acknowledged messages wrong or lost: ${missing.slice(0, 5).join('; ')}`);

  await verifyConversations(api, ch, max, msgs[max - 1], fail);
  const last = max ? { cmn: msgs[max - 1]?.client_msg_no, id: msgs[max - 1]?.message_idstr } : null;
  return { max, last, acked, unacked: msgs.length - ackedStored };
}

/**
 * Conversations (docs/api.md, /conversation/sync): the sender's newest message is its own, so
 * its row reads unread 0, readed_to_msg_seq = max. Readers never read (RECVACK does not move
 * the read pointer), so unread = max and readed_to_msg_seq 0. Every row's last_msg_seq and
 * last_client_msg_no name the newest stored message. A channel without messages has no row.
 * Each uid of a cycle belongs to exactly one channel, so it has exactly one conversation.
 */
async function verifyConversations(api, ch, max, lastMsg, fail) {
  const want = [[ch.sender, ch.id, 0, max]];
  for (const r of ch.readers) want.push([r, ch.type === 1 ? ch.sender : ch.id, max, 0]);
  for (const [uid, convId, unread, readed] of want) {
    const rows = await api.post('/conversation/sync', { uid, msg_count: 1 });
    const row = rows.find((c) => c.channel_id === convId && c.channel_type === ch.type);
    const who = `${uid} in ${ch.type === 1 ? 'person' : 'group'} ${ch.id}`;
    if (rows.length > 1) fail(`${who}: /conversation/sync lists ${rows.length} conversations, want at most 1`);
    if (max === 0) {
      if (row) fail(`${who}: a conversation row without any stored message: ${JSON.stringify(row).slice(0, 200)}`);
      continue;
    }
    if (!row) {
      fail(`${who}: no conversation, but ${max} messages are stored`);
      continue;
    }
    const got = { last_msg_seq: row.last_msg_seq, last_client_msg_no: row.last_client_msg_no, unread: row.unread, readed_to_msg_seq: row.readed_to_msg_seq, recent: row.recents?.[0]?.message_idstr };
    const exp = { last_msg_seq: max, last_client_msg_no: lastMsg?.client_msg_no, unread, readed_to_msg_seq: readed, recent: lastMsg?.message_idstr };
    if (JSON.stringify(got) !== JSON.stringify(exp)) fail(`${who}: conversation ${JSON.stringify(got)}, want ${JSON.stringify(exp)}`);
  }
}

/**
 * After the restart the channel's sequence must go on from what is stored (acknowledged or
 * not): the sender's next message, sent through /message/send as the bench would have sent
 * it (client_msg_no and payload of SEND max + 1), must get message_seq max + 1. rec is
 * updated so later checks expect it.
 */
export async function sendNext(api, ch, rec, fail) {
  const k = rec.max + 1;
  const cmn = benchCmn(ch.prefix, ch.idx, k);
  const payload = Buffer.from(JSON.stringify({ type: 1, seq: k, src: ch.idx, pad: 'after the restart' })).toString('base64');
  const r = await api.post('/message/send', { header: { red_dot: 1 }, from_uid: ch.sender, channel_id: ch.id, channel_type: ch.type, client_msg_no: cmn, payload });
  if (r.data?.message_seq !== k) {
    fail(`${ch.type === 1 ? 'person' : 'group'} ${ch.id}: the first message after the restart got message_seq ${r.data?.message_seq}, want ${k} (stored max + 1)`);
  }
  rec.max = k;
  rec.last = { cmn, id: r.data?.message_idstr };
}

/**
 * Quick check that channels verified earlier are unchanged: last_msg_seq and the newest
 * message from /conversation/syncByChannels, 500 channels per call (person channels by
 * their stored id, so one uid serves every channel).
 */
export async function quickCheck(api, entries, fail) {
  for (let i = 0; i < entries.length; i += 500) {
    const part = entries.slice(i, i + 500);
    const channels = part.map(({ ch }) => ({ channel_id: ch.type === 1 ? fakeId(ch.sender, ch.id) : ch.id, channel_type: ch.type }));
    const rows = await api.post('/conversation/syncByChannels', { uid: 'crashcheck', channels, msg_count: 1 });
    if (rows.length !== part.length) {
      fail(`/conversation/syncByChannels answered ${rows.length} rows for ${part.length} channels`);
      continue;
    }
    part.forEach(({ ch, rec }, j) => {
      const r = rows[j];
      const got = { max: r.last_msg_seq, cmn: r.recents?.[0]?.client_msg_no ?? null, id: r.recents?.[0]?.message_idstr ?? null };
      const exp = { max: rec.max, cmn: rec.last?.cmn ?? null, id: rec.last?.id ?? null };
      if (JSON.stringify(got) !== JSON.stringify(exp))
        fail(`${ch.type === 1 ? 'person' : 'group'} ${ch.id} (verified after an earlier cycle) changed: ${JSON.stringify(got)}, was ${JSON.stringify(exp)}`);
    });
  }
}

/** Run fn over items with at most `width` at a time. */
export async function pool(items, width, fn) {
  let next = 0;
  const run = async () => { while (next < items.length) { const i = next++; await fn(items[i], i); } };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, run));
}
