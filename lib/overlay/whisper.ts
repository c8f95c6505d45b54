/**
 * WHISPER envelopes: sealing a message for one node and opening it there.
 * Routing (hop by hop towards the recipient's NodeId, `ttl`, the ACK) is not
 * here; this module only turns content into a `Whisper` payload and back.
 *
 * Two modes, as `proto/carrier/v1/messaging.proto` defines them:
 *
 * - **Encrypted** (the default). `envelope` is one Noise message of the
 *   one-way pattern `X` (`Noise_X_25519_AESGCM_SHA256`: `<- s`, then
 *   `-> e, es, s, ss`), prologue {@linkcode WHISPER_PROLOGUE}, whose payload
 *   is a serialized `SealedWhisper`: the serialized `WhisperEnvelope` and the
 *   sender's Ed25519 signature of it (as in plaintext mode). The initiator's static key is the
 *   sender's X25519 key derived from its Ed25519 secret key, the responder's
 *   the recipient's X25519 key derived from its Ed25519 public key (the
 *   standard Ed25519 → X25519 birational map, see
 *   {@linkcode x25519PublicKeyFromEd25519}). Relays can neither read the
 *   envelope nor change a bit of it (AES-GCM), and they do not learn the
 *   sender (Noise encrypts its static key). The recipient checks that the
 *   static key Noise authenticated is the conversion of `envelope.sender`,
 *   that the signature verifies against `envelope.sender` itself (the
 *   conversion forgets the sign of a point: without the signature a sender
 *   could also claim the negation of its address), and that
 *   `envelope.recipient` is itself, so a sealed whisper cannot be replayed to
 *   another node. The outer `signature` is empty.
 * - **Plaintext**. `envelope` is the serialized `WhisperEnvelope` and
 *   `signature` the sender's Ed25519 signature over
 *   {@linkcode WHISPER_SIGNATURE_CONTEXT} followed by `envelope`. Anyone
 *   can read it; nobody can change it undetected.
 *
 * In both modes the outer `recipient` (read by relays) must equal
 * `envelope.recipient`, and the ACK carries {@linkcode whisperHash}, the
 * SHA-256 of `envelope` as received.
 *
 * Not covered here: a whisper can be replayed to its own recipient; the
 * router de-duplicates on (sender, nonce).
 *
 * This module holds the format (the `Whisper` type, the constants,
 * {@linkcode whisperHash}); {@linkcode sealWhisper} is in `whisper_seal.ts`,
 * {@linkcode openWhisper} in `whisper_open.ts` and the key conversions in
 * `ed25519_x25519.ts`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateIdentitySync } from "@carrier/p2p";
 * import { openWhisper, sealWhisper } from "@carrier/p2p/protocol";
 *
 * const alice = generateIdentitySync({ difficulty: 0 });
 * const bob = generateIdentitySync({ difficulty: 0 });
 * const whisper = await sealWhisper(alice, bob.publicKey, new TextEncoder().encode("hi"));
 * const content = await openWhisper(bob, whisper);
 * assert.equal(content.sender, alice.address);
 * assert.equal(content.encrypted, true);
 * ```
 *
 * @module
 */

import { sha256 } from "@noble/hashes/sha2.js";
import type { MessageOf } from "../_protobuf.ts";
import type { WhisperSchema } from "../../gen/carrier/v1/messaging_pb.ts";
import { concatBytes } from "../_bytes.ts";
import type { Identity } from "../identity/keys.ts";
import {
  createHandshake,
  DH_LENGTH,
  type Handshake,
  MAX_MESSAGE_LENGTH,
  TAG_LENGTH,
} from "../secure/noise.ts";
import { ownX25519KeyPair } from "./ed25519_x25519.ts";

/**
 * The payload of a WHISPER frame (`carrier.v1.Whisper`), as protobuf-es
 * generates it: `recipient`, `ttl`, `encrypted`, `envelope`, `signature`.
 *
 * @internal
 */
