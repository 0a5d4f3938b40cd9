// Shared by the isogate* commands. They run the compiled JavaScript in dist/ (`npm ci` builds it).
// A command runs in this process, so a client command costs one Node start; only a command that
// runs isolates starts Node once more, with --no-node-snapshot, which isolated-vm needs on Node 20.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ISOLATE_FLAG = '--no-node-snapshot';

/** `entry` is the compiled module, relative to this file; it exports `main(argv) -> exit code`. */
export async function run(entry, { needsIsolates = false, supervise = false } = {}) {
  const script = fileURLToPath(new URL(entry, import.meta.url));
  if (!existsSync(script)) {
    process.stderr.write(
      `E_INTERNAL: ${script} is missing: isogate is not built. Run \`npm ci\` (or \`npm run build\`) in ${fileURLToPath(new URL('..', import.meta.url))}\n`,
    );
    process.exitCode = 1;
    return;
  }
  if (needsIsolates && !process.execArgv.includes(ISOLATE_FLAG)) {
    if (supervise && !process.argv.includes('--no-supervisor')) {
      // The gateway under a supervisor that restarts it after a crash (platform/supervisor).
      const { superviseGateway } = await import(new URL('../dist/platform/supervisor/main.js', import.meta.url).href);
      process.exitCode = await superviseGateway({ script: process.argv[1], argv: process.argv.slice(2) });
      return;
    }
    // The same command again, so the child takes the in-process path below, with the gateway's
    // allocator settings, which glibc reads only at a process's start (gateway-env.ts).
    const { gatewayEnv } = await import(new URL('../dist/platform/bootstrap/gateway-env.js', import.meta.url).href);
    const child = spawn(process.execPath, [ISOLATE_FLAG, process.argv[1], ...process.argv.slice(2)], { stdio: 'inherit', env: gatewayEnv(process.env) });
    // The child handles Ctrl-C itself (the gateway shuts down cleanly); don't die before it.
    for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
    child.on('exit', (code, signal) => {
      process.exitCode = code ?? (signal ? 128 + (osConstants.signals[signal] ?? 0) : 1);
    });
    return;
  }
  if (needsIsolates) {
    // First thing: a SIGTERM from here on is a stop asked for, never the default death.
    const { holdStopSignals } = await import(new URL('../dist/platform/bootstrap/signals.js', import.meta.url).href);
    holdStopSignals();
  }
  const { main } = await import(pathToFileURL(script).href);
  process.exitCode = await main(process.argv.slice(2));
}
