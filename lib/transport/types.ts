/**
 * The byte-stream layer's interfaces. A {@linkcode Transport} only produces
 * byte streams (as in rust-libp2p): it dials and listens, and every feature
 * (the secure channel, framing, protocols) is layered on top of the
 * {@linkcode ByteStream}s it returns.
 *
 * The hot path is plain `read(buffer)` / `write(bytes)`, shaped like
 * `Deno.Conn`, so that the layers above can pump bytes with no Web Streams and
 * no per-chunk allocation of their own.
 *
 * ## Close and end-of-stream semantics
 *
 * Every implementation in `lib/transport/` behaves the same way:
 *
 * - `closeWrite()` half-closes: the peer's reads return the bytes already
 *   written, then `null`. This side may still read. It waits for a write in
 *   flight to finish first, is idempotent, and later writes reject with
 *   `ConnectionClosedError`.
 * - `close()` closes both directions at once and is idempotent. A read
 *   pending on this side resolves `null`, and so do later reads; a write
 *   pending or later on this side rejects with `ConnectionClosedError`.
 * - When the peer calls `close()`, this side's reads return what has already
 *   arrived, then `null`, and this side's writes reject with
 *   `ConnectionClosedError` (the memory transport at once, TCP once the
 *   operating system learns that the peer is gone; a TCP reset can also make a
 *   read reject with `ConnectionClosedError`).
 * - A stream that ended must still be `close()`d to free its resources.
 *
 * Reads and writes must each be issued one at a time: await a `write` before
 * the next one, or their bytes may interleave.
 *
 * @module
 */

/**
 * A bidirectional byte stream between two endpoints.
 *
 * @example
 * ```ts
 * import type { ByteStream } from "@carrier/p2p";
 * async function readAll(stream: ByteStream): Promise<number> {
 *   const buffer = new Uint8Array(64 * 1024);
 *   let total = 0;
 *   for (let n; (n = await stream.read(buffer)) !== null;) total += n;
 *   return total;
 * }
 * ```
 */
export interface ByteStream {
  /**
   * Reads into `buffer` as many bytes as are available (at most
   * `buffer.length`), waiting only while none are.
   *
   * @returns The number of bytes read, or `null` at the end of the stream
   * (the peer half-closed or closed, or this side closed).
   */
  read(buffer: Uint8Array): Promise<number | null>;
  /**
   * Writes all of `data`, looping over partial writes. It waits while the
   * peer is not reading (backpressure). The caller may reuse `data` once the
   * promise resolves.
   *
   * @throws {ConnectionClosedError} When the stream was closed or
   * half-closed, or the peer went away.
   */
  write(data: Uint8Array): Promise<void>;
  /** Half-closes: the peer's reads end with `null` after the data written so far. Idempotent. */
  closeWrite(): Promise<void>;
  /** Closes both directions now; pending and later reads resolve `null`, writes reject. Idempotent. */
  close(): void;
  /** This end's address, as {@linkcode formatTransportAddress} writes it: `"host:port"` (IPv6 as `"[::1]:port"`), `"mem:name"`. */
  readonly localAddress: string;
  /** The other end's address, in the same form as {@linkcode ByteStream.localAddress}. */
  readonly remoteAddress: string;
  /**
   * For a relayed circuit (see `relay.proto`): the relay's address (base58).
   * Undefined for a transport's own streams.
   */
  readonly relay?: string;
}

/**
 * The inbound side of a transport: an async iterable of accepted streams.
 * Iterating again after a `break` resumes accepting; `close()` ends every
 * iteration (streams already accepted stay open).
 *
 * @example
 * ```ts
 * import type { ByteStream, Listener } from "@carrier/p2p";
 * async function serve(
 *   listener: Listener,
 *   handle: (stream: ByteStream) => Promise<void>,
 * ): Promise<void> {
 *   for await (const stream of listener) {
 *     handle(stream).finally(() => stream.close());
 *   }
 * }
 * ```
 */
export interface Listener extends AsyncIterable<ByteStream> {
  /** The address actually bound, with the port (or name) resolved when 0 was asked. */
  readonly address: string;
  /** Stops listening and ends the iteration. Idempotent. */
  close(): void;
}

/**
 * Options of {@linkcode Transport.dial}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { DialOptions } from "@carrier/p2p";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
 * await using net = new MemoryNetwork();
 * const listener = await net.transport().listen("mem:server");
 * const options: DialOptions = { signal: AbortSignal.abort(new Error("gave up")) };
 * await assert.rejects(net.transport().dial(listener.address, options), { message: "gave up" });
 * ```
 */
export interface DialOptions {
  /**
   * Aborts the dial: it rejects with the signal's reason, and a connection
   * that completes later is closed. A dial timeout is
   * `AbortSignal.timeout(ms)`.
   *
   * @default {undefined}
   */
  signal?: AbortSignal;
}

/**
 * Options of {@linkcode Transport.listen}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { ListenOptions } from "@carrier/p2p";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
 * await using net = new MemoryNetwork();
 * const controller = new AbortController();
 * const options: ListenOptions = { signal: controller.signal };
 * const listener = await net.transport().listen("mem:0", options);
 * controller.abort(); // closes the listener: the loop below ends at once
 * for await (const _stream of listener) assert.fail("a closed listener accepts nothing");
 * ```
 */
export interface ListenOptions {
  /**
   * Aborted before `listen` resolves, the call rejects with the signal's
   * reason; aborted later, it closes the listener.
   *
   * @default {undefined}
   */
  signal?: AbortSignal;
}

/**
 * Something that dials and listens, producing {@linkcode ByteStream}s, at
 * the addresses of the schemes it declares.
 *
 * @example
 * ```ts
 * import type { Transport } from "@carrier/p2p";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
 * const transport: Transport = new MemoryNetwork().transport();
 * const listener = await transport.listen("mem:0");
 * const stream = await transport.dial(listener.address);
 * stream.close();
 * listener.close();
 * ```
 */
export interface Transport {
  /**
   * The address schemes this transport dials and listens on, as
   * {@linkcode parseTransportAddress} names them: `["tcp"]` for `HOST:PORT`,
   * `["mem"]` for `mem:NAME`, `["ws"]` for `ws://HOST:PORT`. A
   * {@linkcode MultiTransport} hands each address to the part whose schemes
   * hold the address's scheme, so every part must declare them; a transport
   * that does not (a test's wrapper) can still be a node's only transport.
   */
  readonly schemes?: readonly string[];
  /**
   * Opens a stream to `address`.
   *
   * @throws {DialError} When nothing accepts at `address` (refused, unreachable, unknown name).
   * @throws {TransportAddressError} When `address` is malformed or of a scheme it does not take.
   */
  dial(address: string, options?: DialOptions): Promise<ByteStream>;
  /**
   * Starts accepting streams at `address`.
   *
   * @throws {ListenError} When the address is in use or cannot be bound.
   * @throws {TransportAddressError} When `address` is malformed or of a scheme it does not take.
   */
  listen(address: string, options?: ListenOptions): Promise<Listener>;
}
