#!/usr/bin/env node
// `npm run prebuild`: the portable addon for this platform, in prebuilds/<platform>-<arch>/.
//
// The folder contains xguard.napi[.glibc|.musl].node (one N-API binary for every Node version
// from 18 and for Electron), llama.cpp's shared libraries, one CPU backend module per
// instruction-set level, libgomp on Linux, any GPU backend requested with XGUARD_GPU, and
// build-info.json. node-gyp-build loads the .node file, and native/backends.cc then picks the
// CPU module.
//
// prebuildify follows the same layout, but it builds into build/Release, which would overwrite
// a developer's native build, and it has no cmake-js backend. So this script builds in
// build-prebuild/ and copies the results itself.

import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { ensureLlamaSource, LLAMA_SOURCE } from './fetch-llama.mjs';
import {
  cmakeDefinitionsFromEnv,
  missingBuildTools,
  nativeSourceHash,
  prebuildAddonName,
  prebuildFolderName,
  runCmakeJs,
} from './native-build.mjs';

const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const buildDir = path.join(projectRoot, 'build-prebuild');
const releaseDir = path.join(buildDir, 'Release');
const targetDir = path.join(projectRoot, 'prebuilds', prebuildFolderName());

function log(line) {
  console.log(`prebuild: ${line}`);
}

function fail(message) {
  console.error(`prebuild: ${message}`);
  process.exit(1);
}

// Symbols are only for debugging; without them the package is several times smaller.
function strip(file) {
  if (process.platform === 'win32') {
    return;
  }
  const args = process.platform === 'darwin' ? ['-Sx', file] : ['--strip-unneeded', file];
  const result = spawnSync('strip', args, { encoding: 'utf8' });
  if (result.error || result.status !== 0) {
    log(`left ${path.basename(file)} unstripped (strip: ${result.error?.message ?? result.stderr.trim()})`);
  }
}

const missing = missingBuildTools();
if (missing.length > 0) {
  fail(`building prebuilds needs ${missing.join(', ')} on PATH.`);
}

const llamaDir = await ensureLlamaSource((line) => log(line));

// Taken before the build, so that sources edited during it make the prebuild look stale.
const sourceHash = nativeSourceHash(projectRoot, LLAMA_SOURCE.commit);
const started = Date.now();
log(`building every CPU variant into ${path.relative(projectRoot, buildDir)}/ (on 2 cores this takes about 15 minutes)`);
const status = runCmakeJs({ projectRoot, llamaDir, outDir: buildDir, variants: true });
if (status !== 0) {
  fail('the build failed; the compiler output above names the cause.');
}
const buildSeconds = Math.round((Date.now() - started) / 1000);

rmSync(targetDir, { recursive: true, force: true });
mkdirSync(targetDir, { recursive: true });

const copied = [];
for (const name of readdirSync(releaseDir).sort()) {
  const source = path.join(releaseDir, name);
  if (!statSync(source).isFile()) {
    continue;
  }
  let target;
  if (name === 'xguard.node') {
    target = prebuildAddonName();
  } else if (/\.(so|dylib|dll)$/.test(name)) {
    target = name;
  } else {
    continue;
  }
  copyFileSync(source, path.join(targetDir, target));
  strip(path.join(targetDir, target));
  copied.push(target);
}
if (!copied.includes(prebuildAddonName())) {
  fail(`the build left no xguard.node in ${releaseDir}.`);
}

// The Linux CPU modules use OpenMP. libgomp is not installed everywhere (slim container
// images lack it), so the prebuild carries the build machine's copy, which the modules find
// through their $ORIGIN run path. GCC's runtime library exception allows shipping it.
if (process.platform === 'linux') {
  const ldd = spawnSync('ldd', [path.join(targetDir, 'libggml-cpu-x64.so')], { encoding: 'utf8' });
  const libgomp = /libgomp\.so\.1 => (\S+)/.exec(ldd.stdout ?? '')?.[1];
  if (libgomp !== undefined) {
    copyFileSync(realpathSync(libgomp), path.join(targetDir, 'libgomp.so.1'));
    copied.push('libgomp.so.1');
  }
}

const cpuVariants = copied
  .map((name) => /^(?:lib)?ggml-cpu-(.+)\.(?:so|dll)$/.exec(name)?.[1])
  .filter((variant) => variant !== undefined);
const info = {
  platform: process.platform,
  arch: process.arch,
  addon: prebuildAddonName(),
  llamaCpp: { tag: LLAMA_SOURCE.tag, commit: LLAMA_SOURCE.commit },
  sourceHash,
  cmakeDefinitions: cmakeDefinitionsFromEnv(),
  cpuVariants,
  files: copied,
  buildSeconds,
  builtAt: new Date().toISOString(),
};
writeFileSync(path.join(targetDir, 'build-info.json'), `${JSON.stringify(info, null, 2)}\n`);

const bytes = copied.reduce((sum, name) => sum + statSync(path.join(targetDir, name)).size, 0);
log(`wrote ${copied.length} files (${(bytes / 1048576).toFixed(1)} MiB) to ${path.relative(projectRoot, targetDir)}/ in ${buildSeconds} s`);
log(`CPU variants: ${cpuVariants.join(', ')}`);
