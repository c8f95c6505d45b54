/**
 * Payload compression for the `SET_CONNECTION_OPT` compression settings.
 *
 * The protocol fixes five settings and their wire values; this module fixes
 * the container format of each, so another implementation can interoperate:
 *
 * | setting | value | bytes on the wire | encoder | decoder |
 * | --- | --- | --- | --- | --- |
 * | `bz2` | 0 | one bzip2 stream (`.bz2` file format: `BZh` + block-size digit, blocks, end-of-stream marker and combined CRC) | own (`_bzip2_encode.ts`) | own (`_bzip2_decode.ts`) |
 * | `gzip` | 1 | one gzip member, RFC 1952 (deflate, level 6) | `node:zlib` `gzipSync` | `node:zlib` `gunzipSync` |
 * | `lzma` | 2 | `.lzma` "LZMA alone" (LZMA1): 13-byte header with properties `lc=3 lp=0 pb=2`, 64 KiB dictionary size and the *known* uncompressed size, then the range-coded data with an end marker; **not** `.xz` | `lzma1` package, mode 1 | own (`_lzma.ts`) |
 * | `zlib` | 3 | zlib stream, RFC 1950 (2-byte header, deflate RFC 1951, Adler-32) | `node:zlib` `deflateSync` | `node:zlib` `inflateSync` |
 * | `snappy` | 4 | one raw Snappy block (varint uncompressed length, then literals and copies); **not** the Snappy framing format | `snappyjs` package | own (`_snappy.ts`) |
 *
 * These match Python's `bz2.compress`, `gzip.compress`,
 * `lzma.compress(format=lzma.FORMAT_ALONE)`, `zlib.compress` and
 * python-snappy's `snappy.compress`, and the command-line `bzip2`, `gzip` and
 * `xz --format=lzma`. The decoders also accept what those tools write that
 * the encoders here do not: several concatenated bzip2 streams or gzip
 * members, and `.lzma` streams of unknown size that end with an end marker.
 * They refuse what liblzma and libbzip2 refuse, and also `.lzma` properties
 * with `lc + lp > 4` (as liblzma does) and bzip2's obsolete randomised blocks
 * (which no bzip2 since 0.9.5 writes). The own decoders exist because the
 * packages' decoders trust the input too much (see each file's doc).
 *
 * **Decompression bombs.** {@linkcode decompress} takes a required
 * `maxOutputSize` and stops, throwing {@linkcode DecompressionLimitError},
 * as soon as the output would pass it, without first inflating everything:
 *
 * - gzip, zlib: `node:zlib`'s `maxOutputLength`, which aborts inflation
 *   between chunks once the output passes the bound.
 * - snappy: the uncompressed length declared in the block's preamble is
 *   checked before the output is allocated (and must be one the input can
 *   hold); the output must then be exactly that long.
 * - lzma: a known size in the header is checked before decoding; an unknown
 *   size is enforced byte by byte by the decoder (`_lzma.ts`), whose output
 *   buffer, which is also its dictionary, grows as the data decodes and never
 *   past the bound.
 * - bz2: the decoder (`_bzip2_decode.ts`) stops a block as soon as its entries
 *   could only expand past the bound (n entries give at least 4n/5 bytes),
 *   and its output buffer throws at the first byte past the bound.
 *
 * No input makes a decoder allocate much more than the bound or work much
 * longer than the output (or input) is long. Corrupt, truncated or trailing
 * data throws {@linkcode CompressionError} (with `node:zlib`'s error as
 * `cause` for gzip and zlib), never another error type and never a hang.
 * Everything here is synchronous.
 *
 * @example Round trip through a negotiated setting
 * ```ts
 * import assert from "node:assert/strict";
 * import { compress, COMPRESSION_SETTINGS, decompress } from "@carrier/p2p/protocol";
 *
 * const setting = COMPRESSION_SETTINGS.zlib;
 * const data = new TextEncoder().encode("hello ".repeat(100));
 * const packed = compress(setting, data);
 * const unpacked = decompress(setting, packed, { maxOutputSize: 1 << 20 });
 * assert.ok(packed.length < data.length);
 * assert.deepEqual(unpacked, data);
 * ```
 *
 * @module
 */

import { deflateSync, gunzipSync, gzipSync, inflateSync } from "node:zlib";
// @ts-types="./_snappyjs.d.ts"
import { compress as snappyCompress } from "snappyjs";
import { compress as lzmaCompress } from "lzma1";
import {
  ArgumentError,
  CompressionError,
  DecompressionLimitError,
  UnsupportedCompressionError,
} from "../errors.ts";
import { bzip2Compress } from "./_bzip2_encode.ts";
import { bzip2Decompress } from "./_bzip2_decode.ts";
import { lzmaDecompress } from "./_lzma.ts";
import { snappyDecompress } from "./_snappy.ts";

/**
 * The name of a compression setting.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { CompressionName } from "@carrier/p2p";
 * const preferred: CompressionName = "snappy";
 * assert.equal(preferred, "snappy");
 * ```
 */
