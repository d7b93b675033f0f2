// Proves by disassembly that each file of an x86-64 prebuild uses no instruction beyond the
// CPU level it is loaded on. QEMU's user-mode emulator runs AVX2 code even when it emulates a
// CPU without AVX, so a clean run under QEMU proves only the CPU detection. This audit proves
// the instructions themselves.
//
//   node --import tsx scripts/isa-audit.ts [prebuilds/linux-x64]
//
// Each instruction that objdump prints is mapped to the extensions it needs, from its
// encoding (VEX, EVEX), its registers (ymm, zmm, k masks, xmm16 and up) and its mnemonic.
// The loader (xguard.node and llama.cpp's shared libraries) must stay at the x86-64 baseline;
// each libggml-cpu-<variant>.so may use its own level and nothing above it.

import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export type IsaExtension =
  | 'sse3'
  | 'ssse3'
  | 'sse4.1'
  | 'sse4.2'
  | 'popcnt'
  | 'avx'
  | 'avx2'
  | 'fma'
  | 'f16c'
  | 'bmi1'
  | 'bmi2'
  | 'lzcnt'
  | 'avx-vnni'
  | 'avx512'
  | 'avx512-vbmi'
  | 'avx512-vnni'
  | 'avx512-bf16'
  | 'avx512-fp16'
  | 'avx512-ifma'
  | 'avx512-vpopcntdq'
  | 'avx512-bitalg'
  | 'gfni'
  | 'vaes'
  | 'vpclmulqdq'
  | 'amx'
  | 'xop'
  | 'fma4';

const SSE42_LEVEL: IsaExtension[] = ['sse3', 'ssse3', 'sse4.1', 'sse4.2', 'popcnt'];
const AVX2_LEVEL: IsaExtension[] = [...SSE42_LEVEL, 'avx', 'f16c', 'fma', 'avx2', 'bmi1', 'bmi2', 'lzcnt'];
const AVX512_LEVEL: IsaExtension[] = [...AVX2_LEVEL, 'avx512'];

/**
 * The extensions each file may use. The CPU variants follow the feature lists that llama.cpp's
 * GGML_CPU_ALL_VARIANTS gives each in ggml/src/CMakeLists.txt. Haswell and newer also have
 * BMI1 and LZCNT, which the compiler may use along with BMI2.
 */
export const ALLOWED_BY_VARIANT: Readonly<Record<string, readonly IsaExtension[]>> = {
  loader: [],
  x64: [],
  sse42: SSE42_LEVEL,
  sandybridge: [...SSE42_LEVEL, 'avx'],
  ivybridge: [...SSE42_LEVEL, 'avx', 'f16c'],
  piledriver: [...SSE42_LEVEL, 'avx', 'f16c', 'fma'],
  haswell: AVX2_LEVEL,
  alderlake: [...AVX2_LEVEL, 'avx-vnni'],
  skylakex: AVX512_LEVEL,
  cannonlake: [...AVX512_LEVEL, 'avx512-vbmi'],
  cascadelake: [...AVX512_LEVEL, 'avx512-vnni'],
  icelake: [...AVX512_LEVEL, 'avx512-vbmi', 'avx512-vnni'],
  cooperlake: [...AVX512_LEVEL, 'avx512-vnni', 'avx512-bf16'],
  zen4: [...AVX512_LEVEL, 'avx512-vbmi', 'avx512-vnni', 'avx512-bf16'],
  sapphirerapids: [...AVX512_LEVEL, 'avx512-vbmi', 'avx512-vnni', 'avx512-bf16', 'amx'],
};

