// A streaming writer for GGUF version 3 files, little-endian, as read by ggml's gguf.cpp.
//
// File layout: magic "GGUF", u32 version, u64 tensor count, u64 metadata count, the metadata
// key/value pairs, one info record per tensor (name, dimension count, dimensions innermost
// first, ggml type, data offset), padding to the alignment, then the tensor data. Every tensor
// starts at a multiple of the alignment, counted from the start of the data section. The
// alignment is 32 bytes unless the metadata sets `general.alignment`.
//
// The header is built in memory. Tensor data is pulled from each tensor's `values()` iterator
// and written chunk by chunk, so a file much larger than the available memory can be written.

import { randomBytes } from 'node:crypto';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';

const GGUF_MAGIC = 'GGUF';
const GGUF_VERSION = 3;
const DEFAULT_ALIGNMENT = 32;
const ALIGNMENT_KEY = 'general.alignment';

/** Metadata value types, numbered as in the GGUF specification. */
export enum GgufValueType {
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

/** Tensor data types this writer can encode, numbered as ggml's `enum ggml_type`. */
export enum GgmlType {
  F32 = 0,
  F16 = 1,
  Q8_0 = 8,
}

/** Number of values in one Q8_0 block. */
export const Q8_0_BLOCK_SIZE = 32;
/** Bytes in one Q8_0 block: an f16 scale followed by 32 int8 values. */
export const Q8_0_BLOCK_BYTES = 2 + Q8_0_BLOCK_SIZE;

export type GgufNumericType =
  | GgufValueType.UINT8
  | GgufValueType.INT8
  | GgufValueType.UINT16
  | GgufValueType.INT16
  | GgufValueType.UINT32
  | GgufValueType.INT32
  | GgufValueType.FLOAT32
  | GgufValueType.UINT64
  | GgufValueType.INT64
  | GgufValueType.FLOAT64;

/** One typed metadata value. Arrays of arrays, which GGUF also allows, are not supported. */
export type GgufValue =
  | { type: GgufNumericType; value: number | bigint }
  | { type: GgufValueType.BOOL; value: boolean }
  | { type: GgufValueType.STRING; value: string }
  | { type: GgufValueType.ARRAY; itemType: GgufNumericType; value: ArrayLike<number | bigint> }
  | { type: GgufValueType.ARRAY; itemType: GgufValueType.BOOL; value: readonly boolean[] }
  | { type: GgufValueType.ARRAY; itemType: GgufValueType.STRING; value: readonly string[] };

/** Constructors for the metadata value types used by model files. */
export const gguf = {
  uint32: (value: number): GgufValue => ({ type: GgufValueType.UINT32, value }),
  int32: (value: number): GgufValue => ({ type: GgufValueType.INT32, value }),
  uint64: (value: number | bigint): GgufValue => ({ type: GgufValueType.UINT64, value }),
  float32: (value: number): GgufValue => ({ type: GgufValueType.FLOAT32, value }),
  bool: (value: boolean): GgufValue => ({ type: GgufValueType.BOOL, value }),
  string: (value: string): GgufValue => ({ type: GgufValueType.STRING, value }),
  stringArray: (value: readonly string[]): GgufValue => ({
    type: GgufValueType.ARRAY,
    itemType: GgufValueType.STRING,
    value,
  }),
  int32Array: (value: ArrayLike<number>): GgufValue => ({
    type: GgufValueType.ARRAY,
    itemType: GgufValueType.INT32,
    value,
  }),
};

/** Name, shape and storage type of a tensor. `dims` lists the innermost (row) dimension first. */
export interface GgufTensorInfo {
  name: string;
  dims: readonly number[];
  type: GgmlType;
}

export interface GgufTensorSource extends GgufTensorInfo {
  /**
   * Yields the tensor's values in storage order (innermost dimension fastest). Every chunk must
   * hold whole rows, that is a multiple of `dims[0]` values. The iterator is started once, when
   * the writer reaches this tensor, so it can generate data lazily.
   */
  values(): Iterable<Float32Array>;
}

export interface GgufFileContents {
  /** Key/value pairs in file order. Keys must be unique. */
  metadata: ReadonlyArray<readonly [string, GgufValue]>;
  tensors: readonly GgufTensorSource[];
}

/** Returns the number of values in a tensor of the given shape. */
export function tensorElementCount(dims: readonly number[]): number {
  let count = 1;
  for (const dim of dims) {
    count *= dim;
  }
  return count;
}

/** Returns the bytes taken by one row of `rowLength` values stored as `type`. */
export function ggmlRowByteSize(type: GgmlType, rowLength: number): number {
  switch (type) {
    case GgmlType.F32:
      return rowLength * 4;
    case GgmlType.F16:
      return rowLength * 2;
    case GgmlType.Q8_0:
      if (rowLength % Q8_0_BLOCK_SIZE !== 0) {
        throw new RangeError(
          `Q8_0 rows must hold a multiple of ${Q8_0_BLOCK_SIZE} values, got ${rowLength}`,
        );
      }
      return (rowLength / Q8_0_BLOCK_SIZE) * Q8_0_BLOCK_BYTES;
  }
}

/** Returns the bytes taken by the data of a tensor with the given type and shape. */
export function ggmlTensorByteSize(type: GgmlType, dims: readonly number[]): number {
  const rowLength = dims[0] ?? 1;
  return ggmlRowByteSize(type, rowLength) * (tensorElementCount(dims) / rowLength);
}

// Scratch views for reading the bits of a float32.
const scratchFloat = new Float32Array(1);
const scratchBits = new Uint32Array(scratchFloat.buffer);

/**
 * Converts a number to the bits of the nearest IEEE 754 binary16 value, rounding the float32
 * value to nearest with ties to even. Values beyond the f16 range become infinity.
 */
export function float32ToFloat16Bits(value: number): number {
  scratchFloat[0] = value;
  const bits = scratchBits[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  const mantissa = bits & 0x7fffff;

  if (exponent === 0xff) {
    // Infinity keeps a zero mantissa and NaN stays a (quiet) NaN.
    return sign | 0x7c00 | (mantissa !== 0 ? 0x200 : 0);
  }

  const halfExponent = exponent - 127 + 15;
  if (halfExponent >= 0x1f) {
    return sign | 0x7c00;
  }

  if (halfExponent <= 0) {
    // The result is subnormal: shift the full 24-bit significand down to units of 2^-24.
    if (halfExponent < -10) {
      return sign;
    }
    const significand = mantissa | 0x800000;
    const shift = 14 - halfExponent;
    let half = significand >>> shift;
    const remainder = significand & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (remainder > halfway || (remainder === halfway && (half & 1) === 1)) {
      half += 1;
    }
    return sign | half;
  }

  // A carry out of the mantissa correctly bumps the exponent, up to infinity.
  let half = (halfExponent << 10) | (mantissa >>> 13);
  const remainder = mantissa & 0x1fff;
  if (remainder > 0x1000 || (remainder === 0x1000 && (half & 1) === 1)) {
    half += 1;
  }
  return sign | half;
}

/** Encodes values as little-endian float32. */
export function encodeF32(values: Float32Array): Uint8Array {
  const bytes = new Uint8Array(values.length * 4);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < values.length; i++) {
    view.setFloat32(i * 4, values[i]!, true);
  }
  return bytes;
}

/** Encodes values as little-endian IEEE binary16. */
export function encodeF16(values: Float32Array): Uint8Array {
  const bytes = new Uint8Array(values.length * 2);
  for (let i = 0; i < values.length; i++) {
    const half = float32ToFloat16Bits(values[i]!);
    bytes[i * 2] = half & 0xff;
    bytes[i * 2 + 1] = half >>> 8;
  }
  return bytes;
}

/**
 * Quantizes values to Q8_0: for each block of 32 values, scale d = max|x| / 127 stored as f16,
 * then 32 int8 values round(x / d), rounding halves away from zero. The arithmetic is done in
 * float32 like ggml's reference quantizer, so both produce the same bytes for the same input.
 */
export function encodeQ8_0(values: Float32Array): Uint8Array {
  if (values.length % Q8_0_BLOCK_SIZE !== 0) {
    throw new RangeError(
      `Q8_0 input must hold a multiple of ${Q8_0_BLOCK_SIZE} values, got ${values.length}`,
    );
  }
  const blockCount = values.length / Q8_0_BLOCK_SIZE;
  const bytes = new Uint8Array(blockCount * Q8_0_BLOCK_BYTES);
  const quants = new Int8Array(bytes.buffer);

  for (let block = 0; block < blockCount; block++) {
    const start = block * Q8_0_BLOCK_SIZE;
    let maxAbs = 0;
    for (let j = 0; j < Q8_0_BLOCK_SIZE; j++) {
      const magnitude = Math.abs(values[start + j]!);
      if (magnitude > maxAbs) {
        maxAbs = magnitude;
      }
    }

    const scale = Math.fround(maxAbs / 127);
    const inverseScale = scale !== 0 ? Math.fround(1 / scale) : 0;
    const scaleBits = float32ToFloat16Bits(scale);
    const out = block * Q8_0_BLOCK_BYTES;
    bytes[out] = scaleBits & 0xff;
    bytes[out + 1] = scaleBits >>> 8;

    for (let j = 0; j < Q8_0_BLOCK_SIZE; j++) {
      const scaled = Math.fround(values[start + j]! * inverseScale);
      quants[out + 2 + j] = scaled < 0 ? -Math.round(-scaled) : Math.round(scaled);
    }
  }
  return bytes;
}

/** Encodes a chunk of values in the given tensor type. */
export function encodeTensorValues(type: GgmlType, values: Float32Array): Uint8Array {
  switch (type) {
    case GgmlType.F32:
      return encodeF32(values);
    case GgmlType.F16:
      return encodeF16(values);
    case GgmlType.Q8_0:
      return encodeQ8_0(values);
  }
}

/** A growable little-endian byte buffer for the header. */
class ByteBuilder {
  private buffer = new Uint8Array(1 << 16);
  private view = new DataView(this.buffer.buffer);
  private length = 0;
  private readonly textEncoder = new TextEncoder();

