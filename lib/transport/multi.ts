/**
 * A transport made of several, one per address scheme (as rust-libp2p's
 * `OrTransport`): it dials each address, and listens on each, with the part
 * that declares the address's scheme in {@linkcode Transport.schemes}.
 *
 * @module
 */

import { ArgumentError, TransportAddressError } from "../errors.ts";
import { parseTransportAddress } from "./address.ts";
import type { ByteStream, DialOptions, Listener, ListenOptions, Transport } from "./types.ts";

/**
 * Several transports as one: `dial` and `listen` go to the part whose
 * {@linkcode Transport.schemes} hold the address's scheme. An address no
 * part takes is a `TransportAddressError` naming the address and the schemes
 * available, as is a malformed one.
 *
 * Streams and listeners are the parts' own: a stream dialed over TCP has TCP
 * addresses. `close()` closes every part that can be closed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { TcpTransport, TransportAddressError } from "@carrier/p2p";
 * import { MultiTransport } from "@carrier/p2p/protocol";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
 * await using net = new MemoryNetwork();
 * await using transport = new MultiTransport([new TcpTransport(), net.transport()]);
 * assert.deepEqual(transport.schemes, ["tcp", "mem"]);
 * const overTcp = await transport.listen("127.0.0.1:0"); // the TCP part listens
 * const inMemory = await transport.listen("mem:0"); // the memory part listens
 * (await transport.dial(inMemory.address)).close();
 * await assert.rejects(transport.dial("ws://127.0.0.1:80"), TransportAddressError);
 * overTcp.close();
 * ```
 */
export class MultiTransport implements Transport, AsyncDisposable {
  /** Every part's schemes, in the order of the parts. */
  readonly schemes: readonly string[];
  readonly #parts: readonly Transport[];
  readonly #byScheme = new Map<string, Transport>();

  /**
   * Combines `transports`.
   *
   * @param transports The parts, each declaring its schemes.
   * @throws {ArgumentError} When there is no part, a part declares no scheme, or
   * two parts declare the same scheme (which one dials would be a guess).
   */
  constructor(transports: readonly Transport[]) {
    if (transports.length === 0) {
      throw new ArgumentError("A MultiTransport needs at least one transport");
    }
    transports.forEach((transport, i) => {
      const schemes = transport.schemes;
      if (schemes === undefined || schemes.length === 0) {
        throw new ArgumentError(
          `Transport ${i} of a MultiTransport declares no schemes (Transport.schemes)`,
        );
      }
      for (const scheme of schemes) {
        if (this.#byScheme.has(scheme)) {
          throw new ArgumentError(`Two transports of a MultiTransport declare scheme "${scheme}"`);
        }
        this.#byScheme.set(scheme, transport);
      }
    });
    this.#parts = [...transports];
    this.schemes = [...this.#byScheme.keys()];
  }

  /**
   * The part that takes `address`.
   *
   * @param address A transport address.
   * @returns The part whose schemes hold the address's scheme.
   * @throws {TransportAddressError} When `address` is malformed or no part takes its scheme.
   */
  transportFor(address: string): Transport {
    const { scheme } = parseTransportAddress(address);
    const part = this.#byScheme.get(scheme);
    if (part === undefined) {
      throw new TransportAddressError(
        `No transport for address ${JSON.stringify(address)}: scheme "${scheme}" is not one of ${
          this.schemes.map((s) => `"${s}"`).join(", ")
        }`,
      );
    }
    return part;
  }

  /**
   * Dials `address` with the part that takes it.
   *
   * @throws {TransportAddressError} When no part takes `address`, or it is malformed.
   * @throws {DialError} As the part's dial fails.
   */
  async dial(address: string, options?: DialOptions): Promise<ByteStream> {
    return await this.transportFor(address).dial(address, options);
  }

  /**
   * Listens on `address` with the part that takes it.
   *
   * @throws {TransportAddressError} When no part takes `address`, or it is malformed.
   * @throws {ListenError} As the part's listen fails.
   */
  async listen(address: string, options?: ListenOptions): Promise<Listener> {
    return await this.transportFor(address).listen(address, options);
  }

  /** Closes every part that has a `close()` (TCP and memory transports do). Idempotent as they are. */
  close(): void {
    for (const part of this.#parts) (part as Partial<{ close(): void }>).close?.();
  }

  /** Same as {@linkcode MultiTransport.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }
}

/**
 * One transport from a list: the only one itself, several as a
 * {@linkcode MultiTransport}.
 *
 * @param transports One or more transports.
 * @returns The transport that dials and listens with them.
 * @throws {ArgumentError} As {@linkcode MultiTransport}'s constructor does.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { TcpTransport } from "@carrier/p2p";
 * import { combineTransports, MultiTransport } from "@carrier/p2p/protocol";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
 * const tcp = new TcpTransport();
 * assert.equal(combineTransports([tcp]), tcp);
 * assert.ok(combineTransports([tcp, new MemoryNetwork().transport()]) instanceof MultiTransport);
 * ```
 */
export function combineTransports(transports: readonly Transport[]): Transport {
  return transports.length === 1 ? transports[0] : new MultiTransport(transports);
}
