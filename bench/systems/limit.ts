// The speed limit for a request: the time the same llama.cpp build spends decoding only the
// tokens after the cached prefix (plus generated tokens, when a request needs them), measured
// inside the native worker. No template, tokenization, queueing or JS work is counted.

import { loadAddon } from '../../lib/native.js';
import {
  SCENARIOS,
  WARMUP_COUNT,
  argument,
  generatedTokens,
  peakRssMiB,
  percentile,
  scenarioEntries,
  type PromptEntry,
  type SystemReport,
} from '../common.js';
import { readFileSync } from 'node:fs';

const prompts = JSON.parse(readFileSync(argument('prompts'), 'utf8')) as PromptEntry[];
const model = await loadAddon().loadModel(argument('model'), {});
const context = await model.createContext({
  threads: Number(argument('threads')),
  contextSize: Number(argument('context-size')),
  parallel: 1,
});

const decode = async (entry: PromptEntry, maxNewTokens: number): Promise<{ ms: number; generated: number }> => {
  const result = await context.evaluate({ tokens: Int32Array.from(entry.tokens), topK: 1, maxNewTokens });
  return { ms: result.promptMs + result.generateMs, generated: result.generated.length };
};

for (const entry of prompts.slice(-WARMUP_COUNT)) {
  await decode(entry, 0);
}

const report: SystemReport = { system: 'limit', scenarios: {}, peakRssMiB: 0, notes: [] };
// Only the sequential scenario: the limit of a request's own latency, not of throughput.
for (const scenario of SCENARIOS.filter((candidate) => candidate.concurrency === 1)) {
  const times: number[] = [];
  let generated = 0;
  for (const entry of scenarioEntries(scenario, prompts)) {
    const run = await decode(entry, generatedTokens(scenario, entry.reasonFirst));
    times.push(run.ms);
    generated += run.generated;
  }
  const total = times.reduce((sum, ms) => sum + ms, 0);
  report.scenarios[scenario.name] = {
    requests: times.length,
    concurrency: 1,
    wallMs: total,
    requestsPerSecond: (times.length * 1000) / total,
    p50Ms: percentile(times, 0.5),
    p95Ms: percentile(times, 0.95),
    generatedTokens: generated,
  };
}
report.notes.push('decode time of the uncached suffix and generated tokens only, one request at a time');
await context.dispose();
model.dispose();
report.peakRssMiB = peakRssMiB();
console.log(JSON.stringify(report));
