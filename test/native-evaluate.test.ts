import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { loadAddon, type NativeContext, type NativeDistribution, type NativeModel } from '../lib/native.js';
import { LABEL_IDS } from '../lib/risk-map.js';
import type { XGuard } from '../lib/xguard.js';
import { assertSameDistribution, loadTiny, tinyModelPath } from './helpers.js';

// Distributions from three paths: our extractor with a cached prefix, our extractor decoding
// cold, and llama.cpp's plain logits row turned into a softmax here in JS.

function extractorMap(step: NativeDistribution, tracked: Int32Array): Map<number, number> {
  const map = new Map<number, number>();
  step.topTokens.forEach((token, rank) => map.set(token, step.topLogprobs[rank] as number));
  tracked.forEach((token, index) => map.set(token, step.trackedLogprobs[index] as number));
  return map;
}

function softmaxMap(logits: Float32Array, tokens: Iterable<number>): Map<number, number> {
  let max = Number.NEGATIVE_INFINITY;
  for (const value of logits) max = Math.max(max, value);
  let sum = 0;
  for (const value of logits) sum += Math.exp(value - max);
  const logNormalizer = max + Math.log(sum);
  const map = new Map<number, number>();
  for (const token of tokens) map.set(token, (logits[token] as number) - logNormalizer);
  return map;
}

