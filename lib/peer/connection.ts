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
 * here; every other frame goes to `onFrame`.
 *
 * Liveness: when nothing has arrived for `keepaliveInterval`, a KEEPALIVE
 * request goes out; when nothing has arrived for `deadPeerTimeout`, or a
 * write has been stuck for `writeTimeout` (a peer that does not read), the
 * connection closes with a {@linkcode TimeoutError}. Time comes from an
 * injectable {@linkcode Clock}.
 *
 * @module
 */
import { create, toBinary } from "@bufbuild/protobuf";
import {
  type Disconnect,
  DisconnectReason,
  DisconnectSchema,
  KeepaliveSchema,
  PingSchema,
} from "../../gen/carrier/v1/control_pb.ts";
import { AckSchema, NackReason, NackSchema, Opcode } from "../../gen/carrier/v1/frame_pb.ts";
import {
  Compression,
  ConnectionOption,
  SetConnectionOptSchema,
} from "../../gen/carrier/v1/options_pb.ts";
import { bytesEqual } from "../_bytes.ts";
import { type Clock, systemClock, type TimerHandle } from "../clock.ts";
import {
  CarrierError,
  ConnectionClosedError,
  DecompressionLimitError,
  FrameTooLargeError,
  NackError,
  PayloadDecodeError,
  SendBufferFullError,
  TimeoutError,
} from "../errors.ts";
import type { SecureChannel } from "../secure/channel.ts";
import { compress, decompress } from "../wire/compression.ts";
import {
  createFrame,
  DEFAULT_MAX_FRAME_SIZE,
  encodeFrame,
  type Frame,
  FrameDecoder,
  isCompressed,
} from "../wire/frame.ts";
import { decodePayload } from "../wire/opcodes.ts";

/** Largest plaintext of one Noise transport message (65535 minus the 16-byte tag). */
const MAX_PLAINTEXT = 65535 - 16;

/** Time a peer has to answer a request, in ms (`PeerConnectionOptions.requestTimeout`). */
export const DEFAULT_REQUEST_TIMEOUT = 10_000;

/** Batches of frames handed to the secure channel and not yet written, at most. */
const WRITES_IN_FLIGHT = 2;

/** Bytes of frames one batch takes at most (16 Noise messages). */
const BATCH_BYTES = 16 * MAX_PLAINTEXT;

/** Packing buffers (of one Noise message each) kept for reuse while the writer is busy. */
const PACK_POOL_SIZE = 32;

/** Most bytes of a PING's data that are echoed. */
const PING_ECHO_LIMIT = 64;

/**
 * What to do when the send buffer is full.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import {
 *   createNode,
 *   MemoryNetwork,
 *   SendBufferFullError,
 *   type SendBufferPolicy,
 * } from "@carrier/p2p";
 * const sendBufferPolicy: SendBufferPolicy = "error"; // fail at once rather than wait for room
 * await using net = new MemoryNetwork();
 * await using a = await createNode({ transport: net.transport(), listen: ["mem:0"] });
 * const connection = { maxSendBuffer: 64, sendBufferPolicy };
 * await using b = await createNode({ transport: net.transport(), connection });
 * const peer = await b.connect(a.peerAddresses[0]);
 * const first = peer.send(1000, new Uint8Array(100)); // an empty buffer takes any frame
 * await assert.rejects(peer.send(1000, new Uint8Array(100)), SendBufferFullError);
 * await first;
 * ```
 */
export type SendBufferPolicy = "wait" | "error";

/** The defaults of a connection's memory limits (see {@linkcode PeerConnectionOptions}). */
export const PEER_CONNECTION_LIMITS = {
  maxSendBuffer: 4 * 1024 * 1024,
  maxPendingRequests: 1024,
  maxInboundRequests: 32,
  /** Bytes handed to the channel beyond the send buffer: batches in flight, plaintext and ciphertext. */
  writesInFlight: WRITES_IN_FLIGHT * BATCH_BYTES * 2,
} as const;

/**
 * Options of a {@linkcode PeerConnection}. Every limit has a default.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import {
 *   createNode,
 *   MemoryNetwork,
 *   type PeerConnectionOptions,
 *   SendBufferFullError,
 * } from "@carrier/p2p";
 * const connection: PeerConnectionOptions = { maxPendingRequests: 1, requestTimeout: 5_000 };
 * await using net = new MemoryNetwork();
 * await using a = await createNode({ transport: net.transport(), listen: ["mem:0"] });
 * await using b = await createNode({ transport: net.transport(), connection });
 * const peer = await b.connect(a.peerAddresses[0]);
 * const first = peer.ping();
 * const second = peer.ping(); // one request at a time: this one waits for the first
 * const refused = peer.ping({ sendBufferPolicy: "error" }); // or fails at once
 * await assert.rejects(refused, SendBufferFullError);
 * await Promise.all([first, second]);
 * ```
 */
