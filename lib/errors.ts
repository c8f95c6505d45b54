/**
 * Error classes. Every failure carrier reports has its own class here, with a
 * stable `name` and, where one exists, a `cause`. A peer's fault (a bad frame,
 * a bad signature, a decompression bomb) is always one of these, never a crash.
 *
 * @module
 */

/** Options accepted by every carrier error. */
export interface CarrierErrorOptions {
  /** The underlying error, if any. */
  cause?: unknown;
}

/**
 * Base class of every error carrier throws, so callers can tell carrier's
 * errors from others with one `instanceof`.
 *
 * @example
 * ```ts
 * import { AddressError, CarrierError } from "@carrier/p2p";
 * const err = new AddressError("Cannot parse address: empty string");
 * console.assert(err instanceof CarrierError && err.name === "AddressError");
 * ```
 */
export class CarrierError extends Error {
  override name: string = "CarrierError";
  /** Creates the error with a message naming the problem and the value. */
  constructor(message: string, options?: CarrierErrorOptions) {
    super(message, options);
  }
}

/** A node address (base58 text or 32 raw bytes) is malformed. */
export class AddressError extends CarrierError {
  override name = "AddressError" as const;
}

/** A key file is missing, unreadable, truncated, corrupt or of the wrong size. */
export class KeyFileError extends CarrierError {
  override name = "KeyFileError" as const;
}

/** A public key does not satisfy the S/Kademlia static puzzle. */
export class PuzzleError extends CarrierError {
  override name = "PuzzleError" as const;
}

/** A frame's declared length exceeds the configured maximum frame size. */
export class FrameTooLargeError extends CarrierError {
  override name = "FrameTooLargeError" as const;
}

/** Bytes on the wire do not form a frame: a truncated or overlong varint, a malformed envelope. */
export class FrameDecodeError extends CarrierError {
  override name = "FrameDecodeError" as const;
}

/** A frame's payload does not parse as the Protobuf message its opcode requires. */
export class PayloadDecodeError extends CarrierError {
  override name = "PayloadDecodeError" as const;
}

/** A frame names an opcode that no one registered. */
export class UnknownOpcodeError extends CarrierError {
  override name = "UnknownOpcodeError" as const;
}

/** An opcode registration is refused: a reserved value or a duplicate. */
export class OpcodeRegistryError extends CarrierError {
  override name = "OpcodeRegistryError" as const;
}

/** Compressed data is corrupt or cannot be processed. */
export class CompressionError extends CarrierError {
  override name: string = "CompressionError";
}

/** Compressed data would inflate past the configured bound (a decompression bomb). */
export class DecompressionLimitError extends CompressionError {
  override name = "DecompressionLimitError" as const;
}

/** A compression setting is unknown or not enabled. */
export class UnsupportedCompressionError extends CarrierError {
  override name = "UnsupportedCompressionError" as const;
}

/** The Noise handshake failed: garbage, a bad payload, a bad signature, a stall. */
export class HandshakeError extends CarrierError {
  override name: string = "HandshakeError";
}

/** The remote proved an identity other than the one the dialer expected. */
export class IdentityMismatchError extends HandshakeError {
  override name = "IdentityMismatchError" as const;
}

/** A ciphertext failed authentication (tampered, replayed or out of order). */
export class DecryptError extends CarrierError {
  override name = "DecryptError" as const;
}

/** A cipher state reached its last nonce; the connection must be closed. */
export class NonceExhaustedError extends CarrierError {
  override name = "NonceExhaustedError" as const;
}

/** An operation did not finish within its configured time. */
export class TimeoutError extends CarrierError {
  override name = "TimeoutError" as const;
}

/** The connection closed while an operation was waiting on it. */
export class ConnectionClosedError extends CarrierError {
  override name = "ConnectionClosedError" as const;
}

/** The bounded send buffer is full and the caller asked not to wait. */
export class SendBufferFullError extends CarrierError {
  override name = "SendBufferFullError" as const;
}
