// Benchmark runner for node-llama-cpp 3.21.1 with its prebuilt binary, used the way a service
// would: one context with a sequence per client, each sequence keeping its state between
// requests (adaptStateToTokens keeps the common prefix), and the label probabilities read from
// the full probability map of the first generated position.

import { readFileSync } from 'node:fs';

import { getLlama, type LlamaContextSequence, type Token } from 'node-llama-cpp';

import {
  SCENARIOS,
  WARMUP_COUNT,
  argument,
  generatedTokens,
  peakRssMiB,
  runPool,
  scenarioEntries,
  type PromptEntry,
  type SystemReport,
} from '../common.js';

const prompts = JSON.parse(readFileSync(argument('prompts'), 'utf8')) as PromptEntry[];
const threads = Number(argument('threads'));
const llama = await getLlama({ gpu: false, build: 'never', skipDownload: true, logLevel: 'error' as never });
const model = await llama.loadModel({ modelPath: argument('model') });
const context = await model.createContext({
  sequences: 8,
  contextSize: Number(argument('context-size')),
  batchSize: 512,
  threads,
});
const free: LlamaContextSequence[] = Array.from({ length: 8 }, () => context.getSequence());

const run = async (entry: PromptEntry, maxNewTokens: number): Promise<number> => {
  const sequence = free.pop();
  if (sequence === undefined) {
    throw new Error('more clients than sequences');
  }
  try {
    const tokens = entry.tokens as Token[];
    // Keep the common prefix, but always decode at least the last prompt token.
    await sequence.adaptStateToTokens(tokens.slice(0, -1), false);
    const start = sequence.nextTokenIndex;
    const input = tokens.slice(start).map((token, index, rest) =>
      index === rest.length - 1
        ? ([token, { generateNext: { token: true, probabilities: true, options: { temperature: 0 } } }] as const)
        : token,
    );
    const outputs = await sequence.controlledEvaluate(input as never);
    const first = outputs.at(-1)?.next;
    if (first?.probabilities === undefined || first.token == null) {
      throw new Error('node-llama-cpp returned no probabilities');
    }

    let generated = maxNewTokens > 0 ? 1 : 0;
    let next: Token = first.token;
    while (generated < maxNewTokens && !model.isEogToken(next)) {
      const step = await sequence.controlledEvaluate([[next, { generateNext: { token: true, options: { temperature: 0 } } }]]);
      const token = step[0]?.next.token;
      if (token == null) {
        break;
      }
      next = token;
      generated++;
    }
    return generated;
  } finally {
    free.push(sequence);
  }
};

for (const entry of prompts.slice(-WARMUP_COUNT)) {
  await run(entry, 0);
}

const report: SystemReport = { system: 'node-llama-cpp', scenarios: {}, peakRssMiB: 0, notes: [] };
for (const scenario of SCENARIOS) {
  const items = scenarioEntries(scenario, prompts);
  report.scenarios[scenario.name] = await runPool(items, scenario.concurrency, (entry) =>
    run(entry, generatedTokens(scenario, entry.reasonFirst)),
  );
}
report.notes.push(`threads ${threads}, 8 sequences, probabilities map of the full vocabulary at the label position`);
await context.dispose();
await model.dispose();
report.peakRssMiB = peakRssMiB();
console.log(JSON.stringify(report));
