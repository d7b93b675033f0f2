// Builds the native addon with cmake-js. Shared by the install step (a source build for this
// machine) and `npm run prebuild` (a portable build with every CPU variant).
//
// Build options come from the environment, so they reach a build that npm starts:
//   GGML_NATIVE=OFF        a source build for any CPU of this architecture, not just this one
//   XGUARD_AMX=OFF         leave llama.cpp's AMX kernels out (see CMakeLists.txt)
//   XGUARD_GPU=cuda        add a GPU backend: cuda, vulkan or metal (comma-separated for several)
//   XGUARD_CMAKE_ARGS="-DCMAKE_CUDA_ARCHITECTURES=90 ..."   more CMake definitions, as they are

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';

const require = createRequire(import.meta.url);

const GPU_BACKENDS = { cuda: 'GGML_CUDA', vulkan: 'GGML_VULKAN', metal: 'GGML_METAL' };

function hasCommand(command, args = ['--version']) {
  const result = spawnSync(command, args, { encoding: 'utf8' });
  return !result.error && result.status === 0;
}

/** Lists the tools a source build needs that are not on PATH, as install hints (empty when none is missing). */
export function missingBuildTools() {
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

  // GPU backends need their own compilers; finding that out here saves a long failed build.
  const gpus = (process.env.XGUARD_GPU ?? '').toLowerCase();
  if (gpus.includes('cuda') && !hasCommand(process.env.CUDACXX || 'nvcc')) {
    missing.push('the CUDA toolkit with cuBLAS (nvcc on PATH, or CUDACXX set)');
  }
  if (gpus.includes('vulkan') && !hasCommand('glslc')) {
    missing.push('the Vulkan SDK (glslc on PATH, and Vulkan headers with VK_EXT_layer_settings)');
  }
  return missing;
}

/** CMake definitions from the environment, as cmake-js `--CD` arguments. */
export function cmakeDefinitionsFromEnv(env = process.env) {
  const definitions = [];
  for (const option of ['GGML_NATIVE', 'XGUARD_AMX']) {
    if (env[option] !== undefined && env[option] !== '') {
      definitions.push(`--CD${option}=${env[option]}`);
    }
  }

  for (const name of (env.XGUARD_GPU ?? '').split(',').map((part) => part.trim().toLowerCase()).filter(Boolean)) {
    const option = GPU_BACKENDS[name];
    if (option === undefined) {
      throw new Error(`XGUARD_GPU=${env.XGUARD_GPU} names an unknown GPU backend "${name}"; use ${Object.keys(GPU_BACKENDS).join(', ')}.`);
    }
    definitions.push(`--CD${option}=ON`);
  }

  for (const argument of (env.XGUARD_CMAKE_ARGS ?? '').split(/\s+/).filter(Boolean)) {
    if (!argument.startsWith('-D') || !argument.includes('=')) {
      throw new Error(`XGUARD_CMAKE_ARGS contains the invalid argument "${argument}"; give CMake definitions only, each as -DNAME=VALUE.`);
    }
    definitions.push(`--CD${argument.slice(2)}`);
  }
  return definitions;
}

/**
 * Runs cmake-js and returns its exit status. `outDir` is the build folder (the addon lands in
 * `<outDir>/Release`); `variants` makes the portable build with every CPU variant.
 */
export function runCmakeJs({ projectRoot, llamaDir, outDir, variants, rebuild = false }) {
  const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
  const jobs = String(typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length);
  const args = [
    cmakeJs,
    rebuild ? 'rebuild' : 'compile',
    '--directory',
    projectRoot,
    '--out',
    outDir,
    '--config',
    'Release',
    '--parallel',
    jobs,
    `--CDLLAMA_CPP_DIR=${llamaDir}`,
    `--CDXGUARD_CPU_VARIANTS=${variants ? 'ON' : 'OFF'}`,
    ...cmakeDefinitionsFromEnv(),
  ];
  const result = spawnSync(process.execPath, args, { cwd: projectRoot, stdio: 'inherit' });
  return result.status ?? 1;
}

/** Hashes everything that shapes the native build, to tell a stale prebuild from a current one. */
export function nativeSourceHash(projectRoot, llamaCommit) {
  const hash = createHash('sha256');
  hash.update(`llama.cpp ${llamaCommit}\n`);
  const files = [
    'CMakeLists.txt',
    'scripts/native-build.mjs',
    ...readdirSync(path.join(projectRoot, 'native'))
      .filter((name) => /\.(cc|h)$/.test(name))
      .sort()
      .map((name) => `native/${name}`),
  ];
  for (const file of files) {
    hash.update(`${file}\n`);
    hash.update(readFileSync(path.join(projectRoot, file)));
  }
  return hash.digest('hex');
}

/** Returns the prebuild folder name that node-gyp-build looks for on this machine: <platform>-<arch>. */
export function prebuildFolderName() {
  return `${process.platform}-${process.arch}`;
}

/** Returns the addon's file name in that folder, tagged the way node-gyp-build matches it. */
export function prebuildAddonName() {
  if (process.platform !== 'linux') {
    return 'xguard.napi.node';
  }
  // glibc and musl binaries do not load on each other, so Linux prebuilds carry their libc.
  const glibc = process.report?.getReport()?.header?.glibcVersionRuntime;
  return `xguard.napi.${glibc ? 'glibc' : 'musl'}.node`;
}
