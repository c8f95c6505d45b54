/**
 * Error classes. Every failure carrier reports has its own class here, with a
 * stable `name` and, where one exists, a `cause`. A peer's fault (a bad frame,
 * a bad signature, a decompression bomb) is always one of these, never a crash.
 *
 * @module
 */

/**
 * Options accepted by every carrier error.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type CarrierErrorOptions, DialError } from "@carrier/p2p";
 * const cause = new Error("ECONNREFUSED");
 * const options: CarrierErrorOptions = { cause };
 * const error = new DialError("Cannot dial 127.0.0.1:4000: connection refused", options);
 * assert.equal(error.cause, cause);
 * ```
 */
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
 * import assert from "node:assert/strict";
 * import { AddressError, CarrierError } from "@carrier/p2p";
 * const err = new AddressError("Cannot parse address: empty string");
 * assert.ok(err instanceof CarrierError);
 * assert.equal(err.name, "AddressError");
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

/**
 * An argument or option is out of its range or of the wrong type (a
 * programming error in the caller, named with the value).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ArgumentError, CarrierError } from "@carrier/p2p";
 * const err = new ArgumentError("k must be a positive integer, got 0");
 * assert.ok(err instanceof CarrierError);
 * assert.equal(err.name, "ArgumentError");
 * ```
 */
export class ArgumentError extends CarrierError {}

/**
 * A node address (base58 text or 32 raw bytes) is malformed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { AddressError, parseAddress } from "@carrier/p2p";
 * assert.throws(() => parseAddress("0OIl"), AddressError); // not base58
 * ```
 */
export class AddressError extends CarrierError {}

/**
 * A key file is missing, unreadable, truncated, corrupt or of the wrong size.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { KeyFileError, loadKeyFile } from "@carrier/p2p";
 * await assert.rejects(loadKeyFile("/nonexistent/node.key"), KeyFileError);
 * ```
 */
export class KeyFileError extends CarrierError {}

/**
 * A public key does not satisfy the S/Kademlia static puzzle.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateIdentitySync, PuzzleError } from "@carrier/p2p";
 * assert.throws(() => generateIdentitySync({ difficulty: 64, maxAttempts: 1 }), PuzzleError);
 * ```
 */
export class PuzzleError extends CarrierError {}

/**
 * Options of a {@linkcode SizeLimitError}: which limit, and by how much.
 *
 * @example
 * ```ts
 * import type { SizeLimitErrorOptions } from "@carrier/p2p";
 * const options: SizeLimitErrorOptions = { limit: "maxFrameSize", size: 70_000, max: 65_536 };
 * void options;
 * ```
 */
export interface SizeLimitErrorOptions extends CarrierErrorOptions {
  /** The limit's name: an option (`maxFrameSize`) or a protocol constant. */
  limit: string;
  /** The size that was refused, in bytes. */
  size: number;
  /** The limit's value, in bytes. */
  max: number;
}

/**
 * Something is larger than a limit allows. `limit` names the limit (an
 * option such as `maxFrameSize`, or a protocol constant), `size` and `max`
 * say by how much. Nothing over a limit is dropped silently: a send, SHOUT,
 * SPEAK or WHISPER over one rejects with this error (or its subclass
 * {@linkcode FrameTooLargeError}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createNode, SizeLimitError } from "@carrier/p2p";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
 * await using net = new MemoryNetwork();
 * await using a = await createNode({ transport: net.transport(), listen: ["mem:0"] });
 * await using b = await createNode({ transport: net.transport() });
 * await b.connect(a.peerAddresses[0]);
 * await assert.rejects(
 *   b.speak(new Uint8Array(2 * 1024 * 1024)),
 *   (error) => error instanceof SizeLimitError && error.limit === "maxFrameSize",
 * );
 * ```
 */
