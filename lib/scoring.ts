// Turns the native distribution at the label position into the scores a caller reads:
// every label id's probability, and the reference implementation's top-token list.

import type { NativeDistribution } from './native.js';

export interface RiskScore {
  /** Label id, for example `sec` or `dw`, or a letter added by a dynamic policy. */
  id: string;
  /** "Dimension-Category", for example `Crimes and Illegal Activities-Dangerous Weapons`, or a policy's name. */
  category: string;
  /** Probability of the id's token at the label position, over the full vocabulary. */
  score: number;
}

export interface TokenScore {
  /** The token's text, as the model would print it. */
  token: string;
  tokenId: number;
  score: number;
}

/** Tokens below this probability are left out of `tokenScores`, except the top one. */
export const TOKEN_SCORE_THRESHOLD = 1e-4;

/** One label id and the vocabulary token that spells it. */
export interface LabelToken {
  id: string;
  category: string;
  token: number;
}

/**
 * Probability of every label at the label position, highest first. `labels[i]` must match
 * `distribution.trackedLogprobs[i]`.
 */
export function riskScoresFrom(distribution: NativeDistribution, labels: readonly LabelToken[]): RiskScore[] {
  const scores = labels.map((label, index) => ({
    id: label.id,
    category: label.category,
    score: Math.exp(distribution.trackedLogprobs[index] ?? Number.NEGATIVE_INFINITY),
  }));
  return scores.sort((a, b) => b.score - a.score || a.id.localeCompare(b.id));
}

/** Lists the top tokens at the label position: rank 1 always, the others above TOKEN_SCORE_THRESHOLD. */
export function tokenScoresFrom(distribution: NativeDistribution, tokenText: (token: number) => string): TokenScore[] {
  const scores: TokenScore[] = [];
  for (let rank = 0; rank < distribution.topTokens.length; rank++) {
    const tokenId = distribution.topTokens[rank] as number;
    const score = Math.exp(distribution.topLogprobs[rank] as number);
    if (rank > 0 && score <= TOKEN_SCORE_THRESHOLD) {
      break;
    }
    scores.push({ token: tokenText(tokenId), tokenId, score });
  }
  return scores;
}

const EXPLANATION_OPEN = '<explanation>';
const EXPLANATION_CLOSE = '</explanation>';

/**
 * Extracts the text between the explanation tags, trimmed. A response cut off before the closing tag
 * gives the text after the opening one. Returns null when there is no opening tag.
 */
export function parseExplanation(response: string): string | null {
  const open = response.indexOf(EXPLANATION_OPEN);
  if (open === -1) {
    return null;
  }
  const start = open + EXPLANATION_OPEN.length;
  const close = response.indexOf(EXPLANATION_CLOSE, start);
  return response.slice(start, close === -1 ? undefined : close).trim();
}

/**
 * Index in `generated` of the label token of a reason-first response: the first token after
 * the closing explanation tag whose text is not only whitespace. Returns -1 when the response
 * has no closing tag or nothing follows it.
 */
export function findReasonFirstLabel(generated: Int32Array, tokenText: (token: number) => string): number {
  let text = '';
  let closed = false;
  for (let i = 0; i < generated.length; i++) {
    const piece = tokenText(generated[i] as number);
    if (closed) {
      if (piece.trim() !== '') {
        return i;
      }
      continue;
    }
    text += piece;
    const close = text.indexOf(EXPLANATION_CLOSE);
    if (close !== -1) {
      closed = true;
      // A token may carry text past the tag, for example ">\n" + "sec" merged into one piece.
      if (text.slice(close + EXPLANATION_CLOSE.length).trim() !== '') {
        return -1;
      }
    }
  }
  return -1;
}
