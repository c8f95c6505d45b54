/**
 * The receive side of a connection: the read loop (with its backpressure),
 * the decompression of payloads, and the dispatch of every frame: ACK and
 * NACK to the request table, PING, KEEPALIVE, SET_CONNECTION_OPT and
 * DISCONNECT answered here, the rest to `onFrame`, and what that does not
 * handle answered as unknown.
 *
 * Private to `lib/peer/`.
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
import { NackReason, Opcode } from "../../gen/carrier/v1/frame_pb.ts";
import {
  type Compression,
  type ConnectionOption,
  SetConnectionOptSchema,
} from "../../gen/carrier/v1/options_pb.ts";
import type { Clock } from "../clock.ts";
import {
  ConnectionClosedError,
  DecompressionLimitError,
  PayloadDecodeError,
  RelayClosedError,
} from "../errors.ts";
import type { SecureChannel } from "../secure/channel.ts";
import { decompress } from "../wire/compression.ts";
import { DEFAULT_MAX_FRAME_SIZE, type Frame, FrameDecoder, isCompressed } from "../wire/frame.ts";
import { decodePayload } from "../wire/opcodes.ts";
import type { CompressionNegotiation } from "./_compression_negotiation.ts";
import type { RequestTable } from "./_request_table.ts";
import {
  type CloseInfo,
  type ConnectionCounters,
  PEER_CONNECTION_LIMITS,
  type PeerConnectionOptions,
} from "./_types.ts";
import type { PeerConnection } from "./connection.ts";

/** Most bytes of a PING's data that are echoed. */
const PING_ECHO_LIMIT = 64;

/** What the receiver needs of its connection. */
export interface ReceiverHost {
  /** The connection: what `onFrame` gets, and how replies are sent. */
  readonly connection: PeerConnection;
  readonly requests: RequestTable;
  readonly compression: CompressionNegotiation;
  /** The connection's counters, updated in place. */
  readonly counters: ConnectionCounters;
  /** Closes the connection (the peer ended it, or sent DISCONNECT). */
  finish(info: CloseInfo): void;
  /** Closes the connection with `error`, telling the peer `reason`. */
  fail(error: Error, reason: DisconnectReason): void;
}

/** Reads, decodes and dispatches the frames of one connection. */
export class Receiver {
  readonly #channel: SecureChannel;
  readonly #clock: Clock;
  readonly #host: ReceiverHost;
  readonly #connection: PeerConnection;
  readonly #requests: RequestTable;
  readonly #compression: CompressionNegotiation;
  readonly #counters: ConnectionCounters;
  readonly #onFrame: PeerConnectionOptions["onFrame"];
  readonly #isOneWay: (opcode: number) => boolean;
  readonly #decoder: FrameDecoder;
  readonly #maxDecompressed: number;
  readonly #maxInbound: number;
  /** Frames whose `onFrame` handler is still running. */
  #handling = 0;
  /** Replies (ACK, NACK) waiting for send-buffer room. */
  #repliesWaiting = 0;
  /** Wakes the read loop paused by backpressure. */
  #resumeRead: (() => void) | undefined;
  #lastReceived: number;
  #lastActive: number;
  /** The read loop; settles once the connection has closed. */
  readonly done: Promise<void>;

  /** Starts reading `channel`. */
  constructor(
    channel: SecureChannel,
    clock: Clock,
    options: PeerConnectionOptions,
    host: ReceiverHost,
  ) {
    this.#channel = channel;
    this.#clock = clock;
    this.#host = host;
    this.#connection = host.connection;
    this.#requests = host.requests;
    this.#compression = host.compression;
    this.#counters = host.counters;
    this.#onFrame = options.onFrame;
    this.#isOneWay = options.isOneWay ??
      ((opcode) => opcode === Opcode.SPEAK || opcode === Opcode.DISCONNECT);
    // Frames are bounded by what this side announced in the handshake.
    const maxFrameSize = channel.local.maxFrameSize || DEFAULT_MAX_FRAME_SIZE;
    this.#decoder = new FrameDecoder({ maxFrameSize });
    this.#maxDecompressed = options.maxDecompressedSize ?? maxFrameSize;
    this.#maxInbound = options.maxInboundRequests ?? PEER_CONNECTION_LIMITS.maxInboundRequests;
    this.#lastReceived = this.#lastActive = clock.now();
    this.done = this.#read();
  }

