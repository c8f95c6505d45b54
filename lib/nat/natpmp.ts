/**
 * A NAT-PMP client (RFC 6886): {@linkcode NatPmpClient} asks one gateway for
 * its external address (opcode 0) and for UDP and TCP mappings (opcodes 1
 * and 2), one request at a time, retransmitted after 250 ms, 500 ms, … for 9
 * tries; it watches the gateway's epoch and its multicast announcements to
 * tell when the gateway lost its mappings.
 *
 * @module
 */

import { type Clock, systemClock } from "../clock.ts";
import { ArgumentError } from "../errors.ts";
import { ipScope } from "../transport/ip.ts";
import {
  checkLifetime,
  checkPort,
  checkSchedule,
  closedError,
  EpochTracker,
  ipv4Bytes,
  listenAnnouncements,
  UdpExchange,
} from "./_udp.ts";
import { DoubleNatError, PortMappingError } from "./errors.ts";
import type { MappingRequest, PortMapper, PortMapping } from "./types.ts";

/** NAT-PMP's version field. */
const VERSION = 0;
/** The opcodes of RFC 6886 §3. */
const OP_EXTERNAL_ADDRESS = 0;
const OP_MAP_UDP = 1;
const OP_MAP_TCP = 2;

/**
 * NAT-PMP's result codes (RFC 6886 §3.5), by value.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { NAT_PMP_RESULT_CODES } from "./natpmp.ts";
 * assert.equal(NAT_PMP_RESULT_CODES[2], "NOT_AUTHORIZED");
 * ```
 */
export const NAT_PMP_RESULT_CODES: Readonly<Record<number, string>> = Object.freeze({
  0: "SUCCESS",
  1: "UNSUPP_VERSION",
  2: "NOT_AUTHORIZED",
  3: "NETWORK_FAILURE",
  4: "OUT_OF_RESOURCES",
  5: "UNSUPP_OPCODE",
});

/**
 * Options of {@linkcode NatPmpClient}.
 *
 * @example
 * ```ts
 * import type { NatPmpClientOptions } from "./natpmp.ts";
 * const options: NatPmpClientOptions = { gateway: "10.77.0.1", initialTimeout: 250, tries: 9 };
 * void options;
 * ```
 */
export interface NatPmpClientOptions {
  /** The gateway's IPv4 address (see `defaultGateway()`). */
  gateway: string;
  /**
   * The gateway's NAT-PMP port.
   * @default {5351}
   */
  port?: number;
  /**
   * Timers (retransmission) and the client's side of the epoch check.
   * @default {systemClock}
   */
  clock?: Clock;
  /**
   * The first wait for an answer, in ms; each retry waits twice as long.
   * @default {250}
   */
  initialTimeout?: number;
  /**
   * How many times a request is sent before it fails with a TimeoutError
   * (9 tries: about 128 s in all, RFC 6886 §3.1).
   * @default {9}
   */
  tries?: number;
  /**
   * Listen for the gateway's announcements on 224.0.0.1:{@linkcode NatPmpClientOptions.announcePort}
   * (RFC 6886 §3.2.1), from the first request to `close()`. Best effort: if
   * the port cannot be bound, nothing is heard and nothing fails.
   * @default {true}
   */
  announcements?: boolean;
  /**
   * The port announcements arrive on.
   * @default {5350}
   */
  announcePort?: number;
}

/**
 * A NAT-PMP (RFC 6886) port-mapping client for one gateway.
 *
 * `map` first learns the gateway's external address (once; again after a
 * reset), and rejects with a {@linkcode DoubleNatError} when it is private;
 * then it sends the mapping request and resolves with the port and lifetime
 * the gateway granted. Renew by calling `map` again with
 * `externalPort: mapping.externalPort`. `unmap` sends lifetime 0 and external
 * port 0. A result code other than SUCCESS rejects with a
 * {@linkcode PortMappingError} whose `code` is the gateway's and whose message
 * names it; no answer after `tries` rejects with a `TimeoutError`.
 *
 * Requests go one at a time (RFC 6886 §3.1: a client must not have two in
 * flight); the others wait their turn. Every answer's epoch is checked
 * (§3.6); an epoch that went back, or an announcement of a new external
 * address, calls `onReset` so the owner re-maps.
 *
 * @example
 * ```ts ignore
 * import { NatPmpClient } from "./natpmp.ts";
 * const client = new NatPmpClient({ gateway: "10.77.0.1" });
 * client.onReset = (reason) => console.log("re-map:", reason);
 * const mapping = await client.map({ transport: "tcp", internalPort: 4000, lifetime: 7200 });
 * console.log(`${mapping.externalAddress}:${mapping.externalPort} for ${mapping.lifetime} s`);
 * await client.unmap(mapping);
 * client.close();
 * ```
 */
