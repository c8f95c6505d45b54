/**
 * The secure channel: turns a {@linkcode ByteStream} into an authenticated,
 * encrypted stream of messages between two node identities.
 *
 * ## Protocol (carrier/v1)
 *
 * Enough to write another implementation, with `proto/carrier/v1/handshake.proto`.
 *
 * **Framing.** Every Noise message, handshake and transport alike, travels as
 * a 2-byte big-endian unsigned length, then that many bytes (0 to 65535). There
 * is no other framing and no version negotiation: the version is in the
 * prologue.
 *
 * **Handshake.** `Noise_XX_25519_AESGCM_SHA256` (Noise revision 34): X25519,
 * AES-256-GCM with the 96-bit nonce `0x00000000 || n` (n 64-bit big-endian),
 * SHA-256. The dialer is the initiator. The prologue is the 10 ASCII bytes of
 * {@linkcode PROLOGUE} (`"carrier/v1"`), so a peer speaking another version
 * fails message 2 or 3 authentication.
 *
 * ```text
 * -> e                   payload: empty (0 bytes; a responder refuses anything else)
 * <- e, ee, s, es        payload: HandshakePayload of the responder (encrypted)
 * -> s, se               payload: HandshakePayload of the initiator (encrypted)
 * ```
 *
 * Message 1 is therefore exactly 32 bytes (34 with its length prefix).
 *
 * **Payload.** Messages 2 and 3 carry a serialized `carrier.v1.HandshakePayload`:
 *
 * - `identity_key`: the sender's 32-byte Ed25519 public key, which is its
 *   node address.
 * - `identity_signature`: the 64-byte Ed25519 signature (RFC 8032, strict
 *   verification) by `identity_key` over the 28 ASCII bytes of
 *   {@linkcode IDENTITY_SIGNATURE_CONTEXT} (`"carrier/v1 noise-static-key:"`)
 *   followed by the sender's 32-byte X25519 Noise static public key (60 bytes
 *   signed in all). This binds the identity to the static key the handshake
 *   authenticates. The static key may be fresh per connection or long-lived.
 * - `accepts_inbound`, `compressions`, `max_frame_size` (0: the protocol
 *   default), `listen_addrs`, `agent`, `preferred_compression`: the sender's
 *   settings.
 * - `observed_addr`: the transport address the sender sees the receiver at
 *   (`"host:port"`, `"[v6]:port"` or `"mem:name"`).
 *
 * **Checks.** On message 2 (the initiator) and message 3 (the responder) the
 * receiver checks, in this order, and fails the handshake otherwise: the
 * payload parses; `identity_key` is 32 bytes; the signature verifies against
 * the remote static key this handshake actually authenticated; the identity
 * is not the receiver's own (a node that dialed itself); the key passes the
 * static puzzle (SHA-256(SHA-256(identity_key)) has at least `c1` leading zero
 * bits) when the receiver requires `c1` > 0; and it is the expected identity
 * when the receiver expects one. The initiator makes all its checks before it
 * sends message 3, so it never authenticates itself to a peer it rejects.
 *
 * **Transport.** After message 3 both sides `Split()`: the initiator sends
 * with the first cipher state and receives with the second, the responder the
 * reverse. Every transport message is a 2-byte big-endian length, then
 * `AES-256-GCM(k, n, ad = empty, plaintext) || tag`, 16 to 65535 bytes, so a
 * plaintext is at most {@linkcode MAX_PLAINTEXT} (65519) bytes. Nonces count
 * from 0 per direction and are never reused; a message that fails
 * authentication (tampered, replayed, reordered, truncated) ends the
 * connection. There is no rekeying: a connection whose nonces run out
 * (`nonceLimit`) is closed. What the plaintexts contain is the layer above's
 * business (size-delimited `carrier.v1.Frame`s, which may span messages).
 *
 * **Limits.** A handshake must finish within `handshakeTimeout` (10 s by
 * default). A receiver never allocates from a length it was sent beyond the
 * 65537 bytes of one length-prefixed message during the handshake.
 *
 * Any failure during the handshake closes the stream; the typed errors are
 * {@linkcode HandshakeError} (garbage, a bad payload or signature, EOF; the
 * message names the step), {@linkcode IdentityMismatchError} (the peer is not
 * `expectedRemote`), {@linkcode TimeoutError}, or the abort signal's reason.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import {
 *   generateIdentitySync,
 *   MemoryNetwork,
 *   secureInbound,
 *   secureOutbound,
 * } from "@carrier/p2p";
 *
 * await using net = new MemoryNetwork();
 * const alice = generateIdentitySync({ difficulty: 0 });
 * const bob = generateIdentitySync({ difficulty: 0 });
 * const listener = await net.transport().listen("mem:bob");
 * const accepted = (async () => {
 *   for await (const stream of listener) {
 *     return await secureInbound(stream, { identity: bob });
 *   }
 *   throw new Error("listener closed");
 * })();
 * const stream = await net.transport().dial("mem:bob");
 * await using toBob = await secureOutbound(stream, {
 *   identity: alice,
 *   expectedRemote: bob.publicKey,
 * });
 * await using atBob = await accepted;
 * assert.equal(atBob.remote.address, alice.address);
 *
 * await toBob.write(new TextEncoder().encode("hello"));
 * const message = await atBob.read();
 * assert.equal(new TextDecoder().decode(message!), "hello");
 * ```
 *
 * @module
 */

import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  type HandshakePayload,
  HandshakePayloadSchema,
} from "../../gen/carrier/v1/handshake_pb.ts";
import type { Compression } from "../../gen/carrier/v1/options_pb.ts";
import { SUPPORTED_COMPRESSIONS } from "../wire/compression.ts";
import { bytesEqual } from "../_bytes.ts";
import { type Clock, systemClock } from "../clock.ts";
import {
  ConnectionClosedError,
  HandshakeError,
  IdentityMismatchError,
  TimeoutError,
} from "../errors.ts";
import { ADDRESS_LENGTH, assertAddressBytes, formatAddress } from "../identity/address.ts";
import { type Identity, sign, verify } from "../identity/keys.ts";
import { assertPuzzle, assertPuzzleDifficulty } from "../identity/puzzle.ts";
import type { ByteStream } from "../transport/types.ts";
import {
  type CipherState,
  createHandshake,
  generateX25519KeyPair,
  type Handshake,
  MAX_MESSAGE_LENGTH,
  MAX_NONCE,
  MAX_PLAINTEXT_LENGTH,
  type X25519KeyPair,
} from "./noise.ts";

