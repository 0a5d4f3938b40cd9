#!/usr/bin/env node
import { launch } from './launch.mjs';

launch('../platform/cli/main.ts');
