/**
 * Structure-aware generation from the Protobuf schemas: random messages of
 * any `XxxSchema` (every field kind, edge values per scalar type, unknown
 * enum values, long lists, nested messages), and field-level mutation of a
 * valid message, so that the bytes parse and the rest of the message stays
 * meaningful while one field is wrong.
 *
 * @module
 */
import {
  clone,
  create,
  type DescField,
  type DescMessage,
  type MessageShape,
  ScalarType,
  toBinary,
} from "@bufbuild/protobuf";
import type { Rng } from "./_rng.ts";

/** Byte strings worth putting into `bytes` fields (keys, addresses, ids the node knows). */
export interface Dictionary {
  /** Byte strings: the node's address, stored DHT keys, the sender's own key… */
  bytes: Uint8Array[];
  /** Strings: addresses, topics, JSON snippets… */
  strings: string[];
}

/** An empty dictionary. */
export const NO_DICTIONARY: Dictionary = { bytes: [], strings: [] };

const STRINGS = [
  "",
  "a",
  "carrier",
  "127.0.0.1:1",
  "127.0.0.1:0",
  "[::1]:65535",
  "mem:0",
  "mem:fuzz",
  "256.256.256.256:99999",
  "localhost:",
  ":",
  "__proto__",
  "constructor",
  "\u0000",
  "\u2028\u2029",
  "\ufeff",
  "é",
  "日本語",
  "🙂",
  "{}",
  "[]",
  '[{"op":"add","path":"/a","value":1}]',
  "%s%s%n",
  "../../etc/passwd",
];

const BYTE_LENGTHS = [0, 1, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 128];

function randomString(rng: Rng, dict: Dictionary): string {
  return rng.weighted<() => string>([
    [30, () => rng.pick(STRINGS)],
    [dict.strings.length > 0 ? 20 : 0, () => rng.pick(dict.strings)],
    [25, () => {
      const n = rng.length(200);
      let s = "";
      for (let i = 0; i < n; i++) s += String.fromCharCode(rng.range(0x20, 0x7e));
      return s;
    }],
    [10, () => {
      const n = rng.length(64);
      let s = "";
      for (let i = 0; i < n; i++) {
        s += String.fromCodePoint(rng.chance(0.9) ? rng.int(0xd800) : rng.range(0xe000, 0x10ffff));
      }
      return s;
    }],
    [3, () => "x".repeat(rng.pick([255, 256, 1024, 65_000, 70_000]))],
  ])();
}

function randomBytes(rng: Rng, dict: Dictionary): Uint8Array {
  return rng.weighted<() => Uint8Array>([
    [30, () => rng.bytes(rng.pick(BYTE_LENGTHS))],
    [dict.bytes.length > 0 ? 30 : 0, () => {
      const b = rng.pick(dict.bytes);
      return rng.chance(0.8) ? b : b.subarray(0, rng.int(b.length + 1));
    }],
    [25, () => rng.bytes(rng.length(512))],
    [5, () => new Uint8Array(rng.pick([32, 64, 1000]))],
    [2, () => rng.bytes(rng.pick([65_519, 65_536, 65_537, 70_000]))],
  ])();
}

/** A random value of a scalar type, biased to edges. */
export function randomScalar(rng: Rng, scalar: ScalarType, dict = NO_DICTIONARY): unknown {
  switch (scalar) {
    case ScalarType.BOOL:
      return rng.chance(0.5);
    case ScalarType.STRING:
      return randomString(rng, dict);
    case ScalarType.BYTES:
      return randomBytes(rng, dict);
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return rng.pick([0, -0, 1, -1, NaN, Infinity, -Infinity, 1e308, 5e-324, rng.float()]);
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return rng.pick([0, 1, -1, 2, 127, 128, 2 ** 31 - 1, -(2 ** 31), rng.u32() | 0]);
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return rng.pick([0, 1, 2, 3, 4, 5, 16, 255, 256, 1000, 2 ** 31, 2 ** 32 - 1, rng.u32()]);
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return rng.pick([
        0n,
        1n,
        -1n,
        2n ** 53n,
        2n ** 63n - 1n,
        -(2n ** 63n),
        BigInt.asIntN(64, rng.u64()),
      ]);
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return rng.weighted<() => bigint>([
        [4, () => BigInt(rng.int(4))],
        [2, () => BigInt(rng.int(100))],
        [4, () =>
          rng.pick([
            5n,
            16n,
            1000n,
            10_000n,
            60_000n,
            300_000n,
            86_400_000n,
            2n ** 31n,
            2n ** 32n - 1n,
            2n ** 32n,
            2n ** 53n - 1n,
            2n ** 53n,
            2n ** 63n,
            2n ** 64n - 1n,
          ])],
        [2, () => rng.u64()],
        [1, () => BigInt(Date.now() + rng.range(-1_000_000, 1_000_000))],
      ])();
  }
}

function randomEnum(rng: Rng, field: DescField): number {
  const values = field.enum!.values.map((v) => v.number);
  return rng.weighted<() => number>([
    [80, () => rng.pick(values)],
    [20, () => rng.pick([values.length, 99, -1, 2 ** 31 - 1, -(2 ** 31)])],
  ])();
}