/**
 * The Noise prologue: the ASCII bytes of `"carrier/v1"`, naming the protocol and its version.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { PROLOGUE, WHISPER_PROLOGUE } from "@carrier/p2p";
 * // Bound into every handshake hash: a peer of another version fails to authenticate.
 * assert.equal(new TextEncoder().encode(PROLOGUE).length, 10);
 * assert.notEqual(PROLOGUE, WHISPER_PROLOGUE);
 * ```
 */
export const PROLOGUE = "carrier/v1";

/**
 * The context string of the identity signature: a node signs the ASCII bytes
 * of `"carrier/v1 noise-static-key:"` followed by its 32-byte Noise static
 * public key with its Ed25519 identity key.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import {
 *   generateIdentitySync,
 *   generateX25519KeyPair,
 *   IDENTITY_SIGNATURE_CONTEXT,
 *   sign,
 *   verify,
 * } from "@carrier/p2p";
 * const identity = generateIdentitySync({ difficulty: 0 });
 * const context = new TextEncoder().encode(IDENTITY_SIGNATURE_CONTEXT);
 * // What a node signs in its handshake: the context, then its Noise static key.
 * const signed = new Uint8Array([...context, ...generateX25519KeyPair().publicKey]);
 * assert.equal(signed.length, 60);
 * assert(verify(identity.publicKey, signed, sign(identity, signed)));
 * ```
 */
export const IDENTITY_SIGNATURE_CONTEXT = "carrier/v1 noise-static-key:";

/**
 * The full Noise protocol name the channel runs.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { NOISE_PROTOCOL_NAME } from "@carrier/p2p";
 * const [, pattern, dh, cipher, hash] = NOISE_PROTOCOL_NAME.split("_");
 * assert.deepEqual([pattern, dh, cipher, hash], ["XX", "25519", "AESGCM", "SHA256"]);
 * ```
 */
export const NOISE_PROTOCOL_NAME = "Noise_XX_25519_AESGCM_SHA256";

/** Length of the big-endian length prefix in front of every Noise message, in bytes. */
export const LENGTH_PREFIX_LENGTH = 2;

/**
 * Largest plaintext of one transport message: 65535 − 16 = 65519 bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import {
 *   generateIdentitySync,
 *   MAX_PLAINTEXT,
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
 * await using channel = await secureOutbound(stream, { identity: alice });
 * await using atBob = (await accepting)!;
 * await assert.rejects(channel.write(new Uint8Array(MAX_PLAINTEXT + 1)), RangeError);
 * await channel.write(new Uint8Array(MAX_PLAINTEXT)); // one whole transport message
 * assert.equal((await atBob.read())?.length, MAX_PLAINTEXT);
 * ```
 */
export const MAX_PLAINTEXT: number = MAX_PLAINTEXT_LENGTH;

/**
 * Default of {@linkcode SecureChannelOptions.handshakeTimeout}, in milliseconds.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import {
 *   DEFAULT_HANDSHAKE_TIMEOUT,
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
 * const handshake = secureOutbound(stream, { identity: generateIdentitySync(), clock });
 * clock.advance(DEFAULT_HANDSHAKE_TIMEOUT);
 * await assert.rejects(handshake, TimeoutError);
 * ```
 */
export const DEFAULT_HANDSHAKE_TIMEOUT = 10_000;

/** Default of {@linkcode SecureChannelOptions.agent}. */
export const DEFAULT_AGENT = "carrier";

/** Largest length-prefixed Noise message on the wire: 65537 bytes. */
const MAX_WIRE_MESSAGE = LENGTH_PREFIX_LENGTH + MAX_MESSAGE_LENGTH;
/** Read buffer at first: holds a whole handshake. */
const INITIAL_READ_BUFFER = 4096;
/**
 * The read buffer grows (while reads keep filling it) up to this, after the
 * handshake. While decryptions still view one buffer, reading goes on into a
 * second one, so a busy channel holds at most two.
 */
const MAX_READ_BUFFER = 256 * 1024;
/** Transport messages whose decryption starts before the caller asks for them. */
const READ_AHEAD = 8;
/** The coalescing write buffer is kept for reuse up to this size; one stream write is at most this (or one message). */
const MAX_KEPT_WRITE_BUFFER = 4 * MAX_WIRE_MESSAGE;
const UINT32_MAX = 0xffff_ffff;

const encoder = new TextEncoder();
const PROLOGUE_BYTES = encoder.encode(PROLOGUE);
const CONTEXT_BYTES = encoder.encode(IDENTITY_SIGNATURE_CONTEXT);

/**
 * What one side of a secure channel learned about the other in the handshake.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createNode, type HandshakeInfo, MemoryNetwork } from "@carrier/p2p";
 * await using net = new MemoryNetwork();
 * const agent = "demo/1.0";
 * await using a = await createNode({ transport: net.transport(), listen: ["mem:0"], agent });
 * await using b = await createNode({ transport: net.transport() });
 * const remote: HandshakeInfo = (await b.connect(a.peerAddresses[0])).channel.remote;
 * assert.equal(remote.address, a.address);
 * assert.equal(remote.agent, agent);
 * assert(remote.acceptsInbound);
 * ```
 */
export interface HandshakeInfo {
  /** The remote's 32-byte Ed25519 public key (its raw address), proven by the handshake. */
  identityKey: Uint8Array;
  /** The base58 text form of {@linkcode HandshakeInfo.identityKey}. */
  address: string;
  /** Whether the remote accepts inbound connections. */
  acceptsInbound: boolean;
  /** The compression settings (`Compression` values) the remote can decode. */
  compressions: number[];
  /** The compression the remote would like the connection to use, if it named one. */
  preferredCompression?: number;
  /** The largest frame the remote accepts, in bytes; 0 stands for the protocol default. */
  maxFrameSize: number;
  /** Addresses the remote says it listens on. */
  listenAddrs: string[];
  /** The transport address the remote sees this side at. */
  observedAddr: string;
  /** The remote's software name and version (diagnostics only). */
  agent: string;
}

