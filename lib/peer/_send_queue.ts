/**
 * The send side of a connection: encoded frames wait in a queue bounded in
 * bytes, and a writer drains it into the secure channel, packing small frames
 * together into one Noise message and spreading large ones over several. It
 * hands the channel up to {@linkcode WRITES_IN_FLIGHT} batches at a time, so
 * one is encrypted while the other is written; a write stuck for
 * `writeTimeout` (a peer that does not read) fails the connection.
 *
 * Private to `lib/peer/`.
 *
 * @module
 */

import { DisconnectReason } from "../../gen/carrier/v1/control_pb.ts";
import type { Clock, TimerHandle } from "../clock.ts";
import { TimeoutError } from "../errors.ts";
import { MAX_PLAINTEXT, type SecureChannel } from "../secure/channel.ts";
import { WaitQueue } from "./_wait_queue.ts";

/** Batches of frames handed to the secure channel and not yet written, at most. */
export const WRITES_IN_FLIGHT = 2;

/** Bytes of frames one batch takes at most (16 Noise messages). */
export const BATCH_BYTES = 16 * MAX_PLAINTEXT;

/** Packing buffers (of one Noise message each) kept for reuse while the writer is busy. */
const PACK_POOL_SIZE = 32;

/** What the queue needs of its connection. */
export interface SendQueueHost {
  /** The peer's address, for error messages. */
  readonly address: string;
  /** Whether the connection has closed. */
  isClosed(): boolean;
  /** Closes the connection with `error`, telling the peer `reason`. */
  fail(error: Error, reason: DisconnectReason): void;
}

/** The bounded queue of encoded frames of one connection, and its writer. */
export class SendQueue {
  readonly #channel: SecureChannel;
  readonly #clock: Clock;
  readonly #host: SendQueueHost;
  readonly #maxBytes: number;
  readonly #writeTimeout: number;
  #queue: Uint8Array[] = [];
  #queuedBytes = 0;
  #writing = false;
  readonly #room = new WaitQueue();
  #writeTimer: TimerHandle | undefined;
  /** Clock time since which the oldest write in flight has waited; `undefined` when none is. */
  #writeWaitingSince: number | undefined;
  /** Buffers for packing frames into Noise messages, reused while the writer is busy. */
  #packPool: Uint8Array[] = [];

  constructor(
    channel: SecureChannel,
    clock: Clock,
    limits: { maxBytes: number; writeTimeout: number },
    host: SendQueueHost,
  ) {
    this.#channel = channel;
    this.#clock = clock;
    this.#maxBytes = limits.maxBytes;
    this.#writeTimeout = limits.writeTimeout;
    this.#host = host;
  }

  /** Bytes of encoded frames waiting to be written. */
  get bytes(): number {
    return this.#queuedBytes;
  }

  /** Bytes the queue holds before senders wait (`maxSendBuffer`). */
  get maxBytes(): number {
    return this.#maxBytes;
  }

  /** Whether a frame of `size` bytes must wait for room (an empty queue takes any frame). */
  isFull(size: number): boolean {
    return this.#queuedBytes > 0 && this.#queuedBytes + size > this.#maxBytes;
  }

  /** Waits until the writer has made room, or `signal` aborts. */
  waitForRoom(signal?: AbortSignal): Promise<void> {
    return this.#room.wait(signal);
  }

  /** Queues an encoded frame; the writer starts once the current turn ends. */
  push(bytes: Uint8Array): void {
    this.#queue.push(bytes);
    this.#queuedBytes += bytes.length;
    if (!this.#writing) {
      this.#writing = true;
      // Let frames sent in the same turn join this write.
      queueMicrotask(() => this.#write());
    }
  }

  /** Resolves once everything queued has been written, or the connection closed. */
  async flushed(): Promise<void> {
    while ((this.#writing || this.#queue.length > 0) && !this.#host.isClosed()) {
      await this.waitForRoom();
    }
  }

  /** Drops what is queued, stops the write timer and wakes every waiting sender. */
  clear(): void {
    if (this.#writeTimer !== undefined) this.#clock.clearTimeout(this.#writeTimer);
    this.#writeTimer = undefined;
    this.#queue = [];
    this.#queuedBytes = 0;
    this.#room.wakeAll();
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
      while (!this.#host.isClosed()) {
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
      this.#host.fail(err as Error, DisconnectReason.PROTOCOL_ERROR);
    } finally {
      this.#writeWaitingSince = undefined;
      this.#writing = false;
      this.#wakeRoomWaiters();
      if (this.#queue.length > 0 && !this.#host.isClosed()) {
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
    if (this.#writeTimer === undefined && !this.#host.isClosed()) {
      this.#armWriteTimer(this.#writeTimeout);
    }
  }

  #armWriteTimer(ms: number): void {
    this.#writeTimer = this.#clock.setTimeout(() => {
      this.#writeTimer = undefined;
      const since = this.#writeWaitingSince;
      if (since === undefined || this.#host.isClosed()) return; // idle
      const waited = this.#clock.now() - since;
      if (waited < this.#writeTimeout) {
        this.#armWriteTimer(this.#writeTimeout - waited);
        return;
      }
      this.#host.fail(
        new TimeoutError(
          `Write to ${this.#host.address} stuck for ${this.#writeTimeout} ms: the peer does not read`,
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
    while (this.#room.length > 0 && this.#queuedBytes < this.#maxBytes) this.#room.wakeOne();
  }
}

function noop(): void {}
