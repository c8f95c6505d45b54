/**
 * Byte-level and Protobuf-wire-level mutators for the fuzz campaign.
 *
 * - {@linkcode mutateBytes}: bit and byte flips, interesting values,
 *   truncation, extension, insertion, deletion, duplication, splicing of
 *   ranges, varint edge values and overlong varints written anywhere.
 * - {@linkcode mutateProto}: reads the bytes as Protobuf wire format and
 *   swaps, duplicates, drops or renumbers fields, changes wire types, puts
 *   edge values into varints, declares huge or wrong lengths, and recurses
 *   into length-delimited fields that parse as messages.
 *
 * @module
 */
import type { Rng } from "./_rng.ts";

/** Varint values at the edges of the integer types Protobuf and carrier use. */
export const EDGE_VARINTS: readonly bigint[] = [
  0n,
  1n,
  2n,
  15n,
  16n,
  63n,
  64n,
  127n,
  128n,
  255n,
  256n,
  1000n,
  16383n,
  16384n,
  65535n,
  65536n,
  65537n,
  0x1f_ffffn,
  0x20_0000n,
  1n << 20n,
  (1n << 20n) + 1n,
  0x0fff_ffffn,
  0x1000_0000n,
  0x7fff_ffffn,
  0x8000_0000n,
  0xffff_fffen,
  0xffff_ffffn,
  0x1_0000_0000n,
  0x7_ffff_ffffn,
  (1n << 53n) - 1n,
  1n << 53n,
  (1n << 53n) + 1n,
  0x7fff_ffff_ffff_ffffn,
  0x8000_0000_0000_0000n,
  0xffff_ffff_ffff_fffen,
  0xffff_ffff_ffff_ffffn,
];

/** Encodes an unsigned value (up to 70 bits) as a varint. */
export function varint(value: bigint): Uint8Array {
  const out: number[] = [];
  let v = value & ((1n << 70n) - 1n);
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) byte |= 0x80;
    out.push(byte);
  } while (v > 0n);
  return Uint8Array.from(out);
}

/** A varint edge value, or an overlong / over-long-by-protobuf encoding. */
export function edgeVarint(rng: Rng): Uint8Array {
  return rng.weighted<() => Uint8Array>([
    [70, () => varint(rng.pick(EDGE_VARINTS))],
    // Overlong: padded with continuation bytes (valid up to 10 bytes).
    [10, () => {
      const base = varint(BigInt(rng.int(256)));
      const pad = rng.range(1, 10);
      const out = new Uint8Array(base.length + pad);
      out.set(base);
      for (let i = base.length - 1; i < out.length - 1; i++) out[i] |= 0x80;
      return out;
    }],
    // Eleven or more bytes: never valid.
    [10, () => {
      const n = rng.range(10, 16);
      const out = new Uint8Array(n).fill(0xff);
      out[n - 1] = rng.chance(0.5) ? 0x01 : 0x7f;
      return out;
    }],
    // Unterminated.
    [10, () => new Uint8Array(rng.range(1, 6)).fill(0x80)],
  ])();
}

const INTERESTING_8 = [0, 1, 0x7f, 0x80, 0xff, 0x10, 0x20, 0x40, 0x0a, 0x12, 0x22];
const INTERESTING_16 = [0, 0x7fff, 0x8000, 0xffff, 0x0100, 0x00ff, 0xfffe];
const INTERESTING_32 = [0, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, 0x0001_0000, 0x0000_ffff];

