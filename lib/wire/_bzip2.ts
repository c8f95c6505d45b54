/**
 * bzip2 (the `.bz2` stream format of bzip2 0.9.5 and later) for the
 * compression codec.
 *
 * No permissively licensed, synchronous bzip2 *encoder* exists on npm
 * (`compressjs` is GPL, `bzip-deflate` is CC-SA 3.0, `bzip2-wasm` needs an
 * async init that patches globals), so the encoder is written here: RLE1,
 * a Burrows–Wheeler transform by prefix doubling over cyclic rotations,
 * move-to-front with RUNA/RUNB zero-run coding, and 2–6 Huffman tables chosen
 * per 50 symbols as in bzip2's `compress.c`.
 *
 * The decoder follows libbzip2's `decompress.c`. It is written here too,
 * rather than taken from `seek-bzip`, because that one reads zeros past the
 * end of a truncated input and allocates 4 × 100 000 × level bytes for every
 * block: 1 771 concatenated one-byte streams (64 KiB of input) cost it about
 * 6 GB of allocations and over a second. Here the block buffer grows with the data each block really
 * holds and is shared by all blocks, the output buffer never grows past the
 * bound, and a read past the end of the input is an error.
 *
 * This file holds what the two share, the CRC and the symbols of the block
 * format; the encoder is `_bzip2_encode.ts`, the decoder `_bzip2_decode.ts`.
 *
 * Private to `lib/wire/`.
 *
 * @module
 */

/** The CRC-32 of bzip2 (polynomial 0x04c11db7, most significant bit first), one entry per byte. */
export const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i << 24;
    for (let k = 0; k < 8; k++) {
      c = c & 0x80000000 ? (c << 1) ^ 0x04c11db7 : c << 1;
    }
    table[i] = c >>> 0;
  }
  return table;
})();

/** The two symbols that code a run of zeros after move-to-front. */
export const RUNA = 0;
export const RUNB = 1;
/** Symbols coded with one Huffman table before the selector may change. */
export const GROUP_SIZE = 50;
