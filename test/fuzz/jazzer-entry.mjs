// jazzer.js loads a fuzz target by a .js/.mjs/.cjs path; the targets are TypeScript, loaded
// through tsx (`node --import tsx`), so this entry re-exports the one ISOGATE_FUZZ_TARGET names.
// jazzer's ESM loader instruments what tsx emitted, so coverage guidance sees the TypeScript.
const target = await import(process.env.ISOGATE_FUZZ_TARGET);
export const fuzz = target.fuzz;
