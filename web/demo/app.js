// app.js - the Magpie chat demo: log in as any uid, chat 1:1 and in groups, with history and
// unread counts kept by the server. Messaging goes through the official WuKongIM JS SDK
// (wukongimjssdk@1.0.4, bundled as vendor/wksdk.js, global WK) over the WebSocket port; the
// token, the route, conversations, history and groups go through the HTTP API (?apiurl=).
'use strict';

const PERSON = 1;
const GROUP = 2;
const HISTORY_LIMIT = 50;
const STORE_KEY = 'magpie-demo-login';

const $ = (sel) => document.querySelector(sel);
const params = new URLSearchParams(location.search);
const API = (params.get('apiurl') || `${location.protocol}//${location.hostname}:5001`).replace(/\/$/, '');

const state = {
  uid: '',
  convs: new Map(), // "id:type" -> {id, type, unread, last}
  open: null,       // {id, type}
  pending: new Map(), // clientSeq -> element of an own message waiting for its SENDACK
};

// ---- HTTP API -------------------------------------------------------------------------------

async function api(path, body) {
  const r = await fetch(`${API}${path}`, body === undefined ? {} : {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
  });
  const text = await r.text();
  let json;
  try { json = text ? JSON.parse(text) : undefined; } catch { json = undefined; }
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status} ${json?.msg ?? text}`);
  return json;
}

function randomToken() {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

function decodePayload(b64) {
  try {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return {};
  }
}

const key = (id, type) => `${id}:${type}`;

// ---- rendering ------------------------------------------------------------------------------

function renderConversations() {
  const ul = $('#conversations');
  ul.textContent = '';
  const list = [...state.convs.values()].sort((a, b) => (b.ts || 0) - (a.ts || 0));
  for (const c of list) {
    const li = document.createElement('li');
    li.className = 'conv';
    li.dataset.channel = key(c.id, c.type);
    if (state.open && key(state.open.id, state.open.type) === li.dataset.channel) li.classList.add('active');
    const left = document.createElement('div');
    const name = document.createElement('div');
    name.className = 'name';
    name.textContent = c.type === GROUP ? `# ${c.id}` : c.id;
    const last = document.createElement('div');
    last.className = 'last';
    last.textContent = c.last || '';
    left.append(name, last);
    const badge = document.createElement('span');
    badge.className = 'unread';
    badge.dataset.count = String(c.unread || 0);
    badge.textContent = String(c.unread || 0);
    li.append(left, badge);
    li.addEventListener('click', () => openChannel(c.id, c.type));
    ul.append(li);
  }
}

function addMessage({ from, text, seq, mine, pending }) {
  const div = document.createElement('div');
  div.className = `msg${mine ? ' mine' : ''}${pending ? ' pending' : ''}`;
  if (seq) div.dataset.seq = String(seq);
  const f = document.createElement('div');
  f.className = 'from';
  f.textContent = from;
  const t = document.createElement('div');
  t.className = 'text';
  t.textContent = text;
  div.append(f, t);
  const box = $('#messages');
  box.append(div);
  box.scrollTop = box.scrollHeight;
  return div;
}

function setStatus(text) {
  const s = $('#status');
  s.textContent = text;
  s.dataset.status = text;
}

function showError(where, e) {
  $(where).textContent = e ? String(e.message || e) : '';
}

// ---- conversations and history ---------------------------------------------------------------

async function syncConversations() {
  const list = await api('/conversation/sync', { uid: state.uid, version: 0, msg_count: 1 });
  for (const c of list || []) {
    const recent = c.recents && c.recents[0];
    const k = key(c.channel_id, c.channel_type);
    const open = state.open && key(state.open.id, state.open.type) === k;
    state.convs.set(k, {
      id: c.channel_id,
      type: c.channel_type,
      unread: open ? 0 : c.unread,
      ts: c.timestamp,
      last: recent ? decodePayload(recent.payload).content : '',
    });
  }
  renderConversations();
}

async function openChannel(id, type) {
  state.open = { id, type };
  $('#chat-title').textContent = type === GROUP ? `# ${id}` : id;
  $('#compose').hidden = false;
  $('#messages').textContent = '';
  const k = key(id, type);
  if (!state.convs.has(k)) state.convs.set(k, { id, type, unread: 0, ts: Date.now() / 1000, last: '' });
  state.convs.get(k).unread = 0;
  renderConversations();
  try {
    const page = await api('/channel/messagesync', {
      login_uid: state.uid, channel_id: id, channel_type: type,
      start_message_seq: 0, end_message_seq: 0, limit: HISTORY_LIMIT, pull_mode: 1,
    });
    for (const m of page.messages || []) {
      addMessage({ from: m.from_uid, text: decodePayload(m.payload).content ?? '', seq: m.message_seq, mine: m.from_uid === state.uid });
    }
    await api('/conversations/clearUnread', { uid: state.uid, channel_id: id, channel_type: type, message_seq: 0 });
    showError('#chat-error', null);
  } catch (e) {
    showError('#chat-error', e);
  }
  $('#text').focus();
}

