/**
 * A strict, bounded decoder for the `.lzma` ("LZMA alone", LZMA1) container:
 * a 13-byte header (properties byte, 32-bit little-endian dictionary size,
 * 64-bit little-endian uncompressed size or all ones for "unknown, ends with
 * an end marker") followed by the range-coded LZMA stream.
 *
 * It follows Igor Pavlov's public-domain reference decoder `LzmaSpec.cpp`
 * from the LZMA SDK. Compression is left to the `lzma1` package; its decoder
 * is not used because it allocates the dictionary size the header asks for
 * (up to 4 GiB), grows its output without a bound, and reads past the end of
 * the input as if it held more bytes.
 *
 * Here the output buffer is the dictionary, it never grows past
 * `maxOutputSize`, and a read past the end of the input is an error.
 *
 * @module
 */

import { CompressionError, DecompressionLimitError } from "../errors.ts";
import { BoundedOutput } from "./_output.ts";

const PREFIX = "Cannot decompress lzma data";

const HEADER_SIZE = 13;
const NUM_BIT_MODEL_TOTAL_BITS = 11;
const BIT_MODEL_TOTAL = 1 << NUM_BIT_MODEL_TOTAL_BITS;
const NUM_MOVE_BITS = 5;
const TOP_VALUE = 1 << 24;
const PROB_INIT = BIT_MODEL_TOTAL >>> 1;
const NUM_STATES = 12;
const NUM_POS_BITS_MAX = 4;
const NUM_LEN_TO_POS_STATES = 4;
const NUM_ALIGN_BITS = 4;
const START_POS_MODEL_INDEX = 4;
const END_POS_MODEL_INDEX = 14;
const NUM_FULL_DISTANCES = 1 << (END_POS_MODEL_INDEX >>> 1);
const MATCH_MIN_LEN = 2;
const END_MARKER = 0xffffffff;

function corrupt(detail: string): CompressionError {
  return new CompressionError(`${PREFIX}: ${detail}`);
}

function probs(size: number): Uint16Array {
  return new Uint16Array(size).fill(PROB_INIT);
}

class RangeDecoder {
  #input: Uint8Array;
  pos: number;
  range = 0xffffffff;
  code = 0;
  corrupted = false;

  constructor(input: Uint8Array, pos: number) {
    this.#input = input;
    this.pos = pos;
    const first = this.#readByte();
    for (let i = 0; i < 4; i++) {
      this.code = ((this.code << 8) | this.#readByte()) >>> 0;
    }
    if (first !== 0 || this.code === this.range) this.corrupted = true;
  }

  #readByte(): number {
    if (this.pos >= this.#input.length) {
      throw corrupt(`truncated input (${this.#input.length} bytes)`);
    }
    return this.#input[this.pos++];
  }

  #normalize(): void {
    if (this.range < TOP_VALUE) {
      this.range = (this.range << 8) >>> 0;
      this.code = ((this.code << 8) | this.#readByte()) >>> 0;
    }
  }

  isFinishedOk(): boolean {
    return this.code === 0;
  }

  decodeDirectBits(numBits: number): number {
    let res = 0;
    do {
      this.range >>>= 1;
      this.code = (this.code - this.range) >>> 0;
      const t = 0 - (this.code >>> 31);
      this.code = (this.code + (this.range & t)) >>> 0;
      if (this.code === this.range) this.corrupted = true;
      this.#normalize();
      res = res * 2 + (t + 1);
    } while (--numBits);
    return res;
  }

  decodeBit(p: Uint16Array, i: number): number {
    const v = p[i];
    const bound = (this.range >>> NUM_BIT_MODEL_TOTAL_BITS) * v;
    let symbol: number;
    if (this.code < bound) {
      p[i] = v + ((BIT_MODEL_TOTAL - v) >>> NUM_MOVE_BITS);
      this.range = bound;
      symbol = 0;
    } else {
      p[i] = v - (v >>> NUM_MOVE_BITS);
      this.code -= bound;
      this.range -= bound;
      symbol = 1;
    }
    this.#normalize();
    return symbol;
  }

  bitTree(p: Uint16Array, offset: number, numBits: number): number {
    let m = 1;
    for (let i = 0; i < numBits; i++) {
      m = (m << 1) + this.decodeBit(p, offset + m);
    }
    return m - (1 << numBits);
  }

  bitTreeReverse(p: Uint16Array, offset: number, numBits: number): number {
    let m = 1;
    let symbol = 0;
    for (let i = 0; i < numBits; i++) {
      const bit = this.decodeBit(p, offset + m);
      m = (m << 1) + bit;
      symbol |= bit << i;
    }
    return symbol;
  }
}

