// The risk taxonomy of YuFeng-XGuard-Reason. The model's first generated token is one of
// these label ids, and callers see the label string ("Dimension-Category") for it.

import { XGuardError, describeValue } from './errors.js';
import type { PolicyCategory } from './policy.js';

export interface RiskCategory {
  /** Label id the model emits, e.g. `dw`. */
  readonly id: string;
  /** Top-level risk dimension, e.g. `Crimes and Illegal Activities`. */
  readonly dimension: string;
  /** Category name within the dimension, e.g. `Dangerous Weapons`. */
  readonly category: string;
  /** Label string shown to callers: `${dimension}-${category}`. */
  readonly label: string;
}

function defineCategory(id: string, dimension: string, category: string): RiskCategory {
  return Object.freeze({ id, dimension, category, label: `${dimension}-${category}` });
}

const CRIMES = 'Crimes and Illegal Activities';
const HATE = 'Hate Speech';
const HEALTH = 'Physical and Mental Health';
const ETHICS = 'Ethics and Morality';
const PRIVACY = 'Data Privacy';
const CYBER = 'Cybersecurity';
const EXTREMISM = 'Extremism';
const SUGGESTIONS = 'Inappropriate Suggestions';
const MINORS = 'Risks Involving Minors';

/** The 29 built-in categories: `sec` (safe) followed by the 28 risk categories. */
export const RISK_CATEGORIES: readonly RiskCategory[] = Object.freeze([
  defineCategory('sec', 'Safe', 'Safe'),
  defineCategory('pc', CRIMES, 'Pornographic Contraband'),
  defineCategory('dc', CRIMES, 'Drug Crimes'),
  defineCategory('dw', CRIMES, 'Dangerous Weapons'),
  defineCategory('pi', CRIMES, 'Property Infringement'),
  defineCategory('ec', CRIMES, 'Economic Crimes'),
  defineCategory('ac', HATE, 'Abusive Curses'),
  defineCategory('def', HATE, 'Defamation'),
  defineCategory('ti', HATE, 'Threats and Intimidation'),
  defineCategory('cy', HATE, 'Cyberbullying'),
  defineCategory('ph', HEALTH, 'Physical Health'),
  defineCategory('mh', HEALTH, 'Mental Health'),
  defineCategory('se', ETHICS, 'Social Ethics'),
  defineCategory('sci', ETHICS, 'Science Ethics'),
  defineCategory('pp', PRIVACY, 'Personal Privacy'),
  defineCategory('cs', PRIVACY, 'Commercial Secret'),
  defineCategory('acc', CYBER, 'Access Control'),
  defineCategory('mc', CYBER, 'Malicious Code'),
  defineCategory('ha', CYBER, 'Hacker Attack'),
  defineCategory('ps', CYBER, 'Physical Security'),
  defineCategory('ter', EXTREMISM, 'Violent Terrorist Activities'),
  defineCategory('sd', EXTREMISM, 'Social Disruption'),
  defineCategory('ext', EXTREMISM, 'Extremist Ideological Trends'),
  defineCategory('fin', SUGGESTIONS, 'Finance'),
  defineCategory('med', SUGGESTIONS, 'Medicine'),
  defineCategory('law', SUGGESTIONS, 'Law'),
  defineCategory('cm', MINORS, 'Corruption of Minors'),
  defineCategory('ma', MINORS, 'Minor Abuse and Exploitation'),
  defineCategory('md', MINORS, 'Minor Delinquency'),
]);

/** Label id of the safe verdict. */
export const SAFE_LABEL_ID = 'sec';

/** The built-in label ids, in the order of `RISK_CATEGORIES`. */
export const LABEL_IDS: readonly string[] = Object.freeze(RISK_CATEGORIES.map((entry) => entry.id));

const BASE_LABELS: ReadonlyMap<string, string> = new Map(
  RISK_CATEGORIES.map((entry) => [entry.id, entry.label]),
);

/** Pattern for the id of a category that a dynamic policy adds: one lowercase letter. */
export const POLICY_LETTER_ID = /^[a-z]$/;

/** Returns whether `id` is one of the 29 built-in label ids. */
export function isBaseLabelId(id: string): boolean {
  return BASE_LABELS.has(id);
}

/**
 * Builds the map from label id to label string for a parsed dynamic policy.
 *
 * The map contains every built-in id with its "Dimension-Category" label, including ids
 * that the policy redefines, plus each letter id that the policy adds, labelled with the
 * policy's name for it. Throws ERR_INVALID_POLICY for an added id that is not a single
 * letter a-z or that occurs twice, which `parsePolicy` never returns.
 */
export function buildLabelMap(policy: readonly PolicyCategory[] = []): Map<string, string> {
  const labels = new Map(BASE_LABELS);
  for (const entry of policy) {
    if (BASE_LABELS.has(entry.id)) {
      continue;
    }
    if (!POLICY_LETTER_ID.test(entry.id)) {
      throw new XGuardError(
        'ERR_INVALID_POLICY',
        `Invalid policy category id ${describeValue(entry.id)}: a new category needs a single letter a-z as its id. Parse the policy with parsePolicy().`,
      );
    }
    if (labels.has(entry.id)) {
      throw new XGuardError(
        'ERR_INVALID_POLICY',
        `Duplicate policy category id ${describeValue(entry.id)}: define each letter once.`,
      );
    }
    labels.set(entry.id, entry.name);
  }
  return labels;
}
