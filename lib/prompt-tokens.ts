// Tokenization of a rendered prompt that keeps caller text literal.
//
// Tokenizing the whole prompt with special-token parsing would turn a `<|im_end|>` typed by a
// user into the real end-of-turn token, letting the input forge its own verdict. So the
// prompt is cut into pieces: the template's own added-token texts become special pieces, and
// everything else goes to the backend as plain text. llama.cpp's parse_special=false still
// matches USER_DEFINED added tokens such as `<think>`, so every added-token text inside caller
// text is also cut in two, at a point where the cut does not change the BPE result.

import { XGuardError, describeValue } from './errors.js';
import type { LiteralSpan, RenderedPrompt } from './template.js';

/** A CONTROL or USER_DEFINED token of the vocabulary, such as `<|im_start|>` or `<think>`. */
export interface AddedToken {
  id: number;
  text: string;
}

export interface TokenizerBackend {
  /** Tokenizes each text on its own with parse_special=false and no BOS token. */
  tokenizeText(texts: string[]): Promise<Int32Array[]>;
}

export type PromptPiece = { kind: 'special'; id: number } | { kind: 'text'; text: string };

// The Qwen2 pre-tokenizer regex. The original starts with the case-insensitive group
// `(?i:'s|'t|'re|'ve|'m|'ll|'d)`, which Node 20 regexes cannot express. So the group is
// spelled out with ASCII letter pairs, as in llama.cpp's src/llama-vocab.cpp.
// NOTE: cut positions assume this pre-tokenizer (GGUF tokenizer.ggml.pre "qwen2"). With a
// different one, no text piece still contains an added-token text, but cuts may change tokens.
const QWEN2_PRE_TOKENIZER =
  /'(?:[sS]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+/gu;

const WHITESPACE = /\s/u;

// ---------------------------------------------------------------------------------------------
// Added-token matcher

interface TrieNode {
  children: Map<number, TrieNode>;
  /** Id of the added token whose text ends at this node. */
  tokenId: number | undefined;
}

interface TokenMatch {
  id: number;
  end: number;
}

const NO_MATCHES: readonly TokenMatch[] = Object.freeze([]);

/** A trie over added-token texts, keyed by UTF-16 code unit, plus the set of their ids. */
class AddedTokenMatcher {
  readonly ids = new Set<number>();
  readonly #root: TrieNode = { children: new Map(), tokenId: undefined };

  constructor(tokens: readonly AddedToken[]) {
    if (!Array.isArray(tokens)) {
      throw new XGuardError(
        'ERR_TOKENIZE',
        `Invalid added-token list ${describeValue(tokens)}: expected an array of { id, text }.`,
      );
    }
    for (const [position, token] of tokens.entries()) {
      const { id, text } = (token ?? {}) as Partial<AddedToken>;
      if (!Number.isInteger(id) || (id as number) < 0 || typeof text !== 'string') {
        throw new XGuardError(
          'ERR_TOKENIZE',
          `Invalid added token ${describeValue(token)} at index ${position}: expected { id: non-negative integer, text: string }.`,
        );
      }
      this.ids.add(id as number);
      this.#insert(text, id as number);
    }
  }

  #insert(text: string, id: number): void {
    // An empty text can never occur in a prompt, so it needs no trie entry.
    if (text === '') {
      return;
    }
    let node = this.#root;
    for (let i = 0; i < text.length; i++) {
      const unit = text.charCodeAt(i);
      let child = node.children.get(unit);
      if (child === undefined) {
        child = { children: new Map(), tokenId: undefined };
        node.children.set(unit, child);
      }
      node = child;
    }
    // When two tokens share a text, the first one in the list wins.
    node.tokenId ??= id;
  }

  /** Returns every added-token text that starts at `position`, shortest first. */
  matchesAt(text: string, position: number): readonly TokenMatch[] {
    // Most positions fail on the first code unit, so they allocate nothing.
    if (!this.#root.children.has(text.charCodeAt(position))) {
      return NO_MATCHES;
    }
    const matches: TokenMatch[] = [];
    let node: TrieNode | undefined = this.#root;
    for (let i = position; i < text.length; i++) {
      node = node.children.get(text.charCodeAt(i));
      if (node === undefined) {
        break;
      }
      if (node.tokenId !== undefined) {
        matches.push({ id: node.tokenId, end: i + 1 });
      }
    }
    return matches;
  }
}

