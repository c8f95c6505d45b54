// Unsigned LEB128 varints for frame lengths (up to 32 bits, at most 5 bytes),
// as Protobuf's size-delimited streams write them.

/** Longest varint of a 32-bit value. */
export const MAX_VARINT32_BYTES = 5;

/** Bytes needed to encode `value` (a non-negative 32-bit integer). */
export function varintSize(value: number): number {
  if (value < 0x80) return 1;
  if (value < 0x4000) return 2;
  if (value < 0x200000) return 3;
  if (value < 0x10000000) return 4;
  return 5;
}

/** Writes `value` at `offset` of `out`; returns the offset after it. */
export function writeVarint(
  out: Uint8Array,
  offset: number,
  value: number,
): number {
  while (value >= 0x80) {
    out[offset++] = (value & 0x7f) | 0x80;
    value = Math.floor(value / 128);
  }
  out[offset++] = value;
  return offset;
}
