/**
 * The channel's framing: every Noise message, handshake or transport, travels
 * as a 2-byte big-endian length, then that many bytes. {@linkcode MessageReader}
 * cuts a stream into messages without copying them; {@linkcode writeLengthPrefixed}
 * writes one.
 *
 * Private to `lib/secure/`; `channel.ts` re-exports {@linkcode LENGTH_PREFIX_LENGTH} and
 * {@linkcode MAX_PLAINTEXT}.
 *
 * @module
 */

import type { ByteStream } from "../transport/types.ts";
import { MAX_MESSAGE_LENGTH, MAX_PLAINTEXT_LENGTH } from "./cipher_state.ts";

/** Length of the big-endian length prefix in front of every Noise message, in bytes. */
export const LENGTH_PREFIX_LENGTH = 2;

/**
 * Largest plaintext of one transport message: 65535 − 16 = 65519 bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateIdentitySync, SizeLimitError } from "@carrier/p2p";
 * import { MAX_PLAINTEXT, secureInbound, secureOutbound } from "@carrier/p2p/protocol";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
 * const [alice, bob] = Array.from(Array(2), () => generateIdentitySync({ difficulty: 0 }));
 * await using net = new MemoryNetwork();
 * const listener = await net.transport().listen("mem:bob");
 * const accepting = (async () => {
 *   for await (const stream of listener) return secureInbound(stream, { identity: bob });
 * })();
 * const stream = await net.transport().dial(listener.address);
 * await using channel = await secureOutbound(stream, { identity: alice });
 * await using atBob = (await accepting)!;
 * await assert.rejects(channel.write(new Uint8Array(MAX_PLAINTEXT + 1)), SizeLimitError);
 * await channel.write(new Uint8Array(MAX_PLAINTEXT)); // one whole transport message
 * assert.equal((await atBob.read())?.length, MAX_PLAINTEXT);
 * ```
 */
export const MAX_PLAINTEXT: number = MAX_PLAINTEXT_LENGTH;

/** Largest length-prefixed Noise message on the wire: 65537 bytes. */
export const MAX_WIRE_MESSAGE = LENGTH_PREFIX_LENGTH + MAX_MESSAGE_LENGTH;
/** Read buffer at first: holds a whole handshake. */
const INITIAL_READ_BUFFER = 4096;
/**
 * The read buffer grows (while reads keep filling it) up to this, after the
 * handshake. While decryptions still view one buffer, reading goes on into a
 * second one, so a busy channel holds at most two.
 */
export const MAX_READ_BUFFER = 256 * 1024;

/**
 * Writes `message` behind its 2-byte big-endian length at `offset` of `out`;
 * returns the offset after it.
 */
export function writeLengthPrefixed(out: Uint8Array, offset: number, message: Uint8Array): number {
  out[offset] = message.length >>> 8;
  out[offset + 1] = message.length & 0xff;
  out.set(message, offset + LENGTH_PREFIX_LENGTH);
  return offset + LENGTH_PREFIX_LENGTH + message.length;
}

/**
 * Buffered reader of length-prefixed messages. {@linkcode MessageReader.next}
 * hands out views into the buffer; a view whose use is registered with
 * {@linkcode MessageReader.hold} stays untouched until that use settles:
 * meanwhile {@linkcode MessageReader.fill} reads only into free space, and
 * moves on to another buffer (the spare, or a new one) when it would have to
 * reuse held bytes. Unheld views may be overwritten by the next fill.
 */
export class MessageReader {
  #stream: ByteStream;
  #slab: Slab = { bytes: new Uint8Array(INITIAL_READ_BUFFER), holds: 0 };
  /** A buffer of the current size with no held views, kept for the next move. */
  #spare: Slab | undefined;
  #start = 0;
  #end = 0;
  /** Bytes the next message needs in all, prefix included (2 until a prefix is seen). */
  wanted = LENGTH_PREFIX_LENGTH;
  /** The buffer grows past a whole message only while reads fill it, up to this. */
  maxCapacity: number;

