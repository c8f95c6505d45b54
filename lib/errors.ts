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
  /** Creates the error with a message naming the problem and the value. */
  constructor(message: string, options?: CarrierErrorOptions) {
    super(message, options);
    // The class name is the stable `name`: "FrameTooLargeError", ...
    this.name = new.target.name;
  }
}

/** A node address (base58 text or 32 raw bytes) is malformed. */
export class AddressError extends CarrierError {}

/** A key file is missing, unreadable, truncated, corrupt or of the wrong size. */
export class KeyFileError extends CarrierError {}

/** A public key does not satisfy the S/Kademlia static puzzle. */
export class PuzzleError extends CarrierError {}

/** A frame's declared length exceeds the configured maximum frame size. */
export class FrameTooLargeError extends CarrierError {}

/** Bytes on the wire do not form a frame: a truncated or overlong varint, a malformed envelope. */
export class FrameDecodeError extends CarrierError {}

/** A frame's payload does not parse as the Protobuf message its opcode requires. */
export class PayloadDecodeError extends CarrierError {}

/** A frame names an opcode that no one registered. */
export class UnknownOpcodeError extends CarrierError {}

/** An opcode registration is refused: a reserved value or a duplicate. */
export class OpcodeRegistryError extends CarrierError {}

/** Compressed data is corrupt or cannot be processed. */
export class CompressionError extends CarrierError {}

/** Compressed data would inflate past the configured bound (a decompression bomb). */
export class DecompressionLimitError extends CompressionError {}

/** A compression setting is unknown or not enabled. */
export class UnsupportedCompressionError extends CarrierError {}

/** The Noise handshake failed: garbage, a bad payload, a bad signature, a stall. */
export class HandshakeError extends CarrierError {}

/** The remote proved an identity other than the one the dialer expected. */
export class IdentityMismatchError extends HandshakeError {}

/** A ciphertext failed authentication (tampered, replayed or out of order). */
export class DecryptError extends CarrierError {}

/** A cipher state reached its last nonce; the connection must be closed. */
export class NonceExhaustedError extends CarrierError {}

/** An operation did not finish within its configured time. */
export class TimeoutError extends CarrierError {}

/** The connection closed while an operation was waiting on it. */
export class ConnectionClosedError extends CarrierError {}

/** The bounded send buffer is full and the caller asked not to wait. */
export class SendBufferFullError extends CarrierError {}

/** A NodeId (or any DHT key) is not a 32-byte Uint8Array. */
export class NodeIdError extends CarrierError {}

/** An Ed25519 secret key (seed) is not a 32-byte Uint8Array. */
export class SecretKeyError extends CarrierError {}

/** A transport address (`host:port`, `[v6]:port`, `mem:name`) is malformed. */
export class TransportAddressError extends CarrierError {}

/** A dial failed: connection refused, host unreachable, name not resolved, no listener. */
export class DialError extends CarrierError {}

/** A transport cannot listen: the address is in use, not available, or not permitted. */
export class ListenError extends CarrierError {}

/** Options of {@linkcode NackError}. */
export interface NackErrorOptions extends CarrierErrorOptions {
  /** The opcode of the request that failed. */
  opcode: number;
  /** The `NackReason` value the peer gave. */
  reason: number;
  /** The NACK's typed data, serialized (the request's opcode names its schema). */
  data?: Uint8Array;
}

/** A request was answered with NACK. */
export class NackError extends CarrierError {
  /** The opcode of the request that failed. */
  readonly opcode: number;
  /** The `NackReason` value the peer gave. */
  readonly reason: number;
  /** The NACK's typed data, serialized. */
  readonly data: Uint8Array;
  /** Creates the error. */
  constructor(message: string, options: NackErrorOptions) {
    super(message, options);
    this.opcode = options.opcode;
    this.reason = options.reason;
    this.data = options.data ?? new Uint8Array(0);
  }
}

/** A connection limit (ℓ outbound, inbound, pending handshakes) refuses a connection. */
export class ConnectionLimitError extends CarrierError {}

/** A peer address (`ADDRESS@HOST:PORT`) is malformed. */
export class PeerAddressError extends CarrierError {}

/** The node is not running (not started yet, or closed). */
export class NodeClosedError extends CarrierError {}

/** A WHISPER cannot be opened: wrong recipient, bad signature, failed decryption, sender mismatch, malformed or too large. */
export class WhisperError extends CarrierError {}

/** A DHT key or record is invalid: a key that is not 32 bytes, a value over the size limit, a bad owner signature, a version out of range. */
export class RecordError extends CarrierError {}

/** A patch does not apply: a JSON Patch operation fails, a splice is out of range, the result is too large or not what the patch's hash says. */
export class PatchError extends CarrierError {}

/** Options of {@linkcode VersionConflictError}. */
export interface VersionConflictErrorOptions extends CarrierErrorOptions {
  /** The version the replicas hold. */
  currentVersion: number;
  /** The value the replicas hold, when they sent it. */
  currentValue?: Uint8Array;
}

/** A compare-and-swap or a patch lost: the key is not at the expected version (or another write is in progress). */
export class VersionConflictError extends CarrierError {
  /** The version the replicas hold. */
  readonly currentVersion: number;
  /** The value the replicas hold, when they sent it. */
  readonly currentValue: Uint8Array | undefined;
  /** Creates the error. */
  constructor(message: string, options: VersionConflictErrorOptions) {
    super(message, options);
    this.currentVersion = options.currentVersion;
    this.currentValue = options.currentValue;
  }
}

/** Options of {@linkcode LockHeldError}. */
export interface LockHeldErrorOptions extends CarrierErrorOptions {
  /** The holder's address (base58). */
  holder: string;
  /** The holder's fencing token. */
  fencingToken: number;
  /** Time until the holder's lease expires, in ms. */
  expiresIn: number;
}

/** A DHT lock is held by another node. */
export class LockHeldError extends CarrierError {
  /** The holder's address (base58). */
  readonly holder: string;
  /** The holder's fencing token. */
  readonly fencingToken: number;
  /** Time until the holder's lease expires, in ms. */
  readonly expiresIn: number;
  /** Creates the error. */
  constructor(message: string, options: LockHeldErrorOptions) {
    super(message, options);
    this.holder = options.holder;
    this.fencingToken = options.fencingToken;
    this.expiresIn = options.expiresIn;
  }
}

/** Too few DHT replicas answered or agreed for the operation to count. */
export class QuorumError extends CarrierError {}
