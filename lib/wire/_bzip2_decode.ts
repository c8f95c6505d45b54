/**
 * The bzip2 decoder, after libbzip2's `decompress.c`, bounded in what it
 * allocates and refusing to read past the end of its input (see `_bzip2.ts`).
 *
 * Private to `lib/wire/`.
 *
 * @module
 */

import { CompressionError } from "../errors.ts";
import { CRC_TABLE, GROUP_SIZE, RUNA, RUNB } from "./_bzip2.ts";
import { BoundedOutput } from "./_output.ts";

const PREFIX = "Cannot decompress bz2 data";

const MAX_CODE_LEN_DECODE = 20;
const MAX_ALPHA_SIZE = 258;

/** MSB-first bit reader that throws at the end of the input. */
class BitReader {
  #data: Uint8Array;
  pos: number;
  #buf = 0;
  #count = 0;

  constructor(data: Uint8Array, pos: number) {
    this.#data = data;
    this.pos = pos;
  }

  /** Reads `n` ≤ 24 bits. */
  bits(n: number): number {
    while (this.#count < n) {
      if (this.pos >= this.#data.length) {
        throw corrupt(`truncated input (${this.#data.length} bytes)`);
      }
      this.#buf = (this.#buf << 8) | this.#data[this.pos++];
      this.#count += 8;
    }
    this.#count -= n;
    return (this.#buf >>> this.#count) & ((1 << n) - 1);
  }

  bit(): number {
    return this.bits(1);
  }

  bits32(): number {
    return ((this.bits(16) << 16) | this.bits(16)) >>> 0;
  }

  /** Drops the bits left in the current byte. */
  align(): void {
    this.#count = 0;
  }
}

function corrupt(detail: string): CompressionError {
  return new CompressionError(`${PREFIX}: ${detail}`);
}

/** Canonical Huffman decoding tables, as libbzip2's hbCreateDecodeTables. */
interface HuffmanTable {
  minLen: number;
  limit: Int32Array;
  base: Int32Array;
  perm: Int32Array;
}

function decodeTable(lengths: Uint8Array, alphaSize: number): HuffmanTable {
  let minLen = 32;
  let maxLen = 0;
  for (let i = 0; i < alphaSize; i++) {
    if (lengths[i] > maxLen) maxLen = lengths[i];
    if (lengths[i] < minLen) minLen = lengths[i];
  }
  const perm = new Int32Array(MAX_ALPHA_SIZE);
  const base = new Int32Array(MAX_CODE_LEN_DECODE + 2);
  const limit = new Int32Array(MAX_CODE_LEN_DECODE + 1);
  let pp = 0;
  for (let l = minLen; l <= maxLen; l++) {
    for (let j = 0; j < alphaSize; j++) if (lengths[j] === l) perm[pp++] = j;
  }
  for (let i = 0; i < alphaSize; i++) base[lengths[i] + 1]++;
  for (let i = 1; i < base.length; i++) base[i] += base[i - 1];
  let vec = 0;
  for (let l = minLen; l <= maxLen; l++) {
    vec += base[l + 1] - base[l];
    limit[l] = vec - 1;
    vec <<= 1;
  }
  for (let l = minLen + 1; l <= maxLen; l++) {
    base[l] = ((limit[l - 1] + 1) << 1) - base[l];
  }
  for (let l = maxLen + 1; l <= MAX_CODE_LEN_DECODE; l++) limit[l] = -1;
  return { minLen, limit, base, perm };
}

function decodeSymbol(r: BitReader, t: HuffmanTable): number {
  let n = t.minLen;
  let v = r.bits(n);
  while (v > t.limit[n]) {
    if (++n > MAX_CODE_LEN_DECODE) throw corrupt("invalid Huffman code");
    v = (v << 1) | r.bit();
  }
  const index = v - t.base[n];
  if (index < 0 || index >= MAX_ALPHA_SIZE) {
    throw corrupt("invalid Huffman code");
  }
  return t.perm[index];
}

/**
 * Block buffer shared by the blocks of one call: it grows with the data a
 * block actually holds instead of the 100 000 × level the header allows, so
 * many tiny blocks cost no large allocations.
 */
class BlockBuffer {
  tt = new Uint32Array(4096);

