/**
 * TCP transport over `Deno.listen` / `Deno.connect`, IPv4 and IPv6, with
 * Nagle's algorithm off on every connection (`setNoDelay(true)`), plus the
 * `host:port` address helpers {@linkcode parseHostPort} and
 * {@linkcode formatHostPort}.
 *
 * Streams follow the close and end-of-stream semantics described in
 * `types.ts`.
 *
 * @module
 */

import { ConnectionClosedError, DialError, ListenError } from "../errors.ts";
import { formatTransportAddress, parseTransportAddress, TCP_SCHEME } from "./address.ts";
import { closeOnAbort, StreamBase } from "./_stream.ts";
import { errorMessage } from "../_error_message.ts";
import type { ByteStream, DialOptions, Listener, ListenOptions, Transport } from "./types.ts";

/**
 * A host name or IP address and a port, as {@linkcode parseHostPort} returns them.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatHostPort, type HostPort, parseHostPort } from "@carrier/p2p/protocol";
 * const { hostname, port }: HostPort = parseHostPort("[::1]:4000");
 * assert.equal(formatHostPort(hostname, port + 1), "[::1]:4001");
 * ```
 */
export interface HostPort {
  /** A host name or IP address; IPv6 without brackets (`"::1"`). */
  hostname: string;
  /** A port from 0 to 65535; 0 asks the system for a free port when listening. */
  port: number;
}

/**
 * Parses a TCP address, `"host:port"` or `"[ipv6]:port"`, into its parts
 * (with {@linkcode parseTransportAddress}, requiring the `tcp` scheme).
 *
 * @param address The address: `"127.0.0.1:0"`, `"[::1]:4000"`, `"localhost:80"`.
 * @returns The host (IPv6 without brackets) and the port.
 * @throws {TransportAddressError} Naming the input and why, e.g.
 * `Cannot parse address "127.0.0.1": missing ":port"`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseHostPort } from "@carrier/p2p/protocol";
 * assert.deepEqual(parseHostPort("[::1]:4000"), { hostname: "::1", port: 4000 });
 * ```
 */
export function parseHostPort(address: string): HostPort {
  const { host, port } = parseTransportAddress(address, TCP_SCHEME);
  return { hostname: host!, port: port! };
}

/**
 * Formats a host and a port as `"host:port"`, putting an IPv6 address in
 * brackets (`"[::1]:4000"`), with {@linkcode formatTransportAddress}.
 *
 * @param hostname A host name or IP address (IPv6 without brackets).
 * @param port A port from 0 to 65535.
 * @returns The address text that {@linkcode parseHostPort} reads back.
 * @throws {TransportAddressError} When the port is not an integer from 0 to
 * 65535, or the host is not a host name or IP address.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatHostPort } from "@carrier/p2p/protocol";
 * assert.equal(formatHostPort("::1", 4000), "[::1]:4000");
 * assert.equal(formatHostPort("127.0.0.1", 80), "127.0.0.1:80");
 * ```
 */
export function formatHostPort(hostname: string, port: number): string {
  return formatTransportAddress({ scheme: TCP_SCHEME, host: hostname, port });
}

function formatNetAddr(addr: Deno.NetAddr): string {
  return formatHostPort(addr.hostname, addr.port);
}

/**
 * TCP transport: dials with `Deno.connect`, listens with `Deno.listen`.
 * Every connection, dialed or accepted, has `setNoDelay(true)`.
 *
 * Failures are typed: a refused, unreachable or unresolvable dial is a
 * `DialError`, an address in use a `ListenError`, a malformed address a
 * `TransportAddressError`; each names the address and keeps the operating
 * system's error as `cause`. `close()` closes every listener and stream this
 * transport opened or accepted.
 *
 * @example
 * ```ts
 * import { TcpTransport } from "@carrier/p2p";
 * await using tcp = new TcpTransport();
 * const listener = await tcp.listen("127.0.0.1:0");
 * const accepting = (async () => {
 *   for await (const stream of listener) {
 *     const buffer = new Uint8Array(5);
 *     await stream.read(buffer);
 *     await stream.write(buffer); // echo
 *     await stream.closeWrite();
 *     return;
 *   }
 * })();
 * const stream = await tcp.dial(listener.address, {
 *   signal: AbortSignal.timeout(5000),
 * });
 * await stream.write(new TextEncoder().encode("hello"));
 * const reply = new Uint8Array(5);
 * await stream.read(reply);
 * await accepting;
 * ```
 */
