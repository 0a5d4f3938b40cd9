/**
 * One benchmark in a process of its own: `node ... test/bench/one.ts NAME OUT` runs the benchmark
 * NAME (run.ts starts one such process per benchmark) and writes its figures to OUT as JSON.
 *
 * A process each, because what one benchmark leaves behind bends the next one's figures: after
 * the route benchmarks the process kept about 660 MiB resident (glibc and V8 do not give the
 * pages back), and every child process started after that (the dev loop's type-check, the CLI's
 * commands) paid for copying that process's page tables. The dev loop's `run` figure measured
 * 0.34x after the route benchmarks and 0.58-0.63x alone or after the traffic gate's, in the same
 * hour. A gateway's own process, and a developer's `isogate-sdk run`, never carry that.
 */
import { promises as fs } from 'node:fs';
import { BENCHES } from './benches.js';

const [name, out] = process.argv.slice(2);
const bench = BENCHES.find((b) => b.name === name);
if (!bench || !out) throw new Error(`usage: one.ts NAME OUT, NAME one of ${BENCHES.map((b) => b.name).join(', ')}`);
const results = await (await bench.load()).default();
await fs.writeFile(out, JSON.stringify(results));
