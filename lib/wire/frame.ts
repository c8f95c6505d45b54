/**
 * Frames to bytes and back.
 *
 * On the wire (inside the Noise transport) a frame is size-delimited Protobuf:
 * a varint length, then the `carrier.v1.Frame` message of that length. The
 * {@linkcode FrameDecoder} turns any chunking of such a stream back into
 * frames, holding at most one partial frame, and refuses a length over the
 * configured maximum as soon as the length prefix is read.
 *
 * @module
 */
import { fromBinary } from "@bufbuild/protobuf";
import { FrameFlag, FrameSchema } from "../../gen/carrier/v1/frame_pb.ts";
import type { Compression } from "../../gen/carrier/v1/options_pb.ts";
import { concatBytes } from "../_bytes.ts";
import { ArgumentError, FrameDecodeError, FrameTooLargeError } from "../errors.ts";
import { MAX_VARINT32_BYTES, varintSize, writeVarint } from "./_varint.ts";

export { FrameFlag };

/**
 * One protocol message: the fields of `carrier.v1.Frame` (see
 * `proto/carrier/v1/frame.proto`) as a plain object.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type Frame, Opcode } from "@carrier/p2p";
 * import { createFrame, isCompressed } from "@carrier/p2p/protocol";
 * function describe(frame: Frame): string {
 *   const name = Opcode[frame.opcode] ?? `APP_${frame.opcode}`;
 *   return `${name} #${frame.id}${isCompressed(frame) ? " (compressed)" : ""}`;
 * }
 * assert.equal(describe(createFrame({ opcode: Opcode.PING, id: 3 })), "PING #3");
 * ```
 */
export interface Frame {
  /** Request id (nonzero when a reply is expected), or the id of the request an ACK/NACK answers. */
  id: number;
  /** A protocol `Opcode` value or an application opcode (>= 1000). */
  opcode: number;
  /** A bit set of `FrameFlag` values. */
  flags: number;
  /** The opcode's Protobuf message, serialized, compressed if `FRAME_FLAG_COMPRESSED` is set. */
  payload: Uint8Array;
  /** The compression setting of the payload, when `FRAME_FLAG_COMPRESSED` is set. */
  compression: Compression;
}

/**
 * Default largest encoded frame (envelope included), in bytes: 1 MiB.
 * A frame larger than one Noise message (65535 bytes) spans several.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { FrameTooLargeError } from "@carrier/p2p";
 * import { createFrame, DEFAULT_MAX_FRAME_SIZE, encodeFrame } from "@carrier/p2p/protocol";
 * const frame = createFrame({ opcode: 1000, payload: new Uint8Array(DEFAULT_MAX_FRAME_SIZE) });
 * assert.throws(() => encodeFrame(frame), FrameTooLargeError);
 * encodeFrame(frame, { maxFrameSize: 2 * DEFAULT_MAX_FRAME_SIZE }); // ok
 * ```
 */
export const DEFAULT_MAX_FRAME_SIZE = 1024 * 1024;

/**
 * Largest maximum frame size a node may configure: 64 MiB.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ArgumentError } from "@carrier/p2p";
 * import { FrameDecoder, MAX_FRAME_SIZE_LIMIT } from "@carrier/p2p/protocol";
 * new FrameDecoder({ maxFrameSize: MAX_FRAME_SIZE_LIMIT }); // the largest allowed
 * assert.throws(() => new FrameDecoder({ maxFrameSize: MAX_FRAME_SIZE_LIMIT + 1 }), ArgumentError);
 * ```
 */
export const MAX_FRAME_SIZE_LIMIT = 64 * 1024 * 1024;

/**
 * The fields of a frame, for {@linkcode createFrame}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import {
 *   compress,
 *   Compression,
 *   createFrame,
 *   type FrameInit,
 *   isCompressed,
 * } from "@carrier/p2p/protocol";
 * const payload = compress(Compression.GZIP, new TextEncoder().encode("hello ".repeat(100)));
 * const init: FrameInit = { opcode: 1000, id: 5, payload, compression: Compression.GZIP };
 * const frame = createFrame(init);
 * assert(isCompressed(frame) && frame.compression === Compression.GZIP);
 * ```
 */