export class TcpTransport implements Transport, AsyncDisposable {
  /** TCP takes `HOST:PORT` addresses: `["tcp"]`. */
  readonly schemes: readonly string[] = [TCP_SCHEME];
  #listeners = new Set<TcpListener>();
  #streams = new Set<TcpByteStream>();
  #closed = false;
  /** Aborts the dials in flight when the transport closes. */
  #closing = new AbortController();

  /**
   * Connects to `address` (`"host:port"` or `"[ipv6]:port"`).
   *
   * @param address Where to connect.
   * @param options `signal` aborts the dial (use `AbortSignal.timeout` for a dial timeout).
   * @returns The connected stream.
   * @throws {DialError} When the connection is refused, unreachable or the name does not resolve.
   * @throws {TransportAddressError} When `address` is malformed.
   * @throws The signal's reason when `options.signal` aborts first.
   */
  async dial(
    address: string,
    options: DialOptions = {},
  ): Promise<ByteStream & AsyncDisposable> {
    const { hostname, port } = parseHostPort(address);
    const { signal } = options;
    signal?.throwIfAborted();
    if (this.#closed) {
      throw new DialError(`Cannot dial ${address}: the transport is closed`);
    }
    const closing = this.#closing.signal;
    let conn: Deno.TcpConn;
    try {
      // Deno cancels the connect (closing a socket that is half-way there)
      // and rejects with the signal's reason when the signal aborts.
      conn = await Deno.connect({
        hostname,
        port,
        transport: "tcp",
        signal: signal === undefined ? closing : AbortSignal.any([signal, closing]),
      });
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      if (this.#closed) {
        throw new DialError(`Cannot dial ${address}: the transport is closed`);
      }
      throw new DialError(`Cannot dial ${address}: ${errorMessage(error)}`, {
        cause: error,
      });
    }
    if (this.#closed || signal?.aborted) {
      conn.close();
      signal?.throwIfAborted();
      throw new DialError(`Cannot dial ${address}: the transport is closed`);
    }
    return this.#adopt(conn);
  }

  /**
   * Listens on `address`; port 0 picks a free port, reported in
   * `listener.address`.
   *
   * @param address Where to listen: `"127.0.0.1:0"`, `"[::1]:0"`, `"0.0.0.0:4000"`.
   * @param options `signal` closes the listener when it aborts.
   * @returns The listener.
   * @throws {ListenError} When the address is in use, not available or not permitted.
   * @throws {TransportAddressError} When `address` is malformed.
   */
  // deno-lint-ignore require-await
  async listen(
    address: string,
    options: ListenOptions = {},
  ): Promise<Listener & AsyncDisposable> {
    const { hostname, port } = parseHostPort(address);
    const { signal } = options;
    signal?.throwIfAborted();
    if (this.#closed) {
      throw new ListenError(
        `Cannot listen on ${address}: the transport is closed`,
      );
    }
    let inner: Deno.TcpListener;
    try {
      inner = Deno.listen({ hostname, port, transport: "tcp" });
    } catch (error) {
      throw new ListenError(`Cannot listen on ${address}: ${errorMessage(error)}`, {
        cause: error,
      });
    }
    const listener = new TcpListener(inner, {
      adopt: (conn) => this.#adopt(conn),
      closed: (self) => this.#listeners.delete(self),
      signal,
    });
    this.#listeners.add(listener);
    return listener;
  }