/**
 * Options of {@linkcode secureOutbound} and {@linkcode secureInbound}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import {
 *   generateIdentitySync,
 *   MemoryNetwork,
 *   type SecureChannelOptions,
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
 * const options: SecureChannelOptions = {
 *   identity: alice,
 *   expectedRemote: bob.publicKey, // fail unless the remote proves to be Bob
 *   agent: "x/1",
 * };
 * await using channel = await secureOutbound(stream, options);
 * await using atBob = (await accepting)!;
 * assert.equal(atBob.remote.agent, "x/1");
 * assert.equal(channel.remote.address, bob.address);
 * ```
 */
export interface SecureChannelOptions {
  /** This node's identity: it signs the handshake with it. */
  identity: Identity;
  /**
   * The 32-byte address the remote must prove. The dialer checks it before
   * sending message 3 and fails with {@linkcode IdentityMismatchError}; a
   * listener given one checks it after message 3.
   *
   * @default {undefined} (any identity)
   */
  expectedRemote?: Uint8Array;
  /**
   * Sent to the remote: whether this node accepts inbound connections.
   *
   * @default {false}
   */
  acceptsInbound?: boolean;
  /**
   * Sent to the remote: the compression settings this node can decode.
   *
   * @default {SUPPORTED_COMPRESSIONS} (all five)
   */
  compressions?: number[];
  /**
   * Sent to the remote: the compression this node would like to use.
   *
   * @default {undefined} (none named)
   */
  preferredCompression?: number;
  /**
   * Sent to the remote: the largest frame this node accepts, in bytes (a
   * uint32); 0 stands for the protocol default.
   *
   * @default {0}
   */
  maxFrameSize?: number;
  /**
   * Sent to the remote: the addresses this node listens on.
   *
   * @default {[]}
   */
  listenAddrs?: string[];
  /**
   * Sent to the remote: software name and version, for diagnostics.
   *
   * @default {DEFAULT_AGENT}
   */
  agent?: string;
  /**
   * The static puzzle difficulty `c1` the remote's identity key must pass
   * (0 to 256); 0 accepts any key.
   *
   * @default {0}
   */
  puzzleDifficulty?: number;
  /**
   * Milliseconds the whole handshake may take; on expiry the stream is
   * closed and the call rejects with {@linkcode TimeoutError}. `Infinity`
   * disables the timer.
   *
   * @default {DEFAULT_HANDSHAKE_TIMEOUT} (10 000)
   */
  handshakeTimeout?: number;
  /**
   * Called when a handshake message from the peer has arrived whole and
   * decrypted (the connection manager evicts handshakes that made no
   * progress first).
   *
   * @default {undefined}
   */
  onHandshakeMessage?: () => void;
  /**
   * The first nonce each transport cipher state refuses: after
   * `nonceLimit` messages in one direction, writing throws
   * `NonceExhaustedError` (and reading fails likewise) and the channel
   * closes.
   *
   * @default {MAX_NONCE} (2^64 − 1, the Noise limit)
   */
  nonceLimit?: bigint;
  /**
   * The X25519 Noise static key pair. The identity signature binds whichever
   * key is used, so a per-node key is as safe as a fresh one; a fresh one
   * costs a key generation and a signature per connection.
   *
   * @default {undefined} (a fresh key pair per channel)
   */
  noiseStaticKeyPair?: X25519KeyPair;
  /**
   * Aborts the handshake: the stream is closed and the call rejects with
   * the signal's reason. It has no effect once the channel is established.
   *
   * @default {undefined}
   */
  signal?: AbortSignal;
  /**
   * The clock the handshake timer uses.
   *
   * @default {systemClock}
   */
  clock?: Clock;
}

/**
 * Dials the secure channel over `stream`: runs the handshake as the Noise
 * initiator, checks the responder's identity, and resolves to the channel.
 * On failure the stream is closed.
 *
 * @param stream A fresh stream, nothing read or written yet.
 * @param options This node's identity and settings, and what to expect of the remote.
 * @returns The established channel.
 * @throws {IdentityMismatchError} When the remote proves another identity than `expectedRemote`.
 * @throws {HandshakeError} On garbage, a payload that does not parse, a bad signature, a key
 * below the puzzle difficulty, a connection to itself, or the stream ending mid-handshake.
 * @throws {TimeoutError} When the handshake takes longer than `handshakeTimeout`.
 * @throws The signal's reason when `options.signal` aborts.
 * @throws {TypeError | RangeError | AddressError} When an option is invalid.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import {
 *   generateIdentitySync,
 *   MemoryNetwork,
 *   secureInbound,
 *   secureOutbound,
 * } from "@carrier/p2p";
 *
 * await using net = new MemoryNetwork();
 * const server = generateIdentitySync({ difficulty: 0 });
 * const listener = await net.transport().listen("mem:server");
 * const serving = (async () => {
 *   for await (const stream of listener) {
 *     await using channel = await secureInbound(stream, { identity: server });
 *     await channel.write((await channel.read())!); // echo once
 *     return;
 *   }
 * })();
 * const client = generateIdentitySync({ difficulty: 0 });
 * await using channel = await secureOutbound(await net.transport().dial("mem:server"), {
 *   identity: client,
 *   expectedRemote: server.publicKey,
 *   handshakeTimeout: 5_000,
 * });
 * await channel.write(new Uint8Array([1, 2, 3]));
 * assert.deepEqual(await channel.read(), new Uint8Array([1, 2, 3]));
 * await serving;
 * ```
 */
export function secureOutbound(
  stream: ByteStream,
  options: SecureChannelOptions,
): Promise<SecureChannel> {
  return establish(stream, options, true);
}

/**
 * Accepts the secure channel over `stream`: runs the handshake as the Noise
 * responder, checks the initiator's identity, and resolves to the channel.
 * On failure the stream is closed; a listener should call it once per
 * accepted stream without awaiting it in the accept loop, so that one bad
 * peer does not hold up the others.
 *
 * @param stream A freshly accepted stream, nothing read or written yet.
 * @param options This node's identity and settings.
 * @returns The established channel.
 * @throws {HandshakeError} On garbage, a payload that does not parse, a bad signature, a key
 * below the puzzle difficulty, a connection to itself, or the stream ending mid-handshake.
 * @throws {IdentityMismatchError} When `expectedRemote` is set and the initiator is someone else.
 * @throws {TimeoutError} When the handshake takes longer than `handshakeTimeout`.
 * @throws The signal's reason when `options.signal` aborts.
 * @throws {TypeError | RangeError | AddressError} When an option is invalid.
 *
 * @example
 * ```ts
 * import { type Identity, type Listener, type SecureChannel, secureInbound } from "@carrier/p2p";
 *
 * async function serve(
 *   listener: Listener,
 *   identity: Identity,
 *   handle: (channel: SecureChannel) => Promise<void>,
 * ): Promise<void> {
 *   for await (const stream of listener) {
 *     secureInbound(stream, { identity, puzzleDifficulty: 8 })
 *       .then((channel) => handle(channel).finally(() => channel.close()))
 *       .catch((error) => console.warn(`${stream.remoteAddress}: ${error}`));
 *   }
 * }
 * ```
 */