  get size(): number {
    return this.length;
  }

  bytes(): Uint8Array {
    return this.buffer.subarray(0, this.length);
  }

  private reserve(extra: number): void {
    const needed = this.length + extra;
    if (needed <= this.buffer.length) {
      return;
    }
    let capacity = this.buffer.length * 2;
    while (capacity < needed) {
      capacity *= 2;
    }
    const grown = new Uint8Array(capacity);
    grown.set(this.bytes());
    this.buffer = grown;
    this.view = new DataView(grown.buffer);
  }

  u8(value: number): void {
    this.reserve(1);
    this.view.setUint8(this.length, value);
    this.length += 1;
  }

  i8(value: number): void {
    this.reserve(1);
    this.view.setInt8(this.length, value);
    this.length += 1;
  }

  u16(value: number): void {
    this.reserve(2);
    this.view.setUint16(this.length, value, true);
    this.length += 2;
  }

  i16(value: number): void {
    this.reserve(2);
    this.view.setInt16(this.length, value, true);
    this.length += 2;
  }

  u32(value: number): void {
    this.reserve(4);
    this.view.setUint32(this.length, value, true);
    this.length += 4;
  }

  i32(value: number): void {
    this.reserve(4);
    this.view.setInt32(this.length, value, true);
    this.length += 4;
  }

