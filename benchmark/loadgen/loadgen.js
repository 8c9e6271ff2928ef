#!/usr/bin/env node
// Load generator for Parley's fan-out benchmark (benchmark/README.md).
//
// usage: node loadgen.js <config.json>
//
// mode "fanout": N receivers and S senders join one room; the senders send open-loop
// (on a fixed schedule, whatever the server answers) at a rate stepped up geometrically
// until a step fails, then bisected between the last pass and the first failure.
// Latency runs from a message's *intended* send time to its arrival, so a generator or
// server that falls behind shows up as latency instead of silently sending less.
// mode "idle": open C connections that only read, and report the server's RSS.
//
// config.url may list several servers, comma-separated (Parley with several worker
// processes): connection i of each kind (receiver, sender, idle) goes to url[i % n], and
// config.serverPids lists every process whose CPU and RSS are summed.
//
// One JSON object per line on stdout (steps, results); progress on stderr. Talks only to
// 127.0.0.1; every wait is bounded and the whole run stops at config.deadlineSeconds.

'use strict';

const fs = require('fs');
const { performance } = require('perf_hooks');
const WebSocket = require('ws');

const cfg = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const MARK = 'PB~';
const URLS = cfg.url.split(',');
// One URL: the configured Origin (as before); several: each server's own.
const ORIGINS = URLS.length === 1 ? [cfg.origin] : URLS.map((u) => `http://${new URL(u).host}`);
const PIDS = cfg.serverPids || [cfg.serverPid];
const startedAt = performance.now();
const deadline = startedAt + (cfg.deadlineSeconds || 600) * 1000;

function log(text) {
  process.stderr.write(`  [${cfg.label || cfg.server} N=${cfg.receivers ?? cfg.idle}] ${text}\n`);
}
function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
function checkDeadline() {
  if (performance.now() > deadline) throw new Error(`deadline of ${cfg.deadlineSeconds}s reached`);
}

// Process accounting -------------------------------------------------------------------

function procStat(pid) {
  // utime + stime in clock ticks (fields 14, 15; the name in parentheses may hold spaces).
  const text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}