export interface PeerConnectionOptions {
  /** Largest decompressed payload accepted. @default {the maxFrameSize this side announced} */
  maxDecompressedSize?: number;
  /** Bytes of encoded frames that may wait to be written. @default {4 MiB} */
  maxSendBuffer?: number;
  /** Whether a sender waits for room in a full send buffer or gets SendBufferFullError. @default {"wait"} */
  sendBufferPolicy?: SendBufferPolicy;
  /** Time for a request's ACK or NACK, in ms. @default {10_000} */
  requestTimeout?: number;
  /**
   * Requests awaiting a reply at once. A further request waits for one to
   * settle (policy "wait") or gets SendBufferFullError (policy "error").
   * @default {1024}
   */
  maxPendingRequests?: number;
  /**
   * Frames from the peer whose `onFrame` handler is still running, at most.
   * At that many, and while a reply of this side waits for send-buffer room
   * (a peer that does not read its replies), the connection stops reading
   * from the peer until the work drains: what a peer can make this side
   * hold is bounded by `maxSendBuffer` plus this many replies.
   * @default {32}
   */
  maxInboundRequests?: number;
  /** Idle time after which a KEEPALIVE is sent, in ms. @default {15_000} */
  keepaliveInterval?: number;
  /** Silence after which the peer is considered dead, in ms. @default {45_000} */
  deadPeerTimeout?: number;
  /** Time one write may stay stuck (a peer that does not read), in ms. @default {30_000} */
  writeTimeout?: number;
  /** Payloads shorter than this are never compressed. @default {512} */
  compressionThreshold?: number;
  /** Source of time. @default {systemClock} */
  clock?: Clock;
  /**
   * Receives every frame that is not ACK, NACK, PING, KEEPALIVE,
   * SET_CONNECTION_OPT or DISCONNECT, payload decompressed. A request
   * (nonzero id) must be answered with {@linkcode PeerConnection.ack} or
   * {@linkcode PeerConnection.nack}; when there is no handler it gets NACK
   * UNKNOWN_OPCODE. A handler that throws makes the request a NACK INTERNAL.
   */
  onFrame?: (frame: Frame, connection: PeerConnection) => void | Promise<void>;
  /**
   * Whether an opcode is one-way: a frame of it is never answered, even a
   * NACK for a payload that does not decompress, whatever its id.
   * (ACK and NACK are replies, never answered.)
   * @default {SPEAK and DISCONNECT}
   */
  isOneWay?: (opcode: number) => boolean;
}

/**
 * Options of a single send or request.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import {
 *   createNode,
 *   MemoryNetwork,
 *   type MessageEventDetail,
 *   type SendOptions,
 * } from "@carrier/p2p";
 * await using net = new MemoryNetwork();
 * await using a = await createNode({ transport: net.transport(), listen: ["mem:0"] });
 * await using b = await createNode({ transport: net.transport() });
 * const received = Promise.withResolvers<MessageEventDetail>();
 * a.addEventListener("message", (e) => received.resolve(e.detail));
 * const options: SendOptions = { sendBufferPolicy: "error", signal: AbortSignal.timeout(5_000) };
 * await (await b.connect(a.peerAddresses[0])).send(1000, new Uint8Array([7]), options);
 * assert.deepEqual((await received.promise).body, new Uint8Array([7]));
 * ```
 */
export interface SendOptions {
  /** Cancels waiting for room or for the reply. */
  signal?: AbortSignal;
  /** Overrides the connection's send buffer policy for this call. */
  sendBufferPolicy?: SendBufferPolicy;
}

/**
 * Options of {@linkcode PeerConnection.request}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createNode, MemoryNetwork, type RequestOptions } from "@carrier/p2p";
 * await using net = new MemoryNetwork();
 * await using a = await createNode({ transport: net.transport(), listen: ["mem:0"] });
 * await using b = await createNode({ transport: net.transport() });
 * await b.connect(a.peerAddresses[0]);
 * const options: RequestOptions = { timeout: 2_000 };
 * assert((await b.ping(a.address, options)) >= 0);
 * const cancelled: RequestOptions = { signal: AbortSignal.abort(new Error("no")) };
 * await assert.rejects(b.ping(a.address, cancelled), { message: "no" });
 * ```
 */
export interface RequestOptions extends SendOptions {
  /** Time for the reply, in ms. @default {the connection's requestTimeout} */
  timeout?: number;
}

/**
 * Why and by whom a connection closed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type CloseInfo, createNode, DisconnectReason, MemoryNetwork } from "@carrier/p2p";
 * await using net = new MemoryNetwork();
 * await using a = await createNode({ transport: net.transport(), listen: ["mem:0"] });
 * await using b = await createNode({ transport: net.transport() });
 * const peer = await b.connect(a.peerAddresses[0]);
 * const info: CloseInfo = await peer.close(DisconnectReason.SHUTDOWN, "bye");
 * assert.equal(info.reason, DisconnectReason.SHUTDOWN);
 * assert(!info.remote && peer.isClosed);
 * ```
 */
export interface CloseInfo {
  /** The reason sent or received in DISCONNECT, or the local reason. */
  reason: DisconnectReason;
  /** True if the peer closed (DISCONNECT received or the stream ended). */
  remote: boolean;
  /** The error that closed it, if one did. */
  error?: Error;
}

/**
 * Counters of one connection.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type ConnectionCounters, createNode, MemoryNetwork } from "@carrier/p2p";
 * await using net = new MemoryNetwork();
 * await using a = await createNode({ transport: net.transport(), listen: ["mem:0"] });
 * await using b = await createNode({ transport: net.transport() });
 * const peer = await b.connect(a.peerAddresses[0]);
 * await peer.ping();
 * const counters: ConnectionCounters = peer.counters;
 * assert(counters.framesSent >= 1 && counters.framesReceived >= 1 && counters.drops === 0);
 * ```
 */
export interface ConnectionCounters {
  /** Bytes of frames written (before encryption). */
  bytesSent: number;
  /** Bytes of frames received (after decryption). */
  bytesReceived: number;
  /** Frames written. */
  framesSent: number;
  /** Frames received. */
  framesReceived: number;
  /** Frames dropped: unmatched replies, undecodable payloads, refused by backpressure. */
  drops: number;
  /** Smoothed round-trip time of PING and KEEPALIVE, in ms (0 until measured). */
  rtt: number;
}

