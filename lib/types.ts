// Public types of classification requests and results.

import type { ChatMessage } from './conversation.js';
import type { RiskScore, TokenScore } from './scoring.js';
import type { LiteralSpan } from './template.js';

export type ClassifyInput = string | ChatMessage[];

export interface PromptOptions {
  policy?: string;
  reasonFirst?: boolean;
}

export interface FormattedPrompt {
  /** The rendered chat template. */
  text: string;
  /** Token ids as the model reads them: template specials parsed, caller text literal. */
  tokens: Int32Array;
  /** Character ranges of `text` that came from the caller (message contents, policy). */
  literalSpans: LiteralSpan[];
}

export interface ClassifyUsage {
  promptTokens: number;
  /** Prompt tokens whose KV cache entries were reused from the previous request. */
  reusedTokens: number;
  /** Tokens passed through llama_decode: the prompt suffix plus generated tokens. */
  decodedTokens: number;
  generatedTokens: number;
  /** Time from submission to the first decode step that included this request. */
  queueMs: number;
  promptMs: number;
  generateMs: number;
  totalMs: number;
  /** Maximum number of requests that shared one llama_decode call with this one. */
  batchPeak: number;
}

/** The label read at the label position and the scores around it. */
export interface ClassifyDecision {
  /**
   * The label id the model chose (`sec`, `dw`, a policy letter, ...), read from the label
   * position. Null when a reason-first response ended before a label appeared.
   */
  label: string | null;
  /** "Dimension-Category" for a built-in id, the policy's name for an added one; null for a token that is no label. */
  category: string | null;
  /** Probability of the chosen label token. */
  score: number | null;
  /** Every label id (built-in and policy) with its probability, highest first. Empty when no label was found. */
  riskScores: RiskScore[];
  /** Top tokens at the label position: rank 1, and the others above 1e-4. */
  tokenScores: TokenScore[];
}

export interface ClassifyResult extends ClassifyDecision {
  /** Generated text, special tokens removed. Just the label token when nothing was generated. */
  response: string;
  /** Text inside the `<explanation>` tags, or null when the response has none. */
  explanation: string | null;
  /** Why generation stopped: 'label_only' when only the label position was decoded. */
  stopReason: 'label_only' | 'eog' | 'max_tokens' | 'context_full';
  usage: ClassifyUsage;
}

/** Events of classifyStream(), in order: decision and text pieces, then done. */
export type ClassifyStreamEvent =
  | ({ type: 'decision' } & ClassifyDecision)
  | { type: 'text'; text: string }
  | { type: 'done'; result: ClassifyResult };

export interface PrefixCacheStats {
  hits: number;
  misses: number;
  evictions: number;
  /** Finished prompts kept in the KV cache. */
  entries: number;
  /** KV cells the kept prompts hold, estimated from their shared prefixes. */
  cells: number;
  reusedTokens: number;
  cellBudget: number;
  maxEntries: number;
}

export interface GuardStats {
  /** classify() calls submitted and not settled, queued or running. */
  pending: number;
  /** Requests waiting for a place in the batch. */
  queued: number;
  /** Requests holding a sequence in the KV cache. */
  active: number;
  completed: number;
  /** llama_decode calls so far. */
  steps: number;
  decodedTokens: number;
  prefixCache: PrefixCacheStats;
}

export interface ModelInfo {
  path: string;
  architecture: string;
  name: string;
  description: string;
  parameterCount: number;
  sizeBytes: number;
  trainContextLength: number;
  contextSize: number;
  batchSize: number;
  threads: number;
  /** Requests decoded together at most. */
  parallel: number;
  vocabularySize: number;
  /** Source of the chat template: the model file or the chatTemplate option. */
  chatTemplateSource: 'model' | 'option';
}