// ---- the SDK ---------------------------------------------------------------------------------

function onMessage(m) {
  const id = m.channel.channelID;
  const type = m.channel.channelType;
  const text = m.content && m.content.text !== undefined ? m.content.text : '';
  const k = key(id, type);
  const conv = state.convs.get(k) || { id, type, unread: 0 };
  conv.last = text;
  conv.ts = m.timestamp;
  const open = state.open && key(state.open.id, state.open.type) === k;
  // The SDK also reports our own message as it is sent (no seq yet): shown as pending until
  // its SENDACK arrives.
  const echo = m.fromUID === state.uid && !m.messageSeq;
  if (echo) {
    if (open) state.pending.set(m.clientSeq, addMessage({ from: m.fromUID, text, mine: true, pending: true }));
  } else if (open) {
    addMessage({ from: m.fromUID, text, seq: m.messageSeq, mine: m.fromUID === state.uid });
    api('/conversations/clearUnread', { uid: state.uid, channel_id: id, channel_type: type, message_seq: 0 }).catch(() => {});
  } else {
    conv.unread = (conv.unread || 0) + 1;
  }
  state.convs.set(k, conv);
  renderConversations();
}

function onSendAck(ack) {
  const el = state.pending.get(ack.clientSeq);
  if (!el) return;
  state.pending.delete(ack.clientSeq);
  el.classList.remove('pending');
  if (ack.reasonCode === 1) el.dataset.seq = String(ack.messageSeq);
  else el.classList.add('failed');
}

async function connect(uid, token) {
  const route = await api(`/route?uid=${encodeURIComponent(uid)}`);
  const sdk = WK.WKSDK.shared();
  sdk.config.addr = route.ws_addr;
  sdk.config.uid = uid;
  sdk.config.token = token;
  sdk.connectManager.addConnectStatusListener((status) => {
    const names = { [WK.ConnectStatus.Connected]: 'connected', [WK.ConnectStatus.Connecting]: 'connecting' };
    setStatus(names[status] || 'offline');
    if (status === WK.ConnectStatus.Connected) syncConversations().catch((e) => showError('#chat-error', e));
  });
  sdk.chatManager.addMessageListener(onMessage);
  sdk.chatManager.addMessageStatusListener(onSendAck);
  sdk.connectManager.connect();
}

async function login(uid, token) {
  // device_flag 1 (web), level 0 (slave), as WuKongIM's demo: the SDK sends a new device_id on
  // every connect, so a master login in a second tab would kick the first (http-api.md §5.2)
  await api('/user/token', { uid, token, device_flag: 1, device_level: 0 });
  state.uid = uid;
  localStorage.setItem(STORE_KEY, JSON.stringify({ uid, token }));
  $('#me').textContent = uid;
  $('#login-view').hidden = true;
  $('#chat-view').hidden = false;
  $('#logout').hidden = false;
  await connect(uid, token);
}

// ---- forms -----------------------------------------------------------------------------------

$('#apiurl').textContent = API;

$('#login-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  login($('#uid').value.trim(), randomToken()).catch((e) => showError('#login-error', e));
});

$('#logout').addEventListener('click', () => {
  localStorage.removeItem(STORE_KEY);
  location.reload();
});

$('#new-chat').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const peer = $('#peer').value.trim();
  if (peer) openChannel(peer, PERSON);
  $('#peer').value = '';
});

$('#new-group').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const id = $('#group-id').value.trim();
  const members = $('#group-members').value.split(/[\s,]+/).filter(Boolean);
  try {
    await api('/channel', { channel_id: id, channel_type: GROUP, subscribers: [...new Set([state.uid, ...members])] });
    $('#group-id').value = '';
    $('#group-members').value = '';
    await openChannel(id, GROUP);
  } catch (e) {
    showError('#chat-error', e);
  }
});

$('#compose').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const text = $('#text').value;
  if (!text || !state.open) return;
  $('#text').value = '';
  const { id, type } = state.open;
  try {
    await WK.WKSDK.shared().chatManager.send(new WK.MessageText(text), new WK.Channel(id, type));
  } catch (e) {
    showError('#chat-error', e);
  }
});

// A reload keeps the session: log in again with the stored uid and token.
const saved = (() => { try { return JSON.parse(localStorage.getItem(STORE_KEY) || 'null'); } catch { return null; } })();
if (saved && saved.uid) login(saved.uid, saved.token).catch((e) => showError('#login-error', e));
