import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { XGuardError } from '../lib/errors.js';
import { parsePolicy } from '../lib/policy.js';

/** Asserts that `parsePolicy(text)` throws ERR_INVALID_POLICY with a message matching `pattern`. */
function assertRejected(text: unknown, pattern: RegExp): void {
  assert.throws(
    () => parsePolicy(text as string),
    (error: unknown) => {
      assert.ok(error instanceof XGuardError, 'expected an XGuardError');
      assert.equal(error.code, 'ERR_INVALID_POLICY');
      assert.match(error.message, pattern);
      return true;
    },
  );
}

describe('parsePolicy', () => {
  test('redefinition and new letter', () => {
    const policy = [
      '- dw: Dangerous Weapons',
      '  - Instructions for assembling firearms.',
      '  - Sources for untraceable ammunition.',
      '- a: Prohibited and Restricted Goods',
      '  - Selling licensed goods without a licence.',
    ].join('\n');
    assert.deepEqual(parsePolicy(policy), [
      {
        id: 'dw',
        name: 'Dangerous Weapons',
        criteria: ['Instructions for assembling firearms.', 'Sources for untraceable ammunition.'],
        isNew: false,
      },
      {
        id: 'a',
        name: 'Prohibited and Restricted Goods',
        criteria: ['Selling licensed goods without a licence.'],
        isNew: true,
      },
    ]);
  });

  test('empty policy', () => {
    assert.deepEqual(parsePolicy(''), []);
  });

  test('whitespace-only policy', () => {
    assert.deepEqual(parsePolicy('  \n\t\n  '), []);
  });

  test('blank lines allowed', () => {
    const categories = parsePolicy('\n- b: Spam\n\n   \n  - Bulk advertising.\n\n- c: Gambling\n');
    assert.deepEqual(
      categories.map((entry) => [entry.id, entry.criteria]),
      [
        ['b', ['Bulk advertising.']],
        ['c', []],
      ],
    );
  });

  test('CRLF line endings', () => {
    const [entry] = parsePolicy('- z: Crypto Scams\r\n  - Fake token sales.\r\n');
    assert.deepEqual(entry, { id: 'z', name: 'Crypto Scams', criteria: ['Fake token sales.'], isNew: true });
  });

  test('tab-indented criterion', () => {
    const [entry] = parsePolicy('- fin: Finance\n\t- Guaranteed returns.');
    assert.deepEqual(entry?.criteria, ['Guaranteed returns.']);
  });

  test('name containing colon', () => {
    const [entry] = parsePolicy('- d: Scams: online and offline');
    assert.equal(entry?.name, 'Scams: online and offline');
  });

  test('name and criterion trimmed', () => {
    const [entry] = parsePolicy('- e:   Hoaxes   \n    -   Fake news.   ');
    assert.equal(entry?.name, 'Hoaxes');
    assert.deepEqual(entry?.criteria, ['Fake news.']);
  });

  test('sec can be redefined', () => {
    const [entry] = parsePolicy('- sec: Safe\n  - Cooking questions are safe.');
    assert.equal(entry?.isNew, false);
  });

  test('rejects unknown multi-letter id', () => {
    assertRejected('- xx: Something', /Invalid policy line 1 "- xx: Something": unknown category id "xx"/);
    assertRejected('- xx: Something', /single lowercase letter a-z/);
  });

  test('rejects uppercase letter id', () => {
    assertRejected('- A: Something', /unknown category id "A"/);
  });

  test('rejects digit id', () => {
    assertRejected('- 1: Something', /unknown category id "1"/);
  });

  test('rejects duplicate id', () => {
    assertRejected('- a: One\n  - x\n- a: Two', /Invalid policy line 3 "- a: Two": category id "a" is already defined/);
  });

  test('rejects duplicate built-in id', () => {
    assertRejected('- dw: Weapons\n- dw: Weapons again', /line 2 .*"dw" is already defined/);
  });

  test('rejects empty name', () => {
    assertRejected('- a:   ', /Invalid policy line 1 "- a:": the category name is empty/);
  });

  test('rejects missing id', () => {
    assertRejected('- : Nameless', /the category id is missing/);
  });

  test('rejects criterion before entry', () => {
    assertRejected('\n  - Orphan criterion.', /Invalid policy line 2 "  - Orphan criterion.": a criterion comes before the first entry/);
  });

  test('rejects empty criterion', () => {
    assertRejected('- a: One\n  -', /line 2 "  -": the criterion is empty/);
  });

  test('rejects prose line', () => {
    assertRejected('- a: One\nBlock anything about lockpicking.', /line 2 "Block anything about lockpicking.": Expected an unindented entry line/);
  });

  test('rejects indented prose line', () => {
    assertRejected('- a: One\n  continuation text', /line 2 "  continuation text": Expected/);
  });

  test('rejects indented entry', () => {
    assertRejected('  - a: One', /line 1 "  - a: One": a criterion comes before the first entry/);
  });

  test('rejects entry without colon', () => {
    assertRejected('- a One', /line 1 "- a One": Expected an unindented entry line "- <id>: <Name>"/);
  });

  test('rejects other bullet', () => {
    assertRejected('* a: One', /line 1 "\* a: One": Expected/);
  });

  test('rejects NUL', () => {
    assertRejected('- a: One\0', /NUL character/);
  });

  test('rejects non-string', () => {
    assertRejected(42, /Invalid policy 42: expected a string/);
  });
});
