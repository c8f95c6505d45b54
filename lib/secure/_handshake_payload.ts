/**
 * The handshake payload of messages 2 and 3 (`carrier.v1.HandshakePayload`):
 * the identity binding (an Ed25519 signature over the Noise static key), the
 * settings a node announces, and the checks its receiver makes.
 *
 * Private to `lib/secure/`; `channel.ts` re-exports
 * {@linkcode IDENTITY_SIGNATURE_CONTEXT} and {@linkcode HandshakeInfo}.
 *
 * @module
 */

import { fromBinary } from "@bufbuild/protobuf";
import {
  type HandshakePayload,
  HandshakePayloadSchema,
} from "../../gen/carrier/v1/handshake_pb.ts";
import { bytesEqual } from "../_bytes.ts";
import { type HandshakeError, IdentityMismatchError } from "./errors.ts";
import { ADDRESS_LENGTH, formatAddress } from "../identity/address.ts";
import { type Identity, sign, verify } from "../identity/keys.ts";
import { assertPuzzle } from "../identity/puzzle.ts";
import { errorMessage } from "../_error_message.ts";
import { isAnnounceable } from "../transport/ip.ts";
import type { Handshake } from "./handshake.ts";
import type { X25519KeyPair } from "./x25519.ts";

/**
 * The context string of the identity signature: a node signs the ASCII bytes
 * of `"carrier/v1 noise-static-key:"` followed by its 32-byte Noise static
 * public key with its Ed25519 identity key.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateIdentitySync, sign, verify } from "@carrier/p2p";
 * import { generateX25519KeyPair, IDENTITY_SIGNATURE_CONTEXT } from "@carrier/p2p/protocol";
 * const identity = generateIdentitySync({ difficulty: 0 });
 * const context = new TextEncoder().encode(IDENTITY_SIGNATURE_CONTEXT);
 * // What a node signs in its handshake: the context, then its Noise static key.
 * const signed = new Uint8Array([...context, ...generateX25519KeyPair().publicKey]);
 * assert.equal(signed.length, 60);
 * assert(verify(identity.publicKey, signed, sign(identity, signed)));
 * ```
 */
export const IDENTITY_SIGNATURE_CONTEXT = "carrier/v1 noise-static-key:";

const CONTEXT_BYTES = new TextEncoder().encode(IDENTITY_SIGNATURE_CONTEXT);

/**
 * What one side of a secure channel learned about the other in the handshake.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createNode, type HandshakeInfo } from "@carrier/p2p";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
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
  /**
   * Addresses the remote says it listens on (wildcards and unresolved ports
   * dropped, at most {@linkcode MAX_REMOTE_LISTEN_ADDRS}); an IDENTIFY from
   * the remote replaces them later, as it does `acceptsInbound`.
   */
  listenAddrs: string[];
  /** The transport address the remote sees this side at. */
  observedAddr: string;
  /**
   * The dial-back nonce of a probe connection (16 bytes), empty for every
   * other: a listener closes a probe after its handshake.
   */
  dialBackNonce: Uint8Array;
  /**
   * Whether the remote opened a circuit connection (to this node as a relay):
   * a listener hands it to its relay service, never making it a peer.
   */
  relayCircuit: boolean;
  /**
   * The relays the remote says it holds reservations at (at most
   * {@linkcode MAX_REMOTE_RELAYS}, each with a 32-byte key and a dialable
   * address); an IDENTIFY replaces them later.
   */
  relays: RelayHint[];
  /** Whether the remote relays for others (takes RELAY reservations). */
  servesRelay: boolean;
  /** The remote's software name and version (diagnostics only). */
  agent: string;
}

/**
 * A relay a node holds a reservation at, as its handshake or IDENTIFY names it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateIdentity, type RelayHint } from "@carrier/p2p";
 * const relay = await generateIdentity({ difficulty: 0 });
 * const hint: RelayHint = { identityKey: relay.publicKey, listenAddrs: ["203.0.113.7:4000"] };
 * assert.equal(hint.identityKey.length, 32);
 * ```
 */