const SSE3 = new Set(['addsubps', 'addsubpd', 'haddps', 'haddpd', 'hsubps', 'hsubpd', 'movshdup', 'movsldup', 'movddup', 'lddqu', 'monitor', 'mwait']);
const SSSE3 = new Set([
  'pshufb', 'phaddw', 'phaddd', 'phaddsw', 'phsubw', 'phsubd', 'phsubsw', 'pmaddubsw', 'pmulhrsw',
  'psignb', 'psignw', 'psignd', 'pabsb', 'pabsw', 'pabsd', 'palignr',
]);
const SSE41 = new Set([
  'pmulld', 'pmuldq', 'pminsb', 'pminsd', 'pminuw', 'pminud', 'pmaxsb', 'pmaxsd', 'pmaxuw', 'pmaxud',
  'pblendvb', 'pblendw', 'blendps', 'blendpd', 'blendvps', 'blendvpd', 'ptest', 'pextrb', 'pextrd', 'pextrq',
  'pinsrb', 'pinsrd', 'pinsrq', 'extractps', 'insertps', 'roundps', 'roundpd', 'roundss', 'roundsd', 'dpps', 'dppd',
  'mpsadbw', 'phminposuw', 'packusdw', 'pcmpeqq', 'movntdqa',
]);
const SSE42 = new Set(['pcmpgtq', 'pcmpestri', 'pcmpestrm', 'pcmpistri', 'pcmpistrm', 'crc32']);
const BMI1 = new Set(['andn', 'bextr', 'blsi', 'blsmsk', 'blsr', 'tzcnt']);
const BMI2 = new Set(['bzhi', 'mulx', 'pdep', 'pext', 'rorx', 'sarx', 'shlx', 'shrx']);
const AMX = /^(ldtilecfg|sttilecfg|tileloadd|tileloaddt1|tilestored|tilerelease|tilezero|tdpb[su][su]d|tdpbf16ps|tdpfp16ps)$/;
// AVX2 instructions that are not simply the integer forms on ymm registers.
const AVX2_ONLY = /^(vpbroadcast[bwdq]|vbroadcasti128|vinserti128|vextracti128|vperm2i128|vpermd|vpermq|vpermps|vpermpd|vp?gather[dq][dqps]*|vpmaskmov[dq]|vpsllv[dq]|vpsrlv[dq]|vpsravd|vpblendd)$/;
// AVX instructions on ymm registers whose names start with "vp" but are floating point.
const AVX1_VP = /^(vpermilps|vpermilpd|vperm2f128)$/;

/** One disassembled instruction: its encoding bytes and text. */
export interface Instruction {
  bytes: number[];
  mnemonic: string;
  operands: string;
}

function encodingOf(bytes: number[]): 'legacy' | 'vex' | 'evex' | 'xop' {
  const at = (position: number): number => bytes[position] ?? -1;
  let index = 0;
  // Skip legacy prefixes, then REX. The next byte is the opcode or a VEX, EVEX or XOP escape.
  while ([0x66, 0x67, 0xf0, 0xf2, 0xf3, 0x2e, 0x36, 0x3e, 0x26, 0x64, 0x65].includes(at(index))) {
    index += 1;
  }
  if (at(index) >= 0x40 && at(index) <= 0x4f) {
    index += 1;
  }
  const opcode = at(index);
  if (opcode === 0xc4 || opcode === 0xc5) {
    return 'vex';
  }
  if (opcode === 0x62) {
    return 'evex';
  }
  // 8F is POP r/m unless its map-select field (low five bits of the next byte) is 8 or more.
  if (opcode === 0x8f && at(index + 1) >= 0 && (at(index + 1) & 0x1f) >= 8) {
    return 'xop';
  }
  return 'legacy';
}

