#!/usr/bin/env node
// `npm start`: run the example pipeline in a real, headless Node-RED.
//
// Uses the user directory .node-red-demo/ at the repo root, links this package into it
// (no install: see scripts/userdir.js), writes the current "Vector store pipeline" example
// as its flows.json (overwriting, so every start runs the example as it is now), then
// starts Node-RED on 127.0.0.1:${PORT:-1880}. The example's inject fires once on start;
// its debug nodes print to this console. Ctrl-C stops Node-RED.
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { repoRoot, linkPackage, nodeRedArgs } = require('./userdir');

const userDir = path.join(repoRoot, '.node-red-demo');
const exampleFile = path.join(repoRoot, 'examples', 'Vector store pipeline.json');
const port = Number(process.env.PORT || 1880);

if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error(`PORT must be a TCP port number (1-65535), got "${process.env.PORT}".`);
  process.exit(2);
}

let flows;
try {
  flows = JSON.parse(fs.readFileSync(exampleFile, 'utf8'));
} catch (err) {
  console.error(`Cannot read the example flow ${path.relative(repoRoot, exampleFile)}: ${err.message}`);
  process.exit(1);
}

linkPackage(userDir);
fs.writeFileSync(path.join(userDir, 'flows.json'), JSON.stringify(flows, null, 2));

const child = spawn(process.execPath, nodeRedArgs({ userDir, port }), { cwd: repoRoot, stdio: 'inherit' });
let childExited = false;

// Forward Ctrl-C / kill to Node-RED so it stops cleanly; we exit with its code.
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    if (!childExited) child.kill(signal);
  });
}
child.on('exit', (code, signal) => {
  childExited = true;
  process.exit(code ?? (signal ? 128 + (os.constants.signals[signal] ?? 0) : 1));
});
child.on('error', (err) => {
  console.error(`Could not start Node-RED: ${err.message}`);
  process.exit(1);
});

// Print the editor URL once the HTTP server answers (Node-RED prints its own lines too,
// but this one is easy to spot among the pipeline's output).
const editorUrl = `http://127.0.0.1:${port}/`;
const deadline = Date.now() + 60_000;
function pollEditor() {
  if (childExited) return;
  const req = http.get(editorUrl, (res) => {
    res.resume();
    console.log(`\nNode-RED editor: ${editorUrl}  (Ctrl-C to stop)\n`);
  });
  req.setTimeout(2000, () => req.destroy());
  req.on('error', () => {
    if (Date.now() < deadline) setTimeout(pollEditor, 250);
    else console.error(`Node-RED did not answer on ${editorUrl} within 60 s; see its log above.`);
  });
}
setTimeout(pollEditor, 500);