  /** Clock time of the last frame received. */
  get lastReceived(): number {
    return this.#lastReceived;
  }

  /** Clock time of the last frame received that was not KEEPALIVE traffic. */
  get lastActive(): number {
    return this.#lastActive;
  }

  /** A reply of this side waits for send-buffer room: reading pauses until it goes. */
  replyWaiting(): void {
    this.#repliesWaiting++;
  }

  /** A reply that waited has been queued (or given up). */
  replyDone(): void {
    if (--this.#repliesWaiting === 0) this.#wakeReader();
  }

  /** Lets a paused read loop see that the connection closed. */
  release(): void {
    const resume = this.#resumeRead;
    this.#resumeRead = undefined;
    resume?.();
  }

  get #closed(): boolean {
    return this.#connection.isClosed;
  }

  async #read(): Promise<void> {
    try {
      for (;;) {
        const plaintext = await this.#channel.read();
        if (plaintext === null) {
          this.#decoder.end();
          this.#host.finish({
            reason: DisconnectReason.UNSPECIFIED,
            remote: true,
            error: new ConnectionClosedError(
              `Connection to ${this.#connection.address} closed by the peer`,
            ),
          });
          return;
        }
        if (this.#closed) return;
        this.#lastReceived = this.#clock.now();
        this.#counters.bytesReceived += plaintext.length;
        for (const frame of this.#decoder.push(plaintext)) {
          // Backpressure: no new work from a peer while this side's work
          // for it is at its bound or its replies cannot be sent.
          while (this.#mustPause()) {
            await new Promise<void>((resolve) => (this.#resumeRead = resolve));
            if (this.#closed) return;
          }
          this.#counters.framesReceived++;
          this.#dispatch(frame);
          if (this.#closed) return;
        }
      }
    } catch (err) {
      if (this.#closed) return;
      if (err instanceof RelayClosedError) {
        // The relay ended the circuit under this connection, and said why.
        this.#host.finish({ reason: err.reason, remote: true, error: err });
      } else this.#host.fail(err as Error, DisconnectReason.PROTOCOL_ERROR);
    }
  }

  /** Frames of the peer whose handlers are still running. */
  get handling(): number {
    return this.#handling;
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
    const isReply = frame.opcode === Opcode.ACK || frame.opcode === Opcode.NACK;
    if (frame.opcode !== Opcode.KEEPALIVE) {
      const keepaliveReply = isReply && this.#requests.opcodeOf(frame.id) === Opcode.KEEPALIVE;
      if (!keepaliveReply) this.#lastActive = this.#lastReceived;
    }
    let payload: Uint8Array;
    try {
      payload = this.#openPayload(frame);
    } catch (err) {
      this.#counters.drops++;
      if (isReply) this.#requests.reject(frame.id, err as Error);
      else if (!this.#isOneWay(frame.opcode)) {
        const reason = err instanceof DecompressionLimitError
          ? NackReason.TOO_LARGE
          : NackReason.MALFORMED;
        this.#reply(this.#connection.nack(frame, reason, (err as Error).message));
      }
      return;
    }
    const opened = payload === frame.payload ? frame : { ...frame, payload, flags: 0 };
    switch (frame.opcode) {
      case Opcode.ACK:
      case Opcode.NACK:
        if (!this.#requests.settle(opened, frame.opcode === Opcode.ACK)) {
          this.#counters.drops++;
        }
        return;
      case Opcode.DISCONNECT:
        return this.#onDisconnect(opened);
      case Opcode.PING:
        return this.#onPing(opened);
      case Opcode.KEEPALIVE:
        return this.#onKeepalive(opened);
      case Opcode.SET_CONNECTION_OPT:
        return this.#onSetOption(opened);
    }
    if (!this.#onFrame) return this.unhandled(opened);
    try {
      const result = this.#onFrame(opened, this.#connection);
      if (result === false) this.unhandled(opened);
      else if (result instanceof Promise) {
        this.#handling++;
        result.then(
          (handled) => {
            if (handled === false && !this.#closed) this.unhandled(opened);
          },
          (err) => this.#handlerFailed(opened, err),
        ).finally(() => {
          this.#handling--;
          this.#wakeReader();
        });
      }
    } catch (err) {
      this.#handlerFailed(opened, err);
    }
  }

  /**
   * A frame no handler took (there is none, or it returned `false`): a
   * request gets NACK UNKNOWN_OPCODE, a one-way frame is dropped.
   */
  unhandled(frame: Frame): void {
    if (!this.#isOneWay(frame.opcode)) {
      this.#reply(
        this.#connection.nack(
          frame,
          NackReason.UNKNOWN_OPCODE,
          `Unknown opcode ${frame.opcode}`,
        ),
      );
    } else this.#counters.drops++;
  }

  #handlerFailed(frame: Frame, err: unknown): void {
    if (frame.id !== 0 && !this.#closed) {
      this.#reply(
        this.#connection.nack(
          frame,
          NackReason.INTERNAL,
          (err as Error)?.message ?? String(err),
        ),
      );
    }
  }

