/**
 * A PCP client (RFC 6887): {@linkcode PcpClient} asks one gateway for TCP
 * and UDP mappings with the MAP opcode, and falls back to NAT-PMP (RFC 6886,
 * on the same port) when the gateway answers UNSUPP_VERSION.
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
  type Schedule,
  UdpExchange,
} from "./_udp.ts";
import { DoubleNatError, PortMappingError } from "./errors.ts";
import { localAddressTowards } from "./gateway.ts";
import { NatPmpClient } from "./natpmp.ts";
import type {
  MappedTransport,
  MappingProtocol,
  MappingRequest,
  PortMapper,
  PortMapping,
} from "./types.ts";

const VERSION = 2;
const OP_ANNOUNCE = 0;
const OP_MAP = 1;
const RESPONSE = 0x80;
const HEADER_SIZE = 24;
const MAP_SIZE = HEADER_SIZE + 36;
const UNSUPP_VERSION = 1;
/** IANA protocol numbers. */
const PROTOCOL_NUMBER: Record<MappedTransport, number> = { tcp: 6, udp: 17 };
/**
 * `externalAddress()` maps a random UDP port from the dynamic range for a
 * moment. RFC 6887 §11.6 suggests the discard port (9), but gateways refuse
 * ports below 1024 (miniupnpd's usual rules, after searching every port).
 */
function probePort(): number {
  return 49_152 + Math.floor(Math.random() * 16_384);
}
/** The lifetime of that probe mapping, in seconds (deleted at once anyway). */
const PROBE_LIFETIME = 120;

/**
 * PCP's result codes (RFC 6887 §7.4), by value.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { PCP_RESULT_CODES } from "./pcp.ts";
 * assert.equal(PCP_RESULT_CODES[12], "ADDRESS_MISMATCH");
 * ```
 */
export const PCP_RESULT_CODES: Readonly<Record<number, string>> = Object.freeze({
  0: "SUCCESS",
  1: "UNSUPP_VERSION",
  2: "NOT_AUTHORIZED",
  3: "MALFORMED_REQUEST",
  4: "UNSUPP_OPCODE",
  5: "UNSUPP_OPTION",
  6: "MALFORMED_OPTION",
  7: "NETWORK_FAILURE",
  8: "NO_RESOURCES",
  9: "UNSUPP_PROTOCOL",
  10: "USER_EX_QUOTA",
  11: "CANNOT_PROVIDE_EXTERNAL",
  12: "ADDRESS_MISMATCH",
  13: "EXCESSIVE_REMOTE_PEERS",
});

/**
 * Options of {@linkcode PcpClient}.
 *
 * The retransmission schedule defaults to NAT-PMP's (250 ms doubling, 9
 * tries, about 128 s), not RFC 6887 §8.1.1's (3 s, ±10 % jitter, doubling to
 * 1024 s, never giving up): a node choosing between PCP, NAT-PMP and UPnP
 * cannot wait forever. `{ initialTimeout: 3000, jitter: 0.1, maxTimeout:
 * 1_024_000, tries: Infinity }` is RFC 6887's.
 *
 * @example
 * ```ts
 * import type { PcpClientOptions } from "./pcp.ts";
 * const options: PcpClientOptions = { gateway: "10.77.0.1", fallback: true };
 * void options;
 * ```
 */
