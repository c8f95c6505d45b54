/**
 * A strict, bounded decoder for the raw Snappy block format (no framing),
 * as described in google/snappy's `format_description.txt`. Compression is
 * left to the `snappyjs` package; its decoder is not used because it does not
 * check that the output fills the declared length and can loop on crafted
 * literal lengths.
 *
 * @module
 */

import { CompressionError, DecompressionLimitError } from "../errors.ts";

const PREFIX = "Cannot decompress snappy data";

function corrupt(detail: string): CompressionError {
  return new CompressionError(`${PREFIX}: ${detail}`);
}

/**
 * Decodes one raw Snappy block. The declared uncompressed length is checked
 * against `maxOutputSize` before anything is allocated, and the output is
 * exactly that long or the input is rejected.
 */
export function snappyDecompress(
  input: Uint8Array,
  maxOutputSize: number,
): Uint8Array {
  let pos = 0;
  let length = 0;
  for (let shift = 0;; shift += 7) {
    if (pos >= input.length) {
      throw corrupt(
        `truncated length preamble (${input.length} bytes of input)`,
      );
    }
    const byte = input[pos++];
    if (shift === 28 && byte > 0x0f) {
      throw corrupt("length preamble exceeds 32 bits");
    }
    length += (byte & 0x7f) * 2 ** shift;
    if (byte < 0x80) break;
  }
  if (length > maxOutputSize) {
    throw new DecompressionLimitError(
      `${PREFIX}: header declares ${length} bytes, more than maxOutputSize ${maxOutputSize}`,
    );
  }

  // No element yields more than 64 bytes per 3 bytes of input (a 2-byte
  // offset copy), so a longer declared length is corrupt: refuse it before
  // allocating rather than zero-fill a large buffer for a few bytes of input.
  const room = Math.floor(((input.length - pos) * 64) / 3);
  if (length > room) {
    throw corrupt(
      `header declares ${length} bytes, more than ${input.length - pos} bytes of input can hold`,
    );
  }
  const out = new Uint8Array(length);
  let op = 0;
  while (pos < input.length) {
    const tag = input[pos++];
    const kind = tag & 3;
    if (kind === 0) {
      let len = tag >>> 2;
      if (len >= 60) {
        const extra = len - 59;
        if (pos + extra > input.length) {
          throw corrupt(`truncated literal length at input byte ${pos}`);
        }
        len = 0;
        for (let k = 0; k < extra; k++) len += input[pos + k] * 2 ** (8 * k);
        pos += extra;
      }
      len += 1;
      if (pos + len > input.length) {
        throw corrupt(
          `literal of ${len} bytes at input byte ${pos} runs past the end of the input`,
        );
      }
      if (op + len > length) {
        throw corrupt(
          `output runs past the declared length ${length} at output byte ${op}`,
        );
      }
      if (len < 32) {
        for (const end = pos + len; pos < end;) out[op++] = input[pos++];
      } else {
        out.set(input.subarray(pos, pos + len), op);
        pos += len;
        op += len;
      }
      continue;
    }

    let len: number;
    let offset: number;
    if (kind === 1) {
      if (pos + 1 > input.length) {
        throw corrupt(`truncated copy at input byte ${pos - 1}`);
      }
      len = 4 + ((tag >>> 2) & 7);
      offset = ((tag >>> 5) << 8) | input[pos];
      pos += 1;
    } else if (kind === 2) {
      if (pos + 2 > input.length) {
        throw corrupt(`truncated copy at input byte ${pos - 1}`);
      }
      len = (tag >>> 2) + 1;
      offset = input[pos] | (input[pos + 1] << 8);
      pos += 2;
    } else {
      if (pos + 4 > input.length) {
        throw corrupt(`truncated copy at input byte ${pos - 1}`);
      }
      len = (tag >>> 2) + 1;
      offset = input[pos] + input[pos + 1] * 2 ** 8 + input[pos + 2] * 2 ** 16 +
        input[pos + 3] * 2 ** 24;
      pos += 4;
    }
    if (offset === 0 || offset > op) {
      throw corrupt(`copy offset ${offset} out of range at output byte ${op}`);
    }
    if (op + len > length) {
      throw corrupt(
        `output runs past the declared length ${length} at output byte ${op}`,
      );
    }
    if (len >= 32 && offset >= len) {
      out.copyWithin(op, op - offset, op - offset + len);
      op += len;
    } else {
      // Byte by byte: short copies, and overlapping ones that repeat a pattern.
      for (const end = op + len; op < end; op++) out[op] = out[op - offset];
    }
  }
  if (op !== length) {
    throw corrupt(
      `input ends after ${op} bytes of output, header declares ${length}`,
    );
  }
  return out;
}
