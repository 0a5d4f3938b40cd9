#!/usr/bin/env node
/**
 * Makes @jazzer.js/fuzzer's prebuilt Linux addon load on Debian bookworm (glibc 2.36, GCC 12).
 *
 * The only prebuilt the npm registry carries for linux-x64 (jazzer.js 4.0.0) was linked against
 * glibc 2.38 and GCC 13's libstdc++, and needs those versions for three symbols only:
 * - `__isoc23_strtol` and `__isoc23_strtoul`, the C23 variants that also accept a `0b` prefix,
 *   which libFuzzer's flag parsing never relies on: they are bound to plain `strtol`/`strtoul`
 *   (a suffix of the C23 name in the string table, so only the name offset moves);
 * - `std::ios_base_library_init()`, which GCC 13's <iostream> names with a bare `.globl` only to
 *   pull in the library version that initialises the standard streams; it is never called, and
 *   in a Node process the streams are initialised by libstdc++ 12's own static initialisers: it
 *   becomes a weak reference.
 * Each edited symbol's version index becomes "global" and the now unused version requirements
 * are marked weak, which the dynamic loader does not insist on. Older releases fetch their
 * prebuilts from GitHub at install, which this project cannot reach, and building from source
 * needs LLVM's compiler-rt, which the package does not carry. Idempotent; does nothing where the
 * addon is absent or already loads.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const SHT_DYNSYM = 11;
const SHT_GNU_VERNEED = 0x6ffffffe;
const SHT_GNU_VERSYM = 0x6fffffff;
const VER_NDX_GLOBAL = 1;
const VER_FLG_WEAK = 0x2;
const STB_WEAK = 2;
const C23_PREFIX = '__isoc23_';
const C23_SYMBOLS = new Set(['__isoc23_strtol', '__isoc23_strtoul']);
const UNCALLED_SYMBOLS = new Set(['_ZSt21ios_base_library_initv']);
const MISSING_VERSIONS = new Set(['GLIBC_2.38', 'GLIBCXX_3.4.32']);

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const addon = path.join(root, 'node_modules/@jazzer.js/fuzzer/prebuilds/fuzzer-linux-x64.node');

function cString(buf, offset) {
  const end = buf.indexOf(0, offset);
  return buf.toString('latin1', offset, end);
}

function sections(elf) {
  if (elf.readUInt32BE(0) !== 0x7f454c46 || elf[4] !== 2 || elf[5] !== 1) {
    throw new Error('not a little-endian ELF64 file');
  }
  const shoff = Number(elf.readBigUInt64LE(0x28));
  const shentsize = elf.readUInt16LE(0x3a);
  const shnum = elf.readUInt16LE(0x3c);
  const list = [];
  for (let i = 0; i < shnum; i++) {
    const at = shoff + i * shentsize;
    list.push({
      type: elf.readUInt32LE(at + 4),
      offset: Number(elf.readBigUInt64LE(at + 0x18)),
      size: Number(elf.readBigUInt64LE(at + 0x20)),
      link: elf.readUInt32LE(at + 0x28),
      entsize: Number(elf.readBigUInt64LE(at + 0x38)),
    });
  }
  return list;
}

export function patch(elf) {
  const all = sections(elf);
  const dynsym = all.find((s) => s.type === SHT_DYNSYM);
  const versym = all.find((s) => s.type === SHT_GNU_VERSYM);
  const verneed = all.find((s) => s.type === SHT_GNU_VERNEED);
  if (!dynsym || !versym || !verneed) throw new Error('no dynamic symbol version tables');
  const dynstr = all[dynsym.link];
  let changed = 0;

  for (let i = 0; i < dynsym.size / dynsym.entsize; i++) {
    const at = dynsym.offset + i * dynsym.entsize;
    const name = cString(elf, dynstr.offset + elf.readUInt32LE(at));
    if (C23_SYMBOLS.has(name)) {
      elf.writeUInt32LE(elf.readUInt32LE(at) + C23_PREFIX.length, at);
    } else if (UNCALLED_SYMBOLS.has(name)) {
      elf[at + 4] = (STB_WEAK << 4) | (elf[at + 4] & 0xf);
    } else {
      continue;
    }
    elf.writeUInt16LE(VER_NDX_GLOBAL, versym.offset + i * 2);
    changed++;
  }

  const verneedStrings = all[verneed.link];
  for (let need = verneed.offset; ; ) {
    const count = elf.readUInt16LE(need + 2);
    let aux = need + elf.readUInt32LE(need + 8);
    for (let k = 0; k < count; k++) {
      if (MISSING_VERSIONS.has(cString(elf, verneedStrings.offset + elf.readUInt32LE(aux + 8)))) {
        const flags = elf.readUInt16LE(aux + 4);
        if (!(flags & VER_FLG_WEAK)) {
          elf.writeUInt16LE(flags | VER_FLG_WEAK, aux + 4);
          changed++;
        }
      }
      aux += elf.readUInt32LE(aux + 12);
    }
    const next = elf.readUInt32LE(need + 12);
    if (next === 0) break;
    need += next;
  }
  return changed;
}

function loads() {
  try {
    createRequire(import.meta.url)(addon);
    return true;
  } catch {
    return false;
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  if (process.platform !== 'linux' || process.arch !== 'x64' || !existsSync(addon)) {
    process.exit(0);
  }
  if (!loads()) {
    const elf = readFileSync(addon);
    const changed = patch(elf);
    if (changed > 0) writeFileSync(addon, elf);
    if (!loads()) {
      process.stderr.write(`patch-jazzer: ${addon} still does not load after the patch\n`);
      process.exit(1);
    }
    process.stdout.write(`patch-jazzer: made ${path.relative(root, addon)} load on this glibc (${changed} edits)\n`);
  }
}