  ensure(n: number, cap: number): void {
    if (n <= this.tt.length) return;
    const grown = new Uint32Array(
      Math.max(n, Math.min(cap, this.tt.length * 2)),
    );
    grown.set(this.tt);
    this.tt = grown;
  }
}

/** Decodes one block and appends its output; returns the block's CRC. */
function readBlock(
  r: BitReader,
  level: number,
  block: BlockBuffer,
  out: BoundedOutput,
): number {
  const storedCrc = r.bits32();
  if (r.bit()) throw corrupt("randomised blocks are not supported");
  const origPtr = r.bits(24);

  const seqToUnseq = new Uint8Array(256);
  let nInUse = 0;
  const used16 = r.bits(16);
  for (let i = 0; i < 16; i++) {
    if (!(used16 & (0x8000 >>> i))) continue;
    const bits = r.bits(16);
    for (let j = 0; j < 16; j++) {
      if (bits & (0x8000 >>> j)) seqToUnseq[nInUse++] = i * 16 + j;
    }
  }
  if (nInUse === 0) throw corrupt("block uses no symbols");
  const alphaSize = nInUse + 2;

  const nGroups = r.bits(3);
  if (nGroups < 2 || nGroups > 6) {
    throw corrupt(`invalid number of Huffman tables ${nGroups}`);
  }
  const nSelectors = r.bits(15);
  if (nSelectors === 0) throw corrupt("no selectors");
  const selectors = new Uint8Array(nSelectors);
  const groupMtf = [0, 1, 2, 3, 4, 5];
  for (let s = 0; s < nSelectors; s++) {
    let j = 0;
    while (r.bit()) {
      if (++j >= nGroups) throw corrupt("invalid selector");
    }
    const v = groupMtf[j];
    for (; j > 0; j--) groupMtf[j] = groupMtf[j - 1];
    groupMtf[0] = v;
    selectors[s] = v;
  }

  const tables: HuffmanTable[] = [];
  const lengths = new Uint8Array(alphaSize);
  for (let t = 0; t < nGroups; t++) {
    let curr = r.bits(5);
    for (let i = 0; i < alphaSize; i++) {
      for (;;) {
        if (curr < 1 || curr > MAX_CODE_LEN_DECODE) {
          throw corrupt(`invalid code length ${curr}`);
        }
        if (!r.bit()) break;
        curr += r.bit() ? -1 : 1;
      }
      lengths[i] = curr;
    }
    tables.push(decodeTable(lengths, alphaSize));
  }

  // Huffman + RUNA/RUNB + move-to-front into tt[0, nblock). Undoing RLE1
  // turns n entries into at least 4n/5 bytes, so a block of more than
  // 5/4 × room + 5 entries would pass the output bound: stop it here, before
  // a few run symbols can make the block buffer large.
  const nblockMax = level * 100_000;
  const entryLimit = Math.min(nblockMax, Math.floor(out.room * 1.25) + 5);
  const eob = nInUse + 1;
  const yy = new Uint8Array(256);
  for (let i = 0; i < 256; i++) yy[i] = i;
  const counts = new Int32Array(256);
  let nblock = 0;
  let runLength = 0;
  let runWeight = 0;
  let selector = 0;
  let groupLeft = 0;
  let table = tables[0];
  for (;;) {
    if (groupLeft === 0) {
      if (selector >= nSelectors) throw corrupt("ran out of selectors");
      table = tables[selectors[selector++]];
      groupLeft = GROUP_SIZE;
    }
    groupLeft--;
    const sym = decodeSymbol(r, table);
    if (sym === RUNA || sym === RUNB) {
      if (runWeight === 0) runWeight = 1;
      runLength += (sym + 1) * runWeight;
      runWeight *= 2;
      if (runLength > nblockMax) throw corrupt("run exceeds the block size");
      continue;
    }
    if (runWeight !== 0) {
      if (nblock + runLength > nblockMax) {
        throw corrupt("block exceeds its declared size");
      }
      if (nblock + runLength > entryLimit) throw out.limitError();
      const uc = seqToUnseq[yy[0]];
      counts[uc] += runLength;
      block.ensure(nblock + runLength, nblockMax);
      block.tt.fill(uc, nblock, nblock + runLength);
      nblock += runLength;
      runLength = 0;
      runWeight = 0;
    }
    if (sym === eob) break;
    if (sym > eob) throw corrupt("invalid symbol");
    let index = sym - 1;
    const v = yy[index];
    for (; index > 0; index--) yy[index] = yy[index - 1];
    yy[0] = v;
    const uc = seqToUnseq[v];
    if (nblock >= nblockMax) throw corrupt("block exceeds its declared size");
    if (nblock >= entryLimit) throw out.limitError();
    counts[uc]++;
    if (nblock === block.tt.length) block.ensure(nblock + 1, nblockMax);
    block.tt[nblock++] = uc;
  }
  if (origPtr >= nblock) {
    throw corrupt(`origin pointer ${origPtr} outside block of ${nblock}`);
  }

  // Inverse BWT: link each position to the next, then undo RLE1.
  const tt = block.tt;
  const cftab = new Int32Array(256);
  for (let i = 1; i < 256; i++) cftab[i] = cftab[i - 1] + counts[i - 1];
  for (let i = 0; i < nblock; i++) {
    const uc = tt[i] & 0xff;
    tt[cftab[uc]++] |= i << 8;
  }
  let tPos = tt[origPtr] >>> 8;
  let crc = 0xffffffff;
  let last = -1;
  let run = 0;
  let buf = out.buf;
  let pos = out.pos;
  for (let i = 0; i < nblock; i++) {
    const entry = tt[tPos];
    const b = entry & 0xff;
    tPos = entry >>> 8;
    if (run === 4) {
      if (pos + b > buf.length) {
        out.pos = pos;
        out.reserve(b);
        buf = out.buf;
      }
      buf.fill(last, pos, pos + b);
      pos += b;
      for (let k = 0; k < b; k++) {
        crc = (crc << 8) ^ CRC_TABLE[((crc >>> 24) ^ last) & 0xff];
      }
      run = 0;
      last = -1;
      continue;
    }
    if (pos === buf.length) {
      out.pos = pos;
      out.reserve(1);
      buf = out.buf;
    }
    buf[pos++] = b;
    crc = (crc << 8) ^ CRC_TABLE[((crc >>> 24) ^ b) & 0xff];
    if (b === last) {
      run++;
    } else {
      last = b;
      run = 1;
    }
  }
  out.pos = pos;
  crc = ~crc >>> 0;
  if (crc !== storedCrc) {
    throw corrupt(
      `block CRC mismatch (computed ${crc.toString(16)}, stored ${storedCrc.toString(16)})`,
    );
  }
  return crc;
}

/**
 * Decodes bzip2 data (one stream, or several concatenated as `bzip2` and
 * Python's `bz2` accept), refusing to produce more than `maxOutputSize` bytes.
 * Anything after the last stream that is not another stream is an error.
 */
export function bzip2Decompress(
  data: Uint8Array,
  maxOutputSize: number,
): Uint8Array {
  const out = new BoundedOutput(
    Math.max(1024, data.length * 4),
    maxOutputSize,
    "bz2",
  );
  const block = new BlockBuffer();
  let pos = 0;
  do {
    if (
      data.length - pos < 4 || data[pos] !== 0x42 || data[pos + 1] !== 0x5a ||
      data[pos + 2] !== 0x68
    ) {
      throw corrupt(
        pos === 0
          ? `missing "BZh" header`
          : `${data.length - pos} bytes of trailing data after the end of the stream`,
      );
    }
    const level = data[pos + 3] - 0x30;
    if (level < 1 || level > 9) {
      throw corrupt(`invalid block size digit ${data[pos + 3]}`);
    }
    const r = new BitReader(data, pos + 4);
    let combined = 0;
    for (;;) {
      const magicHi = r.bits(24);
      const magicLo = r.bits(24);
      if (magicHi === 0x314159 && magicLo === 0x265359) {
        const crc = readBlock(r, level, block, out);
        combined = (((combined << 1) | (combined >>> 31)) ^ crc) >>> 0;
      } else if (magicHi === 0x177245 && magicLo === 0x385090) {
        const stored = r.bits32();
        if (stored !== combined) {
          throw corrupt(
            `stream CRC mismatch (computed ${combined.toString(16)}, stored ${
              stored.toString(16)
            })`,
          );
        }
        r.align();
        break;
      } else {
        throw corrupt("invalid block header");
      }
    }
    pos = r.pos;
  } while (pos < data.length);
  return out.bytes();
}
