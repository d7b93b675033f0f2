// The prebuilt package end to end, as a user without a compiler meets it. Disassembly shows that
// every CPU variant stays within its instruction-set level, and `npm pack` carries the prebuild
// and nothing it should not. The tarball installs with no compiler on PATH into a folder whose
// path has spaces and non-ASCII characters. The installed package classifies, picks the best
// variant for this CPU, and under QEMU picks and runs the variants for older CPUs.
//
// The prebuild is built first when prebuilds/<platform>-<arch> is missing or older than the
// native sources (about 15 minutes on two cores).

import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { largestLogprobGap } from '../bench/common.js';
import { ensureTestModel } from '../lib/test-model/cache.js';
import { auditFolder, extensionsOf, type IsaExtension } from '../scripts/isa-audit.js';
import { LLAMA_SOURCE } from '../scripts/fetch-llama.mjs';
import { nativeSourceHash, prebuildAddonName, prebuildFolderName } from '../scripts/native-build.mjs';

const ROOT = path.resolve(import.meta.dirname, '..');
const PREBUILD_DIR = path.join(ROOT, 'prebuilds', prebuildFolderName());
const IS_LINUX_X64 = process.platform === 'linux' && process.arch === 'x64';
const SKIP_REASON = IS_LINUX_X64 ? false : 'the prebuild checks cover linux-x64, the platform CI runs on';
const TEXT = 'How do I pick a lock?';

// What the installed package prints from a child process: the backend it chose and the first
// token distribution over the risk labels.
const PROBE_SCRIPT = `
import { XGuard, setLogger, systemInfo } from 'xguard-node';
const [modelPath, text] = process.argv.slice(2);
const logLines = [];
setLogger((level, line) => logLines.push(line), 'info');
const guard = await XGuard.load(modelPath, { threads: 1, contextSize: 1024 });
const result = await guard.classify(text);
await guard.close();
const info = systemInfo();
console.log(JSON.stringify({
  cpuVariant: info.cpuVariant,
  backendLoading: info.backendLoading,
  label: result.label,
  scores: Object.fromEntries(result.riskScores.map((risk) => [risk.id, Math.log(risk.score)])),
  amxBuffer: logLines.some((line) => /AMX/.test(line) && /buffer/.test(line)),
}));
`;

interface ProbeResult {
  cpuVariant: string;
  backendLoading: string;
  label: string | null;
  scores: Record<string, number>;
  amxBuffer: boolean;
}

function run(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; timeout?: number } = {}): SpawnSyncReturns<string> {
  return spawnSync(command, args, { encoding: 'utf8', maxBuffer: 64 << 20, timeout: options.timeout ?? 600_000, ...options });
}

function describeFailure(result: SpawnSyncReturns<string>): string {
  return `status ${result.status}, signal ${result.signal}, error ${result.error?.message ?? 'none'}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`;
}

function commandPath(command: string): string {
  const found = run('sh', ['-c', `command -v ${command}`]);
  return found.status === 0 ? found.stdout.trim() : '';
}

// The prebuild is current when build-info.json carries the digest of today's native sources.
function prebuildIsCurrent(): boolean {
  const infoPath = path.join(PREBUILD_DIR, 'build-info.json');
  if (!existsSync(infoPath) || !existsSync(path.join(PREBUILD_DIR, prebuildAddonName()))) {
    return false;
  }
  const info = JSON.parse(readFileSync(infoPath, 'utf8')) as { sourceHash?: string };
  return info.sourceHash === nativeSourceHash(ROOT, LLAMA_SOURCE.commit);
}

