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
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateIdentitySync, openWhisper, sealWhisper } from "@carrier/p2p";
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

import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { ed25519 } from "@noble/curves/ed25519.js";
import { sha256 } from "@noble/hashes/sha2.js";
import type { MessageOf } from "../_protobuf.ts";
import {
  type SealedWhisper,
  SealedWhisperSchema,
  type WhisperEnvelope,
  WhisperEnvelopeSchema,
  WhisperSchema,
} from "../../gen/carrier/v1/messaging_pb.ts";
import { bytesEqual, concatBytes, toHex } from "../_bytes.ts";
import { AddressError, SizeLimitError, WhisperError } from "../errors.ts";
import { ADDRESS_LENGTH, assertAddressBytes, formatAddress } from "../identity/address.ts";
import { type Identity, SECRET_KEY_LENGTH, sign, verify } from "../identity/keys.ts";
import {
  createHandshake,
  DH_LENGTH,
  MAX_MESSAGE_LENGTH,
  TAG_LENGTH,
  type X25519KeyPair,
  x25519KeyPairFromPrivateKey,
} from "../secure/noise.ts";

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
 * import {
 *   generateIdentitySync,
 *   sealWhisper,
 *   verify,
 *   WHISPER_SIGNATURE_CONTEXT,
 * } from "@carrier/p2p";
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
 * import { PROLOGUE, WHISPER_PROLOGUE } from "@carrier/p2p";
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
 * import { DEFAULT_WHISPER_TTL, generateIdentitySync, sealWhisper } from "@carrier/p2p";
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
 * import {
 *   DEFAULT_MAX_WHISPER_BODY_SIZE,
 *   generateIdentitySync,
 *   openWhisper,
 *   sealWhisper,
 *   WhisperError,
 * } from "@carrier/p2p";
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
 * import { generateIdentitySync, sealWhisper, WHISPER_NOISE_OVERHEAD } from "@carrier/p2p";
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

const UINT32_MAX = 0xffff_ffff;
const UINT64_MAX = 0xffff_ffff_ffff_ffffn;
const encoder = new TextEncoder();
const SIGNATURE_CONTEXT_BYTES = encoder.encode(WHISPER_SIGNATURE_CONTEXT);
const PROLOGUE_BYTES = encoder.encode(WHISPER_PROLOGUE);

/**
 * Options of {@linkcode sealWhisper}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import {
 *   generateIdentitySync,
 *   openWhisper,
 *   sealWhisper,
 *   type SealWhisperOptions,
 * } from "@carrier/p2p";
 * const [alice, bob] = Array.from(Array(2), () => generateIdentitySync({ difficulty: 0 }));
 * const options: SealWhisperOptions = { topic: "chat", ttl: 3, nonce: 42n };
 * const whisper = await sealWhisper(alice, bob.publicKey, new TextEncoder().encode("hi"), options);
 * const content = await openWhisper(bob, whisper);
 * assert.deepEqual([content.topic, content.nonce, whisper.ttl], ["chat", 42n, 3]);
 * ```
 */
export interface SealWhisperOptions {
  /**
   * Whether to encrypt end to end (Noise `X`); `false` sends a signed
   * plaintext envelope that every relay can read.
   *
   * @default {true}
   */
  encrypted?: boolean;
  /**
   * Application topic.
   *
   * @default {""}
   */
  topic?: string;
  /**
   * Hops the whisper may take (0 to 2^32 − 1).
   *
   * @default {DEFAULT_WHISPER_TTL}
   */
  ttl?: number;
  /**
   * The envelope's nonce, unique per sender: with the sender it identifies
   * the message. A uint64.
   *
   * @default {a random uint64 from the system's secure random source}
   */
  nonce?: bigint;
  /**
   * The envelope's timestamp, in milliseconds since the Unix epoch. (Not a
   * `Clock`: carrier's clocks count from an arbitrary origin.)
   *
   * @default {Date.now()}
   */
  timestampMs?: number;
  /**
   * Aborts the call; it then rejects with the signal's reason.
   *
   * @default {undefined}
   */
  signal?: AbortSignal;
}

