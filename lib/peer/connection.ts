/**
 * One authenticated connection to a peer, on top of a
 * {@linkcode SecureChannel}: frames in and out, requests matched to their
 * ACK or NACK, PING, KEEPALIVE and DISCONNECT, per-connection options
 * (SET_CONNECTION_OPT), and a bounded send buffer.
 *
 * Sending: frames are encoded into a send queue bounded in bytes
 * (`maxSendBuffer`). A writer drains it, packing small frames together into
 * one Noise message and spreading large ones over several, so a burst of
 * small frames costs one encryption and one write. It hands the channel up to
 * two batches (of at most 16 Noise messages) at a time, so one is encrypted
 * while the other is written. When the queue is full a sender waits or gets
 * {@linkcode SendBufferFullError}, by option.
 *
 * Receiving: every Noise plaintext goes through a {@linkcode FrameDecoder}
 * bounded by the `maxFrameSize` this side announced. ACK and NACK settle
 * requests; PING, KEEPALIVE, SET_CONNECTION_OPT and DISCONNECT are answered
 * here; every other frame goes to `onFrame`, and what it does not handle is
 * answered here too (NACK `UNKNOWN_OPCODE`, or dropped if one-way).
 *
 * Liveness: when nothing has arrived for `keepaliveInterval`, a KEEPALIVE
 * request goes out; when nothing has arrived for `deadPeerTimeout`, or a
 * write has been stuck for `writeTimeout` (a peer that does not read), the
 * connection closes with a {@linkcode TimeoutError}. Time comes from an
 * injectable {@linkcode Clock}.
 *
 * The parts live beside this file: `_types.ts` (options, defaults,
 * counters), `_request_table.ts` (request ids, timeouts, ACK/NACK matching),
 * `_send_queue.ts` (the send buffer and its writer), `_receiver.ts` (the read
 * loop, its backpressure and the dispatch of frames), `_keepalive.ts` and
 * `_compression_negotiation.ts` (SET_CONNECTION_OPT and the compression
 * choice).
 *
 * @module
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { DisconnectReason, DisconnectSchema, PingSchema } from "../../gen/carrier/v1/control_pb.ts";
import { NackReason, NackSchema, Opcode } from "../../gen/carrier/v1/frame_pb.ts";
import {
  Compression,
  ConnectionOption,
  SetConnectionOptSchema,
} from "../../gen/carrier/v1/options_pb.ts";
import { bytesEqual } from "../_bytes.ts";
import { type Clock, systemClock } from "../clock.ts";
import {
  ArgumentError,
  CarrierError,
  ConnectionClosedError,
  FrameTooLargeError,
  SendBufferFullError,
  TimeoutError,
} from "../errors.ts";
import type { SecureChannel } from "../secure/channel.ts";
import { encodeAck } from "../wire/ack.ts";
import { compress } from "../wire/compression.ts";
import { createFrame, DEFAULT_MAX_FRAME_SIZE, encodeFrame, type Frame } from "../wire/frame.ts";
import { decodePayload } from "../wire/opcodes.ts";
import { CompressionNegotiation } from "./_compression_negotiation.ts";
import { Keepalive } from "./_keepalive.ts";
import { opcodeName } from "./_opcode_name.ts";
import { Receiver } from "./_receiver.ts";
import { RequestTable } from "./_request_table.ts";
import { SendQueue } from "./_send_queue.ts";
import {
  type CloseInfo,
  type ConnectionCounters,
  DEFAULT_COMPRESSION_THRESHOLD,
  DEFAULT_DEAD_PEER_TIMEOUT,
  DEFAULT_KEEPALIVE_INTERVAL,
  DEFAULT_REQUEST_TIMEOUT,
  DEFAULT_SEND_BUFFER_POLICY,
  DEFAULT_WRITE_TIMEOUT,
  PEER_CONNECTION_LIMITS,
  type PeerConnectionOptions,
  type RequestOptions,
  type SendBufferPolicy,
  type SendOptions,
} from "./_types.ts";

export { chooseCompression } from "./_compression_negotiation.ts";
export * from "./_types.ts";

/**
 * A connection to one authenticated peer.
 *
 * @example
 * ```ts ignore
 * import { TcpTransport } from "@carrier/p2p";
 * import { PeerConnection, secureOutbound } from "@carrier/p2p/protocol";
 * const stream = await new TcpTransport().dial("127.0.0.1:4000");
 * const channel = await secureOutbound(stream, { identity });
 * const peer = new PeerConnection(channel);
 * console.log(`rtt ${await peer.ping()} ms`);
 * await peer.close();
 * ```
 */
