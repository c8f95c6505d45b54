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
 * import { createFrame, encodeFrame, FrameTooLargeError } from "@carrier/p2p";
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
 * import { FrameDecodeError, FrameDecoder } from "@carrier/p2p";
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
 * import { decodePayload, PayloadDecodeError } from "@carrier/p2p";
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
 * import { OpcodeRegistry, UnknownOpcodeError } from "@carrier/p2p";
 * assert.throws(() => new OpcodeRegistry().lookup(4242), UnknownOpcodeError);
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
 * import { Compression, CompressionError, decompress } from "@carrier/p2p";
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
 * import {
 *   compress,
 *   Compression,
 *   CompressionError,
 *   decompress,
 *   DecompressionLimitError,
 * } from "@carrier/p2p";
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
 * import { getCodec, UnsupportedCompressionError } from "@carrier/p2p";
 * assert.throws(() => getCodec(99), UnsupportedCompressionError);
 * ```
 */
export class UnsupportedCompressionError extends CarrierError {}

/**
 * The Noise handshake failed: garbage, a bad payload, a bad signature, a stall.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import {
 *   generateIdentitySync,
 *   HandshakeError,
 *   MemoryNetwork,
 *   secureOutbound,
 * } from "@carrier/p2p";
 * await using net = new MemoryNetwork();
 * const server = net.transport();
 * const listener = await server.listen("mem:0");
 * const stream = await net.transport().dial(listener.address);
 * server.close(); // the server is gone before the handshake
 * const identity = generateIdentitySync();
 * await assert.rejects(secureOutbound(stream, { identity }), HandshakeError);
 * ```
 */
export class HandshakeError extends CarrierError {}

/**
 * The remote proved an identity other than the one the dialer expected.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import {
 *   createNode,
 *   generateIdentitySync,
 *   IdentityMismatchError,
 *   MemoryNetwork,
 * } from "@carrier/p2p";
 * await using net = new MemoryNetwork();
 * await using a = await createNode({ transport: net.transport(), listen: ["mem:0"] });
 * await using b = await createNode({ transport: net.transport() });
 * const someoneElse = generateIdentitySync().address;
 * await assert.rejects(b.connect(`${someoneElse}@${a.listenAddrs[0]}`), IdentityMismatchError);
 * ```
 */
export class IdentityMismatchError extends HandshakeError {}

/**
 * A ciphertext failed authentication (tampered, replayed or out of order).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import {
 *   DecryptError,
 *   generateIdentitySync,
 *   MemoryNetwork,
 *   secureInbound,
 *   secureOutbound,
 * } from "@carrier/p2p";
 * const [alice, bob] = Array.from(Array(2), () => generateIdentitySync({ difficulty: 0 }));
 * await using net = new MemoryNetwork();
 * const listener = await net.transport().listen("mem:bob");
 * const accepting = (async () => {
 *   for await (const stream of listener) return secureInbound(stream, { identity: bob });
 * })();
 * const stream = await net.transport().dial(listener.address);
 * await using _channel = await secureOutbound(stream, { identity: alice });
 * await using atBob = (await accepting)!;
 * await stream.write(new Uint8Array([0, 16, ...new Uint8Array(16)])); // forged, not encrypted
 * await assert.rejects(atBob.read(), DecryptError);
 * ```
 */
export class DecryptError extends CarrierError {}

/**
 * A cipher state reached its last nonce; the connection must be closed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import {
 *   generateIdentitySync,
 *   MemoryNetwork,
 *   NonceExhaustedError,
 *   secureInbound,
 *   secureOutbound,
 * } from "@carrier/p2p";
 * const [alice, bob] = Array.from(Array(2), () => generateIdentitySync({ difficulty: 0 }));
 * await using net = new MemoryNetwork();
 * const listener = await net.transport().listen("mem:bob");
 * const accepting = (async () => {
 *   for await (const stream of listener) return secureInbound(stream, { identity: bob });
 * })();
 * const stream = await net.transport().dial(listener.address);
 * await using channel = await secureOutbound(stream, { identity: alice, nonceLimit: 1n });
 * await using _atBob = (await accepting)!;
 * await channel.write(new Uint8Array([1])); // nonce 0, the last one allowed
 * await assert.rejects(channel.write(new Uint8Array([2])), NonceExhaustedError);
 * ```
 */
export class NonceExhaustedError extends CarrierError {}

/**
 * An operation did not finish within its configured time.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import {
 *   generateIdentitySync,
 *   ManualClock,
 *   MemoryNetwork,
 *   secureOutbound,
 *   TimeoutError,
 * } from "@carrier/p2p";
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
 * import { ConnectionClosedError, MemoryNetwork } from "@carrier/p2p";
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
 * import { createNode, MemoryNetwork, SendBufferFullError } from "@carrier/p2p";
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
 * import { NodeIdError, xorDistance } from "@carrier/p2p";
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
 * import { parseHostPort, TransportAddressError } from "@carrier/p2p";
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
 * import { DialError, MemoryNetwork } from "@carrier/p2p";
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
 * import { ListenError, MemoryNetwork } from "@carrier/p2p";
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
 *   MemoryNetwork,
 *   NackError,
 *   type NackErrorOptions,
 *   NackReason,
 * } from "@carrier/p2p";
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
 * import { createNode, MemoryNetwork, NackError, NackReason, Opcode } from "@carrier/p2p";
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
 * import { ConnectionLimitError, createNode, MemoryNetwork } from "@carrier/p2p";
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
 * import { createNode, MemoryNetwork, NodeClosedError } from "@carrier/p2p";
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
 * import { generateIdentitySync, openWhisper, sealWhisper, WhisperError } from "@carrier/p2p";
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
 * A DHT key or record is invalid: a key that is not 32 bytes, a value over the size limit, a bad owner signature, a version out of range.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { dhtKey, RecordError } from "@carrier/p2p";
 * assert.throws(() => dhtKey(new Uint8Array(20)), RecordError); // a key is text or 32 bytes
 * ```
 */
