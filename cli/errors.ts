/**
 * The exit codes of `carrier`, the usage error, and which code an error
 * escaping a command exits with.
 *
 * @module
 */
import {
  AddressError,
  ConnectionClosedError,
  DialError,
  HandshakeError,
  IdentityMismatchError,
  KeyFileError,
  LockHeldError,
  NackError,
  NackReason,
  PeerAddressError,
  TimeoutError,
  VersionConflictError,
} from "../mod.ts";

/** Exit codes of the `carrier` command, one per kind of failure. */
export const EXIT_CODES = Object.freeze({
  /** Success. */
  OK: 0,
  /**
   * A failure without a code of its own; and `carrier dht get` finding no
   * value under KEY (as `grep` finding nothing: the output says `found: false`).
   */
  FAILURE: 1,
  /** Bad command-line usage. */
  USAGE: 2,
  /** A key file is missing, unreadable or corrupt. */
  BAD_KEY_FILE: 3,
  /** An address is malformed. */
  BAD_ADDRESS: 4,
  /** A peer or bootstrap node cannot be reached. */
  UNREACHABLE: 5,
  /** An operation timed out. */
  TIMEOUT: 6,
  /** The peer at that address proved another identity. */
  IDENTITY_MISMATCH: 7,
  /**
   * A compare-and-swap or patch lost: KEY is not at the version expected
   * (a {@linkcode VersionConflictError}).
   */
  CONFLICT: 8,
  /** Another node holds the lock (a {@linkcode LockHeldError}). */
  LOCK_HELD: 9,
});

/** A usage error: bad flags or arguments. `usage` overrides the command's synopsis. */
export class UsageError extends Error {
  override name = "UsageError";
  /** What to print as the usage instead of the command's synopsis. */
  readonly usage?: string;
  /** A usage error saying `message`; `usage` replaces the command's synopsis. */
  constructor(message: string, usage?: string) {
    super(message);
    this.usage = usage;
  }
}

function isDomTimeout(err: unknown): boolean {
  return err instanceof DOMException && err.name === "TimeoutError";
}

/** Exit code for an error escaping a command. */
export function exitCodeOf(err: unknown): number {
  if (err instanceof UsageError) return EXIT_CODES.USAGE;
  if (err instanceof KeyFileError) return EXIT_CODES.BAD_KEY_FILE;
  if (err instanceof AddressError || err instanceof PeerAddressError) return EXIT_CODES.BAD_ADDRESS;
  if (err instanceof IdentityMismatchError) return EXIT_CODES.IDENTITY_MISMATCH;
  if (err instanceof VersionConflictError) return EXIT_CODES.CONFLICT;
  if (
    err instanceof LockHeldError ||
    (err instanceof NackError && err.reason === NackReason.LOCK_HELD)
  ) return EXIT_CODES.LOCK_HELD;
  if (err instanceof TimeoutError || isDomTimeout(err)) return EXIT_CODES.TIMEOUT;
  if (
    err instanceof DialError || err instanceof HandshakeError ||
    err instanceof ConnectionClosedError ||
    (err instanceof NackError && err.reason === NackReason.UNREACHABLE)
  ) return EXIT_CODES.UNREACHABLE;
  return EXIT_CODES.FAILURE;
}
