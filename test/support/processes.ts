/**
 * Child processes that must not outlive the test or benchmark that started them. The npm
 * `turso` bin is a Node wrapper that spawns the `tursodb` binary: killing the wrapper leaves the
 * binary running. Each child here leads its own process group, and stopping it signals the
 * whole group, wrapper and binary alike.
 */
import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';

/** Every group started here and not yet seen to exit: killed when this process exits. */
const running = new Set<ChildProcess>();
let exitHookInstalled = false;

export function spawnGroup(command: string, args: readonly string[], options: SpawnOptions = {}): ChildProcess {
  const child = spawn(command, args, { ...options, detached: true });
  running.add(child);
  child.once('exit', () => running.delete(child));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    // A test or bench process that ends without its teardown (a failed hook, a worker torn
    // down, an uncaught error) still takes its servers with it: only synchronous work runs here.
    process.once('exit', () => {
      for (const c of running) killGroup(c, 'SIGKILL');
    });
  }
  return child;
}

/** Signals the child's whole process group and resolves once the child has exited. */
export function stopGroup(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) {
    killGroup(child, 'SIGKILL');
    return Promise.resolve();
  }
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  killGroup(child, signal);
  return exited;
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // The group is gone already.
  }
}
