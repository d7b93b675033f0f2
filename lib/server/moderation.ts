// A classification in the result shape of OpenAI's moderation API, with XGuard's 28 risk
// categories as the category names ("Crimes and Illegal Activities-Dangerous Weapons", ...).

import type { Decision } from '../decide.js';
import { RISK_CATEGORIES, SAFE_LABEL_ID } from '../risk-map.js';
import type { ClassifyResult } from '../types.js';

export interface ModerationResult {
  flagged: boolean;
  categories: Record<string, boolean>;
  category_scores: Record<string, number>;
  /** Input types each category was judged on; XGuard reads text only. */
  category_applied_input_types: Record<string, string[]>;
}

export interface ModerationResponse {
  id: string;
  model: string;
  results: ModerationResult[];
}

const RISKS = RISK_CATEGORIES.filter((entry) => entry.id !== SAFE_LABEL_ID);

export function toModerationResult(result: ClassifyResult, decision: Decision): ModerationResult {
  const scores = new Map(result.riskScores.map((risk) => [risk.id, risk.score]));
  const flaggedIds = new Set(decision.flaggedCategories.map((entry) => entry.id));

  const categories: Record<string, boolean> = {};
  const categoryScores: Record<string, number> = {};
  const inputTypes: Record<string, string[]> = {};
  for (const risk of RISKS) {
    categories[risk.label] = flaggedIds.has(risk.id);
    categoryScores[risk.label] = scores.get(risk.id) ?? 0;
    inputTypes[risk.label] = ['text'];
  }
  return { flagged: decision.flagged, categories, category_scores: categoryScores, category_applied_input_types: inputTypes };
}
