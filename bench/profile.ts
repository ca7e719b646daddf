/**
 * CPU profiles of the page and its dedicated workers (where Outpost's engine runs), taken through the
 * Chrome DevTools protocol, one profile per classic test: `npm run bench -- --profile DIR`.
 *
 * Playwright's CDP sessions reach pages only, so this connects to the browser's own DevTools
 * socket (Chromium started with `--remote-debugging-port=0`; it writes the port into the
 * profile directory), attaches to the page, and auto-attaches to every worker the page starts.
 * Node 20 has WebSocket only with `--experimental-websocket` (Node 22: always).
 *
 * Each test's profile is summarised (self and inclusive time by function) into DIR/<test>.txt,
 * and written whole as DIR/<test>.cpuprofile for DevTools' Performance panel.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
export interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

interface Message {
  id?: number;
  method?: string;
  params?: Record<string, unknown>;
  result?: Record<string, unknown>;
  error?: { message: string };
  sessionId?: string;
}

/** The slice of WebSocket this uses (Node's global one, behind a flag on Node 20). */
interface Socket {
  send(data: string): void;
  close(): void;
  addEventListener(type: 'message', fn: (e: { data: unknown }) => void): void;
  addEventListener(type: 'open' | 'error', fn: () => void): void;
}

export class WorkerProfiler {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (r: Record<string, unknown>) => void; reject: (e: Error) => void }>();
  private readonly workers = new Map<string, string>();

  private constructor(private readonly socket: Socket) {
    socket.addEventListener('message', (e) => this.receive(JSON.parse(String(e.data)) as Message));
  }

  /** Connects to the Chromium whose user data directory is `profileDir`, and attaches to its pages. */
  static async connect(profileDir: string): Promise<WorkerProfiler> {
    const ctor = (globalThis as { WebSocket?: new (url: string) => Socket }).WebSocket;
    if (!ctor) throw new Error('--profile needs WebSocket: run with NODE_OPTIONS=--experimental-websocket on Node 20');
    const [port, path] = readFileSync(join(profileDir, 'DevToolsActivePort'), 'utf8').trim().split('\n');
    const socket = new ctor(`ws://127.0.0.1:${port}${path}`);
    await new Promise<void>((resolve, reject) => {
      socket.addEventListener('open', () => resolve());
      socket.addEventListener('error', () => reject(new Error('could not reach the DevTools socket')));
    });
    const profiler = new WorkerProfiler(socket);
    const { targetInfos } = (await profiler.send('Target.getTargets')) as { targetInfos: { targetId: string; type: string }[] };
    for (const t of targetInfos.filter((x) => x.type === 'page')) {
      const { sessionId } = (await profiler.send('Target.attachToTarget', { targetId: t.targetId, flatten: true })) as { sessionId: string };
      await profiler.send('Target.setAutoAttach', { autoAttach: true, waitForDebuggerOnStart: true, flatten: true }, sessionId);
      // The page too: the public API's side of each call (Database, Comlink, unpacking rows).
      profiler.workers.set(sessionId, 'page');
    }
    return profiler;
  }

  private send(method: string, params: Record<string, unknown> = {}, sessionId?: string): Promise<Record<string, unknown>> {
    const id = this.nextId++;
    this.socket.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }));
    return new Promise((resolve, reject) => this.waiting.set(id, { resolve, reject }));
  }

  private receive(m: Message): void {
    if (m.id !== undefined) {
      const w = this.waiting.get(m.id);
      this.waiting.delete(m.id);
      if (m.error) w?.reject(new Error(m.error.message));
      else w?.resolve(m.result ?? {});
      return;
    }
    if (m.method === 'Target.attachedToTarget') {
      const p = m.params as { sessionId: string; targetInfo: { type: string; url: string } };
      if (p.targetInfo.type === 'worker') {
        this.workers.set(p.sessionId, p.targetInfo.url);
        // Workers wait for the debugger at start: one started while profiling (open()) is
        // profiled from its first line, then let run.
        const s = p.sessionId;
        void (this.active ? this.startOne(s) : Promise.resolve())
          .then(() => this.send('Runtime.runIfWaitingForDebugger', {}, s))
          .catch(() => {});
      }
    } else if (m.method === 'Target.detachedFromTarget') {
      this.workers.delete((m.params as { sessionId: string }).sessionId);
    }
  }

  private active = false;

  private async startOne(sessionId: string, intervalUs = 100): Promise<void> {
    await this.send('Profiler.enable', {}, sessionId);
    await this.send('Profiler.setSamplingInterval', { interval: intervalUs }, sessionId);
    await this.send('Profiler.start', {}, sessionId);
  }

  /** Starts sampling the page and every worker, those alive now and those started until `stop`. */
  async start(): Promise<void> {
    this.active = true;
    for (const s of this.workers.keys()) await this.startOne(s);
  }

  /** Stops sampling; the profiles by worker URL. */
  async stop(): Promise<{ url: string; profile: CpuProfile }[]> {
    this.active = false;
    const out: { url: string; profile: CpuProfile }[] = [];
    for (const [s, url] of this.workers) {
      try {
        const { profile } = (await this.send('Profiler.stop', {}, s)) as { profile: CpuProfile };
        out.push({ url, profile });
      } catch {
        // The worker ended (a closed database) or was never started.
      }
    }
    return out;
  }

  close(): void {
    this.socket.close();
  }
}

