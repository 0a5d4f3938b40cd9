#!/usr/bin/env node
import { run } from './run.mjs';

await run('../dist/sdk/cli/main.js');