export interface FrameInit {
  /** Opcode: a protocol `Opcode` value or an application opcode (>= 1000). */
  opcode: number;
  /** Request id (nonzero when a reply is expected), or the id of the request an ACK/NACK answers. @default {0} */
  id?: number;
  /** The opcode's Protobuf message, serialized (and compressed if `compression` is set). @default {empty} */
  payload?: Uint8Array;
  /** The setting `payload` is compressed with; sets `FRAME_FLAG_COMPRESSED`. @default {undefined} */
  compression?: Compression;
}

/**
 * Options of {@linkcode encodeFrame} and {@linkcode FrameDecoder}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { FrameTooLargeError } from "@carrier/p2p";
 * import {
 *   createFrame,
 *   encodeFrame,
 *   FrameDecoder,
 *   type FrameLimitOptions,
 * } from "@carrier/p2p/protocol";
 * const limits: FrameLimitOptions = { maxFrameSize: 64 };
 * const big = encodeFrame(createFrame({ opcode: 1000, payload: new Uint8Array(100) }));
 * assert.throws(() => new FrameDecoder(limits).push(big), FrameTooLargeError);
 * ```
 */
export interface FrameLimitOptions {
  /** Largest encoded frame, length prefix excluded, in bytes. @default {DEFAULT_MAX_FRAME_SIZE} */
  maxFrameSize?: number;
}

function checkMaxFrameSize(value: number | undefined): number {
  const max = value ?? DEFAULT_MAX_FRAME_SIZE;
  if (!Number.isInteger(max) || max < 16 || max > MAX_FRAME_SIZE_LIMIT) {
    throw new ArgumentError(
      `maxFrameSize must be an integer from 16 to ${MAX_FRAME_SIZE_LIMIT}, got ${max}`,
    );
  }
  return max;
}

function checkUint32(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 0 || value > 0xffff_ffff) {
    throw new ArgumentError(
      `${name} must be an integer from 0 to 4294967295, got ${value}`,
    );
  }
}

/**
 * Creates a frame message.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Opcode } from "@carrier/p2p";
 * import { createFrame } from "@carrier/p2p/protocol";
 * const frame = createFrame({ opcode: Opcode.PING, id: 1 });
 * assert.equal(frame.opcode, 2);
 * assert.equal(frame.flags, 0);
 * ```
 */
export function createFrame(init: FrameInit): Frame {
  const id = init.id ?? 0;
  checkUint32("Frame id", id);
  checkUint32("Frame opcode", init.opcode);
  const compressed = init.compression !== undefined;
  return {
    id,
    opcode: init.opcode,
    flags: compressed ? FrameFlag.COMPRESSED : 0,
    payload: init.payload ?? new Uint8Array(0),
    compression: init.compression ?? 0,
  };
}

/**
 * Whether the frame's payload is compressed (`FRAME_FLAG_COMPRESSED`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Opcode } from "@carrier/p2p";
 * import { Compression, createFrame, isCompressed } from "@carrier/p2p/protocol";
 * assert(!isCompressed(createFrame({ opcode: Opcode.PING })));
 * assert(isCompressed(createFrame({ opcode: 1000, compression: Compression.SNAPPY })));
 * ```
 */
export function isCompressed(frame: Frame): boolean {
  return (frame.flags & FrameFlag.COMPRESSED) !== 0;
}

/**
 * Encodes a frame as size-delimited Protobuf: varint length, then the frame.
 *
 * @throws {FrameTooLargeError} if the encoded frame exceeds `maxFrameSize`.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Opcode } from "@carrier/p2p";
 * import { createFrame, encodeFrame } from "@carrier/p2p/protocol";
 * const bytes = encodeFrame(createFrame({ opcode: Opcode.PING, id: 7 }));
 * assert.equal(bytes[0], bytes.length - 1);
 * ```
 */