export class NatPmpClient implements PortMapper {
  /** Always `"natpmp"`. */
  readonly protocol = "natpmp" as const;
  /** Called when the gateway lost its mappings (or changed address): re-map. */
  onReset?: (reason: string) => void;

  #gateway: string;
  #announcePort: number;
  #announcements: boolean;
  #exchange: UdpExchange;
  #epoch: EpochTracker;
  #external: string | undefined;
  #stopListening: (() => void) | undefined;
  #closed: DOMException | undefined;

  /** Creates a client; it opens no socket until the first request. */
  constructor(options: NatPmpClientOptions) {
    const {
      gateway,
      port = 5351,
      clock = systemClock,
      initialTimeout = 250,
      tries = 9,
      announcements = true,
      announcePort = 5350,
    } = options;
    if (ipv4Bytes(gateway) === undefined) {
      throw new ArgumentError(`NatPmpClient gateway must be an IPv4 address, got ${gateway}`);
    }
    checkPort("NatPmpClient port", port, 1);
    checkPort("NatPmpClient announcePort", announcePort, 1);
    const schedule = { initialTimeout, tries, maxTimeout: Infinity, jitter: 0 };
    checkSchedule(schedule, "NatPmpClient");
    this.#gateway = gateway;
    this.#announcePort = announcePort;
    this.#announcements = announcements;
    this.#exchange = new UdpExchange({ ...schedule, gateway, port, clock, protocol: "natpmp" });
    this.#epoch = new EpochTracker(clock, "natpmp");
  }

  /**
   * Asks the gateway for its external address (opcode 0).
   *
   * @throws {DoubleNatError} The address is private: another NAT is beyond the gateway.
   * @throws {PortMappingError} A result code, or no external address (0.0.0.0).
   */
  async externalAddress(options: { signal?: AbortSignal } = {}): Promise<string> {
    this.#start();
    const address = await this.#exchange.request(
      Uint8Array.of(VERSION, OP_EXTERNAL_ADDRESS),
      (datagram, sent) => this.#readAddress(datagram, sent),
      { what: "NAT-PMP external address request", signal: options.signal },
    );
    this.#noteAddress(address);
    return checkExternal(address, this.#gateway);
  }

  /** Creates or renews a mapping; resolves with what the gateway granted. */
  async map(request: MappingRequest): Promise<PortMapping> {
    const { transport, internalPort, lifetime, signal } = request;
    const externalPort = request.externalPort ?? internalPort;
    const opcode = opcodeOf(transport);
    checkPort("internalPort", internalPort, 1);
    checkPort("externalPort", externalPort, 0);
    checkLifetime(lifetime);
    const externalAddress = checkExternal(
      this.#external ?? await this.externalAddress({ signal }),
      this.#gateway,
    );
    const granted = await this.#mapRequest(opcode, internalPort, externalPort, lifetime, signal);
    return {
      protocol: "natpmp",
      transport,
      gateway: this.#gateway,
      internalPort,
      externalAddress,
      externalPort: granted.externalPort,
      lifetime: granted.lifetime,
    };
  }

  /** Deletes a mapping: lifetime 0, external port 0 (RFC 6886 §3.4). */
  async unmap(mapping: PortMapping, options: { signal?: AbortSignal } = {}): Promise<void> {
    checkPort("internalPort", mapping.internalPort, 1);
    await this.#mapRequest(opcodeOf(mapping.transport), mapping.internalPort, 0, 0, options.signal);
  }

  /** Closes the sockets; pending and later calls reject with an AbortError. */
  close(): void {
    if (this.#closed) return;
    this.#closed = closedError(`NatPmpClient for ${this.#gateway}`);
    this.#exchange.close(this.#closed);
    this.#stopListening?.();
    this.#stopListening = undefined;
  }

  /** Closes the client (`using client = new NatPmpClient(…)`). */
  [Symbol.dispose](): void {
    this.close();
  }

  #start(): void {
    if (this.#closed) throw this.#closed;
    if (!this.#announcements || this.#stopListening) return;
    this.#stopListening = listenAnnouncements({
      gateway: this.#gateway,
      group: "224.0.0.1",
      port: this.#announcePort,
      onDatagram: (datagram) => {
        let address: string | undefined;
        try {
          address = this.#readAddress(datagram);
        } catch {
          return; // an announcement carries no error worth reporting
        }
        if (address !== undefined) this.#noteAddress(address);
      },
    });
  }

