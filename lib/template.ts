// Rendering of the model's Jinja chat template, with the positions of caller-supplied text.
//
// The tokenizer must treat message content and policy text literally, so `render` reports
// where in the prompt each caller string ended up. It renders the template twice: once with
// every caller string replaced by a unique sentinel, which reveals the template's own text
// (the scaffolding) between the strings, and once with the real strings. The real prompt is
// then matched against the scaffolding, accepting for each caller string the same
// whitespace trimming that templates commonly apply.

import { randomBytes } from 'node:crypto';
import { Template } from '@huggingface/jinja';
import { type ChatMessage, normalizeInput } from './conversation.js';
import { XGuardError, describeValue } from './errors.js';

export interface LiteralSpan {
  /** Offset of the first character in `RenderedPrompt.text` (UTF-16 code units). */
  start: number;
  /** Offset just past the last character. */
  end: number;
  /** Whether the text came from a message's content or from the policy. */
  source: 'message' | 'policy';
  /** Index of the message in the input list, or 0 for the policy. */
  index: number;
}

export interface RenderedPrompt {
  text: string;
  /** Non-empty ranges of `text` that came from the caller, sorted by `start`, never overlapping. */
  literalSpans: LiteralSpan[];
}

export interface RenderOptions {
  /** Dynamic policy text. A policy that is empty after trimming counts as no policy. */
  policy?: string;
  /** Whether the model should write its reasoning before the label id. */
  reasonFirst?: boolean;
}

interface CallerString {
  source: LiteralSpan['source'];
  index: number;
  value: string;
}

/** One place where the sentinel render printed a caller string. */
interface SentinelOccurrence {
  callerIndex: number;
}

// Private-use code points open and close each sentinel. The random nonce between them makes a
// collision with caller text or template text practically impossible, and render() checks it.
const SENTINEL_OPEN = '\uE000';
const SENTINEL_CLOSE = '\uE001';
const MAX_NONCE_ATTEMPTS = 8;

function describeCaller(caller: CallerString): string {
  return caller.source === 'policy' ? 'the policy' : `message ${caller.index}`;
}

/** Returns the distinct forms a template may give `value` by trimming it, most literal first. */
function trimCandidates(value: string): string[] {
  return [...new Set([value, value.trim(), value.trimStart(), value.trimEnd()])];
}

export class ChatTemplate {
  readonly source: string;
  readonly #template: Template;
  /** Whether the template source itself contains the sentinel delimiter characters. */
  readonly #printsSentinelMarks: boolean;

  /** Compiles `source`. Throws ERR_TEMPLATE when it is not a string or does not parse. */
  constructor(source: string) {
    if (typeof source !== 'string' || source.trim() === '') {
      throw new XGuardError(
        'ERR_TEMPLATE',
        `Invalid chat template ${describeValue(source)}: expected the non-empty Jinja source from the model's tokenizer.chat_template.`,
      );
    }
    try {
      this.#template = new Template(source);
    } catch (cause) {
      throw new XGuardError(
        'ERR_TEMPLATE',
        `Failed to parse the chat template: ${errorText(cause)}. Check that the model file carries a valid tokenizer.chat_template.`,
        { cause },
      );
    }
    this.source = source;
    this.#printsSentinelMarks = source.includes(SENTINEL_OPEN) || source.includes(SENTINEL_CLOSE);
  }

  /**
   * Renders the prompt for `messages` and locates every printed caller string in it.
   *
   * Messages are validated like `normalizeInput` (ERR_INVALID_INPUT). Throws ERR_TEMPLATE when
   * rendering fails, when the template leaves out a message or the policy, or when it changes
   * caller text in a way other than trimming whitespace, because then the library cannot tell
   * caller text from template text.
   */
  render(messages: ChatMessage[], options: RenderOptions = {}): RenderedPrompt {
    const validated = normalizeInput(messages);
    const policy = normalizePolicyOption(options.policy);
    const reasonFirst = normalizeReasonFirstOption(options.reasonFirst);

    const callers: CallerString[] = validated.map((message, index) => ({
      source: 'message',
      index,
      value: message.content,
    }));
    if (policy !== undefined) {
      callers.push({ source: 'policy', index: 0, value: policy });
    }

    const nonce = this.#pickNonce(callers);
    const sentinels = callers.map((_, callerIndex) => `${SENTINEL_OPEN}${nonce}.${callerIndex}${SENTINEL_CLOSE}`);
    const sentinelPolicy = policy === undefined ? undefined : sentinels[callers.length - 1];
    const sentinelText = this.#renderRaw(
      validated.map((message, index) => ({ role: message.role, content: sentinels[index] ?? '' })),
      sentinelPolicy,
      reasonFirst,
    );
    const text = this.#renderRaw(validated, policy, reasonFirst);

    const { pieces, occurrences } = splitAtSentinels(sentinelText, nonce, this.#printsSentinelMarks);
    for (const [callerIndex, caller] of callers.entries()) {
      if (!occurrences.some((occurrence) => occurrence.callerIndex === callerIndex)) {
        throw new XGuardError(
          'ERR_TEMPLATE',
          `The chat template does not print ${describeCaller(caller)}, so the model would not see it. Use the model's own template, or one that prints every message and the policy.`,
        );
      }
    }

    const spans = matchCallerStrings(text, pieces, occurrences, callers);
    if (spans === undefined) {
      throw new XGuardError(
        'ERR_TEMPLATE',
        'The chat template changes message or policy text in a way other than trimming whitespace, so the library cannot locate caller text in the prompt to tokenize it literally. Use a template that prints the content as-is or trimmed.',
      );
    }
    return { text, literalSpans: spans };
  }