export class SizeLimitError extends CarrierError {
  /** The limit's name: an option (`maxFrameSize`) or a protocol constant. */
  readonly limit: string;
  /** The size that was refused, in bytes. */
  readonly size: number;
  /** The limit's value, in bytes. */
  readonly max: number;
  /** Creates the error. */
  constructor(message: string, options: SizeLimitErrorOptions) {
    super(message, options);
    this.limit = options.limit;
    this.size = options.size;
    this.max = options.max;
  }
}

/**
 * A frame's length exceeds the configured maximum frame size (`limit` is
 * `maxFrameSize`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { FrameTooLargeError } from "@carrier/p2p";
 * import { createFrame, encodeFrame } from "@carrier/p2p/protocol";
 * const frame = createFrame({ opcode: 1000, payload: new Uint8Array(100) });
 * assert.throws(() => encodeFrame(frame, { maxFrameSize: 64 }), FrameTooLargeError);
 * ```
 */
export class FrameTooLargeError extends SizeLimitError {}

/**
 * Bytes on the wire do not form a frame: a truncated or overlong varint, a malformed envelope.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { FrameDecodeError } from "@carrier/p2p";
 * import { FrameDecoder } from "@carrier/p2p/protocol";
 * const decoder = new FrameDecoder();
 * decoder.push(new Uint8Array([5, 0x08])); // a 5-byte frame, 1 byte of it
 * assert.throws(() => decoder.end(), FrameDecodeError); // the stream ends inside it
 * ```
 */
export class FrameDecodeError extends CarrierError {}

/**
 * A frame's payload does not parse as the Protobuf message its opcode requires.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { StringValueSchema } from "@bufbuild/protobuf/wkt";
 * import { PayloadDecodeError } from "@carrier/p2p";
 * import { decodePayload } from "@carrier/p2p/protocol";
 * const truncated = new Uint8Array([0x0a, 5, 0x68]); // a 5-byte string, 1 byte of it
 * assert.throws(() => decodePayload(StringValueSchema, truncated), PayloadDecodeError);
 * ```
 */
export class PayloadDecodeError extends CarrierError {}

/**
 * A frame names an opcode that no one registered.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { UnknownOpcodeError } from "@carrier/p2p";
 * import { OpcodeRegistry } from "@carrier/p2p/protocol";
 * assert.throws(() => new OpcodeRegistry().require(4242), UnknownOpcodeError);
 * ```
 */
export class UnknownOpcodeError extends CarrierError {}

/**
 * An opcode registration is refused: a reserved value or a duplicate.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { StringValueSchema } from "@bufbuild/protobuf/wkt";
 * import { defineOpcode, Opcode, OpcodeRegistryError } from "@carrier/p2p";
 * const ping = { name: "MY_PING", request: StringValueSchema };
 * assert.throws(() => defineOpcode(Opcode.PING, ping), OpcodeRegistryError); // the protocol's
 * ```
 */
export class OpcodeRegistryError extends CarrierError {}

/**
 * Compressed data is corrupt or cannot be processed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CompressionError } from "@carrier/p2p";
 * import { Compression, decompress } from "@carrier/p2p/protocol";
 * const garbage = new Uint8Array([1, 2, 3]);
 * const options = { maxOutputSize: 1024 };
 * assert.throws(() => decompress(Compression.GZIP, garbage, options), CompressionError);
 * ```
 */
export class CompressionError extends CarrierError {}

/**
 * Compressed data would inflate past the configured bound (a decompression bomb).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CompressionError, DecompressionLimitError } from "@carrier/p2p";
 * import { compress, Compression, decompress } from "@carrier/p2p/protocol";
 * const bomb = compress(Compression.ZLIB, new Uint8Array(1 << 20)); // 1 MiB of zeros, about 1 KiB
 * const options = { maxOutputSize: 4096 };
 * assert.throws(() => decompress(Compression.ZLIB, bomb, options), DecompressionLimitError);
 * assert(new DecompressionLimitError("too large") instanceof CompressionError);
 * ```
 */
