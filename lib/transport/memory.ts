/**
 * In-process transport: connected stream pairs inside one process, for tests
 * and for simulations of thousands of nodes. No sockets, no timers: every
 * wake-up is a resolved promise, so a run is deterministic.
 *
 * Addresses are `"mem:<name>"`; listening on `"mem:0"` picks a fresh name.
 * Each direction of a connection holds at most `bufferSize` unread bytes: a
 * writer waits while its peer's unread bytes fill that bound, so a peer that
 * never reads makes the writer wait instead of growing memory. Written bytes
 * are copied, so the writer may reuse its buffer at once.
 *
 * Streams follow the close and end-of-stream semantics described in
 * `types.ts`, with one simplification over TCP: closing a stream with unread
 * data never resets the connection, so the peer always reads everything that
 * was written before the close, then `null`.
 *
 * @module
 */

import { ConnectionClosedError, DialError, ListenError, TransportAddressError } from "../errors.ts";
import type { ByteStream, DialOptions, Listener, ListenOptions, Transport } from "./types.ts";

/**
 * Options of {@linkcode MemoryNetwork}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DialError, MemoryNetwork, type MemoryNetworkOptions } from "@carrier/p2p";
 * const options: MemoryNetworkOptions = { backlog: 1, bufferSize: 16 * 1024 };
 * await using net = new MemoryNetwork(options);
 * const listener = await net.transport().listen("mem:0"); // never accepts
 * await net.transport().dial(listener.address); // waits in the backlog
 * await assert.rejects(net.transport().dial(listener.address), DialError);
 * ```
 */
export interface MemoryNetworkOptions {
  /**
   * Most unread bytes one direction of a connection holds; a write waits
   * while the peer's unread bytes reach it.
   *
   * @default {262144}
   */
  bufferSize?: number;
  /**
   * Most dialed streams a listener holds before they are accepted; a dial
   * beyond it fails with `DialError`.
   *
   * @default {128}
   */
  backlog?: number;
}

/**
 * Default of {@linkcode MemoryNetworkOptions.bufferSize}: 256 KiB.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DEFAULT_MEMORY_BUFFER_SIZE, MemoryNetwork } from "@carrier/p2p";
 * await using net = new MemoryNetwork();
 * const listener = await net.transport().listen("mem:0");
 * const accepting = (async () => {
 *   for await (const stream of listener) return stream;
 * })();
 * const client = await net.transport().dial(listener.address);
 * const writing = client.write(new Uint8Array(DEFAULT_MEMORY_BUFFER_SIZE + 1)); // 1 byte waits
 * const server = (await accepting)!;
 * const buffer = new Uint8Array(2 * DEFAULT_MEMORY_BUFFER_SIZE);
 * assert.equal(await server.read(buffer), DEFAULT_MEMORY_BUFFER_SIZE);
 * assert.equal(await server.read(buffer), 1);
 * await writing;
 * ```
 */
export const DEFAULT_MEMORY_BUFFER_SIZE = 256 * 1024;

/**
 * Default of {@linkcode MemoryNetworkOptions.backlog}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DEFAULT_MEMORY_BACKLOG, DialError, MemoryNetwork } from "@carrier/p2p";
 * await using net = new MemoryNetwork();
 * const listener = await net.transport().listen("mem:busy"); // never accepts
 * const client = net.transport();
 * for (let i = 0; i < DEFAULT_MEMORY_BACKLOG; i++) await client.dial(listener.address);
 * await assert.rejects(client.dial(listener.address), DialError);
 * ```
 */
export const DEFAULT_MEMORY_BACKLOG = 128;

/** Longest name after `"mem:"`. */
const MAX_NAME_LENGTH = 255;

const MEMORY_PREFIX = "mem:";

/** Writes shorter than this are packed together while the reader lags. */
const SMALL_WRITE = 512;

/** Size of the blocks that pack small writes. */
const BLOCK_SIZE = 4096;

/**
 * Parses `"mem:<name>"` and returns the name: 1 to 255 characters, no
 * whitespace (`"0"` asks `listen` for a fresh name).
 *
 * @param address The memory address.
 * @returns The name after `"mem:"`.
 * @throws {TransportAddressError} Naming the input and why.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseMemoryAddress } from "@carrier/p2p";
 * assert.equal(parseMemoryAddress("mem:alice"), "alice");
 * ```
 */
