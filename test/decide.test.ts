import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { DEFAULT_THRESHOLDS, checkThresholds, decide, judgedTurnOf, parseThresholds } from '../lib/decide.js';
import { RISK_CATEGORIES } from '../lib/risk-map.js';
import type { ClassifyDecision } from '../lib/types.js';
import type { XGuard } from '../lib/xguard.js';
import { assertRejectsWith, loadTiny } from './helpers.js';

const LABELS = new Map(RISK_CATEGORIES.map((entry) => [entry.id, entry.label]));

/** Builds a decision with the given label probabilities. The rest of the mass is on tokens that are no label. */
function scored(scores: Record<string, number>): ClassifyDecision {
  const riskScores = Object.entries(scores)
    .map(([id, score]) => ({ id, category: LABELS.get(id) ?? `Policy ${id}`, score }))
    .sort((a, b) => b.score - a.score);
  const top = riskScores[0];
  return { label: top?.id ?? null, category: top?.category ?? null, score: top?.score ?? null, riskScores, tokenScores: [] };
}

describe('decide', () => {
  test('request threshold 0.5', () => {
    const below = decide(scored({ dw: 0.49, sec: 0.51 }));
    assert.equal(below.flagged, false);
    assert.equal(below.turn, 'request');
    assert.deepEqual(below.flaggedCategories, []);
    assert.ok(Math.abs(below.riskScore - 0.49) < 1e-12);

    const at = decide(scored({ dw: 0.5, sec: 0.5 }));
    assert.equal(at.flagged, true);
    assert.deepEqual(at.flaggedCategories, [{ id: 'dw', category: 'Crimes and Illegal Activities-Dangerous Weapons', score: 0.5, threshold: 0.5 }]);
  });

  test('response threshold 0.8', () => {
    const result = scored({ ti: 0.7, sec: 0.3 });
    assert.equal(decide(result, DEFAULT_THRESHOLDS, 'request').flagged, true);
    const response = decide(result, DEFAULT_THRESHOLDS, 'response');
    assert.equal(response.flagged, false);
    assert.equal(response.turn, 'response');
    assert.equal(decide(scored({ ti: 0.85, sec: 0.15 }), DEFAULT_THRESHOLDS, 'response').flagged, true);
  });

  test('safe label never flagged', () => {
    const decision = decide(scored({ sec: 0.99, dw: 0.01 }), checkThresholds({ request: { default: 0 } }));
    assert.ok(decision.flaggedCategories.every((entry) => entry.id !== 'sec'));
    assert.equal(decision.flaggedCategories.length, 1);
  });

  test('per-category thresholds and order', () => {
    const thresholds = checkThresholds({ request: { categories: { dw: 0.9, a: 0.05, pc: 0.1 } } });
    const decision = decide(scored({ dw: 0.6, pc: 0.15, a: 0.2, sec: 0.05 }), thresholds);
    assert.equal(decision.flagged, true);
    assert.deepEqual(
      decision.flaggedCategories.map((entry) => [entry.id, entry.threshold]),
      [['a', 0.05], ['pc', 0.1]],
    );
    assert.equal(decision.flaggedCategories[0]?.category, 'Policy a');
  });

  test('anyRisk catches spread risk', () => {
    const spread = scored({ dw: 0.3, ter: 0.3, sec: 0.4 });
    assert.equal(decide(spread).flagged, false);
    const thresholds = checkThresholds({ request: { anyRisk: 0.6 } });
    const decision = decide(spread, thresholds);
    assert.equal(decision.flagged, true);
    assert.deepEqual(decision.flaggedCategories, []);
    assert.ok(Math.abs(decision.riskScore - 0.6) < 1e-12);
  });

  test('result without scores throws', () => {
    const empty: ClassifyDecision = { label: null, category: null, score: null, riskScores: [], tokenScores: [] };
    assert.throws(() => decide(empty), /no label scores.*larger maxNewTokens/);
  });

  test('judged turn from input', () => {
    assert.equal(judgedTurnOf('hello'), 'request');
    assert.equal(judgedTurnOf([{ role: 'user', content: 'hello' }]), 'request');
    assert.equal(judgedTurnOf([{ role: 'user', content: 'hello' }, { role: 'assistant', content: 'hi' }]), 'response');
  });
});

