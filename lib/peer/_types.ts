/**
 * The types of a {@linkcode PeerConnection}'s API: its options and those of
 * its calls, with their defaults (one named constant per default, for the
 * layers above to use instead of repeating the number), its counters and why
 * it closed.
 *
 * Private to `lib/peer/`; `connection.ts` re-exports every name.
 *
 * @module
 */

import type { Clock } from "../clock.ts";
import type { Frame } from "../wire/frame.ts";
import { BATCH_BYTES, WRITES_IN_FLIGHT } from "./_send_queue.ts";
import type { DisconnectReason } from "../../gen/carrier/v1/control_pb.ts";
import type { PeerConnection } from "./connection.ts";

/**
 * Default of {@linkcode PeerConnectionOptions.requestTimeout} and of a
 * request's `timeout`, in milliseconds.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DEFAULT_REQUEST_TIMEOUT, type PeerConnectionOptions } from "./connection.ts";
 * const patient: PeerConnectionOptions = { requestTimeout: 3 * DEFAULT_REQUEST_TIMEOUT };
 * assert.equal(patient.requestTimeout, 30_000);
 * ```
 */
export const DEFAULT_REQUEST_TIMEOUT = 10_000;

/**
 * Default of {@linkcode PeerConnectionOptions.keepaliveInterval}, in milliseconds.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DEFAULT_DEAD_PEER_TIMEOUT, DEFAULT_KEEPALIVE_INTERVAL } from "./connection.ts";
 * // A peer is declared dead only after several keepalives went unanswered.
 * assert.equal(DEFAULT_DEAD_PEER_TIMEOUT / DEFAULT_KEEPALIVE_INTERVAL, 3);
 * ```
 */
export const DEFAULT_KEEPALIVE_INTERVAL = 15_000;

/**
 * Default of {@linkcode PeerConnectionOptions.deadPeerTimeout}, in milliseconds.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DEFAULT_DEAD_PEER_TIMEOUT, type PeerConnectionOptions } from "./connection.ts";
 * const lenient: PeerConnectionOptions = { deadPeerTimeout: 2 * DEFAULT_DEAD_PEER_TIMEOUT };
 * assert.equal(lenient.deadPeerTimeout, 90_000);
 * ```
 */
export const DEFAULT_DEAD_PEER_TIMEOUT = 45_000;

/**
 * Default of {@linkcode PeerConnectionOptions.writeTimeout}, in milliseconds.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DEFAULT_WRITE_TIMEOUT, type PeerConnectionOptions } from "./connection.ts";
 * const strict: PeerConnectionOptions = { writeTimeout: DEFAULT_WRITE_TIMEOUT / 3 };
 * assert.equal(strict.writeTimeout, 10_000);
 * ```
 */
export const DEFAULT_WRITE_TIMEOUT = 30_000;

/**
 * Default of {@linkcode PeerConnectionOptions.compressionThreshold}, in bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DEFAULT_COMPRESSION_THRESHOLD, type PeerConnectionOptions } from "./connection.ts";
 * const eager: PeerConnectionOptions = { compressionThreshold: DEFAULT_COMPRESSION_THRESHOLD / 4 };
 * assert.equal(eager.compressionThreshold, 128);
 * ```
 */
export const DEFAULT_COMPRESSION_THRESHOLD = 512;

/**
 * Default of {@linkcode PeerConnectionOptions.sendBufferPolicy}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DEFAULT_SEND_BUFFER_POLICY } from "./connection.ts";
 * assert.equal(DEFAULT_SEND_BUFFER_POLICY, "wait"); // a full send buffer makes senders wait
 * ```
 */
export const DEFAULT_SEND_BUFFER_POLICY: SendBufferPolicy = "wait";

/**
 * What to do when the send buffer is full.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createNode, SendBufferFullError, type SendBufferPolicy } from "@carrier/p2p";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
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
 * import { createNode, type PeerConnectionOptions, SendBufferFullError } from "@carrier/p2p";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
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
  /** Whether a sender waits for room in a full send buffer or gets SendBufferFullError. @default {DEFAULT_SEND_BUFFER_POLICY} ("wait") */
  sendBufferPolicy?: SendBufferPolicy;
  /** Time for a request's ACK or NACK, in ms. @default {DEFAULT_REQUEST_TIMEOUT} (10 000) */
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
  /** Idle time after which a KEEPALIVE is sent, in ms. @default {DEFAULT_KEEPALIVE_INTERVAL} (15 000) */
  keepaliveInterval?: number;
  /** Silence after which the peer is considered dead, in ms. @default {DEFAULT_DEAD_PEER_TIMEOUT} (45 000) */
  deadPeerTimeout?: number;
  /** Time one write may stay stuck (a peer that does not read), in ms. @default {DEFAULT_WRITE_TIMEOUT} (30 000) */
  writeTimeout?: number;
  /** Payloads shorter than this are never compressed. @default {DEFAULT_COMPRESSION_THRESHOLD} (512) */
  compressionThreshold?: number;
  /** Source of time. @default {systemClock} */
  clock?: Clock;
  /**
   * Receives every frame that is not ACK, NACK, PING, KEEPALIVE,
   * SET_CONNECTION_OPT or DISCONNECT, payload decompressed. A request
   * (nonzero id) must be answered with {@linkcode PeerConnection.ack} or
   * {@linkcode PeerConnection.nack}. A handler that throws (or rejects) makes
   * the request a NACK INTERNAL.
   *
   * A handler that returns `false`, or a promise that resolves `false`, did
   * not handle the frame: the connection answers it as it answers every frame
   * when there is no handler. A request (nonzero id) gets NACK
   * `UNKNOWN_OPCODE` ("Unknown opcode N"); a frame of a one-way opcode (see
   * `isOneWay`) is dropped and counted in {@linkcode ConnectionCounters.drops};
   * any other frame (id 0) is ignored. Any other result means handled.
   *
   * @default {undefined} (every such frame is unhandled)
   */
  onFrame?: (
    frame: Frame,
    connection: PeerConnection,
  ) => void | boolean | Promise<void | boolean>;
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
 * import { createNode, type MessageEventDetail, type SendOptions } from "@carrier/p2p";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
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
 * import { createNode, type RequestOptions } from "@carrier/p2p";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
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
 * import { type CloseInfo, createNode, DisconnectReason } from "@carrier/p2p";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
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
 * import { type ConnectionCounters, createNode } from "@carrier/p2p";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
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
