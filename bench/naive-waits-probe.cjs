// Preloaded (`node --expose-gc -r bench/naive-waits-probe.cjs red.js -u <userDir> ...`) into
// each node-red process of the naive-waits benchmark (bench/naive-waits.ts). It measures from
// inside the process, the same way for every variant:
// - calls to the memory store (status, collectionExists, stats, query, upsert), counted on
//   the memory backend's prototype, so every caller is seen (sensor, function node, index-health);
// - messages reaching the nodes `wait` (the variant's entry: first arrival per msg.seq),
//   `final` and `errors`, through Node-RED's onReceive hook;
// - the sensor's defers made durable, and when a restarted runtime has every wait running again;
// - CPU, heap and RSS (after a full GC on request) and event-loop delay.
//
// The benchmark asks for a reading by writing <userDir>/bench-probe/control.json
// ({ seq, gc?, resetLoop?, waits? }); the answer is <userDir>/bench-probe/reading-<seq>.json.
// A file, not a signal: signals stop Node-RED.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { monitorEventLoopDelay } = require('node:perf_hooks');

const repoRoot = path.resolve(__dirname, '..');
const userDirArg = process.argv.indexOf('-u');
if (userDirArg === -1) throw new Error('naive-waits-probe: node-red must be started with -u <userDir>.');
const probeDir = path.join(process.argv[userDirArg + 1], 'bench-probe');
// Synchronous, once, before Node-RED starts: the event loop is not running yet.
fs.mkdirSync(probeDir, { recursive: true });

if (typeof global.gc !== 'function') throw new Error('naive-waits-probe: start node with --expose-gc.');

/** Sampling interval of the loop-delay histogram: an idle loop reads as this, so it is subtracted. */
const LOOP_RESOLUTION_MS = 10;
const loop = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
loop.enable();

const calls = { status: 0, collectionExists: 0, stats: 0, query: 0, upsert: 0 };
const { MemoryBackend } = require(path.join(repoRoot, 'dist', 'lib', 'backends', 'memory.js'));
for (const name of Object.keys(calls)) {
  const original = MemoryBackend.prototype[name];
  MemoryBackend.prototype[name] = function countedCall(...args) {
    calls[name] += 1;
    return original.apply(this, args);
  };
}

let defers = 0;
let triggerer = null;
const { Triggerer } = require(path.join(repoRoot, 'dist', 'lib', 'triggerer.js'));
const defer = Triggerer.prototype.defer;
Triggerer.prototype.defer = function countedDefer(...args) {
  return defer.apply(this, args).then((value) => {
    defers += 1;
    return value;
  });
};
const start = Triggerer.prototype.start;
Triggerer.prototype.start = function startSeen(...args) {
  triggerer = this;
  return start.apply(this, args);
};

// Per msg.seq: arrivals at `wait` (first only) and at `final`. Sized by the first reading's `waits`.
let arrived = new Uint8Array(0);
let ended = new Uint8Array(0);
/** Room for msg.seq up to n - 1, keeping what was seen: a restarted runtime may deliver finals before the first reading sizes them. */
function makeRoom(n) {
  if (arrived.length >= n) return;
  const size = Math.max(n, 2 * arrived.length);
  const a = new Uint8Array(size);
  const e = new Uint8Array(size);
  a.set(arrived);
  e.set(ended);
  arrived = a;
  ended = e;
}
/** Larger msg.seq values are not the benchmark's. */
const MAX_SEQ = 10_000_000;
const counts = { received: 0, finals: 0, repeatedFinals: 0, finalMessages: 0, errors: 0, unnumbered: 0, firstError: null };
const nodeRedDir = path.dirname(require.resolve('node-red/package.json', { paths: [repoRoot] }));
const { hooks, events } = require(require.resolve('@node-red/util', { paths: [nodeRedDir] }));
hooks.add('onReceive.naiveWaitsProbe', (event) => {
  const id = event.destination.id;
  if (id !== 'wait' && id !== 'final' && id !== 'errors') return;
  if (id === 'errors') {
    counts.errors += 1;
    // What went wrong, once: the benchmark names it (the errors node itself is silent).
    if (counts.firstError === null) counts.firstError = String(event.msg?.error?.message ?? event.msg?.payload?.message ?? 'no message').slice(0, 300);
    return;
  }
  const seq = event.msg.seq;
  if (!Number.isInteger(seq) || seq < 0 || seq >= MAX_SEQ) return void (counts.unnumbered += 1);
  makeRoom(seq + 1);
  if (id === 'wait') {
    if (arrived[seq] === 0) counts.received += 1;
    arrived[seq] = 1;
    return;
  }
  counts.finalMessages += 1;
  if (ended[seq] === 0) counts.finals += 1;
  else counts.repeatedFinals += 1;
  ended[seq] = 1;
});