export type Whisper = MessageOf<typeof WhisperSchema>;

/**
 * Context string the sender's Ed25519 signature of a plaintext whisper starts with.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateIdentitySync, verify } from "@carrier/p2p";
 * import { sealWhisper, WHISPER_SIGNATURE_CONTEXT } from "@carrier/p2p/protocol";
 * const [alice, bob] = Array.from(Array(2), () => generateIdentitySync({ difficulty: 0 }));
 * const whisper = await sealWhisper(alice, bob.publicKey, new Uint8Array(4), { encrypted: false });
 * const context = new TextEncoder().encode(WHISPER_SIGNATURE_CONTEXT);
 * const signed = new Uint8Array([...context, ...whisper.envelope]);
 * assert(verify(alice.publicKey, signed, whisper.signature)); // what a relay can check
 * ```
 */
export const WHISPER_SIGNATURE_CONTEXT = "carrier/v1 whisper:";

/**
 * Noise prologue of an encrypted whisper.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { PROLOGUE, WHISPER_PROLOGUE } from "@carrier/p2p/protocol";
 * // Bound into every encrypted whisper's Noise message, and distinct from the channel's prologue.
 * assert.equal(new TextEncoder().encode(WHISPER_PROLOGUE).length, 18);
 * assert(WHISPER_PROLOGUE.startsWith(`${PROLOGUE} `)); // same protocol version
 * ```
 */
export const WHISPER_PROLOGUE = "carrier/v1 whisper";

/** Noise handshake pattern of an encrypted whisper (one-way, `<- s`, `-> e, es, s, ss`). */
export const WHISPER_NOISE_PATTERN = "X";

/**
 * Hops a whisper may take unless the sender says otherwise.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateIdentitySync } from "@carrier/p2p";
 * import { DEFAULT_WHISPER_TTL, sealWhisper } from "@carrier/p2p/protocol";
 * const [alice, bob] = Array.from(Array(2), () => generateIdentitySync({ difficulty: 0 }));
 * const body = new Uint8Array(1);
 * assert.equal((await sealWhisper(alice, bob.publicKey, body)).ttl, DEFAULT_WHISPER_TTL);
 * assert.equal((await sealWhisper(alice, bob.publicKey, body, { ttl: 2 })).ttl, 2);
 * ```
 */
export const DEFAULT_WHISPER_TTL = 16;

/**
 * Default largest body {@linkcode openWhisper} accepts, in bytes: 1 MiB, the
 * default frame limit (an encrypted body is further bounded by one Noise
 * message, {@linkcode MAX_ENCRYPTED_ENVELOPE_PAYLOAD}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateIdentitySync, WhisperError } from "@carrier/p2p";
 * import { DEFAULT_MAX_WHISPER_BODY_SIZE, openWhisper, sealWhisper } from "@carrier/p2p/protocol";
 * const [alice, bob] = Array.from(Array(2), () => generateIdentitySync({ difficulty: 0 }));
 * const body = new Uint8Array(DEFAULT_MAX_WHISPER_BODY_SIZE + 1);
 * const whisper = await sealWhisper(alice, bob.publicKey, body, { encrypted: false });
 * await assert.rejects(openWhisper(bob, whisper), WhisperError); // too large
 * ```
 */
export const DEFAULT_MAX_WHISPER_BODY_SIZE = 1024 * 1024;

/**
 * What the one Noise `X` message adds to its payload: the ephemeral key (32),
 * the encrypted static key (32 + 16) and the payload's tag (16).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateIdentitySync } from "@carrier/p2p";
 * import { sealWhisper, WHISPER_NOISE_OVERHEAD } from "@carrier/p2p/protocol";
 * const [alice, bob] = Array.from(Array(2), () => generateIdentitySync({ difficulty: 0 }));
 * const body = new Uint8Array(8);
 * const same = { nonce: 1n, timestampMs: 1 };
 * const signed = await sealWhisper(alice, bob.publicKey, body, { ...same, encrypted: false });
 * const sealed = await sealWhisper(alice, bob.publicKey, body, same);
 * // Sealed: the envelope and its signature (2 + 2 + 64 bytes of framing) and the Noise overhead.
 * assert.equal(sealed.envelope.length, signed.envelope.length + 68 + WHISPER_NOISE_OVERHEAD);
 * ```
 */
