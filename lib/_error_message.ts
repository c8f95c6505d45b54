/**
 * How carrier quotes an error inside its own messages. Shared across
 * `lib/`; not exported from the package's entry points.
 *
 * @module
 */

/** The message of `error` if it is an `Error`, else its string form. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
