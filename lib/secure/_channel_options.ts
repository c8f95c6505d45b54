/**
 * The options of {@linkcode secureOutbound} and {@linkcode secureInbound},
 * and their validation into what the handshake needs: the payload this node
 * announces, the checks it makes of the remote, its limits.
 *
 * Private to `lib/secure/`; `channel.ts` re-exports the public names.
 *
 * @module
 */

import type { Compression } from "../../gen/carrier/v1/options_pb.ts";
import { type Clock, systemClock } from "../clock.ts";
import { ADDRESS_LENGTH, assertAddressBytes } from "../identity/address.ts";
import type { Identity } from "../identity/keys.ts";
import { assertPuzzleDifficulty } from "../identity/puzzle.ts";
import type { ByteStream } from "../transport/types.ts";
import { SUPPORTED_COMPRESSIONS } from "../wire/compression.ts";
import { type PayloadFields, type RelayHint, signStaticKey } from "./_handshake_payload.ts";
import { create } from "@bufbuild/protobuf";
import { RelayInfoSchema } from "../../gen/carrier/v1/relay_pb.ts";
import { MAX_NONCE } from "./cipher_state.ts";
import { generateX25519KeyPair, type X25519KeyPair } from "./x25519.ts";
import { ArgumentError } from "../errors.ts";

/**
 * Default of {@linkcode SecureChannelOptions.handshakeTimeout}, in milliseconds.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateIdentitySync, TimeoutError } from "@carrier/p2p";
 * import { DEFAULT_HANDSHAKE_TIMEOUT, secureOutbound } from "@carrier/p2p/protocol";
 * import { ManualClock, MemoryNetwork } from "@carrier/p2p/testing";
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

const UINT32_MAX = 0xffff_ffff;

/**
 * Options of {@linkcode secureOutbound} and {@linkcode secureInbound}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateIdentitySync } from "@carrier/p2p";
 * import { type SecureChannelOptions, secureInbound, secureOutbound } from "@carrier/p2p/protocol";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
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
   * Sent to the remote (by an initiator only): the nonce of a dial-back
   * probe, 16 bytes. A listener that receives one closes the connection
   * after the handshake instead of making it a peer connection.
   *
   * @default {undefined} (not a probe)
   */
  dialBackNonce?: Uint8Array;
  /**
   * Sent to the remote (by an initiator only): this connection is a circuit
   * connection to a relay (see `relay.proto`), not a peer connection.
   *
   * @default {false}
   */
  relayCircuit?: boolean;
  /** The relays this node holds reservations at, announced to the remote. @default {[]} */
  relays?: readonly RelayHint[];
  /** Announced to the remote: this node relays for others. @default {false} */
  servesRelay?: boolean;
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

/** Everything the handshake needs, validated. */
export interface ChannelSettings {
  identity: Identity;
  expectedRemote: Uint8Array | undefined;
  payload: PayloadFields;
  puzzleDifficulty: number;
  handshakeTimeout: number;
  nonceLimit: bigint;
  staticKeyPair: X25519KeyPair;
  signal: AbortSignal | undefined;
  clock: Clock;
  onHandshakeMessage: (() => void) | undefined;
}

/**
 * Validates `options` for a handshake over `stream`, and signs the Noise
 * static key (a fresh one unless `noiseStaticKeyPair` is given).
 *
 * @throws {ArgumentError | AddressError} When an option is invalid.
 */
export function resolveChannelOptions(
  stream: ByteStream,
  options: SecureChannelOptions,
): ChannelSettings {
  const what = "Cannot start the secure channel";
  const identity = options?.identity;
  if (
    !(identity?.publicKey instanceof Uint8Array) ||
    identity.publicKey.length !== ADDRESS_LENGTH
  ) {
    throw new ArgumentError(
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
    throw new ArgumentError(
      `${what}: handshakeTimeout must be a positive number of milliseconds, got ${handshakeTimeout}`,
    );
  }
  const nonceLimit = options.nonceLimit ?? MAX_NONCE;
  if (
    typeof nonceLimit !== "bigint" || nonceLimit < 0n || nonceLimit > MAX_NONCE
  ) {
    throw new ArgumentError(
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
    throw new ArgumentError(
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
      // A circuit's far end is behind a relay: there is no address to report.
      observedAddr: stream.relay === undefined ? stream.remoteAddress : "",
      agent: options.agent ?? DEFAULT_AGENT,
      dialBackNonce: options.dialBackNonce ?? new Uint8Array(0),
      relayCircuit: options.relayCircuit ?? false,
      servesRelay: options.servesRelay ?? false,
      relays: (options.relays ?? []).map((r) =>
        create(RelayInfoSchema, { address: r.identityKey, listenAddrs: r.listenAddrs })
      ),
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
    throw new ArgumentError(
      `Cannot start the secure channel: ${name} must be an integer from 0 to ${UINT32_MAX}, got ${value}`,
    );
  }
}
