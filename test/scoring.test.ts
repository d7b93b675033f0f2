import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import type { NativeDistribution } from '../lib/native.js';
import { findReasonFirstLabel, parseExplanation, riskScoresFrom, tokenScoresFrom } from '../lib/scoring.js';

// Token texts for a made-up vocabulary, so the label search can be checked token by token.
const PIECES = new Map<number, string>([
  [1, '<'],
  [2, 'explanation'],
  [3, '>'],
  [4, '\n'],
  [5, 'The user asks'],
  [6, '</'],
  [7, 'explanation>'],
  [8, 'dw'],
  [9, '<|im_end|>'],
  [10, '>\ndw'],
  [11, ' '],
]);
const text = (token: number): string => PIECES.get(token) ?? '?';

function distribution(top: Array<[number, number]>, tracked: number[] = []): NativeDistribution {
  return {
    argmax: top[0]?.[0] ?? -1,
    topTokens: Int32Array.from(top, ([token]) => token),
    topLogprobs: Float64Array.from(top, ([, probability]) => Math.log(probability)),
    trackedLogprobs: Float64Array.from(tracked, (probability) => Math.log(probability)),
  };
}

describe('findReasonFirstLabel', () => {
  test('label after closing tag', () => {
    const generated = Int32Array.of(1, 2, 3, 4, 5, 4, 6, 7, 4, 8, 9);
    assert.equal(findReasonFirstLabel(generated, text), 9);
  });

  test('skips whitespace tokens', () => {
    const generated = Int32Array.of(1, 2, 3, 5, 6, 7, 11, 4, 11, 8, 9);
    assert.equal(findReasonFirstLabel(generated, text), 9);
  });

  test('no closing tag', () => {
    assert.equal(findReasonFirstLabel(Int32Array.of(1, 2, 3, 5, 5, 5), text), -1);
  });

  test('nothing after closing tag', () => {
    assert.equal(findReasonFirstLabel(Int32Array.of(1, 2, 3, 5, 6, 7, 4), text), -1);
  });

  test('label merged into tag token', () => {
    // "</" + "explanation" + ">\ndw": the label shares a token with the tag, so it cannot be scored.
    assert.equal(findReasonFirstLabel(Int32Array.of(5, 6, 2, 10, 9), text), -1);
  });
});

describe('parseExplanation', () => {
  test('text between tags', () => {
    assert.equal(parseExplanation('dw\n<explanation>\nAsks for a weapon.\n</explanation>'), 'Asks for a weapon.');
  });

  test('cut before closing tag', () => {
    assert.equal(parseExplanation('sec\n<explanation>\nA harmless'), 'A harmless');
  });

  test('no opening tag', () => {
    assert.equal(parseExplanation('sec'), null);
  });
});

describe('score lists', () => {
  test('risk scores sorted', () => {
    const labels = [
      { id: 'sec', category: 'Safe-Safe', token: 1 },
      { id: 'dw', category: 'Crimes and Illegal Activities-Dangerous Weapons', token: 2 },
      { id: 'a', category: 'Goods', token: 3 },
    ];
    const scores = riskScoresFrom(distribution([[2, 0.5]], [0.1, 0.5, 0.2]), labels);
    assert.deepEqual(scores.map((score) => score.id), ['dw', 'a', 'sec']);
    assert.ok(Math.abs((scores[0]?.score ?? 0) - 0.5) < 1e-12);
    assert.equal(scores[1]?.category, 'Goods');
  });

  test('token scores keep rank one', () => {
    const scores = tokenScoresFrom(distribution([[8, 0.00005], [1, 0.00002]]), text);
    assert.equal(scores.length, 1);
    assert.equal(scores[0]?.token, 'dw');
  });

  test('token scores drop small entries', () => {
    const scores = tokenScoresFrom(distribution([[8, 0.6], [1, 0.3], [2, 0.0002], [3, 0.00009], [4, 0.00005]]), text);
    assert.deepEqual(scores.map((score) => score.tokenId), [8, 1, 2]);
  });
});