export const WHISPER_NOISE_OVERHEAD: number = DH_LENGTH + (DH_LENGTH + TAG_LENGTH) + TAG_LENGTH;

/**
 * What the `SealedWhisper` wrapper adds to the envelope: two length-delimited
 * fields (at most 4 bytes of tags and lengths for the envelope, 2 for the
 * signature) and the 64-byte signature.
 */
const SEALED_OVERHEAD = 4 + 2 + 64;

/**
 * Largest serialized `WhisperEnvelope` an encrypted whisper can carry: 65535 − 96 − 70 = 65369 bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateIdentitySync, SizeLimitError } from "@carrier/p2p";
 * import { MAX_ENCRYPTED_ENVELOPE_PAYLOAD, sealWhisper } from "@carrier/p2p/protocol";
 * const [alice, bob] = Array.from(Array(2), () => generateIdentitySync({ difficulty: 0 }));
 * // The envelope is the body plus sender, recipient, nonce…: a body this size no longer fits.
 * const body = new Uint8Array(MAX_ENCRYPTED_ENVELOPE_PAYLOAD);
 * await assert.rejects(sealWhisper(alice, bob.publicKey, body), SizeLimitError);
 * await sealWhisper(alice, bob.publicKey, body, { encrypted: false }); // bounded by the frame
 * ```
 */
export const MAX_ENCRYPTED_ENVELOPE_PAYLOAD: number = MAX_MESSAGE_LENGTH - WHISPER_NOISE_OVERHEAD -
  SEALED_OVERHEAD;

const encoder = new TextEncoder();
const SIGNATURE_CONTEXT_BYTES = encoder.encode(WHISPER_SIGNATURE_CONTEXT);
const PROLOGUE_BYTES = encoder.encode(WHISPER_PROLOGUE);

/**
 * SHA-256 of a whisper's `envelope` bytes: what the recipient's ACK carries
 * (`WhisperAck.hash`), and an id for the message that relays can compute too.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateIdentitySync } from "@carrier/p2p";
 * import { sealWhisper, whisperHash } from "@carrier/p2p/protocol";
 *
 * const alice = generateIdentitySync({ difficulty: 0 });
 * const whisper = await sealWhisper(alice, alice.publicKey, new Uint8Array(8));
 * assert.equal(whisperHash(whisper).length, 32);
 * ```
 */
export function whisperHash(whisper: Whisper): Uint8Array {
  return sha256(whisper.envelope);
}

/**
 * The bytes the sender's Ed25519 signature covers, in both modes:
 * {@linkcode WHISPER_SIGNATURE_CONTEXT} followed by the serialized envelope.
 *
 * @internal
 */
export function whisperSigningBytes(envelope: Uint8Array): Uint8Array {
  return concatBytes([SIGNATURE_CONTEXT_BYTES, envelope]);
}

/**
 * A Noise `X` handshake for an encrypted whisper, with `identity`'s X25519
 * key as the static key: the sender's side when `remoteStaticPublicKey`
 * (the recipient's X25519 key) is given, the recipient's without it.
 *
 * @internal
 */
export function createWhisperHandshake(
  identity: Identity,
  remoteStaticPublicKey?: Uint8Array,
): Handshake {
  return createHandshake({
    pattern: WHISPER_NOISE_PATTERN,
    initiator: remoteStaticPublicKey !== undefined,
    prologue: PROLOGUE_BYTES,
    staticKeyPair: ownX25519KeyPair(identity),
    remoteStaticPublicKey,
  });
}
