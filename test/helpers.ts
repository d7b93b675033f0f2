// Shared set-up for tests that run the real addon on the generated tiny model.

import assert from 'node:assert/strict';

import { XGuardError, type XGuardErrorCode } from '../lib/errors.js';
import type { LoadOptions } from '../lib/options.js';
import { ensureTestModel } from '../lib/test-model/cache.js';
import { XGuard } from '../lib/xguard.js';

/** Path of the tiny test model, generated on first use. */
export function tinyModelPath(): Promise<string> {
  return ensureTestModel('tiny');
}

// One thread: ggml's worker threads spin while they wait, so two threads on a busy two-core
// machine can run a hundred times slower than one.
export async function loadTiny(options: LoadOptions = {}): Promise<XGuard> {
  return XGuard.load(await tinyModelPath(), { threads: 1, ...options });
}

/** Asserts that `promise` rejects with an XGuardError of `code` whose message matches `pattern`. */
export async function assertRejectsWith(promise: Promise<unknown>, code: XGuardErrorCode, pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof XGuardError, `expected an XGuardError, got ${String(error)}`);
    assert.equal(error.code, code);
    assert.match(error.message, pattern);
    return true;
  });
}

/**
 * Compares two distributions given as token -> log probability maps: the same top-1, and
 * |delta log p| <= tolerance for every token with p >= minProbability in either.
 */
export function assertSameDistribution<Key>(
  actual: Map<Key, number>,
  expected: Map<Key, number>,
  tolerance = 0.03,
  minProbability = 1e-3,
): number {
  const top = (map: Map<Key, number>): Key => [...map.entries()].reduce((a, b) => (b[1] > a[1] ? b : a))[0];
  assert.equal(top(actual), top(expected), 'top-1 token differs');

  let compared = 0;
  let largest = 0;
  for (const [token, logprob] of expected) {
    const other = actual.get(token);
    if (Math.exp(logprob) < minProbability && (other === undefined || Math.exp(other) < minProbability)) {
      continue;
    }
    assert.ok(other !== undefined, `token ${String(token)} (p=${Math.exp(logprob)}) missing from the actual distribution`);
    const delta = Math.abs(other - logprob);
    assert.ok(delta <= tolerance, `token ${String(token)}: log p ${other} vs ${logprob}, beyond ${tolerance}`);
    largest = Math.max(largest, delta);
    compared++;
  }
  assert.ok(compared >= 3, `only ${compared} tokens had p >= ${minProbability}: the check is blind`);
  return largest;
}

/** Maps each label id of a result to its log probability. */
export function labelLogprobs(result: { riskScores: Array<{ id: string; score: number }> }): Map<string, number> {
  return new Map(result.riskScores.map((risk) => [risk.id, Math.log(risk.score)]));
}
