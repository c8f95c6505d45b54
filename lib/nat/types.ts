/**
 * The contract every port-mapping client here implements (NAT-PMP, PCP, UPnP
 * IGD), so that the `nat` service can run them side by side and keep the
 * first that maps.
 *
 * A client talks to one gateway. `map` asks for a TCP (or UDP) mapping of an
 * internal port and resolves with what the gateway *granted* (the external
 * port and the lifetime may differ from the request); renewing is calling
 * `map` again with the granted external port. `unmap` deletes a mapping;
 * `close` releases the client's sockets and aborts what is in flight.
 *
 * @module
 */

/**
 * The port-mapping protocols carrier speaks.
 *
 * @example
 * ```ts
 * import type { MappingProtocol } from "@carrier/p2p";
 * const preferred: MappingProtocol[] = ["pcp", "natpmp", "upnp"];
 * void preferred;
 * ```
 */
export type MappingProtocol = "natpmp" | "pcp" | "upnp";

/**
 * The transport protocol of a mapping.
 *
 * @example
 * ```ts
 * import type { MappedTransport } from "@carrier/p2p";
 * const transport: MappedTransport = "tcp";
 * void transport;
 * ```
 */
export type MappedTransport = "tcp" | "udp";

/**
 * What a client asks the gateway for.
 *
 * @example
 * ```ts
 * import type { MappingRequest } from "@carrier/p2p";
 * const request: MappingRequest = { transport: "tcp", internalPort: 4000, lifetime: 7200 };
 * void request;
 * ```
 */
export interface MappingRequest {
  /** TCP or UDP. */
  transport: MappedTransport;
  /** The port this host listens on. */
  internalPort: number;
  /** The external port wanted (a hint; default: the internal port). */
  externalPort?: number;
  /** Lifetime wanted, in seconds (0 is not a request: deleting is `unmap`). */
  lifetime: number;
  /** A description the gateway may show (UPnP's NewPortMappingDescription). */
  description?: string;
  /** Aborts the request. */
  signal?: AbortSignal;
}

/**
 * A mapping a gateway granted.
 *
 * @example
 * ```ts
 * import type { PortMapping } from "@carrier/p2p";
 * const mapping: PortMapping = {
 *   protocol: "natpmp", transport: "tcp", gateway: "10.77.0.1",
 *   internalPort: 4000, externalAddress: "80.100.100.1", externalPort: 4000, lifetime: 7200,
 * };
 * void mapping;
 * ```
 */
export interface PortMapping {
  /** The protocol that made it. */
  protocol: MappingProtocol;
  /** TCP or UDP. */
  transport: MappedTransport;
  /** The gateway's address (IP, or for UPnP the control URL's host). */
  gateway: string;
  /** The internal port mapped. */
  internalPort: number;
  /** The external (public) address of the gateway. */
  externalAddress: string;
  /** The external port the gateway granted. */
  externalPort: number;
  /** The lifetime granted, in seconds (0: until deleted, UPnP's permanent lease). */
  lifetime: number;
}

/**
 * A port-mapping client for one gateway.
 *
 * @example
 * ```ts ignore
 * const client: PortMapper = new NatPmpClient({ gateway: "10.77.0.1" });
 * const mapping = await client.map({ transport: "tcp", internalPort: 4000, lifetime: 7200 });
 * await client.unmap(mapping);
 * client.close();
 * ```
 */
export interface PortMapper {
  /** Which protocol this client speaks. */
  readonly protocol: MappingProtocol;
  /** The gateway's external address. */
  externalAddress(options?: { signal?: AbortSignal }): Promise<string>;
  /** Creates or renews a mapping; resolves with what was granted. */
  map(request: MappingRequest): Promise<PortMapping>;
  /** Deletes a mapping (NAT-PMP/PCP: lifetime 0; UPnP: DeletePortMapping). */
  unmap(mapping: PortMapping, options?: { signal?: AbortSignal }): Promise<void>;
  /**
   * Called when the client learns the gateway lost its state (NAT-PMP/PCP
   * epoch went backwards; an address-change announcement), so that the owner
   * re-maps at once. Optional: UPnP has no such signal.
   */
  onReset?: (reason: string) => void;
  /** Releases sockets; in-flight requests reject with an AbortError-like error. */
  close(): void;
}

/**
 * Detail of the `nat:mapped`, `nat:lost` and `nat:failed` events.
 *
 * @example
 * ```ts
 * import type { NatEventDetail } from "@carrier/p2p";
 * const show = (d: NatEventDetail) =>
 *   d.mapping ? `${d.mapping.externalAddress}:${d.mapping.externalPort}` : String(d.error);
 * void show;
 * ```
 */
export interface NatEventDetail {
  /** The listen address the mapping is for. */
  bound: string;
  /** `nat:mapped`: the mapping granted; `nat:lost`: the one lost. */
  mapping?: PortMapping;
  /** `nat:mapped`: ms from the first request to the mapping. */
  elapsed?: number;
  /** `nat:lost`, `nat:failed`: why (a `DoubleNatError` for double NAT). */
  error?: Error;
}
