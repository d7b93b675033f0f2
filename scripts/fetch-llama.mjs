#!/usr/bin/env node
// Obtains the llama.cpp source that the addon is built from and places it in vendor/llama.cpp.
//
// The source comes from the npm registry: node-llama-cpp@3.21.1 ships llama.cpp as a git bundle
// (llama/gitRelease.bundle). The tarball is checked against a pinned sha512 before anything in
// it is used, and the clone is checked against the pinned commit. Set LLAMA_CPP_DIR to build
// against an existing checkout of the same llama.cpp release instead; nothing is fetched then.

import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { createReadStream, existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const LLAMA_SOURCE = Object.freeze({
  packageSpec: 'node-llama-cpp@3.21.1',
  tarballIntegrity:
    'sha512-E3N0Ev2Va0wzydvXYFwM9Hvyo07PoWjt8T/9GMc43Cvt8YkV/NU/tYUgEMC1grTPv2o9PRjQi0G3Wb5P/awiMg==',
  bundlePath: 'package/llama/gitRelease.bundle',
  infoPath: 'package/llama/llama.cpp.info.json',
  tag: 'v0.4.0',
  commit: '80fb11ac73e66d89eae2c6a91d8a77428fa733ed',
});

const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const VENDOR_DIR = path.join(projectRoot, 'vendor', 'llama.cpp');

class FetchError extends Error {}

function run(command, args, options = {}) {
  const result = spawnSync(command, args, { encoding: 'utf8', ...options });
  if (result.error?.code === 'ENOENT') {
    throw new FetchError(`${command} was not found on PATH. Install ${command} and run the install again.`);
  }
  if (result.status !== 0) {
    const output = `${result.stderr ?? ''}${result.stdout ?? ''}`.trim();
    throw new FetchError(`\`${command} ${args.join(' ')}\` failed with exit code ${result.status}:\n${output}`);
  }
  return result.stdout;
}

function gitHead(dir) {
  const result = spawnSync('git', ['-C', dir, 'rev-parse', 'HEAD'], { encoding: 'utf8' });
  return result.status === 0 ? result.stdout.trim() : null;
}

async function sha512Integrity(file) {
  const hash = createHash('sha512');
  for await (const chunk of createReadStream(file)) {
    hash.update(chunk);
  }
  return `sha512-${hash.digest('base64')}`;
}

/** Checks that a folder looks like a llama.cpp source tree the build can use. */
function assertLlamaTree(dir, origin) {
  for (const file of ['CMakeLists.txt', 'include/llama.h', 'ggml/include/ggml.h']) {
    if (!existsSync(path.join(dir, file))) {
      throw new FetchError(
        `${origin} ${JSON.stringify(dir)} is not a llama.cpp source tree: ${file} is missing. ` +
          `Point it at a checkout of llama.cpp ${LLAMA_SOURCE.tag} (commit ${LLAMA_SOURCE.commit}).`,
      );
    }
  }
}

/**
 * Returns the llama.cpp source folder, fetching it into vendor/llama.cpp when needed.
 * `log` receives one line per step.
 */
export async function ensureLlamaSource(log = (line) => console.log(`xguard: ${line}`)) {
  const override = process.env.LLAMA_CPP_DIR;
  if (override) {
    const dir = path.resolve(override);
    assertLlamaTree(dir, 'LLAMA_CPP_DIR');
    const head = gitHead(dir);
    if (head !== null && head !== LLAMA_SOURCE.commit) {
      log(`warning: LLAMA_CPP_DIR is at commit ${head}; the addon is written for ${LLAMA_SOURCE.commit} (${LLAMA_SOURCE.tag}).`);
    }
    log(`using llama.cpp from LLAMA_CPP_DIR=${dir}`);
    return dir;
  }

  if (existsSync(VENDOR_DIR)) {
    const head = gitHead(VENDOR_DIR);
    if (head === LLAMA_SOURCE.commit) {
      return VENDOR_DIR;
    }
    log(`vendor/llama.cpp is at ${head ?? 'an unknown commit'}, expected ${LLAMA_SOURCE.commit}; fetching it again.`);
    rmSync(VENDOR_DIR, { recursive: true, force: true });
  }

  const workDir = mkdtempSync(path.join(tmpdir(), 'xguard-llama-'));
  try {
    log(`fetching ${LLAMA_SOURCE.packageSpec} from the npm registry (or the npm cache)`);
    const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
    const packOutput = run(npm, ['pack', LLAMA_SOURCE.packageSpec, '--json', '--pack-destination', workDir], {
      cwd: workDir,
      shell: process.platform === 'win32',
    });
    const packed = JSON.parse(packOutput.slice(packOutput.indexOf('[')));
    const tarball = path.join(workDir, packed[0].filename);

    const integrity = await sha512Integrity(tarball);
    if (integrity !== LLAMA_SOURCE.tarballIntegrity) {
      throw new FetchError(
        `${LLAMA_SOURCE.packageSpec} tarball failed the integrity check: expected ${LLAMA_SOURCE.tarballIntegrity}, ` +
          `got ${integrity}. Clear the npm cache entry (npm cache clean --force) and retry, or set LLAMA_CPP_DIR.`,
      );
    }

    run('tar', ['-xzf', tarball, '-C', workDir, LLAMA_SOURCE.bundlePath, LLAMA_SOURCE.infoPath]);
    const info = JSON.parse(readFileSync(path.join(workDir, LLAMA_SOURCE.infoPath), 'utf8'));
    if (info.tag !== LLAMA_SOURCE.tag) {
      throw new FetchError(`${LLAMA_SOURCE.packageSpec} carries llama.cpp ${info.tag}, expected ${LLAMA_SOURCE.tag}.`);
    }

    log(`cloning llama.cpp ${LLAMA_SOURCE.tag} into vendor/llama.cpp`);
    const cloneDir = `${VENDOR_DIR}.partial`;
    rmSync(cloneDir, { recursive: true, force: true });
    run('git', ['clone', '--quiet', '--no-checkout', path.join(workDir, LLAMA_SOURCE.bundlePath), cloneDir]);
    run('git', ['-C', cloneDir, '-c', 'advice.detachedHead=false', 'checkout', '--quiet', '--detach', LLAMA_SOURCE.commit]);
    const head = gitHead(cloneDir);
    if (head !== LLAMA_SOURCE.commit) {
      throw new FetchError(`The llama.cpp clone is at ${head}, expected ${LLAMA_SOURCE.commit}.`);
    }
    assertLlamaTree(cloneDir, 'The fetched llama.cpp');
    renameSync(cloneDir, VENDOR_DIR);
    return VENDOR_DIR;
  } finally {
    rmSync(workDir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  try {
    const dir = await ensureLlamaSource();
    console.log(`xguard: llama.cpp source ready at ${dir}`);
  } catch (error) {
    console.error(error instanceof FetchError ? `xguard: ${error.message}` : error);
    process.exit(1);
  }
}
