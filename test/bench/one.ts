/**
 * One benchmark in a process of its own: `node ... test/bench/one.ts NAME OUT` runs the benchmark
 * NAME (run.ts starts one such process per benchmark) and writes its figures to OUT as JSON.
 *
 * A process each, because what one benchmark leaves behind bends the next one's figures: after
 * the route benchmarks the process kept about 660 MiB resident (glibc and V8 do not give the
 * pages back), and Node starts a child process by fork(), which copies the parent's page tables:
 * a spawn of /bin/true took 31 ms from a process at 646 MiB resident, 3 ms from one at 42 MiB.
 * The dev loop starts a type-check process on every reload, and its `run` figure measured 0.34x
 * after the route benchmarks, 0.58-0.63x alone or after the traffic gate's, in the same hour. A
 * developer's `isogate-sdk run` never carries a gateway's route benchmarks.
 */
import { promises as fs } from 'node:fs';
import { BENCHES } from './benches.js';

const [name, out] = process.argv.slice(2);
const bench = BENCHES.find((b) => b.name === name);
if (!bench || !out) throw new Error(`usage: one.ts NAME OUT, NAME one of ${BENCHES.map((b) => b.name).join(', ')}`);
const results = await (await bench.load()).default();
await fs.writeFile(out, JSON.stringify(results));
