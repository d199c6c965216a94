/**
 * Runs test/support/lancedb-other-process.js, a second Node.js process on the same
 * LanceDB directory (real @lancedb/lancedb), to its end.
 */
import { spawn } from 'node:child_process';
import * as path from 'node:path';

const SCRIPT = path.join(__dirname, 'lancedb-other-process.js');

/** Resolves with the process's last JSON line; rejects with its stderr. */
export function lancedbOtherProcess(...args: (string | number)[]): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SCRIPT, ...args.map(String)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`other process exited with ${code}: ${stderr}`));
      const lines = stdout.trim().split('\n');
      resolve(JSON.parse(lines[lines.length - 1]) as Record<string, unknown>);
    });
  });
}
