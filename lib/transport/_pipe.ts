/**
 * One direction of an in-memory connection (private to `lib/transport/`):
 * a bounded queue of copied chunks with its waiting reader and writer.
 *
 * @module
 */

/** Writes shorter than this are packed together while the reader lags. */
const SMALL_WRITE = 512;

/** Size of the blocks that pack small writes. */
const BLOCK_SIZE = 4096;

/** Resolves every waiter in a chain built by {@linkcode chain}. */
export type Wake = () => void;

export function chain(previous: Wake | null, next: Wake): Wake {
  return previous === null ? next : () => {
    previous();
    next();
  };
}

/**
 * One direction of a connection: a bounded queue of copied chunks, the
 * writer's end-of-stream mark, and the waiting reader and writer.
 */
export class Pipe {
  readonly capacity: number;
  /** Unread bytes. */
  buffered = 0;
  /** The writing side half-closed or closed: reads end after the data. */
  ended = false;
  /** The reading side closed: data is dropped and writes fail. */
  abandoned = false;
  #chunks: Uint8Array[] = [];
  #head = 0;
  #offset = 0;
  /** Block the last chunk is a view of, when small writes are being packed. */
  #block: Uint8Array | null = null;
  #blockUsed = 0;
  #readable: Wake | null = null;
  #writable: Wake | null = null;

  constructor(capacity: number) {
    this.capacity = capacity;
  }

  /** Copies `data[start, end)` in; the caller keeps `buffered` within `capacity`. */
  push(data: Uint8Array, start: number, end: number): void {
    const length = end - start;
    if (length < SMALL_WRITE && this.buffered > 0) {
      // The reader lags: pack small writes into a shared block rather than
      // one allocation each.
      const block = this.#block;
      if (block !== null && BLOCK_SIZE - this.#blockUsed >= length) {
        block.set(data.subarray(start, end), this.#blockUsed);
        const last = this.#chunks.length - 1;
        const from = this.#chunks[last].byteOffset;
        this.#blockUsed += length;
        this.#chunks[last] = block.subarray(from, this.#blockUsed);
      } else {
        const fresh = new Uint8Array(BLOCK_SIZE);
        fresh.set(data.subarray(start, end));
        this.#block = fresh;
        this.#blockUsed = length;
        this.#chunks.push(fresh.subarray(0, length));
      }
    } else {
      this.#block = null;
      this.#chunks.push(data.slice(start, end));
    }
    this.buffered += length;
    this.#wakeReader();
  }

  /** Moves up to `buffer.length` unread bytes into `buffer`; `buffered` must be > 0. */
  take(buffer: Uint8Array): number {
    const chunks = this.#chunks;
    let copied = 0;
    while (copied < buffer.length && this.#head < chunks.length) {
      const chunk = chunks[this.#head];
      const n = Math.min(chunk.length - this.#offset, buffer.length - copied);
      buffer.set(
        n === chunk.length ? chunk : chunk.subarray(this.#offset, this.#offset + n),
        copied,
      );
      copied += n;
      this.#offset += n;
      if (this.#offset === chunk.length) {
        this.#head++;
        this.#offset = 0;
      }
    }
    this.buffered -= copied;
    if (this.#head === chunks.length) {
      this.#reset();
    } else if (this.#head > 64 && this.#head * 2 > chunks.length) {
      chunks.splice(0, this.#head);
      this.#head = 0;
    }
    if (this.buffered < this.capacity) this.#wakeWriter();
    return copied;
  }

  /** The writing side is done: the reader gets `null` after the data, a waiting writer re-checks why. */
  end(): void {
    this.ended = true;
    this.#wakeReader();
    this.#wakeWriter();
  }

  /** The reading side is gone: drop the data, fail the writer, end the reader. */
  abandon(): void {
    this.abandoned = true;
    this.ended = true;
    this.buffered = 0;
    this.#reset();
    this.#wakeReader();
    this.#wakeWriter();
  }

  waitReadable(): Promise<void> {
    return new Promise((resolve) => {
      this.#readable = chain(this.#readable, resolve);
    });
  }

  waitWritable(): Promise<void> {
    return new Promise((resolve) => {
      this.#writable = chain(this.#writable, resolve);
    });
  }

  #reset(): void {
    this.#chunks = [];
    this.#head = 0;
    this.#offset = 0;
    this.#block = null;
    this.#blockUsed = 0;
  }

  #wakeReader(): void {
    const wake = this.#readable;
    if (wake !== null) {
      this.#readable = null;
      wake();
    }
  }

  #wakeWriter(): void {
    const wake = this.#writable;
    if (wake !== null) {
      this.#writable = null;
      wake();
    }
  }
}