  u64(value: bigint): void {
    this.reserve(8);
    this.view.setBigUint64(this.length, value, true);
    this.length += 8;
  }

  i64(value: bigint): void {
    this.reserve(8);
    this.view.setBigInt64(this.length, value, true);
    this.length += 8;
  }

  f32(value: number): void {
    this.reserve(4);
    this.view.setFloat32(this.length, value, true);
    this.length += 4;
  }

  f64(value: number): void {
    this.reserve(8);
    this.view.setFloat64(this.length, value, true);
    this.length += 8;
  }

  /** Writes a GGUF string: u64 byte length, then UTF-8 bytes without a terminator. */
  string(value: string): void {
    const encoded = this.textEncoder.encode(value);
    this.u64(BigInt(encoded.length));
    this.reserve(encoded.length);
    this.buffer.set(encoded, this.length);
    this.length += encoded.length;
  }

  zeros(count: number): void {
    this.reserve(count);
    this.buffer.fill(0, this.length, this.length + count);
    this.length += count;
  }
}

const INTEGER_RANGES: Partial<Record<GgufValueType, readonly [number, number]>> = {
  [GgufValueType.UINT8]: [0, 0xff],
  [GgufValueType.INT8]: [-0x80, 0x7f],
  [GgufValueType.UINT16]: [0, 0xffff],
  [GgufValueType.INT16]: [-0x8000, 0x7fff],
  [GgufValueType.UINT32]: [0, 0xffffffff],
  [GgufValueType.INT32]: [-0x80000000, 0x7fffffff],
};

function checkInteger(key: string, type: GgufValueType, value: number | bigint): void {
  const range = INTEGER_RANGES[type];
  if (range === undefined) {
    return;
  }
  const [min, max] = range;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(
      `metadata ${key}: ${String(value)} is not a valid ${GgufValueType[type]} (integer in ${min}..${max})`,
    );
  }
}