interface Pending {
  opcode: number;
  /** Clock time at which the request times out. */
  deadline: number;
  /** Its timeout, in ms, for the error message. */
  timeout: number;
  resolve(data: Uint8Array): void;
  reject(err: Error): void;
}

/**
 * The deterministic compression choice: the initiator's preference when both
 * sides decode it, else the responder's, else none.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { chooseCompression, Compression } from "@carrier/p2p";
 * const { GZIP, SNAPPY } = Compression;
 * const initiator = { preferred: SNAPPY, decodes: [SNAPPY, GZIP] };
 * const responder = { preferred: GZIP, decodes: [GZIP] };
 * assert.equal(chooseCompression(initiator, responder), GZIP); // both decode only GZIP
 * assert.equal(chooseCompression(initiator, { decodes: [] }), undefined);
 * ```
 */
export function chooseCompression(
  initiator: { preferred?: Compression; decodes: readonly Compression[] },
  responder: { preferred?: Compression; decodes: readonly Compression[] },
): Compression | undefined {
  for (const preferred of [initiator.preferred, responder.preferred]) {
    if (
      preferred !== undefined && initiator.decodes.includes(preferred) &&
      responder.decodes.includes(preferred)
    ) return preferred;
  }
  return undefined;
}

/**
 * A connection to one authenticated peer.
 *
 * @example
 * ```ts ignore
 * import { PeerConnection, secureOutbound, TcpTransport } from "@carrier/p2p";
 * const stream = await new TcpTransport().dial("127.0.0.1:4000");
 * const channel = await secureOutbound(stream, { identity });
 * const peer = new PeerConnection(channel);
 * console.log(`rtt ${await peer.ping()} ms`);
 * await peer.close();
 * ```
 */
export class PeerConnection implements AsyncDisposable {
  readonly #channel: SecureChannel;
  readonly #initiator: boolean;
  readonly #clock: Clock;
  readonly #onFrame: PeerConnectionOptions["onFrame"];
  readonly #decoder: FrameDecoder;
  readonly #maxDecompressed: number;
  readonly #maxSendBuffer: number;
  readonly #policy: SendBufferPolicy;
  readonly #requestTimeout: number;
  readonly #maxPending: number;
  readonly #maxInbound: number;
  /** Frames whose `onFrame` handler is still running. */
  #handling = 0;
  /** Replies (ACK, NACK) waiting for send-buffer room. */
  #repliesWaiting = 0;
  /** Wakes the read loop paused by backpressure. */
  #resumeRead: (() => void) | undefined;
  /** Requests waiting for a pending-request slot (policy "wait"). */
  #slotWaiters: (() => void)[] = [];
  /** Clock time of the last frame that was not KEEPALIVE traffic. */
  #lastActive: number;
  readonly #keepaliveInterval: number;
  readonly #isOneWay: (opcode: number) => boolean;
  readonly #deadPeerTimeout: number;
  readonly #writeTimeout: number;
  readonly #threshold: number;
  readonly #remoteMaxFrame: number;

  // Options: what each side decodes and prefers.
  readonly #localDecodes: Compression[];
  #localPreferred: Compression | undefined;
  readonly #remoteDecodes: Compression[];
  #remotePreferred: Compression | undefined;
  #compression: Compression | undefined;

  // Send side.
  #queue: Uint8Array[] = [];
  #queuedBytes = 0;
  #writing = false;
  #roomWaiters: (() => void)[] = [];
  #writeTimer: TimerHandle | undefined;
  /** Clock time since which the oldest write in flight has waited; `undefined` when none is. */
  #writeWaitingSince: number | undefined;
  /** Buffers for packing frames into Noise messages, reused while the writer is busy. */
  #packPool: Uint8Array[] = [];

  // Requests.
  #nextId = 1;
  #pending = new Map<number, Pending>();
  #requestTimer: TimerHandle | undefined;
  /** The deadline the request timer is armed for (Infinity: not armed). */
  #requestTimerAt = Infinity;

  // Liveness.
  #lastReceived: number;
  #keepaliveTimer: TimerHandle | undefined;
  #keepaliveInFlight = false;

  #counters: ConnectionCounters = {
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
  #readLoop: Promise<void>;

  /** Starts the connection's loops over an established channel. */
  constructor(channel: SecureChannel, options: PeerConnectionOptions = {}) {
    this.#channel = channel;
    this.#initiator = channel.initiator;
    this.#clock = options.clock ?? systemClock;
    this.#onFrame = options.onFrame;
    this.#isOneWay = options.isOneWay ??
      ((opcode) => opcode === Opcode.SPEAK || opcode === Opcode.DISCONNECT);
    // What each side decodes, prefers and accepts is what it announced in the handshake.
    const maxFrameSize = channel.local.maxFrameSize || DEFAULT_MAX_FRAME_SIZE;
    this.#decoder = new FrameDecoder({ maxFrameSize });
    this.#maxDecompressed = options.maxDecompressedSize ?? maxFrameSize;
    this.#maxSendBuffer = options.maxSendBuffer ?? PEER_CONNECTION_LIMITS.maxSendBuffer;
    this.#policy = options.sendBufferPolicy ?? "wait";
    this.#requestTimeout = options.requestTimeout ?? DEFAULT_REQUEST_TIMEOUT;
    this.#maxPending = options.maxPendingRequests ?? PEER_CONNECTION_LIMITS.maxPendingRequests;
    this.#maxInbound = options.maxInboundRequests ?? PEER_CONNECTION_LIMITS.maxInboundRequests;
    this.#keepaliveInterval = options.keepaliveInterval ?? 15_000;
    this.#deadPeerTimeout = options.deadPeerTimeout ?? 45_000;
    this.#writeTimeout = options.writeTimeout ?? 30_000;
    this.#threshold = options.compressionThreshold ?? 512;
    this.#remoteMaxFrame = channel.remote.maxFrameSize || DEFAULT_MAX_FRAME_SIZE;
    this.#localDecodes = [...channel.local.compressions] as Compression[];
    this.#localPreferred = channel.local.preferredCompression as Compression | undefined;
    this.#remoteDecodes = [...channel.remote.compressions] as Compression[];
    this.#remotePreferred = channel.remote.preferredCompression as Compression | undefined;
    this.#recomputeCompression();
    this.#lastReceived = this.#lastActive = this.#clock.now();
    this.#closed = new Promise((resolve) => (this.#resolveClosed = resolve));
    this.#scheduleKeepalive();
    this.#readLoop = this.#read();
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
    return this.#compression;
  }

