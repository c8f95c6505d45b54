/**
 * What every transport's streams and listeners share (private to
 * `lib/transport/`): the close and end-of-stream bookkeeping described in
 * `types.ts`, so that each transport only says how it moves and ends bytes.
 *
 * @module
 */

import { ConnectionClosedError } from "../errors.ts";
import type { ByteStream } from "./types.ts";

/**
 * A {@linkcode ByteStream} with the shared close semantics: `write` rejects
 * once the stream is closed or half-closed, `closeWrite` waits for the write
 * in flight and is idempotent, `close` is idempotent and tells the owner
 * (the transport that tracks the stream). A subclass implements the moving
 * of bytes (`read`, {@linkcode StreamBase.writeAll}) and the ends
 * ({@linkcode StreamBase.endWrite}, {@linkcode StreamBase.release}).
 */
export abstract class StreamBase implements ByteStream, AsyncDisposable {
  abstract readonly localAddress: string;
  abstract readonly remoteAddress: string;
  #onClose: ((self: StreamBase) => void) | null = null;
  #closed = false;
  #writeClosed: Promise<void> | null = null;
  /** The last write (writes are issued one at a time), for `closeWrite` to wait for. */
  #lastWrite: Promise<void> | null = null;

  /** Whether `close()` was called. */
  protected get closed(): boolean {
    return this.#closed;
  }

  /** Sets who is told when this stream closes (the transport that tracks it). */
  setOnClose(onClose: (self: StreamBase) => void): void {
    this.#onClose = onClose;
  }

  abstract read(buffer: Uint8Array): Promise<number | null>;

  /** Writes all of `data`; the stream is open for writing when it is called. */
  protected abstract writeAll(data: Uint8Array): Promise<void>;

  /** Ends this side's writing (the peer reads `null` after the data); no write is in flight. */
  protected abstract endWrite(): Promise<void>;

  /** Frees the stream's resources when it closes; called once. */
  protected abstract release(): void;

  write(data: Uint8Array): Promise<void> {
    if (this.#closed || this.#writeClosed !== null) {
      return Promise.reject(
        new ConnectionClosedError(
          `Cannot write to ${this.remoteAddress}: the stream is ${
            this.#closed ? "closed" : "closed for writing"
          }`,
        ),
      );
    }
    // No wrapper promise: the subclass's own is the write (the hot path).
    return this.#lastWrite = this.writeAll(data);
  }

  closeWrite(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#writeClosed ??= this.#shutdown();
    return this.#writeClosed;
  }

  async #shutdown(): Promise<void> {
    const writing = this.#lastWrite;
    this.#lastWrite = null;
    if (writing !== null) await writing.catch(() => {});
    if (this.#closed) return;
    await this.endWrite();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.release();
    this.#onClose?.(this);
  }

  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }
}

/**
 * Calls `close` when `signal` aborts (a listener's `ListenOptions.signal`).
 *
 * @returns A function that stops listening to the signal, for the listener's
 * own `close()`; idempotent.
 */
export function closeOnAbort(signal: AbortSignal | undefined, close: () => void): () => void {
  if (signal === undefined) return () => {};
  let listening = true;
  signal.addEventListener("abort", close, { once: true });
  return () => {
    if (!listening) return;
    listening = false;
    signal.removeEventListener("abort", close);
  };
}
