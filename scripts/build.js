#!/usr/bin/env node
// Build: compile TypeScript into dist/, then copy what Node-RED loads beside each
// node's .js (the editor .html and the locales/ catalogs). No dependencies beyond tsc.
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const dist = path.join(root, 'dist');

fs.rmSync(dist, { recursive: true, force: true });
execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', path.join(root, 'tsconfig.json')], {
  stdio: 'inherit',
});

const srcNodes = path.join(root, 'nodes');
const outNodes = path.join(dist, 'nodes');
for (const entry of fs.readdirSync(srcNodes, { withFileTypes: true })) {
  if (entry.isFile() && entry.name.endsWith('.html')) {
    fs.copyFileSync(path.join(srcNodes, entry.name), path.join(outNodes, entry.name));
  }
}
fs.cpSync(path.join(srcNodes, 'locales'), path.join(outNodes, 'locales'), { recursive: true });
// Plugins (the Vector waits sidebar): their editor .html and locales/ beside their .js too.
const srcPlugins = path.join(srcNodes, 'plugins');
const outPlugins = path.join(outNodes, 'plugins');
for (const entry of fs.readdirSync(srcPlugins, { withFileTypes: true })) {
  if (entry.isFile() && entry.name.endsWith('.html')) {
    fs.copyFileSync(path.join(srcPlugins, entry.name), path.join(outPlugins, entry.name));
  }
}
fs.cpSync(path.join(srcPlugins, 'locales'), path.join(outPlugins, 'locales'), { recursive: true });
// Node-RED looks for a node's icons in icons/ beside its .js, not at the package root.
fs.cpSync(path.join(root, 'icons'), path.join(outNodes, 'icons'), { recursive: true });

// The editor's validators check the limits the runtime checks: generate them from
// the compiled schemas into resources/ (served to the editor at
// resources/@deferrable/node-red-vector-pipeline/limits.js, beside editor.js).
const { editorLimits, limitsScript } = require('./editor-limits');
const limits = editorLimits(
  require(path.join(dist, 'lib', 'schemas.js')),
  require(path.join(dist, 'lib', 'backends', 'collection-name.js')),
  require(path.join(dist, 'lib', 'config-versions.js')),
);
fs.writeFileSync(path.join(root, 'resources', 'limits.js'), limitsScript(limits));
