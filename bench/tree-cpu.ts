/**
 * The CPU time of the processes a bench started (Chromium: its browser, renderer, GPU and
 * network processes), read from /proc: on a loaded machine steadier than wall time.
 */
import { readFileSync, readdirSync } from 'node:fs';

/**
 * CPU milliseconds (user + system) used so far by every process descended from this one: the
 * Chromium this bench started (browser, renderers, their threads: the page and its workers, and
 * the browser process that carries BroadcastChannel, Web Locks and OPFS). On a loaded machine
 * this is steadier than wall time. Linux only (/proc); NaN elsewhere. Ticks are 10 ms, so a
 * measured section should take hundreds of them.
 */
export function treeCpuMs(): number {
  let procs: string[];
  try {
    procs = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return Number.NaN;
  }
  const parentOf = new Map<number, number>();
  const ticksOf = new Map<number, number>();
  for (const pid of procs) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      // Fields after the command (which may hold spaces) in parentheses: state ppid ... utime(14) stime(15) cutime cstime.
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      parentOf.set(Number(pid), Number(rest[1]));
      ticksOf.set(Number(pid), Number(rest[11]) + Number(rest[12]) + Number(rest[13]) + Number(rest[14]));
    } catch {
      // The process ended while the list was read.
    }
  }
  const descends = (pid: number): boolean => {
    for (let p = parentOf.get(pid); p !== undefined && p > 1; p = parentOf.get(p)) if (p === process.pid) return true;
    return false;
  };
  let ticks = 0;
  for (const [pid, t] of ticksOf) if (descends(pid)) ticks += t;
  // USER_HZ is 100 on every Linux this runs on.
  return ticks * 10;
}
