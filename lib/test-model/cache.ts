// A file cache of generated test models, so that tests and benchmarks generate each model once.

import { existsSync, readFileSync } from 'node:fs';
import { access, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import {
  DEFAULT_TEST_MODEL_SEED,
  TEST_MODEL_GENERATOR_VERSION,
  TEST_MODEL_SHAPE_NAMES,
  writeTestModel,
  type TestModelShapeName,
} from './qwen3-model.js';

const PACKAGE_NAME = 'xguard-node';

export interface EnsureTestModelOptions {
  /** Folder of the cached models. Defaults to testModelCacheDir(). */
  cacheDir?: string;
  /** Weight generator seed. Defaults to DEFAULT_TEST_MODEL_SEED. */
  seed?: number;
}

/**
 * Finds the root of this package: the nearest folder above this module whose package.json
 * is named "xguard-node". This works from lib/ (run through tsx) and from the compiled dist/.
 */
function findPackageRoot(): string {
  const start = path.dirname(fileURLToPath(import.meta.url));
  let dir = start;
  for (;;) {
    const manifest = path.join(dir, 'package.json');
    if (existsSync(manifest)) {
      const { name } = JSON.parse(readFileSync(manifest, 'utf8')) as { name?: unknown };
      if (name === PACKAGE_NAME) {
        return dir;
      }
    }
    const parent = path.dirname(dir);
    if (parent === dir) {
      throw new Error(`no package.json named ${PACKAGE_NAME} found above ${start}`);
    }
    dir = parent;
  }
}

/** Returns the default cache folder: $XGUARD_CACHE_DIR if set, else <package root>/.cache/models. */
export function testModelCacheDir(): string {
  const fromEnv = process.env['XGUARD_CACHE_DIR'];
  if (fromEnv !== undefined && fromEnv !== '') {
    return path.resolve(fromEnv);
  }
  return path.join(findPackageRoot(), '.cache', 'models');
}

/**
 * Returns the cache file name of a model, e.g. "xguard-test-tiny-v1-seed1.gguf". It contains the
 * generator version and the seed, so a changed generator or seed never reuses an old file.
 */
export function testModelFileName(shape: TestModelShapeName, seed = DEFAULT_TEST_MODEL_SEED): string {
  return `xguard-test-${shape}-v${TEST_MODEL_GENERATOR_VERSION}-seed${seed}.gguf`;
}

// Generations in progress in this process, by file path.
const generations = new Map<string, Promise<string>>();

async function generateIfMissing(shape: TestModelShapeName, filePath: string, seed: number): Promise<string> {
  try {
    await access(filePath);
    return filePath;
  } catch {
    // Missing: generate it below.
  }
  await mkdir(path.dirname(filePath), { recursive: true });
  // writeTestModel renames a complete temporary file into place, so a file under this name is
  // always complete. NOTE: two processes that miss the cache at the same time both generate
  // the model. Both write the same bytes, and the last rename wins.
  await writeTestModel(shape, filePath, { seed });
  return filePath;
}

/**
 * Returns the path of a cached test model, generating it first if the cache does not have it.
 * Calls in one process for the same file while it is being generated return the same promise.
 * Once that settles, the next call checks the file again, so a deleted or failed file is
 * generated anew.
 */
export function ensureTestModel(
  shape: TestModelShapeName,
  options: EnsureTestModelOptions = {},
): Promise<string> {
  if (!TEST_MODEL_SHAPE_NAMES.includes(shape)) {
    return Promise.reject(
      new RangeError(
        `unknown test model shape ${JSON.stringify(shape)}, expected one of ${TEST_MODEL_SHAPE_NAMES.join(', ')}`,
      ),
    );
  }
  const seed = options.seed ?? DEFAULT_TEST_MODEL_SEED;
  const cacheDir = options.cacheDir !== undefined ? path.resolve(options.cacheDir) : testModelCacheDir();
  const filePath = path.join(cacheDir, testModelFileName(shape, seed));

  const existing = generations.get(filePath);
  if (existing !== undefined) {
    return existing;
  }
  const generation = generateIfMissing(shape, filePath, seed);
  generations.set(filePath, generation);
  const forget = (): void => {
    generations.delete(filePath);
  };
  generation.then(forget, forget);
  return generation;
}