/**
 * Options of {@linkcode openWhisper}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import {
 *   generateIdentitySync,
 *   openWhisper,
 *   type OpenWhisperOptions,
 *   sealWhisper,
 *   WhisperError,
 * } from "@carrier/p2p";
 * const [alice, bob] = Array.from(Array(2), () => generateIdentitySync({ difficulty: 0 }));
 * const whisper = await sealWhisper(alice, bob.publicKey, new Uint8Array(5));
 * const options: OpenWhisperOptions = { maxBodySize: 4 };
 * await assert.rejects(openWhisper(bob, whisper, options), WhisperError);
 * ```
 */
export interface OpenWhisperOptions {
  /**
   * Largest body accepted, in bytes; a larger one is a {@linkcode WhisperError}.
   *
   * @default {DEFAULT_MAX_WHISPER_BODY_SIZE}
   */
  maxBodySize?: number;
  /**
   * Aborts the call; it then rejects with the signal's reason.
   *
   * @default {undefined}
   */
  signal?: AbortSignal;
}

/**
 * An opened whisper: the authenticated content of its envelope.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import {
 *   generateIdentitySync,
 *   openWhisper,
 *   sealWhisper,
 *   type WhisperContent,
 * } from "@carrier/p2p";
 * const [alice, bob] = Array.from(Array(2), () => generateIdentitySync({ difficulty: 0 }));
 * const whisper = await sealWhisper(alice, bob.publicKey, new TextEncoder().encode("hi"));
 * const content: WhisperContent = await openWhisper(bob, whisper);
 * assert.equal(content.sender, alice.address);
 * assert.deepEqual(content.recipient, bob.publicKey);
 * assert(content.encrypted && new TextDecoder().decode(content.body) === "hi");
 * ```
 */
export interface WhisperContent {
  /** The sender's address, base58. */
  readonly sender: string;
  /** The sender's 32-byte Ed25519 public key (raw address). */
  readonly senderKey: Uint8Array;
  /** The recipient's 32-byte address (this node). */
  readonly recipient: Uint8Array;
  /** The sender's nonce; (sender, nonce) identifies the message. */
  readonly nonce: bigint;
  /** The sender's clock when it sent, in ms since the Unix epoch (precise up to 2^53). */
  readonly timestampMs: number;
  /** Application topic (may be empty). */
  readonly topic: string;
  /** Application data. */
  readonly body: Uint8Array;
  /** Whether it travelled end-to-end encrypted. */
  readonly encrypted: boolean;
  /** SHA-256 of `Whisper.envelope` as received: what the ACK carries. */
  readonly hash: Uint8Array;
}

/**
 * Seals `body` for `recipient` as the `Whisper` payload of a WHISPER frame:
 * encrypted to the recipient and authenticated as `identity` (the default),
 * or signed plaintext with `options.encrypted: false`. It returns the
 * message, not its bytes, so the router can still lower `ttl`; the opcode
 * registry encodes it like any payload.
 *
 * @param identity The sender.
 * @param recipient The recipient's 32-byte address.
 * @param body Application data.
 * @returns The `Whisper` message.
 * @throws {AddressError} If `recipient` is not 32 bytes or not an Ed25519
 * public key (encrypted mode needs its X25519 conversion).
 * @throws {SizeLimitError} If the envelope is too large for one Noise message
 * (encrypted), or `ttl`, `nonce` or `timestampMs` is out of range.
 * @throws {TypeError} If `body` is not a Uint8Array or `topic` not a string.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateIdentitySync, openWhisper, sealWhisper } from "@carrier/p2p";
 *
 * const alice = generateIdentitySync({ difficulty: 0 });
 * const bob = generateIdentitySync({ difficulty: 0 });
 * const body = new TextEncoder().encode("for your eyes only");
 * const whisper = await sealWhisper(alice, bob.publicKey, body, { topic: "chat" });
 * assert.equal(whisper.encrypted, true);
 * assert.equal(whisper.ttl, 16);
 *
 * const signed = await sealWhisper(alice, bob.publicKey, body, { encrypted: false });
 * assert.equal(signed.signature.length, 64);
 * const content = await openWhisper(bob, signed);
 * assert.equal(content.encrypted, false);
 * assert.equal(content.topic, "");
 * ```
 */
