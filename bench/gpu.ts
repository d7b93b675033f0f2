// GPU offload against the CPU, for a GPU build of the addon: the same requests with
// gpuLayers 0 and -1 (every layer), their label distributions compared, and their speed.
//
// Usage: node --import tsx bench/gpu.ts --build build-vulkan [--shape tiny|tiny-q8|0.6b] [--runs N]
//
// --build names a cmake-js build folder made with a GPU backend, for example
//   XGUARD_GPU=vulkan node node_modules/cmake-js/bin/cmake-js compile -O build-vulkan \
//     --CDLLAMA_CPP_DIR=$PWD/vendor/llama.cpp --CDGGML_VULKAN=ON
// The library loads the addon from <package>/build/Release, so this script lays out a package
// folder in a temporary directory whose build/ is that folder, and runs the requests there.

import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { ensureTestModel } from '../lib/test-model/cache.js';
import type { TestModelShapeName } from '../lib/test-model/qwen3-model.js';
import { largestLogprobGap } from './common.js';
import { BENCH_INPUTS } from './inputs.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

// Runs in the temporary package: one pass per gpuLayers value, in one process.
const CHILD_SCRIPT = `
import { XGuard, systemInfo } from './dist/index.js';
const [modelPath, runs, ...inputs] = process.argv.slice(1);
const passes = [];
for (const gpuLayers of [0, -1]) {
  const guard = await XGuard.load(modelPath, { gpuLayers, threads: 2 });
  await guard.classify('warm-up request');
  const results = [];
  const started = performance.now();
  for (let i = 0; i < Number(runs); i++) {
    const result = await guard.classify(inputs[i % inputs.length]);
    results.push(Object.fromEntries(result.riskScores.map((risk) => [risk.id, Math.log(risk.score)])));
  }
  passes.push({ gpuLayers, msPerRequest: (performance.now() - started) / Number(runs), results });
  await guard.close();
}
console.log(JSON.stringify({ info: systemInfo(), passes }));
`;

interface Pass {
  gpuLayers: number;
  msPerRequest: number;
  results: Record<string, number>[];
}

function topLabel(scores: Record<string, number>): string {
  return Object.entries(scores).reduce((best, entry) => (entry[1] > best[1] ? entry : best))[0];
}

const { values } = parseArgs({
  options: {
    build: { type: 'string' },
    shape: { type: 'string', default: 'tiny' },
    runs: { type: 'string', default: '8' },
  },
});
if (values.build === undefined) {
  console.error('bench: --build <folder> is required: a cmake-js build folder made with a GPU backend');
  process.exit(2);
}
const buildDir = path.resolve(values.build);
if (!existsSync(path.join(buildDir, 'Release', 'xguard.node'))) {
  console.error(`bench: ${buildDir}/Release/xguard.node not found; build it first (see the usage at the top of bench/gpu.ts).`);
  process.exit(2);
}
if (!existsSync(path.join(ROOT, 'dist', 'index.js'))) {
  console.error('bench: dist/ is missing; run `npm run build:ts` first.');
  process.exit(2);
}
const modelPath = await ensureTestModel(values.shape as TestModelShapeName);

const packageDir = mkdtempSync(path.join(os.tmpdir(), 'xguard-gpu-'));
try {
  cpSync(path.join(ROOT, 'dist'), path.join(packageDir, 'dist'), { recursive: true });
  cpSync(path.join(ROOT, 'package.json'), path.join(packageDir, 'package.json'));
  symlinkSync(path.join(ROOT, 'node_modules'), path.join(packageDir, 'node_modules'));
  symlinkSync(buildDir, path.join(packageDir, 'build'));

  const child = spawnSync(
    process.execPath,
    ['--input-type=module', '-e', CHILD_SCRIPT, modelPath, values.runs, ...BENCH_INPUTS.slice(0, 8)],
    { cwd: packageDir, encoding: 'utf8', maxBuffer: 16 << 20 },
  );
  if (child.status !== 0) {
    console.error(`bench: the GPU run failed (status ${child.status}, signal ${child.signal}):\n${child.stderr}`);
    process.exit(1);
  }
  const { info, passes } = JSON.parse(child.stdout.trim().split('\n').at(-1) ?? '{}') as {
    info: { backends: { name: string; devices: { description: string; type: string }[] }[] };
    passes: Pass[];
  };
  const [cpu, gpu] = passes as [Pass, Pass];

  const gaps = cpu.results.map((scores, i) => largestLogprobGap(scores, gpu.results[i] ?? {}));
  const labelChanges = cpu.results.filter((scores, i) => topLabel(scores) !== topLabel(gpu.results[i] ?? {})).length;
  for (const backend of info.backends) {
    console.log(`backend ${backend.name}: ${backend.devices.map((device) => `${device.description} (${device.type})`).join('; ') || 'no devices'}`);
  }
  console.log(`model ${values.shape}, ${cpu.results.length} requests per pass`);
  console.log(`gpuLayers 0:  ${cpu.msPerRequest.toFixed(1)} ms per request`);
  console.log(`gpuLayers -1: ${gpu.msPerRequest.toFixed(1)} ms per request`);
  console.log(`largest |delta log p| over labels with p >= 1e-3: ${Math.max(...gaps).toFixed(4)}; top label changed in ${labelChanges} of ${gaps.length}`);
} finally {
  rmSync(packageDir, { recursive: true, force: true });
}