export function parseMemoryAddress(address: string): string {
  if (typeof address !== "string") {
    throw new TransportAddressError(
      `Cannot parse memory address: expected a string, got ${typeof address}`,
    );
  }
  const fail = (why: string): never => {
    throw new TransportAddressError(
      `Cannot parse memory address ${JSON.stringify(address)}: ${why}`,
    );
  };
  if (!address.startsWith(MEMORY_PREFIX)) fail(`expected "mem:<name>"`);
  const name = address.slice(MEMORY_PREFIX.length);
  if (name === "") fail("empty name");
  if (name.length > MAX_NAME_LENGTH) {
    fail(`name of ${name.length} characters exceeds ${MAX_NAME_LENGTH}`);
  }
  if (/\s/.test(name)) fail("name contains whitespace");
  return name;
}

/** Resolves every waiter in a chain built by {@linkcode chain}. */
type Wake = () => void;

function chain(previous: Wake | null, next: Wake): Wake {
  return previous === null ? next : () => {
    previous();
    next();
  };
}

/**
 * One direction of a connection: a bounded queue of copied chunks, the
 * writer's end-of-stream mark, and the waiting reader and writer.
 */
class Pipe {
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

/** One end of an in-memory connection. */
class MemoryByteStream implements ByteStream, AsyncDisposable {
  readonly localAddress: string;
  readonly remoteAddress: string;
  #in: Pipe;
  #out: Pipe;
  #onClose: ((self: MemoryByteStream) => void) | null = null;
  #closed = false;
  #writeClosed: Promise<void> | null = null;
  #writing = 0;
  #drained: Wake | null = null;

  constructor(
    localAddress: string,
    remoteAddress: string,
    input: Pipe,
    output: Pipe,
  ) {
    this.localAddress = localAddress;
    this.remoteAddress = remoteAddress;
    this.#in = input;
    this.#out = output;
  }

  /** Sets who is told when this stream closes (the transport that tracks it). */
  setOnClose(onClose: (self: MemoryByteStream) => void): void {
    this.#onClose = onClose;
  }

  async read(buffer: Uint8Array): Promise<number | null> {
    const pipe = this.#in;
    while (true) {
      if (this.#closed) return null;
      if (buffer.length === 0) return 0;
      if (pipe.buffered > 0) return pipe.take(buffer);
      if (pipe.ended) return null;
      await pipe.waitReadable();
    }
  }

  async write(data: Uint8Array): Promise<void> {
    if (this.#closed || this.#writeClosed !== null) {
      throw new ConnectionClosedError(
        `Cannot write to ${this.remoteAddress}: the stream is ${
          this.#closed ? "closed" : "closed for writing"
        }`,
      );
    }
    const pipe = this.#out;
    this.#writing++;
    try {
      let offset = 0;
      while (true) {
        if (this.#closed) {
          throw new ConnectionClosedError(
            `Cannot write to ${this.remoteAddress}: the stream was closed`,
          );
        }
        if (pipe.abandoned) {
          throw new ConnectionClosedError(
            `Cannot write to ${this.remoteAddress}: the peer closed the stream`,
          );
        }
        if (offset === data.length) return;
        const space = pipe.capacity - pipe.buffered;
        if (space > 0) {
          const end = Math.min(data.length, offset + space);
          pipe.push(data, offset, end);
          offset = end;
        } else {
          await pipe.waitWritable();
        }
      }
    } finally {
      if (--this.#writing === 0 && this.#drained !== null) {
        const drained = this.#drained;
        this.#drained = null;
        drained();
      }
    }
  }

  closeWrite(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#writeClosed ??= this.#shutdown();
    return this.#writeClosed;
  }

  async #shutdown(): Promise<void> {
    if (this.#writing > 0) {
      await new Promise<void>((resolve) => this.#drained = resolve);
    }
    this.#out.end();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#out.end();
    this.#in.abandon();
    this.#onClose?.(this);
  }

  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }
}

/** A bound name on a {@linkcode MemoryNetwork}, and its backlog of unaccepted streams. */
class MemoryListener implements Listener, AsyncDisposable {
  readonly address: string;
  /** The transport that listens, which tracks the streams accepted here. */
  readonly owner: MemoryEndpoint;
  #backlog: MemoryByteStream[] = [];
  #limit: number;
  #arrival: Wake | null = null;
  #closed = false;
  #onClose: (self: MemoryListener) => void;
  #signal: AbortSignal | undefined;
  #onAbort: (() => void) | null = null;

