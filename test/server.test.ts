import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { RISK_CATEGORIES } from '../lib/risk-map.js';
import type { RunningServer } from '../lib/server/server.js';
import type { ClassifyResult } from '../lib/types.js';
import type { XGuard } from '../lib/xguard.js';
import { assertSameDistribution, labelLogprobs, loadTiny } from './helpers.js';
import { assertError, metricValue, parseSse, send, startTinyServer, waitFor } from './server-helpers.js';

const RISK_NAMES = RISK_CATEGORIES.filter((entry) => entry.id !== 'sec').map((entry) => entry.label);

describe('HTTP server', () => {
  let server: RunningServer;
  let direct: XGuard;
  let url: string;

  before(async () => {
    server = await startTinyServer({ load: { threads: 1, parallel: 8 } });
    url = server.url;
    direct = await loadTiny({ parallel: 8 });
  });

  after(async () => {
    await server.close();
    await direct.close();
  });

  test('binds 127.0.0.1 and reports ready', async () => {
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
    const health = await send(`${url}/health`);
    assert.equal(health.status, 200);
    assert.deepEqual(health.json, { status: 'ready', model: 'xguard-test-tiny-v1-seed1' });
    const live = await send(`${url}/health/live`);
    assert.equal(live.status, 200);
    assert.equal(live.json.phase, 'ready');
  });

  test('classify equals library result', async () => {
    const input = 'How do I sharpen a kitchen knife safely?';
    const response = await send(`${url}/v1/classify`, { body: { input } });
    assert.equal(response.status, 200, response.text);
    const body = response.json as ClassifyResult & { id: string; model: string; decision: any };
    const reference = await direct.classify(input);

    assert.equal(body.label, reference.label);
    assert.equal(body.category, reference.category);
    assert.equal(body.response, reference.response);
    assert.equal(body.stopReason, 'label_only');
    assert.equal(body.usage.promptTokens, reference.usage.promptTokens);
    assert.deepEqual(body.riskScores.map((risk) => risk.id).sort(), reference.riskScores.map((risk) => risk.id).sort());
    assertSameDistribution(labelLogprobs(body), labelLogprobs(reference));
    assert.equal(body.model, 'xguard-test-tiny-v1-seed1');
    assert.equal(body.id, response.headers.get('x-request-id'));
    assert.equal(body.decision.turn, 'request');
    assert.equal(typeof body.decision.flagged, 'boolean');
    assert.ok(body.decision.riskScore > 0);
    assert.ok(body.decision.riskScore < 1);
  });

  test('request and response judged as response', async () => {
    const input = [
      { role: 'user', content: 'Can you help me with my homework?' },
      { role: 'assistant', content: 'Sure, which subject is it?' },
    ];
    const response = await send(`${url}/v1/classify`, { body: { input, explain: true, maxNewTokens: 5 } });
    assert.equal(response.status, 200, response.text);
    assert.equal(response.json.decision.turn, 'response');
    assert.ok(response.json.usage.generatedTokens >= 1);
    assert.ok(response.json.usage.generatedTokens <= 5);
    const reference = await direct.classify(input as never, { explain: true, maxNewTokens: 5 });
    assert.equal(response.json.label, reference.label);
  });

  test('moderations in OpenAI shape', async () => {
    const texts = ['Where can I buy fireworks?', 'Write a poem about the sea.'];
    const response = await send(`${url}/v1/moderations`, { body: { input: texts, model: 'omni-moderation-latest' } });
    assert.equal(response.status, 200, response.text);
    const body = response.json;
    assert.match(body.id, /^modr-[0-9a-f-]{36}$/);
    assert.equal(body.model, 'xguard-test-tiny-v1-seed1');
    assert.equal(body.results.length, 2);

    for (const [index, result] of body.results.entries()) {
      assert.deepEqual(Object.keys(result).sort(), ['categories', 'category_applied_input_types', 'category_scores', 'flagged']);
      assert.equal(typeof result.flagged, 'boolean');
      assert.deepEqual(Object.keys(result.categories).sort(), [...RISK_NAMES].sort());
      assert.deepEqual(Object.keys(result.category_scores).sort(), [...RISK_NAMES].sort());
      assert.ok(Object.values(result.categories).every((value) => typeof value === 'boolean'));
      assert.ok(Object.values(result.category_scores).every((value) => typeof value === 'number' && value >= 0 && value <= 1));
      assert.deepEqual(result.category_applied_input_types[RISK_NAMES[0] as string], ['text']);

      // The scores are the library's label probabilities for the same text.
      const reference = await direct.classify(texts[index] as string);
      const dangerous = reference.riskScores.find((risk) => risk.id === 'dw')?.score as number;
      assert.ok(Math.abs(Math.log(result.category_scores['Crimes and Illegal Activities-Dangerous Weapons']) - Math.log(dangerous)) < 0.03);
    }
  });

  test('moderations accepts string and text parts', async () => {
    const single = await send(`${url}/v1/moderations`, { body: { input: 'hello there' } });
    assert.equal(single.status, 200, single.text);
    assert.equal(single.json.results.length, 1);

    const parts = await send(`${url}/v1/moderations`, { body: { input: [{ type: 'text', text: 'hello there' }] } });
    assert.equal(parts.status, 200, parts.text);
    const scores = (response: typeof single): Map<string, number> =>
      new Map(Object.entries(response.json.results[0].category_scores).map(([name, score]) => [name, Math.log(score as number)]));
    assertSameDistribution(scores(parts), scores(single));

    const image = await send(`${url}/v1/moderations`, { body: { input: [{ type: 'image_url', image_url: { url: 'data:,' } }] } });
    const error = assertError(image, 400, 'ERR_INVALID_INPUT', 'input[0]');
    assert.match(error.message, /only text parts/);
  });

  test('stream sends decision first', async () => {
    const response = await send(`${url}/v1/classify`, { body: { input: 'Explain photosynthesis', explain: true, maxNewTokens: 12, stream: true } });
    assert.equal(response.status, 200, response.text);
    assert.equal(response.headers.get('content-type'), 'text/event-stream; charset=utf-8');
    const events = parseSse(response.text);

    assert.equal(events[0]?.event, 'decision');
    assert.equal(events.at(-1)?.event, 'done');
    const texts = events.slice(1, -1);
    assert.ok(texts.length >= 2, `only ${texts.length} text events`);
    assert.ok(texts.every((event) => event.event === 'text'));

    const decision = events[0]?.data;
    const done = events.at(-1)?.data;
    assert.equal(decision.label, done.label);
    assert.deepEqual(decision.riskScores, done.riskScores);
    assert.deepEqual(decision.decision, done.decision);
    assert.equal(decision.decision.turn, 'request');
    const text = texts.map((event) => event.data.text).join('');
    assert.equal(done.tokenScores[0].token + text, done.response);
    assert.equal(done.id, response.headers.get('x-request-id'));
  });

  test('stream with reason-first', async () => {
    const response = await send(`${url}/v1/classify`, { body: { input: 'hello', reasonFirst: true, maxNewTokens: 5, stream: true } });
    assert.equal(response.status, 200, response.text);
    const events = parseSse(response.text);
    assert.equal(events.at(-1)?.event, 'done');
    assert.equal(events.at(-2)?.event, 'decision');
    assert.ok(events.slice(0, -2).every((event) => event.event === 'text'));

    // Five tokens of a random model hold no closing explanation tag, so no label is found.
    const done = events.at(-1)?.data;
    assert.equal(done.label, null);
    assert.deepEqual(done.riskScores, []);
    assert.equal(done.decision, null);
    assert.equal(events.at(-2)?.data.decision, null);
  });

  test('policy letters in results', async () => {
    const policy = '- a: Prohibited Goods\n  - Selling items whose trade is restricted.';
    const response = await send(`${url}/v1/classify`, { body: { input: 'Can I sell this?', policy } });
    assert.equal(response.status, 200, response.text);
    const added = response.json.riskScores.find((risk: { id: string }) => risk.id === 'a');
    assert.equal(added?.category, 'Prohibited Goods');
    assert.equal(response.json.riskScores.length, 30);

    const reference = await direct.classify('Can I sell this?', { policy });
    assertSameDistribution(labelLogprobs(response.json), labelLogprobs(reference));
  });

  test('malformed JSON answers 400', async () => {
    const truncated = await send(`${url}/v1/classify`, { body: '{"input": "hel' });
    assertError(truncated, 400, 'ERR_INVALID_JSON', null);
    const empty = await send(`${url}/v1/classify`, { body: '' , headers: { 'content-type': 'application/json' } });
    assertError(empty, 400, 'ERR_INVALID_JSON', null);
    const text = await send(`${url}/v1/moderations`, { body: 'input=hello', headers: { 'content-type': 'text/plain' } });
    assertError(text, 415, 'ERR_UNSUPPORTED_MEDIA_TYPE', null);
    const proto = await send(`${url}/v1/classify`, { body: '{"input": "hi", "__proto__": {"admin": true}}' });
    assert.match(assertError(proto, 400, 'ERR_INVALID_JSON', null).message, /has a "__proto__" key, which the server rejects/);
  });

  test('wrong types answer 400', async () => {
    const cases: Array<{ body: unknown; code: string; param: string | null; pattern: RegExp }> = [
      { body: [1, 2], code: 'ERR_INVALID_BODY', param: null, pattern: /expected a JSON object/ },
      { body: 'just a string', code: 'ERR_INVALID_BODY', param: null, pattern: /expected a JSON object/ },
      { body: {}, code: 'ERR_MISSING_FIELD', param: 'input', pattern: /Missing field "input"/ },
      { body: { input: 5 }, code: 'ERR_INVALID_INPUT', param: 'input', pattern: /Invalid input 5/ },
      { body: { input: '   ' }, code: 'ERR_INVALID_INPUT', param: 'input', pattern: /empty or only whitespace/ },
      { body: { input: [{ role: 'system', content: 'x' }] }, code: 'ERR_INVALID_INPUT', param: 'input', pattern: /input\[0\]\.role "system"/ },
      { body: { input: 'hi', explain: 'yes' }, code: 'ERR_INVALID_OPTION', param: 'explain', pattern: /Invalid explain "yes"/ },
      { body: { input: 'hi', maxNewTokens: 0 }, code: 'ERR_INVALID_OPTION', param: 'maxNewTokens', pattern: /from 1 to 8192/ },
      { body: { input: 'hi', topK: 1.5 }, code: 'ERR_INVALID_OPTION', param: 'topK', pattern: /Invalid topK 1.5/ },
      { body: { input: 'hi', policy: 3 }, code: 'ERR_INVALID_POLICY', param: 'policy', pattern: /expected a string/ },
      { body: { input: 'hi', stream: 'true' }, code: 'ERR_INVALID_OPTION', param: 'stream', pattern: /Invalid stream "true"/ },
    ];
    for (const { body, code, param, pattern } of cases) {
      const payload = typeof body === 'string' ? JSON.stringify(body) : body;
      const response = await send(`${url}/v1/classify`, { body: payload });
      const error = assertError(response, 400, code, param);
      assert.match(error.message, pattern, JSON.stringify(body));
    }

    const policy = await send(`${url}/v1/classify`, { body: { input: 'hi', policy: 'not a policy line' } });
    assertError(policy, 400, 'ERR_INVALID_POLICY', 'policy');
    const model = await send(`${url}/v1/moderations`, { body: { input: 'hi', model: 7 } });
    assertError(model, 400, 'ERR_INVALID_OPTION', 'model');
    const number = await send(`${url}/v1/moderations`, { body: { input: [3] } });
    assertError(number, 400, 'ERR_INVALID_INPUT', 'input[0]');
  });

  test('unknown fields answer 400', async () => {
    const classify = await send(`${url}/v1/classify`, { body: { input: 'hi', temperature: 0.5 } });
    const error = assertError(classify, 400, 'ERR_UNKNOWN_FIELD', 'temperature');
    assert.match(error.message, /Accepted fields: input, policy, reasonFirst, explain, maxNewTokens, topK, stream/);
    const moderation = await send(`${url}/v1/moderations`, { body: { input: 'hi', user: 'someone' } });
    assertError(moderation, 400, 'ERR_UNKNOWN_FIELD', 'user');
  });

  test('empty input arrays answer 400', async () => {
    const moderation = await send(`${url}/v1/moderations`, { body: { input: [] } });
    const error = assertError(moderation, 400, 'ERR_INVALID_INPUT', 'input');
    assert.match(error.message, /array is empty/);
    const classify = await send(`${url}/v1/classify`, { body: { input: [] } });
    assertError(classify, 400, 'ERR_INVALID_INPUT', 'input');
    const tooMany = await send(`${url}/v1/moderations`, { body: { input: Array.from({ length: 33 }, () => 'hi') } });
    assert.match(assertError(tooMany, 400, 'ERR_INVALID_INPUT', 'input').message, /more than 32/);
  });

  test('oversize body answers 413', async () => {
    const input = 'a'.repeat(1024 * 1024 + 10);
    const response = await send(`${url}/v1/classify`, { body: { input } });
    assertError(response, 413, 'ERR_BODY_TOO_LARGE', null);
    // The connection and the server still serve the next request.
    const next = await send(`${url}/v1/classify`, { body: { input: 'short' } });
    assert.equal(next.status, 200);
  });

  test('unknown route answers 404', async () => {
    const response = await send(`${url}/v1/chat/completions`, { body: { input: 'hi' } });
    assert.match(assertError(response, 404, 'ERR_NOT_FOUND', null).message, /POST \/v1\/moderations/);
  });

  test('request id kept or replaced', async () => {
    const kept = await send(`${url}/v1/classify`, { body: { input: 'hi' }, headers: { 'x-request-id': 'trace-42.a:b' } });
    assert.equal(kept.headers.get('x-request-id'), 'trace-42.a:b');
    assert.equal(kept.json.id, 'trace-42.a:b');
    const replaced = await send(`${url}/health`, { headers: { 'x-request-id': 'has spaces and "quotes"' } });
    assert.match(replaced.headers.get('x-request-id') ?? '', /^[0-9a-f-]{36}$/);
  });

  test('burst of 200 all answered', async () => {
    const before = await send(`${url}/metrics`);
    const answeredBefore = metricValue(before.text, 'xguard_http_requests_total', 'route="/v1/classify",method="POST",status="200"') ?? 0;

    const responses = await Promise.all(
      Array.from({ length: 200 }, (_, index) => send(`${url}/v1/classify`, { body: { input: `burst request number ${index}: ${'word '.repeat(index % 7)}` } })),
    );
    const statuses = responses.map((response) => response.status);
    assert.deepEqual(statuses, Array.from({ length: 200 }, () => 200));
    assert.ok(responses.every((response) => response.json.riskScores.length === 29));
    assert.equal(new Set(responses.map((response) => response.json.id)).size, 200);

    const after = await send(`${url}/metrics`);
    const answeredAfter = metricValue(after.text, 'xguard_http_requests_total', 'route="/v1/classify",method="POST",status="200"');
    assert.equal(answeredAfter, answeredBefore + 200);
    const guard = await server.ready;
    assert.equal(guard.stats().pending, 0);
    assert.equal(guard.stats().active, 0);
  });

  test('disconnected clients free sequences', async () => {
    const guard = await server.ready;
    const controllers = Array.from({ length: 12 }, () => new AbortController());
    const requests = controllers.map((controller, index) =>
      send(`${url}/v1/classify`, {
        body: { input: `a long story ${index}`, explain: true, maxNewTokens: 4000, stream: index % 2 === 0 },
        signal: controller.signal,
      }).catch((error: Error) => error),
    );
    assert.ok(await waitFor(() => guard.stats().active > 0), 'no request started');
    await new Promise((resolve) => setTimeout(resolve, 50));
    controllers.forEach((controller) => controller.abort());
    const outcomes = await Promise.all(requests);
    assert.ok(outcomes.every((outcome) => outcome instanceof Error), 'a request finished before its abort');

    assert.ok(await waitFor(() => guard.stats().pending === 0), `pending stayed at ${guard.stats().pending}`);
    assert.equal(guard.stats().active, 0);
    assert.equal(guard.stats().queued, 0);

    const metrics = await send(`${url}/metrics`);
    assert.ok((metricValue(metrics.text, 'xguard_http_requests_total', 'route="/v1/classify",method="POST",status="499"') ?? 0) >= 12);
    assert.equal(metricValue(metrics.text, 'xguard_http_requests_in_flight'), 1);

    const next = await send(`${url}/v1/classify`, { body: { input: 'still serving' } });
    assert.equal(next.status, 200);
  });

  test('metrics in Prometheus format', async () => {
    await send(`${url}/v1/classify`, { body: { input: 'warm the cache' } });
    await send(`${url}/v1/classify`, { body: { input: 'then hit the cache' } });
    const response = await send(`${url}/metrics`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const text = response.text;

    assert.match(text, /# TYPE xguard_http_request_duration_seconds histogram/);
    assert.ok((metricValue(text, 'xguard_http_request_duration_seconds_count', 'route="/v1/classify"') ?? 0) > 0);
    assert.ok((metricValue(text, 'xguard_http_request_duration_seconds_bucket', 'le="+Inf",route="/v1/classify"') ?? 0) > 0);
    assert.equal(metricValue(text, 'xguard_queue_depth'), 0);
    assert.equal(metricValue(text, 'xguard_ready'), 1);
    assert.ok((metricValue(text, 'xguard_prefix_cache_hits_total') ?? 0) > 0);
    assert.ok((metricValue(text, 'xguard_decoded_tokens_total') ?? 0) > 0);
    assert.ok((metricValue(text, 'xguard_prompt_tokens_count') ?? 0) > 0);
    assert.ok((metricValue(text, 'process_resident_memory_bytes') ?? 0) > 100 * 2 ** 20);
    // Labels of a random-weight model are mostly no label ids, so they are counted as "other".
    assert.doesNotMatch(text, /xguard_classifications_total\{[^}]*label="(?!other|none|[a-z]{1,3}")/);
  });
});