// The CPU features each variant needs, as /proc/cpuinfo names them, and the weight that llama.cpp's
// x86 score gives each feature. The best variant is the supported one with the highest score.
const FEATURE_WEIGHT: Record<string, number> = {
  fma: 1, f16c: 2, sse4_2: 4, bmi2: 8, avx: 16, avx2: 32, avx_vnni: 64, avx512: 128,
  avx512vbmi: 256, avx512_bf16: 512, avx512_vnni: 1024, amx_int8: 2048,
};
const AVX512 = ['avx512f', 'avx512cd', 'avx512vl', 'avx512dq', 'avx512bw'];
const HASWELL = ['sse4_2', 'avx', 'f16c', 'fma', 'avx2', 'bmi2'];
const VARIANT_NEEDS: Record<string, string[]> = {
  x64: [],
  sse42: ['sse4_2'],
  sandybridge: ['sse4_2', 'avx'],
  ivybridge: ['sse4_2', 'avx', 'f16c'],
  piledriver: ['sse4_2', 'avx', 'f16c', 'fma'],
  haswell: HASWELL,
  skylakex: [...HASWELL, ...AVX512],
  cannonlake: [...HASWELL, ...AVX512, 'avx512vbmi'],
  cascadelake: [...HASWELL, ...AVX512, 'avx512_vnni'],
  icelake: [...HASWELL, ...AVX512, 'avx512vbmi', 'avx512_vnni'],
  cooperlake: [...HASWELL, ...AVX512, 'avx512_vnni', 'avx512_bf16'],
  zen4: [...HASWELL, ...AVX512, 'avx512vbmi', 'avx512_vnni', 'avx512_bf16'],
  alderlake: [...HASWELL, 'avx_vnni'],
  sapphirerapids: [...HASWELL, ...AVX512, 'avx512vbmi', 'avx512_vnni', 'avx512_bf16', 'amx_tile', 'amx_int8'],
};

function cpuFlags(): Set<string> {
  const flagsLine = readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((line) => line.startsWith('flags'));
  return new Set((flagsLine ?? '').split(':')[1]?.trim().split(/\s+/) ?? []);
}

function expectedBestVariant(flags: Set<string>, shipped: string[]): string {
  const score = (needs: string[]): number =>
    1 + [...new Set(needs.map((flag) => (AVX512.includes(flag) ? 'avx512' : flag)))].reduce((sum, feature) => sum + (FEATURE_WEIGHT[feature] ?? 0), 0);
  const supported = shipped.filter((variant) => (VARIANT_NEEDS[variant] ?? ['unknown']).every((flag) => flags.has(flag)));
  return supported.reduce((best, variant) => (score(VARIANT_NEEDS[variant] ?? []) > score(VARIANT_NEEDS[best] ?? []) ? variant : best));
}

