import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { PACKAGE_ROOT } from '../lib/native.js';
import { systemInfo, type SystemInfo } from '../lib/system-info.js';
import { XGuard } from '../lib/xguard.js';
import type { ClassifyResult } from '../lib/types.js';
import { tinyModelPath } from './helpers.js';

function xguard(args: string[], input?: string): { status: number | null; stdout: string; stderr: string } {
  const child = spawnSync(process.execPath, ['--import', 'tsx', path.join(PACKAGE_ROOT, 'lib/cli/main.ts'), ...args], {
    cwd: PACKAGE_ROOT,
    encoding: 'utf8',
    input: input ?? '',
    timeout: 60_000,
  });
  return { status: child.status, stdout: child.stdout, stderr: child.stderr };
}

describe('xguard CLI', () => {
  let scratch: string;
  let model: string;

  before(async () => {
    scratch = await mkdtemp(path.join(tmpdir(), 'xguard-cli-'));
    model = await tinyModelPath();
  });

  after(async () => {
    await rm(scratch, { recursive: true, force: true });
  });

  test('default model warns and prints table', () => {
    const run = xguard(['classify', 'How can I make a bomb?', '--threads', '1']);
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stderr, /generated test model/);
    assert.match(run.stderr, /random/);
    assert.match(run.stdout, /^label: /m);
    assert.match(run.stdout, /top risks:/);
    assert.match(run.stdout, /Safe-Safe/);
  });

  test('json output parses', () => {
    const run = xguard(['classify', 'hello', '--model', model, '--json', '--threads', '1']);
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stderr, '');
    const result = JSON.parse(run.stdout) as ClassifyResult;
    assert.equal(result.riskScores.length, 29);
    assert.equal(result.stopReason, 'label_only');
  });

  test('reads request from stdin', () => {
    const run = xguard(['classify', '--model', model, '--json', '--threads', '1'], 'text from a pipe');
    assert.equal(run.status, 0, run.stderr);
    const result = JSON.parse(run.stdout) as ClassifyResult;
    assert.ok(result.usage.promptTokens > 200);
  });

  test('response and policy options', async () => {
    const policyFile = path.join(scratch, 'policy.txt');
    await writeFile(policyFile, '- a: Prohibited Goods\n  - Selling restricted items.\n');
    const run = xguard(['classify', 'Can I sell this?', '--response', 'Sure.', '--policy', policyFile, '--model', model, '--json', '--threads', '1']);
    assert.equal(run.status, 0, run.stderr);
    const result = JSON.parse(run.stdout) as ClassifyResult;
    assert.equal(result.riskScores.find((risk) => risk.id === 'a')?.category, 'Prohibited Goods');
  });

  test('explain limits generated tokens', () => {
    const run = xguard(['classify', 'hi', '--explain', '--max-new-tokens', '5', '--model', model, '--json', '--threads', '1']);
    assert.equal(run.status, 0, run.stderr);
    const result = JSON.parse(run.stdout) as ClassifyResult;
    assert.ok(result.usage.generatedTokens <= 5);
    assert.ok(result.usage.generatedTokens >= 1);
  });

  test('unknown flag fails with usage', () => {
    const run = xguard(['classify', '--bogus', 'x']);
    assert.equal(run.status, 1);
    assert.match(run.stderr, /Unknown option '--bogus'/);
    assert.match(run.stderr, /usage: xguard classify/);
  });

  test('missing model file fails clearly', () => {
    const run = xguard(['classify', 'hi', '--model', path.join(scratch, 'missing.gguf')]);
    assert.equal(run.status, 1);
    assert.match(run.stderr, /missing\.gguf was not found/);
    assert.match(run.stderr, /ERR_MODEL_LOAD/);
  });

  test('missing policy file fails clearly', () => {
    const run = xguard(['classify', 'hi', '--policy', path.join(scratch, 'nope.txt'), '--model', model]);
    assert.equal(run.status, 1);
    assert.match(run.stderr, /Policy file .*nope\.txt.* could not be read/);
  });

  test('non-integer option fails', () => {
    const run = xguard(['classify', 'hi', '--top-k', 'ten', '--model', model]);
    assert.equal(run.status, 1);
    assert.match(run.stderr, /Invalid --top-k "ten"/);
  });

  test('unknown command and help', () => {
    const unknown = xguard(['judge']);
    assert.equal(unknown.status, 2);
    assert.match(unknown.stderr, /unknown command "judge"/);
    const help = xguard(['--help']);
    assert.equal(help.status, 0);
    assert.match(help.stdout, /commands:/);
  });

  test('info prints backend and features', () => {
    const run = xguard(['info']);
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /^addon: built from source; CPU backend compiled for /m);
    assert.match(run.stdout, /^CPU features: .*SSE3/m);
    assert.match(run.stdout, /^backend CPU: .*\(cpu, \d+\.\d GiB\)/m);
  });

  test('info --json matches systemInfo', () => {
    const run = xguard(['info', '--json']);
    assert.equal(run.status, 0, run.stderr);
    const info = JSON.parse(run.stdout) as SystemInfo & { version: string };
    const direct = systemInfo();
    assert.equal(info.backendLoading, 'static');
    assert.deepEqual(XGuard.systemInfo(), direct);
    assert.equal(info.cpuVariant, direct.cpuVariant);
    assert.deepEqual(info.cpuFeatures, direct.cpuFeatures);
    assert.deepEqual(info.backends.map((backend) => backend.name), ['CPU']);
    assert.match(info.version, /^\d+\.\d+\.\d+/);
  });

  test('info rejects unknown option', () => {
    const run = xguard(['info', '--verbose']);
    assert.equal(run.status, 1);
    assert.match(run.stderr, /Unknown option '--verbose'/);
    assert.match(run.stderr, /usage: xguard info/);
  });
});
