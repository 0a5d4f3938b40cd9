#!/usr/bin/env node
import { run } from './run.mjs';

await run('../dist/store-mock/cli.js');