  /** A snapshot of this connection's counters. */
  get counters(): ConnectionCounters {
    return { ...this.#counters };
  }

  /** Bytes of encoded frames waiting to be written. */
  get bufferedBytes(): number {
    return this.#queuedBytes;
  }

  /**
   * Clock time of the last frame received that was not KEEPALIVE traffic (a
   * KEEPALIVE or the reply to one): when the peer last did something.
   */
  get lastActive(): number {
    return this.#lastActive;
  }

  /** Whether requests of this side await replies (the connection is in use). */
  get busy(): boolean {
    return this.#pending.size > 0;
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
    while (this.#pending.size >= this.#maxPending) {
      if ((options.sendBufferPolicy ?? this.#policy) === "error") {
        this.#counters.drops++;
        throw new SendBufferFullError(
          `Cannot send request to ${this.address}: ${this.#pending.size} requests already await replies (maxPendingRequests ${this.#maxPending})`,
        );
      }
      await this.#wait(this.#slotWaiters, options.signal);
      this.#assertOpen();
    }
    const id = this.#allocateId();
    const timeout = options.timeout ?? this.#requestTimeout;
    const deadline = this.#clock.now() + timeout;
    const signal = options.signal;
    const reply = new Promise<Uint8Array>((resolve, reject) => {
      const onAbort = () => settle(() => reject(signal!.reason));
      const settle = (fn: () => void) => {
        if (!this.#pending.delete(id)) return;
        signal?.removeEventListener("abort", onAbort);
        this.#slotWaiters.shift()?.();
        fn();
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#pending.set(id, {
        opcode,
        deadline,
        timeout,
        resolve: (data) => settle(() => resolve(data)),
        reject: (err) => settle(() => reject(err)),
      });
    });
    this.#watchDeadline(deadline);
    try {
      await this.#sendFrame(id, opcode, payload, options);
    } catch (err) {
      this.#pending.get(id)?.reject(err as Error);
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
   * @throws {RangeError} if `option` is not one of the three or `setting` not a `Compression`.
   * @throws {NackError} (reason UNSUPPORTED) when the peer does not support it.
   */
  async setOption(
    option: ConnectionOption,
    setting: number,
    options: RequestOptions = {},
  ): Promise<void> {
    if (!(option in ConnectionOption) || !(setting in Compression)) {
      throw new RangeError(
        `Cannot set connection option ${option} to ${setting}: not a ConnectionOption and a Compression`,
      );
    }
    const payload = toBinary(
      SetConnectionOptSchema,
      create(SetConnectionOptSchema, { option, setting }),
    );
    await this.request(Opcode.SET_CONNECTION_OPT, payload, options);
    const state = { preferred: this.#localPreferred, decodes: this.#localDecodes };
    applyCompressionOption(state, option, setting as Compression);
    this.#localPreferred = state.preferred;
    this.#recomputeCompression();
  }

  /** What this side decodes and prefers, as the peer was told (handshake and options). */
  get compressionSettings(): { decodes: readonly Compression[]; preferred?: Compression } {
    return { decodes: [...this.#localDecodes], preferred: this.#localPreferred };
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
        await this.#flushed();
      } catch {
        // The peer may be gone already; closing goes on.
      }
      this.#finish({ reason, remote: false });
    }
    await this.#readLoop;
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
    if (this.#compression !== undefined && payload.length >= this.#threshold) {
      const packed = compress(this.#compression, payload);
      if (packed.length < payload.length) {
        payload = packed;
        compression = this.#compression;
      }
    }
    const bytes = encodeFrame(createFrame({ id, opcode, payload, compression }), {
      maxFrameSize: this.#remoteMaxFrame,
    });
    const policy = options.sendBufferPolicy ?? this.#policy;
    while (this.#queuedBytes > 0 && this.#queuedBytes + bytes.length > this.#maxSendBuffer) {
      if (policy === "error") {
        this.#counters.drops++;
        throw new SendBufferFullError(
          `Cannot send ${
            opcodeName(opcode)
          } to ${this.address}: send buffer full (${this.#queuedBytes} + ${bytes.length} bytes > maxSendBuffer ${this.#maxSendBuffer})`,
        );
      }
      // A reply that must wait pauses reading from the peer (see #read).
      if (reply) this.#repliesWaiting++;
      try {
        await this.#waitForRoom(options.signal);
      } finally {
        if (reply && --this.#repliesWaiting === 0) this.#wakeReader();
      }
      this.#assertOpen();
    }
    this.#enqueue(bytes, false);
  }

  #enqueue(bytes: Uint8Array, force: boolean): void {
    if (!force) this.#assertOpen();
    this.#queue.push(bytes);
    this.#queuedBytes += bytes.length;
    this.#counters.framesSent++;
    this.#counters.bytesSent += bytes.length;
    if (!this.#writing) {
      this.#writing = true;
      // Let frames sent in the same turn join this write.
      queueMicrotask(() => this.#write());
    }
  }

  #waitForRoom(signal?: AbortSignal): Promise<void> {
    return this.#wait(this.#roomWaiters, signal);
  }

  /** Waits in `waiters` (FIFO) until woken or `signal` aborts. */
  #wait(waiters: (() => void)[], signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        const i = waiters.indexOf(wake);
        if (i >= 0) waiters.splice(i, 1);
        reject(signal!.reason);
      };
      const wake = () => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      waiters.push(wake);
    });
  }

  /**
   * Drains the queue into the channel. Up to {@linkcode WRITES_IN_FLIGHT}
   * batches are handed to the channel at once, so the next batch is being
   * encrypted while the previous one is written. A write makes no progress
   * for `writeTimeout` (a peer that does not read) closes the connection.
   */
  async #write(): Promise<void> {
    const inFlight: Promise<void>[] = [];
    try {
      while (this.#closeInfo === undefined) {
        if (this.#queue.length > 0 && inFlight.length < WRITES_IN_FLIGHT) {
          const packed: Uint8Array[] = [];
          const writing = this.#channel.writeMany(this.#takePlaintexts(packed));
          // Once written, the packing buffers are free again.
          writing.then(() => this.#recyclePacked(packed), noop);
          inFlight.push(writing);
          if (inFlight.length === 1) this.#watchWrites();
          this.#wakeRoomWaiters();
          continue;
        }
        if (inFlight.length === 0) break;
        await inFlight.shift();
        // Progress: the next write's wait starts now.
        this.#writeWaitingSince = inFlight.length > 0 ? this.#clock.now() : undefined;
        this.#wakeRoomWaiters();
      }
      // Closed meanwhile: let the writes handed over settle.
      await Promise.all(inFlight);
      // Idle: an idle connection keeps no packing buffers.
      this.#packPool.length = 0;
    } catch (err) {
      this.#fail(err as Error, DisconnectReason.PROTOCOL_ERROR);
    } finally {
      this.#writeWaitingSince = undefined;
      this.#writing = false;
      this.#wakeRoomWaiters();
      if (this.#queue.length > 0 && this.#closeInfo === undefined) {
        this.#writing = true;
        queueMicrotask(() => this.#write());
      }
    }
  }

  /**
   * Notes that a write is in flight, and makes sure the write timer runs.
   * The timer is not reset per write (a timer costs more than a write of a
   * small frame): when it fires it checks how long the oldest write has been
   * waiting, and re-arms for the rest.
   */
  #watchWrites(): void {
    this.#writeWaitingSince = this.#clock.now();
    if (this.#writeTimer === undefined && this.#closeInfo === undefined) {
      this.#armWriteTimer(this.#writeTimeout);
    }
  }

  #armWriteTimer(ms: number): void {
    this.#writeTimer = this.#clock.setTimeout(() => {
      this.#writeTimer = undefined;
      const since = this.#writeWaitingSince;
      if (since === undefined || this.#closeInfo !== undefined) return; // idle
      const waited = this.#clock.now() - since;
      if (waited < this.#writeTimeout) {
        this.#armWriteTimer(this.#writeTimeout - waited);
        return;
      }
      this.#fail(
        new TimeoutError(
          `Write to ${this.address} stuck for ${this.#writeTimeout} ms: the peer does not read`,
        ),
        DisconnectReason.SEND_BUFFER_FULL,
      );
    }, ms);
  }

  /** Takes queued frames, packed into Noise-message-sized plaintexts (at most ~1 MiB per write). */
  #takePlaintexts(packed: Uint8Array[]): Uint8Array[] {
    const out: Uint8Array[] = [];
    let budget = BATCH_BYTES;
    let current: Uint8Array | undefined;
    let used = 0;
    while (this.#queue.length > 0 && budget > 0) {
      const frame = this.#queue.shift()!;
      this.#queuedBytes -= frame.length;
      budget -= frame.length;
      let offset = 0;
      while (offset < frame.length) {
        const remaining = frame.length - offset;
        if (!current && remaining >= MAX_PLAINTEXT) {
          out.push(frame.subarray(offset, offset + MAX_PLAINTEXT));
          offset += MAX_PLAINTEXT;
          continue;
        }
        if (!current && offset === 0 && this.#queue.length === 0) {
          out.push(frame); // a lone small frame: no copy
          offset = frame.length;
          continue;
        }
        if (current === undefined) {
          // Big enough for what is left to take (small bursts get small buffers).
          const later = budget > 0 ? this.#queuedBytes : 0; // frames this batch may still take
          const size = Math.min(MAX_PLAINTEXT, remaining + later);
          if (size < MAX_PLAINTEXT) current = new Uint8Array(size);
          else {
            current = this.#packPool.pop() ?? new Uint8Array(MAX_PLAINTEXT);
            packed.push(current);
          }
        }
        const take = Math.min(remaining, MAX_PLAINTEXT - used);
        current.set(frame.subarray(offset, offset + take), used);
        used += take;
        offset += take;
        if (used === MAX_PLAINTEXT) {
          out.push(current);
          current = undefined;
          used = 0;
        }
      }
    }
    if (current) out.push(current.subarray(0, used));
    return out;
  }

  #recyclePacked(packed: Uint8Array[]): void {
    for (const buffer of packed) {
      if (this.#packPool.length >= PACK_POOL_SIZE) return;
      this.#packPool.push(buffer);
    }
  }

  #wakeRoomWaiters(): void {
    while (this.#roomWaiters.length > 0 && this.#queuedBytes < this.#maxSendBuffer) {
      this.#roomWaiters.shift()!();
    }
  }

  async #flushed(): Promise<void> {
    while ((this.#writing || this.#queue.length > 0) && this.#closeInfo === undefined) {
      await this.#waitForRoom();
    }
  }

  // ---- receiving ----

  async #read(): Promise<void> {
    try {
      for (;;) {
        const plaintext = await this.#channel.read();
        if (plaintext === null) {
          this.#decoder.end();
          this.#finish({
            reason: DisconnectReason.UNSPECIFIED,
            remote: true,
            error: new ConnectionClosedError(`Connection to ${this.address} closed by the peer`),
          });
          return;
        }
        if (this.#closeInfo) return;
        this.#lastReceived = this.#clock.now();
        this.#counters.bytesReceived += plaintext.length;
        for (const frame of this.#decoder.push(plaintext)) {
          // Backpressure: no new work from a peer while this side's work
          // for it is at its bound or its replies cannot be sent.
          while (this.#mustPause()) {
            await new Promise<void>((resolve) => (this.#resumeRead = resolve));
            if (this.#closeInfo) return;
          }
          this.#counters.framesReceived++;
          this.#dispatch(frame);
          if (this.#closeInfo) return;
        }
      }
    } catch (err) {
      if (!this.#closeInfo) this.#fail(err as Error, DisconnectReason.PROTOCOL_ERROR);
    }
  }

  #mustPause(): boolean {
    return this.#repliesWaiting > 0 || this.#handling >= this.#maxInbound;
  }

  #wakeReader(): void {
    if (this.#resumeRead === undefined || this.#mustPause()) return;
    const resume = this.#resumeRead;
    this.#resumeRead = undefined;
    resume();
  }

  #dispatch(frame: Frame): void {
    if (frame.opcode !== Opcode.KEEPALIVE) {
      const keepaliveReply = (frame.opcode === Opcode.ACK || frame.opcode === Opcode.NACK) &&
        this.#pending.get(frame.id)?.opcode === Opcode.KEEPALIVE;
      if (!keepaliveReply) this.#lastActive = this.#lastReceived;
    }
    let payload: Uint8Array;
    try {
      payload = this.#openPayload(frame);
    } catch (err) {
      this.#counters.drops++;
      const isReply = frame.opcode === Opcode.ACK || frame.opcode === Opcode.NACK;
      if (isReply) this.#pending.get(frame.id)?.reject(err as Error);
      else if (!this.#isOneWay(frame.opcode)) {
        const reason = err instanceof DecompressionLimitError
          ? NackReason.TOO_LARGE
          : NackReason.MALFORMED;
        this.#reply(this.nack(frame, reason, (err as Error).message));
      }
      return;
    }
    const opened = payload === frame.payload ? frame : { ...frame, payload, flags: 0 };
    switch (frame.opcode) {
      case Opcode.ACK:
        return this.#onAck(opened);
      case Opcode.NACK:
        return this.#onNack(opened);
      case Opcode.DISCONNECT:
        return this.#onDisconnect(opened);
      case Opcode.PING:
        return this.#onPing(opened);
      case Opcode.KEEPALIVE:
        return this.#onKeepalive(opened);
      case Opcode.SET_CONNECTION_OPT:
        return this.#onSetOption(opened);
    }
    if (!this.#onFrame) {
      if (!this.#isOneWay(frame.opcode)) {
        this.#reply(
          this.nack(opened, NackReason.UNKNOWN_OPCODE, `Unknown opcode ${frame.opcode}`),
        );
      } else this.#counters.drops++;
      return;
    }
    try {
      const result = this.#onFrame(opened, this);
      if (result instanceof Promise) {
        this.#handling++;
        result.catch((err) => this.#handlerFailed(opened, err)).finally(() => {
          this.#handling--;
          this.#wakeReader();
        });
      }
    } catch (err) {
      this.#handlerFailed(opened, err);
    }
  }

  #handlerFailed(frame: Frame, err: unknown): void {
    if (frame.id !== 0 && !this.#closeInfo) {
      this.#reply(this.nack(frame, NackReason.INTERNAL, (err as Error)?.message ?? String(err)));
    }
  }

  /** Sends a reply without letting a failure (closed, full) escape. */
  #reply(sending: Promise<void>): void {
    sending.catch(() => this.#counters.drops++);
  }

  #openPayload(frame: Frame): Uint8Array {
    if (!isCompressed(frame)) return frame.payload;
    if (!this.#localDecodes.includes(frame.compression)) {
      throw new PayloadDecodeError(
        `Frame compressed with setting ${frame.compression}, which this side did not announce`,
      );
    }
    return decompress(frame.compression, frame.payload, { maxOutputSize: this.#maxDecompressed });
  }

  #onAck(frame: Frame): void {
    const pending = this.#pending.get(frame.id);
    if (!pending) {
      this.#counters.drops++;
      return;
    }
    try {
      const ack = decodePayload(AckSchema, frame.payload);
      pending.resolve(ack.data);
    } catch (err) {
      pending.reject(err as Error);
    }
  }

  #onNack(frame: Frame): void {
    const pending = this.#pending.get(frame.id);
    if (!pending) {
      this.#counters.drops++;
      return;
    }
    try {
      const nack = decodePayload(NackSchema, frame.payload);
      pending.reject(
        new NackError(
          `${opcodeName(pending.opcode)} to ${this.address} got NACK ${
            NackReason[nack.reason] ?? nack.reason
          }${nack.message ? `: ${nack.message}` : ""}`,
          { opcode: pending.opcode, reason: nack.reason, data: nack.data },
        ),
      );
    } catch (err) {
      pending.reject(err as Error);
    }
  }

  #onKeepalive(frame: Frame): void {
    if (frame.id === 0) return;
    try {
      decodePayload(KeepaliveSchema, frame.payload);
      this.#reply(this.ack(frame));
    } catch (err) {
      this.#reply(this.nack(frame, NackReason.MALFORMED, (err as Error).message));
    }
  }

  #onPing(frame: Frame): void {
    if (frame.id === 0) return;
    try {
      const ping = decodePayload(PingSchema, frame.payload);
      const echo = toBinary(
        PingSchema,
        create(PingSchema, { data: ping.data.subarray(0, PING_ECHO_LIMIT) }),
      );
      this.#reply(this.ack(frame, echo));
    } catch (err) {
      this.#reply(this.nack(frame, NackReason.MALFORMED, (err as Error).message));
    }
  }

  #onSetOption(frame: Frame): void {
    // A SET_CONNECTION_OPT with id 0 changes nothing: its sender could not
    // know when the change applies.
    if (frame.id === 0) return;
    let option: number, setting: number;
    try {
      ({ option, setting } = decodePayload(SetConnectionOptSchema, frame.payload));
    } catch (err) {
      this.#reply(this.nack(frame, NackReason.MALFORMED, (err as Error).message));
      return;
    }
    // The seed's reply: ACK/NACK SET_CONNECTION_OPT <option> <setting>.
    const echo = toBinary(
      SetConnectionOptSchema,
      create(SetConnectionOptSchema, { option, setting }),
    );
    const refusal = !(option in ConnectionOption)
      ? `connection option ${option} is not supported`
      : !(setting in Compression)
      ? `compression setting ${setting} is not a Compression`
      : option !== ConnectionOption.DISABLE_COMPRESSION &&
          !this.#localDecodes.includes(setting as Compression)
      ? `compression setting ${setting} is not supported`
      : undefined;
    if (refusal !== undefined) {
      this.#reply(this.nack(frame, NackReason.UNSUPPORTED, refusal, echo));
      return;
    }
    const remote = { preferred: this.#remotePreferred, decodes: this.#remoteDecodes };
    applyCompressionOption(remote, option as ConnectionOption, setting as Compression);
    this.#remotePreferred = remote.preferred;
    // Switch first, then answer: no frame after the ACK uses a setting the
    // peer disabled.
    this.#recomputeCompression();
    this.#reply(this.ack(frame, echo));
  }

  #recomputeCompression(): void {
    const local = { preferred: this.#localPreferred, decodes: this.#localDecodes };
    const remote = { preferred: this.#remotePreferred, decodes: this.#remoteDecodes };
    const choice = this.#initiator
      ? chooseCompression(local, remote)
      : chooseCompression(remote, local);
    // bz2 and lzma cost 15–40 ms of CPU per 60 KB to compress: a side sends
    // them only when they are its own preference, or a peer preferring lzma
    // could make every reply cost that (found by the fuzz campaign).
    const costly = choice === Compression.BZ2 || choice === Compression.LZMA;
    this.#compression = costly && choice !== this.#localPreferred ? undefined : choice;
  }

  #onDisconnect(frame: Frame): void {
    let disconnect: Disconnect | undefined;
    try {
      disconnect = decodePayload(DisconnectSchema, frame.payload);
    } catch {
      // A malformed DISCONNECT still disconnects.
    }
    const reason = disconnect?.reason ?? DisconnectReason.UNSPECIFIED;
    this.#finish({
      reason,
      remote: true,
      error: new ConnectionClosedError(
        `${this.address} disconnected: ${DisconnectReason[reason] ?? reason}${
          disconnect?.message ? ` (${disconnect.message})` : ""
        }`,
      ),
    });
  }

  // ---- liveness ----

  #scheduleKeepalive(): void {
    const check = Math.min(this.#keepaliveInterval, this.#deadPeerTimeout);
    this.#keepaliveTimer = this.#clock.setTimeout(() => this.#checkLiveness(), check);
  }

  #checkLiveness(): void {
    if (this.#closeInfo) return;
    const silent = this.#clock.now() - this.#lastReceived;
    if (silent >= this.#deadPeerTimeout) {
      this.#fail(
        new TimeoutError(
          `${this.address} silent for ${silent} ms (deadPeerTimeout ${this.#deadPeerTimeout} ms)`,
        ),
        DisconnectReason.TIMEOUT,
      );
      return;
    }
    if (silent >= this.#keepaliveInterval && !this.#keepaliveInFlight) {
      this.#keepaliveInFlight = true;
      const started = this.#clock.now();
      const payload = toBinary(KeepaliveSchema, create(KeepaliveSchema));
      this.request(Opcode.KEEPALIVE, payload, {
        timeout: this.#deadPeerTimeout,
        sendBufferPolicy: "error",
      }).then(
        () => this.#observeRtt(this.#clock.now() - started),
        () => {},
      ).finally(() => (this.#keepaliveInFlight = false));
    }
    this.#scheduleKeepalive();
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
    // Tell the peer why, if the channel still takes writes; don't wait for it.
    const payload = toBinary(
      DisconnectSchema,
      create(DisconnectSchema, { reason, message: error.message.slice(0, 200) }),
    );
    if (!(error instanceof TimeoutError)) {
      this.#channel.write(encodeFrame(createFrame({ opcode: Opcode.DISCONNECT, payload })))
        .catch(() => {});
    }
    this.#finish({ reason, remote: false, error });
  }

  #finish(info: CloseInfo): void {
    if (this.#closeInfo) return;
    this.#closeInfo = info;
    if (this.#keepaliveTimer !== undefined) this.#clock.clearTimeout(this.#keepaliveTimer);
    if (this.#writeTimer !== undefined) this.#clock.clearTimeout(this.#writeTimer);
    if (this.#requestTimer !== undefined) this.#clock.clearTimeout(this.#requestTimer);
    this.#writeTimer = this.#requestTimer = undefined;
    const closedError = new ConnectionClosedError(`Connection to ${this.address} closed`, {
      cause: info.error,
    });
    for (const pending of [...this.#pending.values()]) pending.reject(closedError);
    this.#queue = [];
    this.#queuedBytes = 0;
    for (const wake of this.#roomWaiters.splice(0)) wake();
    for (const wake of this.#slotWaiters.splice(0)) wake();
    const resume = this.#resumeRead;
    this.#resumeRead = undefined;
    resume?.();
    this.#channel.close();
    this.#resolveClosed(info);
  }

  /**
   * Makes sure the request timer fires by `deadline`. One timer serves every
   * pending request: it is armed for the earliest deadline, and a request
   * that settles leaves it alone (requests usually share one timeout, so
   * later ones never move it).
   */
  #watchDeadline(deadline: number): void {
    if (deadline >= this.#requestTimerAt || this.#closeInfo !== undefined) return;
    if (this.#requestTimer !== undefined) this.#clock.clearTimeout(this.#requestTimer);
    this.#requestTimerAt = deadline;
    this.#requestTimer = this.#clock.setTimeout(
      () => this.#expireRequests(),
      Math.max(0, deadline - this.#clock.now()),
    );
  }

  /** Times out the requests whose deadline passed and re-arms for the next one. */
  #expireRequests(): void {
    this.#requestTimer = undefined;
    this.#requestTimerAt = Infinity;
    const now = this.#clock.now();
    let next = Infinity;
    for (const pending of [...this.#pending.values()]) {
      if (pending.deadline <= now) {
        pending.reject(
          new TimeoutError(
            `Request ${
              opcodeName(pending.opcode)
            } to ${this.address} timed out after ${pending.timeout} ms`,
          ),
        );
      } else if (pending.deadline < next) next = pending.deadline;
    }
    if (next !== Infinity) this.#watchDeadline(next);
  }

  #allocateId(): number {
    for (;;) {
      const id = this.#nextId;
      this.#nextId = this.#nextId >= 0xffff_ffff ? 1 : this.#nextId + 1;
      if (!this.#pending.has(id)) return id;
    }
  }
}

const EMPTY = new Uint8Array(0);

function noop(): void {}

/**
 * `carrier.v1.Ack { opcode = 1; data = 2 }` in the proto3 wire format,
 * byte-identical to `toBinary(AckSchema, create(AckSchema, { opcode, data }))`
 * (fields in number order, zero values omitted). Written by hand because
 * every request's reply is one: the reflective encoder costs about 3 µs, a
 * tenth of a loopback round trip.
 */
function encodeAck(opcode: number, data: Uint8Array): Uint8Array {
  const size = (opcode !== 0 ? 1 + varintSize(opcode) : 0) +
    (data.length !== 0 ? 1 + varintSize(data.length) + data.length : 0);
  const out = new Uint8Array(size);
  let offset = 0;
  if (opcode !== 0) {
    out[offset++] = 0x08; // field 1, varint
    offset = writeVarint(out, offset, opcode);
  }
  if (data.length !== 0) {
    out[offset++] = 0x12; // field 2, length-delimited
    offset = writeVarint(out, offset, data.length);
    out.set(data, offset);
  }
  return out;
}

/** Bytes of `value` (a uint32) as a varint. */
function varintSize(value: number): number {
  let size = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 0x80);
    size++;
  }
  return size;
}

/** Writes `value` (a uint32) as a varint at `offset`; returns the offset after it. */
function writeVarint(out: Uint8Array, offset: number, value: number): number {
  while (value >= 0x80) {
    out[offset++] = (value & 0x7f) | 0x80;
    value = Math.floor(value / 0x80);
  }
  out[offset++] = value;
  return offset;
}

function opcodeName(opcode: number): string {
  return Opcode[opcode] ?? `opcode ${opcode}`;
}

/**
 * Applies a compression option to one side's state (what it decodes, what it
 * prefers), as its peer and then itself see it.
 */
function applyCompressionOption(
  state: { preferred: Compression | undefined; decodes: Compression[] },
  option: ConnectionOption,
  setting: Compression,
): void {
  const i = state.decodes.indexOf(setting);
  if (option === ConnectionOption.DISABLE_COMPRESSION) {
    if (i >= 0) state.decodes.splice(i, 1);
    if (state.preferred === setting) state.preferred = undefined;
    return;
  }
  if (i < 0) state.decodes.push(setting);
  if (option === ConnectionOption.PREFERRED_COMPRESSION) state.preferred = setting;
}