/** Concatenates byte arrays. */
export function concat(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

type ByteOp = (rng: Rng, b: Uint8Array, max: number) => Uint8Array;

const BYTE_OPS: readonly (readonly [number, ByteOp])[] = [
  [12, (rng, b) => { // bit flip
    if (b.length === 0) return rng.bytes(1);
    const out = b.slice();
    const i = rng.int(out.length);
    out[i] ^= 1 << rng.int(8);
    return out;
  }],
  [6, (rng, b) => { // several bit flips
    if (b.length === 0) return rng.bytes(2);
    const out = b.slice();
    for (let k = rng.range(2, 8); k > 0; k--) out[rng.int(out.length)] ^= 1 << rng.int(8);
    return out;
  }],
  [8, (rng, b) => { // random byte
    if (b.length === 0) return rng.bytes(1);
    const out = b.slice();
    out[rng.int(out.length)] = rng.u32();
    return out;
  }],
  [6, (rng, b) => { // interesting 8/16/32
    if (b.length === 0) return Uint8Array.of(rng.pick(INTERESTING_8));
    const out = b.slice();
    const i = rng.int(out.length);
    const width = rng.pick([1, 2, 4]);
    const v = width === 1
      ? rng.pick(INTERESTING_8)
      : width === 2
      ? rng.pick(INTERESTING_16)
      : rng.pick(INTERESTING_32);
    const big = rng.chance(0.5);
    for (let k = 0; k < width && i + k < out.length; k++) {
      const shift = big ? 8 * (width - 1 - k) : 8 * k;
      out[i + k] = (v >>> shift) & 0xff;
    }
    return out;
  }],
  [5, (rng, b) => { // arithmetic
    if (b.length === 0) return rng.bytes(1);
    const out = b.slice();
    const i = rng.int(out.length);
    out[i] = (out[i] + rng.range(-35, 35)) & 0xff;
    return out;
  }],
  [10, (rng, b) => b.subarray(0, rng.int(b.length + 1)).slice()], // truncate
  [4, (rng, b) => b.subarray(rng.int(b.length + 1)).slice()], // drop a prefix
  [8, (rng, b, max) => { // extend
    const room = Math.max(0, max - b.length);
    const n = Math.min(room, rng.length(4096));
    const tail = rng.weighted<() => Uint8Array>([
      [4, () => rng.bytes(n)],
      [2, () => new Uint8Array(n)],
      [2, () => new Uint8Array(n).fill(0xff)],
      [2, () => b.subarray(0, Math.min(n, b.length))],
    ])();
    return concat([b, tail]);
  }],
  [6, (rng, b, max) => { // insert random bytes
    const i = rng.int(b.length + 1);
    const n = Math.min(Math.max(0, max - b.length), rng.length(64));
    return concat([b.subarray(0, i), rng.bytes(n), b.subarray(i)]);
  }],
  [6, (rng, b) => { // delete a range
    if (b.length === 0) return b;
    const i = rng.int(b.length);
    const n = rng.range(1, Math.min(b.length - i, 32));
    return concat([b.subarray(0, i), b.subarray(i + n)]);
  }],
  [5, (rng, b, max) => { // duplicate a range
    if (b.length === 0) return b;
    const i = rng.int(b.length);
    const n = rng.range(1, b.length - i);
    const reps = rng.chance(0.2) ? rng.range(2, 64) : 1;
    const parts = [b.subarray(0, i + n)];
    let total = b.length;
    for (let r = 0; r < reps && total + n <= max; r++) {
      parts.push(b.subarray(i, i + n));
      total += n;
    }
    parts.push(b.subarray(i + n));
    return concat(parts);
  }],
  [4, (rng, b) => { // swap two ranges
    if (b.length < 4) return b;
    const n = rng.range(1, Math.floor(b.length / 2));
    const i = rng.int(b.length - 2 * n + 1);
    const j = i + n + rng.int(b.length - i - 2 * n + 1);
    const out = b.slice();
    out.set(b.subarray(j, j + n), i);
    out.set(b.subarray(i, i + n), j);
    return out;
  }],
  [8, (rng, b) => { // insert a varint edge value
    const i = rng.int(b.length + 1);
    return concat([b.subarray(0, i), edgeVarint(rng), b.subarray(i)]);
  }],
  [6, (rng, b) => { // overwrite with a varint edge value
    const i = rng.int(b.length + 1);
    const v = edgeVarint(rng);
    return concat([b.subarray(0, i), v, b.subarray(Math.min(b.length, i + v.length))]);
  }],
  [2, (rng, b) => { // fill a range with one value
    if (b.length === 0) return b;
    const out = b.slice();
    const i = rng.int(out.length);
    out.fill(rng.pick(INTERESTING_8), i, i + rng.range(1, out.length - i));
    return out;
  }],
];

/**
 * Applies 1 to `maxOps` random byte-level mutations; the result is at most
 * `maxLength` bytes longer than needed (extensions respect it).
 */
export function mutateBytes(
  rng: Rng,
  input: Uint8Array,
  maxLength = 1 << 16,
  maxOps = 4,
): Uint8Array {
  let out = input;
  const ops = 1 + (rng.chance(0.5) ? 0 : rng.int(maxOps));
  for (let k = 0; k < ops; k++) out = rng.weighted(BYTE_OPS)(rng, out, maxLength);
  return out.length > maxLength ? out.subarray(0, maxLength) : out;
}

// ---- Protobuf wire format ----

/** One field of a message as read from the wire (value bytes as they were). */
export interface WireField {
  /** The field number (may be out of range after mutation). */
  number: number;
  /** The wire type (0–7). */
  wireType: number;
  /** Varint: the value; fixed: the bytes; length-delimited: the body. */
  value: bigint | Uint8Array;
}

function readVarint(b: Uint8Array, o: { i: number }): bigint | undefined {
  let v = 0n;
  let shift = 0n;
  for (let k = 0; k < 10; k++) {
    if (o.i >= b.length) return undefined;
    const byte = b[o.i++];
    v |= BigInt(byte & 0x7f) << shift;
    if ((byte & 0x80) === 0) return v;
    shift += 7n;
  }
  return undefined;
}

/** Parses Protobuf wire format; `undefined` when it does not parse (groups are not followed). */
export function parseWire(b: Uint8Array): WireField[] | undefined {
  const fields: WireField[] = [];
  const o = { i: 0 };
  while (o.i < b.length) {
    const tag = readVarint(b, o);
    if (tag === undefined || tag > 0xffff_ffffn) return undefined;
    const number = Number(tag >> 3n);
    const wireType = Number(tag & 7n);
    if (number === 0) return undefined;
    switch (wireType) {
      case 0: {
        const v = readVarint(b, o);
        if (v === undefined) return undefined;
        fields.push({ number, wireType, value: v });
        break;
      }
      case 1:
      case 5: {
        const n = wireType === 1 ? 8 : 4;
        if (o.i + n > b.length) return undefined;
        fields.push({ number, wireType, value: b.subarray(o.i, o.i + n) });
        o.i += n;
        break;
      }
      case 2: {
        const len = readVarint(b, o);
        if (len === undefined || BigInt(o.i) + len > BigInt(b.length)) return undefined;
        const n = Number(len);
        fields.push({ number, wireType, value: b.subarray(o.i, o.i + n) });
        o.i += n;
        break;
      }
      default:
        return undefined;
    }
  }
  return fields;
}

/** Encodes fields back to wire format (as given: wrong types and numbers included). */
export function encodeWire(fields: readonly WireField[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const f of fields) {
    parts.push(varint((BigInt(f.number >>> 0) << 3n) | BigInt(f.wireType & 7)));
    const v = f.value;
    if (typeof v === "bigint") parts.push(varint(v));
    else if (f.wireType === 2) {
      parts.push(varint(BigInt(v.length)), v);
    } else parts.push(v);
  }
  return concat(parts);
}

type WireOp = (rng: Rng, fields: WireField[], depth: number) => WireField[] | Uint8Array;

const WIRE_OPS: readonly (readonly [number, WireOp])[] = [
  [8, (rng, f) => { // swap two fields
    if (f.length < 2) return f;
    const out = f.slice();
    const i = rng.int(out.length), j = rng.int(out.length);
    [out[i], out[j]] = [out[j], out[i]];
    return out;
  }],
  [6, (rng, f) => { // duplicate a field (last one wins for scalars; lists grow)
    if (f.length === 0) return f;
    const out = f.slice();
    const i = rng.int(out.length);
    const reps = rng.chance(0.1) ? rng.range(2, 200) : 1;
    for (let r = 0; r < reps; r++) out.splice(i, 0, out[i]);
    return out;
  }],
  [6, (rng, f) => { // drop a field
    if (f.length === 0) return f;
    const out = f.slice();
    out.splice(rng.int(out.length), 1);
    return out;
  }],
  [6, (rng, f) => { // swap the values of two fields (types mix)
    if (f.length < 2) return f;
    const out = f.map((x) => ({ ...x }));
    const i = rng.int(out.length), j = rng.int(out.length);
    [out[i].value, out[j].value] = [out[j].value, out[i].value];
    [out[i].wireType, out[j].wireType] = [out[j].wireType, out[i].wireType];
    return out;
  }],
  [6, (rng, f) => { // renumber a field
    if (f.length === 0) return f;
    const out = f.slice();
    const i = rng.int(out.length);
    out[i] = {
      ...out[i],
      number: rng.pick([1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 100, 536_870_911, 19_000]),
    };
    return out;
  }],
  [6, (rng, f) => { // change a wire type (value kept)
    if (f.length === 0) return f;
    const out = f.slice();
    const i = rng.int(out.length);
    const field = out[i];
    const wireType = rng.pick([0, 1, 2, 5]);
    let value = field.value;
    if (wireType === 0 && typeof value !== "bigint") value = BigInt(value.length);
    if (wireType === 2 && typeof value === "bigint") value = varint(value);
    if ((wireType === 1 || wireType === 5) && typeof value === "bigint") {
      value = new Uint8Array(wireType === 1 ? 8 : 4).fill(Number(value & 0xffn));
    }
    if ((wireType === 1 || wireType === 5) && value instanceof Uint8Array) {
      const n = wireType === 1 ? 8 : 4;
      const fixed = new Uint8Array(n);
      fixed.set(value.subarray(0, n));
      value = fixed;
    }
    out[i] = { number: field.number, wireType, value };
    return out;
  }],
  [10, (rng, f) => { // varint edge value
    const idx = f.map((x, i) => (typeof x.value === "bigint" ? i : -1)).filter((i) => i >= 0);
    if (idx.length === 0) {
      return [...f, { number: rng.range(1, 12), wireType: 0, value: rng.pick(EDGE_VARINTS) }];
    }
    const out = f.slice();
    const i = rng.pick(idx);
    out[i] = { ...out[i], value: rng.pick(EDGE_VARINTS) };
    return out;
  }],
  [8, (rng, f) => { // a length-delimited field that declares more (or less) than it has
    const idx = f.map((x, i) => (x.wireType === 2 ? i : -1)).filter((i) => i >= 0);
    if (idx.length === 0) return f;
    const i = rng.pick(idx);
    const before = encodeWire(f.slice(0, i));
    const field = f[i];
    const body = field.value as Uint8Array;
    const declared = rng.weighted<() => bigint>([
      [3, () => rng.pick(EDGE_VARINTS)],
      [2, () => BigInt(body.length + rng.range(1, 16))],
      [2, () => BigInt(Math.max(0, body.length - rng.range(1, 16)))],
    ])();
    const after = encodeWire(f.slice(i + 1));
    return concat([
      before,
      varint((BigInt(field.number) << 3n) | 2n),
      varint(declared),
      body,
      after,
    ]);
  }],
  [10, (rng, f, depth) => { // recurse into a nested message, or mutate a body's bytes
    const idx = f.map((x, i) => (x.wireType === 2 ? i : -1)).filter((i) => i >= 0);
    if (idx.length === 0) return f;
    const out = f.slice();
    const i = rng.pick(idx);
    const body = out[i].value as Uint8Array;
    const nested = depth < 4 && rng.chance(0.7) ? parseWire(body) : undefined;
    const value = nested !== undefined && nested.length > 0
      ? mutateWireFields(rng, nested, depth + 1)
      : mutateBytes(rng, body, body.length + 4096, 2);
    out[i] = { ...out[i], value };
    return out;
  }],
  [5, (rng, f) => { // insert an unknown or repeated field
    const out = f.slice();
    const wireType = rng.pick([0, 1, 2, 5]);
    const value = wireType === 0
      ? rng.pick(EDGE_VARINTS)
      : wireType === 2
      ? rng.bytes(rng.length(256))
      : rng.bytes(wireType === 1 ? 8 : 4);
    out.splice(rng.int(out.length + 1), 0, {
      number: rng.pick([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 20, 1000]),
      wireType,
      value,
    });
    return out;
  }],
  [3, (rng, f) => { // group wire types (3, 4) and the reserved 6, 7
    const out = encodeWire(f);
    const tag = varint(
      (BigInt(rng.range(1, 9)) << 3n) | BigInt(rng.pick([3, 4, 6, 7])),
    );
    const i = rng.int(out.length + 1);
    return concat([out.subarray(0, i), tag, out.subarray(i)]);
  }],
  [2, (_rng, f) => f.slice().reverse()], // reverse the field order
];

function mutateWireFields(rng: Rng, fields: WireField[], depth: number): Uint8Array {
  const result = rng.weighted(WIRE_OPS)(rng, fields, depth);
  return result instanceof Uint8Array ? result : encodeWire(result);
}

/**
 * Mutates `input` as a Protobuf message: field-level changes when it parses
 * as wire format, byte-level ones otherwise (and sometimes anyway).
 */
export function mutateProto(rng: Rng, input: Uint8Array, maxLength = 1 << 16): Uint8Array {
  const fields = rng.chance(0.85) ? parseWire(input) : undefined;
  if (fields === undefined) return mutateBytes(rng, input, maxLength);
  let out = mutateWireFields(rng, fields, 0);
  if (rng.chance(0.25)) out = mutateBytes(rng, out, maxLength, 2);
  return out.length > maxLength ? out.subarray(0, maxLength) : out;
}

/** Lowercase hex of `bytes`. */
export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