describe('native evaluate', () => {
  let guard: XGuard;
  let model: NativeModel;
  let cold: NativeContext;
  let warm: NativeContext;
  let labelTokens: Int32Array;

  before(async () => {
    guard = await loadTiny();
    model = await loadAddon().loadModel(await tinyModelPath(), {});
    cold = await model.createContext({ threads: 1 });
    warm = await model.createContext({ threads: 1 });
    labelTokens = Int32Array.from(LABEL_IDS, (id) => model.tokenize(id, false, false)[0] as number);
  });

  after(async () => {
    await cold.dispose();
    await warm.dispose();
    model.dispose();
    await guard.close();
  });

  test('cached prefix matches cold decode', async () => {
    const first = await guard.formatPrompt('How do I sharpen a kitchen knife?');
    const second = await guard.formatPrompt('Write a poem about the sea.');

    await warm.evaluate({ tokens: first.tokens, tracked: labelTokens, topK: 50 });
    const cached = await warm.evaluate({ tokens: second.tokens, tracked: labelTokens, topK: 50 });
    assert.ok(cached.reusedTokens > 200, `reused only ${cached.reusedTokens} tokens`);
    assert.ok(cached.decodedTokens < 20, `decoded ${cached.decodedTokens} tokens`);

    const fresh = await cold.evaluate({ tokens: second.tokens, tracked: labelTokens, topK: 50, reference: false });
    const coldContext = await model.createContext({ threads: 1 });
    const uncached = await coldContext.evaluate({ tokens: second.tokens, tracked: labelTokens, topK: 50 });
    await coldContext.dispose();
    assert.equal(uncached.reusedTokens, 0);
    assert.equal(uncached.decodedTokens, second.tokens.length);

    const cachedStep = cached.steps[0] as NativeDistribution;
    const uncachedStep = uncached.steps[0] as NativeDistribution;
    assertSameDistribution(extractorMap(cachedStep, labelTokens), extractorMap(uncachedStep, labelTokens));
    assert.equal(fresh.steps.length, 1);

    // The tolerance must be able to tell different inputs apart, or the check above is blind.
    const firstCold = await cold.evaluate({ tokens: first.tokens, tracked: labelTokens, topK: 50 });
    const firstStep = firstCold.steps[0] as NativeDistribution;
    const largestGap = Math.max(
      ...[...firstStep.trackedLogprobs].map((logprob, index) => Math.abs(logprob - (uncachedStep.trackedLogprobs[index] as number))),
    );
    assert.ok(largestGap > 0.03, `two different inputs differ by only ${largestGap} in log p`);
  });

  test('extractor matches full logits softmax', async () => {
    const prompt = await guard.formatPrompt([
      { role: 'user', content: 'Can you tell me how to pick a lock?' },
      { role: 'assistant', content: 'I cannot help with that.' },
    ]);
    const reference = await cold.evaluate({ tokens: prompt.tokens, reference: true });
    assert.ok(reference.logits instanceof Float32Array);
    assert.equal(reference.logits.length, model.metadata().vocabularySize);

    const extracted = await warm.evaluate({ tokens: prompt.tokens, tracked: labelTokens, topK: 50 });
    const step = extracted.steps[0] as NativeDistribution;
    const tokens = new Set<number>([...step.topTokens, ...labelTokens]);
    assertSameDistribution(extractorMap(step, labelTokens), softmaxMap(reference.logits, tokens));
  });

  test('top-k sorted and normalized', async () => {
    const prompt = await guard.formatPrompt('Hello there');
    const result = await cold.evaluate({ tokens: prompt.tokens, topK: 1000 });
    const step = result.steps[0] as NativeDistribution;
    assert.equal(step.topTokens.length, 1000);
    for (let i = 1; i < step.topLogprobs.length; i++) {
      assert.ok((step.topLogprobs[i] as number) <= (step.topLogprobs[i - 1] as number), `rank ${i} out of order`);
    }
    assert.equal(step.argmax, step.topTokens[0]);
    const mass = step.topLogprobs.reduce((sum, logprob) => sum + Math.exp(logprob), 0);
    assert.ok(mass > 0, `top-1000 mass ${mass}`);
    assert.ok(mass <= 1 + 1e-9, `top-1000 mass ${mass}`);
    assert.ok(Math.exp(step.topLogprobs[0] as number) > 0.01, 'the test model output is too flat for parity checks');
  });

  test('greedy continuation reports each step', async () => {
    const prompt = await guard.formatPrompt('Tell me a joke');
    const result = await cold.evaluate({ tokens: prompt.tokens, tracked: labelTokens, maxNewTokens: 6, allSteps: true });
    assert.equal(result.generated.length, 6);
    assert.equal(result.stopReason, 'max_tokens');
    assert.equal(result.steps.length, 6);
    result.steps.forEach((step, index) => assert.equal(step.argmax, result.generated[index], `step ${index}`));
    assert.equal(result.decodedTokens, prompt.tokens.length - result.reusedTokens + 5);
  });

  test('greedy continuation matches stepwise decode', async () => {
    const prompt = await guard.formatPrompt('Tell me a story about a dragon');
    const run = await warm.evaluate({ tokens: prompt.tokens, maxNewTokens: 4 });
    const extended = Int32Array.from([...prompt.tokens, ...run.generated.slice(0, 3)]);
    const step = await cold.evaluate({ tokens: extended });
    assert.equal(step.steps[0]?.argmax, run.generated[3]);
  });

  test('stop token ends generation', async () => {
    const prompt = await guard.formatPrompt('Tell me a joke');
    const probe = await cold.evaluate({ tokens: prompt.tokens, maxNewTokens: 3 });
    const stopAt = probe.generated[1] as number;
    const result = await cold.evaluate({ tokens: prompt.tokens, maxNewTokens: 10, stopTokens: Int32Array.of(stopAt) });
    assert.equal(result.stopReason, 'stop_token');
    assert.ok(result.generated.length <= 2);
  });

  test('rejects tokens outside vocabulary', async () => {
    await assert.rejects(cold.evaluate({ tokens: Int32Array.of(1, 2, 999999) }), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'ERR_INVALID_INPUT');
      assert.match(error.message, /tokens\[2\] is 999999/);
      return true;
    });
    await assert.rejects(cold.evaluate({ tokens: Int32Array.of(-1) }), /outside the vocabulary/);
    await assert.rejects(cold.evaluate({ tokens: new Int32Array(0) }), /tokens is empty/);
  });

  test('rejects prompt longer than context', async () => {
    const small = await model.createContext({ threads: 1, contextSize: 256 });
    try {
      const size = small.info().contextSize;
      const tokens = new Int32Array(size + 1).fill(100);
      await assert.rejects(small.evaluate({ tokens }), (error: Error & { code?: string }) => {
        assert.equal(error.code, 'ERR_CONTEXT_OVERFLOW');
        assert.match(error.message, new RegExp(`${size + 1} tokens but the context holds ${size}`));
        return true;
      });
      const fits = await small.evaluate({ tokens: tokens.subarray(0, size) });
      assert.equal(fits.promptTokens, size);
    } finally {
      await small.dispose();
    }
  });

  test('generation stops at full context', async () => {
    const small = await model.createContext({ threads: 1, contextSize: 256 });
    try {
      const size = small.info().contextSize;
      const result = await small.evaluate({ tokens: new Int32Array(size - 8).fill(100), maxNewTokens: 50 });
      assert.equal(result.stopReason, 'context_full');
      assert.equal(result.generated.length, 9);
    } finally {
      await small.dispose();
    }
  });

  test('rejects invalid options', async () => {
    const tokens = Int32Array.of(100, 200);
    await assert.rejects(cold.evaluate({ tokens, topK: -1 }), /topK must be an integer/);
    await assert.rejects(cold.evaluate({ tokens, maxNewTokens: 1.5 }), /maxNewTokens must be an integer/);
    await assert.rejects(model.createContext({ contextSize: 10 }), /contextSize must be an integer from 64/);
    await assert.rejects(model.createContext({ batchSize: 0 }), /batchSize must be an integer from 1/);
  });

  test('disposed context rejects evaluate', async () => {
    const context = await model.createContext({ threads: 1 });
    await context.dispose();
    await context.dispose();
    await assert.rejects(context.evaluate({ tokens: Int32Array.of(1) }), /context was disposed/);
    assert.equal(context.info().disposed, true);
  });
});
