/**
 * Circuit connections (see `proto/carrier/v1/relay.proto`): a secure channel
 * to a relay that is not a peer connection. {@linkcode FrameChannel} reads
 * and writes whole frames on such a channel (one request, its reply, then
 * RELAY_DATA); {@linkcode CircuitStream} is the relayed byte stream an end
 * runs its own Noise handshake over, a {@linkcode ByteStream} like a socket.
 *
 * @module
 */

import { create, toBinary } from "@bufbuild/protobuf";
import { ConnectionClosedError, FrameDecodeError, RelayClosedError } from "../errors.ts";
import { DisconnectReason, DisconnectSchema, Opcode, RelayDataSchema } from "../protocol.ts";
import type { SecureChannel } from "../secure/channel.ts";
import type { ByteStream } from "../transport/types.ts";
import { createFrame, encodeFrame, type Frame, FrameDecoder } from "../wire/frame.ts";
import { decodePayload } from "../wire/opcodes.ts";

/** The largest RELAY_DATA payload an end writes (a frame fits one Noise message). */
export const MAX_RELAY_DATA = 60 * 1024;

/** The frame size circuit connections accept. */
const CIRCUIT_MAX_FRAME = 64 * 1024;

/** Whole frames over a bare secure channel, one reader and one writer at a time. */
export class FrameChannel {
  readonly channel: SecureChannel;
  readonly #decoder = new FrameDecoder({ maxFrameSize: CIRCUIT_MAX_FRAME });
  #queued: Frame[] = [];

  /** Wraps `channel`. */
  constructor(channel: SecureChannel) {
    this.channel = channel;
  }

  /**
   * The next frame, `null` at the end of the channel.
   *
   * @throws {FrameDecodeError | FrameTooLargeError} for bytes that are not frames.
   */
  async next(): Promise<Frame | null> {
    while (this.#queued.length === 0) {
      const plaintext = await this.channel.read();
      if (plaintext === null) {
        if (this.#decoder.bufferedBytes > 0) {
          throw new FrameDecodeError("The circuit connection ended in the middle of a frame");
        }
        return null;
      }
      this.#queued = this.#decoder.push(plaintext);
    }
    return this.#queued.shift()!;
  }

  /** Writes encoded frames (in one Noise message when they fit). */
  write(bytes: Uint8Array): Promise<void> {
    return this.channel.write(bytes);
  }

  /** Writes a DISCONNECT (best effort) and closes the channel. */
  async disconnect(reason: DisconnectReason, message: string): Promise<void> {
    const payload = toBinary(DisconnectSchema, create(DisconnectSchema, { reason, message }));
    await this.write(encodeFrame(createFrame({ opcode: Opcode.DISCONNECT, payload })))
      .catch(() => {});
    this.close();
  }

  /** Closes the channel and its stream. */
  close(): void {
    this.channel.close();
  }
}

/** A RELAY_DATA frame carrying `data`. */
export function relayDataFrame(data: Uint8Array): Uint8Array {
  const payload = toBinary(RelayDataSchema, create(RelayDataSchema, { data }));
  return encodeFrame(createFrame({ opcode: Opcode.RELAY_DATA, payload }), {
    maxFrameSize: CIRCUIT_MAX_FRAME,
  });
}

/**
 * The relayed stream of an open circuit: its bytes travel in RELAY_DATA
 * frames through the relay. A DISCONNECT from the relay ends it with a
 * {@linkcode RelayClosedError} carrying the relay's reason.
 */
export class CircuitStream implements ByteStream {
  readonly relay: string;
  readonly localAddress: string;
  readonly remoteAddress: string;
  readonly #frames: FrameChannel;
  #pending: Uint8Array = new Uint8Array(0);
  #ended = false;
  #closed = false;
  #error: Error | undefined;

  /**
   * Wraps the open circuit on `frames`; `relay` and `remote` are the relay's
   * and the far end's addresses (base58).
   */
  constructor(frames: FrameChannel, relay: string, remote: string) {
    this.#frames = frames;
    this.relay = relay;
    this.localAddress = `relay://${relay}`;
    this.remoteAddress = `relay://${relay}/${remote}`;
  }

  async read(buffer: Uint8Array): Promise<number | null> {
    while (this.#pending.length === 0) {
      if (this.#error) throw this.#error;
      if (this.#ended || this.#closed) return null;
      let frame: Frame | null;
      try {
        frame = await this.#frames.next();
      } catch (err) {
        if (this.#closed) return null;
        this.#error = err instanceof ConnectionClosedError ? err : new ConnectionClosedError(
          `The circuit through ${this.relay} failed: ${(err as Error).message}`,
          { cause: err },
        );
        this.close();
        throw this.#error;
      }
      if (frame === null) {
        this.#ended = true;
        return null;
      }
      if (frame.opcode === Opcode.RELAY_DATA) {
        this.#pending = decodePayload(RelayDataSchema, frame.payload).data;
      } else if (frame.opcode === Opcode.DISCONNECT) {
        let reason: number = DisconnectReason.UNSPECIFIED;
        let message = "";
        try {
          ({ reason, message } = decodePayload(DisconnectSchema, frame.payload));
        } catch {
          // A malformed DISCONNECT still ends the circuit.
        }
        this.#error = new RelayClosedError(
          `The relay ${this.relay} closed the circuit: ${DisconnectReason[reason] ?? reason}${
            message ? ` (${message})` : ""
          }`,
          { reason },
        );
        this.close();
      } else {
        this.#error = new ConnectionClosedError(
          `The circuit through ${this.relay} carried opcode ${frame.opcode}, not RELAY_DATA`,
        );
        void this.#frames.disconnect(
          DisconnectReason.PROTOCOL_ERROR,
          "only RELAY_DATA on a circuit",
        );
        this.#closed = true;
      }
    }
    const n = Math.min(buffer.length, this.#pending.length);
    buffer.set(this.#pending.subarray(0, n));
    this.#pending = this.#pending.subarray(n);
    return n;
  }

  async write(data: Uint8Array): Promise<void> {
    if (this.#closed || this.#error) {
      throw new ConnectionClosedError(`Cannot write: the circuit through ${this.relay} is closed`, {
        cause: this.#error,
      });
    }
    for (let offset = 0; offset < data.length; offset += MAX_RELAY_DATA) {
      await this.#frames.write(relayDataFrame(data.subarray(offset, offset + MAX_RELAY_DATA)));
    }
  }

  /** A circuit has no half-close: ends it. */
  closeWrite(): Promise<void> {
    this.close();
    return Promise.resolve();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#frames.close();
  }
}