export async function sealWhisper(
  identity: Identity,
  recipient: Uint8Array,
  body: Uint8Array,
  options: SealWhisperOptions = {},
): Promise<Whisper> {
  options.signal?.throwIfAborted();
  assertAddressBytes(recipient);
  if (!(body instanceof Uint8Array)) {
    throw new TypeError(`Cannot seal whisper: body must be a Uint8Array, got ${typeof body}`);
  }
  const encrypted = options.encrypted ?? true;
  const topic = options.topic ?? "";
  if (typeof topic !== "string") {
    throw new TypeError(`Cannot seal whisper: topic must be a string, got ${typeof topic}`);
  }
  const ttl = options.ttl ?? DEFAULT_WHISPER_TTL;
  if (!Number.isInteger(ttl) || ttl < 0 || ttl > UINT32_MAX) {
    throw new RangeError(`Cannot seal whisper: ttl ${ttl} is not an integer in [0, 2^32 - 1]`);
  }
  const nonce = options.nonce ?? randomUint64();
  if (typeof nonce !== "bigint" || nonce < 0n || nonce > UINT64_MAX) {
    throw new RangeError(`Cannot seal whisper: nonce ${nonce} is not a bigint in [0, 2^64 - 1]`);
  }
  const timestampMs = options.timestampMs ?? Date.now();
  if (!Number.isSafeInteger(timestampMs) || timestampMs < 0) {
    throw new RangeError(
      `Cannot seal whisper: timestampMs ${timestampMs} is not a non-negative safe integer`,
    );
  }

  const envelope = toBinary(
    WhisperEnvelopeSchema,
    create(WhisperEnvelopeSchema, {
      sender: identity.publicKey,
      recipient,
      nonce,
      timestampMs: BigInt(timestampMs),
      topic,
      body,
    }),
  );

  const signature = sign(identity, concatBytes([SIGNATURE_CONTEXT_BYTES, envelope]));
  if (!encrypted) {
    return create(WhisperSchema, {
      recipient: recipient.slice(),
      ttl,
      encrypted,
      envelope,
      signature,
    });
  }

  if (envelope.length > MAX_ENCRYPTED_ENVELOPE_PAYLOAD) {
    throw new SizeLimitError(
      `Cannot seal encrypted whisper: the envelope (body ${body.length} bytes) serializes to ${envelope.length} bytes, over the ${MAX_ENCRYPTED_ENVELOPE_PAYLOAD} one Noise message can carry (MAX_ENCRYPTED_ENVELOPE_PAYLOAD); send it in parts or as plaintext`,
      {
        limit: "MAX_ENCRYPTED_ENVELOPE_PAYLOAD",
        size: envelope.length,
        max: MAX_ENCRYPTED_ENVELOPE_PAYLOAD,
      },
    );
  }
  let remoteStaticPublicKey: Uint8Array;
  try {
    remoteStaticPublicKey = x25519PublicKeyFromEd25519(recipient);
  } catch (cause) {
    throw new AddressError(
      `Cannot seal whisper to ${
        formatAddress(recipient)
      }: the address is not an Ed25519 public key, so it has no X25519 key to encrypt to`,
      { cause },
    );
  }
  const handshake = createHandshake({
    pattern: WHISPER_NOISE_PATTERN,
    initiator: true,
    prologue: PROLOGUE_BYTES,
    staticKeyPair: ownX25519KeyPair(identity),
    remoteStaticPublicKey,
  });
  let message: Uint8Array;
  try {
    const sealed = toBinary(
      SealedWhisperSchema,
      create(SealedWhisperSchema, { envelope, signature }),
    );
    message = await handshake.writeMessage(sealed);
  } catch (cause) {
    if (cause instanceof RangeError) throw cause;
    // A low-order X25519 key (a small-order Ed25519 point) fails the DH.
    throw new AddressError(
      `Cannot seal whisper to ${formatAddress(recipient)}: its X25519 key is unusable (${
        (cause as Error).message
      })`,
      { cause },
    );
  }
  options.signal?.throwIfAborted();
  return create(WhisperSchema, {
    recipient: recipient.slice(),
    ttl,
    encrypted,
    envelope: message,
  });
}

