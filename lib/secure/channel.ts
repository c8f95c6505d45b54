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
 * import { generateIdentitySync } from "@carrier/p2p";
 * import { secureInbound, secureOutbound } from "@carrier/p2p/protocol";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
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

import { ArgumentError, ConnectionClosedError, SizeLimitError } from "../errors.ts";
import type { ByteStream } from "../transport/types.ts";
import { type ChannelInit, establishChannel } from "./_channel_handshake.ts";
import type { SecureChannelOptions } from "./_channel_options.ts";
import { errorMessage } from "../_error_message.ts";
import { MAX_PLAINTEXT, type MessageReader } from "./_framing.ts";
import type { HandshakeInfo } from "./_handshake_payload.ts";
import { MessageWriter } from "./_message_writer.ts";
import type { CipherState } from "./cipher_state.ts";

export { NOISE_PROTOCOL_NAME, PROLOGUE } from "./_channel_handshake.ts";
export {
  DEFAULT_AGENT,
  DEFAULT_HANDSHAKE_TIMEOUT,
  type SecureChannelOptions,
} from "./_channel_options.ts";
export { LENGTH_PREFIX_LENGTH, MAX_PLAINTEXT } from "./_framing.ts";
export { type HandshakeInfo, IDENTITY_SIGNATURE_CONTEXT } from "./_handshake_payload.ts";

/** Transport messages whose decryption starts before the caller asks for them. */
const READ_AHEAD = 8;

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
 * @throws {ArgumentError | AddressError} When an option is invalid.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateIdentitySync } from "@carrier/p2p";
 * import { secureInbound, secureOutbound } from "@carrier/p2p/protocol";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
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
  return establishChannel(stream, options, true).then(newChannel);
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
 * @throws {ArgumentError | AddressError} When an option is invalid.
 *
 * @example
 * ```ts
 * import { type Identity, type Listener, type SecureChannel } from "@carrier/p2p";
 * import { secureInbound } from "@carrier/p2p/protocol";
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
  return establishChannel(stream, options, false).then(newChannel);
}

/** Creates a channel; set by the class's static block (its constructor is private). */
let newChannel: (init: ChannelInit) => SecureChannel;

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
  #writer: MessageWriter;

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
    this.#receive = init.ciphers.receive;
    this.#writer = new MessageWriter(init.stream, init.ciphers.send, {
      isClosed: () => this.#closed,
      fail: (error) => this.#fail(error),
      closedError: () => this.#closedError(`write to ${this.stream.remoteAddress}`),
    });
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
      throw new ArgumentError(
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
   * @throws {ArgumentError} When `plaintext` is longer than {@linkcode MAX_PLAINTEXT}
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
   * @throws {ArgumentError} When a plaintext is longer than {@linkcode MAX_PLAINTEXT}
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
          new SizeLimitError(
            `Cannot write to ${this.stream.remoteAddress}: plaintext length ${plaintext.length} exceeds MAX_PLAINTEXT ${MAX_PLAINTEXT}`,
            { limit: "MAX_PLAINTEXT", size: plaintext.length, max: MAX_PLAINTEXT },
          ),
        );
      }
    }
    return this.#writer.write(plaintexts);
  }

  /**
   * Half-closes: waits for the writes already called, then ends the
   * stream's writing side, so the remote's reads end with `null` after the
   * messages sent so far. This side may still read.
   */
  async closeWrite(): Promise<void> {
    await this.#writer.settled;
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
        this.#failure === undefined ? "" : ` (${errorMessage(this.#failure)})`
      }`,
      this.#failure === undefined ? undefined : { cause: this.#failure },
    );
  }
}

const EMPTY = new Uint8Array(0);
/** What a consumed read-ahead slot is replaced with, so that its plaintext can be collected. */
const DONE_READ: Promise<Uint8Array> = Promise.resolve(EMPTY);

function noop(): void {}
