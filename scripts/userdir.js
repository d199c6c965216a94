// Shared by `npm start` (scripts/start.js) and the end-to-end tests (test/e2e/harness.ts):
// how to prepare a Node-RED user directory that sees this package without installing it,
// and the command line that starts a headless Node-RED on it.
//
// Node-RED scans <userDir>/node_modules for packages whose package.json has a "node-red"
// section, following symlinks. So a symlink
//   <userDir>/node_modules/@deferrable/node-red-vector-pipeline -> <repo root>
// makes the built dist/ loadable exactly as an installed package would be, while
// `require('zod')` inside it still resolves from the repo's own node_modules.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const repoRoot = path.resolve(__dirname, '..');
const packageName = require(path.join(repoRoot, 'package.json')).name;
const redJs = require.resolve('node-red/red.js', { paths: [repoRoot] });

/** Create userDir (if needed) and link packageDir into its node_modules under the package's name. */
function linkPackage(userDir, packageDir = repoRoot) {
  const linkPath = path.join(userDir, 'node_modules', ...packageName.split('/'));
  fs.mkdirSync(path.dirname(linkPath), { recursive: true });
  let existing = null;
  try {
    existing = fs.readlinkSync(linkPath);
  } catch (err) {
    if (err.code === 'EINVAL') {
      throw new Error(
        `${linkPath} exists and is not a symlink; remove it so the package can be linked from ${packageDir}.`,
      );
    }
    if (err.code !== 'ENOENT') throw err;
  }
  if (existing !== null && path.resolve(path.dirname(linkPath), existing) === packageDir) return linkPath;
  if (existing !== null) fs.unlinkSync(linkPath);
  fs.symlinkSync(packageDir, linkPath, 'dir');
  return linkPath;
}

/**
 * Arguments for `node <...>` that start Node-RED on userDir and port, listening on
 * 127.0.0.1 only, with the first-start dialogs (telemetry, tours) switched off.
 * Spawning red.js directly (not via npx or a shell) makes the child PID the server.
 */
function nodeRedArgs({ userDir, port, defines = {} }) {
  const args = [redJs, '-u', userDir, '-p', String(port), '--no-telemetry', '-D', 'uiHost=127.0.0.1', '-D', 'editorTheme.tours=false'];
  for (const [key, value] of Object.entries(defines)) args.push('-D', `${key}=${value}`);
  return args;
}

module.exports = { repoRoot, packageName, redJs, linkPackage, nodeRedArgs };