// Callers pass the same token list for every prompt of a model, so the matcher is built once
// per list object. The list must not be mutated after its first use.
const matcherCache = new WeakMap<readonly AddedToken[], AddedTokenMatcher>();

function getMatcher(tokens: readonly AddedToken[]): AddedTokenMatcher {
  let matcher = matcherCache.get(tokens);
  if (matcher === undefined) {
    matcher = new AddedTokenMatcher(tokens);
    matcherCache.set(tokens, matcher);
  }
  return matcher;
}

// ---------------------------------------------------------------------------------------------
// Literal spans

function validateSpans(prompt: RenderedPrompt): LiteralSpan[] {
  if (typeof prompt?.text !== 'string' || !Array.isArray(prompt.literalSpans)) {
    throw new XGuardError(
      'ERR_TOKENIZE',
      `Invalid rendered prompt ${describeValue(prompt)}: expected { text, literalSpans } from ChatTemplate.render().`,
    );
  }
  const spans = [...prompt.literalSpans].sort((a, b) => a.start - b.start);
  let previousEnd = 0;
  for (const span of spans) {
    const valid =
      Number.isInteger(span.start) &&
      Number.isInteger(span.end) &&
      span.start >= previousEnd &&
      span.end >= span.start &&
      span.end <= prompt.text.length;
    if (!valid) {
      throw new XGuardError(
        'ERR_TOKENIZE',
        `Invalid literal span ${describeValue(span)}: spans must lie within the prompt text (length ${prompt.text.length}) and must not overlap.`,
      );
    }
    previousEnd = span.end;
  }
  return spans;
}

/** Checks whether a character range touches any literal span, by binary search. */
class SpanIndex {
  readonly #spans: readonly LiteralSpan[];

  constructor(sortedSpans: readonly LiteralSpan[]) {
    this.#spans = sortedSpans.filter((span) => span.end > span.start);
  }

