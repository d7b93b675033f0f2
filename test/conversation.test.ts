import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { normalizeInput } from '../lib/conversation.js';
import { XGuardError } from '../lib/errors.js';

/** Asserts that `normalizeInput(input)` throws ERR_INVALID_INPUT with a message matching `pattern`. */
function assertRejected(input: unknown, pattern: RegExp): void {
  assert.throws(
    () => normalizeInput(input),
    (error: unknown) => {
      assert.ok(error instanceof XGuardError, 'expected an XGuardError');
      assert.equal(error.code, 'ERR_INVALID_INPUT');
      assert.match(error.message, pattern);
      return true;
    },
  );
}

describe('normalizeInput', () => {
  test('string becomes user message', () => {
    assert.deepEqual(normalizeInput('How do I sharpen a knife?'), [
      { role: 'user', content: 'How do I sharpen a knife?' },
    ]);
  });

  test('string content kept untrimmed', () => {
    const [message] = normalizeInput('  padded  ');
    assert.equal(message?.content, '  padded  ');
  });

  test('single user message', () => {
    assert.deepEqual(normalizeInput([{ role: 'user', content: 'Hello' }]), [{ role: 'user', content: 'Hello' }]);
  });

  test('request plus response', () => {
    const input = [
      { role: 'user', content: 'Is this mushroom edible?' },
      { role: 'assistant', content: 'Ask a local expert before eating it.' },
    ];
    assert.deepEqual(normalizeInput(input), input);
  });

  test('extra properties dropped', () => {
    const [message] = normalizeInput([{ role: 'user', content: 'Hi', name: 'alice' }]);
    assert.deepEqual(message, { role: 'user', content: 'Hi' });
  });

  test('returns fresh objects', () => {
    const original = { role: 'user' as const, content: 'Hi' };
    const [message] = normalizeInput([original]);
    assert.notEqual(message, original);
  });

  test('rejects number', () => {
    assertRejected(42, /Invalid input 42: expected a string, or an array/);
  });

  test('rejects undefined', () => {
    assertRejected(undefined, /Invalid input undefined/);
  });

  test('rejects null', () => {
    assertRejected(null, /Invalid input null/);
  });

  test('rejects bare message object', () => {
    assertRejected({ role: 'user', content: 'Hi' }, /Wrap a single message in an array/);
  });

  test('rejects empty string', () => {
    assertRejected('', /Invalid input "": it is empty or only whitespace/);
  });

  test('rejects whitespace-only string', () => {
    assertRejected(' \n\t ', /empty or only whitespace/);
  });

  test('rejects empty array', () => {
    assertRejected([], /Invalid input \[\]/);
  });

  test('rejects three messages', () => {
    const input = [
      { role: 'user', content: 'a' },
      { role: 'assistant', content: 'b' },
      { role: 'user', content: 'c' },
    ];
    assertRejected(input, /got 3 messages/);
    assertRejected(input, /Pass only the last user message and the assistant reply/);
  });

  test('rejects string entry', () => {
    assertRejected(['Hello'], /Invalid input\[0\] "Hello": expected a \{ role, content \} object/);
  });

  test('rejects null entry', () => {
    assertRejected([null], /Invalid input\[0\] null/);
  });

  test('rejects array entry', () => {
    assertRejected([['user', 'Hi']], /Invalid input\[0\] \["user","Hi"\]/);
  });

  test('rejects unknown role', () => {
    assertRejected([{ role: 'system', content: 'Be nice' }], /Invalid input\[0\]\.role "system"/);
    assertRejected([{ role: 'system', content: 'Be nice' }], /accepted roles are "user" and "assistant"/);
  });

  test('rejects missing role', () => {
    assertRejected([{ content: 'Hi' }], /Invalid input\[0\]\.role undefined/);
  });

  test('rejects role in other case', () => {
    assertRejected([{ role: 'User', content: 'Hi' }], /Invalid input\[0\]\.role "User"/);
  });

  test('rejects non-string content', () => {
    assertRejected([{ role: 'user', content: 42 }], /Invalid input\[0\]\.content: expected a string, got 42/);
  });

  test('rejects content parts array', () => {
    assertRejected([{ role: 'user', content: [{ type: 'text', text: 'Hi' }] }], /input\[0\]\.content: expected a string/);
  });

  test('rejects blank message content', () => {
    assertRejected(
      [
        { role: 'user', content: 'Hi' },
        { role: 'assistant', content: '   ' },
      ],
      /Invalid input\[1\]\.content "   ": it is empty or only whitespace/,
    );
  });

  test('rejects NUL in string', () => {
    assertRejected('a\0b', /contains a NUL character/);
  });

  test('rejects NUL in message', () => {
    assertRejected([{ role: 'user', content: 'a\0b' }], /input\[0\]\.content .* contains a NUL character/);
  });

  test('rejects assistant first', () => {
    assertRejected([{ role: 'assistant', content: 'Sure.' }], /input\[0\]\.role "assistant": the conversation must start with a "user" message/);
  });

  test('rejects two user messages', () => {
    const input = [
      { role: 'user', content: 'a' },
      { role: 'user', content: 'b' },
    ];
    assertRejected(input, /input\[1\]\.role "user": the message after the user request must be the "assistant" reply/);
  });

  test('rejects reversed pair', () => {
    const input = [
      { role: 'assistant', content: 'b' },
      { role: 'user', content: 'a' },
    ];
    assertRejected(input, /input\[0\]\.role "assistant"/);
  });
});