export class RecordError extends CarrierError {}

/**
 * A patch does not apply: a JSON Patch operation fails, a splice is out of range, the result is too large or not what the patch's hash says.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { applyJsonPatch, PatchError } from "@carrier/p2p";
 * assert.throws(() => applyJsonPatch({ a: 1 }, [{ op: "remove", path: "/b" }]), PatchError);
 * ```
 */
export class PatchError extends CarrierError {}

/**
 * Options of {@linkcode VersionConflictError}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { VersionConflictError, type VersionConflictErrorOptions } from "@carrier/p2p";
 * const currentValue = new Uint8Array([7]);
 * const options: VersionConflictErrorOptions = { currentVersion: 3, currentValue };
 * const error = new VersionConflictError("Cannot write version 2: the replicas hold 3", options);
 * assert.equal(error.currentVersion, 3);
 * assert.equal(error.currentValue, currentValue);
 * ```
 */
export interface VersionConflictErrorOptions extends CarrierErrorOptions {
  /** The version the replicas hold. */
  currentVersion: number;
  /** The value the replicas hold, when they sent it. */
  currentValue?: Uint8Array;
}

/**
 * A compare-and-swap or a patch lost: the key is not at the expected version (or another write is in progress).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createNode, MemoryNetwork, VersionConflictError } from "@carrier/p2p";
 * await using net = new MemoryNetwork();
 * await using node = await createNode({ transport: net.transport(), listen: ["mem:0"] });
 * await node.dht.put("counter", "1");
 * const error = await node.dht.cas("counter", "2", 0).catch((e) => e); // expects no value yet
 * assert(error instanceof VersionConflictError && error.currentVersion === 1);
 * ```
 */
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

/**
 * Options of {@linkcode LockHeldError}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateIdentitySync, LockHeldError, type LockHeldErrorOptions } from "@carrier/p2p";
 * const holder = generateIdentitySync({ difficulty: 0 }).address;
 * const options: LockHeldErrorOptions = { holder, fencingToken: 7, expiresIn: 2_500 };
 * const error = new LockHeldError(`The lock is held by ${holder}`, options);
 * assert.deepEqual([error.holder, error.fencingToken, error.expiresIn], [holder, 7, 2_500]);
 * ```
 */
export interface LockHeldErrorOptions extends CarrierErrorOptions {
  /** The holder's address (base58). */
  holder: string;
  /** The holder's fencing token. */
  fencingToken: number;
  /** Time until the holder's lease expires, in ms. */
  expiresIn: number;
}

/**
 * A DHT lock is held by another node.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createNode, LockHeldError, MemoryNetwork } from "@carrier/p2p";
 * await using net = new MemoryNetwork();
 * await using a = await createNode({ transport: net.transport(), listen: ["mem:0"] });
 * await using b = await createNode({ transport: net.transport() });
 * await b.connect(a.peerAddresses[0]);
 * const lease = await a.dht.lock("job");
 * const error = await b.dht.lock("job").catch((e) => e);
 * assert(error instanceof LockHeldError && error.holder === a.address);
 * await a.dht.unlock(lease);
 * ```
 */
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

/**
 * Too few DHT replicas answered or agreed for the operation to count.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createNode, MemoryNetwork, QuorumError } from "@carrier/p2p";
 * await using net = new MemoryNetwork();
 * await using node = await createNode({ transport: net.transport() }); // listens: no replica
 * await assert.rejects(node.dht.put("key", "value"), QuorumError);
 * ```
 */
export class QuorumError extends CarrierError {}

/**
 * Options of {@linkcode ReplicationError}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ReplicationError, type ReplicationErrorOptions } from "@carrier/p2p";
 * const options: ReplicationErrorOptions = { version: 3, replicas: 1, needed: 2, asked: 3 };
 * const error = new ReplicationError("The put of version 3 reached 1 of 3 replicas", options);
 * assert.deepEqual([error.version, error.replicas, error.needed], [3, 1, 2]);
 * ```
 */
export interface ReplicationErrorOptions extends CarrierErrorOptions {
  /** The version written. */
  version: number;
  /** Replicas that stored it. */
  replicas: number;
  /** Replicas it needed (`minReplicas`). */
  needed: number;
  /** Replicas asked. */
  asked: number;
}

/**
 * A DHT put stored its record at fewer replicas than its minimum
 * (`minReplicas`, by default a majority of the replica set): those that
 * stored it keep it (nothing is rolled back; this node does not republish
 * it), the others refused or did not answer (`cause`: one of their
 * failures). A {@linkcode QuorumError}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createNode, MemoryNetwork, QuorumError, ReplicationError } from "@carrier/p2p";
 * await using net = new MemoryNetwork();
 * await using node = await createNode({ transport: net.transport(), listen: ["mem:0"] });
 * const error = await node.dht.put("key", "value", { minReplicas: 2 }).catch((e) => e);
 * assert(error instanceof ReplicationError && error instanceof QuorumError);
 * assert.deepEqual([error.replicas, error.needed], [1, 2]); // a network of one
 * ```
 */
export class ReplicationError extends QuorumError {
  /** The version written. */
  readonly version: number;
  /** Replicas that stored it. */
  readonly replicas: number;
  /** Replicas it needed. */
  readonly needed: number;
  /** Replicas asked. */
  readonly asked: number;
  /** Creates the error. */
  constructor(message: string, options: ReplicationErrorOptions) {
    super(message, options);
    this.version = options.version;
    this.replicas = options.replicas;
    this.needed = options.needed;
    this.asked = options.asked;
  }
}