  /** Sends a reply without letting a failure (closed, full) escape. */
  #reply(sending: Promise<void>): void {
    sending.catch(() => this.#counters.drops++);
  }

  #openPayload(frame: Frame): Uint8Array {
    if (!isCompressed(frame)) return frame.payload;
    if (!this.#compression.decodes(frame.compression)) {
      throw new PayloadDecodeError(
        `Frame compressed with setting ${frame.compression}, which this side did not announce`,
      );
    }
    return decompress(frame.compression, frame.payload, { maxOutputSize: this.#maxDecompressed });
  }

  #onKeepalive(frame: Frame): void {
    if (frame.id === 0) return;
    try {
      decodePayload(KeepaliveSchema, frame.payload);
      this.#reply(this.#connection.ack(frame));
    } catch (err) {
      this.#reply(this.#connection.nack(frame, NackReason.MALFORMED, (err as Error).message));
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
      this.#reply(this.#connection.ack(frame, echo));
    } catch (err) {
      this.#reply(this.#connection.nack(frame, NackReason.MALFORMED, (err as Error).message));
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
      this.#reply(this.#connection.nack(frame, NackReason.MALFORMED, (err as Error).message));
      return;
    }
    // The seed's reply: ACK/NACK SET_CONNECTION_OPT <option> <setting>.
    const echo = toBinary(
      SetConnectionOptSchema,
      create(SetConnectionOptSchema, { option, setting }),
    );
    const refusal = this.#compression.refusal(option, setting);
    if (refusal !== undefined) {
      this.#reply(this.#connection.nack(frame, NackReason.UNSUPPORTED, refusal, echo));
      return;
    }
    // Switch first, then answer: no frame after the ACK uses a setting the
    // peer disabled.
    this.#compression.applyRemote(option as ConnectionOption, setting as Compression);
    this.#reply(this.#connection.ack(frame, echo));
  }

  #onDisconnect(frame: Frame): void {
    let disconnect: Disconnect | undefined;
    try {
      disconnect = decodePayload(DisconnectSchema, frame.payload);
    } catch {
      // A malformed DISCONNECT still disconnects.
    }
    const reason = disconnect?.reason ?? DisconnectReason.UNSPECIFIED;
    this.#host.finish({
      reason,
      remote: true,
      error: new ConnectionClosedError(
        `${this.#connection.address} disconnected: ${DisconnectReason[reason] ?? reason}${
          disconnect?.message ? ` (${disconnect.message})` : ""
        }`,
      ),
    });
  }
}