  constructor(
    address: string,
    owner: MemoryEndpoint,
    limit: number,
    onClose: (self: MemoryListener) => void,
    signal: AbortSignal | undefined,
  ) {
    this.address = address;
    this.owner = owner;
    this.#limit = limit;
    this.#onClose = onClose;
    this.#signal = signal;
    if (signal !== undefined) {
      this.#onAbort = () => this.close();
      signal.addEventListener("abort", this.#onAbort, { once: true });
    }
  }

  /** Queues a dialed stream for accepting; false when closed or the backlog is full. */
  offer(stream: MemoryByteStream): boolean {
    if (this.#closed || this.#backlog.length >= this.#limit) return false;
    this.#backlog.push(stream);
    const wake = this.#arrival;
    if (wake !== null) {
      this.#arrival = null;
      wake();
    }
    return true;
  }

  /** Whether the backlog is full or the listener closed. */
  get refusing(): boolean {
    return this.#closed || this.#backlog.length >= this.#limit;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<ByteStream, void, undefined> {
    while (true) {
      const stream = this.#backlog.shift();
      if (stream !== undefined) {
        yield stream;
        continue;
      }
      if (this.#closed) return;
      await new Promise<void>((resolve) => {
        this.#arrival = chain(this.#arrival, resolve);
      });
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#onAbort !== null) {
      this.#signal?.removeEventListener("abort", this.#onAbort);
      this.#onAbort = null;
    }
    const unaccepted = this.#backlog;
    this.#backlog = [];
    for (const stream of unaccepted) stream.close();
    const wake = this.#arrival;
    this.#arrival = null;
    wake?.();
    this.#onClose(this);
  }

  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }
}

/** The state a {@linkcode MemoryNetwork} shares with its transports. */
class Switchboard {
  readonly bufferSize: number;
  readonly backlog: number;
  readonly listeners = new Map<string, MemoryListener>();
  readonly endpoints = new Set<MemoryEndpoint>();
  #next = 1;

  constructor(bufferSize: number, backlog: number) {
    this.bufferSize = bufferSize;
    this.backlog = backlog;
  }

  /** A name never handed out before and not bound now. */
  freshName(): string {
    while (true) {
      const name = String(this.#next++);
      if (!this.listeners.has(name)) return name;
    }
  }
}

/**
 * A transport on a {@linkcode MemoryNetwork}: one simulated host.
 * `close()` "crashes" it: every listener and every stream it dialed or
 * accepted closes at once, and its peers read `null`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MemoryNetwork, type MemoryTransport } from "@carrier/p2p";
 * await using net = new MemoryNetwork();
 * const host: MemoryTransport = net.transport();
 * const listener = await host.listen("mem:0");
 * const stream = await net.transport().dial(listener.address);
 * host.close(); // the host "crashes": its peers read the end of the stream
 * assert.equal(await stream.read(new Uint8Array(1)), null);
 * ```
 */
export interface MemoryTransport extends Transport, AsyncDisposable {
  /** Connects to the listener bound at `address` (`"mem:<name>"`). */
  dial(
    address: string,
    options?: DialOptions,
  ): Promise<ByteStream & AsyncDisposable>;
  /** Binds `address` (`"mem:<name>"`, or `"mem:0"` for a fresh name). */
  listen(
    address: string,
    options?: ListenOptions,
  ): Promise<Listener & AsyncDisposable>;
  /** Closes every listener and stream of this transport; later dials and listens fail. Idempotent. */
  close(): void;
}

class MemoryEndpoint implements MemoryTransport {
  #board: Switchboard;
  #listeners = new Set<MemoryListener>();
  #streams = new Set<MemoryByteStream>();
  #closed = false;
  #forget = (stream: MemoryByteStream): void => {
    this.#streams.delete(stream);
  };

  constructor(board: Switchboard) {
    this.#board = board;
  }

  async dial(
    address: string,
    options: DialOptions = {},
  ): Promise<ByteStream & AsyncDisposable> {
    const name = parseMemoryAddress(address);
    const { signal } = options;
    signal?.throwIfAborted();
    // Like a real connect, a dial completes on a later turn, so an abort
    // right after the call still cancels it.
    await Promise.resolve();
    signal?.throwIfAborted();
    if (this.#closed) {
      throw new DialError(`Cannot dial ${address}: the transport is closed`);
    }
    const board = this.#board;
    const listener = board.listeners.get(name);
    if (listener === undefined) {
      throw new DialError(
        `Cannot dial ${address}: connection refused (no listener at that address)`,
      );
    }
    if (listener.refusing) {
      throw new DialError(
        `Cannot dial ${address}: connection refused (backlog of ${board.backlog} full)`,
      );
    }
    const local = MEMORY_PREFIX + board.freshName();
    const toListener = new Pipe(board.bufferSize);
    const toDialer = new Pipe(board.bufferSize);
    const dialed = new MemoryByteStream(local, address, toDialer, toListener);
    const accepted = new MemoryByteStream(address, local, toListener, toDialer);
    listener.owner.track(accepted);
    listener.offer(accepted);
    this.track(dialed);
    return dialed;
  }

  // deno-lint-ignore require-await
  async listen(
    address: string,
    options: ListenOptions = {},
  ): Promise<Listener & AsyncDisposable> {
    let name = parseMemoryAddress(address);
    const { signal } = options;
    signal?.throwIfAborted();
    if (this.#closed) {
      throw new ListenError(
        `Cannot listen on ${address}: the transport is closed`,
      );
    }
    const board = this.#board;
    if (name === "0") name = board.freshName();
    else if (board.listeners.has(name)) {
      throw new ListenError(`Cannot listen on ${address}: address in use`);
    }
    const listener = new MemoryListener(
      MEMORY_PREFIX + name,
      this,
      board.backlog,
      (self) => {
        board.listeners.delete(name);
        this.#listeners.delete(self);
      },
      signal,
    );
    board.listeners.set(name, listener);
    this.#listeners.add(listener);
    return listener;
  }

  /** Counts `stream` as this transport's, so `close()` closes it. */
  track(stream: MemoryByteStream): void {
    if (this.#closed) {
      stream.close();
      return;
    }
    stream.setOnClose(this.#forget);
    this.#streams.add(stream);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const listener of [...this.#listeners]) listener.close();
    for (const stream of [...this.#streams]) stream.close();
    this.#board.endpoints.delete(this);
  }

  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }
}

function checkPositiveInteger(key: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(
      `Invalid MemoryNetwork option ${key}: expected a positive integer, got ${value}`,
    );
  }
}

/**
 * A simulated network inside one process. Each {@linkcode MemoryTransport}
 * from {@linkcode MemoryNetwork.transport} is one host on it; hosts reach
 * each other by `"mem:<name>"` addresses.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MemoryNetwork } from "@carrier/p2p";
 * await using net = new MemoryNetwork({ bufferSize: 64 * 1024 });
 * const alice = net.transport();
 * const bob = net.transport();
 * const listener = await alice.listen("mem:alice");
 * const accepting = (async () => {
 *   for await (const stream of listener) return stream;
 * })();
 * const toAlice = await bob.dial("mem:alice");
 * await toAlice.write(new TextEncoder().encode("hi"));
 * const atAlice = await accepting;
 * const buffer = new Uint8Array(16);
 * assert.equal(await atAlice!.read(buffer), 2);
 * bob.close(); // "crash" bob: alice's reads end with null
 * assert.equal(await atAlice!.read(buffer), null);
 * ```
 */
export class MemoryNetwork implements AsyncDisposable {
  #board: Switchboard;

  /**
   * Creates an empty network.
   *
   * @param options Buffer and backlog bounds shared by every connection.
   * @throws {RangeError} When a bound is not a positive integer.
   */
  constructor(options: MemoryNetworkOptions = {}) {
    const {
      bufferSize = DEFAULT_MEMORY_BUFFER_SIZE,
      backlog = DEFAULT_MEMORY_BACKLOG,
    } = options;
    checkPositiveInteger("bufferSize", bufferSize);
    checkPositiveInteger("backlog", backlog);
    this.#board = new Switchboard(bufferSize, backlog);
  }

  /** Adds a host to the network and returns its transport. */
  transport(): MemoryTransport {
    const endpoint = new MemoryEndpoint(this.#board);
    this.#board.endpoints.add(endpoint);
    return endpoint;
  }

  /** Closes every transport on the network (see {@linkcode MemoryTransport.close}). */
  close(): void {
    for (const endpoint of [...this.#board.endpoints]) endpoint.close();
  }

  /** Same as {@linkcode MemoryNetwork.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }
}