export type CompressionName = "bz2" | "gzip" | "lzma" | "zlib" | "snappy";

/**
 * The wire value of each compression setting, as fixed by the protocol.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { COMPRESSION_SETTINGS } from "@carrier/p2p/protocol";
 * assert.equal(COMPRESSION_SETTINGS.snappy, 4);
 * ```
 */
export const COMPRESSION_SETTINGS: Readonly<Record<CompressionName, number>> = Object.freeze({
  bz2: 0,
  gzip: 1,
  lzma: 2,
  zlib: 3,
  snappy: 4,
});

/**
 * Every setting carrier can compress and decode, in wire-value order: what a
 * node announces by default.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SUPPORTED_COMPRESSIONS } from "@carrier/p2p/protocol";
 * assert.deepEqual(SUPPORTED_COMPRESSIONS, [0, 1, 2, 3, 4]);
 * ```
 */
export const SUPPORTED_COMPRESSIONS: readonly number[] = Object.freeze(
  Object.values(COMPRESSION_SETTINGS).sort((a, b) => a - b),
);

/**
 * Options for decompressing.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { DecompressOptions } from "@carrier/p2p/protocol";
 * const options: DecompressOptions = { maxOutputSize: 64 * 1024 };
 * assert.equal(options.maxOutputSize, 65536);
 * ```
 */
export interface DecompressOptions {
  /**
   * The most bytes the decompressed output may have; more is a
   * {@linkcode DecompressionLimitError}. A non-negative safe integer. It has
   * no default, as there is no size that is safe for every caller: pass the
   * largest payload the connection accepts.
   */
  maxOutputSize: number;
}

/**
 * One compression setting's encoder and bounded decoder.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { getCodec } from "@carrier/p2p/protocol";
 * const codec = getCodec(4);
 * const data = new Uint8Array(1000).fill(7);
 * const back = codec.decompress(codec.compress(data), { maxOutputSize: 1000 });
 * assert.equal(codec.name, "snappy");
 * assert.deepEqual(back, data);
 * ```
 */
export interface Codec {
  /** The setting's name. */
  readonly name: CompressionName;
  /** The setting's wire value. */
  readonly setting: number;
  /**
   * Compresses `data` into this setting's container format.
   *
   * @throws {CompressionError} if the underlying encoder fails.
   */
  compress(data: Uint8Array): Uint8Array;
  /**
   * Decompresses `data`, producing at most `options.maxOutputSize` bytes.
   *
   * @throws {DecompressionLimitError} if the output would be larger.
   * @throws {CompressionError} if `data` is corrupt, truncated or has
   * trailing bytes.
   */
  decompress(data: Uint8Array, options: DecompressOptions): Uint8Array;
}

interface RawCodec {
  compress(data: Uint8Array): Uint8Array;
  decompress(data: Uint8Array, maxOutputSize: number): Uint8Array;
}

/**
 * `lzma1` mode 1: 64 KiB dictionary, binary-tree-2 match finder. On the
 * bench's 64 KiB payload it ends within 0.6% of modes 5–9 (7 941 vs 7 898
 * bytes) in half their time, and it allocates the least per call.
 */
const LZMA_MODE = 1;

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A plain Uint8Array with its own buffer, from a `node:zlib` Buffer. */
function ownBytes(buf: Uint8Array): Uint8Array {
  if (buf.byteOffset === 0 && buf.byteLength === buf.buffer.byteLength) {
    return new Uint8Array(buf.buffer, 0, buf.byteLength);
  }
  return new Uint8Array(buf);
}

type ZlibInflate = (
  data: Uint8Array,
  options: { info: boolean; maxOutputLength: number },
) => unknown;

function zlibCodec(
  name: CompressionName,
  deflate: (data: Uint8Array) => Uint8Array,
  inflate: ZlibInflate,
): RawCodec {
  return {
    compress: (data) => ownBytes(deflate(data)),
    decompress(data, maxOutputSize) {
      let out: Uint8Array;
      let consumed: number;
      try {
        // `info: true` also returns the engine, whose `bytesWritten` is the
        // number of input bytes inflated: anything after that is trailing.
        const result = inflate(data, {
          info: true,
          maxOutputLength: Math.max(1, maxOutputSize),
        }) as { buffer: Uint8Array; engine: { bytesWritten: number } };
        out = result.buffer;
        consumed = result.engine.bytesWritten;
      } catch (error) {
        if ((error as { code?: unknown }).code === "ERR_BUFFER_TOO_LARGE") {
          throw new DecompressionLimitError(
            `Cannot decompress ${name} data: output exceeds maxOutputSize ${maxOutputSize}`,
            { cause: error },
          );
        }
        throw new CompressionError(
          `Cannot decompress ${name} data: ${message(error)}`,
          { cause: error },
        );
      }
      if (out.length > maxOutputSize) {
        throw new DecompressionLimitError(
          `Cannot decompress ${name} data: output exceeds maxOutputSize ${maxOutputSize}`,
        );
      }
      if (consumed !== data.length) {
        throw new CompressionError(
          `Cannot decompress ${name} data: ${
            data.length - consumed
          } bytes of trailing data after the end of the stream`,
        );
      }
      return ownBytes(out);
    },
  };
}

