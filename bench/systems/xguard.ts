// Benchmark runner for xguard-node itself: the public classify() path, template and
// tokenization included. Run by bench/run.ts in a child process; prints one JSON report.

import { XGuard } from '../../lib/xguard.js';
import {
  GENERATED_TOKENS,
  SCENARIOS,
  WARMUP_COUNT,
  argument,
  loadPolicy,
  loadWorkload,
  peakRssMiB,
  runPool,
  scenarioEntries,
  type SystemReport,
  type WorkloadEntry,
} from '../common.js';

const workload = loadWorkload();
const guard = await XGuard.load(argument('model'), {
  threads: Number(argument('threads')),
  contextSize: Number(argument('context-size')),
  parallel: 8,
});

const classify = async (entry: WorkloadEntry, explain: boolean): Promise<number> => {
  const options: Parameters<XGuard['classify']>[1] = { reasonFirst: entry.reasonFirst, explain, maxNewTokens: GENERATED_TOKENS };
  if (entry.policy !== null) {
    options.policy = loadPolicy(entry.policy);
  }
  const result = await guard.classify(entry.input, options);
  return result.usage.generatedTokens;
};

for (const entry of workload.slice(-WARMUP_COUNT)) {
  await classify(entry, false);
}

const report: SystemReport = { system: 'xguard', scenarios: {}, peakRssMiB: 0, notes: [] };
for (const scenario of SCENARIOS) {
  const items = scenarioEntries(scenario, workload);
  report.scenarios[scenario.name] = await runPool(items, scenario.concurrency, (entry) => classify(entry, scenario.explain));
}
const stats = guard.stats();
report.notes.push(
  `prefix cache: ${stats.prefixCache.hits} hits, ${stats.prefixCache.misses} misses, ${stats.prefixCache.evictions} evictions, ` +
    `${stats.prefixCache.reusedTokens} tokens reused; ${stats.steps} llama_decode calls for ${stats.decodedTokens} tokens`,
);
await guard.close();
report.peakRssMiB = peakRssMiB();
console.log(JSON.stringify(report));
