import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { XGuardError, type XGuardErrorCode } from '../lib/errors.js';
import { parsePolicy } from '../lib/policy.js';
import { LABEL_IDS, RISK_CATEGORIES, SAFE_LABEL_ID, buildLabelMap, isBaseLabelId } from '../lib/risk-map.js';

// Written out independently of lib/risk-map.ts so a typo there fails here.
const EXPECTED_LABELS: ReadonlyArray<[string, string]> = [
  ['sec', 'Safe-Safe'],
  ['pc', 'Crimes and Illegal Activities-Pornographic Contraband'],
  ['dc', 'Crimes and Illegal Activities-Drug Crimes'],
  ['dw', 'Crimes and Illegal Activities-Dangerous Weapons'],
  ['pi', 'Crimes and Illegal Activities-Property Infringement'],
  ['ec', 'Crimes and Illegal Activities-Economic Crimes'],
  ['ac', 'Hate Speech-Abusive Curses'],
  ['def', 'Hate Speech-Defamation'],
  ['ti', 'Hate Speech-Threats and Intimidation'],
  ['cy', 'Hate Speech-Cyberbullying'],
  ['ph', 'Physical and Mental Health-Physical Health'],
  ['mh', 'Physical and Mental Health-Mental Health'],
  ['se', 'Ethics and Morality-Social Ethics'],
  ['sci', 'Ethics and Morality-Science Ethics'],
  ['pp', 'Data Privacy-Personal Privacy'],
  ['cs', 'Data Privacy-Commercial Secret'],
  ['acc', 'Cybersecurity-Access Control'],
  ['mc', 'Cybersecurity-Malicious Code'],
  ['ha', 'Cybersecurity-Hacker Attack'],
  ['ps', 'Cybersecurity-Physical Security'],
  ['ter', 'Extremism-Violent Terrorist Activities'],
  ['sd', 'Extremism-Social Disruption'],
  ['ext', 'Extremism-Extremist Ideological Trends'],
  ['fin', 'Inappropriate Suggestions-Finance'],
  ['med', 'Inappropriate Suggestions-Medicine'],
  ['law', 'Inappropriate Suggestions-Law'],
  ['cm', 'Risks Involving Minors-Corruption of Minors'],
  ['ma', 'Risks Involving Minors-Minor Abuse and Exploitation'],
  ['md', 'Risks Involving Minors-Minor Delinquency'],
];

function assertXGuardError(action: () => unknown, code: XGuardErrorCode, pattern: RegExp): void {
  assert.throws(action, (error: unknown) => {
    assert.ok(error instanceof XGuardError, 'expected an XGuardError');
    assert.equal(error.code, code);
    assert.match(error.message, pattern);
    return true;
  });
}

describe('risk map', () => {
  test('29 categories', () => {
    assert.equal(RISK_CATEGORIES.length, 29);
  });

  test('label ids in order', () => {
    assert.deepEqual(LABEL_IDS, EXPECTED_LABELS.map(([id]) => id));
  });

  test('safe id is sec', () => {
    assert.equal(SAFE_LABEL_ID, 'sec');
  });

  test('label joins dimension and category', () => {
    for (const entry of RISK_CATEGORIES) {
      assert.equal(entry.label, `${entry.dimension}-${entry.category}`, entry.id);
    }
  });

  test('every id maps to its label', () => {
    const labels = buildLabelMap([]);
    for (const [id, label] of EXPECTED_LABELS) {
      assert.equal(labels.get(id), label, id);
    }
  });

  test('no extra ids without policy', () => {
    assert.equal(buildLabelMap().size, 29);
  });

  test('isBaseLabelId cases', () => {
    assert.equal(isBaseLabelId('dw'), true);
    assert.equal(isBaseLabelId('a'), false);
    assert.equal(isBaseLabelId('toString'), false);
  });

  test('policy letter gets its name', () => {
    const labels = buildLabelMap(parsePolicy('- a: Prohibited and Restricted Goods\n  - Selling pesticides without a permit.'));
    assert.equal(labels.get('a'), 'Prohibited and Restricted Goods');
  });

  test('policy letter keeps base ids', () => {
    const labels = buildLabelMap(parsePolicy('- a: Prohibited and Restricted Goods'));
    assert.equal(labels.size, 30);
    assert.equal(labels.get('sec'), 'Safe-Safe');
  });

  test('redefinition keeps base label', () => {
    const labels = buildLabelMap(parsePolicy('- dw: Weapons of Any Kind\n  - Airsoft guns count as weapons.'));
    assert.equal(labels.get('dw'), 'Crimes and Illegal Activities-Dangerous Weapons');
  });

  test('rejects invalid new id', () => {
    assertXGuardError(
      () => buildLabelMap([{ id: 'zz', name: 'Unparsed', criteria: [], isNew: true }]),
      'ERR_INVALID_POLICY',
      /Invalid policy category id "zz"/,
    );
  });

  test('rejects duplicate new id', () => {
    const entry = { id: 'q', name: 'Twice', criteria: [], isNew: true };
    assertXGuardError(() => buildLabelMap([entry, entry]), 'ERR_INVALID_POLICY', /Duplicate policy category id "q"/);
  });
});