function writeNumeric(
  out: ByteBuilder,
  key: string,
  type: GgufNumericType,
  value: number | bigint,
): void {
  checkInteger(key, type, value);
  switch (type) {
    case GgufValueType.UINT8:
      out.u8(Number(value));
      return;
    case GgufValueType.INT8:
      out.i8(Number(value));
      return;
    case GgufValueType.UINT16:
      out.u16(Number(value));
      return;
    case GgufValueType.INT16:
      out.i16(Number(value));
      return;
    case GgufValueType.UINT32:
      out.u32(Number(value));
      return;
    case GgufValueType.INT32:
      out.i32(Number(value));
      return;
    case GgufValueType.FLOAT32:
      out.f32(Number(value));
      return;
    case GgufValueType.FLOAT64:
      out.f64(Number(value));
      return;
    case GgufValueType.UINT64:
      // BigInt() rejects fractional numbers, and BigUint64 rejects negative values.
      out.u64(BigInt(value));
      return;
    case GgufValueType.INT64:
      out.i64(BigInt(value));
      return;
  }
}

function writeValue(out: ByteBuilder, key: string, entry: GgufValue): void {
  out.u32(entry.type);
  switch (entry.type) {
    case GgufValueType.BOOL:
      out.u8(entry.value ? 1 : 0);
      return;
    case GgufValueType.STRING:
      out.string(entry.value);
      return;
    case GgufValueType.ARRAY: {
      out.u32(entry.itemType);
      out.u64(BigInt(entry.value.length));
      if (entry.itemType === GgufValueType.STRING) {
        for (const item of entry.value) {
          out.string(item);
        }
      } else if (entry.itemType === GgufValueType.BOOL) {
        for (const item of entry.value) {
          out.u8(item ? 1 : 0);
        }
      } else {
        for (let i = 0; i < entry.value.length; i++) {
          writeNumeric(out, key, entry.itemType, entry.value[i]!);
        }
      }
      return;
    }
    default:
      writeNumeric(out, key, entry.type, entry.value);
  }
}

function alignUp(offset: number, alignment: number): number {
  return Math.ceil(offset / alignment) * alignment;
}

function readAlignment(metadata: GgufFileContents['metadata']): number {
  const entry = metadata.find(([key]) => key === ALIGNMENT_KEY);
  if (entry === undefined) {
    return DEFAULT_ALIGNMENT;
  }
  const [, value] = entry;
  const alignment = typeof value.value === 'number' ? value.value : NaN;
  const isPowerOfTwo = Number.isInteger(alignment) && alignment > 0 && (alignment & (alignment - 1)) === 0;
  if (value.type !== GgufValueType.UINT32 || !isPowerOfTwo) {
    throw new RangeError(`${ALIGNMENT_KEY} must be a UINT32 power of two, got ${String(value.value)}`);
  }
  return alignment;
}

function checkTensorInfo(tensor: GgufTensorInfo): void {
  const validDims =
    tensor.dims.length >= 1 &&
    tensor.dims.length <= 4 &&
    tensor.dims.every((dim) => Number.isSafeInteger(dim) && dim > 0);
  if (!validDims) {
    throw new RangeError(
      `tensor ${tensor.name}: dims must be 1 to 4 positive integers, got [${tensor.dims.join(', ')}]`,
    );
  }
  if (!(tensor.type in GgmlType)) {
    throw new RangeError(`tensor ${tensor.name}: unsupported ggml type ${String(tensor.type)}`);
  }
  // Validates the row length for block types.
  ggmlRowByteSize(tensor.type, tensor.dims[0]!);
}

interface HeaderLayout {
  header: Uint8Array;
  /** Offset of each tensor's data, relative to the start of the data section. */
  offsets: number[];
  alignment: number;
}

/** Builds the header bytes (without the padding that follows them) and the tensor offsets. */
export function buildGgufHeader(contents: GgufFileContents): HeaderLayout {
  const alignment = readAlignment(contents.metadata);

  const keys = new Set<string>();
  for (const [key] of contents.metadata) {
    if (keys.has(key)) {
      throw new Error(`duplicate metadata key ${key}`);
    }
    keys.add(key);
  }
  const names = new Set<string>();
  for (const tensor of contents.tensors) {
    checkTensorInfo(tensor);
    if (names.has(tensor.name)) {
      throw new Error(`duplicate tensor name ${tensor.name}`);
    }
    names.add(tensor.name);
  }

  const out = new ByteBuilder();
  for (const char of GGUF_MAGIC) {
    out.u8(char.charCodeAt(0));
  }
  out.u32(GGUF_VERSION);
  out.u64(BigInt(contents.tensors.length));
  out.u64(BigInt(contents.metadata.length));

  for (const [key, value] of contents.metadata) {
    out.string(key);
    writeValue(out, key, value);
  }

  const offsets: number[] = [];
  let dataOffset = 0;
  for (const tensor of contents.tensors) {
    out.string(tensor.name);
    out.u32(tensor.dims.length);
    for (const dim of tensor.dims) {
      out.u64(BigInt(dim));
    }
    out.u32(tensor.type);
    out.u64(BigInt(dataOffset));
    offsets.push(dataOffset);
    dataOffset = alignUp(dataOffset + ggmlTensorByteSize(tensor.type, tensor.dims), alignment);
  }

  return { header: out.bytes(), offsets, alignment };
}