class LenDecoder {
  #choice = probs(2);
  #low = probs((1 << NUM_POS_BITS_MAX) << 3);
  #mid = probs((1 << NUM_POS_BITS_MAX) << 3);
  #high = probs(1 << 8);

  decode(rc: RangeDecoder, posState: number): number {
    if (rc.decodeBit(this.#choice, 0) === 0) {
      return rc.bitTree(this.#low, posState << 3, 3);
    }
    if (rc.decodeBit(this.#choice, 1) === 0) {
      return 8 + rc.bitTree(this.#mid, posState << 3, 3);
    }
    return 16 + rc.bitTree(this.#high, 0, 8);
  }
}

/** The output, which doubles as the LZMA dictionary. */
class Window extends BoundedOutput {
  putByte(b: number): void {
    this.reserve(1);
    this.buf[this.pos++] = b;
  }

  getByte(dist: number): number {
    return this.buf[this.pos - dist];
  }

  copyMatch(dist: number, len: number): void {
    this.reserve(len);
    const buf = this.buf;
    let pos = this.pos;
    if (len >= 32 && dist >= len) {
      buf.copyWithin(pos, pos - dist, pos - dist + len);
      pos += len;
    } else {
      for (const end = pos + len; pos < end; pos++) buf[pos] = buf[pos - dist];
    }
    this.pos = pos;
  }
}

/**
 * Decodes one `.lzma` stream, refusing to produce more than `maxOutputSize`
 * bytes. A known uncompressed size in the header is checked against the bound
 * before any allocation; an unknown one is enforced while decoding.
 */
export function lzmaDecompress(
  input: Uint8Array,
  maxOutputSize: number,
): Uint8Array {
  if (input.length < HEADER_SIZE) {
    throw corrupt(
      `truncated header: expected ${HEADER_SIZE} bytes, got ${input.length}`,
    );
  }
  let d = input[0];
  if (d >= 9 * 5 * 5) throw corrupt(`invalid properties byte ${d}`);
  const lc = d % 9;
  d = (d / 9) | 0;
  const lp = d % 5;
  const pb = (d / 5) | 0;
  // As liblzma (xz, Python): lc + lp > 4 is refused, which also keeps the
  // literal tables small (0x300 << 4 probabilities at most).
  if (lc + lp > 4) {
    throw corrupt(`unsupported properties lc=${lc} lp=${lp} (lc + lp > 4)`);
  }
  let dictSize = input[1] + input[2] * 2 ** 8 + input[3] * 2 ** 16 +
    input[4] * 2 ** 24;
  if (dictSize < 1 << 12) dictSize = 1 << 12;

  let sizeKnown = false;
  let unpackSize = 0;
  for (let i = 5; i < 13; i++) {
    if (input[i] !== 0xff) sizeKnown = true;
  }
  if (sizeKnown) {
    for (let i = 12; i >= 5; i--) unpackSize = unpackSize * 256 + input[i];
    if (unpackSize > maxOutputSize) {
      throw new DecompressionLimitError(
        `${PREFIX}: header declares ${unpackSize} bytes, more than maxOutputSize ${maxOutputSize}`,
      );
    }
  }

  // Grow as the data decodes rather than trusting the header's size: a
  // 13-byte input must not cost a large allocation.
  const out = new Window(
    Math.min(
      sizeKnown ? unpackSize : maxOutputSize,
      Math.max(4096, input.length * 4),
    ),
    maxOutputSize,
    "lzma",
  );
  const rc = new RangeDecoder(input, HEADER_SIZE);
  if (rc.corrupted) throw corrupt("invalid range coder start");

  const litProbs = probs(0x300 << (lc + lp));
  const posSlot = probs(NUM_LEN_TO_POS_STATES << 6);
  const posDecoders = probs(1 + NUM_FULL_DISTANCES - END_POS_MODEL_INDEX);
  const align = probs(1 << NUM_ALIGN_BITS);
  const lenDecoder = new LenDecoder();
  const repLenDecoder = new LenDecoder();
  const isMatch = probs(NUM_STATES << NUM_POS_BITS_MAX);
  const isRep = probs(NUM_STATES);
  const isRepG0 = probs(NUM_STATES);
  const isRepG1 = probs(NUM_STATES);
  const isRepG2 = probs(NUM_STATES);
  const isRep0Long = probs(NUM_STATES << NUM_POS_BITS_MAX);
  const pbMask = (1 << pb) - 1;
  const lpMask = (1 << lp) - 1;

  let rep0 = 0, rep1 = 0, rep2 = 0, rep3 = 0;
  let state = 0;
  let remaining = unpackSize;

  const decodeDistance = (len: number): number => {
    const lenState = len > NUM_LEN_TO_POS_STATES - 1 ? NUM_LEN_TO_POS_STATES - 1 : len;
    const slot = rc.bitTree(posSlot, lenState << 6, 6);
    if (slot < START_POS_MODEL_INDEX) return slot;
    const numDirectBits = (slot >>> 1) - 1;
    let dist = (2 | (slot & 1)) * 2 ** numDirectBits;
    if (slot < END_POS_MODEL_INDEX) {
      dist += rc.bitTreeReverse(posDecoders, dist - slot, numDirectBits);
    } else {
      dist += rc.decodeDirectBits(numDirectBits - NUM_ALIGN_BITS) *
        (1 << NUM_ALIGN_BITS);
      dist += rc.bitTreeReverse(align, 0, NUM_ALIGN_BITS);
    }
    return dist;
  };

  for (;;) {
    if (sizeKnown && remaining === 0 && rc.isFinishedOk()) break;
    const posState = out.pos & pbMask;

    if (rc.decodeBit(isMatch, (state << NUM_POS_BITS_MAX) + posState) === 0) {
      if (sizeKnown && remaining === 0) {
        throw corrupt("data continues past the declared size");
      }
      const prevByte = out.pos === 0 ? 0 : out.getByte(1);
      const litState = ((out.pos & lpMask) << lc) + (prevByte >>> (8 - lc));
      const base = 0x300 * litState;
      let symbol = 1;
      if (state >= 7) {
        let matchByte = out.getByte(rep0 + 1);
        do {
          const matchBit = (matchByte >>> 7) & 1;
          matchByte <<= 1;
          const bit = rc.decodeBit(
            litProbs,
            base + ((1 + matchBit) << 8) + symbol,
          );
          symbol = (symbol << 1) | bit;
          if (matchBit !== bit) break;
        } while (symbol < 0x100);
      }
      while (symbol < 0x100) {
        symbol = (symbol << 1) | rc.decodeBit(litProbs, base + symbol);
      }
      out.putByte(symbol - 0x100);
      state = state < 4 ? 0 : state < 10 ? state - 3 : state - 6;
      remaining--;
      continue;
    }

    let len: number;
    if (rc.decodeBit(isRep, state) !== 0) {
      if (sizeKnown && remaining === 0) {
        throw corrupt("data continues past the declared size");
      }
      if (out.pos === 0) throw corrupt("repeated match before any output");
      if (rc.decodeBit(isRepG0, state) === 0) {
        if (
          rc.decodeBit(isRep0Long, (state << NUM_POS_BITS_MAX) + posState) === 0
        ) {
          state = state < 7 ? 9 : 11;
          out.putByte(out.getByte(rep0 + 1));
          remaining--;
          continue;
        }
      } else {
        let dist: number;
        if (rc.decodeBit(isRepG1, state) === 0) {
          dist = rep1;
        } else {
          if (rc.decodeBit(isRepG2, state) === 0) {
            dist = rep2;
          } else {
            dist = rep3;
            rep3 = rep2;
          }
          rep2 = rep1;
        }
        rep1 = rep0;
        rep0 = dist;
      }
      len = repLenDecoder.decode(rc, posState);
      state = state < 7 ? 8 : 11;
    } else {
      rep3 = rep2;
      rep2 = rep1;
      rep1 = rep0;
      len = lenDecoder.decode(rc, posState);
      state = state < 7 ? 7 : 10;
      rep0 = decodeDistance(len);
      if (rep0 === END_MARKER) {
        if (!rc.isFinishedOk()) throw corrupt("invalid data after end marker");
        if (sizeKnown && remaining !== 0) {
          throw corrupt(
            `end marker after ${out.pos} bytes, header declares ${unpackSize}`,
          );
        }
        break;
      }
      if (sizeKnown && remaining === 0) {
        throw corrupt("data continues past the declared size");
      }
      if (rep0 >= dictSize || rep0 >= out.pos) {
        throw corrupt(
          `match distance ${rep0 + 1} out of range at output byte ${out.pos}`,
        );
      }
    }
    len += MATCH_MIN_LEN;
    if (sizeKnown && remaining < len) {
      throw corrupt("match runs past the declared size");
    }
    out.copyMatch(rep0 + 1, len);
    remaining -= len;
  }

  if (rc.corrupted) throw corrupt("range coder reported corrupt data");
  if (rc.pos !== input.length) {
    throw corrupt(
      `${input.length - rc.pos} bytes of trailing data after the end of the stream`,
    );
  }
  return out.bytes();
}