export class DecompressionLimitError extends CompressionError {}

/**
 * A compression setting is unknown or not enabled.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { UnsupportedCompressionError } from "@carrier/p2p";
 * import { getCodec } from "@carrier/p2p/protocol";
 * assert.throws(() => getCodec(99), UnsupportedCompressionError);
 * ```
 */
export class UnsupportedCompressionError extends CarrierError {}

/**
 * An operation did not finish within its configured time.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateIdentitySync, TimeoutError } from "@carrier/p2p";
 * import { secureOutbound } from "@carrier/p2p/protocol";
 * import { ManualClock, MemoryNetwork } from "@carrier/p2p/testing";
 * await using net = new MemoryNetwork();
 * const listener = await net.transport().listen("mem:0"); // accepts nothing: the handshake stalls
 * const stream = await net.transport().dial(listener.address);
 * const clock = new ManualClock();
 * const options = { identity: generateIdentitySync(), handshakeTimeout: 500, clock };
 * const handshake = secureOutbound(stream, options);
 * clock.advance(500);
 * await assert.rejects(handshake, TimeoutError);
 * ```
 */
export class TimeoutError extends CarrierError {}

/**
 * The connection closed while an operation was waiting on it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ConnectionClosedError } from "@carrier/p2p";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
 * await using net = new MemoryNetwork();
 * const listener = await net.transport().listen("mem:0");
 * const stream = await net.transport().dial(listener.address);
 * stream.close();
 * await assert.rejects(stream.write(new Uint8Array([1])), ConnectionClosedError);
 * ```
 */
export class ConnectionClosedError extends CarrierError {}

/**
 * The bounded send buffer is full and the caller asked not to wait.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createNode, SendBufferFullError } from "@carrier/p2p";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
 * await using net = new MemoryNetwork();
 * await using a = await createNode({ transport: net.transport(), listen: ["mem:0"] });
 * const connection = { maxSendBuffer: 64 }; // bytes
 * await using b = await createNode({ transport: net.transport(), connection });
 * const peer = await b.connect(a.peerAddresses[0]);
 * const first = peer.send(1000, new Uint8Array(100)); // an empty buffer takes any frame
 * const full = peer.send(1000, new Uint8Array(100), { sendBufferPolicy: "error" });
 * await assert.rejects(full, SendBufferFullError);
 * await first;
 * ```
 */
export class SendBufferFullError extends CarrierError {}

/**
 * A NodeId (or any DHT key) is not a 32-byte Uint8Array.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { NodeIdError } from "@carrier/p2p";
 * import { xorDistance } from "@carrier/p2p/protocol";
 * assert.throws(() => xorDistance(new Uint8Array(20), new Uint8Array(32)), NodeIdError);
 * ```
 */
export class NodeIdError extends CarrierError {}

/**
 * An Ed25519 secret key (seed) is not a 32-byte Uint8Array.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { identityFromSecretKey, SecretKeyError } from "@carrier/p2p";
 * assert.throws(() => identityFromSecretKey(new Uint8Array(16)), SecretKeyError);
 * ```
 */
export class SecretKeyError extends CarrierError {}

/**
 * A transport address (`host:port`, `[v6]:port`, `mem:name`) is malformed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { TransportAddressError } from "@carrier/p2p";
 * import { parseHostPort } from "@carrier/p2p/protocol";
 * assert.throws(() => parseHostPort("127.0.0.1"), TransportAddressError); // no port
 * assert.throws(() => parseHostPort("::1:4000"), TransportAddressError); // IPv6 needs brackets
 * ```
 */
export class TransportAddressError extends CarrierError {}

/**
 * A dial failed: connection refused, host unreachable, name not resolved, no listener.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DialError } from "@carrier/p2p";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
 * await using net = new MemoryNetwork();
 * await assert.rejects(net.transport().dial("mem:nobody"), DialError);
 * ```
 */
export class DialError extends CarrierError {}