/** Collects small writes into large ones and tracks the file position. */
class BufferedFileWriter {
  private readonly buffer: Uint8Array;
  private used = 0;
  private written = 0;

  constructor(
    private readonly handle: FileHandle,
    capacity = 4 << 20,
  ) {
    this.buffer = new Uint8Array(capacity);
  }

  get position(): number {
    return this.written + this.used;
  }

  async write(bytes: Uint8Array): Promise<void> {
    let start = 0;
    while (start < bytes.length) {
      const count = Math.min(bytes.length - start, this.buffer.length - this.used);
      this.buffer.set(bytes.subarray(start, start + count), this.used);
      this.used += count;
      start += count;
      if (this.used === this.buffer.length) {
        await this.flush();
      }
    }
  }

  async padTo(position: number): Promise<void> {
    const padding = position - this.position;
    if (padding > 0) {
      await this.write(new Uint8Array(padding));
    }
  }

  async flush(): Promise<void> {
    let offset = 0;
    while (offset < this.used) {
      const { bytesWritten } = await this.handle.write(this.buffer, offset, this.used - offset);
      offset += bytesWritten;
    }
    this.written += this.used;
    this.used = 0;
  }
}

async function writeTensorData(
  out: BufferedFileWriter,
  tensor: GgufTensorSource,
  expectedStart: number,
): Promise<void> {
  if (out.position !== expectedStart) {
    throw new Error(
      `tensor ${tensor.name}: data starts at byte ${out.position}, but the header expects ${expectedStart}`,
    );
  }
  const rowLength = tensor.dims[0]!;
  const expectedCount = tensorElementCount(tensor.dims);
  let count = 0;
  for (const chunk of tensor.values()) {
    if (chunk.length % rowLength !== 0) {
      throw new RangeError(
        `tensor ${tensor.name}: chunk of ${chunk.length} values is not a multiple of the row length ${rowLength}`,
      );
    }
    count += chunk.length;
    if (count > expectedCount) {
      throw new RangeError(`tensor ${tensor.name}: more than ${expectedCount} values generated`);
    }
    await out.write(encodeTensorValues(tensor.type, chunk));
  }
  if (count !== expectedCount) {
    throw new RangeError(`tensor ${tensor.name}: ${count} values generated, expected ${expectedCount}`);
  }
}

/**
 * Writes a GGUF v3 file. Data goes to a temporary file next to `filePath`, which is synced and
 * then renamed over `filePath`, so a reader of `filePath` finds either no file or a complete
 * one. The temporary file is removed if writing fails. The parent folder must exist.
 */
export async function writeGgufFile(filePath: string, contents: GgufFileContents): Promise<void> {
  const { header, offsets, alignment } = buildGgufHeader(contents);
  const dataStart = alignUp(header.length, alignment);

  const tempPath = `${filePath}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`;
  const handle = await open(tempPath, 'wx');
  try {
    const out = new BufferedFileWriter(handle);
    await out.write(header);
    await out.padTo(dataStart);

    for (let i = 0; i < contents.tensors.length; i++) {
      const tensor = contents.tensors[i]!;
      await out.padTo(dataStart + offsets[i]!);
      await writeTensorData(out, tensor, dataStart + offsets[i]!);
    }
    // ggml sizes the data section from aligned tensor sizes, so the last tensor is padded too.
    await out.padTo(alignUp(out.position, alignment));
    await out.flush();
    await handle.datasync();
    await handle.close();
  } catch (error) {
    await handle.close().catch(() => undefined);
    await unlink(tempPath).catch(() => undefined);
    throw error;
  }

  try {
    await rename(tempPath, filePath);
  } catch (error) {
    await unlink(tempPath).catch(() => undefined);
    throw error;
  }
}
