/**
 * Figures of the reliability suites: each suite records what it measured (counts,
 * lateness, latencies) and writes them as JSON to test/reliability/.results/<suite>.json
 * (gitignored); `node test/reliability/report.js` turns them into RELIABILITY.md's
 * figures section.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';

export const RESULTS_DIR = path.join(__dirname, '.results');

export type Figures = Record<string, unknown>;

/** Write (replace) the figures of one suite, with the time of the run. */
export async function writeFigures(suite: string, figures: Figures): Promise<void> {
  await fsp.mkdir(RESULTS_DIR, { recursive: true });
  const record = { suite, finishedAt: new Date().toISOString(), node: process.version, ...figures };
  await fsp.writeFile(path.join(RESULTS_DIR, `${suite}.json`), JSON.stringify(record, null, 2) + '\n');
}

/** The p-th percentile (0..100) of some numbers, nearest rank; null when there are none. */
export function percentile(values: number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank];
}

export const round = (value: number, digits = 1) => Math.round(value * 10 ** digits) / 10 ** digits;
