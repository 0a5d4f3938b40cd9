#!/usr/bin/env node
import { launch } from './launch.mjs';

launch('../store-mock/cli.ts');