export interface RelayHint {
  /** The relay's 32-byte Ed25519 public key. */
  identityKey: Uint8Array;
  /** Where the relay accepts connections (`HOST:PORT`), best first. */
  listenAddrs: string[];
}

/** How many of a remote's relays a receiver keeps. */
export const MAX_REMOTE_RELAYS = 4;

/**
 * The relays a receiver keeps of what a remote announced: a 32-byte key and
 * at least one dialable address each, the first {@linkcode MAX_REMOTE_RELAYS}.
 */
export function keptRelays(
  relays: readonly { address: Uint8Array; listenAddrs: readonly string[] }[],
): RelayHint[] {
  const kept: RelayHint[] = [];
  for (const relay of relays) {
    if (kept.length === MAX_REMOTE_RELAYS) break;
    const listenAddrs = keptListenAddrs(relay.listenAddrs);
    if (relay.address.length !== 32 || listenAddrs.length === 0) continue;
    kept.push({ identityKey: relay.address, listenAddrs });
  }
  return kept;
}

/** The fields of a `carrier.v1.HandshakePayload`. */
export type PayloadFields = Omit<HandshakePayload, "$typeName" | "$unknown">;

/** How many of a remote's listen addresses a receiver keeps. */
export const MAX_REMOTE_LISTEN_ADDRS = 8;

/**
 * The listen addresses a receiver keeps of what a remote announced: those it
 * may dial as written (no wildcard, no port 0), the first
 * {@linkcode MAX_REMOTE_LISTEN_ADDRS}.
 */
export function keptListenAddrs(addresses: readonly string[]): string[] {
  return addresses.filter(isAnnounceable).slice(0, MAX_REMOTE_LISTEN_ADDRS);
}

/** What the receiver of a payload checks it against. */
export interface PayloadChecks {
  /** The receiver's identity: a remote with the same key is the receiver itself. */
  readonly identity: Identity;
  /** The identity the remote must prove, if any. */
  readonly expectedRemote: Uint8Array | undefined;
  /** The static puzzle difficulty the remote's key must pass; 0 for none. */
  readonly puzzleDifficulty: number;
  /** What the receiver sends; its `observedAddr` names the remote in errors. */
  readonly payload: Pick<PayloadFields, "observedAddr">;
}

/** What a payload announces, as {@linkcode HandshakeInfo} (arrays copied). */
export function handshakeInfo(
  payload: PayloadFields,
  address: string = formatAddress(payload.identityKey),
): HandshakeInfo {
  return {
    identityKey: payload.identityKey,
    address,
    acceptsInbound: payload.acceptsInbound,
    compressions: [...payload.compressions],
    preferredCompression: payload.preferredCompression,
    maxFrameSize: payload.maxFrameSize,
    listenAddrs: keptListenAddrs(payload.listenAddrs),
    observedAddr: payload.observedAddr,
    dialBackNonce: payload.dialBackNonce,
    relayCircuit: payload.relayCircuit,
    relays: keptRelays(payload.relays),
    servesRelay: payload.servesRelay,
    agent: payload.agent,
  };
}

/** Signatures of long-lived static keys, so that a per-node key is signed once per identity. */
const signatureCache = new WeakMap<
  X25519KeyPair,
  { identity: Identity; signature: Uint8Array }
>();

/**
 * The identity signature of `staticKeyPair`'s public key; `longLived` keys
 * (given by the caller, reused across channels) are signed once per identity.
 */
export function signStaticKey(
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

/**
 * Parses and checks the payload of handshake message `index` (2 or 3), in the
 * protocol's order, and returns what the remote proved and announced.
 *
 * @throws {HandshakeError} Made by `fail`: the payload does not parse, the key
 * is not 32 bytes, the signature does not verify, the remote is this node, or
 * its key is below the puzzle difficulty.
 * @throws {IdentityMismatchError} When the remote is not `expectedRemote`.
 */
export function checkHandshakePayload(
  hs: Handshake,
  bytes: Uint8Array,
  index: number,
  settings: PayloadChecks,
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
      `${bytes.length} bytes do not parse as carrier.v1.HandshakePayload: ${errorMessage(error)}`,
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
      throw fail(step, errorMessage(error), error);
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
  return handshakeInfo(payload, address);
}