/**
 * A transport cannot listen: the address is in use, not available, or not permitted.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ListenError } from "@carrier/p2p";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
 * await using net = new MemoryNetwork();
 * await net.transport().listen("mem:alice");
 * await assert.rejects(net.transport().listen("mem:alice"), ListenError); // in use
 * ```
 */
export class ListenError extends CarrierError {}

/**
 * Options of {@linkcode NackError}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { create } from "@bufbuild/protobuf";
 * import { StringValueSchema } from "@bufbuild/protobuf/wkt";
 * import {
 *   createNode,
 *   defineOpcode,
 *   NackError,
 *   type NackErrorOptions,
 *   NackReason,
 * } from "@carrier/p2p";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
 * const ECHO = defineOpcode(1000, { request: StringValueSchema, reply: StringValueSchema });
 * const options: NackErrorOptions = { opcode: ECHO.opcode, reason: NackReason.FORBIDDEN };
 * await using net = new MemoryNetwork();
 * await using a = await createNode({ transport: net.transport(), listen: ["mem:0"] });
 * await using b = await createNode({ transport: net.transport() });
 * a.handle(ECHO, () => {
 *   throw new NackError("not for you", options); // a NACK FORBIDDEN to the requester
 * });
 * await b.connect(a.peerAddresses[0]);
 * const error = await b.request(a.address, ECHO, create(StringValueSchema)).catch((e) => e);
 * assert(error instanceof NackError && error.reason === NackReason.FORBIDDEN);
 * ```
 */
export interface NackErrorOptions extends CarrierErrorOptions {
  /** The opcode of the request that failed. */
  opcode: number;
  /** The `NackReason` value the peer gave. */
  reason: number;
  /** The NACK's typed data, serialized (the request's opcode names its schema). */
  data?: Uint8Array;
}

/**
 * A request was answered with NACK.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createNode, NackError, NackReason, Opcode } from "@carrier/p2p";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
 * await using net = new MemoryNetwork();
 * await using a = await createNode({ transport: net.transport(), listen: ["mem:0"] });
 * await using b = await createNode({ transport: net.transport() });
 * await b.connect(a.peerAddresses[0]);
 * const error = await b.requestMetrics(a.address).catch((e) => e);
 * assert(error instanceof NackError);
 * assert.deepEqual([error.opcode, error.reason], [Opcode.METRICS, NackReason.FORBIDDEN]);
 * ```
 */
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

/**
 * A connection limit (ℓ outbound, inbound, pending handshakes) refuses a connection.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ConnectionLimitError, createNode } from "@carrier/p2p";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
 * await using net = new MemoryNetwork();
 * await using a = await createNode({ transport: net.transport(), listen: ["mem:0"] });
 * await using b = await createNode({ transport: net.transport(), maxOutbound: 0 });
 * await assert.rejects(b.connect(a.peerAddresses[0]), ConnectionLimitError);
 * ```
 */
export class ConnectionLimitError extends CarrierError {}

/**
 * A peer address (`ADDRESS@HOST:PORT`) is malformed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { AddressError, parsePeerAddress, PeerAddressError } from "@carrier/p2p";
 * assert.throws(() => parsePeerAddress("127.0.0.1:4000"), PeerAddressError); // no ADDRESS@
 * assert.throws(
 *   () => parsePeerAddress("not-base58!@127.0.0.1:4000"),
 *   (error) => error instanceof PeerAddressError && error.cause instanceof AddressError,
 * );
 * ```
 */
export class PeerAddressError extends CarrierError {}

/**
 * The node is not running (not started yet, or closed).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createNode, NodeClosedError } from "@carrier/p2p";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
 * await using net = new MemoryNetwork();
 * await using a = await createNode({ transport: net.transport(), listen: ["mem:0"] });
 * const b = await createNode({ transport: net.transport() });
 * await b.close();
 * await assert.rejects(b.connect(a.peerAddresses[0]), NodeClosedError);
 * ```
 */
