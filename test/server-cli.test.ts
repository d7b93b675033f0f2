import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { PACKAGE_ROOT } from '../lib/native.js';
import { tinyModelPath } from './helpers.js';
import { assertError, metricValue, send, waitFor, type HttpResponse } from './server-helpers.js';

const CLI = path.join(PACKAGE_ROOT, 'lib/cli/main.ts');

interface ServeProcess {
  child: ChildProcess;
  /** JSON log lines written so far. */
  logs: Array<Record<string, unknown>>;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
  url: string;
}

const children: ChildProcess[] = [];

/** Spawns `xguard serve` on a free port of 127.0.0.1 and waits until it logs that the model is loaded or that it failed. */
async function serve(args: string[], env: Record<string, string> = {}): Promise<ServeProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'serve', '--port', '0', '--threads', '1', ...args], {
    cwd: PACKAGE_ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let stdout = '';
  let stderr = '';
  const logs: Array<Record<string, unknown>> = [];
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    logs.length = 0;
    for (const line of stdout.split('\n')) {
      if (line.startsWith('{')) logs.push(JSON.parse(line) as Record<string, unknown>);
    }
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let done = false;
  void exited.then(() => {
    done = true;
  });

  const settled = await waitFor(() => done || logs.some((line) => line.msg === 'model loaded; accepting requests'), 60_000);
  assert.ok(settled, `the server did not start: ${stderr}`);
  const listening = logs.find((line) => typeof line.url === 'string');
  return { child, logs, stdout: () => stdout, stderr: () => stderr, exited, url: (listening?.url as string | undefined) ?? '' };
}

function hasLog(server: ServeProcess, message: string): boolean {
  return server.logs.some((line) => line.msg === message);
}

