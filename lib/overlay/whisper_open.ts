/**
 * Opening a WHISPER envelope addressed to this node: {@linkcode openWhisper},
 * its options and the {@linkcode WhisperContent} it returns. The format (both
 * modes, what the signature covers, the Noise `X` message) is described in
 * `whisper.ts`.
 *
 * @module
 */
import { fromBinary } from "@bufbuild/protobuf";
import {
  type SealedWhisper,
  SealedWhisperSchema,
  type WhisperEnvelope,
  WhisperEnvelopeSchema,
} from "../../gen/carrier/v1/messaging_pb.ts";
import { bytesEqual, toHex } from "../_bytes.ts";
import { ArgumentError, WhisperError } from "../errors.ts";
import { ADDRESS_LENGTH, formatAddress } from "../identity/address.ts";
import { type Identity, verify } from "../identity/keys.ts";
import { x25519PublicKeyFromEd25519 } from "./ed25519_x25519.ts";
import {
  createWhisperHandshake,
  DEFAULT_MAX_WHISPER_BODY_SIZE,
  type Whisper,
  whisperHash,
  whisperSigningBytes,
} from "./whisper.ts";

/**
 * Options of {@linkcode openWhisper}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateIdentitySync, WhisperError } from "@carrier/p2p";
 * import { openWhisper, type OpenWhisperOptions, sealWhisper } from "@carrier/p2p/protocol";
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
 * import { generateIdentitySync } from "@carrier/p2p";
 * import { openWhisper, sealWhisper, type WhisperContent } from "@carrier/p2p/protocol";
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
 * @throws {ArgumentError} If `maxBodySize` is not a non-negative integer.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateIdentitySync, WhisperError } from "@carrier/p2p";
 * import { openWhisper, sealWhisper, whisperHash } from "@carrier/p2p/protocol";
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
    throw new ArgumentError(
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
    const handshake = createWhisperHandshake(identity);
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
  if (!verify(envelope.sender, whisperSigningBytes(envelopeBytes), signature)) {
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