/**
 * Opens a whisper addressed to `identity`: decrypts and authenticates it
 * (encrypted) or checks its signature (plaintext), then checks that both
 * the outer and the inner recipient are `identity` and that the body fits
 * `options.maxBodySize`. A whisper from a faulty or hostile peer always
 * fails with a {@linkcode WhisperError}, whose `problem` (and message) names
 * what is wrong:
 *
 * - `wrong recipient`: `Whisper.recipient` or `envelope.recipient` is
 *   another node (a relay's mistake, or a replay to another node);
 * - `bad signature`: a plaintext envelope was changed, or is not signed by
 *   the sender it names;
 * - `decryption failed`: an encrypted envelope was changed, truncated, or
 *   sealed to another key;
 * - `sender mismatch`: an encrypted envelope names a sender other than the
 *   key that sealed it;
 * - `malformed`: the envelope does not parse, a field has the wrong size,
 *   or an encrypted whisper carries a signature;
 * - `too large`: the body exceeds `maxBodySize`.
 *
 * @param identity The recipient (this node).
 * @param whisper The received `Whisper` payload.
 * @returns The content, with the hash the ACK carries.
 * @throws {WhisperError} As listed above.
 * @throws {RangeError} If `maxBodySize` is not a non-negative integer.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import {
 *   generateIdentitySync,
 *   openWhisper,
 *   sealWhisper,
 *   WhisperError,
 *   whisperHash,
 * } from "@carrier/p2p";
 *
 * const [alice, bob, carol] = Array.from({ length: 3 }, () => generateIdentitySync({ difficulty: 0 }));
 * const whisper = await sealWhisper(alice, bob.publicKey, new Uint8Array([1, 2, 3]));
 * const content = await openWhisper(bob, whisper);
 * assert.deepEqual(content.body, new Uint8Array([1, 2, 3]));
 * assert.deepEqual(content.hash, whisperHash(whisper));
 *
 * // Carol, a relay, cannot open it, even after redirecting it to herself.
 * const redirected = { ...whisper, recipient: carol.publicKey };
 * await assert.rejects(openWhisper(carol, redirected), WhisperError);
 * ```
 */