export interface PcpClientOptions {
  /** The gateway's IPv4 address (see `defaultGateway()`). */
  gateway: string;
  /**
   * The gateway's PCP (and NAT-PMP) port.
   * @default {5351}
   */
  port?: number;
  /**
   * Timers (retransmission) and the client's side of the epoch check.
   * @default {systemClock}
   */
  clock?: Clock;
  /**
   * The first wait for an answer, in ms.
   * @default {250}
   */
  initialTimeout?: number;
  /**
   * How many times a request is sent before it fails with a TimeoutError.
   * @default {9}
   */
  tries?: number;
  /**
   * The wait doubles up to this, in ms.
   * @default {Infinity}
   */
  maxTimeout?: number;
  /**
   * Each wait is multiplied by a random factor in [1 − jitter, 1 + jitter].
   * @default {0}
   */
  jitter?: number;
  /**
   * The PCP client IP field: this host's address as the gateway sees it.
   * The client's socket is bound to it.
   * @default {the result of localAddressTowards(gateway)}
   */
  clientAddress?: string;
  /**
   * On UNSUPP_VERSION, speak NAT-PMP to the gateway from then on (a
   * {@linkcode NatPmpClient} with the same options); mappings then say
   * `protocol: "natpmp"`, and so does {@linkcode PcpClient.protocol}.
   * Without it, UNSUPP_VERSION rejects with a PortMappingError of code 1.
   * @default {true}
   */
  fallback?: boolean;
  /**
   * Listen for the gateway's ANNOUNCE messages on 224.0.0.1:{@linkcode PcpClientOptions.announcePort}
   * (RFC 6887 §14.1.3; best effort).
   * @default {true}
   */
  announcements?: boolean;
  /**
   * The port announcements arrive on.
   * @default {5350}
   */
  announcePort?: number;
}

interface Granted {
  lifetime: number;
  externalPort: number;
  externalAddress: string;
}

/**
 * A PCP (RFC 6887) port-mapping client for one gateway, MAP opcode only.
 *
 * Each mapping has a 12-byte random nonce, kept per transport and internal
 * port: renewing (`map` again) and deleting (`unmap`, lifetime 0) send the
 * same nonce, as the RFC requires. The result resolves with the lifetime,
 * external port and external address the gateway assigned; a private
 * assigned address deletes the mapping again and rejects with a
 * {@linkcode DoubleNatError}. A result code other than SUCCESS rejects with a
 * {@linkcode PortMappingError} naming it (`code` is the gateway's). Every
 * answer's epoch is checked (§8.5), and so are ANNOUNCE messages; lost state
 * calls `onReset`.
 *
 * PCP has no external-address request: `externalAddress()` maps a random
 * UDP port of the dynamic range (49152–65535) for a moment and deletes it
 * (RFC 6887 §11.6 suggests port 9, which gateways with miniupnpd's usual
 * rules refuse). When the gateway refuses the probe, the address of this
 * client's latest mapping is returned if it has one, else the error is
 * thrown.
 *
 * With `fallback` (the default), an UNSUPP_VERSION answer (a NAT-PMP-only
 * gateway) makes the client delegate every call to a {@linkcode NatPmpClient}
 * from then on; `protocol` turns to `"natpmp"` and the mappings say so.
 *
 * @example
 * ```ts ignore
 * import { PcpClient } from "./pcp.ts";
 * const client = new PcpClient({ gateway: "10.77.0.1" });
 * const mapping = await client.map({ transport: "udp", internalPort: 4000, lifetime: 3600 });
 * console.log(mapping.protocol, `${mapping.externalAddress}:${mapping.externalPort}`);
 * await client.map({ ...mapping, externalPort: mapping.externalPort, lifetime: 3600 }); // renew
 * await client.unmap(mapping);
 * client.close();
 * ```
 */
export class PcpClient implements PortMapper {
  /** Called when the gateway lost its mappings: re-map. */
  onReset?: (reason: string) => void;

  #options: PcpClientOptions & Schedule & { port: number; clock: Clock };
  #gateway: string;
  #exchange: UdpExchange | undefined;
  #clientIp: Promise<Uint8Array> | undefined;
  #epoch: EpochTracker;
  #nonces = new Map<string, Uint8Array>();
  #lastExternal: string | undefined;
  #natpmp: NatPmpClient | undefined;
  #stopListening: (() => void) | undefined;
  #closed: DOMException | undefined;

  /** Creates a client; it opens no socket until the first request. */
  constructor(options: PcpClientOptions) {
    const {
      gateway,
      port = 5351,
      clock = systemClock,
      initialTimeout = 250,
      tries = 9,
      maxTimeout = Infinity,
      jitter = 0,
      announcePort = 5350,
      clientAddress,
    } = options;
    if (ipv4Bytes(gateway) === undefined) {
      throw new ArgumentError(`PcpClient gateway must be an IPv4 address, got ${gateway}`);
    }
    if (clientAddress !== undefined && ipv4Bytes(clientAddress) === undefined) {
      throw new ArgumentError(
        `PcpClient clientAddress must be an IPv4 address, got ${clientAddress}`,
      );
    }
    checkPort("PcpClient port", port, 1);
    checkPort("PcpClient announcePort", announcePort, 1);
    const schedule = { initialTimeout, tries, maxTimeout, jitter };
    checkSchedule(schedule, "PcpClient");
    this.#options = { ...options, ...schedule, port, clock, announcePort };
    this.#gateway = gateway;
    this.#epoch = new EpochTracker(clock, "pcp");
  }