export function secureInbound(
  stream: ByteStream,
  options: SecureChannelOptions,
): Promise<SecureChannel> {
  return establish(stream, options, false);
}

/** Everything the handshake needs, validated. */
interface Settings {
  identity: Identity;
  expectedRemote: Uint8Array | undefined;
  payload: Omit<HandshakePayload, "$typeName" | "$unknown">;
  puzzleDifficulty: number;
  handshakeTimeout: number;
  nonceLimit: bigint;
  staticKeyPair: X25519KeyPair;
  signal: AbortSignal | undefined;
  clock: Clock;
  onHandshakeMessage: (() => void) | undefined;
}

/** Creates a channel; set by the class's static block (its constructor is private). */
let newChannel: (init: ChannelInit) => SecureChannel;

/** What the handshake hands to the channel. */
interface ChannelInit {
  stream: ByteStream;
  reader: MessageReader;
  ciphers: { send: CipherState; receive: CipherState };
  local: HandshakeInfo;
  remote: HandshakeInfo;
  handshakeHash: Uint8Array;
  initiator: boolean;
}

async function establish(
  stream: ByteStream,
  options: SecureChannelOptions,
  initiator: boolean,
): Promise<SecureChannel> {
  let settings: Settings;
  try {
    settings = resolveOptions(stream, options);
    settings.signal?.throwIfAborted();
  } catch (error) {
    stream.close();
    throw error;
  }
  const { signal, clock, handshakeTimeout } = settings;
  let interrupted = false;
  let interruption: unknown;
  const interrupt = (reason: unknown): void => {
    if (interrupted) return;
    interrupted = true;
    interruption = reason;
    // Closing the stream ends the pending read or write, so the handshake
    // below settles promptly and leaves nothing running.
    stream.close();
  };
  const timer = Number.isFinite(handshakeTimeout)
    ? clock.setTimeout(
      () =>
        interrupt(
          new TimeoutError(
            `Noise handshake with ${stream.remoteAddress} timed out after ${handshakeTimeout} ms`,
          ),
        ),
      handshakeTimeout,
    )
    : undefined;
  const onAbort = (): void => interrupt(signal!.reason);
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    const channel = await handshake(stream, settings, initiator);
    if (interrupted) {
      channel.close();
      throw interruption;
    }
    return channel;
  } catch (error) {
    stream.close();
    throw interrupted ? interruption : error;
  } finally {
    if (timer !== undefined) clock.clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
  }
}

function resolveOptions(
  stream: ByteStream,
  options: SecureChannelOptions,
): Settings {
  const what = "Cannot start the secure channel";
  const identity = options?.identity;
  if (
    !(identity?.publicKey instanceof Uint8Array) ||
    identity.publicKey.length !== ADDRESS_LENGTH
  ) {
    throw new TypeError(
      `${what}: options.identity must be an Identity with a 32-byte publicKey`,
    );
  }
  const expectedRemote = options.expectedRemote;
  if (expectedRemote !== undefined) assertAddressBytes(expectedRemote);
  const puzzleDifficulty = options.puzzleDifficulty ?? 0;
  assertPuzzleDifficulty(puzzleDifficulty);
  const handshakeTimeout = options.handshakeTimeout ??
    DEFAULT_HANDSHAKE_TIMEOUT;
  if (
    typeof handshakeTimeout !== "number" || !(handshakeTimeout > 0)
  ) {
    throw new RangeError(
      `${what}: handshakeTimeout must be a positive number of milliseconds, got ${handshakeTimeout}`,
    );
  }
  const nonceLimit = options.nonceLimit ?? MAX_NONCE;
  if (
    typeof nonceLimit !== "bigint" || nonceLimit < 0n || nonceLimit > MAX_NONCE
  ) {
    throw new RangeError(
      `${what}: nonceLimit must be a bigint from 0 to 2^64 - 1, got ${nonceLimit}`,
    );
  }
  const maxFrameSize = options.maxFrameSize ?? 0;
  checkUint32("maxFrameSize", maxFrameSize);
  const compressions = options.compressions ?? [...SUPPORTED_COMPRESSIONS];
  compressions.forEach((c, i) => checkUint32(`compressions[${i}]`, c));
  if (options.preferredCompression !== undefined) {
    checkUint32("preferredCompression", options.preferredCompression);
  }
  const given = options.noiseStaticKeyPair;
  if (
    given !== undefined &&
    !(given.publicKey?.length === 32 && given.privateKey?.length === 32)
  ) {
    throw new RangeError(
      `${what}: noiseStaticKeyPair must hold a 32-byte publicKey and a 32-byte privateKey`,
    );
  }
  const staticKeyPair = given ?? generateX25519KeyPair();
  return {
    identity,
    expectedRemote,
    payload: {
      identityKey: identity.publicKey,
      identitySignature: signStaticKey(identity, staticKeyPair, given !== undefined),
      acceptsInbound: options.acceptsInbound ?? false,
      compressions: compressions as Compression[],
      maxFrameSize,
      listenAddrs: options.listenAddrs ?? [],
      observedAddr: stream.remoteAddress,
      agent: options.agent ?? DEFAULT_AGENT,
      preferredCompression: options.preferredCompression as
        | Compression
        | undefined,
    },
    puzzleDifficulty,
    handshakeTimeout,
    nonceLimit,
    staticKeyPair,
    signal: options.signal,
    clock: options.clock ?? systemClock,
    onHandshakeMessage: options.onHandshakeMessage,
  };
}

function checkUint32(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 0 || value > UINT32_MAX) {
    throw new RangeError(
      `Cannot start the secure channel: ${name} must be an integer from 0 to ${UINT32_MAX}, got ${value}`,
    );
  }
}

/** Signatures of long-lived static keys, so that a per-node key is signed once per identity. */
const signatureCache = new WeakMap<
  X25519KeyPair,
  { identity: Identity; signature: Uint8Array }
>();

