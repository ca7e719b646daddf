/**
 * A CPU profile of the sync server over the load's measured window only (not startup, not the
 * databases' creation, not the drain): loaded into the server process by `server-load.ts`
 * with `LOAD_PROFILE=DIR`, which gives each server `LOAD_PROFILE=DIR/<server>-<databases>`.
 * The load sends SIGUSR2 when its window starts and again when it ends; the first starts V8's
 * sampling profiler in this process (node:inspector), the second stops it and writes
 * `<LOAD_PROFILE>.cpuprofile`, its positions mapped back to the TypeScript sources through
 * tsx's source maps, and a summary beside it (`.txt`, profile-summary.ts).
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { findSourceMap } from 'node:module';
import { type CpuProfile, mapToSources, summariseServer } from './profile-summary.js';

const base = process.env.LOAD_PROFILE;
if (base) {
  const session = new Session();
  session.connect();
  let running = false;
  const post = (method: string, params?: object): Promise<unknown> =>
    new Promise((resolve, reject) => session.post(method, params, (e, r) => (e ? reject(e) : resolve(r))));
  process.on('SIGUSR2', () => {
    if (!running) {
      running = true;
      void post('Profiler.enable')
        .then(() => post('Profiler.setSamplingInterval', { interval: 200 }))
        .then(() => post('Profiler.start'));
      return;
    }
    running = false;
    void post('Profiler.stop').then((r) => {
      const profile = mapToSources((r as { profile: CpuProfile }).profile, (url) => findSourceMap(url));
      writeFileSync(`${base}.cpuprofile`, JSON.stringify(profile));
      writeFileSync(`${base}.txt`, summariseServer(profile));
    });
  });
}