export class PeerConnection implements AsyncDisposable {
  readonly #channel: SecureChannel;
  readonly #clock: Clock;
  readonly #policy: SendBufferPolicy;
  readonly #requestTimeout: number;
  readonly #writeTimeout: number;
  readonly #maxPending: number;
  readonly #threshold: number;
  readonly #remoteMaxFrame: number;
  readonly #compression: CompressionNegotiation;
  readonly #requests: RequestTable;
  readonly #sendQueue: SendQueue;
  readonly #keepalive: Keepalive;
  readonly #receiver: Receiver;
  readonly #counters: ConnectionCounters = {
    bytesSent: 0,
    bytesReceived: 0,
    framesSent: 0,
    framesReceived: 0,
    drops: 0,
    rtt: 0,
  };
  #closeInfo: CloseInfo | undefined;
  #closed: Promise<CloseInfo>;
  #resolveClosed!: (info: CloseInfo) => void;

  /** Starts the connection's loops over an established channel. */
  constructor(channel: SecureChannel, options: PeerConnectionOptions = {}) {
    this.#channel = channel;
    const clock = this.#clock = options.clock ?? systemClock;
    this.#policy = options.sendBufferPolicy ?? DEFAULT_SEND_BUFFER_POLICY;
    this.#requestTimeout = options.requestTimeout ?? DEFAULT_REQUEST_TIMEOUT;
    this.#writeTimeout = options.writeTimeout ?? DEFAULT_WRITE_TIMEOUT;
    this.#maxPending = options.maxPendingRequests ?? PEER_CONNECTION_LIMITS.maxPendingRequests;
    this.#threshold = options.compressionThreshold ?? DEFAULT_COMPRESSION_THRESHOLD;
    // What each side decodes, prefers and accepts is what it announced in the handshake.
    this.#remoteMaxFrame = channel.remote.maxFrameSize || DEFAULT_MAX_FRAME_SIZE;
    this.#compression = new CompressionNegotiation(
      channel.local,
      channel.remote,
      channel.initiator,
    );
    this.#requests = new RequestTable(clock, this.address);
    const isClosed = () => this.isClosed;
    const fail = (error: Error, reason: DisconnectReason) => this.#fail(error, reason);
    this.#sendQueue = new SendQueue(channel, clock, {
      maxBytes: options.maxSendBuffer ?? PEER_CONNECTION_LIMITS.maxSendBuffer,
      writeTimeout: this.#writeTimeout,
    }, { address: this.address, isClosed, fail });
    this.#closed = new Promise((resolve) => (this.#resolveClosed = resolve));
    this.#keepalive = new Keepalive(clock, {
      interval: options.keepaliveInterval ?? DEFAULT_KEEPALIVE_INTERVAL,
      deadPeerTimeout: options.deadPeerTimeout ?? DEFAULT_DEAD_PEER_TIMEOUT,
    }, {
      address: this.address,
      isClosed,
      lastReceived: () => this.#receiver.lastReceived,
      request: (opcode, payload, options) => this.request(opcode, payload, options),
      dead: (error) => this.#fail(error, DisconnectReason.TIMEOUT),
      observeRtt: (sample) => this.#observeRtt(sample),
    });
    this.#receiver = new Receiver(channel, clock, options, {
      connection: this,
      requests: this.#requests,
      compression: this.#compression,
      counters: this.#counters,
      finish: (info) => this.#finish(info),
      fail,
    });
  }

  /** The peer's address (base58). */
  get address(): string {
    return this.#channel.remote.address;
  }

  /** The peer's 32-byte Ed25519 public key. */
  get identityKey(): Uint8Array {
    return this.#channel.remote.identityKey;
  }

  /** The underlying secure channel (the peer's handshake announcement is `channel.remote`). */
  get channel(): SecureChannel {
    return this.#channel;
  }

  /** The compression this side sends with, if any (bz2 and lzma only when this side prefers them). */
  get compression(): Compression | undefined {
    return this.#compression.compression;
  }

  /** A snapshot of this connection's counters. */
  get counters(): ConnectionCounters {
    return { ...this.#counters };
  }

  /** Bytes of encoded frames waiting to be written. */
  get bufferedBytes(): number {
    return this.#sendQueue.bytes;
  }

  /**
   * Clock time of the last frame received that was not KEEPALIVE traffic (a
   * KEEPALIVE or the reply to one): when the peer last did something.
   */
  get lastActive(): number {
    return this.#receiver.lastActive;
  }
  /**
   * Answers a frame that no handler took, as the connection does when
   * `onFrame` returns `false`: a request gets NACK `UNKNOWN_OPCODE`, a
   * one-way frame is dropped (and counted). For a frame handed on later,
   * such as one held by a receive lock.
   */
  unhandled(frame: Frame): void {
    this.#receiver.unhandled(frame);
  }

  /** Whether requests of this side await replies (the connection is in use). */
  get busy(): boolean {
    return this.#requests.size > 0;
  }

  /** Whether no request is in flight either way: none of this side awaits a reply, and none of the peer's is being handled. */
  get idle(): boolean {
    return this.#requests.size === 0 && this.#receiver.handling === 0;
  }

  /** Whether the connection has closed. */
  get isClosed(): boolean {
    return this.#closeInfo !== undefined;
  }

  /** Resolves when the connection has closed, with why. Never rejects. */
  get closed(): Promise<CloseInfo> {
    return this.#closed;
  }

  /**
   * Sends a one-way frame (no reply expected).
   *
   * @throws {SendBufferFullError} when the buffer is full and the policy is "error".
   * @throws {ConnectionClosedError} once closed.
   */
  async send(opcode: number, payload: Uint8Array, options: SendOptions = {}): Promise<void> {
    await this.#sendFrame(0, opcode, payload, options);
  }

  /**
   * Sends a request and resolves the ACK's data (serialized; the opcode names
   * its schema).
   *
   * @throws {NackError} when the peer answers NACK.
   * @throws {TimeoutError} when no reply comes within the timeout.
   * @throws {ConnectionClosedError} when the connection closes first.
   */
  async request(
    opcode: number,
    payload: Uint8Array,
    options: RequestOptions = {},
  ): Promise<Uint8Array> {
    this.#assertOpen();
    options.signal?.throwIfAborted();
    while (this.#requests.size >= this.#maxPending) {
      if ((options.sendBufferPolicy ?? this.#policy) === "error") {
        this.#counters.drops++;
        throw new SendBufferFullError(
          `Cannot send request to ${this.address}: ${this.#requests.size} requests already await replies (maxPendingRequests ${this.#maxPending})`,
        );
      }
      await this.#requests.slots.wait(options.signal);
      this.#assertOpen();
    }
    const timeout = options.timeout ?? this.#requestTimeout;
    const { id, reply } = this.#requests.add(opcode, timeout, options.signal);
    try {
      await this.#sendFrame(id, opcode, payload, options);
    } catch (err) {
      this.#requests.reject(id, err as Error);
    }
    return await reply;
  }

  /**
   * Answers request `frame` with ACK carrying `data` (the reply message,
   * serialized). A frame with id 0 is never answered. A reply that would be a
   * frame larger than the `max_frame_size` the peer announced is not sent: the
   * peer gets NACK `TOO_LARGE` instead.
   */
  async ack(frame: Frame, data: Uint8Array = EMPTY, options: SendOptions = {}): Promise<void> {
    if (frame.id === 0) return;
    try {
      await this.#sendFrame(frame.id, Opcode.ACK, encodeAck(frame.opcode, data), options, true);
    } catch (err) {
      if (!(err instanceof FrameTooLargeError)) throw err;
      await this.nack(
        frame,
        NackReason.TOO_LARGE,
        `the reply to ${
          opcodeName(frame.opcode)
        } (${data.length} bytes of data) would be a frame ` +
          `over the max_frame_size ${this.#remoteMaxFrame} you announced`,
        EMPTY,
        options,
      );
    }
  }

  /** Answers request `frame` with NACK. A frame with id 0 is never answered. */
  async nack(
    frame: Frame,
    reason: NackReason,
    message = "",
    data: Uint8Array = EMPTY,
    options: SendOptions = {},
  ): Promise<void> {
    if (frame.id === 0) return;
    const payload = toBinary(
      NackSchema,
      create(NackSchema, { opcode: frame.opcode, reason, message, data }),
    );
    await this.#sendFrame(frame.id, Opcode.NACK, payload, options, true);
  }

  /** Sends PING; resolves the round-trip time in ms. */
  async ping(options: RequestOptions = {}): Promise<number> {
    const started = this.#clock.now();
    const data = new Uint8Array(8);
    new DataView(data.buffer).setFloat64(0, started);
    const payload = toBinary(PingSchema, create(PingSchema, { data }));
    const reply = decodePayload(PingSchema, await this.request(Opcode.PING, payload, options));
    if (!bytesEqual(reply.data, data)) {
      throw new CarrierError(`PING reply from ${this.address} does not echo its data`);
    }
    const rtt = this.#clock.now() - started;
    this.#observeRtt(rtt);
    return rtt;
  }

  /**
   * Sets a connection option on the peer (SET_CONNECTION_OPT): what this
   * side decodes (COMPRESSION: also `setting`; DISABLE_COMPRESSION: no longer
   * `setting`) or prefers (PREFERRED_COMPRESSION). When the ACK arrives this
   * side applies it and recomputes the connection's compression, as the peer
   * did before it answered; a NACK changes nothing. This side keeps decoding
   * a disabled setting until the ACK.
   *
   * @throws {ArgumentError} if `option` is not one of the three or `setting` not a `Compression`.
   * @throws {NackError} (reason UNSUPPORTED) when the peer does not support it.
   */
  async setOption(
    option: ConnectionOption,
    setting: number,
    options: RequestOptions = {},
  ): Promise<void> {
    if (!(option in ConnectionOption) || !(setting in Compression)) {
      throw new ArgumentError(
        `Cannot set connection option ${option} to ${setting}: not a ConnectionOption and a Compression`,
      );
    }
    const payload = toBinary(
      SetConnectionOptSchema,
      create(SetConnectionOptSchema, { option, setting }),
    );
    await this.request(Opcode.SET_CONNECTION_OPT, payload, options);
    this.#compression.applyLocal(option, setting as Compression);
  }

  /** What this side decodes and prefers, as the peer was told (handshake and options). */
  get compressionSettings(): { decodes: readonly Compression[]; preferred?: Compression } {
    return this.#compression.local;
  }

  /**
   * Closes the connection: sends DISCONNECT with `reason` (best effort, after
   * the frames already queued), then closes the channel. Idempotent.
   */
  async close(
    reason: DisconnectReason = DisconnectReason.SHUTDOWN,
    message = "",
  ): Promise<CloseInfo> {
    if (!this.#closeInfo) {
      const payload = toBinary(DisconnectSchema, create(DisconnectSchema, { reason, message }));
      try {
        this.#enqueue(encodeFrame(createFrame({ opcode: Opcode.DISCONNECT, payload })), true);
        await this.#sendQueue.flushed();
      } catch {
        // The peer may be gone already; closing goes on.
      }
      this.#finish({ reason, remote: false });
    }
    await this.#receiver.done;
    return this.#closed;
  }

  /** Closes the connection. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // ---- sending ----

  async #sendFrame(
    id: number,
    opcode: number,
    payload: Uint8Array,
    options: SendOptions,
    reply = false,
  ): Promise<void> {
    this.#assertOpen();
    let compression: Compression | undefined;
    const setting = this.#compression.compression;
    if (setting !== undefined && payload.length >= this.#threshold) {
      const packed = compress(setting, payload);
      if (packed.length < payload.length) {
        payload = packed;
        compression = setting;
      }
    }
    const bytes = encodeFrame(createFrame({ id, opcode, payload, compression }), {
      maxFrameSize: this.#remoteMaxFrame,
    });
    const policy = options.sendBufferPolicy ?? this.#policy;
    while (this.#sendQueue.isFull(bytes.length)) {
      if (policy === "error") {
        this.#counters.drops++;
        throw new SendBufferFullError(
          `Cannot send ${
            opcodeName(opcode)
          } to ${this.address}: send buffer full (${this.#sendQueue.bytes} + ${bytes.length} bytes > maxSendBuffer ${this.#sendQueue.maxBytes})`,
        );
      }
      // A reply that must wait pauses reading from the peer.
      if (reply) this.#receiver.replyWaiting();
      try {
        await this.#sendQueue.waitForRoom(options.signal);
      } finally {
        if (reply) this.#receiver.replyDone();
      }
      this.#assertOpen();
    }
    this.#enqueue(bytes, false);
  }

  #enqueue(bytes: Uint8Array, force: boolean): void {
    if (!force) this.#assertOpen();
    this.#sendQueue.push(bytes);
    this.#counters.framesSent++;
    this.#counters.bytesSent += bytes.length;
  }

  #observeRtt(sample: number): void {
    const rtt = this.#counters.rtt;
    this.#counters.rtt = rtt === 0 ? sample : rtt * 0.875 + sample * 0.125;
  }

  // ---- closing ----

  #assertOpen(): void {
    if (this.#closeInfo) {
      throw new ConnectionClosedError(`Connection to ${this.address} is closed`, {
        cause: this.#closeInfo.error,
      });
    }
  }

  #fail(error: Error, reason: DisconnectReason): void {
    if (this.#closeInfo) return;
    // Tell the peer why, if the channel still takes writes: the channel
    // closes once the DISCONNECT is written (the channel encrypts before it
    // writes, so closing it now would drop the frame), within writeTimeout.
    let told: Promise<void> | undefined;
    if (!(error instanceof TimeoutError) && !this.#channel.closed) {
      const payload = toBinary(
        DisconnectSchema,
        create(DisconnectSchema, { reason, message: error.message.slice(0, 200) }),
      );
      told = this.#channel.write(encodeFrame(createFrame({ opcode: Opcode.DISCONNECT, payload })))
        .catch(() => {});
    }
    this.#finish({ reason, remote: false, error }, told);
  }

  /** Closes: with `told`, the channel closes once it settles (at most writeTimeout later). */
  #finish(info: CloseInfo, told?: Promise<void>): void {
    if (this.#closeInfo) return;
    this.#closeInfo = info;
    this.#keepalive.stop();
    const closedError = new ConnectionClosedError(`Connection to ${this.address} closed`, {
      cause: info.error,
    });
    this.#requests.close(closedError);
    this.#sendQueue.clear();
    this.#requests.slots.wakeAll();
    this.#receiver.release();
    if (told === undefined) this.#channel.close();
    else {
      const timer = this.#clock.setTimeout(() => this.#channel.close(), this.#writeTimeout);
      void told.then(() => {
        this.#clock.clearTimeout(timer);
        this.#channel.close();
      });
    }
    this.#resolveClosed(info);
  }
}

const EMPTY = new Uint8Array(0);