/** Lists the extensions beyond x86-64's baseline (SSE2) that one instruction needs. */
export function extensionsOf(instruction: Instruction): Set<IsaExtension> {
  const needs = new Set<IsaExtension>();
  const encoding = encodingOf(instruction.bytes);
  const mnemonic = instruction.mnemonic.replace(/^\{(vex|evex)\}\s*/, '');
  const operands = instruction.operands;
  const usesYmm = /%ymm\d/.test(operands);
  const usesUpperRegisters = /%[xyz]mm(1[6-9]|2\d|3[01])\b/.test(operands) || /%k[0-7]\b/.test(operands) || /\{%k[1-7]\}/.test(operands);

  if (encoding === 'xop') {
    needs.add(/^vfn?m(add|sub)/.test(mnemonic) ? 'fma4' : 'xop');
    return needs;
  }
  if (encoding === 'evex' || /%zmm\d/.test(operands) || usesUpperRegisters || /^k(mov|and|or|xor|not|shift|test|unpck|add|ortest)/.test(mnemonic)) {
    needs.add('avx512');
  }
  if (encoding === 'vex' || usesYmm) {
    needs.add('avx');
  }

  if (encoding === 'legacy') {
    if (SSE3.has(mnemonic)) needs.add('sse3');
    if (SSSE3.has(mnemonic)) needs.add('ssse3');
    if (SSE41.has(mnemonic)) needs.add('sse4.1');
    if (SSE42.has(mnemonic)) needs.add('sse4.2');
    if (mnemonic === 'popcnt') needs.add('popcnt');
    // lzcnt is encoded as `rep bsr`, which an older CPU runs as bsr, a different result. tzcnt
    // is `rep bsf`: gcc emits it for __builtin_ctz because bsf gives the same result for every
    // input except 0, where ctz is undefined, so it runs correctly without BMI1.
    if (mnemonic === 'lzcnt') needs.add('lzcnt');
  }
  if (encoding === 'vex') {
    if (BMI1.has(mnemonic)) needs.add('bmi1');
    if (BMI2.has(mnemonic)) needs.add('bmi2');
    if (AVX2_ONLY.test(mnemonic) || (usesYmm && mnemonic.startsWith('vp') && !AVX1_VP.test(mnemonic))) needs.add('avx2');
    if (/^vbroadcasts[sd]$/.test(mnemonic) && /^%xmm/.test(operands)) needs.add('avx2');
    if (/^vfn?m(add|sub)|^vfmaddsub|^vfmsubadd/.test(mnemonic)) needs.add('fma');
    if (/^vcvt(ph2ps|ps2ph)$/.test(mnemonic)) needs.add('f16c');
    if (/^vpdp(bus|wss)ds?$/.test(mnemonic)) needs.add('avx-vnni');
    // BMI and AMX instructions are VEX-encoded but need no AVX.
    if (BMI1.has(mnemonic) || BMI2.has(mnemonic) || AMX.test(mnemonic)) needs.delete('avx');
  }
  if (encoding === 'evex') {
    if (/^vpdp(bus|wss)ds?$/.test(mnemonic)) needs.add('avx512-vnni');
    if (/^(vcvtne2ps2bf16|vcvtneps2bf16|vdpbf16ps)$/.test(mnemonic)) needs.add('avx512-bf16');
    if (/^(vpermb|vpermi2b|vpermt2b|vpmultishiftqb)$/.test(mnemonic)) needs.add('avx512-vbmi');
    if (/^vpmadd52[lh]uq$/.test(mnemonic)) needs.add('avx512-ifma');
    if (/^vpopcnt[dq]$/.test(mnemonic)) needs.add('avx512-vpopcntdq');
    if (/^(vpopcnt[bw]|vpshufbitqmb)$/.test(mnemonic)) needs.add('avx512-bitalg');
    if (/ph$/.test(mnemonic) && mnemonic !== 'vcvtps2ph' && !/^vcvt.*2ph$/.test(mnemonic)) needs.add('avx512-fp16');
  }
  if (/^v?gf2p8/.test(mnemonic)) needs.add('gfni');
  if (/^vaes/.test(mnemonic) && (usesYmm || /%zmm/.test(operands))) needs.add('vaes');
  if (/^vpclmul/.test(mnemonic) && (usesYmm || /%zmm/.test(operands))) needs.add('vpclmulqdq');
  if (AMX.test(mnemonic)) needs.add('amx');
  return needs;
}