  #pickNonce(callers: readonly CallerString[]): string {
    for (let attempt = 0; attempt < MAX_NONCE_ATTEMPTS; attempt++) {
      const nonce = randomBytes(8).toString('hex');
      const marker = `${SENTINEL_OPEN}${nonce}`;
      const collides =
        this.source.includes(marker) || callers.some((caller) => caller.value.includes(marker));
      if (!collides) {
        return nonce;
      }
    }
    // Reaching this needs eight 64-bit random collisions in a row.
    throw new XGuardError('ERR_TEMPLATE', 'Failed to pick a sentinel absent from the input. Retry the call.');
  }

  #renderRaw(messages: readonly ChatMessage[], policy: string | undefined, reasonFirst: boolean): string {
    const variables: Record<string, unknown> = {
      messages: messages.map((message) => ({ role: message.role, content: message.content })),
      reason_first: reasonFirst,
      add_generation_prompt: true,
    };
    // Left out rather than set to undefined, so `policy is defined` is false in the template.
    if (policy !== undefined) {
      variables.policy = policy;
    }
    try {
      return this.#template.render(variables);
    } catch (cause) {
      throw new XGuardError(
        'ERR_TEMPLATE',
        `Failed to render the chat template: ${errorText(cause)}. Check the template, or the input if the template raised the error on purpose.`,
        { cause },
      );
    }
  }
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function normalizePolicyOption(policy: unknown): string | undefined {
  if (policy === undefined) {
    return undefined;
  }
  if (typeof policy !== 'string') {
    throw new XGuardError(
      'ERR_INVALID_POLICY',
      `Invalid policy ${describeValue(policy)}: expected a string or undefined.`,
    );
  }
  return policy.trim() === '' ? undefined : policy;
}

function normalizeReasonFirstOption(reasonFirst: unknown): boolean {
  if (reasonFirst === undefined) {
    return false;
  }
  if (typeof reasonFirst !== 'boolean') {
    throw new XGuardError(
      'ERR_INVALID_OPTION',
      `Invalid reasonFirst option ${describeValue(reasonFirst)}: expected true, false or undefined.`,
    );
  }
  return reasonFirst;
}

/**
 * Splits the sentinel render into scaffolding pieces and the sentinels between them, so
 * `pieces.length === occurrences.length + 1`. Throws ERR_TEMPLATE when a sentinel was
 * printed only in part or altered (its nonce or, unless the template prints them itself,
 * its delimiters remain), because the template then cut or rewrote caller text.
 */
function splitAtSentinels(
  sentinelText: string,
  nonce: string,
  templatePrintsMarks: boolean,
): { pieces: string[]; occurrences: SentinelOccurrence[] } {
  const pattern = new RegExp(`${SENTINEL_OPEN}${nonce}\\.(\\d+)${SENTINEL_CLOSE}`, 'g');
  const pieces: string[] = [];
  const occurrences: SentinelOccurrence[] = [];
  let pieceStart = 0;
  for (const match of sentinelText.matchAll(pattern)) {
    pieces.push(sentinelText.slice(pieceStart, match.index));
    occurrences.push({ callerIndex: Number(match[1]) });
    pieceStart = match.index + match[0].length;
  }
  pieces.push(sentinelText.slice(pieceStart));

  const nonceLeft = (piece: string): boolean => piece.toLowerCase().includes(nonce);
  const marksLeft = (piece: string): boolean =>
    !templatePrintsMarks && (piece.includes(SENTINEL_OPEN) || piece.includes(SENTINEL_CLOSE));
  if (pieces.some((piece) => nonceLeft(piece) || marksLeft(piece))) {
    throw new XGuardError(
      'ERR_TEMPLATE',
      'The chat template cuts or rewrites message or policy text, so the library cannot locate caller text in the prompt to tokenize it literally. Use a template that prints the content as-is or trimmed.',
    );
  }
  return { pieces, occurrences };
}

/**
 * Finds the spans of caller text in `text`, which must equal the scaffolding pieces with
 * each sentinel replaced by a trimmed form of its caller string. Returns undefined when no
 * combination of trimmed forms reproduces `text` exactly. The search backtracks because a
 * trimmed form that fits locally may leave the rest unmatched. With a handful of sentinels
 * and at most four forms each, it stays small.
 */
function matchCallerStrings(
  text: string,
  pieces: readonly string[],
  occurrences: readonly SentinelOccurrence[],
  callers: readonly CallerString[],
): LiteralSpan[] | undefined {
  const candidateLists = callers.map((caller) => trimCandidates(caller.value));
  const spans: LiteralSpan[] = [];

  const matchFrom = (occurrenceIndex: number, position: number): boolean => {
    const piece = pieces[occurrenceIndex] ?? '';
    if (!text.startsWith(piece, position)) {
      return false;
    }
    const start = position + piece.length;
    const occurrence = occurrences[occurrenceIndex];
    if (occurrence === undefined) {
      return start === text.length;
    }

    const caller = callers[occurrence.callerIndex];
    const candidates = candidateLists[occurrence.callerIndex];
    if (caller === undefined || candidates === undefined) {
      return false;
    }
    for (const candidate of candidates) {
      if (!text.startsWith(candidate, start)) {
        continue;
      }
      const end = start + candidate.length;
      spans.push({ start, end, source: caller.source, index: caller.index });
      if (matchFrom(occurrenceIndex + 1, end)) {
        return true;
      }
      spans.pop();
    }
    return false;
  };

  if (!matchFrom(0, 0)) {
    return undefined;
  }
  return spans.filter((span) => span.end > span.start);
}
