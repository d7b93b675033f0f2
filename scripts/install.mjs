#!/usr/bin/env node
// The package's install step. A native addon that already loads (a prebuild, or an earlier
// local build) is used as it is. Otherwise the addon is built from source: llama.cpp is
// fetched (scripts/fetch-llama.mjs) and cmake-js builds build/Release/xguard.node.
//
// `--build-from-source` or `npm_config_build_from_source=true` forces a source build.

import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { ensureLlamaSource } from './fetch-llama.mjs';
import { missingBuildTools, runCmakeJs } from './native-build.mjs';

const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

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
// install down with it. Returns the path that loaded, or why none did.
function findLoadableAddon() {
  const probe = [
    'try {',
    `  const p = require('node-gyp-build').resolve(${JSON.stringify(projectRoot)});`,
    '  require(p);',
    '  console.log(p);',
    '} catch (error) {',
    "  process.stderr.write(`XGUARD_PROBE_FAILED ${String(error?.message ?? error).split('\\n')[0]}\\n`);",
    '  process.exit(1);',
    '}',
  ].join('\n');
  const result = spawnSync(process.execPath, ['-e', probe], { cwd: projectRoot, encoding: 'utf8' });
  if (result.status === 0) {
    return { path: result.stdout.trim() };
  }
  if (result.signal !== null) {
    return { path: null, reason: `the loader was killed by ${result.signal}` };
  }
  const reported = /XGUARD_PROBE_FAILED (.*)/.exec(result.stderr ?? '')?.[1];
  return { path: null, reason: reported ?? `the loader exited with status ${result.status}` };
}

function checkBuildTools() {
  const missing = missingBuildTools();
  if (missing.length > 0) {
    fail(
      `no prebuilt addon loads on this platform (${process.platform}-${process.arch}), and building from source needs ` +
        `${missing.join(', ')}, which ${missing.length === 1 ? 'is' : 'are'} not on PATH. ` +
        'Install them (Debian/Ubuntu: apt-get install cmake g++ git; macOS: xcode-select --install and brew install cmake) and run npm install again.',
    );
  }
}

async function buildFromSource() {
  checkBuildTools();
  const llamaDir = await ensureLlamaSource(log);

  log('building the native addon from source with cmake-js; this takes a few minutes');
  const started = Date.now();
  let status;
  try {
    status = runCmakeJs({ projectRoot, llamaDir, outDir: path.join(projectRoot, 'build'), variants: false });
  } catch (error) {
    fail(error.message);
  }
  if (status !== 0) {
    fail('the native build failed; the compiler output above names the cause. Fix it and run `npm run build:native`.');
  }
  log(`native build finished in ${((Date.now() - started) / 1000).toFixed(0)} s`);

  const built = findLoadableAddon();
  if (built.path === null) {
    fail(`the addon was built but does not load: ${built.reason}`);
  }
  log(`addon ready at ${path.relative(projectRoot, built.path)}`);
}

if (sourceBuildForced()) {
  log('a source build was asked for (--build-from-source or npm_config_build_from_source)');
} else {
  const found = findLoadableAddon();
  if (found.path !== null) {
    log(`using the native addon at ${path.relative(projectRoot, found.path)}`);
    process.exit(0);
  }
  log(`no prebuilt or earlier addon loads here (${found.reason}); building from source`);
}
await buildFromSource();
