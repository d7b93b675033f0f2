// Classify latency of the generated test models: a cold prompt (nothing in the KV cache)
// against a request whose template prefix is already cached.
//
// Usage: npm run bench [-- --json] [-- --shape tiny|0.6b|all] [-- --runs N] [-- --threads N]
// The 0.6b model (random weights, Qwen3-0.6B shape, Q8_0) is generated on first use (~800 MB).

import os from 'node:os';
import { parseArgs } from 'node:util';

import { ensureTestModel } from '../lib/test-model/cache.js';
import type { TestModelShapeName } from '../lib/test-model/qwen3-model.js';
import { XGuard } from '../lib/xguard.js';
import { BENCH_INPUTS } from './inputs.js';

interface ShapeFigures {
  shape: TestModelShapeName;
  threads: number;
  loadMs: number;
  promptTokens: { min: number; max: number };
  coldMs: { p50: number; min: number };
  cachedMs: { p50: number; p95: number; min: number };
  cachedDecodedTokens: { p50: number };
  coldOverCached: number;
}

function percentile(values: number[], fraction: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(fraction * sorted.length) - 1));
  return sorted[index] as number;
}

async function measureShape(shape: TestModelShapeName, runs: number, threads: number): Promise<ShapeFigures> {
  const modelPath = await ensureTestModel(shape);
  const loadStarted = performance.now();
  const warmGuard = await XGuard.load(modelPath, { threads });
  const loadMs = performance.now() - loadStarted;

  // Cold: a fresh context for each of a few requests, so nothing is reused.
  const coldRuns = Math.min(3, runs);
  const cold: number[] = [];
  const tokenCounts: number[] = [];
  for (let i = 0; i < coldRuns; i++) {
    const guard = await XGuard.load(modelPath, { threads });
    const result = await guard.classify(BENCH_INPUTS[i % BENCH_INPUTS.length] as string);
    cold.push(result.usage.totalMs);
    tokenCounts.push(result.usage.promptTokens);
    await guard.close();
  }

  // Cached: one context; each request differs from the previous one only after the template prefix.
  await warmGuard.classify('warm-up request');
  const cached: number[] = [];
  const decoded: number[] = [];
  for (let i = 0; i < runs; i++) {
    const result = await warmGuard.classify(BENCH_INPUTS[i % BENCH_INPUTS.length] as string);
    cached.push(result.usage.totalMs);
    decoded.push(result.usage.decodedTokens);
    tokenCounts.push(result.usage.promptTokens);
  }
  await warmGuard.close();

  const cachedP50 = percentile(cached, 0.5);
  return {
    shape,
    threads,
    loadMs,
    promptTokens: { min: Math.min(...tokenCounts), max: Math.max(...tokenCounts) },
    coldMs: { p50: percentile(cold, 0.5), min: Math.min(...cold) },
    cachedMs: { p50: cachedP50, p95: percentile(cached, 0.95), min: Math.min(...cached) },
    cachedDecodedTokens: { p50: percentile(decoded, 0.5) },
    coldOverCached: percentile(cold, 0.5) / cachedP50,
  };
}

function printTable(figures: ShapeFigures[]): void {
  const rows = figures.map((f) => [
    f.shape,
    String(f.threads),
    `${f.promptTokens.min}-${f.promptTokens.max}`,
    f.coldMs.p50.toFixed(1),
    f.cachedMs.p50.toFixed(1),
    f.cachedMs.p95.toFixed(1),
    String(f.cachedDecodedTokens.p50),
    `${f.coldOverCached.toFixed(1)}x`,
  ]);
  const header = ['model', 'threads', 'prompt tokens', 'cold p50 ms', 'cached p50 ms', 'cached p95 ms', 'decoded (cached)', 'cold/cached'];
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)));
  const line = (cells: string[]): string => `| ${cells.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join(' | ')} |`;
  console.log(line(header));
  console.log(`|${widths.map((width) => '-'.repeat(width + 2)).join('|')}|`);
  rows.forEach((row) => console.log(line(row)));
}

const { values } = parseArgs({
  options: {
    json: { type: 'boolean' },
    shape: { type: 'string', default: 'all' },
    runs: { type: 'string', default: '20' },
    threads: { type: 'string' },
  },
});
const shapes: TestModelShapeName[] = values.shape === 'all' ? ['tiny', '0.6b'] : [values.shape as TestModelShapeName];
const runs = Number(values.runs);
const threads = values.threads === undefined ? os.availableParallelism() : Number(values.threads);
if (!Number.isInteger(runs) || runs < 1 || !Number.isInteger(threads) || threads < 1) {
  console.error('bench: --runs and --threads must be positive integers');
  process.exit(2);
}

const figures: ShapeFigures[] = [];
for (const shape of shapes) {
  figures.push(await measureShape(shape, runs, threads));
}
if (values.json) {
  console.log(JSON.stringify({ machine: { cpus: os.cpus()[0]?.model, cores: os.availableParallelism() }, figures }, null, 2));
} else {
  printTable(figures);
}