export class NodeClosedError extends CarrierError {}

/**
 * A node was asked to do what its state does not allow, other than being
 * closed (that is {@linkcode NodeClosedError}): `start()` on a node that has
 * started.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createNode, NodeStateError } from "@carrier/p2p";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
 * await using net = new MemoryNetwork();
 * await using node = await createNode({ transport: net.transport() });
 * await assert.rejects(node.start(), NodeStateError); // createNode started it
 * ```
 */
export class NodeStateError extends CarrierError {}

/**
 * Why a WHISPER cannot be opened (see {@linkcode WhisperError.problem}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { WhisperProblem } from "@carrier/p2p";
 * const problem: WhisperProblem = "bad signature";
 * assert.equal(problem, "bad signature");
 * ```
 */
export type WhisperProblem =
  | "wrong recipient"
  | "bad signature"
  | "decryption failed"
  | "sender mismatch"
  | "malformed"
  | "too large";

/**
 * Options of {@linkcode WhisperError}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { WhisperError, type WhisperErrorOptions } from "@carrier/p2p";
 * const options: WhisperErrorOptions = { problem: "too large" };
 * assert.equal(new WhisperError("Cannot open whisper: too large", options).problem, "too large");
 * ```
 */
export interface WhisperErrorOptions extends CarrierErrorOptions {
  /** What is wrong with the whisper. */
  problem: WhisperProblem;
}

/**
 * A WHISPER cannot be opened: wrong recipient, bad signature, failed decryption, sender mismatch, malformed or too large.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateIdentitySync, WhisperError } from "@carrier/p2p";
 * import { openWhisper, sealWhisper } from "@carrier/p2p/protocol";
 * const [alice, bob, carol] = Array.from(Array(3), () => generateIdentitySync({ difficulty: 0 }));
 * const whisper = await sealWhisper(alice, bob.publicKey, new Uint8Array([1]));
 * await assert.rejects(
 *   openWhisper(carol, whisper),
 *   (error) => error instanceof WhisperError && error.problem === "wrong recipient",
 * );
 * ```
 */
export class WhisperError extends CarrierError {
  /** What is wrong with the whisper: the node answers it with the NACK reason this names. */
  readonly problem: WhisperProblem;
  /** Creates the error. */
  constructor(message: string, options: WhisperErrorOptions) {
    super(message, options);
    this.problem = options.problem;
  }
}

/**
 * A relayed connection's circuit ended: the relay closed it (its limits,
 * the other end gone) with a DISCONNECT whose reason this carries.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ConnectionClosedError, DisconnectReason, RelayClosedError } from "@carrier/p2p";
 * const error = new RelayClosedError("over the relay's byte budget", {
 *   reason: DisconnectReason.LIMIT_REACHED,
 * });
 * assert(error instanceof ConnectionClosedError);
 * assert.equal(error.reason, DisconnectReason.LIMIT_REACHED);
 * ```
 */
export class RelayClosedError extends ConnectionClosedError {
  /** The `DisconnectReason` value the relay gave. */
  readonly reason: number;
  /** Creates the error. */
  constructor(message: string, options: ErrorOptions & { reason: number }) {
    super(message, options);
    this.reason = options.reason;
  }
}

/**
 * A hole punch made no direct connection: no dial from the chosen port
 * connected within the window (see `holepunch.proto`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DialError, HolePunchError } from "@carrier/p2p";
 * const error = new HolePunchError("no direct connection within 10000 ms", { attempts: 3 });
 * assert.ok(error instanceof DialError);
 * assert.equal(error.attempts, 3);
 * ```
 */
export class HolePunchError extends DialError {
  /** Connection attempts made (every address). */
  readonly attempts: number;
  /** Creates the error. */
  constructor(message: string, options: ErrorOptions & { attempts: number }) {
    super(message, options);
    this.attempts = options.attempts;
  }
}
