#!/usr/bin/env node
// The package's install step. A native addon that already loads (a prebuild, or an earlier
// local build) is used as it is. Otherwise the addon is built from source: llama.cpp is
// fetched (scripts/fetch-llama.mjs) and cmake-js builds build/Release/xguard.node.
//
// `--build-from-source` or `npm_config_build_from_source=true` forces a source build.

import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { ensureLlamaSource } from './fetch-llama.mjs';

const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);

function log(line) {
  console.log(`xguard: ${line}`);
}

function fail(message) {
  console.error(`xguard: ${message}`);
  process.exit(1);
}

function sourceBuildForced() {
  const flag = process.env.npm_config_build_from_source;
  return process.argv.includes('--build-from-source') || flag === 'true' || flag === 'xguard-node';
}

// Loads the addon in a child process, so a binary that crashes on this CPU cannot take the
// install down with it. Returns the path that loaded, or null.
function findLoadableAddon() {
  const probe = `const b = require('node-gyp-build'); const p = b.resolve(${JSON.stringify(projectRoot)}); require(p); console.log(p);`;
  const result = spawnSync(process.execPath, ['-e', probe], { cwd: projectRoot, encoding: 'utf8' });
  return result.status === 0 ? result.stdout.trim() : null;
}

function hasCommand(command, args = ['--version']) {
  const result = spawnSync(command, args, { encoding: 'utf8' });
  return !result.error && result.status === 0;
}

function checkBuildTools() {
  const missing = [];
  if (!hasCommand('cmake')) {
    missing.push('cmake (3.18 or newer)');
  }
  if (process.platform !== 'win32' && !['c++', 'g++', 'clang++'].some((compiler) => hasCommand(compiler))) {
    missing.push('a C++17 compiler (g++ or clang++)');
  }
  if (!hasCommand('git')) {
    missing.push('git');
  }
  if (missing.length > 0) {
    fail(
      `no prebuilt addon matches this platform (${process.platform}-${process.arch}), and building from source needs ` +
        `${missing.join(', ')}, which ${missing.length === 1 ? 'is' : 'are'} not on PATH. ` +
        'Install them (Debian/Ubuntu: apt-get install cmake g++ git; macOS: xcode-select --install and brew install cmake) and run npm install again.',
    );
  }
}

async function buildFromSource() {
  checkBuildTools();
  const llamaDir = await ensureLlamaSource(log);

  const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
  const parallel = String(typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length);
  const args = [cmakeJs, 'compile', '--directory', projectRoot, '--config', 'Release', '--parallel', parallel, `--CDLLAMA_CPP_DIR=${llamaDir}`];
  for (const option of ['GGML_NATIVE', 'XGUARD_ALLOW_AMX']) {
    if (process.env[option] !== undefined) {
      args.push(`--CD${option}=${process.env[option]}`);
    }
  }

  log(`building the native addon from source with cmake-js (${parallel} jobs); this takes a few minutes`);
  const started = Date.now();
  const result = spawnSync(process.execPath, args, { cwd: projectRoot, stdio: 'inherit' });
  if (result.status !== 0) {
    fail('the native build failed; the compiler output above names the cause. Fix it and run `npm run build:native`.');
  }
  log(`native build finished in ${((Date.now() - started) / 1000).toFixed(0)} s`);

  const loaded = findLoadableAddon();
  if (loaded === null) {
    fail('the addon was built but does not load; run `node -e "require(\'node-gyp-build\')(process.cwd())"` to see why.');
  }
  log(`addon ready at ${path.relative(projectRoot, loaded)}`);
}

if (!sourceBuildForced()) {
  const loaded = findLoadableAddon();
  if (loaded !== null) {
    log(`using the native addon at ${path.relative(projectRoot, loaded)}`);
    process.exit(0);
  }
}
await buildFromSource();
