// Builds llama-server from the vendored llama.cpp (or LLAMA_CPP_DIR) into bench/.build, with the
// CPU flags the addon uses: native instructions, with gcc's AMX tile configuration fixed by
// native/amx-tile-config.h (see CMakeLists.txt for why), and no web UI download. Prints the binary's path. Used by bench/run.ts; not part of the package.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { ensureLlamaSource } from '../scripts/fetch-llama.mjs';

const benchDir = path.dirname(fileURLToPath(import.meta.url));
const buildDir = path.join(benchDir, '.build', 'llama.cpp');
export const LLAMA_SERVER = path.join(buildDir, 'bin', 'llama-server');

function run(command: string, args: string[]): void {
  const result = spawnSync(command, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  if (result.status !== 0) {
    throw new Error(`\`${command} ${args.join(' ')}\` failed with exit code ${result.status}`);
  }
}

export async function ensureLlamaServer(log: (line: string) => void = (line) => console.error(line)): Promise<string> {
  if (existsSync(LLAMA_SERVER)) {
    return LLAMA_SERVER;
  }
  const source = await ensureLlamaSource(log);
  // The header is a no-op outside gcc builds with AMX, so it goes into every file.
  const amxFix = process.arch === 'x64' ? `-include ${path.join(benchDir, '..', 'native', 'amx-tile-config.h')}` : '';
  log(`bench: building llama-server into ${buildDir} (several minutes)`);
  run('cmake', [
    '-S', source,
    '-B', buildDir,
    '-DCMAKE_BUILD_TYPE=Release',
    '-DBUILD_SHARED_LIBS=OFF',
    '-DLLAMA_BUILD_TESTS=OFF',
    '-DLLAMA_BUILD_EXAMPLES=OFF',
    '-DLLAMA_BUILD_TOOLS=ON',
    '-DLLAMA_BUILD_SERVER=ON',
    '-DLLAMA_USE_PREBUILT_UI=OFF',
    '-DLLAMA_OPENSSL=OFF',
    '-DGGML_NATIVE=ON',
    `-DCMAKE_C_FLAGS=${amxFix}`,
    `-DCMAKE_CXX_FLAGS=${amxFix}`,
  ]);
  run('cmake', ['--build', buildDir, '--target', 'llama-server', '-j', String(os.availableParallelism())]);
  return LLAMA_SERVER;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  console.log(await ensureLlamaServer());
}