  /** Closes every listener and every stream this transport opened or accepted, and aborts its dials in flight; later dials and listens fail. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closing.abort();
    for (const listener of [...this.#listeners]) listener.close();
    for (const stream of [...this.#streams]) stream.close();
  }

  /** Same as {@linkcode TcpTransport.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }

  #adopt(conn: Deno.TcpConn): TcpByteStream {
    conn.setNoDelay(true);
    const stream = new TcpByteStream(conn);
    stream.setOnClose(() => this.#streams.delete(stream));
    this.#streams.add(stream);
    return stream;
  }
}

/** A `Deno.TcpConn` behind the {@linkcode ByteStream} interface. */
class TcpByteStream extends StreamBase {
  readonly localAddress: string;
  readonly remoteAddress: string;
  #conn: Deno.TcpConn;

  constructor(conn: Deno.TcpConn) {
    super();
    this.#conn = conn;
    this.localAddress = formatNetAddr(conn.localAddr);
    this.remoteAddress = formatNetAddr(conn.remoteAddr);
  }

  async read(buffer: Uint8Array): Promise<number | null> {
    if (this.closed) return null;
    try {
      return await this.#conn.read(buffer);
    } catch (error) {
      if (this.closed) return null;
      throw new ConnectionClosedError(
        `Cannot read from ${this.remoteAddress}: ${errorMessage(error)}`,
        { cause: error },
      );
    }
  }

  protected async writeAll(data: Uint8Array): Promise<void> {
    try {
      let offset = await this.#conn.write(data);
      while (offset < data.length) {
        offset += await this.#conn.write(data.subarray(offset));
      }
    } catch (error) {
      throw new ConnectionClosedError(
        `Cannot write to ${this.remoteAddress}: ${
          this.closed ? "the stream was closed" : errorMessage(error)
        }`,
        { cause: error },
      );
    }
  }

  protected async endWrite(): Promise<void> {
    try {
      await this.#conn.closeWrite();
    } catch (error) {
      if (this.closed) return;
      throw new ConnectionClosedError(
        `Cannot close ${this.remoteAddress} for writing: ${errorMessage(error)}`,
        { cause: error },
      );
    }
  }

  protected release(): void {
    try {
      this.#conn.close();
    } catch {
      // Already closed by Deno (e.g. after a reset): nothing left to free.
    }
  }
}

interface TcpListenerHooks {
  adopt: (conn: Deno.TcpConn) => TcpByteStream;
  closed: (self: TcpListener) => void;
  signal: AbortSignal | undefined;
}

/** A `Deno.TcpListener` behind the {@linkcode Listener} interface. */
class TcpListener implements Listener, AsyncDisposable {
  readonly address: string;
  #inner: Deno.TcpListener;
  #hooks: TcpListenerHooks;
  #closed = false;
  #stopAbort: () => void;

  constructor(inner: Deno.TcpListener, hooks: TcpListenerHooks) {
    this.#inner = inner;
    this.#hooks = hooks;
    this.address = formatNetAddr(inner.addr);
    this.#stopAbort = closeOnAbort(hooks.signal, () => this.close());
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<ByteStream, void, undefined> {
    while (!this.#closed) {
      let conn: Deno.TcpConn;
      try {
        conn = await this.#inner.accept();
      } catch (error) {
        if (this.#closed) return;
        // One client's failure, not the listener's: it gave up (or reset)
        // between its SYN and our accept, so the socket is gone before we
        // could ask for its peer address (ENOTCONN). Keep accepting.
        if (
          error instanceof Deno.errors.ConnectionAborted ||
          error instanceof Deno.errors.ConnectionReset ||
          error instanceof Deno.errors.NotConnected
        ) continue;
        throw new ListenError(
          `Cannot accept on ${this.address}: ${errorMessage(error)}`,
          { cause: error },
        );
      }
      if (this.#closed) {
        conn.close();
        return;
      }
      yield this.#hooks.adopt(conn);
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopAbort();
    try {
      this.#inner.close();
    } catch {
      // Already closed.
    }
    this.#hooks.closed(this);
  }

  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }
}