export async function openWhisper(
  identity: Identity,
  whisper: Whisper,
  options: OpenWhisperOptions = {},
): Promise<WhisperContent> {
  options.signal?.throwIfAborted();
  const maxBodySize = options.maxBodySize ?? DEFAULT_MAX_WHISPER_BODY_SIZE;
  if (!Number.isSafeInteger(maxBodySize) || maxBodySize < 0) {
    throw new RangeError(
      `Cannot open whisper: maxBodySize ${maxBodySize} is not a non-negative integer`,
    );
  }
  const me = identity.publicKey;
  if (!bytesEqual(whisper.recipient, me)) {
    throw new WhisperError(
      `Cannot open whisper: wrong recipient: it is addressed to ${
        describeAddress(whisper.recipient)
      }, this node is ${identity.address}`,
      { problem: "wrong recipient" },
    );
  }
  const hash = whisperHash(whisper);

  let envelope: WhisperEnvelope;
  let envelopeBytes: Uint8Array;
  let signature: Uint8Array;
  if (whisper.encrypted) {
    if (whisper.signature.length !== 0) {
      throw new WhisperError(
        `Cannot open whisper: malformed: an encrypted whisper carries no signature, got ${whisper.signature.length} bytes`,
        { problem: "malformed" },
      );
    }
    const handshake = createHandshake({
      pattern: WHISPER_NOISE_PATTERN,
      initiator: false,
      prologue: PROLOGUE_BYTES,
      staticKeyPair: ownX25519KeyPair(identity),
    });
    let payload: Uint8Array;
    try {
      payload = await handshake.readMessage(whisper.envelope);
    } catch (cause) {
      throw new WhisperError(
        `Cannot open whisper ${
          toHex(hash)
        }: decryption failed: the ${whisper.envelope.length}-byte Noise X message was changed in transit or sealed to another key`,
        { cause, problem: "decryption failed" },
      );
    }
    let sealed: SealedWhisper;
    try {
      sealed = fromBinary(SealedWhisperSchema, payload);
    } catch (cause) {
      throw new WhisperError(
        `Cannot open whisper ${
          toHex(hash)
        }: malformed: the decrypted payload is not a SealedWhisper`,
        { cause, problem: "malformed" },
      );
    }
    envelopeBytes = sealed.envelope;
    signature = sealed.signature;
    envelope = decodeEnvelope(envelopeBytes, hash);
    checkEnvelope(envelope, hash, maxBodySize);
    // Noise authenticated the sender's X25519 key; it must be the one its
    // claimed Ed25519 address converts to.
    const senderStatic = handshake.remoteStaticPublicKey!;
    let claimed: Uint8Array | undefined;
    try {
      claimed = x25519PublicKeyFromEd25519(envelope.sender);
    } catch {
      claimed = undefined;
    }
    if (claimed === undefined || !bytesEqual(claimed, senderStatic)) {
      throw new WhisperError(
        `Cannot open whisper ${toHex(hash)}: sender mismatch: the envelope claims sender ${
          formatAddress(envelope.sender)
        }, but it was sealed with X25519 key ${toHex(senderStatic)}, which ${
          claimed === undefined
            ? "no Ed25519 key converts to"
            : `is not that address's (${toHex(claimed)})`
        }`,
        { problem: "sender mismatch" },
      );
    }
  } else {
    envelopeBytes = whisper.envelope;
    signature = whisper.signature;
    envelope = decodeEnvelope(envelopeBytes, hash);
    checkEnvelope(envelope, hash, maxBodySize);
  }
  // Both modes: the sender's exact Ed25519 key signed the envelope.
  const signed = concatBytes([SIGNATURE_CONTEXT_BYTES, envelopeBytes]);
  if (!verify(envelope.sender, signed, signature)) {
    throw new WhisperError(
      `Cannot open whisper ${
        toHex(hash)
      }: bad signature: the ${signature.length}-byte signature does not verify against sender ${
        formatAddress(envelope.sender)
      } (the envelope was changed, or someone else signed it)`,
      { problem: "bad signature" },
    );
  }

  if (!bytesEqual(envelope.recipient, me)) {
    throw new WhisperError(
      `Cannot open whisper ${toHex(hash)}: wrong recipient: the envelope is addressed to ${
        formatAddress(envelope.recipient)
      }, this node (and the outer recipient) is ${identity.address}`,
      { problem: "wrong recipient" },
    );
  }
  options.signal?.throwIfAborted();
  return {
    sender: formatAddress(envelope.sender),
    senderKey: envelope.sender,
    recipient: envelope.recipient,
    nonce: envelope.nonce,
    timestampMs: Number(envelope.timestampMs),
    topic: envelope.topic,
    body: envelope.body,
    encrypted: whisper.encrypted,
    hash,
  };
}

/**
 * SHA-256 of a whisper's `envelope` bytes: what the recipient's ACK carries
 * (`WhisperAck.hash`), and an id for the message that relays can compute too.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateIdentitySync, sealWhisper, whisperHash } from "@carrier/p2p";
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
 * The X25519 public key of an Ed25519 public key (an address), by the
 * birational map u = (1 + y) / (1 − y) (RFC 7748 section 4.1; libsodium's
 * `crypto_sign_ed25519_pk_to_curve25519`). It equals the public key of
 * {@linkcode x25519PrivateKeyFromEd25519} of the matching secret key. The map
 * drops the sign of x: the addresses A and −A give the same key.
 *
 * @param publicKey A 32-byte Ed25519 public key.
 * @returns The 32-byte X25519 public key.
 * @throws {AddressError} If `publicKey` is not 32 bytes, or not a canonical
 * encoding of a curve point other than the identity.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { x25519PrivateKeyFromEd25519, x25519PublicKeyFromEd25519 } from "./whisper.ts";
 * import { generateIdentitySync } from "../identity/keys.ts";
 * import { x25519KeyPairFromPrivateKey } from "../secure/noise.ts";
 *
 * const identity = generateIdentitySync({ difficulty: 0 });
 * const pair = x25519KeyPairFromPrivateKey(x25519PrivateKeyFromEd25519(identity.secretKey));
 * assert.deepEqual(pair.publicKey, x25519PublicKeyFromEd25519(identity.publicKey));
 * ```
 */
export function x25519PublicKeyFromEd25519(publicKey: Uint8Array): Uint8Array {
  assertAddressBytes(publicKey);
  try {
    return ed25519.utils.toMontgomery(publicKey);
  } catch (cause) {
    throw new AddressError(
      `Cannot convert Ed25519 public key ${
        toHex(publicKey)
      } to X25519: not a canonical curve point, or the identity point (${
        (cause as Error).message
      })`,
      { cause },
    );
  }
}

/**
 * The X25519 private key of an Ed25519 secret key (the RFC 8032 seed): the
 * clamped first half of SHA-512(seed), i.e. the Ed25519 signing scalar
 * (libsodium's `crypto_sign_ed25519_sk_to_curve25519`).
 *
 * @param secretKey A 32-byte Ed25519 seed.
 * @returns The 32-byte X25519 private key. Keep it private.
 * @throws {RangeError} If `secretKey` is not 32 bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { x25519PrivateKeyFromEd25519 } from "@carrier/p2p";
 * const key = x25519PrivateKeyFromEd25519(new Uint8Array(32));
 * assert.equal(key.length, 32);
 * assert.equal(key[0] & 7, 0); // clamped
 * ```
 */
export function x25519PrivateKeyFromEd25519(secretKey: Uint8Array): Uint8Array {
  if (!(secretKey instanceof Uint8Array) || secretKey.length !== SECRET_KEY_LENGTH) {
    throw new RangeError(
      `Invalid Ed25519 secret key: expected Uint8Array of length ${SECRET_KEY_LENGTH}, got ${
        secretKey instanceof Uint8Array ? `length=${secretKey.length}` : typeof secretKey
      }`,
    );
  }
  return ed25519.utils.toMontgomerySecret(secretKey);
}

/** X25519 key pairs of identities already used, keyed by their secret key (like `sign`'s cache). */
const ownKeyPairs = new WeakMap<Uint8Array, X25519KeyPair>();

function ownX25519KeyPair(identity: Identity): X25519KeyPair {
  let pair = ownKeyPairs.get(identity.secretKey);
  if (pair === undefined) {
    const privateKey = x25519PrivateKeyFromEd25519(identity.secretKey);
    pair = x25519KeyPairFromPrivateKey(privateKey);
    privateKey.fill(0);
    ownKeyPairs.set(identity.secretKey, pair);
  }
  return pair;
}

function decodeEnvelope(bytes: Uint8Array, hash: Uint8Array): WhisperEnvelope {
  try {
    return fromBinary(WhisperEnvelopeSchema, bytes);
  } catch (cause) {
    throw new WhisperError(
      `Cannot open whisper ${
        toHex(hash)
      }: malformed envelope: ${bytes.length} bytes are not a ${WhisperEnvelopeSchema.typeName} (${
        (cause as Error).message
      })`,
      { cause, problem: "malformed" },
    );
  }
}

function checkEnvelope(envelope: WhisperEnvelope, hash: Uint8Array, maxBodySize: number): void {
  for (const field of ["sender", "recipient"] as const) {
    if (envelope[field].length !== ADDRESS_LENGTH) {
      throw new WhisperError(
        `Cannot open whisper ${toHex(hash)}: malformed envelope: ${field} is ${
          envelope[field].length
        } bytes, expected an address of ${ADDRESS_LENGTH}`,
        { problem: "malformed" },
      );
    }
  }
  if (envelope.body.length > maxBodySize) {
    throw new WhisperError(
      `Cannot open whisper ${
        toHex(hash)
      }: too large: body length ${envelope.body.length} exceeds maxBodySize ${maxBodySize}`,
      { problem: "too large" },
    );
  }
}

/** An address from a peer for an error message: base58 if it is 32 bytes. */
function describeAddress(bytes: Uint8Array): string {
  return bytes.length === ADDRESS_LENGTH
    ? formatAddress(bytes)
    : `a ${bytes.length}-byte value (${toHex(bytes.subarray(0, 40))})`;
}

function randomUint64(): bigint {
  return crypto.getRandomValues(new BigUint64Array(1))[0];
}
