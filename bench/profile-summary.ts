/**
 * Reading a V8 CPU profile of the server (server-profile-hook.ts): self time by function and
 * by file, and inclusive time by function, heaviest first. Run alone on a saved profile:
 * `npx tsx bench/profile-summary.ts FILE.cpuprofile [top]`.
 */
import { readFileSync } from 'node:fs';
import { type CallFrame, type CpuProfile, tallyProfile } from './profile.js';

export type { CpuProfile };

/** The slice of node:module's SourceMap this uses. */
interface SourceMapLike {
  findEntry(line: number, column: number): { originalSource?: string; originalLine?: number; originalColumn?: number } | object;
}

/** The profile with each frame's position moved to its TypeScript source where a source map knows it. */
export function mapToSources(profile: CpuProfile, mapOf: (url: string) => SourceMapLike | undefined): CpuProfile {
  const maps = new Map<string, SourceMapLike | undefined>();
  for (const node of profile.nodes) {
    const frame = node.callFrame;
    if (!frame.url.startsWith('file://') || frame.lineNumber < 0) continue;
    if (!maps.has(frame.url)) maps.set(frame.url, mapOf(frame.url));
    const entry = maps.get(frame.url)?.findEntry(frame.lineNumber, frame.columnNumber);
    if (!entry || !('originalSource' in entry) || entry.originalSource === undefined) continue;
    node.callFrame = { ...frame, url: entry.originalSource, lineNumber: entry.originalLine ?? frame.lineNumber, columnNumber: entry.originalColumn ?? frame.columnNumber };
  }
  return profile;
}

const shortUrl = (url: string): string => url.replace(/^file:\/\//, '').replace(/.*\/node_modules\//, '').replace(/.*\/(src|bench|test)\//, '$1/');

function frameName(frame: CallFrame): string {
  const file = shortUrl(frame.url);
  return `${frame.functionName || '(anonymous)'}${file ? ` ${file}:${frame.lineNumber + 1}` : ''}`;
}

/** Self time by function and by file, inclusive time by function: the `top` heaviest of each. */
export function summariseServer(profile: CpuProfile, top = 40): string {
  const fileOf = (frame: CallFrame): string => shortUrl(frame.url) || `(${frame.functionName})`;
  const { totalMs: total, idleMs: idle, self, selfByFile: byFile, inclusive } = tallyProfile(profile, frameName, fileOf);
  const busy = total - idle;
  const list = (m: Map<string, number>): string[] =>
    [...m].sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, v]) => `${v.toFixed(0).padStart(7)} ms  ${((100 * v) / (busy || 1)).toFixed(1).padStart(5)}% of busy  ${k}`);
  return [
    `sampled ${total.toFixed(0)} ms, of which idle ${idle.toFixed(0)} ms (percentages are of the busy ${busy.toFixed(0)} ms)`,
    '',
    'self time by function:',
    ...list(self),
    '',
    'self time by file:',
    ...list(byFile),
    '',
    'inclusive time by function:',
    ...list(inclusive),
    '',
  ].join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const profile = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as CpuProfile;
  process.stdout.write(summariseServer(profile, Number(process.argv[3] ?? 40)));
}
