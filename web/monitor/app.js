// app.js - the Magpie monitor: polls the public GET /metrics every second and draws the live
// numbers and charts (plain canvas); after a manager login (POST /manager/login, a JWT kept in
// localStorage) looks up users (/connz?uid=, /user/onlinestatus) and channels
// (/channel/messagesync) and shows the recent warnings and errors (/logs/recent).
'use strict';

const POLL_MS = 1000;
const LOG_POLL_MS = 5000;
const HISTORY = 120; // points per chart (two minutes)
const TOKEN_KEY = 'magpie-monitor-token';

const $ = (sel) => document.querySelector(sel);

// ---- Prometheus text -------------------------------------------------------------------------

/** Samples of an exposition: [{name, labels, value}]. */
function parseMetrics(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line[0] === '#') continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels = {};
    for (const lm of (m[2] || '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[lm[1]] = lm[2];
    out.push({ name: m[1], labels, value: m[3] === '+Inf' ? Infinity : Number(m[3]) });
  }
  return out;
}

function sum(samples, name, match = {}) {
  let s = 0;
  for (const x of samples) {
    if (x.name !== name) continue;
    if (Object.entries(match).every(([k, v]) => x.labels[k] === v)) s += x.value;
  }
  return s;
}

/** [{le, count}] cumulative buckets of a histogram. */
function buckets(samples, name) {
  return samples.filter((x) => x.name === `${name}_bucket`)
    .map((x) => ({ le: x.labels.le === '+Inf' ? Infinity : Number(x.labels.le), count: x.value }))
    .sort((a, b) => a.le - b.le);
}

/** Quantile q of the observations between two scrapes (histogram_quantile over the deltas). */
function quantile(q, prev, cur) {
  const d = cur.map((b, i) => ({ le: b.le, count: b.count - (prev[i] ? prev[i].count : 0) }));
  const total = d.length ? d[d.length - 1].count : 0;
  if (total <= 0) return null;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const b of d) {
    if (b.count >= rank) {
      if (b.le === Infinity) return lower;
      return lower + (b.le - lower) * ((rank - below) / Math.max(b.count - below, 1));
    }
    lower = b.le;
    below = b.count;
  }
  return lower;
}

// ---- formatting and charts ---------------------------------------------------------------------

function fmtBytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

const fmtMs = (s) => (s === null ? '–' : `${(s * 1000).toFixed(s < 0.01 ? 2 : 1)} ms`);
const fmtRate = (r) => (r >= 100 ? r.toFixed(0) : r.toFixed(1));

const series = { conns: [[]], rate: [[], []], latency: [[], []] };
const COLORS = ['#2a6fdb', '#e0702b'];

function push(arr, v) {
  arr.push(v);
  if (arr.length > HISTORY) arr.shift();
}

function draw(canvas, lines) {
  const ctx = canvas.getContext('2d');
  const w = canvas.width;
  const hgt = canvas.height;
  ctx.clearRect(0, 0, w, hgt);
  let max = 0;
  for (const l of lines) for (const v of l) if (v !== null && v > max) max = v;
  max = max > 0 ? max * 1.15 : 1;
  ctx.strokeStyle = '#eee';
  ctx.fillStyle = '#999';
  ctx.font = '10px sans-serif';
  for (let i = 0; i <= 4; i++) {
    const y = hgt - 14 - (i * (hgt - 20)) / 4;
    ctx.beginPath(); ctx.moveTo(30, y); ctx.lineTo(w, y); ctx.stroke();
    const label = (max * i) / 4;
    ctx.fillText(label >= 10 ? label.toFixed(0) : label.toFixed(1), 0, y + 3);
  }
  lines.forEach((l, k) => {
    ctx.strokeStyle = COLORS[k % COLORS.length];
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    let started = false;
    l.forEach((v, i) => {
      if (v === null) return;
      const x = 30 + ((w - 32) * i) / (HISTORY - 1);
      const y = hgt - 14 - (v / max) * (hgt - 20);
      if (started) ctx.lineTo(x, y); else ctx.moveTo(x, y);
      started = true;
    });
    ctx.stroke();
  });
}

// ---- polling /metrics --------------------------------------------------------------------------

let prev = null;

async function poll() {
  try {
    const r = await fetch('/metrics', { cache: 'no-store' });
    if (!r.ok) throw new Error(`/metrics: HTTP ${r.status}`);
    const s = parseMetrics(await r.text());
    const now = performance.now();
    const cur = {
      t: now,
      sends: sum(s, 'magpie_sends_total', { result: 'ok' }),
      deliveries: sum(s, 'magpie_deliveries_total'),
      lat: buckets(s, 'magpie_sendack_latency_seconds'),
      commit: buckets(s, 'magpie_store_commit_seconds'),
      logFlush: buckets(s, 'magpie_store_log_flush_seconds'),
    };
    const conns = sum(s, 'magpie_connections');
    $('#connections').textContent = String(conns);
    $('#online-users').textContent = String(sum(s, 'magpie_online_users'));
    $('#sends-total').textContent = String(cur.sends);
    $('#rss').textContent = fmtBytes(sum(s, 'magpie_memory_rss_bytes'));
    push(series.conns[0], conns);
    if (prev) {
      const dt = Math.max((now - prev.t) / 1000, 0.001);
      const sr = (cur.sends - prev.sends) / dt;
      const dr = (cur.deliveries - prev.deliveries) / dt;
      const p50 = quantile(0.5, prev.lat, cur.lat);
      const p99 = quantile(0.99, prev.lat, cur.lat);
      $('#sends-rate').textContent = fmtRate(sr);
      $('#deliveries-rate').textContent = fmtRate(dr);
      $('#latency').textContent = `${fmtMs(p50)} / ${fmtMs(p99)}`;
      $('#commit-latency').textContent = fmtMs(quantile(0.99, prev.commit, cur.commit));
      $('#log-latency').textContent = fmtMs(quantile(0.99, prev.logFlush, cur.logFlush));
      push(series.rate[0], sr);
      push(series.rate[1], dr);
      push(series.latency[0], p50 === null ? null : p50 * 1000);
      push(series.latency[1], p99 === null ? null : p99 * 1000);
    }
    prev = cur;
    draw($('#chart-conns'), series.conns);
    draw($('#chart-rate'), series.rate);
    draw($('#chart-latency'), series.latency);
    $('#updated').textContent = `updated ${new Date().toLocaleTimeString()}`;
    $('#updated').dataset.ok = '1';
  } catch (e) {
    $('#updated').textContent = String(e.message || e);
    $('#updated').dataset.ok = '0';
  }
  setTimeout(poll, POLL_MS);
}

