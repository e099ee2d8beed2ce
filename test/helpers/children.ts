// Servers the tests start run detached, in their own process groups, so a test
// can stop one with its whole tree. If the test process itself is interrupted
// (Ctrl-C, a timeout's SIGTERM), they would outlive it: every such child is
// tracked here and its group killed when this process exits.
import type { ChildProcess } from 'node:child_process';

const live = new Set<ChildProcess>();

function killAll(): void {
  for (const p of live) {
    try { process.kill(-p.pid!, 'SIGKILL'); } catch { /* gone */ }
  }
  live.clear();
}

let installed = false;
function install(): void {
  if (installed) return;
  installed = true;
  process.once('exit', killAll);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => { killAll(); process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1)); });
  }
}

/** Tracks a detached child until it exits. */
export function track<T extends ChildProcess>(p: T): T {
  install();
  live.add(p);
  p.once('exit', () => live.delete(p));
  return p;
}

/** Kills a detached child's process group and waits for it to exit. */
export async function killGroup(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise((r) => p.once('exit', r));
  try { process.kill(-p.pid!, 'SIGKILL'); } catch { /* gone */ }
  await exited;
}
