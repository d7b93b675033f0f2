// Turns a classification into a yes/no moderation decision with per-category thresholds.

import { XGuardError, describeValue } from './errors.js';
import { POLICY_LETTER_ID, SAFE_LABEL_ID, isBaseLabelId } from './risk-map.js';
import type { ClassifyDecision, ClassifyInput } from './types.js';

/** The judged turn: a request alone, or an LLM's response together with its request. */
export type JudgedTurn = 'request' | 'response';

/** Thresholds for one turn. Scores are probabilities from 0 to 1. */
export interface TurnThresholds {
  /** Threshold of every risk category without its own entry in `categories`. */
  default: number;
  /** Thresholds by label id (`dw`, `pc`, or a policy letter such as `a`). */
  categories: Record<string, number>;
  /**
   * Threshold on the summed probability of all risk labels, or null for none. It catches
   * risk that the model spreads over several categories, none of which reaches its own
   * threshold.
   */
  anyRisk: number | null;
}

export interface Thresholds {
  request: TurnThresholds;
  response: TurnThresholds;
}

/** A risk category whose score reached its threshold. */
export interface FlaggedCategory {
  id: string;
  category: string;
  score: number;
  threshold: number;
}

export interface Decision {
  turn: JudgedTurn;
  /** True when at least one category reached its threshold, or the summed risk reached `anyRisk`. */
  flagged: boolean;
  /** Categories whose score reached their threshold, highest score first. */
  flaggedCategories: FlaggedCategory[];
  /** Summed probability of all risk labels: every label id except `sec`. */
  riskScore: number;
}

/**
 * Default thresholds: 0.5 for a request judged alone and 0.8 for a response.
 * NOTE: these are reported to be the thresholds YuFeng-XGuard-Reason's authors evaluated
 * with. This project has not checked them against the authors' evaluation code.
 */
export const DEFAULT_THRESHOLDS: Readonly<Thresholds> = Object.freeze({
  request: Object.freeze({ default: 0.5, categories: Object.freeze({}), anyRisk: null }),
  response: Object.freeze({ default: 0.8, categories: Object.freeze({}), anyRisk: null }),
});

/** Returns 'response' when `input` contains an assistant message, else 'request'. */
export function judgedTurnOf(input: ClassifyInput): JudgedTurn {
  if (Array.isArray(input) && input.some((message) => message?.role === 'assistant')) {
    return 'response';
  }
  return 'request';
}

/**
 * Flags each risk category whose probability reaches its threshold for `turn`. `sec` is never
 * flagged. Throws ERR_INVALID_INPUT for a result without label scores (a reason-first response
 * that ended before its label), because deciding "not flagged" there would pass unjudged text.
 */
export function decide(result: ClassifyDecision, thresholds: Thresholds = DEFAULT_THRESHOLDS, turn: JudgedTurn = 'request'): Decision {
  if (result.riskScores.length === 0) {
    throw new XGuardError(
      'ERR_INVALID_INPUT',
      'The result has no label scores: the reason-first response ended before its label. Classify again with a larger maxNewTokens.',
    );
  }
  const limits = thresholds[turn];
  if (limits === undefined) {
    throw new XGuardError('ERR_INVALID_OPTION', `Invalid turn ${describeValue(turn)}: expected 'request' or 'response'.`);
  }

  const flaggedCategories: FlaggedCategory[] = [];
  let riskScore = 0;
  for (const risk of result.riskScores) {
    if (risk.id === SAFE_LABEL_ID) {
      continue;
    }
    riskScore += risk.score;
    const threshold = limits.categories[risk.id] ?? limits.default;
    if (risk.score >= threshold) {
      flaggedCategories.push({ id: risk.id, category: risk.category, score: risk.score, threshold });
    }
  }

  const anyRiskReached = limits.anyRisk !== null && riskScore >= limits.anyRisk;
  return { turn, flagged: flaggedCategories.length > 0 || anyRiskReached, flaggedCategories, riskScore };
}

function checkScore(where: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > 1) {
    throw new XGuardError('ERR_INVALID_OPTION', `Invalid thresholds ${where} ${describeValue(value)}: expected a number from 0 to 1.`);
  }
  return value;
}

function checkObject(where: string, value: unknown, known: readonly string[] | null): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new XGuardError('ERR_INVALID_OPTION', `Invalid thresholds ${where} ${describeValue(value)}: expected a JSON object.`);
  }
  if (known !== null) {
    for (const key of Object.keys(value)) {
      if (!known.includes(key)) {
        throw new XGuardError(
          'ERR_INVALID_OPTION',
          `Unknown key ${describeValue(key)} in thresholds ${where}. Accepted keys: ${known.join(', ')}.`,
        );
      }
    }
  }
  return value as Record<string, unknown>;
}

function checkTurn(turn: JudgedTurn, value: unknown): TurnThresholds {
  const fallback = DEFAULT_THRESHOLDS[turn];
  if (value === undefined) {
    return { default: fallback.default, categories: {}, anyRisk: null };
  }
  const section = checkObject(turn, value, ['default', 'categories', 'anyRisk']);

  const categories: Record<string, number> = {};
  if (section.categories !== undefined) {
    const entries = checkObject(`${turn}.categories`, section.categories, null);
    for (const [id, score] of Object.entries(entries)) {
      if (id === SAFE_LABEL_ID || !(isBaseLabelId(id) || POLICY_LETTER_ID.test(id))) {
        throw new XGuardError(
          'ERR_INVALID_OPTION',
          `Invalid thresholds key ${turn}.categories.${id}: expected a risk label id (pc, dc, dw, ...; sec is never flagged) or a policy letter a-z.`,
        );
      }
      categories[id] = checkScore(`${turn}.categories.${id}`, score);
    }
  }

  return {
    default: section.default === undefined ? fallback.default : checkScore(`${turn}.default`, section.default),
    categories,
    anyRisk: section.anyRisk === undefined || section.anyRisk === null ? null : checkScore(`${turn}.anyRisk`, section.anyRisk),
  };
}

/**
 * Validates a thresholds object, for example the parsed JSON of a thresholds file, and fills
 * what it leaves out from DEFAULT_THRESHOLDS. Throws ERR_INVALID_OPTION naming the key.
 */
export function checkThresholds(value: unknown): Thresholds {
  const root = checkObject('file', value, ['request', 'response']);
  return { request: checkTurn('request', root.request), response: checkTurn('response', root.response) };
}

/** Parses the JSON text of a thresholds file. `source` names the file in error messages. */
export function parseThresholds(text: string, source = 'thresholds'): Thresholds {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new XGuardError('ERR_INVALID_OPTION', `${source} is not valid JSON: ${(error as Error).message}.`, { cause: error });
  }
  try {
    return checkThresholds(value);
  } catch (error) {
    if (error instanceof XGuardError) {
      throw new XGuardError(error.code, `${source}: ${error.message}`, { cause: error });
    }
    throw error;
  }
}
