/**
 * The write side of the secure channel: every transport message is
 * encrypted as soon as it is written, and the ciphertexts go to the stream in
 * nonce order, each as soon as it and the ones before it are ready, those
 * ready together in one stream write.
 *
 * Private to `lib/secure/`.
 *
 * @module
 */

import type { ByteStream } from "../transport/types.ts";
import { LENGTH_PREFIX_LENGTH, MAX_WIRE_MESSAGE, writeLengthPrefixed } from "./_framing.ts";
import type { CipherState } from "./cipher_state.ts";

/** The coalescing write buffer is kept for reuse up to this size; one stream write is at most this (or one message). */
const MAX_KEPT_WRITE_BUFFER = 4 * MAX_WIRE_MESSAGE;

/** What the writer needs of its channel. */
export interface WriterHost {
  /** Whether the channel is closed. */
  isClosed(): boolean;
  /** Closes the channel because of `error`. */
  fail(error: unknown): void;
  /** The error writes get once the channel is closed. */
  closedError(): Error;
}

/** Encrypts and writes the transport messages of one channel, in call order. */
export class MessageWriter {
  #stream: ByteStream;
  #send: CipherState;
  #host: WriterHost;
  /** Settles once every write called so far has settled. */
  #writeTail: Promise<void> = Promise.resolve();
  /** Messages being encrypted or waiting to be written, in nonce order. */
  #outgoing: Outgoing[] = [];
  #outgoingHead = 0;
  #writing = false;
  #writeBuffer: Uint8Array = new Uint8Array(0);

  constructor(stream: ByteStream, send: CipherState, host: WriterHost) {
    this.#stream = stream;
    this.#send = send;
    this.#host = host;
  }

  /** Settles once every write called so far has settled. */
  get settled(): Promise<void> {
    return this.#writeTail;
  }

  /**
   * Encrypts each plaintext as its own transport message and writes them
   * (sizes checked by the caller); resolves once all are written.
   */
  write(plaintexts: readonly Uint8Array[]): Promise<void> {
    // The cipher state takes nonces in call order and starts every
    // encryption now; the writer sends the ciphertexts in that order, each as
    // soon as it and the ones before it are ready.
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    const outgoing = this.#outgoing;
    for (let i = 0; i < plaintexts.length; i++) {
      const sealed = this.#send.encrypt(plaintexts[i]);
      const entry: Outgoing = {
        sealed,
        ciphertext: undefined,
        resolve: i === plaintexts.length - 1 ? resolve : undefined,
        reject,
      };
      sealed.then((ciphertext) => entry.ciphertext = ciphertext, noop);
      outgoing.push(entry);
    }
    if (plaintexts.length === 0) {
      // Nothing to send: settle after the writes called before.
      outgoing.push({ sealed: undefined, ciphertext: EMPTY, resolve, reject });
    }
    if (!this.#writing) this.#write();
    this.#writeTail = promise.then(noop, noop);
    return promise;
  }

  /** Writes the outgoing messages in order, coalescing those that are ready. */
  async #write(): Promise<void> {
    this.#writing = true;
    const outgoing = this.#outgoing;
    try {
      while (this.#outgoingHead < outgoing.length) {
        const head = outgoing[this.#outgoingHead];
        if (head.ciphertext === undefined) {
          try {
            await head.sealed;
          } catch (error) {
            this.#host.fail(error);
            head.reject(error);
            this.#outgoingHead++;
            this.#rejectOutgoing();
            return;
          }
        }
        if (this.#host.isClosed()) {
          this.#rejectOutgoing();
          return;
        }
        // Take the head and every following message already encrypted, up to
        // the kept buffer's size.
        let end = this.#outgoingHead;
        let total = 0;
        while (end < outgoing.length) {
          const ciphertext = outgoing[end].ciphertext;
          if (ciphertext === undefined) break;
          const size = ciphertext === EMPTY ? 0 : LENGTH_PREFIX_LENGTH + ciphertext.length;
          if (total > 0 && total + size > MAX_KEPT_WRITE_BUFFER) break;
          total += size;
          end++;
        }
        if (total > 0) {
          let out = this.#writeBuffer;
          if (out.length < total) {
            out = new Uint8Array(Math.max(total, Math.min(2 * out.length, MAX_KEPT_WRITE_BUFFER)));
            if (out.length <= MAX_KEPT_WRITE_BUFFER) this.#writeBuffer = out;
          }
          let offset = 0;
          for (let i = this.#outgoingHead; i < end; i++) {
            const c = outgoing[i].ciphertext!;
            if (c !== EMPTY) offset = writeLengthPrefixed(out, offset, c);
          }
          try {
            await this.#stream.write(out.subarray(0, total));
          } catch (error) {
            this.#host.fail(error);
            for (let i = this.#outgoingHead; i < end; i++) outgoing[i].reject(error);
            this.#outgoingHead = end;
            this.#rejectOutgoing();
            return;
          }
        }
        for (let i = this.#outgoingHead; i < end; i++) {
          const entry = outgoing[i];
          entry.resolve?.();
          outgoing[i] = DONE;
        }
        this.#outgoingHead = end;
        if (end === outgoing.length) {
          outgoing.length = 0;
          this.#outgoingHead = 0;
        } else if (end >= 1024) {
          outgoing.splice(0, end);
          this.#outgoingHead = 0;
        }
      }
    } finally {
      this.#writing = false;
    }
  }

  /** Rejects every message not written yet with the closed error. */
  #rejectOutgoing(): void {
    const outgoing = this.#outgoing;
    const closed = this.#host.closedError();
    for (let i = this.#outgoingHead; i < outgoing.length; i++) outgoing[i].reject(closed);
    outgoing.length = 0;
    this.#outgoingHead = 0;
  }
}

/** A transport message on its way out. */
interface Outgoing {
  /** Its encryption; `undefined` for the marker of an empty `writeMany`. */
  sealed: Promise<Uint8Array> | undefined;
  /** The ciphertext, once encrypted (`EMPTY` for a marker). */
  ciphertext: Uint8Array | undefined;
  /** Settles the `writeMany` call whose last message this is. */
  resolve: (() => void) | undefined;
  /** Rejects the `writeMany` call it belongs to. */
  reject: (error: unknown) => void;
}

const EMPTY = new Uint8Array(0);
/** What a written entry is replaced with, so that its buffers can be collected. */
const DONE: Outgoing = {
  sealed: undefined,
  ciphertext: EMPTY,
  resolve: undefined,
  reject: noop,
};

function noop(): void {}