/** Disassembles a file's code sections with objdump (AT&T syntax, one line per instruction). */
export function disassemble(file: string): Instruction[] {
  const result = spawnSync('objdump', ['-d', '-w', '--no-addresses', file], { encoding: 'utf8', maxBuffer: 1 << 30 });
  if (result.error) {
    throw new Error(`objdump could not run (${result.error.message}); install binutils to audit ${file}.`);
  }
  if (result.status !== 0) {
    throw new Error(`objdump failed on ${file}: ${result.stderr.trim()}`);
  }

  const instructions: Instruction[] = [];
  for (const line of result.stdout.split('\n')) {
    // "\t62 f1 7c 48 28 c1 \tvmovaps %zmm1,%zmm0" with --no-addresses.
    const match = /^\s*((?:[0-9a-f]{2} )+)\s*\t(\S+(?:\s\S+)?)(?:\s+(.*))?$/.exec(line);
    if (match === null) {
      continue;
    }
    const hexBytes = match[1] ?? '';
    // objdump prints "{vex} vpdpbusd ..." and prefixes such as "rep stos": keep the instruction.
    const words = `${match[2] ?? ''} ${match[3] ?? ''}`.trim().split(/\s+/);
    while (words.length > 1 && /^(\{vex\}|\{evex\}|rep|repz|repnz|repe|repne|lock|notrack|bnd|data16|addr32|cs|ds|es|ss|fs|gs)$/.test(words[0] ?? '')) {
      words.shift();
    }
    const mnemonic = words.shift() ?? '';
    instructions.push({ bytes: hexBytes.trim().split(' ').map((hex) => parseInt(hex, 16)), mnemonic, operands: words.join(' ') });
  }
  return instructions;
}

export interface AuditFinding {
  extension: IsaExtension;
  count: number;
  example: string;
}

export interface FileAudit {
  file: string;
  variant: string;
  instructions: number;
  /** Every extension the file uses, with a count and one example. */
  used: AuditFinding[];
  /** The ones its variant does not allow. */
  violations: AuditFinding[];
}

/** Returns the variant a prebuild file belongs to: its CPU level, or "loader" for every other file. */
export function variantOfFile(name: string): string {
  return /^(?:lib)?ggml-cpu-(.+)\.(?:so|dll|dylib)$/.exec(name)?.[1] ?? 'loader';
}

export function auditFile(file: string): FileAudit {
  const variant = variantOfFile(path.basename(file));
  const allowed = ALLOWED_BY_VARIANT[variant];
  if (allowed === undefined) {
    throw new Error(`${path.basename(file)} is CPU variant "${variant}", which this audit has no level for; add it to ALLOWED_BY_VARIANT.`);
  }

  const instructions = disassemble(file);
  const used = new Map<IsaExtension, AuditFinding>();
  for (const instruction of instructions) {
    for (const extension of extensionsOf(instruction)) {
      const finding = used.get(extension);
      if (finding === undefined) {
        used.set(extension, { extension, count: 1, example: `${instruction.mnemonic} ${instruction.operands}`.trim() });
      } else {
        finding.count += 1;
      }
    }
  }
  const findings = [...used.values()].sort((a, b) => a.extension.localeCompare(b.extension));
  return {
    file,
    variant,
    instructions: instructions.length,
    used: findings,
    violations: findings.filter((finding) => !allowed.includes(finding.extension)),
  };
}

/** Audits every binary in a prebuild folder. */
export function auditFolder(folder: string): FileAudit[] {
  return readdirSync(folder)
    .filter((name) => /\.(node|so|dll|dylib)$|\.so\.\d+$/.test(name))
    .sort()
    .map((name) => auditFile(path.join(folder, name)));
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const folder = process.argv[2] ?? path.join('prebuilds', `${process.platform}-${process.arch}`);
  let failed = false;
  for (const audit of auditFolder(folder)) {
    const used = audit.used.map((finding) => `${finding.extension}×${finding.count}`).join(' ') || 'baseline only';
    console.log(`${path.basename(audit.file).padEnd(34)} ${audit.variant.padEnd(15)} ${String(audit.instructions).padStart(8)} instr  ${used}`);
    for (const violation of audit.violations) {
      failed = true;
      console.log(`  BEYOND ${audit.variant}: ${violation.extension} ×${violation.count}, for example "${violation.example}"`);
    }
  }
  process.exitCode = failed ? 1 : 0;
}