// A restart: from the flows starting to every pending wait running again (checked every 10 ms).
let flowsStartingAt = null;
let resumedAt = null;
events.on('flows:starting', () => {
  if (flowsStartingAt !== null) return;
  flowsStartingAt = Date.now();
  const check = setInterval(() => {
    if (Date.now() - flowsStartingAt > 60_000) return void clearInterval(check);
    if (!triggerer) return;
    const { waits, running } = triggerer.stats();
    if (waits > 0 && running === waits) {
      resumedAt = Date.now();
      clearInterval(check);
    }
  }, 10);
  check.unref();
});

let gcCpuMicros = 0;
let lastSeq = 0;

function cpuMicros(usage) {
  return usage.user + usage.system;
}

async function answer(command) {
  if (Number.isInteger(command.waits)) {
    makeRoom(command.waits);
  }
  if (command.gc) {
    // The forced collection is the probe's work, not the variant's: out of the loop delay and the CPU.
    loop.disable();
    const before = process.cpuUsage();
    global.gc();
    global.gc();
    gcCpuMicros += cpuMicros(process.cpuUsage(before));
    loop.enable();
    // For looking into where the heap goes (not used by the benchmark's figures): a snapshot per reading after GC.
    if (process.env.BENCH_HEAP_SNAPSHOT_DIR) {
      require('node:v8').writeHeapSnapshot(path.join(process.env.BENCH_HEAP_SNAPSHOT_DIR, `reading-${command.seq}.heapsnapshot`));
    }
  }
  const { heapUsed, rss } = process.memoryUsage();
  const ms = (ns) => Math.round(Math.max(0, ns / 1e6 - LOOP_RESOLUTION_MS) * 10) / 10;
  const stats = triggerer ? triggerer.stats() : null;
  const reading = {
    seq: command.seq,
    at: Date.now(),
    cpuMicros: cpuMicros(process.cpuUsage()),
    gcCpuMicros,
    heapUsed,
    rss,
    calls: { ...calls },
    defers,
    ...counts,
    loopDelay: { p50Ms: ms(loop.percentile(50)), p99Ms: ms(loop.percentile(99)), maxMs: ms(loop.max) },
    triggerer: stats && { waits: stats.waits, running: stats.running, finals: stats.finals },
    flowsStartingAt,
    resumedAt,
  };
  if (command.resetLoop) loop.reset();
  const file = path.join(probeDir, `reading-${command.seq}.json`);
  await fs.promises.writeFile(`${file}.tmp`, JSON.stringify(reading));
  await fs.promises.rename(`${file}.tmp`, file);
}

let busy = false;
async function readControl() {
  if (busy) return;
  busy = true;
  try {
    const command = JSON.parse(await fs.promises.readFile(path.join(probeDir, 'control.json'), 'utf8'));
    if (command.seq > lastSeq) {
      lastSeq = command.seq;
      await answer(command);
    }
  } catch {
    // Not there yet, or caught mid-rename: the next change event reads it again.
  } finally {
    busy = false;
  }
}

// inotify, not polling: the probe costs nothing between readings. The benchmark renames a
// finished file into place, and rewrites it if no answer comes (a missed event).
fs.watch(probeDir, { persistent: false }, (_type, name) => {
  if (name === 'control.json') void readControl();
});
