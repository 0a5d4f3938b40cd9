// Shared by the isogate* commands: run a TypeScript entry under Node with the flags the
// platform needs (--no-node-snapshot for isolated-vm on Node 20, tsx as the loader).
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export function launch(entry) {
  const script = fileURLToPath(new URL(entry, import.meta.url));
  const tsx = import.meta.resolve('tsx');
  const child = spawn(process.execPath, ['--no-node-snapshot', '--import', tsx, script, ...process.argv.slice(2)], { stdio: 'inherit' });
  // The child handles Ctrl-C itself (the gateway shuts down cleanly); don't die before it.
  for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => {
    process.exitCode = code ?? (signal ? 128 : 1);
  });
}