/** Sampled milliseconds of a profile: self and inclusive by `nameOf` a frame, self by `fileOf` it. */
export interface ProfileTally {
  totalMs: number;
  idleMs: number;
  self: Map<string, number>;
  inclusive: Map<string, number>;
  selfByFile: Map<string, number>;
}

export function tallyProfile(profile: CpuProfile, nameOf: (frame: CallFrame) => string, fileOf: (frame: CallFrame) => string = () => ''): ProfileTally {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const tally: ProfileTally = { totalMs: 0, idleMs: 0, self: new Map(), inclusive: new Map(), selfByFile: new Map() };
  const add = (m: Map<string, number>, key: string, ms: number): void => void m.set(key, (m.get(key) ?? 0) + ms);
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  for (let i = 0; i < samples.length; i++) {
    // A sample's time is the gap to the next one.
    const ms = (deltas[i + 1] ?? 0) / 1000;
    tally.totalMs += ms;
    const node = byId.get(samples[i]!);
    if (!node) continue;
    if (node.callFrame.functionName === '(idle)') tally.idleMs += ms;
    add(tally.self, nameOf(node.callFrame), ms);
    add(tally.selfByFile, fileOf(node.callFrame), ms);
    const seen = new Set<string>();
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const key = nameOf(byId.get(id)!.callFrame);
      if (seen.has(key)) continue;
      seen.add(key);
      add(tally.inclusive, key, ms);
    }
  }
  return tally;
}

/** Self and inclusive milliseconds by function, the heaviest first. */
export function summarise(profile: CpuProfile, top = 25): string {
  const name = (frame: CallFrame): string => {
    const file = frame.url.split('/').pop() ?? '';
    return `${frame.functionName || '(anonymous)'}${file ? ` ${file}:${frame.lineNumber + 1}` : ''}`;
  };
  const { totalMs: total, self, inclusive } = tallyProfile(profile, name);
  const list = (m: Map<string, number>): string[] =>
    [...m].sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, v]) => `${v.toFixed(1).padStart(8)} ms  ${(100 * v / (total || 1)).toFixed(1).padStart(5)}%  ${k}`);
  return [`sampled ${total.toFixed(1)} ms`, '', 'self:', ...list(self), '', 'inclusive:', ...list(inclusive)].join('\n');
}

/** Writes each worker's profile of one test into `dir`. */
export function saveProfiles(dir: string, label: string, profiles: { url: string; profile: CpuProfile }[]): void {
  profiles.forEach(({ url, profile }, i) => {
    const base = join(dir, `${label}-w${i}`);
    writeFileSync(`${base}.cpuprofile`, JSON.stringify(profile));
    writeFileSync(`${base}.txt`, `${url}\n${summarise(profile)}\n`);
  });
}
