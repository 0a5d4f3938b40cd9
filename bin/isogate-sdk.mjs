#!/usr/bin/env node
import { launch } from './launch.mjs';

launch('../sdk/cli/main.ts');