  #mapRequest(
    opcode: number,
    internalPort: number,
    externalPort: number,
    lifetime: number,
    signal: AbortSignal | undefined,
  ): Promise<{ externalPort: number; lifetime: number }> {
    this.#start();
    const bytes = new Uint8Array(12);
    const view = new DataView(bytes.buffer);
    view.setUint8(0, VERSION);
    view.setUint8(1, opcode);
    view.setUint16(4, internalPort);
    view.setUint16(6, externalPort);
    view.setUint32(8, lifetime);
    const what = lifetime === 0
      ? `NAT-PMP ${transportOf(opcode)} unmap of port ${internalPort}`
      : `NAT-PMP ${transportOf(opcode)} mapping request for port ${internalPort}`;
    return this.#exchange.request(bytes, (datagram, sent) => {
      const header = this.#readHeader(datagram, opcode, what, sent);
      if (header === undefined || datagram.length < 16) return undefined;
      const response = new DataView(datagram.buffer, datagram.byteOffset, datagram.byteLength);
      if (response.getUint16(8) !== internalPort) return undefined; // not this request's
      return { externalPort: response.getUint16(10), lifetime: response.getUint32(12) };
    }, { what, signal });
  }

  /** The external address in an opcode-0 answer (or announcement); undefined: not one. */
  #readAddress(datagram: Uint8Array, sent?: number): string | undefined {
    const header = this.#readHeader(
      datagram,
      OP_EXTERNAL_ADDRESS,
      "NAT-PMP external address",
      sent,
    );
    if (header === undefined || datagram.length < 12) return undefined;
    return datagram.subarray(8, 12).join(".");
  }

  /**
   * Checks version, opcode and size, notes the epoch, and throws the result
   * code's error; undefined when the datagram is not an answer to `opcode`.
   */
  #readHeader(
    datagram: Uint8Array,
    opcode: number,
    what: string,
    sent: number | undefined,
  ): true | undefined {
    if (datagram.length < 8 || datagram[0] !== VERSION || datagram[1] !== 128 + opcode) {
      return undefined;
    }
    const view = new DataView(datagram.buffer, datagram.byteOffset, datagram.byteLength);
    const code = view.getUint16(2);
    const reset = this.#epoch.update(view.getUint32(4), sent);
    if (reset !== undefined) this.#reset(`NAT-PMP gateway ${this.#gateway} restarted: ${reset}`);
    if (code !== 0) {
      const name = NAT_PMP_RESULT_CODES[code] ?? "an unknown result code";
      throw new PortMappingError(`${what}: gateway ${this.#gateway} answered ${name} (${code})`, {
        protocol: "natpmp",
        code,
      });
    }
    return true;
  }

  #noteAddress(address: string): void {
    const previous = this.#external;
    if (previous !== undefined && previous !== address) {
      this.#reset(
        `NAT-PMP gateway ${this.#gateway} external address changed from ${previous} to ${address}`,
      );
    }
    this.#external = address;
  }

  #reset(reason: string): void {
    if (this.#closed) return;
    this.#external = undefined;
    queueMicrotask(() => this.onReset?.(reason));
  }
}

function opcodeOf(transport: string): number {
  if (transport === "udp") return OP_MAP_UDP;
  if (transport === "tcp") return OP_MAP_TCP;
  throw new ArgumentError(`transport must be "tcp" or "udp", got ${transport}`);
}

function transportOf(opcode: number): string {
  return opcode === OP_MAP_UDP ? "UDP" : "TCP";
}

/** The address itself, or the error that makes it useless. */
function checkExternal(address: string, gateway: string): string {
  const scope = ipScope(address);
  if (scope === "unspecified") {
    throw new PortMappingError(`NAT-PMP gateway ${gateway} has no external address (${address})`, {
      protocol: "natpmp",
    });
  }
  if (scope === "private") {
    throw new DoubleNatError(
      `NAT-PMP gateway ${gateway} has a private external address ${address}: another NAT is beyond it`,
      { protocol: "natpmp" },
    );
  }
  return address;
}