const RAW: Readonly<Record<CompressionName, RawCodec>> = {
  bz2: { compress: bzip2Compress, decompress: bzip2Decompress },
  gzip: zlibCodec("gzip", gzipSync, gunzipSync),
  lzma: {
    compress: (data) => lzmaCompress(data, LZMA_MODE),
    decompress: lzmaDecompress,
  },
  zlib: zlibCodec("zlib", deflateSync, inflateSync),
  snappy: { compress: snappyCompress, decompress: snappyDecompress },
};

function checkBytes(data: unknown): asserts data is Uint8Array {
  if (!(data instanceof Uint8Array)) {
    throw new ArgumentError(
      `expected Uint8Array, got ${
        data === null
          ? "null"
          : typeof data === "object"
          ? data.constructor?.name ?? "object"
          : typeof data
      }`,
    );
  }
}

function checkMaxOutputSize(options: DecompressOptions | undefined): number {
  const max = options?.maxOutputSize;
  if (typeof max !== "number" || !Number.isSafeInteger(max) || max < 0) {
    throw new ArgumentError(
      `maxOutputSize must be a non-negative safe integer, got ${max}`,
    );
  }
  return max;
}

function makeCodec(name: CompressionName): Codec {
  const raw = RAW[name];
  return Object.freeze({
    name,
    setting: COMPRESSION_SETTINGS[name],
    compress(data: Uint8Array): Uint8Array {
      checkBytes(data);
      try {
        return raw.compress(data);
      } catch (error) {
        if (error instanceof CompressionError) throw error;
        throw new CompressionError(
          `Cannot compress ${name} data: ${message(error)}`,
          { cause: error },
        );
      }
    },
    decompress(data: Uint8Array, options: DecompressOptions): Uint8Array {
      checkBytes(data);
      const max = checkMaxOutputSize(options);
      try {
        return raw.decompress(data, max);
      } catch (error) {
        if (error instanceof CompressionError) throw error;
        throw new CompressionError(
          `Cannot decompress ${name} data: ${message(error)}`,
          { cause: error },
        );
      }
    },
  });
}

const CODECS: readonly Codec[] = (
  Object.keys(COMPRESSION_SETTINGS) as CompressionName[]
)
  .map(makeCodec)
  .sort((a, b) => a.setting - b.setting);

/**
 * Returns the codec for a compression setting's wire value.
 *
 * @throws {UnsupportedCompressionError} if `setting` is not one of the five
 * values in {@linkcode COMPRESSION_SETTINGS}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { getCodec } from "@carrier/p2p/protocol";
 * assert.equal(getCodec(2).name, "lzma");
 * ```
 */
export function getCodec(setting: number): Codec {
  const codec = Number.isInteger(setting) ? CODECS[setting] : undefined;
  if (codec === undefined) {
    throw new UnsupportedCompressionError(
      `Unsupported compression setting ${setting}: expected one of ${
        CODECS.map((c) => `${c.setting} (${c.name})`).join(", ")
      }`,
    );
  }
  return codec;
}

/**
 * Compresses `data` with the setting whose wire value is `setting`.
 *
 * @throws {UnsupportedCompressionError} if `setting` is unknown.
 * @throws {CompressionError} if the underlying encoder fails.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { compress } from "@carrier/p2p/protocol";
 * const packed = compress(1, new TextEncoder().encode("hi"));
 * assert.deepEqual(packed.subarray(0, 2), new Uint8Array([0x1f, 0x8b])); // gzip magic
 * ```
 */
export function compress(setting: number, data: Uint8Array): Uint8Array {
  return getCodec(setting).compress(data);
}

/**
 * Decompresses `data` with the setting whose wire value is `setting`,
 * producing at most `options.maxOutputSize` bytes.
 *
 * @throws {UnsupportedCompressionError} if `setting` is unknown.
 * @throws {DecompressionLimitError} if the output would pass
 * `options.maxOutputSize`; decoding stops there.
 * @throws {CompressionError} if `data` is corrupt, truncated or has trailing
 * bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DecompressionLimitError } from "@carrier/p2p";
 * import { compress, decompress } from "@carrier/p2p/protocol";
 *
 * const bomb = compress(0, new Uint8Array(1 << 20)); // 1 MiB of zeros
 * assert.throws(() => decompress(0, bomb, { maxOutputSize: 4096 }), DecompressionLimitError);
 * ```
 */
export function decompress(
  setting: number,
  data: Uint8Array,
  options: DecompressOptions,
): Uint8Array {
  return getCodec(setting).decompress(data, options);
}