function signStaticKey(
  identity: Identity,
  staticKeyPair: X25519KeyPair,
  longLived: boolean,
): Uint8Array {
  const cached = signatureCache.get(staticKeyPair);
  if (cached?.identity === identity) return cached.signature;
  const signature = sign(
    identity,
    identitySignatureMessage(staticKeyPair.publicKey),
  );
  if (longLived) signatureCache.set(staticKeyPair, { identity, signature });
  return signature;
}

/** The bytes an identity signs: the context string, then the Noise static public key. */
function identitySignatureMessage(staticPublicKey: Uint8Array): Uint8Array {
  const message = new Uint8Array(CONTEXT_BYTES.length + staticPublicKey.length);
  message.set(CONTEXT_BYTES);
  message.set(staticPublicKey, CONTEXT_BYTES.length);
  return message;
}

async function handshake(
  stream: ByteStream,
  settings: Settings,
  initiator: boolean,
): Promise<SecureChannel> {
  const role = initiator ? "initiator" : "responder";
  const fail = (step: string, why: string, cause?: unknown): HandshakeError =>
    new HandshakeError(
      `Noise handshake with ${stream.remoteAddress} (as ${role}) failed ${step}: ${why}`,
      cause === undefined ? undefined : { cause },
    );
  const reader = new MessageReader(stream, MAX_WIRE_MESSAGE);
  const hs = createHandshake({
    pattern: "XX",
    initiator,
    prologue: PROLOGUE_BYTES,
    staticKeyPair: settings.staticKeyPair,
  });

  const send = async (index: number, payload?: Uint8Array): Promise<void> => {
    const step = `writing message ${index}`;
    let message: Uint8Array;
    try {
      message = await hs.writeMessage(payload);
    } catch (error) {
      throw fail(step, reasonOf(error), error);
    }
    const framed = new Uint8Array(LENGTH_PREFIX_LENGTH + message.length);
    framed[0] = message.length >>> 8;
    framed[1] = message.length & 0xff;
    framed.set(message, LENGTH_PREFIX_LENGTH);
    try {
      await stream.write(framed);
    } catch (error) {
      throw fail(step, reasonOf(error), error);
    }
  };

  const receive = async (index: number): Promise<Uint8Array> => {
    const step = `reading message ${index}`;
    let message: Uint8Array | null;
    try {
      while ((message = reader.next()) === null) {
        if (!await reader.fill()) {
          throw fail(
            step,
            `the stream ended after ${reader.buffered} of the ${reader.wanted} bytes expected`,
          );
        }
      }
    } catch (error) {
      if (error instanceof HandshakeError) throw error;
      throw fail(step, reasonOf(error), error);
    }
    let plaintext: Uint8Array;
    try {
      plaintext = await hs.readMessage(message);
    } catch (error) {
      throw fail(step, reasonOf(error), error);
    }
    settings.onHandshakeMessage?.();
    return plaintext;
  };

  const payload = toBinary(
    HandshakePayloadSchema,
    create(HandshakePayloadSchema, settings.payload),
  );
  let remote: HandshakeInfo;
  if (initiator) {
    await send(1);
    remote = checkPayload(hs, await receive(2), 2, settings, fail);
    await send(3, payload);
  } else {
    const first = await receive(1);
    if (first.length !== 0) {
      throw fail(
        "reading message 1",
        `its payload must be empty, got ${first.length} bytes`,
      );
    }
    await send(2, payload);
    remote = checkPayload(hs, await receive(3), 3, settings, fail);
  }
  const ciphers = hs.split({ nonceLimit: settings.nonceLimit });
  reader.maxCapacity = MAX_READ_BUFFER;
  const sent = settings.payload;
  const local: HandshakeInfo = {
    identityKey: sent.identityKey,
    address: formatAddress(sent.identityKey),
    acceptsInbound: sent.acceptsInbound,
    compressions: [...sent.compressions],
    preferredCompression: sent.preferredCompression,
    maxFrameSize: sent.maxFrameSize,
    listenAddrs: [...sent.listenAddrs],
    observedAddr: sent.observedAddr,
    agent: sent.agent,
  };
  return newChannel({
    stream,
    reader,
    ciphers,
    local,
    remote,
    handshakeHash: hs.handshakeHash,
    initiator,
  });
}

function checkPayload(
  hs: Handshake,
  bytes: Uint8Array,
  index: number,
  settings: Settings,
  fail: (step: string, why: string, cause?: unknown) => HandshakeError,
): HandshakeInfo {
  const step = `checking the payload of message ${index}`;
  let payload: HandshakePayload;
  try {
    payload = fromBinary(HandshakePayloadSchema, bytes, {
      readUnknownFields: false,
    });
  } catch (error) {
    throw fail(
      step,
      `${bytes.length} bytes do not parse as carrier.v1.HandshakePayload: ${reasonOf(error)}`,
      error,
    );
  }
  const key = payload.identityKey;
  if (key.length !== ADDRESS_LENGTH) {
    throw fail(
      step,
      `identity_key must be ${ADDRESS_LENGTH} bytes, got ${key.length}`,
    );
  }
  const address = formatAddress(key);
  const staticKey = hs.remoteStaticPublicKey!;
  if (
    !verify(key, identitySignatureMessage(staticKey), payload.identitySignature)
  ) {
    throw fail(
      step,
      `identity_signature of ${address} does not verify over its Noise static key`,
    );
  }
  if (bytesEqual(key, settings.identity.publicKey)) {
    throw fail(
      step,
      `the remote is this node itself (${address}): a node cannot connect to itself`,
    );
  }
  if (settings.puzzleDifficulty > 0) {
    try {
      assertPuzzle(key, settings.puzzleDifficulty);
    } catch (error) {
      throw fail(step, reasonOf(error), error);
    }
  }
  const expected = settings.expectedRemote;
  if (expected !== undefined && !bytesEqual(key, expected)) {
    throw new IdentityMismatchError(
      `Noise handshake with ${settings.payload.observedAddr}: expected remote ${
        formatAddress(expected)
      }, but it proved identity ${address}`,
    );
  }
  return {
    identityKey: key,
    address,
    acceptsInbound: payload.acceptsInbound,
    compressions: payload.compressions,
    preferredCompression: payload.preferredCompression,
    maxFrameSize: payload.maxFrameSize,
    listenAddrs: payload.listenAddrs,
    observedAddr: payload.observedAddr,
    agent: payload.agent,
  };
}