export function encodeFrame(
  frame: Frame,
  options: FrameLimitOptions = {},
): Uint8Array {
  const max = checkMaxFrameSize(options.maxFrameSize);
  // Hand-written proto3 encoding of carrier.v1.Frame (fields in number order,
  // zero values omitted), byte-identical to toBinary(FrameSchema, ...) and
  // written straight after its length prefix in one buffer.
  const { id, opcode, flags, payload, compression } = frame;
  let size = 0;
  if (id !== 0) size += 1 + varintSize(id);
  if (opcode !== 0) size += 1 + varintSize(opcode);
  if (flags !== 0) size += 1 + varintSize(flags);
  if (payload.length !== 0) {
    size += 1 + varintSize(payload.length) + payload.length;
  }
  if (compression !== 0) size += 1 + varintSize(compression);
  if (size > max) {
    throw new FrameTooLargeError(
      `Cannot encode frame: length ${size} exceeds maxFrameSize ${max}`,
      { limit: "maxFrameSize", size, max },
    );
  }
  const out = new Uint8Array(varintSize(size) + size);
  let o = writeVarint(out, 0, size);
  if (id !== 0) {
    out[o++] = 0x08;
    o = writeVarint(out, o, id);
  }
  if (opcode !== 0) {
    out[o++] = 0x10;
    o = writeVarint(out, o, opcode);
  }
  if (flags !== 0) {
    out[o++] = 0x18;
    o = writeVarint(out, o, flags);
  }
  if (payload.length !== 0) {
    out[o++] = 0x22;
    o = writeVarint(out, o, payload.length);
    out.set(payload, o);
    o += payload.length;
  }
  if (compression !== 0) {
    out[o++] = 0x28;
    writeVarint(out, o, compression);
  }
  return out;
}

/**
 * Decodes one whole frame message (without length prefix).
 *
 * @throws {FrameDecodeError} if the bytes are not a `carrier.v1.Frame`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Opcode } from "@carrier/p2p";
 * import { createFrame, decodeFrameMessage, encodeFrame } from "@carrier/p2p/protocol";
 * const bytes = encodeFrame(createFrame({ opcode: Opcode.PING, id: 9 }));
 * const frame = decodeFrameMessage(bytes.subarray(1)); // without the 1-byte length prefix
 * assert.equal(frame.opcode, Opcode.PING);
 * assert.equal(frame.id, 9);
 * ```
 */
export function decodeFrameMessage(bytes: Uint8Array): Frame {
  try {
    return fromBinary(FrameSchema, bytes);
  } catch (cause) {
    throw new FrameDecodeError(
      `Cannot decode frame: ${bytes.length} bytes are not a carrier.v1.Frame (${
        (cause as Error).message
      })`,
      { cause },
    );
  }
}

/**
 * Incremental decoder: feed it the byte stream in chunks of any size, get
 * whole frames back.
 *
 * Memory is bounded: it holds at most one partial frame (no more than
 * `maxFrameSize` bytes, and only bytes actually received: a length prefix
 * alone allocates nothing), and rejects a length prefix over the maximum as
 * soon as the prefix's bytes show it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Opcode } from "@carrier/p2p";
 * import { createFrame, encodeFrame, FrameDecoder } from "@carrier/p2p/protocol";
 * const bytes = encodeFrame(createFrame({ opcode: Opcode.PING, id: 1 }));
 * const decoder = new FrameDecoder();
 * const frames = [...decoder.push(bytes.subarray(0, 2)), ...decoder.push(bytes.subarray(2))];
 * decoder.end();
 * assert.equal(frames.length, 1);
 * assert.equal(frames[0].id, 1);
 * ```
 */