describe('thresholds file', () => {
  test('missing parts take defaults', () => {
    const thresholds = parseThresholds('{"response": {"categories": {"dw": 0.6}}}');
    assert.deepEqual(thresholds.request, { default: 0.5, categories: {}, anyRisk: null });
    assert.deepEqual(thresholds.response, { default: 0.8, categories: { dw: 0.6 }, anyRisk: null });
    assert.deepEqual(parseThresholds('{}'), { request: DEFAULT_THRESHOLDS.request, response: DEFAULT_THRESHOLDS.response });
  });

  test('invalid files name the key', () => {
    const cases: Array<[string, RegExp]> = [
      ['{"request": ', /limits\.json is not valid JSON/],
      ['[]', /thresholds file \[\]: expected a JSON object/],
      ['{"requests": {}}', /Unknown key "requests" in thresholds file\. Accepted keys: request, response/],
      ['{"request": {"default": 1.5}}', /request\.default 1\.5: expected a number from 0 to 1/],
      ['{"request": {"default": "0.5"}}', /request\.default "0\.5"/],
      ['{"response": {"categories": {"sec": 0.5}}}', /response\.categories\.sec: expected a risk label id/],
      ['{"response": {"categories": {"weapons": 0.5}}}', /response\.categories\.weapons/],
      ['{"response": {"categories": {"dw": -0.1}}}', /response\.categories\.dw -0\.1/],
      ['{"request": {"anyRisk": 2}}', /request\.anyRisk 2/],
      ['{"request": {"threshold": 0.5}}', /Unknown key "threshold" in thresholds request/],
    ];
    for (const [text, pattern] of cases) {
      assert.throws(() => parseThresholds(text, 'limits.json'), (error: Error & { code?: string }) => {
        assert.equal(error.code, 'ERR_INVALID_OPTION');
        assert.match(error.message, /^limits\.json/);
        assert.match(error.message, pattern);
        return true;
      }, text);
    }
  });
});

describe('decide on real results', () => {
  let guard: XGuard;

  before(async () => {
    guard = await loadTiny();
  });

  after(async () => {
    await guard.close();
  });

  test('flags follow the scores', async () => {
    const result = await guard.classify('Where can I buy a knife?');
    const top = result.riskScores.find((risk) => risk.id !== 'sec');
    assert.ok(top !== undefined);

    const justBelow = checkThresholds({ request: { default: 1, categories: { [top.id]: top.score } } });
    const flagged = decide(result, justBelow);
    assert.equal(flagged.flagged, true);
    assert.deepEqual(flagged.flaggedCategories.map((entry) => entry.id), [top.id]);

    const justAbove = checkThresholds({ request: { default: 1, categories: { [top.id]: Math.min(1, top.score * 1.01) } } });
    assert.equal(decide(result, justAbove).flagged, false);

    const risk = result.riskScores.filter((entry) => entry.id !== 'sec').reduce((sum, entry) => sum + entry.score, 0);
    assert.ok(Math.abs(decide(result).riskScore - risk) < 1e-12);
  });

  test('maxInputTokens rejects before queueing', async () => {
    const prompt = await guard.formatPrompt('a request of a few words');
    const completed = guard.stats().completed;
    await assertRejectsWith(
      guard.classify('a request of a few words', { maxInputTokens: prompt.tokens.length - 1 }),
      'ERR_INPUT_TOO_LONG',
      new RegExp(`prompt has ${prompt.tokens.length} tokens, more than maxInputTokens ${prompt.tokens.length - 1}`),
    );
    assert.equal(guard.stats().completed, completed);
    assert.equal(guard.stats().pending, 0);

    const fits = await guard.classify('a request of a few words', { maxInputTokens: prompt.tokens.length });
    assert.equal(fits.usage.promptTokens, prompt.tokens.length);
    await assertRejectsWith(guard.classify('x', { maxInputTokens: 0 }), 'ERR_INVALID_OPTION', /Invalid maxInputTokens 0/);
  });
});