describe('prebuilt package', { skip: SKIP_REASON }, () => {
  let workDir = '';
  let installDir = '';
  let binDir = '';
  let tarball = '';
  let tinyModel = '';
  let tinyQ8Model = '';
  let shippedVariants: string[] = [];
  let installed = false;
  // The installed package's result on the host CPU, which the QEMU runs are compared with.
  let hostResult: ProbeResult | undefined;

  // No compiler, cmake or git: only node and npm, plus the shell npm runs scripts with.
  function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
    return {
      PATH: binDir,
      HOME: process.env.HOME,
      TMPDIR: os.tmpdir(),
      LANG: 'C.UTF-8',
      npm_config_cache: process.env.npm_config_cache ?? path.join(os.homedir(), '.npm'),
      ...extra,
    };
  }

  function probe(model: string, env: NodeJS.ProcessEnv = {}, wrapper: string[] = []): ProbeResult {
    const [command, ...prefix] = wrapper.length > 0 ? wrapper : [process.execPath];
    const args = [...prefix, ...(wrapper.length > 0 ? [process.execPath] : []), 'probe.mjs', model, TEXT];
    const result = run(command ?? process.execPath, args, { cwd: installDir, env: cleanEnv(env) });
    assert.equal(result.status, 0, describeFailure(result));
    const lastLine = result.stdout.trim().split('\n').at(-1) ?? '';
    return JSON.parse(lastLine) as ProbeResult;
  }

  before(async () => {
    tinyModel = await ensureTestModel('tiny');
    tinyQ8Model = await ensureTestModel('tiny-q8');

    if (!prebuildIsCurrent()) {
      console.log('# prebuilds/ is missing or older than native/: running `npm run prebuild` (about 15 minutes on two cores)');
      const built = spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'prebuild.mjs')], { cwd: ROOT, stdio: 'inherit' });
      assert.equal(built.status, 0, 'npm run prebuild failed; its output is above');
    }
    const info = JSON.parse(readFileSync(path.join(PREBUILD_DIR, 'build-info.json'), 'utf8')) as { cpuVariants: string[] };
    shippedVariants = info.cpuVariants;

    workDir = mkdtempSync(path.join(os.tmpdir(), 'xguard prebuild ü模型 '));
    installDir = path.join(workDir, 'consumer app');
    binDir = path.join(workDir, 'bin');
    mkdirSync(installDir);
    mkdirSync(binDir);
    symlinkSync(process.execPath, path.join(binDir, 'node'));
    symlinkSync(commandPath('npm'), path.join(binDir, 'npm'));
    symlinkSync(commandPath('sh'), path.join(binDir, 'sh'));
  });

  after(() => {
    if (workDir !== '') {
      rmSync(workDir, { recursive: true, force: true });
    }
  });

  test('instruction classifier encodings', () => {
    const needs = (bytes: number[], mnemonic: string, operands: string): IsaExtension[] =>
      [...extensionsOf({ bytes, mnemonic, operands })].sort();
    assert.deepEqual(needs([0x0f, 0x58, 0xc1], 'addps', '%xmm1,%xmm0'), []);
    assert.deepEqual(needs([0x66, 0x0f, 0x38, 0x00, 0xc1], 'pshufb', '%xmm1,%xmm0'), ['ssse3']);
    assert.deepEqual(needs([0x66, 0x0f, 0x38, 0x40, 0xc1], 'pmulld', '%xmm1,%xmm0'), ['sse4.1']);
    assert.deepEqual(needs([0xc5, 0xf8, 0x77], 'vzeroupper', ''), ['avx']);
    assert.deepEqual(needs([0xc5, 0xed, 0xfe, 0xd9], 'vpaddd', '%ymm1,%ymm2,%ymm3'), ['avx', 'avx2']);
    assert.deepEqual(needs([0xc4, 0xe2, 0xf1, 0xa8, 0xc2], 'vfmadd213pd', '%xmm2,%xmm1,%xmm0'), ['avx', 'fma']);
    assert.deepEqual(needs([0x62, 0xf1, 0x7c, 0x48, 0x58, 0xc1], 'vaddps', '%zmm1,%zmm0,%zmm0'), ['avx512']);
    assert.deepEqual(needs([0x62, 0xf2, 0x75, 0x48, 0x50, 0xc2], 'vpdpbusd', '%zmm2,%zmm1,%zmm0'), ['avx512', 'avx512-vnni']);
    assert.deepEqual(needs([0xc4, 0xe2, 0x75, 0x50, 0xc2], 'vpdpbusd', '%ymm2,%ymm1,%ymm0'), ['avx', 'avx-vnni', 'avx2']);
    assert.deepEqual(needs([0xc4, 0xe2, 0x78, 0x49, 0x00], 'ldtilecfg', '(%rax)'), ['amx']);
    assert.deepEqual(needs([0xc4, 0xe2, 0xf3, 0xf7, 0xc0], 'shlx', '%rcx,%rax,%rax'), ['bmi2']);
    assert.deepEqual(needs([0xf3, 0x48, 0x0f, 0xb8, 0xc0], 'popcnt', '%rax,%rax'), ['popcnt']);
    assert.deepEqual(needs([0xf3, 0x48, 0x0f, 0xbd, 0xc0], 'lzcnt', '%rax,%rax'), ['lzcnt']);
    assert.deepEqual(needs([0xf3, 0x48, 0x0f, 0xbc, 0xc8], 'tzcnt', '%rax,%rcx'), []);
    assert.deepEqual(needs([0xc4, 0xe2, 0xf0, 0xf3, 0xc8], 'blsr', '%rax,%rcx'), ['bmi1']);
  });

  test('prebuild instruction levels', () => {
    const audits = auditFolder(PREBUILD_DIR);
    const byVariant = new Map(audits.map((audit) => [audit.variant === 'loader' ? path.basename(audit.file) : audit.variant, audit]));
    const lines = audits.map((audit) => `${path.basename(audit.file)}: ${audit.used.map((use) => use.extension).join(' ') || 'baseline'}`);
    console.log(`# ${lines.join('\n# ')}`);

    for (const audit of audits) {
      assert.ok(audit.instructions > 1000, `${audit.file} disassembled to only ${audit.instructions} instructions`);
      assert.deepEqual(
        audit.violations.map((violation) => `${violation.extension} (${violation.count}, e.g. ${violation.example})`),
        [],
        `${path.basename(audit.file)} uses instructions beyond ${audit.variant}`,
      );
    }

    // The loader: the addon and llama.cpp's shared libraries, all at the x86-64 baseline.
    for (const name of [prebuildAddonName(), 'libllama.so', 'libggml.so', 'libggml-base.so', 'libgomp.so.1']) {
      assert.deepEqual(byVariant.get(name)?.used.map((use) => use.extension), [], `${name} must use no extension`);
    }
    const uses = (variant: string): IsaExtension[] => byVariant.get(variant)?.used.map((use) => use.extension) ?? [];
    assert.deepEqual(uses('x64'), [], 'the baseline variant uses no extension');
    assert.ok(!uses('sse42').some((extension) => extension.startsWith('avx')), 'the SSE4.2 variant has no AVX');
    // The audit detects what each level adds, so a clean result above is not a blind one.
    assert.ok(uses('sse42').includes('ssse3') || uses('sse42').includes('sse4.1'), 'the SSE4.2 variant uses SSSE3 or SSE4.1');
    assert.ok(uses('sandybridge').includes('avx'), 'sandybridge uses AVX');
    assert.ok(!uses('sandybridge').includes('avx2'), 'sandybridge uses no AVX2');
    assert.ok(uses('haswell').includes('avx2'), 'haswell uses AVX2');
    assert.ok(uses('haswell').includes('fma'), 'haswell uses FMA');
    assert.ok(uses('skylakex').includes('avx512'), 'skylakex: AVX-512');
    assert.ok(uses('icelake').includes('avx512-vnni'), 'icelake: AVX-512 VNNI');
    assert.ok(uses('alderlake').includes('avx-vnni'), 'alderlake uses AVX-VNNI');
    assert.ok(!uses('alderlake').includes('avx512'), 'alderlake uses no AVX-512');
    assert.ok(uses('sapphirerapids').includes('amx'), 'sapphirerapids: AMX tile instructions');
  });

  test('npm pack contents', () => {
    const packed = run('npm', ['pack', '--json', '--pack-destination', workDir], { cwd: ROOT });
    assert.equal(packed.status, 0, describeFailure(packed));
    const [report] = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as {
      filename: string;
      size: number;
      unpackedSize: number;
      files: { path: string }[];
    }[];
    assert.ok(report !== undefined);
    tarball = path.join(workDir, report.filename);
    const files = report.files.map((file) => file.path);

    const prebuildPrefix = `prebuilds/${prebuildFolderName()}/`;
    assert.ok(files.includes(`${prebuildPrefix}${prebuildAddonName()}`), 'the addon itself');
    assert.ok(files.includes(`${prebuildPrefix}libgomp.so.1`), 'the OpenMP runtime the CPU modules use');
    for (const variant of ['x64', 'sse42', 'haswell', 'skylakex', 'sapphirerapids']) {
      assert.ok(files.includes(`${prebuildPrefix}libggml-cpu-${variant}.so`), `the ${variant} CPU variant`);
    }
    assert.ok(files.includes('dist/index.js'), 'the compiled library');
    assert.ok(files.includes('dist/cli/main.js'), 'the compiled CLI');
    assert.ok(files.includes('scripts/install.mjs'), 'the install step');
    assert.ok(files.includes('native/backends.cc'), 'the native sources for a source build');
    const unwanted = files.filter((file) => /^(vendor|build|build-prebuild|test|bench|\.cache|node_modules)\//.test(file) || /\.gguf$/.test(file));
    assert.deepEqual(unwanted, []);
    console.log(`# tarball ${report.filename}: ${(report.size / 1048576).toFixed(1)} MiB packed, ${(report.unpackedSize / 1048576).toFixed(1)} MiB unpacked, ${files.length} files`);
  });

  test('tarball install without compiler', () => {
    assert.ok(tarball !== '', 'npm pack ran');
    for (const tool of ['cc', 'c++', 'g++', 'cmake', 'git']) {
      assert.notEqual(run('sh', ['-c', `command -v ${tool}`], { env: cleanEnv() }).status, 0, `${tool} must not be on the install PATH`);
    }
    writeFileSync(path.join(installDir, 'package.json'), `${JSON.stringify({ name: 'consumer-app', private: true, type: 'module' })}\n`);
    writeFileSync(path.join(installDir, 'probe.mjs'), PROBE_SCRIPT);

    const started = Date.now();
    const result = run('npm', ['install', tarball, '--no-audit', '--no-fund', '--foreground-scripts'], { cwd: installDir, env: cleanEnv() });
    const seconds = (Date.now() - started) / 1000;
    assert.equal(result.status, 0, describeFailure(result));
    assert.match(result.stdout, new RegExp(`using the native addon at prebuilds/${prebuildFolderName()}/${prebuildAddonName().replace(/\./g, '\\.')}`));

    const packageDir = path.join(installDir, 'node_modules', 'xguard-node');
    assert.ok(!existsSync(path.join(packageDir, 'build')), 'no source build happened');
    assert.ok(!existsSync(path.join(packageDir, 'vendor')), 'llama.cpp was not fetched');
    installed = true;
    console.log(`# npm install of the tarball took ${seconds.toFixed(1)} s`);
  });

  test('installed package picks best variant', (t) => {
    if (!installed) {
      t.skip('the install test failed');
      return;
    }
    const best = probe(tinyModel);
    hostResult = best;
    assert.equal(best.backendLoading, 'dynamic');
    assert.equal(best.cpuVariant, expectedBestVariant(cpuFlags(), shippedVariants));
    assert.ok(best.label !== null, 'a label');
    assert.ok(Object.keys(best.scores).length >= 29, 'a score for every risk label');

    // The baseline kernels agree with the best ones.
    const baseline = probe(tinyModel, { XGUARD_CPU_VARIANT: 'x64' });
    assert.equal(baseline.cpuVariant, 'x64');
    assert.equal(baseline.label, best.label);
    const gap = largestLogprobGap(best.scores, baseline.scores);
    assert.ok(gap < 0.05, `x64 and ${best.cpuVariant} differ by ${gap} in log p`);
    console.log(`# chosen variant here: ${best.cpuVariant}; largest |delta log p| against x64: ${gap.toFixed(4)}`);

    // The CPU modules find OpenMP's runtime in the package, not in the system.
    const installedPrebuild = path.join(installDir, 'node_modules', 'xguard-node', 'prebuilds', prebuildFolderName());
    const ldd = run('ldd', [path.join(installedPrebuild, `libggml-cpu-${best.cpuVariant}.so`)]);
    assert.equal(ldd.status, 0, describeFailure(ldd));
    assert.ok(ldd.stdout.includes(`libgomp.so.1 => ${path.join(installedPrebuild, 'libgomp.so.1')}`), ldd.stdout);

    const cli = run(process.execPath, [path.join(installDir, 'node_modules', '.bin', 'xguard'), 'info'], { cwd: installDir, env: cleanEnv() });
    assert.equal(cli.status, 0, describeFailure(cli));
    assert.match(cli.stdout, new RegExp(`CPU backend variant ${best.cpuVariant} \\(the best this CPU supports\\)`));
  });

  test('unknown XGUARD_CPU_VARIANT rejected', (t) => {
    if (!installed) {
      t.skip('the install test failed');
      return;
    }
    const result = run(process.execPath, ['probe.mjs', tinyModel, TEXT], { cwd: installDir, env: cleanEnv({ XGUARD_CPU_VARIANT: 'pentium4' }) });
    assert.notEqual(result.status, 0);
    assert.match(result.stderr, /XGUARD_CPU_VARIANT=pentium4 names no CPU backend/);
    assert.match(result.stderr, /available: .*haswell.*x64/);
  });

  test('AMX variant on Q8_0 batches', (t) => {
    if (!installed) {
      t.skip('the install test failed');
      return;
    }
    if (!cpuFlags().has('amx_int8')) {
      t.skip('this CPU has no AMX, so the AMX kernels cannot run here');
      return;
    }
    const amx = probe(tinyQ8Model, { XGUARD_CPU_VARIANT: 'sapphirerapids' });
    assert.equal(amx.cpuVariant, 'sapphirerapids');
    assert.ok(amx.amxBuffer, 'llama.cpp put the Q8_0 weights in its AMX buffer');
    const avx512 = probe(tinyQ8Model, { XGUARD_CPU_VARIANT: 'zen4' });
    assert.ok(!avx512.amxBuffer);
    const gap = largestLogprobGap(amx.scores, avx512.scores);
    assert.equal(amx.label, avx512.label);
    assert.ok(gap < 0.05, `AMX and AVX-512 kernels differ by ${gap} in log p`);
    console.log(`# AMX against AVX-512 on tiny-q8: largest |delta log p| ${gap.toFixed(4)}`);
  });

  test('forced source build without tools', (t) => {
    if (!installed) {
      t.skip('the install test failed');
      return;
    }
    const result = run('npm', ['rebuild', 'xguard-node', '--foreground-scripts'], {
      cwd: installDir,
      env: cleanEnv({ npm_config_build_from_source: 'true' }),
    });
    assert.notEqual(result.status, 0);
    const output = `${result.stdout}\n${result.stderr}`;
    assert.match(output, /building from source needs cmake \(3\.18 or newer\), a C\+\+17 compiler \(g\+\+ or clang\+\+\), git, which are not on PATH/);
    assert.match(output, /apt-get install cmake g\+\+ git/);
    // The failed rebuild leaves the prebuild in place.
    assert.equal(probe(tinyModel).backendLoading, 'dynamic');
  });

  const qemu = commandPath('qemu-x86_64');
  const QEMU_CPUS: [cpu: string, variant: string][] = [
    ['qemu64', 'x64'],
    ['Nehalem', 'sse42'],
    ['Haswell-noTSX', 'haswell'],
  ];
  for (const [cpu, variant] of QEMU_CPUS) {
    test(`qemu -cpu ${cpu} picks ${variant}`, { skip: qemu === '' ? 'qemu-x86_64 is not installed (apt-get install qemu-user); .ci/run installs it' : false }, (t) => {
      if (!installed) {
        t.skip('the install test failed');
        return;
      }
      const emulated = probe(tinyModel, {}, [qemu, '-cpu', cpu]);
      assert.equal(emulated.cpuVariant, variant);
      const native = hostResult ?? probe(tinyModel);
      assert.equal(emulated.label, native.label);
      const gap = largestLogprobGap(emulated.scores, native.scores);
      assert.ok(gap < 0.05, `${variant} under QEMU and ${native.cpuVariant} differ by ${gap} in log p`);
    });
  }

  test('prebuild files stripped', () => {
    const addonBytes = statSync(path.join(PREBUILD_DIR, prebuildAddonName())).size;
    assert.ok(addonBytes < 8 << 20, `the addon is ${addonBytes} bytes`);
    const nm = run('nm', [path.join(PREBUILD_DIR, 'libggml-cpu-x64.so')]);
    assert.match(`${nm.stdout}${nm.stderr}`, /no symbols/, 'the CPU variants carry no debug symbol table');
  });
});
