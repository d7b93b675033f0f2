// Prometheus metrics of the server and its engine.
//
// prom-client writes the text format (escaping, histogram buckets with +Inf, _sum and _count)
// the way Prometheus parses it, and its default collectors add the process figures that
// operators size replicas by: resident memory, CPU time, event loop lag, heap. Writing that by
// hand would repeat a well-tested library. Each server has its own registry, so several
// servers in one process do not mix their figures.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

import { isBaseLabelId, POLICY_LETTER_ID } from '../risk-map.js';
import type { GuardStats } from '../types.js';
import type { ServerState } from './state.js';

// From a few milliseconds (a cached short prompt on a small model) to a minute (long
// explanations on the 8B model).
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const PROMPT_TOKEN_BUCKETS = [128, 256, 384, 512, 768, 1024, 2048, 4096, 8192];

export class ServerMetrics {
  readonly registry = new Registry();
  readonly #requests: Counter<'route' | 'method' | 'status'>;
  readonly #duration: Histogram<'route'>;
  readonly #classifications: Counter<'turn' | 'label' | 'flagged'>;
  readonly #promptTokens: Histogram;

  constructor(state: ServerState) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });

    this.#requests = new Counter({
      name: 'xguard_http_requests_total',
      help: 'HTTP requests completed or abandoned by the client, by route, method and status code.',
      labelNames: ['route', 'method', 'status'],
      registers,
    });
    this.#duration = new Histogram({
      name: 'xguard_http_request_duration_seconds',
      help: 'Time from receiving an HTTP request to the end of its response, by route.',
      labelNames: ['route'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    new Gauge({
      name: 'xguard_http_requests_in_flight',
      help: 'HTTP requests received and not yet completed.',
      registers,
      collect() {
        this.set(state.requestsInFlight);
      },
    });
    this.#classifications = new Counter({
      name: 'xguard_classifications_total',
      help: 'Finished classifications, by judged turn, label id and whether the thresholds flagged them.',
      labelNames: ['turn', 'label', 'flagged'],
      registers,
    });
    this.#promptTokens = new Histogram({
      name: 'xguard_prompt_tokens',
      help: 'Prompt tokens per classification, chat template included.',
      buckets: PROMPT_TOKEN_BUCKETS,
      registers,
    });

    new Gauge({
      name: 'xguard_ready',
      help: '1 while the model is loaded and the server accepts requests, else 0.',
      registers,
      collect() {
        this.set(state.phase === 'ready' ? 1 : 0);
      },
    });
    this.#engineGauge(state, 'xguard_queue_depth', 'Requests waiting for a place in the batch.', (stats) => stats.queued);
    this.#engineGauge(state, 'xguard_active_sequences', 'Requests holding a sequence in the KV cache.', (stats) => stats.active);
    this.#engineGauge(state, 'xguard_pending_requests', 'Classifications submitted to the engine and not yet settled.', (stats) => stats.pending);
    this.#engineGauge(state, 'xguard_prefix_cache_entries', 'Finished prompts kept in the KV cache for reuse.', (stats) => stats.prefixCache.entries);
    this.#engineCounter(state, 'xguard_engine_requests_completed_total', 'Requests the engine finished.', (stats) => stats.completed);
    this.#engineCounter(state, 'xguard_decode_steps_total', 'llama_decode calls.', (stats) => stats.steps);
    this.#engineCounter(state, 'xguard_decoded_tokens_total', 'Tokens passed through llama_decode: prompt suffixes and generated tokens.', (stats) => stats.decodedTokens);
    this.#engineCounter(state, 'xguard_prefix_cache_hits_total', 'Requests that reused a cached prompt prefix.', (stats) => stats.prefixCache.hits);
    this.#engineCounter(state, 'xguard_prefix_cache_misses_total', 'Requests that found no cached prefix to reuse.', (stats) => stats.prefixCache.misses);
    this.#engineCounter(state, 'xguard_prefix_cache_evictions_total', 'Cached prompts evicted to stay within the cache limits.', (stats) => stats.prefixCache.evictions);
    this.#engineCounter(state, 'xguard_prefix_cache_reused_tokens_total', 'Prompt tokens whose KV entries were reused instead of decoded.', (stats) => stats.prefixCache.reusedTokens);
  }

  requestFinished(route: string, method: string, status: number, seconds: number): void {
    this.#requests.inc({ route, method, status: String(status) });
    this.#duration.observe({ route }, seconds);
  }

  classified(turn: string, label: string | null, flagged: boolean | null, promptTokens: number): void {
    this.#classifications.inc({ turn, label: boundedLabel(label), flagged: flagged === null ? 'unknown' : String(flagged) });
    this.#promptTokens.observe(promptTokens);
  }

  #engineGauge(state: ServerState, name: string, help: string, read: (stats: GuardStats) => number): void {
    new Gauge({
      name,
      help,
      registers: [this.registry],
      collect() {
        this.set(readStats(state, read));
      },
    });
  }

  #engineCounter(state: ServerState, name: string, help: string, read: (stats: GuardStats) => number): void {
    new Counter({
      name,
      help,
      registers: [this.registry],
      collect() {
        // The engine keeps the running total, so the counter is set to it on each scrape.
        this.reset();
        this.inc(readStats(state, read));
      },
    });
  }
}

function readStats(state: ServerState, read: (stats: GuardStats) => number): number {
  const guard = state.guard;
  return guard === undefined || guard.closed ? 0 : read(guard.stats());
}

/**
 * Returns the label id to use as a metric label. A model with random weights can put any
 * token at the label position, so every text that is no label id counts as "other", which
 * keeps the number of series small.
 */
function boundedLabel(label: string | null): string {
  if (label === null) {
    return 'none';
  }
  return isBaseLabelId(label) || POLICY_LETTER_ID.test(label) ? label : 'other';
}
