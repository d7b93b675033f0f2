import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, test } from 'node:test';

import { setLogger, type LogLevel } from '../lib/logging.js';
import { PACKAGE_ROOT } from '../lib/native.js';
import { XGuard } from '../lib/xguard.js';
import { loadTiny, tinyModelPath } from './helpers.js';

/** Runs an ES module snippet in a child process with MODEL set to the tiny model's path. */
async function runScript(source: string): Promise<{ status: number | null; signal: string | null; stdout: string; stderr: string }> {
  const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', source], {
    cwd: PACKAGE_ROOT,
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, MODEL: await tinyModelPath() },
  });
  return { status: child.status, signal: child.signal, stdout: child.stdout, stderr: child.stderr };
}

describe('XGuard lifecycle', () => {
  test('load reports progress', async () => {
    const fractions: number[] = [];
    const guard = await XGuard.load(await tinyModelPath(), { threads: 1, onProgress: (fraction) => fractions.push(fraction) });
    await guard.close();
    assert.ok(fractions.length >= 2, `only ${fractions.length} progress calls`);
    assert.equal(fractions.at(-1), 1);
    for (let i = 1; i < fractions.length; i++) {
      assert.ok((fractions[i] as number) >= (fractions[i - 1] as number), 'progress went backwards');
    }
  });

  test('info describes model and context', async () => {
    const guard = await loadTiny({ contextSize: 1024, batchSize: 128 });
    try {
      const info = guard.info;
      assert.equal(info.architecture, 'qwen3');
      assert.equal(info.contextSize, 1024);
      assert.equal(info.batchSize, 128);
      assert.equal(info.threads, 1);
      assert.equal(info.vocabularySize, 151936);
      assert.equal(info.chatTemplateSource, 'model');
    } finally {
      await guard.close();
    }
  });

  test('logger receives llama.cpp lines', async () => {
    const lines: Array<[LogLevel, string]> = [];
    setLogger((level, message) => lines.push([level, message]), 'info');
    try {
      const guard = await loadTiny();
      await guard.classify('hello');
      await guard.close();
      await new Promise((resolve) => setTimeout(resolve, 50));
    } finally {
      setLogger(null);
    }
    assert.ok(lines.length > 5, `only ${lines.length} log lines`);
    assert.ok(lines.some(([, message]) => message.includes('qwen3')), 'no line names the architecture');
    assert.ok(lines.every(([level]) => ['info', 'warn', 'error'].includes(level)));
    assert.ok(lines.every(([, message]) => !message.includes('\n')));
  });

  test('logger rejects bad arguments', () => {
    assert.throws(() => setLogger('console' as never), /Invalid logger "console"/);
    assert.throws(() => setLogger(() => {}, 'loud' as never), /Invalid log level "loud"/);
  });

  test('process exits without close', async () => {
    const started = Date.now();
    const child = await runScript(`
      import { XGuard } from './lib/xguard.ts';
      const guard = await XGuard.load(process.env.MODEL, { threads: 1 });
      const result = await guard.classify('hello');
      console.log('done', result.riskScores.length);
    `);
    assert.equal(child.signal, null, `child killed by ${child.signal}: ${child.stderr}`);
    assert.equal(child.status, 0, child.stderr);
    assert.match(child.stdout, /done 29/);
    assert.ok(Date.now() - started < 30_000);
  });

  test('process exits with request in flight', async () => {
    // process.exit() runs C++ exit handlers while the worker may be inside llama_decode.
    for (const delay of [3, 7, 9, 13, 23, 33, 41, 67]) {
      const child = await runScript(`
        import { XGuard } from './lib/xguard.ts';
        const guard = await XGuard.load(process.env.MODEL, { threads: 1 });
        guard.classify('tell me a story', { explain: true, maxNewTokens: 4000 }).catch(() => {});
        setTimeout(() => { console.log('exiting'); process.exit(0); }, ${delay});
      `);
      assert.equal(child.signal, null, `child killed by ${child.signal} after ${delay} ms`);
      assert.equal(child.status, 0, child.stderr);
      assert.match(child.stdout, /exiting/);
    }
  });

  test('load and close many times', async () => {
    const guards = [];
    for (let i = 0; i < 10; i++) {
      const guard = await loadTiny();
      const result = await guard.classify(`request ${i}`);
      assert.equal(result.riskScores.length, 29);
      await guard.close();
      guards.push(guard);
    }
    assert.ok(guards.every((guard) => guard.closed));
  });
});
