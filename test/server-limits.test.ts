import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';

import { XGuardError } from '../lib/errors.js';
import { buildApp } from '../lib/server/app.js';
import { resolveServerOptions } from '../lib/server/options.js';
import type { RunningServer } from '../lib/server/server.js';
import { ServerState } from '../lib/server/state.js';
import { tinyModelPath } from './helpers.js';
import { assertError, send, startTinyServer } from './server-helpers.js';

const KEY = 'test-key-0123456789';
const AUTH = { authorization: `Bearer ${KEY}` };

describe('HTTP server limits', () => {
  let server: RunningServer;
  let url: string;

  before(async () => {
    server = await startTinyServer({
      apiKey: KEY,
      maxInputTokens: 300,
      timeoutMs: 1500,
      bodyLimit: 4096,
      thresholds: { request: { default: 1e-4, categories: { dw: 1 }, anyRisk: null }, response: { default: 1, categories: {}, anyRisk: 0.001 } },
      load: { threads: 1, parallel: 1, maxQueue: 1 },
    });
    url = server.url;
  });

  after(async () => {
    await server.close();
  });

  test('API key required except health', async () => {
    const missing = await send(`${url}/v1/classify`, { body: { input: 'hi' } });
    assert.match(assertError(missing, 401, 'ERR_UNAUTHORIZED', null).message, /Authorization: Bearer/);
    assert.equal(missing.headers.get('www-authenticate'), 'Bearer');

    const wrong = await send(`${url}/v1/classify`, { body: { input: 'hi' }, headers: { authorization: 'Bearer not-the-key-at-all' } });
    assert.match(assertError(wrong, 401, 'ERR_UNAUTHORIZED', null).message, /Invalid API key/);
    const basic = await send(`${url}/v1/moderations`, { body: { input: 'hi' }, headers: { authorization: `Basic ${KEY}` } });
    assertError(basic, 401, 'ERR_UNAUTHORIZED', null);
    const metrics = await send(`${url}/metrics`);
    assertError(metrics, 401, 'ERR_UNAUTHORIZED', null);

    const right = await send(`${url}/v1/classify`, { body: { input: 'hi' }, headers: AUTH });
    assert.equal(right.status, 200, right.text);
    assert.equal((await send(`${url}/health`)).status, 200);
    assert.equal((await send(`${url}/metrics`, { headers: AUTH })).status, 200);
  });

  test('long input answers 413 before queueing', async () => {
    const guard = await server.ready;
    const completed = guard.stats().completed;
    const response = await send(`${url}/v1/classify`, { body: { input: 'many words '.repeat(60) }, headers: AUTH });
    const error = assertError(response, 413, 'ERR_INPUT_TOO_LONG', 'input');
    assert.match(error.message, /more than --max-input-tokens 300/);
    const moderation = await send(`${url}/v1/moderations`, { body: { input: ['short', 'many words '.repeat(60)] }, headers: AUTH });
    assertError(moderation, 413, 'ERR_INPUT_TOO_LONG', 'input');
    // The short text of the moderation request may have run; the long ones never reached the engine.
    assert.ok(guard.stats().completed - completed <= 1);
  });

  test('body over the limit answers 413', async () => {
    const response = await send(`${url}/v1/classify`, { body: { input: 'x'.repeat(5000) }, headers: AUTH });
    assertError(response, 413, 'ERR_BODY_TOO_LARGE', null);
  });

  test('full queue answers 429 with Retry-After', async () => {
    const responses = await Promise.all(
      Array.from({ length: 6 }, (_, index) =>
        send(`${url}/v1/classify`, { body: { input: `story ${index}`, explain: true, maxNewTokens: 40 }, headers: AUTH }),
      ),
    );
    const rejected = responses.filter((response) => response.status === 429);
    const answered = responses.filter((response) => response.status === 200);
    assert.equal(answered.length + rejected.length, 6, responses.map((response) => response.status).join(','));
    assert.ok(rejected.length >= 3, `only ${rejected.length} of 6 rejected with parallel 1 and maxQueue 1`);
    assert.ok(answered.length >= 2);
    for (const response of rejected) {
      assert.match(assertError(response, 429, 'ERR_QUEUE_FULL', null).message, /--max-queue 1/);
      const retryAfter = Number(response.headers.get('retry-after'));
      assert.ok(Number.isInteger(retryAfter), `Retry-After ${response.headers.get('retry-after')}`);
      assert.ok(retryAfter >= 1);
      assert.ok(retryAfter <= 60);
    }
  });

  test('slow request answers 504', async () => {
    const response = await send(`${url}/v1/classify`, { body: { input: 'a very long story', explain: true, maxNewTokens: 8000 }, headers: AUTH });
    assert.match(assertError(response, 504, 'ERR_TIMEOUT', null).message, /timed out after 1500 ms/);
    const guard = await server.ready;
    assert.equal(guard.stats().pending, 0);
  });

  test('thresholds file decides flagged', async () => {
    const request = await send(`${url}/v1/classify`, { body: { input: 'hi' }, headers: AUTH });
    const decision = request.json.decision;
    assert.equal(decision.turn, 'request');
    assert.equal(decision.flagged, true);
    assert.ok(decision.flaggedCategories.length > 0);
    assert.ok(decision.flaggedCategories.every((entry: { id: string; threshold: number }) => entry.id !== 'dw' && entry.threshold === 1e-4));

    const moderation = await send(`${url}/v1/moderations`, { body: { input: 'hi' }, headers: AUTH });
    const result = moderation.json.results[0];
    assert.equal(result.flagged, true);
    assert.equal(result.categories['Crimes and Illegal Activities-Dangerous Weapons'], false);
    const flaggedNames = Object.entries(result.categories).filter(([, value]) => value).map(([name]) => name).sort();
    assert.deepEqual(flaggedNames, decision.flaggedCategories.map((entry: { category: string }) => entry.category).sort());

    const pair = await send(`${url}/v1/classify`, {
      body: { input: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello' }] },
      headers: AUTH,
    });
    assert.equal(pair.json.decision.turn, 'response');
    assert.deepEqual(pair.json.decision.flaggedCategories, []);
    assert.equal(pair.json.decision.flagged, true, 'anyRisk 0.001 should flag the summed risk');
  });

  test('moderations beyond queue capacity rejected', async () => {
    // parallel 1 plus maxQueue 1: three texts could never all be queued, even on an idle server.
    const response = await send(`${url}/v1/moderations`, { body: { input: ['a', 'b', 'c'] }, headers: AUTH });
    const error = assertError(response, 400, 'ERR_INVALID_INPUT', 'input');
    assert.match(error.message, /3 texts in one request, more than this server can queue at once \(2/);

    const fits = await send(`${url}/v1/moderations`, { body: { input: ['a', 'b'] }, headers: AUTH });
    assert.equal(fits.status, 200);
  });

  test('port in use rejected with a clear error', async () => {
    const port = Number(new URL(url).port);
    await assert.rejects(startTinyServer({ port }), (error: unknown) => {
      assert.ok(error instanceof XGuardError);
      assert.equal(error.code, 'ERR_INVALID_OPTION');
      assert.match(error.message, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: the port is already in use \\(EADDRINUSE\\)`));
      assert.match(error.message, /Choose another with --host or --port/);
      return true;
    });
  });
});

describe('HTTP server before the model is ready', () => {
  test('answers 503 with Retry-After', async () => {
    const options = resolveServerOptions({ modelPath: await tinyModelPath(), port: 0, logLevel: 'silent' });
    const state = new ServerState(options.modelPath);
    const { app } = buildApp(state, options);
    await app.listen({ host: '127.0.0.1', port: 0 });
    try {
      const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
      const health = await send(`${url}/health`);
      assert.match(assertError(health, 503, 'ERR_NOT_READY', null).message, /still loading/);
      assert.equal(health.headers.get('retry-after'), '1');
      const classify = await send(`${url}/v1/classify`, { body: { input: 'hi' } });
      assertError(classify, 503, 'ERR_NOT_READY', null);
      assert.equal(classify.headers.get('connection'), 'close');
      const live = await send(`${url}/health/live`);
      assert.equal(live.status, 200);
      assert.equal(live.json.phase, 'loading');

      state.markDraining();
      const draining = await send(`${url}/v1/moderations`, { body: { input: 'hi' } });
      assert.match(assertError(draining, 503, 'ERR_SHUTTING_DOWN', null).message, /another replica/);
    } finally {
      await app.close();
    }
  });
});

describe('server options', () => {
  test('defaults bind loopback', async () => {
    const options = resolveServerOptions({ modelPath: 'model.gguf' });
    assert.equal(options.host, '127.0.0.1');
    assert.equal(options.port, 8080);
    assert.equal(options.apiKey, null);
    assert.equal(options.logContent, false);
    assert.equal(options.thresholds.request.default, 0.5);
    assert.equal(options.thresholds.response.default, 0.8);
    assert.equal(options.load.maxQueue, 256);
  });

  test('invalid values rejected', () => {
    const cases: Array<[object, RegExp]> = [
      [{}, /Invalid modelPath undefined/],
      [{ modelPath: 'm.gguf', port: 70000 }, /Invalid port 70000: expected an integer from 0 to 65535/],
      [{ modelPath: 'm.gguf', apiKey: 'short' }, /Invalid apiKey: expected at least 8 characters/],
      [{ modelPath: 'm.gguf', logLevel: 'loud' }, /Invalid logLevel "loud"/],
      [{ modelPath: 'm.gguf', bodyLimit: 0 }, /Invalid bodyLimit 0/],
      [{ modelPath: 'm.gguf', host: '' }, /Invalid host ""/],
      [{ modelPath: 'm.gguf', load: { parallel: 0 } }, /Invalid parallel 0/],
      [{ modelPath: 'm.gguf', thresholds: { request: { default: 2 } } }, /request.default 2: expected a number from 0 to 1/],
      [{ modelPath: 'm.gguf', verbose: true }, /Unknown server option "verbose"/],
    ];
    for (const [options, pattern] of cases) {
      assert.throws(() => resolveServerOptions(options as never), pattern);
    }
  });
});