describe('xguard serve', () => {
  let scratch: string;
  let model: string;

  before(async () => {
    scratch = await mkdtemp(path.join(tmpdir(), 'xguard-serve-'));
    model = await tinyModelPath();
  });

  after(async () => {
    for (const child of children) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    await rm(scratch, { recursive: true, force: true });
  });

  test('SIGTERM lets running requests finish', async () => {
    const server = await serve(['--parallel', '2']);
    assert.match(server.stderr(), /no --model given, so this serves the generated test model/);
    assert.match(server.stderr(), /random/);
    assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/);

    const requests = Array.from({ length: 8 }, (_, index) =>
      send(`${server.url}/v1/classify`, { body: { input: `tell a story ${index}`, explain: true, maxNewTokens: 300 } }),
    );
    let inFlight = 0;
    const busy = await waitFor(async () => {
      const metrics = await send(`${server.url}/metrics`);
      inFlight = (metricValue(metrics.text, 'xguard_http_requests_in_flight') ?? 0) - 1;
      return inFlight === 8;
    });
    assert.ok(busy, `only ${inFlight} requests in flight`);

    server.child.kill('SIGTERM');
    assert.ok(await waitFor(() => hasLog(server, 'shutting down: no new connections; waiting for running requests')), server.stdout());
    const late: HttpResponse | Error = await send(`${server.url}/v1/classify`, { body: { input: 'too late' } }).catch((error: Error) => error);
    if (late instanceof Error) {
      assert.match(String((late.cause as Error | undefined)?.message ?? late.message), /ECONNREFUSED|other side closed|fetch failed/);
    } else {
      assertError(late, 503, 'ERR_SHUTTING_DOWN', null);
    }

    const responses = await Promise.all(requests);
    assert.deepEqual(responses.map((response) => response.status), Array.from({ length: 8 }, () => 200));
    assert.ok(responses.every((response) => response.json.riskScores.length === 29));
    assert.equal(await server.exited, 0);
    assert.ok(hasLog(server, 'stopped'));
  });

  test('grace period cancels long requests', async () => {
    const server = await serve(['--model', model, '--parallel', '2', '--grace-ms', '300']);
    const requests = Array.from({ length: 3 }, (_, index) =>
      send(`${server.url}/v1/classify`, { body: { input: `an endless story ${index}`, explain: true, maxNewTokens: 8000 } }),
    );
    assert.ok(await waitFor(async () => metricValue((await send(`${server.url}/metrics`)).text, 'xguard_active_sequences') === 2));

    const signalled = performance.now();
    server.child.kill('SIGTERM');
    const responses = await Promise.all(requests);
    for (const response of responses) {
      assertError(response, 503, 'ERR_CLOSED', null);
    }
    assert.equal(await server.exited, 0);
    assert.ok(performance.now() - signalled < 10_000, 'the server did not stop soon after the grace period');
    assert.ok(hasLog(server, 'grace period over: cancelling the running requests'));
  });

  test('failed model load exits 1', async () => {
    const server = await serve(['--model', path.join(scratch, 'missing.gguf')]);
    assert.equal(await server.exited, 1);
    assert.match(server.stderr(), /missing\.gguf was not found/);
    assert.match(server.stderr(), /ERR_MODEL_LOAD/);
    assert.ok(hasLog(server, 'the model failed to load; stopping'));
  });

  test('logs leave out request text', async () => {
    const secret = 'zebra-7731-marker';
    const server = await serve(['--model', model]);
    const classified = await send(`${server.url}/v1/classify`, { body: { input: `please judge ${secret}` } });
    assert.equal(classified.status, 200);
    const loaded = server.logs.find((line) => line.msg === 'model loaded; accepting requests');
    assert.equal(loaded?.model, classified.json.model, 'the load log names the model as responses do');
    const moderated = await send(`${server.url}/v1/moderations`, { body: { input: [`and ${secret}`] } });
    assert.equal(moderated.status, 200);
    const invalid = await send(`${server.url}/v1/classify`, { body: { input: [{ role: 'system', content: secret }] } });
    assertError(invalid, 400, 'ERR_INVALID_INPUT', 'input');

    server.child.kill('SIGTERM');
    assert.equal(await server.exited, 0);
    assert.ok(!server.stdout().includes(secret), 'the log contains request text');
    assert.ok(!server.stderr().includes(secret), 'standard error contains request text');

    const lines = server.logs.filter((line) => line.msg === 'request finished' && line.route !== '/metrics');
    assert.equal(lines.length, 3);
    const [first, second, third] = lines;
    assert.equal(first?.reqId, classified.json.id);
    assert.equal(first?.status, 200);
    assert.equal(first?.label, classified.json.label);
    assert.equal(first?.flagged, classified.json.decision.flagged);
    assert.equal(first?.promptTokens, classified.json.usage.promptTokens);
    assert.ok((first?.bytesIn as number) > 20);
    assert.equal(first?.bytesOut, Buffer.byteLength(classified.text));
    assert.equal(typeof first?.latencyMs, 'number');
    assert.equal(second?.route, '/v1/moderations');
    assert.equal(third?.status, 400);
    assert.equal(third?.errorCode, 'ERR_INVALID_INPUT');
    assert.equal(third?.errorMessage, undefined);
  });

  test('log content and API key option', async () => {
    const secret = 'okapi-5512-marker';
    const key = 'env-key-abcdefgh';
    const server = await serve(['--model', model, '--log-content'], { XGUARD_API_KEY: key });
    const denied = await send(`${server.url}/v1/classify`, { body: { input: secret } });
    assertError(denied, 401, 'ERR_UNAUTHORIZED', null);
    const allowed = await send(`${server.url}/v1/classify`, { body: { input: secret }, headers: { authorization: `Bearer ${key}` } });
    assert.equal(allowed.status, 200);

    server.child.kill('SIGINT');
    assert.equal(await server.exited, 0);
    const logged = server.logs.find((line) => line.reqId === allowed.json.id);
    assert.equal(logged?.input, secret);
    assert.ok(!server.stdout().includes(key), 'the log contains the API key');
  });

  test('invalid options fail before loading', async () => {
    const thresholds = path.join(scratch, 'thresholds.json');
    await writeFile(thresholds, '{"request": {"categories": {"dw": 3}}}');
    const run = (args: string[]): { status: number | null; stdout: string; stderr: string } => {
      const child = spawnSync(process.execPath, ['--import', 'tsx', CLI, 'serve', ...args], { cwd: PACKAGE_ROOT, encoding: 'utf8', timeout: 60_000 });
      return { status: child.status, stdout: child.stdout, stderr: child.stderr };
    };

    const badThresholds = run(['--model', model, '--thresholds', thresholds]);
    assert.equal(badThresholds.status, 1);
    assert.match(badThresholds.stderr, /thresholds\.json.*request\.categories\.dw 3: expected a number from 0 to 1/);
    const missingFile = run(['--model', model, '--thresholds', path.join(scratch, 'none.json')]);
    assert.equal(missingFile.status, 1);
    assert.match(missingFile.stderr, /none\.json" could not be read/);
    const badPort = run(['--model', model, '--port', 'eighty']);
    assert.equal(badPort.status, 1);
    assert.match(badPort.stderr, /Invalid --port "eighty": expected an integer/);
    const unknown = run(['--verbose']);
    assert.equal(unknown.status, 1);
    assert.match(unknown.stderr, /Unknown option '--verbose'/);
    assert.match(unknown.stderr, /usage: xguard serve/);
    const positional = run(['model.gguf']);
    assert.equal(positional.status, 2);
    assert.match(positional.stderr, /unexpected argument "model\.gguf"/);
    const help = run(['--help']);
    assert.equal(help.status, 0);
    assert.match(help.stdout, /--max-input-tokens <n>/);
    assert.match(help.stdout, /default 127\.0\.0\.1/);
  });
});
