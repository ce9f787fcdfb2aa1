// Structured logs (docs/monitoring.md): every line the server writes is
// `time=... level=... comp=... msg="..." key=value...`; logger.level filters them; no line is
// written per message at info level; and the warn/error lines are kept for GET /logs/recent on the
// manager port (and counted in magpie_log_lines_total).

import assert from 'node:assert/strict';
import { useServer, uid } from './lib/harness.mjs';
import { freePort } from './lib/server.mjs';

const LINE = /^time=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=(debug|info|warn|error) comp=[a-z]+( msg="(?:[^"\\]|\\.)*")?( [A-Za-z_][\w.]*=("(?:[^"\\]|\\.)*"|\S*))*$/;

const deadPort = await freePort();
const debug = useServer({ name: 'logs-debug', args: ['--logger.level=1', `--webhook.httpAddr=http://127.0.0.1:${deadPort}/hook`, '--webhook.focusEvents=user.onlinestatus'] });
const warnOnly = useServer({ name: 'logs-warn', args: ['--logger.level=3'] });
const infoLevel = useServer({ name: 'logs-info' }); // the default level, 2 (info)

/** The server's own lines (the harness adds "=== ..." markers). */
const serverLines = (h) => h.srv.log.split('\n').filter((l) => l && !l.startsWith('=== '));

async function managerGet(h, path) {
  const login = await h.srv.http('POST', '/manager/login', { username: 'guest', password: 'guest' }, { base: h.srv.managerBase });
  return h.srv.http('GET', path, undefined, { base: h.srv.managerBase, headers: { authorization: `Bearer ${login.json.token}` } });
}

debug.test('every line is structured: time, level, component, msg and key=value fields', async () => {
  const c = await debug.tcp();
  await c.write(Buffer.from([0x00, 0x01, 0x00])); // packet type 0: a debug "bad packet" line
  await c.waitClosed();
  const a = await debug.login(uid('la')); // its online status goes to a webhook that is down: a warning
  await debug.srv.http('POST', '/manager/login', { username: 'guest', password: 'nope' }, { base: debug.srv.managerBase });
  for (let i = 0; i < 100 && !/level=warn comp=webhook/.test(debug.srv.log); i++) await new Promise((r) => setTimeout(r, 50));
  a.close();
  const lines = serverLines(debug);
  assert.ok(lines.some((l) => / level=debug comp=net msg="bad packet" conn=\d+ err="/.test(l)), 'the debug line of the bad packet');
  assert.ok(lines.some((l) => / level=info comp=main msg="magpie ready" tcp=127\.0\.0\.1:\d+ /.test(l)), 'the ready line');
  assert.ok(lines.some((l) => / level=warn comp=webhook msg="POST failed/.test(l)), 'the webhook warning');
  for (const l of lines) assert.match(l, LINE);
});

debug.test('warn and error lines are kept for /logs/recent and counted in /metrics', async () => {
  const r = await managerGet(debug, '/logs/recent');
  assert.equal(r.status, 200, r.text);
  assert.ok(r.json.lines.length >= 1);
  for (const l of r.json.lines) assert.match(l, / level=(warn|error) /);
  assert.ok(r.json.lines.some((l) => /comp=webhook msg="POST failed/.test(l)));
  assert.equal(r.json.warn_total, serverLines(debug).filter((l) => / level=warn /.test(l)).length);
  const m = await debug.srv.http('GET', '/metrics', undefined, { base: debug.srv.managerBase });
  const warn = /^magpie_log_lines_total\{level="warn"\} (\d+)$/m.exec(m.text);
  assert.equal(Number(warn[1]), r.json.warn_total);
});

warnOnly.test('logger.level=3 keeps info lines out, and messages never log at info', async () => {
  const before = serverLines(warnOnly).length;
  const a = uid('lw'); const b = uid('lx');
  const cb = await warnOnly.login(b);
  const ca = await warnOnly.login(a);
  for (let i = 0; i < 20; i++) {
    const ack = await ca.send({ channelId: b, channelType: 1, payload: { type: 1, content: `q${i}` } });
    assert.equal(ack.reasonCode, 1);
  }
  await cb.waitRecv((p) => p.json?.content === 'q19');
  assert.equal(serverLines(warnOnly).length, before, 'no line for 20 messages, 2 logins');
  assert.ok(!serverLines(warnOnly).some((l) => / level=(info|debug) /.test(l)), 'no info line at level 3');
});

infoLevel.test('at the default level (info) messages, logins and API sends write no line', async () => {
  assert.ok(serverLines(infoLevel).some((l) => / level=info comp=main msg="magpie ready"/.test(l)), 'info lines are on');
  const before = serverLines(infoLevel).length;
  const a = uid('li'); const b = uid('lj'); const g = uid('lg');
  const cb = await infoLevel.login(b);
  const ca = await infoLevel.login(a, { transport: 'ws' });
  assert.equal((await infoLevel.srv.post('/channel', { channel_id: g, channel_type: 2, subscribers: [a, b] })).status, 200);
  for (let i = 0; i < 50; i++) {
    const ack = await ca.send({ channelId: i % 2 ? g : b, channelType: i % 2 ? 2 : 1, payload: { type: 1, content: `i${i}` } });
    assert.equal(ack.reasonCode, 1);
  }
  const r = await infoLevel.srv.post('/message/send', { from_uid: a, channel_id: b, channel_type: 1, payload: Buffer.from('{"type":1,"content":"api"}').toString('base64') });
  assert.equal(r.status, 200, r.text);
  await cb.waitRecv((p) => p.json?.content === 'api');
  ca.close(); cb.close();
  await new Promise((res) => setTimeout(res, 200));
  const added = serverLines(infoLevel).slice(before);
  assert.deepEqual(added, [], 'no log line for 51 messages, 2 logins and 2 logouts');
});