  /** Returns the first span that overlaps [start, end), if any. */
  findOverlap(start: number, end: number): LiteralSpan | undefined {
    let low = 0;
    let high = this.#spans.length;
    // Find the first span that ends after `start`.
    while (low < high) {
      const middle = (low + high) >>> 1;
      if ((this.#spans[middle]?.end ?? 0) <= start) {
        low = middle + 1;
      } else {
        high = middle;
      }
    }
    const candidate = this.#spans[low];
    return candidate !== undefined && candidate.start < end ? candidate : undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Planning

interface SpecialRegion {
  start: number;
  end: number;
  id: number;
}

/** An added-token text that overlaps caller text and must be cut so no piece contains it. */
interface LiteralOccurrence {
  start: number;
  end: number;
  id: number;
  span: LiteralSpan;
}

/**
 * Returns the positions in [start, end) of `text` where the pre-tokenizer starts a new
 * chunk and where cutting the text leaves the chunks, and so the BPE tokens, unchanged.
 *
 * Chunk starts alone are not enough, because `\s+(?!\S)` looks one character ahead. A piece
 * that ends in whitespace where the full text continues with a non-space character groups
 * that whitespace differently: "a  1" gives "a", " ", " ", "1", but the piece "a  " gives
 * "a", "  ". Such positions are left out. The regex has no lookbehind, so a piece that
 * starts at a chunk start always splits like the full text.
 */
function findSafeCutPositions(text: string, start: number, end: number): number[] {
  const segment = text.slice(start, end);
  const positions: number[] = [];
  for (const match of segment.matchAll(QWEN2_PRE_TOKENIZER)) {
    const cut = start + match.index;
    if (cut === start) {
      continue;
    }
    const before = text.charAt(cut - 1);
    const after = text.charAt(cut);
    if (WHITESPACE.test(before) && !WHITESPACE.test(after)) {
      continue;
    }
    positions.push(cut);
  }
  return positions;
}

/** Returns the largest value in the ascending `values` that is below `limit`, if any. */
function largestBelow(values: readonly number[], limit: number): number | undefined {
  let low = 0;
  let high = values.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if ((values[middle] ?? limit) < limit) {
      low = middle + 1;
    } else {
      high = middle;
    }
  }
  return low > 0 ? values[low - 1] : undefined;
}

/**
 * Chooses cut positions so that every occurrence gets at least one cut strictly inside it.
 * Occurrences are taken by increasing end, and each uncut one gets the rightmost safe cut
 * inside it, which also covers as many later occurrences as possible.
 */
function chooseCuts(
  text: string,
  segmentStart: number,
  segmentEnd: number,
  occurrences: LiteralOccurrence[],
): number[] {
  const safePositions = findSafeCutPositions(text, segmentStart, segmentEnd);
  const cuts: number[] = [];
  occurrences.sort((a, b) => a.end - b.end || a.start - b.start);

  for (const occurrence of occurrences) {
    const lastCut = cuts.at(-1);
    if (lastCut !== undefined && lastCut > occurrence.start) {
      continue;
    }
    const cut = largestBelow(safePositions, occurrence.end);
    if (cut === undefined || cut <= occurrence.start) {
      const tokenText = text.slice(occurrence.start, occurrence.end);
      const where = occurrence.span.source === 'policy' ? 'the policy' : `message ${occurrence.span.index}`;
      throw new XGuardError(
        'ERR_TOKENIZE',
        `Cannot tokenize ${describeValue(tokenText)} in ${where} literally: it matches added token ${occurrence.id}, and the pre-tokenizer gives no position inside it where the text can be split without changing its tokens. Remove or alter that text in the input.`,
      );
    }
    cuts.push(cut);
  }
  return cuts;
}

/**
 * Finds the template's special tokens and the added-token texts that touch caller text.
 *
 * Outside literal spans, each position takes the longest added-token text that also lies
 * outside them. Every other match that overlaps a span is returned as a literal occurrence,
 * including one that starts in the template and ends in caller text. Matches that overlap a
 * chosen special token are dropped, because no text piece can contain them.
 */
function scanAddedTokens(
  text: string,
  matcher: AddedTokenMatcher,
  spanIndex: SpanIndex,
): { specials: SpecialRegion[]; literals: LiteralOccurrence[] } {
  const specials: SpecialRegion[] = [];
  const candidates: LiteralOccurrence[] = [];
  let specialEnd = 0;

  for (let position = 0; position < text.length; position++) {
    if (position < specialEnd) {
      continue;
    }
    const matches = matcher.matchesAt(text, position);
    if (matches.length === 0) {
      continue;
    }

    let special: TokenMatch | undefined;
    for (const match of matches) {
      const span = spanIndex.findOverlap(position, match.end);
      if (span === undefined) {
        special = match;
      } else {
        candidates.push({ start: position, end: match.end, id: match.id, span });
      }
    }
    if (special !== undefined) {
      specials.push({ start: position, end: special.end, id: special.id });
      specialEnd = special.end;
    }
  }

  const literals = candidates.filter((occurrence) => !overlapsAnySpecial(occurrence, specials));
  return { specials, literals };
}

function overlapsAnySpecial(occurrence: LiteralOccurrence, specials: readonly SpecialRegion[]): boolean {
  // Specials are sorted and disjoint, so only the last one starting before the occurrence's
  // end can overlap it.
  let low = 0;
  let high = specials.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if ((specials[middle]?.start ?? occurrence.end) < occurrence.end) {
      low = middle + 1;
    } else {
      high = middle;
    }
  }
  const candidate = specials[low - 1];
  return candidate !== undefined && candidate.end > occurrence.start;
}

/**
 * Splits a rendered prompt into special-token pieces and text pieces for the backend.
 *
 * Outside the prompt's literal spans, every added-token text becomes a special piece, the
 * longest one where several start at the same position. Text between special pieces stays
 * whole across the edges of literal spans. The exception is an added-token text that
 * overlaps a literal span. The text is cut at a pre-tokenizer boundary strictly inside that
 * occurrence, so no text piece contains an added-token text and the pieces tokenize like the
 * uncut text. Throws ERR_TOKENIZE when such an occurrence contains no usable boundary.
 */
export function planPromptPieces(prompt: RenderedPrompt, addedTokens: AddedToken[]): PromptPiece[] {
  const spans = validateSpans(prompt);
  const matcher = getMatcher(addedTokens);
  const { text } = prompt;
  const { specials, literals } = scanAddedTokens(text, matcher, new SpanIndex(spans));

  const pieces: PromptPiece[] = [];
  let literalIndex = 0;
  let segmentStart = 0;
  // One extra round after the last special handles the text that follows it.
  for (let specialIndex = 0; specialIndex <= specials.length; specialIndex++) {
    const special = specials[specialIndex];
    const segmentEnd = special?.start ?? text.length;

    // Literals are in order of start, and none crosses a special, so the ones in this
    // segment come next.
    const segmentLiterals: LiteralOccurrence[] = [];
    while (literalIndex < literals.length && (literals[literalIndex]?.start ?? Infinity) < segmentEnd) {
      const literal = literals[literalIndex];
      if (literal !== undefined) {
        segmentLiterals.push(literal);
      }
      literalIndex++;
    }

    const cuts =
      segmentLiterals.length > 0 ? chooseCuts(text, segmentStart, segmentEnd, segmentLiterals) : [];
    let pieceStart = segmentStart;
    for (const cut of [...cuts, segmentEnd]) {
      if (cut > pieceStart) {
        pieces.push({ kind: 'text', text: text.slice(pieceStart, cut) });
      }
      pieceStart = cut;
    }

    if (special !== undefined) {
      pieces.push({ kind: 'special', id: special.id });
      segmentStart = special.end;
    }
  }
  return pieces;
}

/**
 * Tokenizes a rendered prompt, with caller text taken literally and the template's
 * added-token texts as their token ids.
 *
 * Throws ERR_TOKENIZE when planning fails (see `planPromptPieces`), when the backend returns
 * the wrong number of results, or when a text piece still yields an added-token id, which
 * would mean the backend matched a token that `addedTokens` lacks.
 */
export async function tokenizePrompt(
  prompt: RenderedPrompt,
  addedTokens: AddedToken[],
  backend: TokenizerBackend,
): Promise<Int32Array> {
  const pieces = planPromptPieces(prompt, addedTokens);
  const addedIds = getMatcher(addedTokens).ids;

  const texts: string[] = [];
  for (const piece of pieces) {
    if (piece.kind === 'text') {
      texts.push(piece.text);
    }
  }
  const tokenized = texts.length > 0 ? await backend.tokenizeText(texts) : [];
  if (!Array.isArray(tokenized) || tokenized.length !== texts.length) {
    throw new XGuardError(
      'ERR_TOKENIZE',
      `Tokenizer backend returned ${Array.isArray(tokenized) ? tokenized.length : describeValue(tokenized)} results for ${texts.length} texts. Expected one Int32Array per text.`,
    );
  }

  let total = 0;
  for (const [position, ids] of tokenized.entries()) {
    if (!(ids instanceof Int32Array)) {
      throw new XGuardError(
        'ERR_TOKENIZE',
        `Tokenizer backend returned ${describeValue(ids)} for text ${position}. Expected an Int32Array.`,
      );
    }
    for (const id of ids) {
      if (addedIds.has(id)) {
        throw new XGuardError(
          'ERR_TOKENIZE',
          `Tokenizing text ${describeValue(texts[position])} produced added token ${id}, so caller text could have become a control token. Pass the model's complete list of CONTROL and USER_DEFINED tokens as addedTokens.`,
        );
      }
    }
    total += ids.length;
  }

  const result = new Int32Array(total + pieces.length - texts.length);
  let offset = 0;
  let textIndex = 0;
  for (const piece of pieces) {
    if (piece.kind === 'special') {
      result[offset++] = piece.id;
      continue;
    }
    const ids = tokenized[textIndex++] ?? new Int32Array(0);
    result.set(ids, offset);
    offset += ids.length;
  }
  return result;
}