function listLength(rng: Rng): number {
  return rng.weighted<() => number>([
    [30, () => 0],
    [50, () => rng.range(1, 4)],
    [15, () => rng.range(5, 40)],
    [5, () => rng.pick([255, 1000, 1024, 1025, 3000])],
  ])();
}

/** A random value for `field` (a whole list for a list field). */
function randomValue(rng: Rng, field: DescField, depth: number, dict: Dictionary): unknown {
  switch (field.fieldKind) {
    case "scalar":
      return randomScalar(rng, field.scalar, dict);
    case "enum":
      return randomEnum(rng, field);
    case "message":
      return create(field.message, generateInit(rng, field.message, depth + 1, dict) as never);
    case "list": {
      // Lists of messages stay short: each item may hold long lists itself
      // (RelayInfo's listen_addrs), and thousands of them would make the
      // generator, not the code under test, the slow part.
      const most = depth > 2 ? 2 : field.listKind === "message" ? 16 : Infinity;
      const n = Math.min(most, listLength(rng));
      const out: unknown[] = [];
      for (let i = 0; i < n; i++) {
        if (field.listKind === "scalar") out.push(randomScalar(rng, field.scalar, dict));
        else if (field.listKind === "enum") {
          out.push(randomEnum(rng, field as unknown as DescField));
        } else {
          out.push(
            create(field.message, generateInit(rng, field.message, depth + 1, dict) as never),
          );
        }
      }
      return out;
    }
    case "map":
      return {};
  }
}

/** A random init object for `schema` (for `create`). */
export function generateInit(
  rng: Rng,
  schema: DescMessage,
  depth = 0,
  dict = NO_DICTIONARY,
): Record<string, unknown> {
  const init: Record<string, unknown> = {};
  const p = depth === 0 ? 0.75 : depth > 3 ? 0.15 : 0.5;
  for (const field of schema.fields) {
    if (!rng.chance(p)) continue;
    if (field.fieldKind === "message" && depth > 4) continue;
    init[field.localName] = randomValue(rng, field, depth, dict);
  }
  return init;
}

/** A random message of `schema`. */
export function generateMessage<Desc extends DescMessage>(
  rng: Rng,
  schema: Desc,
  dict = NO_DICTIONARY,
): MessageShape<Desc> {
  return create(schema, generateInit(rng, schema, 0, dict) as never);
}

/** A random message of `schema`, serialized. */
export function generateBytes(rng: Rng, schema: DescMessage, dict = NO_DICTIONARY): Uint8Array {
  return toBinary(schema, generateMessage(rng, schema, dict));
}

interface Slot {
  owner: Record<string, unknown>;
  field: DescField;
  depth: number;
}

function collectSlots(
  message: Record<string, unknown>,
  schema: DescMessage,
  depth: number,
  out: Slot[],
): void {
  for (const field of schema.fields) {
    out.push({ owner: message, field, depth });
    if (depth > 4) continue;
    const value = message[field.localName];
    if (field.fieldKind === "message" && value !== undefined) {
      collectSlots(value as Record<string, unknown>, field.message, depth + 1, out);
    } else if (field.fieldKind === "list" && field.listKind === "message") {
      for (const item of (value as Record<string, unknown>[]).slice(0, 4)) {
        collectSlots(item, field.message, depth + 1, out);
      }
    }
  }
}

/**
 * A copy of the valid `message` with 1–2 fields (anywhere in its tree) set
 * to random or edge values of their type, lists grown, shrunk or cleared,
 * and nested messages dropped or replaced.
 */
export function mutateMessage<Desc extends DescMessage>(
  rng: Rng,
  schema: Desc,
  message: MessageShape<Desc>,
  dict = NO_DICTIONARY,
): MessageShape<Desc> {
  let copy: MessageShape<Desc>;
  try {
    copy = clone(schema, message);
  } catch {
    return message; // holds a value its type cannot (cloning checks), so leave it be
  }
  const slots: Slot[] = [];
  collectSlots(copy as unknown as Record<string, unknown>, schema, 0, slots);
  const edits = rng.chance(0.7) ? 1 : 2;
  for (let k = 0; k < edits && slots.length > 0; k++) {
    const { owner, field, depth } = rng.pick(slots);
    const name = field.localName;
    if (field.fieldKind === "list") {
      const list = owner[name] as unknown[];
      rng.weighted<() => void>([
        [3, () => (owner[name] = randomValue(rng, field, depth, dict))],
        [
          2,
          () =>
            list.splice(
              rng.int(list.length + 1),
              0,
              ...(randomValue(rng, field, depth, dict) as unknown[]).slice(0, 1),
            ),
        ],
        [2, () => list.length > 0 && list.splice(rng.int(list.length), 1)],
        [1, () => (owner[name] = [])],
        [1, () => {
          if (list.length === 0) return;
          const item = list[rng.int(list.length)];
          for (let r = rng.range(1, 300); r > 0; r--) list.push(item);
        }],
      ])();
    } else if (field.fieldKind === "message") {
      owner[name] = rng.chance(0.3) ? undefined : randomValue(rng, field, depth, dict);
    } else {
      owner[name] = randomValue(rng, field, depth, dict);
    }
  }
  return copy;
}

/** Serializes `message`; `undefined` if a generated value cannot be encoded. */
export function tryEncode(schema: DescMessage, message: unknown): Uint8Array | undefined {
  try {
    return toBinary(schema, message as never);
  } catch {
    return undefined;
  }
}
