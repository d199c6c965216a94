// For the browser suite: the package as users install it (npm pack, then npm install of the
// tarball into a fresh Node-RED user directory, as test/e2e/package.test.ts does), and
// Debian's Chromium driven by playwright-core with the flags of PLATFORM.md and a fresh
// profile. Everything started here is stopped by the caller (closeBrowser, cleanupAll).
import { execFile } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { makeTempDir, packageName, repoRoot } from '../e2e/harness';

const run = promisify(execFile);
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** A fresh user directory with the packed package installed (production dependencies only). */
export async function installPackedPackage(): Promise<{ userDir: string; installed: string }> {
  const packDir = await makeTempDir('nr-browser-pack');
  const packed = await run(npm, ['pack', '--json', '--pack-destination', packDir], { cwd: repoRoot });
  const tarball = path.join(packDir, JSON.parse(packed.stdout)[0].filename);
  const userDir = await makeTempDir('nr-browser-user');
  await fsp.writeFile(path.join(userDir, 'package.json'), JSON.stringify({ name: 'node-red-project', private: true }));
  await run(npm, ['install', tarball, '--no-audit', '--no-fund', '--omit=dev', '--no-package-lock'], { cwd: userDir });
  return { userDir, installed: path.join(userDir, 'node_modules', ...packageName.split('/')) };
}

export interface Editor {
  context: BrowserContext;
  page: Page;
  profileDir: string;
}

/** Chromium, headless, on a fresh profile, one page of `width` x `height`. */
export async function launchChromium(width = 1280, height = 800): Promise<Editor> {
  const profileDir = await makeTempDir('chromium-profile');
  const context = await chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width, height },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  // tsx compiles the functions given to page.evaluate with esbuild's keepNames, which
  // calls a __name helper that only exists in Node: give the page a no-op one.
  await context.addInitScript('globalThis.__name = (fn) => fn;');
  const page = context.pages()[0] ?? (await context.newPage());
  return { context, page, profileDir };
}

/** PIDs of the processes whose command line mentions `text` (e.g. a Chromium profile dir). */
export async function processesMentioning(text: string): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await fsp.readdir('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmdline = (await fsp.readFile(`/proc/${entry}/cmdline`, 'utf8')).split('\0').join(' ');
      if (cmdline.includes(text)) found.push(Number(entry));
    } catch {
      // the process ended meanwhile
    }
  }
  return found;
}