/**
 * An established secure channel: a stream of whole, authenticated and
 * encrypted messages (plaintexts of 0 to {@linkcode MAX_PLAINTEXT} bytes)
 * between two proven identities. Get one from {@linkcode secureOutbound} or
 * {@linkcode secureInbound}.
 *
 * Once the first `read` is called, the channel keeps reading the stream and
 * decrypting ahead of the caller, up to `READ_AHEAD` (8) messages. A write's
 * encryption starts as soon as it is called (several run in parallel on
 * WebCrypto's worker threads), and each ciphertext is written as soon as it
 * and the ones before it are ready, those ready together in one stream
 * write. So a caller that does not await each write before the next keeps
 * the ciphers and the socket busy at the same time.
 *
 * Any failure (a message that fails authentication, nonce exhaustion, the
 * stream failing) closes the channel; later writes reject with
 * `ConnectionClosedError` and later reads with the same failure.
 *
 * @example
 * ```ts
 * import type { SecureChannel } from "@carrier/p2p";
 *
 * async function echo(channel: SecureChannel): Promise<void> {
 *   for (let m; (m = await channel.read()) !== null;) await channel.write(m);
 *   await channel.closeWrite();
 * }
 * ```
 */
export class SecureChannel implements AsyncDisposable {
  /** What this side announced in the handshake. */
  readonly local: HandshakeInfo;
  /** What the remote proved and announced in the handshake. */
  readonly remote: HandshakeInfo;
  /** The final Noise handshake hash (32 bytes), identical on both sides: a channel binding. */
  readonly handshakeHash: Uint8Array;
  /** The underlying byte stream. Do not read or write it directly. */
  readonly stream: ByteStream;
  /** Whether this side dialed (was the Noise initiator). */
  readonly initiator: boolean;
  #reader: MessageReader;
  #send: CipherState;
  #receive: CipherState;
  /** Decryptions started ahead of the reader, in order. */
  #pending: Promise<Uint8Array>[] = [];
  #pendingHead = 0;
  #reading = false;
  #readError: unknown = undefined;
  /** The stream read in flight, if any. */
  #filling: Promise<void> | undefined;
  /** Whether the stream ended. */
  #ended = false;
  /** The error the last stream read failed with. */
  #fillError: unknown = undefined;
  #closed = false;
  #failure: unknown = undefined;
  /** Settles once every write called so far has settled. */
  #writeTail: Promise<void> = Promise.resolve();
  /** Messages being encrypted or waiting to be written, in nonce order. */
  #outgoing: Outgoing[] = [];
  #outgoingHead = 0;
  #writing = false;
  #writeBuffer: Uint8Array = new Uint8Array(0);

  static {
    newChannel = (init) => new SecureChannel(init);
  }

  private constructor(init: ChannelInit) {
    this.stream = init.stream;
    this.local = init.local;
    this.remote = init.remote;
    this.handshakeHash = init.handshakeHash;
    this.initiator = init.initiator;
    this.#reader = init.reader;
    this.#send = init.ciphers.send;
    this.#receive = init.ciphers.receive;
  }

  /** Whether the channel is closed (by {@linkcode SecureChannel.close} or a failure). */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Reads the next transport message and resolves to its plaintext (a new
   * array the caller owns), or `null` once the remote ended the stream
   * cleanly or this side closed the channel. Issue one read at a time.
   *
   * @throws {DecryptError} When a message fails authentication (tampered,
   * replayed, reordered); the channel is closed.
   * @throws {ConnectionClosedError} When the stream ends in the middle of a
   * message or fails; the channel is closed.
   * @throws {NonceExhaustedError} When the remote sent `nonceLimit` messages.
   * @throws {Error} When another read is pending.
   */
  async read(): Promise<Uint8Array | null> {
    if (this.#reading) {
      throw new Error(
        `Cannot read from ${this.stream.remoteAddress}: another read is pending (one read at a time)`,
      );
    }
    this.#reading = true;
    try {
      return await this.#readNext();
    } finally {
      this.#reading = false;
    }
  }

