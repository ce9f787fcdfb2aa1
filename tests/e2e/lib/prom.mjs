// prom.mjs - a strict parser of the Prometheus text exposition format (version 0.0.4), used to
// check GET /metrics: every sample must belong to a family announced by HELP and TYPE lines,
// histograms must have cumulative buckets ending in +Inf equal to _count.

import assert from 'node:assert/strict';

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/;
const LABEL = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"$/;

function parseLabels(text) {
  const labels = {};
  if (!text) return labels;
  // split at commas outside quotes
  const parts = [];
  let cur = '';
  let inQ = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '\\' && inQ) { cur += c + text[++i]; continue; }
    if (c === '"') inQ = !inQ;
    if (c === ',' && !inQ) { parts.push(cur); cur = ''; continue; }
    cur += c;
  }
  if (cur) parts.push(cur);
  for (const p of parts) {
    const m = LABEL.exec(p);
    assert.ok(m, `malformed label ${JSON.stringify(p)}`);
    assert.ok(!(m[1] in labels), `label ${m[1]} repeated`);
    labels[m[1]] = m[2];
  }
  return labels;
}

/** The family a sample name belongs to: itself, or a histogram's base for _bucket/_sum/_count. */
function familyOf(families, name) {
  if (families.has(name)) return families.get(name);
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (name.endsWith(suffix)) {
      const f = families.get(name.slice(0, -suffix.length));
      if (f && f.type === 'histogram') return f;
    }
  }
  return undefined;
}

/**
 * Parse and validate; returns Map name -> {help, type, samples: [{name, labels, value}]}. Throws
 * (assert) on anything a Prometheus server would reject or that breaks the conventions.
 */
export function parseExposition(text) {
  const families = new Map();
  assert.ok(text.endsWith('\n'), 'the exposition ends with a newline');
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('# HELP ')) {
      const [, , fname, ...help] = line.split(' ');
      assert.match(fname, NAME);
      assert.ok(!families.has(fname), `family ${fname} announced twice`);
      families.set(fname, { help: help.join(' '), type: undefined, samples: [] });
      continue;
    }
    if (line.startsWith('# TYPE ')) {
      const [, , fname, type] = line.split(' ');
      const f = families.get(fname);
      assert.ok(f, `TYPE for ${fname} without a HELP line before it`);
      assert.ok(['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(type), `type ${type}`);
      assert.equal(f.samples.length, 0, `TYPE of ${fname} after its samples`);
      f.type = type;
      continue;
    }
    assert.ok(!line.startsWith('#'), `unexpected comment ${line}`);
    const m = SAMPLE.exec(line);
    assert.ok(m, `malformed sample line ${JSON.stringify(line)}`);
    const f = familyOf(families, m[1]);
    assert.ok(f && f.type, `sample ${m[1]} belongs to no family with HELP and TYPE`);
    const value = m[4] === '+Inf' ? Infinity : Number(m[4]);
    assert.ok(!Number.isNaN(value), `value of ${line}`);
    f.samples.push({ name: m[1], labels: parseLabels(m[3]), value });
  }
  for (const [name, f] of families) {
    assert.ok(f.type, `${name} has a TYPE`);
    assert.ok(f.help.length > 0, `${name} has help text`);
    assert.ok(f.samples.length > 0, `${name} has samples`);
    if (f.type === 'counter') assert.ok(name.endsWith('_total'), `counter ${name} ends in _total`);
    for (const s of f.samples) assert.ok(s.value >= 0, `${s.name} is not negative`);
    if (f.type === 'histogram') checkHistogram(name, f);
  }
  return families;
}

function seriesKey(labels, without) {
  return JSON.stringify(Object.entries(labels).filter(([k]) => k !== without).sort());
}

function checkHistogram(name, f) {
  const bySeries = new Map();
  for (const s of f.samples) {
    const key = seriesKey(s.labels, 'le');
    if (!bySeries.has(key)) bySeries.set(key, { buckets: [], sum: undefined, count: undefined });
    const h = bySeries.get(key);
    if (s.name === `${name}_bucket`) h.buckets.push({ le: s.labels.le === '+Inf' ? Infinity : Number(s.labels.le), v: s.value });
    else if (s.name === `${name}_sum`) h.sum = s.value;
    else if (s.name === `${name}_count`) h.count = s.value;
  }
  for (const [key, h] of bySeries) {
    assert.ok(h.buckets.length >= 2, `${name}${key}: buckets`);
    for (let i = 1; i < h.buckets.length; i++) {
      assert.ok(h.buckets[i].le > h.buckets[i - 1].le, `${name}: bucket bounds ascend`);
      assert.ok(h.buckets[i].v >= h.buckets[i - 1].v, `${name}: buckets are cumulative`);
    }
    assert.equal(h.buckets.at(-1).le, Infinity, `${name}: the last bucket is +Inf`);
    assert.equal(h.count, h.buckets.at(-1).v, `${name}: _count equals the +Inf bucket`);
    assert.ok(h.sum !== undefined, `${name}: has _sum`);
  }
}

/** The value of one sample (name and exactly these labels); undefined when absent. */
export function sampleValue(families, name, labels = {}) {
  const f = familyOf(families, name);
  if (!f) return undefined;
  const want = seriesKey(labels);
  const s = f.samples.find((x) => x.name === name && seriesKey(x.labels) === want);
  return s?.value;
}

/** Every counter sample as "name{labels}" -> value (for monotonicity checks). */
export function counterSamples(families) {
  const out = new Map();
  for (const [, f] of families) {
    if (f.type !== 'counter' && f.type !== 'histogram') continue;
    for (const s of f.samples) out.set(`${s.name}${seriesKey(s.labels)}`, s.value);
  }
  return out;
}
