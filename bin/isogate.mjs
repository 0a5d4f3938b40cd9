#!/usr/bin/env node
import { run } from './run.mjs';

// Only the gateway itself runs isolates; every other command talks to it over its socket.
const GATEWAY_COMMANDS = new Set(['start', 'demo']);
const command = process.argv[2];
const gateway = GATEWAY_COMMANDS.has(command) && !process.argv.includes('--help') && !process.argv.includes('-h');
await run('../dist/platform/cli/main.js', { needsIsolates: gateway, supervise: gateway });
