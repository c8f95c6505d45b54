/**
 * How the secure channel quotes an error inside its own messages.
 *
 * Private to `lib/secure/`.
 *
 * @module
 */

/** The message of `error` if it is an `Error`, else its string form. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
