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

import { ArgumentError, ConnectionClosedError, DialError, ListenError } from "../errors.ts";
import { formatTransportAddress, MEMORY_SCHEME, parseTransportAddress } from "./address.ts";
import { chain, Pipe, type Wake } from "./_pipe.ts";
import { closeOnAbort, StreamBase } from "./_stream.ts";
import type { ByteStream, DialOptions, Listener, ListenOptions, Transport } from "./types.ts";

/**
 * Options of {@linkcode MemoryNetwork}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DialError } from "@carrier/p2p";
 * import { MemoryNetwork, type MemoryNetworkOptions } from "@carrier/p2p/testing";
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
 * import { DEFAULT_MEMORY_BUFFER_SIZE, MemoryNetwork } from "@carrier/p2p/testing";
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
 * import { DialError } from "@carrier/p2p";
 * import { DEFAULT_MEMORY_BACKLOG, MemoryNetwork } from "@carrier/p2p/testing";
 * await using net = new MemoryNetwork();
 * const listener = await net.transport().listen("mem:busy"); // never accepts
 * const client = net.transport();
 * for (let i = 0; i < DEFAULT_MEMORY_BACKLOG; i++) await client.dial(listener.address);
 * await assert.rejects(client.dial(listener.address), DialError);
 * ```
 */
export const DEFAULT_MEMORY_BACKLOG = 128;

/**
 * Parses `"mem:<name>"` and returns the name: 1 to 255 characters, no
 * whitespace (`"0"` asks `listen` for a fresh name), with
 * {@linkcode parseTransportAddress}, requiring the `mem` scheme.
 *
 * @param address The memory address.
 * @returns The name after `"mem:"`.
 * @throws {TransportAddressError} Naming the input and why.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseMemoryAddress } from "@carrier/p2p/testing";
 * assert.equal(parseMemoryAddress("mem:alice"), "alice");
 * ```
 */
export function parseMemoryAddress(address: string): string {
  return parseTransportAddress(address, MEMORY_SCHEME).name!;
}

function memoryAddress(name: string): string {
  return formatTransportAddress({ scheme: MEMORY_SCHEME, name });
}

/** One end of an in-memory connection. */
class MemoryByteStream extends StreamBase {
  readonly localAddress: string;
  readonly remoteAddress: string;
  #in: Pipe;
  #out: Pipe;

  constructor(
    localAddress: string,
    remoteAddress: string,
    input: Pipe,
    output: Pipe,
  ) {
    super();
    this.localAddress = localAddress;
    this.remoteAddress = remoteAddress;
    this.#in = input;
    this.#out = output;
  }

  async read(buffer: Uint8Array): Promise<number | null> {
    const pipe = this.#in;
    while (true) {
      if (this.closed) return null;
      if (buffer.length === 0) return 0;
      if (pipe.buffered > 0) return pipe.take(buffer);
      if (pipe.ended) return null;
      await pipe.waitReadable();
    }
  }

  protected async writeAll(data: Uint8Array): Promise<void> {
    const pipe = this.#out;
    let offset = 0;
    while (true) {
      if (this.closed) {
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
  }

  protected endWrite(): Promise<void> {
    this.#out.end();
    return Promise.resolve();
  }

  protected release(): void {
    this.#out.end();
    this.#in.abandon();
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
  #stopAbort: () => void;

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
    this.#stopAbort = closeOnAbort(signal, () => this.close());
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
    this.#stopAbort();
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
 * import { MemoryNetwork, type MemoryTransport } from "@carrier/p2p/testing";
 * await using net = new MemoryNetwork();
 * const host: MemoryTransport = net.transport();
 * const listener = await host.listen("mem:0");
 * const stream = await net.transport().dial(listener.address);
 * host.close(); // the host "crashes": its peers read the end of the stream
 * assert.equal(await stream.read(new Uint8Array(1)), null);
 * ```
 */
export interface MemoryTransport extends Transport, AsyncDisposable {
  /** A memory transport takes `mem:NAME` addresses: `["mem"]`. */
  readonly schemes: readonly string[];
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
  readonly schemes: readonly string[] = [MEMORY_SCHEME];
  #board: Switchboard;
  #listeners = new Set<MemoryListener>();
  #streams = new Set<StreamBase>();
  #closed = false;
  #forget = (stream: StreamBase): void => {
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
    const local = memoryAddress(board.freshName());
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
      memoryAddress(name),
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
    throw new ArgumentError(
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
 * import { MemoryNetwork } from "@carrier/p2p/testing";
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
   * @throws {ArgumentError} When a bound is not a positive integer.
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
