/**
 * The Noise HandshakeState (spec section 5.3), generic over the handshake
 * patterns of `_patterns.ts`: {@linkcode createHandshake} makes one side,
 * {@linkcode Handshake.split} turns it into transport cipher states.
 *
 * @module
 */

import { concatBytes, toHex } from "../_bytes.ts";
import { ArgumentError } from "../errors.ts";
import { HandshakeError } from "./errors.ts";
import { checkLength } from "./_check_length.ts";
import { type HandshakePattern, parsePattern, type Token } from "./_patterns.ts";
import { SymmetricState } from "./_symmetric_state.ts";
import {
  type CipherState,
  type CipherStateOptions,
  MAX_MESSAGE_LENGTH,
  TAG_LENGTH,
} from "./cipher_state.ts";
import { DH_LENGTH, generateX25519KeyPair, x25519, type X25519KeyPair } from "./x25519.ts";

/** Length of a Noise pre-shared key, in bytes. */
export const PSK_LENGTH = 32;

/** The DH, cipher and hash names of the one suite this module implements. */
export const NOISE_SUITE = "25519_AESGCM_SHA256";

const EMPTY = new Uint8Array(0);

/** The cipher states {@linkcode Handshake.split} returns, ordered for the local side. */
export interface TransportCiphers {
  /** Encrypts what this side sends. */
  readonly send: CipherState;
  /** Decrypts what this side receives. */
  readonly receive: CipherState;
}

/** Options of {@linkcode createHandshake}. */
export interface HandshakeOptions {
  /**
   * The handshake pattern with its modifiers, as in the protocol name:
   * `"XX"`, `"IK"`, `"X1X1"`, `"NNpsk0"`, `"XXpsk3"`, `"NNpsk0+psk2"`.
   */
  pattern: string;
  /** Whether this side sends the first message. */
  initiator: boolean;
  /**
   * Bytes both sides must agree on, hashed into the handshake (e.g. the
   * protocol and version name). A mismatch fails the handshake.
   *
   * @default {new Uint8Array(0)}
   */
  prologue?: Uint8Array;
  /**
   * This side's static key pair; required when the pattern sends or
   * pre-shares a local static key (`XX`: both sides).
   *
   * @default {undefined}
   */
  staticKeyPair?: X25519KeyPair;
  /**
   * The remote static public key known in advance; required exactly when the
   * pattern has it as a pre-message (`NK`, `IK`, `KK`, …), refused otherwise.
   *
   * @default {undefined}
   */
  remoteStaticPublicKey?: Uint8Array;
  /**
   * A fixed ephemeral key pair instead of a fresh one. For test vectors
   * only: reusing an ephemeral key breaks Noise's security.
   *
   * @default {undefined} (a fresh key pair per handshake)
   */
  ephemeralKeyPair?: X25519KeyPair;
  /**
   * Pre-shared keys of 32 bytes, one per `psk` modifier, in the order the
   * handshake uses them.
   *
   * @default {[]}
   */
  psks?: readonly Uint8Array[];
}

/**
 * Creates one side of a Noise handshake for
 * `Noise_<pattern>_25519_AESGCM_SHA256`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createHandshake, generateX25519KeyPair } from "./noise.ts";
 * const responderStatic = generateX25519KeyPair();
 * const initiator = createHandshake({
 *   pattern: "NK",
 *   initiator: true,
 *   remoteStaticPublicKey: responderStatic.publicKey,
 * });
 * const responder = createHandshake({
 *   pattern: "NK",
 *   initiator: false,
 *   staticKeyPair: responderStatic,
 * });
 * const first = await initiator.writeMessage(new TextEncoder().encode("early data"));
 * assert.equal(new TextDecoder().decode(await responder.readMessage(first)), "early data");
 * await initiator.readMessage(await responder.writeMessage());
 * assert.ok(initiator.isComplete);
 * assert.ok(responder.isComplete);
 * assert.deepEqual(initiator.handshakeHash, responder.handshakeHash);
 * ```
 *
 * @throws {ArgumentError} If the pattern is unknown or a key the pattern needs is
 * missing (or one it cannot use is given).
 * @throws {ArgumentError} If a key or psk has the wrong length.
 */
export function createHandshake(options: HandshakeOptions): Handshake {
  return new Handshake(options);
}

/**
 * One side of a Noise handshake (the spec's HandshakeState). Write and read
 * messages in the pattern's order, then {@linkcode Handshake.split} into
 * transport cipher states. Any failure leaves the handshake failed: every
 * later call rejects with {@linkcode HandshakeError}. Create it with
 * {@linkcode createHandshake}.
 */
