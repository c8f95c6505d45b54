/**
 * Byte helpers shared by the identity modules. Private to `lib/identity/`.
 *
 * @module
 */

/**
 * Describes what a value is, for error messages: `length=31` for a
 * Uint8Array, otherwise its type (`string`, `null`, `Array`, …).
 */
export function describeValue(value: unknown): string {
  if (value instanceof Uint8Array) return `length=${value.length}`;
  return typeName(value);
}

/** The type of a value, for error messages: `string`, `null`, `Uint8Array`, … */
export function typeName(value: unknown): string {
  if (value === null) return "null";
  if (typeof value === "object") {
    return (value as object).constructor?.name ?? "object";
  }
  return typeof value;
}

/** Whether two byte arrays hold the same bytes. Not constant-time. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) return false;
  }
  return true;
}

/** Lower-case hex of `bytes`, for error messages. */
export function toHex(bytes: Uint8Array): string {
  let out = "";
  for (const byte of bytes) out += byte.toString(16).padStart(2, "0");
  return out;
}
