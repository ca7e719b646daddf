/**
 * Finds a Chromium for the browser tests, the end-to-end tests and the benchmark:
 * `$CHROMIUM_PATH`, then the system's `/usr/bin/chromium` (Debian's package), then a browser
 * Playwright installed. Throws with what to install when there is none.
 */
import { existsSync } from 'node:fs';

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome', '/usr/bin/google-chrome-stable'];

export function chromiumPath(): string {
  const fromEnv = process.env.CHROMIUM_PATH;
  if (fromEnv) {
    if (!existsSync(fromEnv)) throw new Error(`CHROMIUM_PATH=${fromEnv} does not exist`);
    return fromEnv;
  }
  for (const path of CANDIDATES) if (existsSync(path)) return path;
  throw new Error(
    'No Chromium found for the browser tests. Install one (Debian/Ubuntu: `apt-get install -y chromium`; ' +
      'or `npx playwright install chromium` where downloads are allowed) or set CHROMIUM_PATH to its executable.',
  );
}
