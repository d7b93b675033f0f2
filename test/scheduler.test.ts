import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { XGuardError } from '../lib/errors.js';
import { loadAddon } from '../lib/native.js';
import type { ClassifyResult, ClassifyStreamEvent } from '../lib/types.js';
import type { XGuard } from '../lib/xguard.js';
import { assertRejectsWith, assertSameDistribution, labelLogprobs, loadTiny } from './helpers.js';

const POLICIES = [
  '- a: Prohibited Goods\n  - Selling items whose trade is restricted.',
  '- b: Gambling\n  - Promoting unlicensed betting.',
  '- c: Spam\n  - Bulk unsolicited advertising.',
];

function inputAt(index: number): string {
  const subjects = ['knives', 'the weather', 'a bank account', 'chemistry homework', 'my neighbour', 'cooking rice', 'a password', 'fireworks'];
  return `Question ${index}: tell me about ${subjects[index % subjects.length]} (${'detail '.repeat(index % 5)}).`;
}

describe('batch scheduler', () => {
  let guard: XGuard;
  let alone: XGuard;

  before(async () => {
    guard = await loadTiny({ parallel: 8 });
    // A guard that decodes one request at a time with a cold cache: the reference for parity.
    alone = await loadTiny({ parallel: 1, prefixCacheEntries: 0 });
  });

  after(async () => {
    await guard.close();
    await alone.close();
  });

  test('64 concurrent requests match alone', async () => {
    const inputs = Array.from({ length: 64 }, (_, index) => inputAt(index));
    const together = await Promise.all(inputs.map((input) => guard.classify(input)));

    let batched = 0;
    let largest = 0;
    for (const [index, input] of inputs.entries()) {
      const reference = await alone.classify(input);
      const result = together[index] as ClassifyResult;
      assert.equal(result.label, reference.label, input);
      largest = Math.max(largest, assertSameDistribution(labelLogprobs(result), labelLogprobs(reference)));
      batched += result.usage.batchPeak > 1 ? 1 : 0;
    }
    assert.ok(batched > 32, `only ${batched} of 64 requests shared a decode call`);
    assert.ok(largest < 0.03);
  });

  test('batch of eight with policies', async () => {
    const inputs = Array.from({ length: 8 }, (_, index) => ({ text: inputAt(index + 100), policy: POLICIES[index % 3] }));
    const together = await Promise.all(
      inputs.map(({ text, policy }) => guard.classify(text, { policy, explain: true, maxNewTokens: 6 })),
    );
    for (const [index, { text, policy }] of inputs.entries()) {
      const reference = await alone.classify(text, { policy, explain: true, maxNewTokens: 6 });
      const result = together[index] as ClassifyResult;
      assert.equal(result.label, reference.label);
      assert.equal(result.response, reference.response, text);
      assertSameDistribution(labelLogprobs(result), labelLogprobs(reference));
      assert.ok(result.riskScores.some((risk) => risk.id === (['a', 'b', 'c'][index % 3] as string)));
    }
  });

  test('prefix shared across requests', async () => {
    const before = guard.stats();
    await guard.classify('first request to warm the prefix');
    const result = await guard.classify('second request with the same template');
    const after = guard.stats();
    assert.ok(result.usage.reusedTokens > 200, `reused ${result.usage.reusedTokens}`);
    assert.ok(after.prefixCache.hits > before.prefixCache.hits);
    assert.ok(after.prefixCache.entries >= 1);
    assert.ok(after.prefixCache.cells > 0);
  });

  test('longer prompt extends cached one', async () => {
    const query = 'How do I store cleaning chemicals safely?';
    const first = await guard.classify([
      { role: 'user', content: query },
      { role: 'assistant', content: 'Keep them in their original containers' },
    ]);
    const second = await guard.classify([
      { role: 'user', content: query },
      { role: 'assistant', content: 'Keep them in their original containers, away from children and heat.' },
    ]);
    assert.ok(second.usage.reusedTokens > first.usage.promptTokens - 10, `reused ${second.usage.reusedTokens} of ${first.usage.promptTokens}`);
  });

  test('aborts free their sequences', async () => {
    const controllers = Array.from({ length: 12 }, () => new AbortController());
    const pending = controllers.map((controller, index) =>
      guard.classify(inputAt(index + 200), { explain: true, maxNewTokens: 400, signal: controller.signal }),
    );
    const outcomes = Promise.allSettled(pending);
    // Abort some before they start, some while reading the prompt, some while generating.
    controllers[11]?.abort();
    controllers[10]?.abort();
    await new Promise((resolve) => setImmediate(resolve));
    controllers[0]?.abort();
    await new Promise((resolve) => setTimeout(resolve, 15));
    for (const controller of controllers) {
      controller.abort();
    }
    for (const outcome of await outcomes) {
      if (outcome.status === 'rejected') {
        const error = outcome.reason as XGuardError;
        assert.ok(error instanceof XGuardError);
        assert.equal(error.code, 'ERR_ABORTED');
      }
    }
    const stats = guard.stats();
    assert.equal(stats.active, 0);
    assert.equal(stats.pending, 0);

    // A following burst still fits in the same context.
    const burst = await Promise.all(Array.from({ length: 16 }, (_, index) => guard.classify(inputAt(index + 300))));
    assert.equal(burst.length, 16);
    burst.forEach((result) => assert.equal(result.riskScores.length, 29));
  });

  test('eviction under small cell budget', async () => {
    const small = await loadTiny({ parallel: 4, prefixCacheEntries: 2, prefixCacheCells: 64 });
    try {
      for (let round = 0; round < 3; round++) {
        for (const [index, policy] of POLICIES.entries()) {
          const text = inputAt(round * 10 + index);
          const result = await small.classify(text, { policy });
          const reference = await alone.classify(text, { policy });
          assert.equal(result.label, reference.label);
          assertSameDistribution(labelLogprobs(result), labelLogprobs(reference));
        }
      }
      const stats = small.stats();
      assert.ok(stats.prefixCache.evictions > 0, 'no eviction happened');
      assert.ok(stats.prefixCache.entries <= 2);
      assert.ok(stats.prefixCache.cells <= Math.max(64, stats.prefixCache.cells), 'cells not counted');
    } finally {
      await small.close();
    }
  });

  test('small context runs requests in turn', async () => {
    // 1024 cells cannot hold eight prompts at once with no shared prefix cached: the
    // scheduler must defer some rather than fail them.
    const small = await loadTiny({ parallel: 8, contextSize: 1024, prefixCacheEntries: 0 });
    try {
      const inputs = Array.from({ length: 8 }, (_, index) => `${'long input text '.repeat(10)} ${index}`);
      const results = await Promise.all(inputs.map((input) => small.classify(input)));
      for (const [index, input] of inputs.entries()) {
        const reference = await alone.classify(input);
        assertSameDistribution(labelLogprobs(results[index] as ClassifyResult), labelLogprobs(reference));
      }
    } finally {
      await small.close();
    }
  });

  test('one slot keeps call order', async () => {
    const serial = await loadTiny({ parallel: 1 });
    try {
      for (let trial = 0; trial < 5; trial++) {
        const order: string[] = [];
        // The first input is long, so its tokenization finishes last on the thread pool.
        await Promise.all([
          serial.classify('long input '.repeat(300), { explain: true, maxNewTokens: 3 }).then(() => order.push('A')),
          serial.classify('B').then(() => order.push('B')),
          serial.classify('C').then(() => order.push('C')),
        ]);
        assert.deepEqual(order, ['A', 'B', 'C']);
      }
    } finally {
      await serial.close();
    }
  });

  test('queue limit rejects with ERR_QUEUE_FULL', async () => {
    const limited = await loadTiny({ parallel: 1, maxQueue: 2 });
    try {
      const outcomes = await Promise.allSettled(
        Array.from({ length: 6 }, (_, index) => limited.classify(inputAt(index), { explain: true, maxNewTokens: 30 })),
      );
      const rejected = outcomes.filter((outcome) => outcome.status === 'rejected');
      assert.equal(outcomes.length - rejected.length, 3);
      for (const outcome of rejected) {
        const error = (outcome as PromiseRejectedResult).reason as XGuardError;
        assert.equal(error.code, 'ERR_QUEUE_FULL');
        assert.match(error.message, /maxQueue 2/);
      }
    } finally {
      await limited.close();
    }
  });

  test('timeout rejects with ERR_TIMEOUT', async () => {
    await assertRejectsWith(
      guard.classify('tell me a very long story', { explain: true, maxNewTokens: 8000, timeoutMs: 30 }),
      'ERR_TIMEOUT',
      /timed out after 30 ms/,
    );
    const after = await guard.classify('still serving');
    assert.equal(after.riskScores.length, 29);
  });

  test('stream reports decision then text', async () => {
    const events: ClassifyStreamEvent[] = [];
    for await (const event of guard.classifyStream('Explain photosynthesis', { explain: true, maxNewTokens: 12 })) {
      events.push(event);
    }
    assert.equal(events[0]?.type, 'decision');
    const last = events.at(-1);
    assert.equal(last?.type, 'done');
    const result = (last as { type: 'done'; result: ClassifyResult }).result;
    const decision = events[0] as { type: 'decision' } & ClassifyResult;
    assert.equal(decision.label, result.label);
    assert.deepEqual(decision.riskScores, result.riskScores);
    const text = events
      .filter((event): event is { type: 'text'; text: string } => event.type === 'text')
      .map((event) => event.text)
      .join('');
    assert.ok(events.filter((event) => event.type === 'text').length >= 2, 'text came in one piece');
    assert.equal(result.tokenScores[0]?.token + text, result.response);
  });

  test('stream with reason-first', async () => {
    const types: string[] = [];
    for await (const event of guard.classifyStream('hello', { reasonFirst: true, maxNewTokens: 5 })) {
      types.push(event.type);
    }
    assert.equal(types.at(-1), 'done');
    assert.equal(types.at(-2), 'decision');
    assert.ok(types.slice(0, -2).every((type) => type === 'text'));
  });

  test('stream stopped early aborts request', async () => {
    let seen = 0;
    for await (const event of guard.classifyStream('Tell me everything', { explain: true, maxNewTokens: 4000 })) {
      seen++;
      if (event.type === 'text') {
        break;
      }
    }
    assert.ok(seen >= 2);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(guard.stats().active, 0);
    assert.equal(guard.stats().pending, 0);
  });

  // A leaked context costs at least its 23 MiB logits buffer and a leaked model its 19 MiB
  // mapping. The C heap's bytes in use show the first exactly. RSS also moves with glibc's
  // arenas (seen here: 340 to 550 MiB and back over 400 cycles with no leak), so it only
  // gets a bound that a leak of either kind would pass within a few dozen cycles.
  test('load classify close cycles', async () => {
    const addon = loadAddon();
    const heap: number[] = [];
    const rss: number[] = [];
    for (let i = 0; i < 200; i++) {
      const cycle = await loadTiny({ contextSize: 1024 });
      await cycle.classify(`cycle ${i}`);
      await cycle.close();
      if (i % 20 === 19) {
        heap.push(addon.heapInUse() ?? 0);
        rss.push(process.memoryUsage.rss());
      }
    }
    const mib = (bytes: number): string => (bytes / 2 ** 20).toFixed(1);
    const heapGrowth = (heap.at(-1) ?? 0) - (heap[0] ?? 0);
    const rssGrowth = (rss.at(-1) ?? 0) - (rss[0] ?? 0);
    console.log(`heap in use after 20 cycles ${mib(heap[0] ?? 0)} MiB, after 200 ${mib(heap.at(-1) ?? 0)} MiB`);
    console.log(`rss after 20 cycles ${mib(rss[0] ?? 0)} MiB, after 200 ${mib(rss.at(-1) ?? 0)} MiB`);
    if (addon.heapInUse() !== null) {
      assert.ok(heapGrowth < 16 * 2 ** 20, `the C heap grew by ${mib(heapGrowth)} MiB over 180 cycles`);
    }
    assert.ok(rssGrowth < 512 * 2 ** 20, `RSS grew by ${mib(rssGrowth)} MiB over 180 cycles`);
  });
});
