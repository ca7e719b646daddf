/**
 * Child processes that must not outlive the test or benchmark that started them. The npm
 * `turso` bin is a Node wrapper that spawns the `tursodb` binary: killing the wrapper leaves the
 * binary running. Each child here leads its own process group, and stopping it signals the
 * whole group, wrapper and binary alike.
 */
import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';

export function spawnGroup(command: string, args: readonly string[], options: SpawnOptions = {}): ChildProcess {
  return spawn(command, args, { ...options, detached: true });
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
