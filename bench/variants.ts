// Speed of each CPU backend variant of the prebuild on this machine, and of the source build,
// in one run: prompt processing (cold requests, nothing cached) and cached classify latency on
// the 0.6b-shape test model (Q8_0, random weights).
//
// Usage: npm run bench:variants [-- --variants x64,haswell,zen4] [-- --runs N] [-- --threads N] [-- --json]
//
// Each variant runs in its own process with PREBUILDS_ONLY=1 (node-gyp-build then skips
// build/Release) and XGUARD_CPU_VARIANT set; "source" is the build in build/Release. Variants
// this CPU cannot run are reported as such. Needs `npm run prebuild` first.

import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { ensureTestModel } from '../lib/test-model/cache.js';
import { systemInfo } from '../lib/system-info.js';
import { XGuard } from '../lib/xguard.js';
import { percentile } from './common.js';
import { BENCH_INPUTS } from './inputs.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PREBUILD_DIR = path.join(ROOT, 'prebuilds', `${process.platform}-${process.arch}`);
const DEFAULT_VARIANTS = ['x64', 'sse42', 'haswell', 'skylakex', 'icelake', 'zen4', 'sapphirerapids', 'source'];

interface VariantFigures {
  variant: string;
  loaded: string;
  promptTokensPerSecond: number;
  coldMs: number;
  cachedP50Ms: number;
  promptTokens: number;
}

// One variant, in this process: the addon was loaded with the variant's environment.
async function measureHere(runs: number, threads: number): Promise<Omit<VariantFigures, 'variant'>> {
  const modelPath = await ensureTestModel('0.6b');

  // Cold requests: a fresh context each, so the whole prompt is processed.
  const coldMs: number[] = [];
  const rates: number[] = [];
  let promptTokens = 0;
  for (let i = 0; i < 3; i++) {
    const guard = await XGuard.load(modelPath, { threads });
    const result = await guard.classify(BENCH_INPUTS[i % BENCH_INPUTS.length] as string);
    coldMs.push(result.usage.totalMs);
    rates.push(result.usage.promptTokens / (result.usage.promptMs / 1000));
    promptTokens = result.usage.promptTokens;
    await guard.close();
  }

  // Cached requests: one context, each request shares the template prefix with the last.
  const guard = await XGuard.load(modelPath, { threads });
  await guard.classify('warm-up request');
  const cachedMs: number[] = [];
  for (let i = 0; i < runs; i++) {
    const result = await guard.classify(BENCH_INPUTS[i % BENCH_INPUTS.length] as string);
    cachedMs.push(result.usage.totalMs);
  }
  await guard.close();

  return {
    loaded: systemInfo().cpuVariant,
    promptTokensPerSecond: percentile(rates, 0.5),
    coldMs: percentile(coldMs, 0.5),
    cachedP50Ms: percentile(cachedMs, 0.5),
    promptTokens,
  };
}

function measureInChild(variant: string, runs: number, threads: number): VariantFigures | { variant: string; error: string } {
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (variant === 'source') {
    delete env.PREBUILDS_ONLY;
    delete env.XGUARD_CPU_VARIANT;
  } else {
    env.PREBUILDS_ONLY = '1';
    env.XGUARD_CPU_VARIANT = variant;
  }
  const child = spawnSync(
    process.execPath,
    ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', '--runs', String(runs), '--threads', String(threads)],
    { cwd: ROOT, env, encoding: 'utf8', maxBuffer: 16 << 20 },
  );
  if (child.status !== 0) {
    const reason = child.stderr.split('\n').find((line) => /cannot run here|names no CPU backend|Error/.test(line)) ?? `exit ${child.status}, signal ${child.signal}`;
    return { variant, error: reason.trim() };
  }
  const figures = JSON.parse(child.stdout.trim().split('\n').at(-1) ?? '{}') as Omit<VariantFigures, 'variant'>;
  return { variant, ...figures };
}

const { values } = parseArgs({
  options: {
    child: { type: 'boolean' },
    json: { type: 'boolean' },
    variants: { type: 'string', default: DEFAULT_VARIANTS.join(',') },
    runs: { type: 'string', default: '12' },
    threads: { type: 'string' },
  },
});
const runs = Number(values.runs);
const threads = values.threads === undefined ? os.availableParallelism() : Number(values.threads);
if (!Number.isInteger(runs) || runs < 1 || !Number.isInteger(threads) || threads < 1) {
  console.error('bench: --runs and --threads must be positive integers');
  process.exit(2);
}

if (values.child) {
  console.log(JSON.stringify(await measureHere(runs, threads)));
  process.exit(0);
}

if (!existsSync(path.join(PREBUILD_DIR, 'build-info.json'))) {
  console.error(`bench: ${PREBUILD_DIR} has no prebuild; run \`npm run prebuild\` first.`);
  process.exit(1);
}
const shipped = (JSON.parse(readFileSync(path.join(PREBUILD_DIR, 'build-info.json'), 'utf8')) as { cpuVariants: string[] }).cpuVariants;
await ensureTestModel('0.6b');

const results = values.variants.split(',').map((variant) => {
  if (variant !== 'source' && !shipped.includes(variant)) {
    return { variant, error: `not in the prebuild (it ships ${shipped.join(', ')})` };
  }
  console.error(`bench: measuring ${variant}`);
  return measureInChild(variant, runs, threads);
});

const baseline = results.find((result): result is VariantFigures => result.variant === 'x64' && !('error' in result));
if (values.json) {
  console.log(JSON.stringify({ machine: { cpu: os.cpus()[0]?.model, cores: os.availableParallelism(), threads }, results }, null, 2));
} else {
  console.log(`0.6b-shape Q8_0 model, ${threads} threads, ${os.cpus()[0]?.model ?? 'unknown CPU'}`);
  console.log('| variant | prompt tokens/s (cold) | vs x64 | cold request ms | cached p50 ms | vs x64 |');
  console.log('|---|---|---|---|---|---|');
  for (const result of results) {
    if ('error' in result) {
      console.log(`| ${result.variant} | ${result.error} | | | | |`);
      continue;
    }
    const promptRatio = baseline === undefined ? '' : `${(result.promptTokensPerSecond / baseline.promptTokensPerSecond).toFixed(2)}x`;
    const cachedRatio = baseline === undefined ? '' : `${(baseline.cachedP50Ms / result.cachedP50Ms).toFixed(2)}x`;
    console.log(
      `| ${result.variant}${result.loaded !== result.variant ? ` (${result.loaded})` : ''} | ${result.promptTokensPerSecond.toFixed(0)} | ${promptRatio} | ${result.coldMs.toFixed(0)} | ${result.cachedP50Ms.toFixed(0)} | ${cachedRatio} |`,
    );
  }
}