export class FrameDecoder {
  readonly #max: number;
  // Length prefix being read.
  #lengthValue = 0;
  #lengthBytes = 0;
  // Body being read: -1 while reading the prefix.
  #bodyLength = -1;
  #bodyParts: Uint8Array[] = [];
  #bodyReceived = 0;
  #failed: Error | undefined;

  /** Creates a decoder. */
  constructor(options: FrameLimitOptions = {}) {
    this.#max = checkMaxFrameSize(options.maxFrameSize);
  }

  /** Bytes of a partial frame currently held. */
  get bufferedBytes(): number {
    return this.#lengthBytes + this.#bodyReceived;
  }

  /**
   * Feeds a chunk; returns the frames it completes, in order. The decoder
   * and the frames it returns may keep views of `chunk`: do not modify it
   * afterwards.
   *
   * @throws {FrameTooLargeError} for a length prefix over `maxFrameSize`.
   * @throws {FrameDecodeError} for an overlong varint or a body that is not a Frame.
   * After either, the decoder stays failed: the stream cannot be resynchronised.
   */
  push(chunk: Uint8Array): Frame[] {
    if (this.#failed) throw this.#failed;
    try {
      return this.#push(chunk);
    } catch (err) {
      this.#failed = err as Error;
      this.#reset();
      throw err;
    }
  }

  #push(chunk: Uint8Array): Frame[] {
    const frames: Frame[] = [];
    let offset = 0;
    while (offset < chunk.length) {
      if (this.#bodyLength < 0) {
        // Reading the varint length prefix, one byte at a time.
        const byte = chunk[offset++];
        this.#lengthValue += (byte & 0x7f) * 2 ** (7 * this.#lengthBytes);
        this.#lengthBytes++;
        if (this.#lengthValue > this.#max) {
          throw new FrameTooLargeError(
            `Cannot decode frame: length ${this.#lengthValue}${
              byte & 0x80 ? " or more" : ""
            } exceeds maxFrameSize ${this.#max}`,
            { limit: "maxFrameSize", size: this.#lengthValue, max: this.#max },
          );
        }
        if (byte & 0x80) {
          if (this.#lengthBytes === MAX_VARINT32_BYTES) {
            throw new FrameDecodeError(
              `Cannot decode frame: length varint longer than ${MAX_VARINT32_BYTES} bytes`,
            );
          }
          continue;
        }
        this.#bodyLength = this.#lengthValue;
        if (this.#bodyLength === 0) {
          frames.push(this.#finish(new Uint8Array(0)));
        }
        continue;
      }
      const need = this.#bodyLength - this.#bodyReceived;
      const take = Math.min(need, chunk.length - offset);
      const part = chunk.subarray(offset, offset + take);
      offset += take;
      if (take === need && this.#bodyParts.length === 0) {
        // Fast path: the whole body is in this chunk.
        frames.push(this.#finish(part));
        continue;
      }
      this.#bodyParts.push(part);
      this.#bodyReceived += take;
      if (this.#bodyReceived === this.#bodyLength) {
        frames.push(this.#finish(concatBytes(this.#bodyParts)));
      }
    }
    return frames;
  }

  #finish(body: Uint8Array): Frame {
    this.#reset();
    return decodeFrameMessage(body);
  }

  #reset(): void {
    this.#lengthValue = 0;
    this.#lengthBytes = 0;
    this.#bodyLength = -1;
    this.#bodyParts = [];
    this.#bodyReceived = 0;
  }

  /**
   * Declares the end of the stream.
   *
   * @throws {FrameDecodeError} if it ends inside a frame (a truncated length
   * prefix or body).
   */
  end(): void {
    if (this.#failed) throw this.#failed;
    if (this.#bodyLength >= 0) {
      throw new FrameDecodeError(
        `Cannot decode frame: stream ended after ${this.#bodyReceived} of ${this.#bodyLength} body bytes`,
      );
    }
    if (this.#lengthBytes > 0) {
      throw new FrameDecodeError(
        `Cannot decode frame: stream ended inside a length varint (${this.#lengthBytes} bytes)`,
      );
    }
  }
}