// ---- authenticated calls -----------------------------------------------------------------------

let token = localStorage.getItem(TOKEN_KEY) || '';

async function call(path, body) {
  const init = { headers: { authorization: `Bearer ${token}` } };
  if (body !== undefined) {
    init.method = 'POST';
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const r = await fetch(path, init);
  const text = await r.text();
  let json;
  try { json = text ? JSON.parse(text) : undefined; } catch { json = undefined; }
  if (r.status === 401) { showLogin(); throw new Error('not logged in'); }
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status} ${json?.msg ?? json?.error ?? text}`);
  return json;
}

function showLogin() {
  token = '';
  localStorage.removeItem(TOKEN_KEY);
  $('#login-view').hidden = false;
  $('#tools').hidden = true;
  $('#logout').hidden = true;
  $('#user').textContent = '';
}

function showTools(name) {
  $('#login-view').hidden = true;
  $('#tools').hidden = false;
  $('#logout').hidden = false;
  $('#user').textContent = name;
  pollLogs();
}

function table(rows, cols) {
  const t = document.createElement('table');
  const head = t.insertRow();
  for (const c of cols) { const th = document.createElement('th'); th.textContent = c; head.append(th); }
  for (const r of rows) {
    const tr = t.insertRow();
    for (const c of cols) tr.insertCell().textContent = r[c] === undefined ? '' : String(r[c]);
  }
  return t;
}

function decodePayload(b64) {
  try {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const text = new TextDecoder().decode(bytes);
    try { const j = JSON.parse(text); return j.content !== undefined ? String(j.content) : text; } catch { return text; }
  } catch {
    return b64;
  }
}

async function lookupUser(uid) {
  const box = $('#user-result');
  box.textContent = '';
  const [connz, online] = await Promise.all([
    call(`/connz?uid=${encodeURIComponent(uid)}&limit=100`),
    call('/user/onlinestatus', [uid]),
  ]);
  const devices = Array.isArray(online) ? online.length : 0;
  const p = document.createElement('p');
  p.id = 'user-summary';
  p.textContent = `${uid}: ${devices ? `online on ${devices} device(s)` : 'offline'}; ${connz.total} connection(s) matching`;
  box.append(p, table(connz.connections, ['id', 'uid', 'device', 'ip', 'version', 'uptime', 'idle', 'in_msgs', 'out_msgs', 'pending_bytes']));
}

async function lookupChannel(id, type, viewer) {
  const box = $('#channel-result');
  box.textContent = '';
  const page = await call('/channel/messagesync', {
    login_uid: viewer || '____manager', channel_id: id, channel_type: type, start_message_seq: 0, end_message_seq: 0, limit: 20, pull_mode: 1,
  });
  const rows = (page.messages || []).map((m) => ({
    seq: m.message_seq, from: m.from_uid, time: new Date(m.timestamp * 1000).toLocaleString(), text: decodePayload(m.payload),
  }));
  const p = document.createElement('p');
  p.id = 'channel-summary';
  p.textContent = `${id}: ${rows.length} recent message(s)`;
  box.append(p, table(rows, ['seq', 'from', 'time', 'text']));
}

let logTimer = null;

async function pollLogs() {
  clearTimeout(logTimer);
  if (!token) return;
  try {
    const r = await call('/logs/recent');
    const ul = $('#logs');
    ul.textContent = '';
    for (const line of [...r.lines].reverse()) {
      const li = document.createElement('li');
      li.className = /level=error/.test(line) ? 'error' : 'warn';
      li.textContent = line;
      ul.append(li);
    }
    $('#log-counts').textContent = `(${r.warn_total} warn, ${r.error_total} error since start)`;
  } catch { /* shown by call() */ }
  logTimer = setTimeout(pollLogs, LOG_POLL_MS);
}

$('#login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  $('#login-error').textContent = '';
  try {
    const r = await fetch('/manager/login', {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: $('#username').value, password: $('#password').value }),
    });
    const j = await r.json();
    if (!r.ok) throw new Error(j.msg || `HTTP ${r.status}`);
    token = j.token;
    localStorage.setItem(TOKEN_KEY, token);
    localStorage.setItem(`${TOKEN_KEY}-user`, j.username);
    showTools(j.username);
  } catch (e) {
    $('#login-error').textContent = String(e.message || e);
  }
});

$('#logout').addEventListener('click', showLogin);

$('#user-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  lookupUser($('#lookup-uid').value.trim()).catch((e) => { $('#user-result').textContent = String(e.message || e); });
});

$('#channel-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  lookupChannel($('#lookup-channel').value.trim(), Number($('#lookup-type').value), $('#lookup-viewer').value.trim())
    .catch((e) => { $('#channel-result').textContent = String(e.message || e); });
});

if (token) showTools(localStorage.getItem(`${TOKEN_KEY}-user`) || '');
else showLogin();
poll();
