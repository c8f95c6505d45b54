/**
 * Sealing a WHISPER envelope for one node: {@linkcode sealWhisper} and its
 * options. The format (both modes, what the signature covers, the Noise `X`
 * message) is described in `whisper.ts`.
 *
 * @module
 */
import { create, toBinary } from "@bufbuild/protobuf";
import {
  SealedWhisperSchema,
  WhisperEnvelopeSchema,
  WhisperSchema,
} from "../../gen/carrier/v1/messaging_pb.ts";
import { AddressError, ArgumentError, SizeLimitError } from "../errors.ts";
import { HandshakeError } from "../secure/errors.ts";
import { assertAddressBytes, formatAddress } from "../identity/address.ts";
import { type Identity, sign } from "../identity/keys.ts";
import { x25519PublicKeyFromEd25519 } from "./ed25519_x25519.ts";
import {
  createWhisperHandshake,
  DEFAULT_WHISPER_TTL,
  MAX_ENCRYPTED_ENVELOPE_PAYLOAD,
  type Whisper,
  whisperSigningBytes,
} from "./whisper.ts";

const UINT32_MAX = 0xffff_ffff;
const UINT64_MAX = 0xffff_ffff_ffff_ffffn;

/**
 * Options of {@linkcode sealWhisper}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateIdentitySync } from "@carrier/p2p";
 * import { openWhisper, sealWhisper, type SealWhisperOptions } from "@carrier/p2p/protocol";
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
 * (encrypted).
 * @throws {ArgumentError} If `body` is not a Uint8Array, `topic` not a
 * string, or `ttl`, `nonce` or `timestampMs` out of range.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateIdentitySync } from "@carrier/p2p";
 * import { openWhisper, sealWhisper } from "@carrier/p2p/protocol";
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
    throw new ArgumentError(`Cannot seal whisper: body must be a Uint8Array, got ${typeof body}`);
  }
  const encrypted = options.encrypted ?? true;
  const topic = options.topic ?? "";
  if (typeof topic !== "string") {
    throw new ArgumentError(`Cannot seal whisper: topic must be a string, got ${typeof topic}`);
  }
  const ttl = options.ttl ?? DEFAULT_WHISPER_TTL;
  if (!Number.isInteger(ttl) || ttl < 0 || ttl > UINT32_MAX) {
    throw new ArgumentError(`Cannot seal whisper: ttl ${ttl} is not an integer in [0, 2^32 - 1]`);
  }
  const nonce = options.nonce ?? randomUint64();
  if (typeof nonce !== "bigint" || nonce < 0n || nonce > UINT64_MAX) {
    throw new ArgumentError(`Cannot seal whisper: nonce ${nonce} is not a bigint in [0, 2^64 - 1]`);
  }
  const timestampMs = options.timestampMs ?? Date.now();
  if (!Number.isSafeInteger(timestampMs) || timestampMs < 0) {
    throw new ArgumentError(
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

  const signature = sign(identity, whisperSigningBytes(envelope));
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
  const handshake = createWhisperHandshake(identity, remoteStaticPublicKey);
  let message: Uint8Array;
  try {
    const sealed = toBinary(
      SealedWhisperSchema,
      create(SealedWhisperSchema, { envelope, signature }),
    );
    message = await handshake.writeMessage(sealed);
  } catch (cause) {
    // A low-order X25519 key (a small-order Ed25519 point) fails the DH with
    // a HandshakeError. Anything else (a size or argument error of the Noise
    // layer, RangeError today, ArgumentError once it moves) is not the
    // recipient's fault and goes out as it is.
    if (!(cause instanceof HandshakeError)) throw cause;
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

function randomUint64(): bigint {
  return crypto.getRandomValues(new BigUint64Array(1))[0];
}