  /** `"pcp"`, or `"natpmp"` once the client fell back to NAT-PMP. */
  get protocol(): MappingProtocol {
    return this.#natpmp ? "natpmp" : "pcp";
  }

  /**
   * The external address: a short MAP of a random high UDP port, deleted at
   * once (RFC 6887 §11.6); when the gateway refuses it, the address of this client's
   * latest mapping, if any. After a fallback, NAT-PMP's opcode 0.
   *
   * @throws {DoubleNatError} The address is private.
   */
  async externalAddress(options: { signal?: AbortSignal } = {}): Promise<string> {
    const { signal } = options;
    if (this.#natpmp) return this.#natpmp.externalAddress(options);
    const nonce = randomNonce();
    const port = probePort();
    let granted: Granted;
    try {
      granted = await this.#mapRequest("udp", port, 0, PROBE_LIFETIME, nonce, signal);
    } catch (error) {
      if (this.#fellBack(error)) return this.#natpmp!.externalAddress(options);
      if (
        error instanceof PortMappingError && error.code !== undefined &&
        this.#lastExternal !== undefined
      ) {
        return checkExternal(this.#lastExternal, this.#gateway);
      }
      throw error;
    }
    if (granted.lifetime > 0) {
      await this.#mapRequest("udp", port, granted.externalPort, 0, nonce, signal);
    }
    return checkExternal(granted.externalAddress, this.#gateway);
  }

  /** Creates or renews a mapping (same nonce); resolves with what was assigned. */
  async map(request: MappingRequest): Promise<PortMapping> {
    if (this.#natpmp) return this.#natpmp.map(request);
    const { transport, internalPort, lifetime, signal } = request;
    const externalPort = request.externalPort ?? internalPort;
    checkTransport(transport);
    checkPort("internalPort", internalPort, 1);
    checkPort("externalPort", externalPort, 0);
    checkLifetime(lifetime);
    const key = `${transport}/${internalPort}`;
    const nonce = this.#nonces.get(key) ?? randomNonce();
    let granted: Granted;
    try {
      granted = await this.#mapRequest(
        transport,
        internalPort,
        externalPort,
        lifetime,
        nonce,
        signal,
      );
    } catch (error) {
      if (this.#fellBack(error)) return this.#natpmp!.map(request);
      throw error;
    }
    this.#nonces.set(key, nonce);
    const mapping: PortMapping = {
      protocol: "pcp",
      transport,
      gateway: this.#gateway,
      internalPort,
      externalAddress: granted.externalAddress,
      externalPort: granted.externalPort,
      lifetime: granted.lifetime,
    };
    try {
      checkExternal(granted.externalAddress, this.#gateway);
    } catch (error) {
      await this.unmap(mapping, { signal }).catch(() => {}); // useless behind another NAT
      throw error;
    }
    this.#lastExternal = granted.externalAddress;
    return mapping;
  }

  /**
   * Deletes a mapping: MAP with lifetime 0 and the mapping's nonce (a
   * mapping this client did not make gets a fresh nonce, which a gateway
   * refuses with NOT_AUTHORIZED).
   */
  async unmap(mapping: PortMapping, options: { signal?: AbortSignal } = {}): Promise<void> {
    if (this.#natpmp) return this.#natpmp.unmap(mapping, options);
    checkTransport(mapping.transport);
    checkPort("internalPort", mapping.internalPort, 1);
    const key = `${mapping.transport}/${mapping.internalPort}`;
    const nonce = this.#nonces.get(key) ?? randomNonce();
    try {
      await this.#mapRequest(
        mapping.transport,
        mapping.internalPort,
        mapping.externalPort,
        0,
        nonce,
        options.signal,
      );
    } catch (error) {
      if (this.#fellBack(error)) return this.#natpmp!.unmap(mapping, options);
      throw error;
    }
    this.#nonces.delete(key);
  }

  /** Closes the sockets; pending and later calls reject with an AbortError. */
  close(): void {
    if (this.#closed) return;
    this.#closed = closedError(`PcpClient for ${this.#gateway}`);
    this.#exchange?.close(this.#closed);
    this.#natpmp?.close();
    this.#stopListening?.();
    this.#stopListening = undefined;
  }

  /** Closes the client (`using client = new PcpClient(…)`). */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Whether `error` is UNSUPP_VERSION and the client now speaks NAT-PMP. */
  #fellBack(error: unknown): boolean {
    if (this.#natpmp && !this.#closed) return true; // queued behind the request that fell back
    if (
      !(error instanceof PortMappingError) || error.code !== UNSUPP_VERSION ||
      this.#options.fallback === false || this.#closed
    ) {
      return false;
    }
    this.#exchange?.close(closedError(`PcpClient for ${this.#gateway} (now NAT-PMP)`));
    this.#stopListening?.();
    this.#stopListening = undefined;
    const { gateway, port, clock, initialTimeout, tries, announcements, announcePort } =
      this.#options;
    this.#natpmp ??= new NatPmpClient({
      gateway,
      port,
      clock,
      initialTimeout,
      tries,
      announcements,
      announcePort,
    });
    this.#natpmp.onReset = (reason) => this.onReset?.(reason);
    return true;
  }

  async #ready(
    signal: AbortSignal | undefined,
  ): Promise<{ exchange: UdpExchange; ip: Uint8Array }> {
    if (this.#closed) throw this.#closed;
    this.#clientIp ??= this.#findClientIp();
    const ip = await this.#clientIp;
    signal?.throwIfAborted();
    if (this.#closed) throw this.#closed;
    if (!this.#exchange) {
      const { gateway, port, clock } = this.#options;
      this.#exchange = new UdpExchange({
        ...this.#options,
        gateway,
        port,
        clock,
        protocol: "pcp",
        bindAddress: ipv4Text(ip),
      });
    }
    if (this.#options.announcements !== false && !this.#stopListening) {
      this.#stopListening = listenAnnouncements({
        gateway: this.#gateway,
        group: "224.0.0.1",
        port: this.#options.announcePort!,
        onDatagram: (datagram) => this.#announcement(datagram),
      });
    }
    return { exchange: this.#exchange, ip };
  }

  async #findClientIp(): Promise<Uint8Array> {
    const address = this.#options.clientAddress ??
      await localAddressTowards(this.#gateway, { port: this.#options.port });
    if (address === undefined) {
      throw new PortMappingError(
        `Cannot find this host's address towards PCP gateway ${this.#gateway}: no interface's subnet holds it (set clientAddress)`,
        { protocol: "pcp" },
      );
    }
    return ipv4Bytes(address)!;
  }

  async #mapRequest(
    transport: MappedTransport,
    internalPort: number,
    externalPort: number,
    lifetime: number,
    nonce: Uint8Array,
    signal: AbortSignal | undefined,
  ): Promise<Granted> {
    const { exchange, ip } = await this.#ready(signal);
    const bytes = new Uint8Array(MAP_SIZE);
    const view = new DataView(bytes.buffer);
    view.setUint8(0, VERSION);
    view.setUint8(1, OP_MAP);
    view.setUint32(4, lifetime);
    bytes.set(mapped(ip), 8);
    bytes.set(nonce, 24);
    view.setUint8(36, PROTOCOL_NUMBER[transport]);
    view.setUint16(40, internalPort);
    view.setUint16(42, externalPort);
    bytes.set(mapped(new Uint8Array(4)), 44); // no preferred external address
    const what = lifetime === 0
      ? `PCP ${transport.toUpperCase()} unmap of port ${internalPort}`
      : `PCP ${transport.toUpperCase()} MAP request for port ${internalPort}`;
    return exchange.request(
      bytes,
      (datagram, sent) => this.#readMap(datagram, sent, nonce, transport, internalPort, what),
      { what, signal },
    );
  }

  #readMap(
    datagram: Uint8Array,
    sent: number,
    nonce: Uint8Array,
    transport: MappedTransport,
    internalPort: number,
    what: string,
  ): Granted | undefined {
    const view = new DataView(datagram.buffer, datagram.byteOffset, datagram.byteLength);
    if (datagram[0] !== VERSION) {
      // A NAT-PMP gateway (version 0: 16-bit result code) or an older PCP (1)
      // refusing version 2; anything else from them is not an answer.
      const code = datagram[0] === 0 && datagram.length >= 4
        ? view.getUint16(2)
        : datagram[0] === 1 && datagram.length >= 4
        ? datagram[3]
        : undefined;
      if (code !== UNSUPP_VERSION) return undefined;
      throw new PortMappingError(
        `${what}: gateway ${this.#gateway} answered UNSUPP_VERSION (1) with version ${datagram[0]}`,
        { protocol: "pcp", code },
      );
    }
    if (datagram.length < HEADER_SIZE || datagram[1] !== (RESPONSE | OP_MAP)) return undefined;
    const code = datagram[3];
    if (datagram.length >= MAP_SIZE) {
      if (!sameBytes(datagram.subarray(24, 36), nonce)) return undefined;
      if (datagram[36] !== PROTOCOL_NUMBER[transport]) return undefined;
      if (view.getUint16(40) !== internalPort) return undefined;
    } else if (code === 0) {
      return undefined; // a success too short to say what it granted
    }
    this.#noteEpoch(view.getUint32(8), sent);
    if (code !== 0) {
      const name = PCP_RESULT_CODES[code] ?? "an unknown result code";
      throw new PortMappingError(`${what}: gateway ${this.#gateway} answered ${name} (${code})`, {
        protocol: "pcp",
        code,
      });
    }
    return {
      lifetime: view.getUint32(4),
      externalPort: view.getUint16(42),
      externalAddress: addressText(datagram.subarray(44, 60)),
    };
  }

  #announcement(datagram: Uint8Array): void {
    if (datagram.length < HEADER_SIZE || datagram[0] !== VERSION) return;
    if (datagram[1] !== (RESPONSE | OP_ANNOUNCE) || datagram[3] !== 0) return;
    this.#noteEpoch(new DataView(datagram.buffer, datagram.byteOffset).getUint32(8));
  }

  #noteEpoch(epoch: number, sent?: number): void {
    const lost = this.#epoch.update(epoch, sent);
    if (lost === undefined || this.#closed) return;
    const reason = `PCP gateway ${this.#gateway} lost its mappings: ${lost}`;
    queueMicrotask(() => this.onReset?.(reason));
  }
}

function checkTransport(transport: string): void {
  if (transport !== "tcp" && transport !== "udp") {
    throw new ArgumentError(`transport must be "tcp" or "udp", got ${transport}`);
  }
}

function randomNonce(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(12));
}

/** An IPv4 address as PCP's 16-byte IPv4-mapped IPv6 field. */
function mapped(ipv4: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(16);
  bytes[10] = 0xff;
  bytes[11] = 0xff;
  bytes.set(ipv4, 12);
  return bytes;
}

function ipv4Text(bytes: Uint8Array): string {
  return Array.from(bytes).join(".");
}

/** A 16-byte address field as text: dotted for IPv4-mapped, else eight hex groups. */
function addressText(bytes: Uint8Array): string {
  if (bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) {
    return ipv4Text(bytes.subarray(12, 16));
  }
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] << 8) | bytes[i + 1]).toString(16));
  return groups.join(":");
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** The address itself, or the error that makes it useless. */
function checkExternal(address: string, gateway: string): string {
  const scope = ipScope(address);
  if (scope === "unspecified") {
    throw new PortMappingError(`PCP gateway ${gateway} assigned no external address (${address})`, {
      protocol: "pcp",
    });
  }
  if (scope === "private") {
    throw new DoubleNatError(
      `PCP gateway ${gateway} assigned a private external address ${address}: another NAT is beyond it`,
      { protocol: "pcp" },
    );
  }
  return address;
}
