// Shared pieces of the benchmark: the workload, the scenarios, a worker pool and statistics.

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));

export interface WorkloadEntry {
  id: number;
  kind: 'short' | 'long' | 'pair';
  input: string | Array<{ role: 'user' | 'assistant'; content: string }>;
  policy: null | 'goods' | 'finance' | 'minors';
  reasonFirst: boolean;
}

/** A workload entry rendered and tokenized once, for the peers that take token ids. */
export interface PromptEntry {
  id: number;
  kind: WorkloadEntry['kind'];
  tokens: number[];
  reasonFirst: boolean;
}

export interface Scenario {
  name: 'c1' | 'c8' | 'short8' | 'explain';
  concurrency: number;
  explain: boolean;
  /** Workload entries used, from the start of the list. */
  count: number;
  /** Only entries of this kind, when set. */
  kind?: WorkloadEntry['kind'];
}

// Generated tokens when a request needs more than the label: explanations, and reason-first
// requests, whose label comes after the explanation.
export const GENERATED_TOKENS = 64;

// c1 uses the first 100 entries to keep the whole run near 25 minutes on two cores.
export const SCENARIOS: readonly Scenario[] = [
  { name: 'c1', concurrency: 1, explain: false, count: 100 },
  { name: 'c8', concurrency: 8, explain: false, count: 200 },
  { name: 'short8', concurrency: 8, explain: false, count: 200, kind: 'short' },
  { name: 'explain', concurrency: 8, explain: true, count: 32 },
];

/** Selects the entries a scenario runs, in workload order. */
export function scenarioEntries<Entry extends { kind: WorkloadEntry['kind'] }>(scenario: Scenario, entries: readonly Entry[]): Entry[] {
  return entries.slice(0, scenario.count).filter((entry) => scenario.kind === undefined || entry.kind === scenario.kind);
}

/** Requests run before the first scenario to load pages and warm the template prefix. */
export const WARMUP_COUNT = 8;

export function loadWorkload(): WorkloadEntry[] {
  return JSON.parse(readFileSync(path.join(BENCH_DIR, 'workload.json'), 'utf8')) as WorkloadEntry[];
}

export function loadPolicy(name: NonNullable<WorkloadEntry['policy']>): string {
  return readFileSync(path.join(BENCH_DIR, 'policies', `${name}.txt`), 'utf8');
}

/** Tokens to generate for one request in one scenario: 0 means the label position only. */
export function generatedTokens(scenario: Scenario, reasonFirst: boolean): number {
  return scenario.explain || reasonFirst ? GENERATED_TOKENS : 0;
}

export interface ScenarioFigures {
  requests: number;
  concurrency: number;
  wallMs: number;
  requestsPerSecond: number;
  p50Ms: number;
  p95Ms: number;
  /** Set by runPool. The decode-only limit does not measure it. */
  p99Ms?: number;
  generatedTokens: number;
}

export interface SystemReport {
  system: string;
  scenarios: Partial<Record<Scenario['name'], ScenarioFigures>>;
  peakRssMiB: number;
  notes: string[];
}

/** Maps each label id of a result to its log probability. */
export function labelLogprobRecord(result: { riskScores: ReadonlyArray<{ id: string; score: number }> }): Record<string, number> {
  return Object.fromEntries(result.riskScores.map((risk) => [risk.id, Math.log(risk.score)]));
}

/**
 * Returns the largest |delta log p| between two label -> log probability maps, over the labels
 * to which either side gives a probability of at least 1e-3.
 */
export function largestLogprobGap(a: Readonly<Record<string, number>>, b: Readonly<Record<string, number>>): number {
  let largest = 0;
  for (const id of Object.keys(a)) {
    const x = a[id] ?? -Infinity;
    const y = b[id] ?? -Infinity;
    if (Math.exp(x) >= 1e-3 || Math.exp(y) >= 1e-3) {
      largest = Math.max(largest, Math.abs(x - y));
    }
  }
  return largest;
}

export function percentile(values: number[], fraction: number): number {
  if (values.length === 0) {
    return Number.NaN;
  }
  const sorted = [...values].sort((a, b) => a - b);
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(fraction * sorted.length) - 1));
  return sorted[index] as number;
}

/**
 * Runs `task` on every item with at most `concurrency` in flight, like that many clients
 * each sending its next request when the last one returns. Returns the scenario figures.
 */
export async function runPool<Item>(
  items: readonly Item[],
  concurrency: number,
  task: (item: Item) => Promise<number>,
): Promise<ScenarioFigures> {
  const latencies: number[] = [];
  let generated = 0;
  let next = 0;
  const started = performance.now();
  const client = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as Item;
      const sent = performance.now();
      // Read `generated` only after the await: `generated += await ...` would add to a stale value.
      const tokens = await task(item);
      generated += tokens;
      latencies.push(performance.now() - sent);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, client));
  const wallMs = performance.now() - started;
  return {
    requests: items.length,
    concurrency,
    wallMs,
    requestsPerSecond: (items.length * 1000) / wallMs,
    p50Ms: percentile(latencies, 0.5),
    p95Ms: percentile(latencies, 0.95),
    p99Ms: percentile(latencies, 0.99),
    generatedTokens: generated,
  };
}

/** Peak resident set size of this process, in MiB. */
export function peakRssMiB(): number {
  // resourceUsage().maxRSS is in kilobytes.
  return process.resourceUsage().maxRSS / 1024;
}

/** Reads a `--name value` argument of a system runner. */
export function argument(name: string): string {
  const index = process.argv.indexOf(`--${name}`);
  const value = index === -1 ? undefined : process.argv[index + 1];
  if (value === undefined) {
    throw new Error(`missing --${name} argument`);
  }
  return value;
}