export class Handshake {
  #pattern: HandshakePattern;
  #protocolName: string;
  #initiator: boolean;
  #symmetric: SymmetricState;
  #s: X25519KeyPair | undefined;
  #e: X25519KeyPair | undefined;
  #rs: Uint8Array | undefined;
  #re: Uint8Array | undefined;
  #psks: Uint8Array[];
  #nextPsk = 0;
  #messageIndex = 0;
  #busy = false;
  #failure: unknown = undefined;
  #split = false;

  /** Use {@linkcode createHandshake}. */
  constructor(options: HandshakeOptions) {
    const pattern = parsePattern(options.pattern);
    const initiator = options.initiator;
    if (typeof initiator !== "boolean") {
      throw new ArgumentError(
        `Cannot create handshake: initiator must be a boolean, got ${typeof initiator}`,
      );
    }
    this.#pattern = pattern;
    this.#initiator = initiator;
    this.#protocolName = `Noise_${pattern.name}_${NOISE_SUITE}`;
    const what = `Cannot create ${this.#protocolName} ${initiator ? "initiator" : "responder"}`;

    const localPre = initiator ? pattern.initiatorPreMessage : pattern.responderPreMessage;
    const remotePre = initiator ? pattern.responderPreMessage : pattern.initiatorPreMessage;
    const localMessages = pattern.messages.filter((_, i) => (i % 2 === 0) === initiator);

    const needsStatic = localPre.includes("s") ||
      localMessages.some((m) => m.includes("s"));
    if (options.staticKeyPair !== undefined) {
      checkKeyPair("staticKeyPair", options.staticKeyPair);
      if (!needsStatic) {
        throw new ArgumentError(
          `${what}: the pattern uses no local static key, but staticKeyPair is set`,
        );
      }
      this.#s = copyKeyPair(options.staticKeyPair);
    } else if (needsStatic) {
      throw new ArgumentError(
        `${what}: the pattern needs a local static key; set staticKeyPair`,
      );
    }

    const knowsRemoteStatic = remotePre.includes("s");
    if (options.remoteStaticPublicKey !== undefined) {
      checkLength(
        "remoteStaticPublicKey",
        options.remoteStaticPublicKey,
        DH_LENGTH,
      );
      if (!knowsRemoteStatic) {
        throw new ArgumentError(
          `${what}: the pattern has no pre-shared remote static key, but remoteStaticPublicKey is set`,
        );
      }
      this.#rs = options.remoteStaticPublicKey.slice();
    } else if (knowsRemoteStatic) {
      throw new ArgumentError(
        `${what}: the pattern needs the remote static public key in advance; set remoteStaticPublicKey`,
      );
    }

    if (options.ephemeralKeyPair !== undefined) {
      checkKeyPair("ephemeralKeyPair", options.ephemeralKeyPair);
      if (!localMessages.some((m) => m.includes("e"))) {
        throw new ArgumentError(
          `${what}: this side sends no ephemeral key, but ephemeralKeyPair is set`,
        );
      }
      this.#e = copyKeyPair(options.ephemeralKeyPair);
    }

    const psks = options.psks ?? [];
    if (psks.length !== pattern.pskCount) {
      throw new ArgumentError(
        `${what}: the pattern uses ${pattern.pskCount} psk(s), got ${psks.length}`,
      );
    }
    psks.forEach((psk, i) => checkLength(`psks[${i}]`, psk, PSK_LENGTH));
    this.#psks = psks.map((psk) => psk.slice());

    this.#symmetric = new SymmetricState(this.#protocolName);
    this.#symmetric.mixHash(options.prologue ?? EMPTY);
    // Pre-messages: the initiator's keys first, then the responder's.
    for (const token of pattern.initiatorPreMessage) {
      this.#mixPreMessage(token, initiator);
    }
    for (const token of pattern.responderPreMessage) {
      this.#mixPreMessage(token, !initiator);
    }
  }

  /** The full protocol name, e.g. `Noise_XX_25519_AESGCM_SHA256`. */
  get protocolName(): string {
    return this.#protocolName;
  }

  /** Whether this side sent (or will send) the first message. */
  get isInitiator(): boolean {
    return this.#initiator;
  }

  /** Whether every handshake message has been written or read. */
  get isComplete(): boolean {
    return this.#messageIndex === this.#pattern.messages.length;
  }

