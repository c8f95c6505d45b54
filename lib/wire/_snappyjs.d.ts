// Types for the part of the untyped `snappyjs` package that compression.ts uses.

/** Compresses `input` into one raw Snappy block (no framing). */
export function compress(input: Uint8Array): Uint8Array;