  async #readNext(): Promise<Uint8Array | null> {
    const pending = this.#pending;
    while (true) {
      if (this.#readError !== undefined) throw this.#readError;
      if (this.#closed) {
        if (this.#failure === undefined) return null;
        throw this.#closedError(`read from ${this.stream.remoteAddress}`);
      }
      this.#readAhead();
      if (this.#pendingHead < pending.length) {
        const next = pending[this.#pendingHead];
        pending[this.#pendingHead++] = DONE_READ;
        if (this.#pendingHead === pending.length) {
          pending.length = 0;
          this.#pendingHead = 0;
        }
        try {
          const plaintext = await next;
          // Room for one more message ahead: keep the pipeline full.
          this.#readAhead();
          return plaintext;
        } catch (error) {
          this.#failRead(error);
          throw error;
        }
      }
      if (this.#filling !== undefined) {
        await this.#filling;
        continue;
      }
      if (this.#fillError !== undefined) {
        if (this.#closed) continue;
        this.#failRead(this.#fillError);
        throw this.#fillError;
      }
      // The stream ended (`#readAhead` starts a fill whenever it has not).
      const reader = this.#reader;
      if (reader.buffered === 0) return null;
      const error = new ConnectionClosedError(
        `Cannot read from ${this.stream.remoteAddress}: the stream ended in the middle of a transport message (${reader.buffered} of ${reader.wanted} bytes)`,
      );
      this.#failRead(error);
      throw error;
    }
  }

  /**
   * Starts decrypting the messages already buffered, and reading more from
   * the stream, while fewer than `READ_AHEAD` messages wait for the caller.
   * A finished read calls it again, so reading, decrypting and the caller's
   * work overlap while the caller keeps reading.
   */
  #readAhead(): void {
    const reader = this.#reader;
    const pending = this.#pending;
    while (pending.length - this.#pendingHead < READ_AHEAD) {
      const message = reader.next();
      if (message === null) break;
      const opened = this.#receive.decrypt(message);
      // The view stays untouched until its decryption settles.
      reader.hold(opened);
      opened.catch(noop);
      pending.push(opened);
    }
    if (
      this.#filling !== undefined || this.#ended || this.#fillError !== undefined ||
      this.#closed || pending.length - this.#pendingHead >= READ_AHEAD
    ) return;
    this.#filling = reader.fill().then(
      (more) => {
        this.#filling = undefined;
        if (!more) this.#ended = true;
        else this.#readAhead();
      },
      (error) => {
        this.#filling = undefined;
        this.#fillError = error;
      },
    );
  }

  /**
   * Encrypts `plaintext` as one transport message and writes it. Calls are
   * serialized in call order, and encryption starts at once, so several
   * writes may be in flight. `plaintext` must stay unchanged until the
   * promise settles.
   *
   * @throws {RangeError} When `plaintext` is longer than {@linkcode MAX_PLAINTEXT}
   * (the channel stays open).
   * @throws {NonceExhaustedError} When this side has sent `nonceLimit` messages; the channel closes.
   * @throws {ConnectionClosedError} When the channel or the stream is closed.
   */
  write(plaintext: Uint8Array): Promise<void> {
    return this.writeMany([plaintext]);
  }

  /**
   * Encrypts each plaintext as its own transport message and writes them all
   * with one `stream.write`, saving system calls for bursts of small
   * messages. Serialized with {@linkcode SecureChannel.write} in call order.
   *
   * @throws {RangeError} When a plaintext is longer than {@linkcode MAX_PLAINTEXT}
   * (nothing is written, the channel stays open).
   * @throws {NonceExhaustedError} When this side runs out of nonces; the channel closes.
   * @throws {ConnectionClosedError} When the channel or the stream is closed.
   */
  writeMany(plaintexts: readonly Uint8Array[]): Promise<void> {
    if (this.#closed) {
      return Promise.reject(this.#closedError(`write to ${this.stream.remoteAddress}`));
    }
    for (const plaintext of plaintexts) {
      if (plaintext.length > MAX_PLAINTEXT) {
        return Promise.reject(
          new RangeError(
            `Cannot write to ${this.stream.remoteAddress}: plaintext length ${plaintext.length} exceeds the maximum ${MAX_PLAINTEXT}`,
          ),
        );
      }
    }
    // The cipher state takes nonces in call order and starts every
    // encryption now; the writer sends the ciphertexts in that order, each as
    // soon as it and the ones before it are ready.
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    const outgoing = this.#outgoing;
    for (let i = 0; i < plaintexts.length; i++) {
      const sealed = this.#send.encrypt(plaintexts[i]);
      const entry: Outgoing = {
        sealed,
        ciphertext: undefined,
        resolve: i === plaintexts.length - 1 ? resolve : undefined,
        reject,
      };
      sealed.then((ciphertext) => entry.ciphertext = ciphertext, noop);
      outgoing.push(entry);
    }
    if (plaintexts.length === 0) {
      // Nothing to send: settle after the writes called before.
      outgoing.push({ sealed: undefined, ciphertext: EMPTY, resolve, reject });
    }
    if (!this.#writing) this.#write();
    this.#writeTail = promise.then(noop, noop);
    return promise;
  }

  /** Writes the outgoing messages in order, coalescing those that are ready. */
  async #write(): Promise<void> {
    this.#writing = true;
    const outgoing = this.#outgoing;
    try {
      while (this.#outgoingHead < outgoing.length) {
        const head = outgoing[this.#outgoingHead];
        if (head.ciphertext === undefined) {
          try {
            await head.sealed;
          } catch (error) {
            this.#fail(error);
            head.reject(error);
            this.#outgoingHead++;
            this.#rejectOutgoing();
            return;
          }
        }
        if (this.#closed) {
          this.#rejectOutgoing();
          return;
        }
        // Take the head and every following message already encrypted, up to
        // the kept buffer's size.
        let end = this.#outgoingHead;
        let total = 0;
        while (end < outgoing.length) {
          const ciphertext = outgoing[end].ciphertext;
          if (ciphertext === undefined) break;
          const size = ciphertext === EMPTY ? 0 : LENGTH_PREFIX_LENGTH + ciphertext.length;
          if (total > 0 && total + size > MAX_KEPT_WRITE_BUFFER) break;
          total += size;
          end++;
        }
        if (total > 0) {
          let out = this.#writeBuffer;
          if (out.length < total) {
            out = new Uint8Array(Math.max(total, Math.min(2 * out.length, MAX_KEPT_WRITE_BUFFER)));
            if (out.length <= MAX_KEPT_WRITE_BUFFER) this.#writeBuffer = out;
          }
          let offset = 0;
          for (let i = this.#outgoingHead; i < end; i++) {
            const c = outgoing[i].ciphertext!;
            if (c === EMPTY) continue;
            out[offset] = c.length >>> 8;
            out[offset + 1] = c.length & 0xff;
            out.set(c, offset + LENGTH_PREFIX_LENGTH);
            offset += LENGTH_PREFIX_LENGTH + c.length;
          }
          try {
            await this.stream.write(out.subarray(0, total));
          } catch (error) {
            this.#fail(error);
            for (let i = this.#outgoingHead; i < end; i++) outgoing[i].reject(error);
            this.#outgoingHead = end;
            this.#rejectOutgoing();
            return;
          }
        }
        for (let i = this.#outgoingHead; i < end; i++) {
          const entry = outgoing[i];
          entry.resolve?.();
          outgoing[i] = DONE;
        }
        this.#outgoingHead = end;
        if (end === outgoing.length) {
          outgoing.length = 0;
          this.#outgoingHead = 0;
        } else if (end >= 1024) {
          outgoing.splice(0, end);
          this.#outgoingHead = 0;
        }
      }
    } finally {
      this.#writing = false;
    }
  }

  /** Rejects every message not written yet with the closed error. */
  #rejectOutgoing(): void {
    const outgoing = this.#outgoing;
    const closed = this.#closedError(`write to ${this.stream.remoteAddress}`);
    for (let i = this.#outgoingHead; i < outgoing.length; i++) outgoing[i].reject(closed);
    outgoing.length = 0;
    this.#outgoingHead = 0;
  }

  /**
   * Half-closes: waits for the writes already called, then ends the
   * stream's writing side, so the remote's reads end with `null` after the
   * messages sent so far. This side may still read.
   */
  async closeWrite(): Promise<void> {
    await this.#writeTail;
    if (!this.#closed) await this.stream.closeWrite();
  }

  /** Closes the channel and its stream; pending reads resolve `null`, writes reject. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.stream.close();
  }

  /** Same as {@linkcode SecureChannel.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }

  #failRead(error: unknown): void {
    this.#readError ??= error;
    this.#fail(error);
  }

  #fail(error: unknown): void {
    this.#failure ??= error;
    this.close();
  }

  #closedError(action: string): ConnectionClosedError {
    return new ConnectionClosedError(
      `Cannot ${action}: the secure channel is closed${
        this.#failure === undefined ? "" : ` (${reasonOf(this.#failure)})`
      }`,
      this.#failure === undefined ? undefined : { cause: this.#failure },
    );
  }
}

/** A transport message on its way out. */
interface Outgoing {
  /** Its encryption; `undefined` for the marker of an empty `writeMany`. */
  sealed: Promise<Uint8Array> | undefined;
  /** The ciphertext, once encrypted (`EMPTY` for a marker). */
  ciphertext: Uint8Array | undefined;
  /** Settles the `writeMany` call whose last message this is. */
  resolve: (() => void) | undefined;
  /** Rejects the `writeMany` call it belongs to. */
  reject: (error: unknown) => void;
}

const EMPTY = new Uint8Array(0);
/** What a consumed read-ahead slot is replaced with, so that its plaintext can be collected. */
const DONE_READ: Promise<Uint8Array> = Promise.resolve(EMPTY);
/** What a written entry is replaced with, so that its buffers can be collected. */
const DONE: Outgoing = {
  sealed: undefined,
  ciphertext: EMPTY,
  resolve: undefined,
  reject: noop,
};

/**
 * Buffered reader of length-prefixed messages. {@linkcode MessageReader.next}
 * hands out views into the buffer; a view whose use is registered with
 * {@linkcode MessageReader.hold} stays untouched until that use settles:
 * meanwhile {@linkcode MessageReader.fill} reads only into free space, and
 * moves on to another buffer (the spare, or a new one) when it would have to
 * reuse held bytes. Unheld views may be overwritten by the next fill.
 */
class MessageReader {
  #stream: ByteStream;
  #slab: Slab = { bytes: new Uint8Array(INITIAL_READ_BUFFER), holds: 0 };
  /** A buffer of the current size with no held views, kept for the next move. */
  #spare: Slab | undefined;
  #start = 0;
  #end = 0;
  /** Bytes the next message needs in all, prefix included (2 until a prefix is seen). */
  wanted = LENGTH_PREFIX_LENGTH;
  /** The buffer grows past a whole message only while reads fill it, up to this. */
  maxCapacity: number;

  constructor(stream: ByteStream, maxCapacity: number) {
    this.#stream = stream;
    this.maxCapacity = maxCapacity;
  }

  /** Bytes received and not yet handed out. */
  get buffered(): number {
    return this.#end - this.#start;
  }

  /** The next complete message, as a view into the buffer, or `null` if it has not all arrived. */
  next(): Uint8Array | null {
    const available = this.#end - this.#start;
    if (available < LENGTH_PREFIX_LENGTH) {
      this.wanted = LENGTH_PREFIX_LENGTH;
      return null;
    }
    const buffer = this.#slab.bytes;
    const start = this.#start;
    const length = (buffer[start] << 8) | buffer[start + 1];
    this.wanted = LENGTH_PREFIX_LENGTH + length;
    if (available < this.wanted) return null;
    this.#start = start + this.wanted;
    this.wanted = LENGTH_PREFIX_LENGTH;
    return buffer.subarray(start + LENGTH_PREFIX_LENGTH, this.#start);
  }

  /** Keeps the views handed out so far untouched until `use` settles. */
  hold(use: Promise<unknown>): void {
    const slab = this.#slab;
    slab.holds++;
    const release = () => {
      if (--slab.holds === 0 && slab !== this.#slab) this.#retire(slab);
    };
    use.then(release, release);
  }

  /** Reads more bytes from the stream; resolves `false` at the end of the stream. */
  async fill(): Promise<boolean> {
    let slab = this.#slab;
    const held = slab.holds > 0;
    if (this.#start === this.#end && !held) {
      // Drained, no view in use: start over, and let an idle channel keep
      // one buffer only.
      this.#start = this.#end = 0;
      this.#spare = undefined;
    } else if (
      slab.bytes.length - this.#start < this.wanted ||
      slab.bytes.length - this.#end < slab.bytes.length / 2
    ) {
      // The message would run past the end, or little room is left: move
      // the partial message (less than 65537 bytes) to the front, into
      // another buffer if views of this one are held or it is too small.
      const size = Math.min(
        Math.max(this.wanted, slab.bytes.length * (slab.bytes.length < this.wanted ? 2 : 1)),
        this.#cap(),
      );
      if (held || slab.bytes.length < size) {
        slab = this.#takeSlab(size);
        slab.bytes.set(this.#slab.bytes.subarray(this.#start, this.#end));
        this.#switchTo(slab);
      } else {
        slab.bytes.copyWithin(0, this.#start, this.#end);
      }
      this.#end -= this.#start;
      this.#start = 0;
    }
    const buffer = slab.bytes;
    const space = buffer.length - this.#end;
    const n = await this.#stream.read(buffer.subarray(this.#end));
    if (n === null) return false;
    this.#end += n;
    if (n === space && buffer.length < this.#cap()) {
      // Reads fill the buffer: grow it, so that bulk data takes fewer reads.
      const grown: Slab = {
        bytes: new Uint8Array(Math.min(buffer.length * 2, this.#cap())),
        holds: 0,
      };
      grown.bytes.set(buffer.subarray(this.#start, this.#end));
      this.#end -= this.#start;
      this.#start = 0;
      this.#spare = undefined;
      this.#switchTo(grown);
    }
    return true;
  }

  #takeSlab(size: number): Slab {
    const spare = this.#spare;
    this.#spare = undefined;
    if (spare !== undefined && spare.bytes.length === size) return spare;
    return { bytes: new Uint8Array(size), holds: 0 };
  }

  #switchTo(slab: Slab): void {
    const old = this.#slab;
    this.#slab = slab;
    if (old.holds === 0) this.#retire(old);
  }

  /** Keeps a buffer whose views are all released as the spare, if it has the current size. */
  #retire(slab: Slab): void {
    if (this.#spare === undefined && slab.bytes.length === this.#slab.bytes.length) {
      this.#spare = slab;
    }
  }

  #cap(): number {
    return Math.max(this.maxCapacity, MAX_WIRE_MESSAGE);
  }
}

/** A read buffer and the number of unsettled uses of views into it. */
interface Slab {
  bytes: Uint8Array;
  holds: number;
}

function reasonOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function noop(): void {}
