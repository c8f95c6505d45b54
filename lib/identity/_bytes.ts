/**
 * Error-message helpers shared by the identity modules. Private to `lib/identity/`.
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