function rssKiB(pid) {
  const match = /VmRSS:\s+(\d+)\s+kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) : null;
}
// Summed over every server process.
const serverTicks = () => PIDS.reduce((sum, pid) => sum + procStat(pid), 0);
const serverRssKiB = () => PIDS.reduce((sum, pid) => sum + rssKiB(pid), 0);
// Busy ticks and all ticks per core, from /proc/stat: what the whole machine did.
function coreTicks() {
  return fs
    .readFileSync('/proc/stat', 'utf8')
    .split('\n')
    .filter((line) => /^cpu\d+ /.test(line))
    .map((line) => {
      const v = line.split(/\s+/).slice(1, 9).map(Number);
      const idle = v[3] + v[4];
      const all = v.reduce((a, b) => a + b, 0);
      return [all - idle, all];
    });
}
class Meter {
  constructor() {
    this.wall = performance.now();
    this.server = serverTicks();
    this.each = PIDS.map(procStat);
    this.cores = coreTicks();
    this.self = process.cpuUsage();
  }
  read() {
    const wallS = (performance.now() - this.wall) / 1000;
    const serverS = (serverTicks() - this.server) / cfg.clockTicks;
    const own = process.cpuUsage(this.self);
    const selfS = (own.user + own.system) / 1e6;
    const usage = {
      wall_s: round(wallS, 3),
      server_cpu_s: round(serverS, 3),
      server_cpu_pct: round((100 * serverS) / wallS, 1),
      server_rss_mib: round(serverRssKiB() / 1024, 1),
      loadgen_cpu_pct: round((100 * selfS) / wallS, 1),
    };
    usage.cores_busy_pct = coreTicks().map(([busy, all], i) =>
      round((100 * (busy - this.cores[i][0])) / Math.max(1, all - this.cores[i][1]), 1),
    );
    if (PIDS.length > 1) {
      usage.server_cpu_pct_each = PIDS.map((pid, i) => round((100 * (procStat(pid) - this.each[i])) / cfg.clockTicks / wallS, 1));
    }
    return usage;
  }
}
function round(x, digits) {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

// Latency histogram: 0.1 ms buckets up to 5 s, exact values above. ---------------------

class Histogram {
  constructor() {
    this.buckets = new Uint32Array(50000);
    this.over = [];
    this.count = 0;
    this.max = 0;
  }
  add(ms) {
    this.count++;
    if (ms > this.max) this.max = ms;
    const i = Math.floor(Math.max(ms, 0) * 10);
    if (i < this.buckets.length) this.buckets[i]++;
    else this.over.push(ms);
  }
  quantile(q) {
    if (!this.count) return null;
    const rank = Math.ceil(q * this.count);
    let seen = 0;
    for (let i = 0; i < this.buckets.length; i++) {
      seen += this.buckets[i];
      if (seen >= rank) return (i + 1) / 10;
    }
    this.over.sort((a, b) => a - b);
    return this.over[rank - seen - 1];
  }
}

// Protocols ------------------------------------------------------------------------------

const protocols = {
  parley: {
    frame: (body, clientId) => JSON.stringify({ type: 'message.send', body, client_id: clientId }),
    ready: (text) => text.startsWith('{"type":"hello"'),
    isError: (text) => text.startsWith('{"type":"error"'),
  },
  channels: {
    frame: (body) => JSON.stringify({ message: body }),
    ready: null, // the tutorial consumer says nothing on connect
    isError: () => false,
  },
  raw: {
    frame: (body) => body,
    ready: null,
    isError: () => false,
  },
};
const proto = protocols[cfg.protocol];

function connect(token, i = 0) {
  return new Promise((resolve, reject) => {
    const headers = token ? { Authorization: `Token ${token}` } : {};
    // An Origin as a browser on the same host sends: the Channels tutorial's
    // AllowedHostsOriginValidator refuses a handshake without one.
    const n = i % URLS.length;
    const ws = new WebSocket(URLS[n], { headers, origin: ORIGINS[n], perMessageDeflate: false, handshakeTimeout: 10000 });
    let settled = false;
    const timer = setTimeout(() => fail(new Error('no hello within 15 s')), 15000);
    function fail(error) {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      ws.terminate();
      reject(error);
    }
    function ok() {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      ws.removeListener('message', onFirst);
      resolve(ws);
    }
    function onFirst(data) {
      const text = data.toString();
      if (proto.ready && proto.ready(text)) ok();
      else if (text.startsWith('{"type":"error"')) fail(new Error(`refused: ${text.slice(0, 200)}`));
    }
    ws.on('message', onFirst);
    ws.on('open', () => { if (!proto.ready) ok(); });
    ws.on('error', fail);
    ws.on('close', (code) => fail(new Error(`closed with ${code} before ready`)));
  });
}

async function connectMany(count, tokenFor, label, first = 0) {
  const sockets = new Array(count);
  let next = 0;
  let done = 0;
  let lastReport = performance.now();
  async function worker() {
    while (next < count) {
      checkDeadline();
      const i = next++;
      sockets[i] = await connect(tokenFor(i), first + i);
      done++;
      if (performance.now() - lastReport > 2000) {
        lastReport = performance.now();
        log(`${label}: ${done}/${count} connected`);
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(cfg.connectConcurrency || 50, count) }, worker));
  return sockets;
}

// Fan-out --------------------------------------------------------------------------------

async function fanout() {
  const N = cfg.receivers;
  const S = cfg.senders;
  const pad = 'x'.repeat(Math.max(0, (cfg.payloadBytes || 0) - 40));
  const runTag = Math.random().toString(36).slice(2, 8);
  const receiverToken = (i) => (cfg.receiverTokens ? cfg.receiverTokens[i % cfg.receiverTokens.length] : null);
  const senderToken = (i) => (cfg.senderTokens ? cfg.senderTokens[i % cfg.senderTokens.length] : null);

  let step = null; // the step whose messages are being counted
  const closes = { receivers: 0, senders: 0, codes: {} };
  const errors = { count: 0, sample: null };
  let lateFromEarlierSteps = 0;
  let lastArrival = performance.now();

  function onReceive(r, data) {
    const now = performance.now();
    lastArrival = now;
    const text = typeof data === 'string' ? data : data.toString();
    const at = text.indexOf(MARK);
    if (at < 0) return; // hello, presence, ... — not a benchmark message
    // PB~<sender>~<step>~<seq>~<intended ms>~
    const parts = text.slice(at + MARK.length, at + MARK.length + 64).split('~');
    const sid = Number(parts[0]);
    const stepNo = Number(parts[1]);
    const seq = Number(parts[2]);
    const intended = Number(parts[3]);
    if (!step || stepNo !== step.index) {
      lateFromEarlierSteps++;
      return;
    }
    const key = r * S + sid;
    let seen = step.seen[key];
    if (!seen) seen = step.seen[key] = new Uint8Array(step.maxSeq + 1);
    if (seq > step.maxSeq) return;
    if (seen[seq]) {
      step.duplicates++;
      return;
    }
    seen[seq] = 1;
    if (seq < step.last[key]) step.outOfOrder++;
    else step.last[key] = seq;
    step.delivered++;
    step.hist.add(now - intended);
  }

  function attachReceiver(ws, r) {
    ws.on('message', (data) => onReceive(r, data));
    ws.on('close', (code) => {
      closes.receivers++;
      closes.codes[code] = (closes.codes[code] || 0) + 1;
    });
    ws.on('error', () => {});
  }
  function attachSender(ws) {
    ws.on('message', (data) => {
      const text = data.toString();
      if (proto.isError(text)) {
        errors.count++;
        errors.sample = errors.sample || text.slice(0, 200);
      }
    });
    ws.on('close', (code) => {
      closes.senders++;
      closes.codes[code] = (closes.codes[code] || 0) + 1;
    });
    ws.on('error', () => {});
  }

  let receivers = [];
  let senders = [];
  async function connectAll() {
    const t0 = performance.now();
    receivers = await connectMany(N, receiverToken, 'receivers');
    receivers.forEach(attachReceiver);
    senders = await connectMany(S, senderToken, 'senders');
    senders.forEach(attachSender);
    closes.receivers = closes.senders = 0;
    closes.codes = {};
    log(`connected ${N} receivers + ${S} senders in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    // What the open connections alone cost the server (keepalives, pollers), no traffic.
    await sleep(500);
    const meter = new Meter();
    await sleep(1500);
    idleUsage = meter.read();
    log(`idle with ${N + S} connections: server cpu ${idleUsage.server_cpu_pct}%, rss ${idleUsage.server_rss_mib} MiB`);
  }
  let idleUsage = null;
  async function recover() {
    await waitQuiet(20);
    if (closes.receivers + closes.senders > 0) {
      await closeAll();
      await waitQuiet(20);
      await connectAll();
    }
  }
  async function closeAll() {
    for (const ws of receivers.concat(senders)) ws.terminate();
    receivers = [];
    senders = [];
    await sleep(500);
  }
  async function waitQuiet(maxSeconds) {
    // After an overloaded step the server may still be working off a backlog: wait for
    // the arrivals to stop so the next step starts from an idle server.
    const until = performance.now() + maxSeconds * 1000;
    while (performance.now() < until && performance.now() - lastArrival < 1000) await sleep(100);
  }

  let stepIndex = 0;
  async function runStep(rate, { again = false } = {}) {
    checkDeadline();
    stepIndex++;
    const seconds = cfg.stepSeconds;
    const perSender = rate / S;
    const interval = 1000 / perSender;
    const planned = Math.max(1, Math.floor(perSender * seconds));
    step = {
      index: stepIndex,
      maxSeq: planned,
      seen: new Array(N * S),
      last: new Int32Array(N * S).fill(-1),
      delivered: 0,
      duplicates: 0,
      outOfOrder: 0,
      hist: new Histogram(),
    };
    const closedBefore = closes.receivers + closes.senders;
    const errorsBefore = errors.count;
    const meter = new Meter();
    const begin = performance.now() + 20;
    const next = new Array(S).fill(0);
    let sent = 0;
    // Open loop: each sender's k-th message is due at begin + offset + k * interval; all
    // that are due go out at every tick, late or not.
    await new Promise((resolve) => {
      function tick() {
        const now = performance.now();
        let remaining = 0;
        for (let s = 0; s < S; s++) {
          const ws = senders[s];
          while (next[s] < planned) {
            const intended = begin + (s * interval) / S + next[s] * interval;
            if (intended > now) break;
            const body = `${MARK}${s}~${stepIndex}~${next[s]}~${intended.toFixed(3)}~${pad}`;
            if (ws.readyState === WebSocket.OPEN) ws.send(proto.frame(body, `b${runTag}-${stepIndex}-${s}-${next[s]}`));
            next[s]++;
            sent++;
          }
          remaining += planned - next[s];
        }
        if (remaining === 0 || now > deadline) resolve();
        else setTimeout(tick, 1);
      }
      tick();
    });
    const sendEnd = performance.now();
    const expected = sent * N;
    const drainUntil = sendEnd + (cfg.drainSeconds || 2) * 1000;
    while (step.delivered < expected && performance.now() < drainUntil) await sleep(10);
    const usage = meter.read();
    const h = step.hist;
    const result = {
      event: 'step',
      server: cfg.server,
      receivers: N,
      senders: S,
      step: stepIndex,
      offered_msgs_per_s: round(rate, 2),
      sent,
      send_seconds: round((sendEnd - begin) / 1000, 3),
      expected_deliveries: expected,
      delivered: step.delivered,
      lost: expected - step.delivered,
      duplicated: step.duplicates,
      out_of_order: step.outOfOrder,
      deliveries_per_s: round(step.delivered / ((sendEnd - begin) / 1000), 1),
      p50_ms: h.quantile(0.5),
      p95_ms: h.quantile(0.95),
      p99_ms: h.quantile(0.99),
      max_ms: round(h.max, 1),
      again,
      closed_sockets: closes.receivers + closes.senders - closedBefore,
      close_codes: { ...closes.codes },
      server_errors: errors.count - errorsBefore,
      error_sample: errors.sample,
      ...usage,
    };
    const reasons = [];
    if (result.lost) reasons.push(`${result.lost} lost`);
    if (result.duplicated) reasons.push(`${result.duplicated} duplicated`);
    if (result.out_of_order) reasons.push(`${result.out_of_order} out of order`);
    if (result.p99_ms === null || result.p99_ms > cfg.p99LimitMs) reasons.push(`p99 ${result.p99_ms} ms > ${cfg.p99LimitMs}`);
    if (result.closed_sockets) reasons.push(`${result.closed_sockets} sockets closed`);
    if (result.server_errors) reasons.push(`${result.server_errors} error frames`);
    result.pass = reasons.length === 0;
    result.fail_reasons = reasons;
    step = null;
    emit(result);
    log(
      `${rate.toFixed(1).padStart(8)} msg/s -> ${String(result.deliveries_per_s).padStart(9)} deliv/s ` +
        `p50 ${fmt(result.p50_ms)} p99 ${fmt(result.p99_ms)} ms, server cpu ${usage.server_cpu_pct}% ` +
        `rss ${usage.server_rss_mib} MiB, loadgen cpu ${usage.loadgen_cpu_pct}%  ` +
        (result.pass ? 'ok' : `FAIL (${reasons.join(', ')})`),
    );
    return result;
  }

  await connectAll();
  const results = [];
  let best = null;
  let firstFail = null;
  // One step of the climb, the step down or the bisection. A step that failed on its p99
  // alone (nothing lost, duplicated, reordered, closed or refused) runs once more and
  // counts as failed only if it fails again: on a shared 2-core machine one stolen time
  // slice made a step at 2 msg/s, the server 11 % busy, fail and end the climb there.
  async function searchStep(rate) {
    let r = await runStep(rate);
    results.push(r);
    if (!r.pass && r.fail_reasons.every((reason) => reason.startsWith('p99'))) {
      await recover();
      r = await runStep(rate, { again: true });
      results.push(r);
    }
    return r;
  }
  const rates = cfg.rates || null;
  if (rates) {
    for (const rate of rates) {
      const r = await runStep(rate);
      results.push(r);
      if (r.pass && (!best || r.offered_msgs_per_s > best.offered_msgs_per_s)) best = r;
      await sleep(300);
    }
  } else {
    let rate = cfg.rateStart;
    for (let i = 0; i < cfg.maxSteps && rate <= cfg.rateMax; i++) {
      const r = await searchStep(rate);
      if (!r.pass) {
        firstFail = r;
        break;
      }
      best = r;
      rate *= cfg.rateFactor;
      await sleep(300);
    }
    // Even the first step failed: step down until one passes.
    const rateMin = cfg.rateMin || S / cfg.stepSeconds;
    for (let down = cfg.rateStart / cfg.rateFactor, i = 0; !best && firstFail && down >= rateMin && i < cfg.maxSteps; down /= cfg.rateFactor, i++) {
      await recover();
      const r = await searchStep(down);
      if (r.pass) best = r;
      else firstFail = r;
    }
    // Bisect (geometrically) between the last pass and the first failure.
    let low = best ? best.offered_msgs_per_s : 0;
    let high = firstFail ? firstFail.offered_msgs_per_s : null;
    for (let i = 0; i < (cfg.refineSteps || 0) && high !== null && low > 0 && performance.now() < deadline; i++) {
      await recover();
      const mid = Math.sqrt(low * high);
      if (high / low < 1.08) break;
      const r = await searchStep(mid);
      if (r.pass) {
        low = mid;
        best = r;
      } else high = mid;
    }
  }
  emit({
    event: 'fanout',
    server: cfg.server,
    receivers: N,
    senders: S,
    best,
    first_fail: firstFail,
    idle_usage: idleUsage,
    late_from_earlier_steps: lateFromEarlierSteps,
  });
  await closeAll();
}

function fmt(x) {
  return x === null ? '-' : x.toFixed(1);
}

// Idle connections ---------------------------------------------------------------------

async function idle() {
  const counts = cfg.idleCounts.slice().sort((a, b) => a - b);
  const token = (i) => (cfg.receiverTokens ? cfg.receiverTokens[i % cfg.receiverTokens.length] : null);
  // One connection first, so the room's one-time state is not charged to the others.
  const warm = await connectMany(1, token, 'warm-up');
  await sleep(1000);
  const base = serverRssKiB();
  const sockets = [];
  const checkpoints = [];
  for (const count of counts) {
    const more = await connectMany(count - sockets.length, (i) => token(sockets.length + i), `idle to ${count}`, sockets.length);
    for (const ws of more) ws.on('error', () => {});
    sockets.push(...more);
    await sleep(cfg.idleSettleSeconds * 1000 || 2000);
    const rss = serverRssKiB();
    const open = sockets.filter((ws) => ws.readyState === WebSocket.OPEN).length;
    const point = {
      connections: count,
      open,
      server_rss_mib: round(rss / 1024, 1),
      baseline_rss_mib: round(base / 1024, 1),
      kib_per_connection: round((rss - base) / count, 1),
    };
    checkpoints.push(point);
    log(`${count} idle connections (${open} open): server RSS ${point.server_rss_mib} MiB, ${point.kib_per_connection} KiB each`);
  }
  emit({ event: 'idle', server: cfg.server, checkpoints });
  for (const ws of sockets.concat(warm)) ws.terminate();
  await sleep(300);
}

(cfg.mode === 'idle' ? idle() : fanout())
  .then(() => process.exit(0))
  .catch((error) => {
    log(`error: ${error.message}`);
    emit({ event: 'error', server: cfg.server, message: error.message });
    process.exit(1);
  });
