// Parser for dynamic policies. A policy lists categories, each as an unindented entry line
// `- <id>: <Name>` followed by indented `- <criterion>` lines:
//
//   - dw: Dangerous Weapons
//     - Instructions for building firearms at home.
//   - a: Prohibited and Restricted Goods
//     - Selling items that need a licence without one.
//
// A built-in id redefines that category; a single letter a-z adds a new one.

import { XGuardError, describeValue } from './errors.js';
import { LABEL_IDS, POLICY_LETTER_ID, isBaseLabelId } from './risk-map.js';

export interface PolicyCategory {
  /** Built-in label id (e.g. `dw`) or a new single-letter id (`a`-`z`). */
  id: string;
  /** Category name from the entry line, trimmed. */
  name: string;
  /** Criterion texts from the indented lines, trimmed, in order. */
  criteria: string[];
  /** True for a letter id that adds a category, false for a built-in id that redefines one. */
  isNew: boolean;
}

const EXPECTED_SHAPE =
  'Expected an unindented entry line "- <id>: <Name>" or an indented criterion line "  - <criterion>"';

const ENTRY_LINE = /^-[ \t]+([^\s:]*)[ \t]*:(.*)$/;
const CRITERION_LINE = /^[ \t]+-(?:[ \t]+(.*))?$/;
const BLANK_LINE = /^\s*$/;

function rejectLine(lineNumber: number, line: string, problem: string): never {
  throw new XGuardError(
    'ERR_INVALID_POLICY',
    `Invalid policy line ${lineNumber} ${describeValue(line)}: ${problem}`,
  );
}

/**
 * Parses a dynamic policy into its categories, in order of appearance.
 *
 * Returns an empty list for an empty or whitespace-only policy. Blank lines are allowed
 * anywhere. Throws ERR_INVALID_POLICY, naming the line number and text, for a line that is
 * neither an entry nor a criterion, and for a criterion before the first entry. It also
 * rejects an id that is neither built-in nor a single letter a-z, an id defined twice, an
 * empty name or criterion, and a NUL character. Callers enforce any maximum length.
 */
export function parsePolicy(text: string): PolicyCategory[] {
  if (typeof text !== 'string') {
    throw new XGuardError(
      'ERR_INVALID_POLICY',
      `Invalid policy ${describeValue(text)}: expected a string of "- <id>: <Name>" entries.`,
    );
  }
  if (text.includes('\0')) {
    throw new XGuardError(
      'ERR_INVALID_POLICY',
      'Invalid policy: it contains a NUL character (U+0000). Remove it.',
    );
  }

  const categories: PolicyCategory[] = [];
  const seenIds = new Set<string>();
  const lines = text.split(/\r\n|\n|\r/);

  for (const [offset, rawLine] of lines.entries()) {
    const lineNumber = offset + 1;
    if (BLANK_LINE.test(rawLine)) {
      continue;
    }
    const line = rawLine.trimEnd();

    const entry = ENTRY_LINE.exec(line);
    if (entry) {
      const id = entry[1] ?? '';
      const name = (entry[2] ?? '').trim();
      if (id === '') {
        rejectLine(lineNumber, line, `the category id is missing. ${EXPECTED_SHAPE}.`);
      }
      const isNew = !isBaseLabelId(id);
      if (isNew && !POLICY_LETTER_ID.test(id)) {
        rejectLine(
          lineNumber,
          line,
          `unknown category id ${describeValue(id)}. Use a built-in id (${LABEL_IDS.join(', ')}) to redefine a category, or a single lowercase letter a-z to add one.`,
        );
      }
      if (seenIds.has(id)) {
        rejectLine(lineNumber, line, `category id ${describeValue(id)} is already defined. Define each id once.`);
      }
      if (name === '') {
        rejectLine(lineNumber, line, `the category name is empty. Write "- ${id}: <Name>".`);
      }
      seenIds.add(id);
      categories.push({ id, name, criteria: [], isNew });
      continue;
    }

    const criterion = CRITERION_LINE.exec(line);
    if (criterion) {
      const current = categories.at(-1);
      if (current === undefined) {
        rejectLine(
          lineNumber,
          line,
          'a criterion comes before the first entry. Start with an unindented "- <id>: <Name>" line.',
        );
      }
      const criterionText = (criterion[1] ?? '').trim();
      if (criterionText === '') {
        rejectLine(lineNumber, line, 'the criterion is empty. Write text after "- " or remove the line.');
      }
      current.criteria.push(criterionText);
      continue;
    }

    rejectLine(lineNumber, line, `${EXPECTED_SHAPE}.`);
  }

  return categories;
}
