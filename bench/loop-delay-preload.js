// Preloaded (`node -r`) into each node-red process of the shared-waits benchmark: the
// event-loop delay of that process, read by the benchmark from a file. No signals: Node-RED's
// start script shuts down on SIGINT/SIGUSR2, so the benchmark talks through files.
//
//   <userDir>/loop-delay.json    rewritten every second: the histogram since the last reset
//   <userDir>/loop-delay.reset   created by the benchmark: start a new histogram (then removed)
//
// The user directory is the `-u` argument of red.js. If the benchmark's process goes away
// (killed on a timeout), this process ends too: nothing is left running.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { monitorEventLoopDelay } = require('node:perf_hooks');

const RESOLUTION_MS = 10;
const userDirAt = process.argv.indexOf('-u');
const userDir = userDirAt === -1 ? null : process.argv[userDirAt + 1];

if (userDir) {
  const out = path.join(userDir, 'loop-delay.json');
  const reset = path.join(userDir, 'loop-delay.reset');
  const parent = process.ppid;
  let histogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  histogram.enable();
  let since = Date.now();
  // Node records the time between two samples: an idle loop reads as the resolution, subtracted here.
  const toMs = (ns) => Math.round(Math.max(0, ns / 1e6 - RESOLUTION_MS) * 10) / 10;
  const timer = setInterval(() => {
    if (process.ppid !== parent) process.exit(1);
    if (fs.existsSync(reset)) {
      fs.rmSync(reset, { force: true });
      histogram.disable();
      histogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
      histogram.enable();
      since = Date.now();
    }
    const reading = {
      pid: process.pid,
      since,
      at: Date.now(),
      samples: histogram.count,
      p50Ms: toMs(histogram.percentile(50)),
      p99Ms: toMs(histogram.percentile(99)),
      maxMs: toMs(histogram.max),
      rssBytes: process.memoryUsage.rss(),
    };
    // Written whole, then renamed: the benchmark never reads half a file.
    fs.writeFileSync(`${out}.tmp`, JSON.stringify(reading));
    fs.renameSync(`${out}.tmp`, out);
  }, 1000);
  timer.unref();
}
