// Measures how far label probabilities move between decode paths: the same request alone with
// a cold cache, alone after a cached prefix, and in a batch of eight with other requests.
// llama.cpp's kernels give slightly different sums for different batch shapes, so the
// distributions differ a little; this prints the largest |delta log p| over labels with p >= 1e-3.
//
// Usage: node --import tsx bench/parity.ts [tiny|0.6b] [requests]

import { ensureTestModel } from '../lib/test-model/cache.js';
import type { TestModelShapeName } from '../lib/test-model/qwen3-model.js';
import type { ClassifyResult } from '../lib/types.js';
import { XGuard } from '../lib/xguard.js';
import { labelLogprobRecord, largestLogprobGap, loadPolicy, loadWorkload } from './common.js';

const shape = (process.argv[2] ?? 'tiny') as TestModelShapeName;
const count = Number(process.argv[3] ?? 32);
const model = await ensureTestModel(shape);
const entries = loadWorkload().slice(0, count);
const optionsOf = (entry: (typeof entries)[number]): { policy?: string } =>
  entry.policy === null ? {} : { policy: loadPolicy(entry.policy) };

function largestGap(a: ClassifyResult, b: ClassifyResult): number {
  return largestLogprobGap(labelLogprobRecord(a), labelLogprobRecord(b));
}

// Cold: no prefix cache and one request at a time, so every prompt is decoded in full.
const cold = await XGuard.load(model, { threads: 2, parallel: 1, prefixCacheEntries: 0 });
const coldResults: ClassifyResult[] = [];
for (const entry of entries) {
  coldResults.push(await cold.classify(entry.input, optionsOf(entry)));
}
await cold.close();

const warm = await XGuard.load(model, { threads: 2, parallel: 8 });
const cachedResults: ClassifyResult[] = [];
for (const entry of entries) {
  cachedResults.push(await warm.classify(entry.input, optionsOf(entry)));
}
const batchedResults = await Promise.all(entries.map((entry) => warm.classify(entry.input, optionsOf(entry))));
await warm.close();

let cachedGap = 0;
let batchedGap = 0;
let sameLabel = 0;
entries.forEach((_, index) => {
  const reference = coldResults[index] as ClassifyResult;
  cachedGap = Math.max(cachedGap, largestGap(cachedResults[index] as ClassifyResult, reference));
  batchedGap = Math.max(batchedGap, largestGap(batchedResults[index] as ClassifyResult, reference));
  sameLabel += batchedResults[index]?.label === reference.label && cachedResults[index]?.label === reference.label ? 1 : 0;
});
console.log(JSON.stringify({ shape, requests: entries.length, cachedVsCold: cachedGap, batchedVsCold: batchedGap, sameTop1: sameLabel }));
