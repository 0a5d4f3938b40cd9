/**
 * The fuzz targets, one per parser that sees untrusted bytes, each in jazzer's form (a module
 * exporting `fuzz(data: Buffer)`). `sync` targets run under jazzer's --sync (much faster);
 * `maxLen` is the largest input the fuzzer makes, above the largest seed.
 *
 * `disable` turns off a jazzer bug detector for one target, each with its reason:
 * remote-code-execution reports any `new Function` source containing its canary "jaz_zer". ajv
 * compiles a publisher's schema to such a function with the schema's strings in it as escaped
 * literals (its first run found `"pattern": "jaz_zer$"`, test/fuzz/regressions/manifest/), so
 * on the two targets that compile untrusted schemas it reports every schema naming the canary.
 * findings.test.ts checks what the detector cannot: that nothing in a schema breaks out of
 * those literals.
 */
const AJV_CODEGEN = ['remote-code-execution'];

export const FUZZ_TARGETS = {
  package: { sync: false, maxLen: 16 * 1024, disable: AJV_CODEGEN },
  manifest: { sync: true, maxLen: 8 * 1024, disable: AJV_CODEGEN },
  config: { sync: true, maxLen: 16 * 1024 },
  'control-frame': { sync: true, maxLen: 8 * 1024 },
  'api-body': { sync: false, maxLen: 8 * 1024 },
  rules: { sync: true, maxLen: 24 * 1024 },
  modbus: { sync: true, maxLen: 4 * 1024 },
  mqtt: { sync: true, maxLen: 8 * 1024 },
  pcap: { sync: true, maxLen: 16 * 1024 },
} as const satisfies Record<string, { sync: boolean; maxLen: number; disable?: readonly string[] }>;

export type FuzzTargetName = keyof typeof FUZZ_TARGETS;
