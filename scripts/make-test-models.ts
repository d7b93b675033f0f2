// Generates the GGUF test models into the cache (see lib/test-model/cache.ts) unless they are
// already there, and prints their paths.
//
// Usage: node --import tsx scripts/make-test-models.ts [tiny|0.6b|all]   (default: tiny)
// The cache folder is $XGUARD_CACHE_DIR, or .cache/models in the package root.

import { existsSync } from 'node:fs';
import path from 'node:path';

import { ensureTestModel, testModelCacheDir, testModelFileName } from '../lib/test-model/cache.js';
import { TEST_MODEL_SHAPE_NAMES, type TestModelShapeName } from '../lib/test-model/qwen3-model.js';

const USAGE = `usage: make-test-models [${TEST_MODEL_SHAPE_NAMES.join('|')}|all]  (default: tiny)
Generates the GGUF test models into ${testModelCacheDir()} unless they exist.
Set XGUARD_CACHE_DIR to use another folder.`;

function parseShapes(args: readonly string[]): TestModelShapeName[] | undefined {
  if (args.length > 1) {
    return undefined;
  }
  const choice = args[0] ?? 'tiny';
  if (choice === 'all') {
    return [...TEST_MODEL_SHAPE_NAMES];
  }
  const shape = TEST_MODEL_SHAPE_NAMES.find((name) => name === choice);
  return shape === undefined ? undefined : [shape];
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  if (args.includes('--help') || args.includes('-h')) {
    console.log(USAGE);
    return 0;
  }
  const shapes = parseShapes(args);
  if (shapes === undefined) {
    console.error(`invalid arguments: ${args.join(' ')}\n${USAGE}`);
    return 2;
  }

  for (const shape of shapes) {
    const cached = existsSync(path.join(testModelCacheDir(), testModelFileName(shape)));
    const start = performance.now();
    const filePath = await ensureTestModel(shape);
    const seconds = ((performance.now() - start) / 1000).toFixed(1);
    console.log(cached ? `${shape}: ${filePath} (cached)` : `${shape}: ${filePath} (generated in ${seconds} s)`);
  }
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error('make-test-models failed:', error);
    process.exitCode = 1;
  },
);