  constructor(stream: ByteStream, maxCapacity: number) {
    this.#stream = stream;
    this.maxCapacity = maxCapacity;
  }

  /** Bytes received and not yet handed out. */
  get buffered(): number {
    return this.#end - this.#start;
  }

  /** The next complete message, as a view into the buffer, or `null` if it has not all arrived. */
  next(): Uint8Array | null {
    const available = this.#end - this.#start;
    if (available < LENGTH_PREFIX_LENGTH) {
      this.wanted = LENGTH_PREFIX_LENGTH;
      return null;
    }
    const buffer = this.#slab.bytes;
    const start = this.#start;
    const length = (buffer[start] << 8) | buffer[start + 1];
    this.wanted = LENGTH_PREFIX_LENGTH + length;
    if (available < this.wanted) return null;
    this.#start = start + this.wanted;
    this.wanted = LENGTH_PREFIX_LENGTH;
    return buffer.subarray(start + LENGTH_PREFIX_LENGTH, this.#start);
  }

  /** Keeps the views handed out so far untouched until `use` settles. */
  hold(use: Promise<unknown>): void {
    const slab = this.#slab;
    slab.holds++;
    const release = () => {
      if (--slab.holds === 0 && slab !== this.#slab) this.#retire(slab);
    };
    use.then(release, release);
  }

  /** Reads more bytes from the stream; resolves `false` at the end of the stream. */
  async fill(): Promise<boolean> {
    let slab = this.#slab;
    const held = slab.holds > 0;
    if (this.#start === this.#end && !held) {
      // Drained, no view in use: start over, and let an idle channel keep
      // one buffer only.
      this.#start = this.#end = 0;
      this.#spare = undefined;
    } else if (
      slab.bytes.length - this.#start < this.wanted ||
      slab.bytes.length - this.#end < slab.bytes.length / 2
    ) {
      // The message would run past the end, or little room is left: move
      // the partial message (less than 65537 bytes) to the front, into
      // another buffer if views of this one are held or it is too small.
      const size = Math.min(
        Math.max(this.wanted, slab.bytes.length * (slab.bytes.length < this.wanted ? 2 : 1)),
        this.#cap(),
      );
      if (held || slab.bytes.length < size) {
        slab = this.#takeSlab(size);
        slab.bytes.set(this.#slab.bytes.subarray(this.#start, this.#end));
        this.#switchTo(slab);
      } else {
        slab.bytes.copyWithin(0, this.#start, this.#end);
      }
      this.#end -= this.#start;
      this.#start = 0;
    }
    const buffer = slab.bytes;
    const space = buffer.length - this.#end;
    const n = await this.#stream.read(buffer.subarray(this.#end));
    if (n === null) return false;
    this.#end += n;
    if (n === space && buffer.length < this.#cap()) {
      // Reads fill the buffer: grow it, so that bulk data takes fewer reads.
      const grown: Slab = {
        bytes: new Uint8Array(Math.min(buffer.length * 2, this.#cap())),
        holds: 0,
      };
      grown.bytes.set(buffer.subarray(this.#start, this.#end));
      this.#end -= this.#start;
      this.#start = 0;
      this.#spare = undefined;
      this.#switchTo(grown);
    }
    return true;
  }

  #takeSlab(size: number): Slab {
    const spare = this.#spare;
    this.#spare = undefined;
    if (spare !== undefined && spare.bytes.length === size) return spare;
    return { bytes: new Uint8Array(size), holds: 0 };
  }

  #switchTo(slab: Slab): void {
    const old = this.#slab;
    this.#slab = slab;
    if (old.holds === 0) this.#retire(old);
  }

  /** Keeps a buffer whose views are all released as the spare, if it has the current size. */
  #retire(slab: Slab): void {
    if (this.#spare === undefined && slab.bytes.length === this.#slab.bytes.length) {
      this.#spare = slab;
    }
  }

  #cap(): number {
    return Math.max(this.maxCapacity, MAX_WIRE_MESSAGE);
  }
}

/** A read buffer and the number of unsettled uses of views into it. */
interface Slab {
  bytes: Uint8Array;
  holds: number;
}