  /** Whether the next handshake message is this side's to write. */
  get isMyTurn(): boolean {
    return !this.isComplete &&
      (this.#messageIndex % 2 === 0) === this.#initiator;
  }

  /**
   * The handshake hash `h` (32 bytes). Once {@linkcode Handshake.isComplete}
   * it is final and identical on both sides: a channel binding for
   * signatures. Before that it is the running value.
   */
  get handshakeHash(): Uint8Array {
    return this.#symmetric.h.slice();
  }

  /** The remote static public key, once known (pre-shared or received). */
  get remoteStaticPublicKey(): Uint8Array | undefined {
    return this.#rs?.slice();
  }

  /**
   * Writes the next handshake message carrying `payload` (encrypted once the
   * handshake has a key). Resolves to the message bytes.
   *
   * @throws {HandshakeError} If it is not this side's turn, the handshake is
   * complete or failed, or a DH result is all zeros.
   * @throws {ArgumentError} If the message would exceed {@linkcode MAX_MESSAGE_LENGTH}.
   */
  writeMessage(payload: Uint8Array = EMPTY): Promise<Uint8Array> {
    return this.#step("write", async (index, tokens) => {
      const length = this.#messageLength(tokens, payload.length);
      if (length > MAX_MESSAGE_LENGTH) {
        throw new ArgumentError(
          `Cannot write handshake message ${
            index + 1
          }: payload length ${payload.length} makes a ${length}-byte message, over the Noise maximum ${MAX_MESSAGE_LENGTH}`,
        );
      }
      const parts: Uint8Array[] = [];
      for (const token of tokens) {
        if (token === "e") {
          this.#e ??= generateX25519KeyPair();
          parts.push(this.#e.publicKey);
          this.#mixEphemeral(this.#e.publicKey);
        } else if (token === "s") {
          parts.push(await this.#symmetric.encryptAndHash(this.#s!.publicKey));
        } else {
          this.#mixToken(token);
        }
      }
      parts.push(await this.#symmetric.encryptAndHash(payload));
      return concatBytes(parts);
    });
  }

  /**
   * Reads the next handshake message from the remote side. Resolves to its
   * payload.
   *
   * @throws {HandshakeError} If the message is malformed, truncated, too long,
   * fails authentication, carries a low-order key, or arrives out of turn.
   */
  readMessage(message: Uint8Array): Promise<Uint8Array> {
    return this.#step("read", async (index, tokens) => {
      const what = `Cannot read handshake message ${index + 1}`;
      if (message.length > MAX_MESSAGE_LENGTH) {
        throw new HandshakeError(
          `${what}: length ${message.length} exceeds the Noise maximum ${MAX_MESSAGE_LENGTH}`,
        );
      }
      let offset = 0;
      const take = (length: number, name: string): Uint8Array => {
        if (message.length - offset < length) {
          throw new HandshakeError(
            `${what}: truncated: ${name} needs ${length} bytes at offset ${offset}, message length is ${message.length}`,
          );
        }
        const bytes = message.slice(offset, offset + length);
        offset += length;
        return bytes;
      };
      const open = async (ciphertext: Uint8Array, name: string) => {
        try {
          return await this.#symmetric.decryptAndHash(ciphertext);
        } catch (cause) {
          throw new HandshakeError(`${what}: ${name} failed authentication`, {
            cause,
          });
        }
      };
      for (const token of tokens) {
        if (token === "e") {
          this.#re = take(DH_LENGTH, "the ephemeral key");
          this.#mixEphemeral(this.#re);
        } else if (token === "s") {
          const length = DH_LENGTH + (this.#symmetric.hasKey ? TAG_LENGTH : 0);
          this.#rs = await open(take(length, "the static key"), "static key");
        } else {
          this.#mixToken(token);
        }
      }
      if (!this.#symmetric.hasKey || message.length - offset >= TAG_LENGTH) {
        return await open(message.slice(offset), "payload");
      }
      throw new HandshakeError(
        `${what}: truncated: the payload needs at least ${TAG_LENGTH} bytes for its tag, ${
          message.length - offset
        } left`,
      );
    });
  }

  /**
   * Derives the transport cipher states (the spec's `Split`), ordered for this
   * side. Callable once, after the handshake completes; the handshake's
   * secrets are wiped. In one-way patterns (`N`, `K`, `X`) only the
   * initiator's `send` and the responder's `receive` may be used.
   *
   * @throws {HandshakeError} If the handshake is not complete, failed, or was
   * already split.
   */
  split(options: CipherStateOptions = {}): TransportCiphers {
    if (this.#failure !== undefined) throw this.#failedError("split");
    if (!this.isComplete) {
      throw new HandshakeError(
        `Cannot split ${this.#protocolName}: handshake incomplete after ${this.#messageIndex} of ${this.#pattern.messages.length} messages`,
      );
    }
    if (this.#split) {
      throw new HandshakeError(
        `Cannot split ${this.#protocolName}: already split (a second split would reuse nonces)`,
      );
    }
    this.#split = true;
    const [c1, c2] = this.#symmetric.split(options);
    this.#e?.privateKey.fill(0);
    this.#e = undefined;
    return this.#initiator ? { send: c1, receive: c2 } : { send: c2, receive: c1 };
  }

  async #step<T>(
    direction: "write" | "read",
    run: (index: number, tokens: readonly Token[]) => Promise<T>,
  ): Promise<T> {
    const index = this.#messageIndex;
    const what = `Cannot ${direction} handshake message ${
      index + 1
    } of ${this.#pattern.messages.length} (${this.#protocolName})`;
    if (this.#failure !== undefined) throw this.#failedError(direction);
    if (this.#busy) {
      throw new HandshakeError(`${what}: another handshake step is running`);
    }
    if (this.isComplete) {
      throw new HandshakeError(`${what}: the handshake is complete`);
    }
    if (this.isMyTurn !== (direction === "write")) {
      throw new HandshakeError(
        `${what}: it is the ${(index % 2 === 0) ? "initiator" : "responder"}'s turn to write`,
      );
    }
    this.#busy = true;
    try {
      const result = await run(index, this.#pattern.messages[index]);
      this.#messageIndex++;
      return result;
    } catch (error) {
      // A size check fails before any state changed; everything else leaves
      // the symmetric state half-updated, so the handshake is over.
      if (!(error instanceof ArgumentError)) this.#failure = error;
      throw error;
    } finally {
      this.#busy = false;
    }
  }

  #failedError(what: string): HandshakeError {
    return new HandshakeError(
      `Cannot ${what}: the ${this.#protocolName} handshake already failed`,
      { cause: this.#failure },
    );
  }

  #mixPreMessage(token: Token, local: boolean): void {
    if (token !== "s") {
      throw new ArgumentError(
        `Unsupported pre-message token "${token}" in ${this.#protocolName}`,
      );
    }
    this.#symmetric.mixHash(local ? this.#s!.publicKey : this.#rs!);
  }

  #mixEphemeral(publicKey: Uint8Array): void {
    this.#symmetric.mixHash(publicKey);
    if (this.#pattern.pskCount > 0) this.#symmetric.mixKey(publicKey);
  }

  #mixToken(token: Token): void {
    if (token === "psk") {
      this.#symmetric.mixKeyAndHash(this.#psks[this.#nextPsk++]);
      return;
    }
    // The first letter names the initiator's key, the second the responder's.
    const initiatorKey = token[0];
    const responderKey = token[1];
    const localKey = this.#initiator ? initiatorKey : responderKey;
    const remoteKey = this.#initiator ? responderKey : initiatorKey;
    const local = localKey === "e" ? this.#e : this.#s;
    const remote = remoteKey === "e" ? this.#re : this.#rs;
    if (local === undefined || remote === undefined) {
      throw new HandshakeError(
        `Cannot perform ${token} in ${this.#protocolName}: a key is missing`,
      );
    }
    this.#symmetric.mixKey(dh(local.privateKey, remote));
  }

  /** The exact length of the next written message, computed before writing. */
  #messageLength(tokens: readonly Token[], payloadLength: number): number {
    let keyed = this.#symmetric.hasKey;
    let length = 0;
    for (const token of tokens) {
      if (token === "e") {
        length += DH_LENGTH;
        if (this.#pattern.pskCount > 0) keyed = true;
      } else if (token === "s") {
        length += DH_LENGTH + (keyed ? TAG_LENGTH : 0);
      } else {
        keyed = true;
      }
    }
    return length + payloadLength + (keyed ? TAG_LENGTH : 0);
  }
}

/** X25519 with the all-zero result (a low-order remote key) rejected. */
function dh(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  const problem = () =>
    `Cannot complete X25519: remote public key ${
      toHex(publicKey)
    } is a low-order point (the DH result would be all zeros)`;
  let shared: Uint8Array;
  try {
    // node:crypto fails on an all-zero result ("failed during derivation").
    shared = x25519(privateKey, publicKey);
  } catch (cause) {
    throw new HandshakeError(problem(), { cause });
  }
  if (shared.every((byte) => byte === 0)) throw new HandshakeError(problem());
  return shared;
}

function checkKeyPair(name: string, pair: X25519KeyPair): void {
  checkLength(`${name}.publicKey`, pair?.publicKey, DH_LENGTH);
  checkLength(`${name}.privateKey`, pair?.privateKey, DH_LENGTH);
}

function copyKeyPair(pair: X25519KeyPair): X25519KeyPair {
  return {
    publicKey: pair.publicKey.slice(),
    privateKey: pair.privateKey.slice(),
  };
}
