/**
 * A UPnP Internet Gateway Device client: the {@linkcode PortMapper} for
 * protocol `"upnp"`.
 *
 * It reads the gateway's device description (found with SSDP by
 * {@linkcode UpnpClient.discover}, or given), picks its WAN connection
 * service (`WANIPConnection:2`, else `WANIPConnection:1`, else
 * `WANPPPConnection:1`, wherever it sits among the nested devices), and
 * speaks SOAP to its control URL: `GetExternalIPAddress`,
 * `AddAnyPortMapping` (IGD v2, where the gateway picks the port when the one
 * asked for is taken) or `AddPortMapping`, and `DeletePortMapping`.
 *
 * The gateway's quirks are handled where the standard allows them: fault 725
 * (OnlyPermanentLeasesSupported) retries with lease 0, a permanent mapping;
 * fault 718 (ConflictInMappingEntry) retries on other external ports, a few
 * times. A gateway whose external address is private or CGNAT space is behind
 * another NAT: `map` throws {@linkcode DoubleNatError} without mapping.
 *
 * HTTP is spoken over `Deno.connect` directly, not `fetch`: a gateway on the
 * LAN must never be reached through an `HTTP_PROXY`, every response is read
 * into a buffer of `maxResponseSize` bytes at most, and the connection's local
 * address is the `NewInternalClient` the gateway must forward to.
 *
 * @module
 */

import { type Clock, systemClock } from "../clock.ts";
import { ArgumentError, SizeLimitError, TimeoutError } from "../errors.ts";
import { errorMessage } from "../_error_message.ts";
import { ipScope } from "../transport/ip.ts";
import { escapeXml, stripXmlNoise, xmlElements, xmlText } from "./_xml.ts";
import { DoubleNatError, PortMappingError } from "./errors.ts";
import { IGD_SEARCH_TARGETS, ssdpSearch, type SsdpSearchOptions } from "./ssdp.ts";
import type { MappedTransport, MappingRequest, PortMapper, PortMapping } from "./types.ts";

/**
 * The WAN connection services a client can map with, in the order it prefers them.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { WAN_CONNECTION_SERVICES } from "./upnp.ts";
 * assert.equal(WAN_CONNECTION_SERVICES[0], "urn:schemas-upnp-org:service:WANIPConnection:2");
 * ```
 */
export const WAN_CONNECTION_SERVICES: readonly string[] = Object.freeze([
  "urn:schemas-upnp-org:service:WANIPConnection:2",
  "urn:schemas-upnp-org:service:WANIPConnection:1",
  "urn:schemas-upnp-org:service:WANPPPConnection:1",
]);

/**
 * The names of the UPnP error codes a gateway's SOAP faults carry (UPnP
 * Device Architecture and the WANIPConnection specifications).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { UPNP_ERROR_NAMES } from "./upnp.ts";
 * assert.equal(UPNP_ERROR_NAMES[718], "ConflictInMappingEntry");
 * ```
 */
export const UPNP_ERROR_NAMES: Readonly<Record<number, string>> = Object.freeze({
  401: "InvalidAction",
  402: "InvalidArgs",
  501: "ActionFailed",
  602: "OptionalActionNotImplemented",
  606: "ActionNotAuthorized",
  713: "SpecifiedArrayIndexInvalid",
  714: "NoSuchEntryInArray",
  715: "WildCardNotPermittedInSrcIP",
  716: "WildCardNotPermittedInExtPort",
  718: "ConflictInMappingEntry",
  724: "SamePortValuesRequired",
  725: "OnlyPermanentLeasesSupported",
  726: "RemoteHostOnlySupportsWildcard",
  727: "ExternalPortOnlySupportsWildcard",
  728: "NoPortMapsAvailable",
  729: "ConflictWithOtherMechanisms",
  732: "WildCardNotPermittedInIntPort",
});

/** The longest lease IGD v2 allows (a week); longer requests are asked for as this. */
const MAX_LEASE = 604_800;

/**
 * The WAN connection service a client maps with.
 *
 * @example
 * ```ts
 * import type { UpnpService } from "./upnp.ts";
 * const service: UpnpService = {
 *   serviceType: "urn:schemas-upnp-org:service:WANIPConnection:2",
 *   version: 2,
 *   controlUrl: "http://10.77.0.1:5000/ctl/IPConn",
 * };
 * void service;
 * ```
 */
export interface UpnpService {
  /** Its `serviceType`, one of {@linkcode WAN_CONNECTION_SERVICES}. */
  serviceType: string;
  /** 2 for `WANIPConnection:2` (which has `AddAnyPortMapping`), else 1. */
  version: 1 | 2;
  /** Its control URL, resolved against `URLBase` or the description's location. */
  controlUrl: string;
}

/**
 * Options of {@linkcode UpnpClient}.
 *
 * @example
 * ```ts
 * import type { UpnpClientOptions } from "./upnp.ts";
 * const options: UpnpClientOptions = {
 *   location: "http://10.77.0.1:5000/rootDesc.xml",
 *   requestTimeout: 3000,
 * };
 * void options;
 * ```
 */
export interface UpnpClientOptions {
  /** The device description's URL (an SSDP answer's `LOCATION`), `http:` only. */
  location: string;
  /**
   * The address the gateway forwards to (`NewInternalClient`). Unset, the local address of
   * this host's connection to the gateway.
   * @default {undefined}
   */
  internalClient?: string;
  /**
   * How long one HTTP request (description or SOAP action) may take, in milliseconds.
   * @default {5000}
   */
  requestTimeout?: number;
  /**
   * The largest HTTP response read, headers included, in bytes.
   * @default {65536}
   */
  maxResponseSize?: number;
  /**
   * How many external ports `map` tries when the gateway answers 718
   * (ConflictInMappingEntry): the one asked for, then random ones.
   * @default {4}
   */
  maxPortAttempts?: number;
  /**
   * The clock for request timeouts.
   * @default {systemClock}
   */
  clock?: Clock;
}

/**
 * Options of {@linkcode UpnpClient.discover}: the SSDP search's, and the client's.
 *
 * @example
 * ```ts
 * import type { UpnpDiscoverOptions } from "./upnp.ts";
 * const options: UpnpDiscoverOptions = {
 *   ssdp: { localAddress: "10.77.0.2", timeout: 2000 },
 *   signal: AbortSignal.timeout(10_000),
 * };
 * void options;
 * ```
 */
export interface UpnpDiscoverOptions extends Omit<UpnpClientOptions, "location"> {
  /**
   * The search's options (target, interface, timeout, limits); the clock defaults to the
   * client's.
   * @default {{}}
   */
  ssdp?: Omit<SsdpSearchOptions, "signal">;
  /** Aborts the discovery. */
  signal?: AbortSignal;
}

interface HttpResponse {
  status: number;
  body: string;
  localAddress: string;
}

interface Candidate extends UpnpService {
  url: URL;
}

/**
 * A port-mapping client for one UPnP IGD.
 *
 * `map` checks the gateway's external address first (private or CGNAT:
 * {@linkcode DoubleNatError}), then asks for the mapping; the
 * {@linkcode PortMapping} it resolves with holds the port granted (on IGD v2
 * the gateway may pick another) and the lease (0 when the gateway only takes
 * permanent ones). Renew by calling `map` again with the granted external
 * port. Gateway refusals are {@linkcode PortMappingError}s whose `code` is the
 * UPnP error code and whose message names it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { PortMapper } from "./types.ts";
 * import { UpnpClient } from "./upnp.ts";
 *
 * async function mapFor(port: number, signal: AbortSignal): Promise<string> {
 *   await using client = await UpnpClient.discover({ signal });
 *   const mapper: PortMapper = client;
 *   const mapping = await mapper.map({ transport: "tcp", internalPort: port, lifetime: 3600, signal });
 *   await mapper.unmap(mapping, { signal });
 *   return `${mapping.externalAddress}:${mapping.externalPort}`;
 * }
 *
 * const client = new UpnpClient({ location: "http://10.77.0.1:5000/rootDesc.xml" });
 * assert.equal(client.protocol, "upnp");
 * client.close(); // before any request: nothing was opened
 * void mapFor;
 * ```
 */
export class UpnpClient implements PortMapper, AsyncDisposable {
  /** `"upnp"`. */
  readonly protocol = "upnp" as const;
  /** The device description's URL. */
  readonly location: string;
  #url: URL;
  #internalClient: string | undefined;
  #requestTimeout: number;
  #maxResponseSize: number;
  #maxPortAttempts: number;
  #clock: Clock;
  #closer = new AbortController();
  #service: Promise<Candidate> | undefined;
  /** The gateway answered 725 once: ask for permanent leases from then on. */
  #permanentOnly = false;
  /** The gateway claims v2 but lacks AddAnyPortMapping. */
  #noAddAny = false;

  /**
   * Creates a client for the gateway whose description is at `options.location`; nothing
   * is fetched until the first call.
   *
   * @param options The description's location, limits and clock.
   * @throws {ArgumentError} When `location` is not an `http:` URL or a limit is out of range.
   */
  constructor(options: UpnpClientOptions) {
    let url: URL;
    try {
      url = new URL(options.location);
    } catch (error) {
      throw new ArgumentError(`location must be a URL, got ${JSON.stringify(options.location)}`, {
        cause: error,
      });
    }
    if (url.protocol !== "http:") {
      throw new ArgumentError(`location must be an http: URL, got ${JSON.stringify(url.href)}`);
    }
    this.#url = url;
    this.location = url.href;
    if (options.internalClient !== undefined && ipScope(options.internalClient) === undefined) {
      throw new ArgumentError(
        `internalClient must be an IP address, got ${JSON.stringify(options.internalClient)}`,
      );
    }
    this.#internalClient = options.internalClient;
    this.#requestTimeout = integer("requestTimeout", options.requestTimeout ?? 5000, 1, 600_000);
    this.#maxResponseSize = integer(
      "maxResponseSize",
      options.maxResponseSize ?? 65_536,
      512,
      16 * 1024 * 1024,
    );
    this.#maxPortAttempts = integer("maxPortAttempts", options.maxPortAttempts ?? 4, 1, 64);
    this.#clock = options.clock ?? systemClock;
  }

  /**
   * Finds a gateway with SSDP and returns a client for the first that answers with a WAN
   * connection service (IGD v2 answers tried first). The description is fetched here, so
   * the client returned is known to be able to map.
   *
   * @param options The search's and the client's options, and a signal.
   * @returns A client; close it when done.
   * @throws {PortMappingError} When no gateway answers, or none has a WAN connection service.
   * @throws The signal's reason when `options.signal` aborts first.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { PortMappingError } from "./errors.ts";
   * import { UpnpClient } from "./upnp.ts";
   * // Nothing answers SSDP on this unicast target.
   * const ssdp = { address: "127.0.0.1", port: 9, timeout: 50 };
   * await assert.rejects(UpnpClient.discover({ ssdp }), PortMappingError);
   * ```
   */
  static async discover(options: UpnpDiscoverOptions = {}): Promise<UpnpClient> {
    const { ssdp = {}, signal, ...clientOptions } = options;
    const search = { clock: clientOptions.clock, ...ssdp, signal };
    const { responses, ignored, reasons } = await ssdpSearch(search);
    if (responses.length === 0) {
      const where = `${ssdp.address ?? "239.255.255.250"}:${ssdp.port ?? 1900}`;
      const why = ignored > 0 ? `; ignored ${ignored} datagram(s): ${reasons.join("; ")}` : "";
      throw new PortMappingError(
        `No UPnP gateway answered the SSDP search on ${where} within ${
          ssdp.timeout ?? 3000
        } ms${why}`,
        { protocol: "upnp" },
      );
    }
    const newest = IGD_SEARCH_TARGETS[0].toLowerCase();
    const ordered = [
      ...responses.filter((r) => r.st.toLowerCase() === newest),
      ...responses.filter((r) => r.st.toLowerCase() !== newest),
    ];
    const locations = [...new Set(ordered.map((r) => r.location))];
    const errors: unknown[] = [];
    for (const location of locations) {
      const client = new UpnpClient({ ...clientOptions, location });
      try {
        await client.service({ signal });
        return client;
      } catch (error) {
        client.close();
        if (signal?.aborted) throw signal.reason;
        errors.push(error);
      }
    }
    throw new PortMappingError(
      `No UPnP gateway of the ${locations.length} that answered can map: ${
        errors.map(errorMessage).join("; ")
      }`,
      { protocol: "upnp", cause: errors[0] },
    );
  }

  /**
   * The WAN connection service this client maps with, from the device description (fetched
   * once; a failed fetch is tried again on the next call). When the description has several
   * (a DSL router's `WANIPConnection` and `WANPPPConnection`), the first in
   * {@linkcode WAN_CONNECTION_SERVICES} order that reports an external address wins.
   *
   * @param options `signal` aborts the fetch.
   * @returns The service.
   * @throws {PortMappingError} When the description cannot be fetched or has no such service.
   * @throws {TimeoutError} When the gateway does not answer within `requestTimeout`.
   */
  async service(options: { signal?: AbortSignal } = {}): Promise<UpnpService> {
    const { serviceType, version, controlUrl } = await this.#serviceOf(
      this.#signal(options.signal),
    );
    return { serviceType, version, controlUrl };
  }

  /**
   * The gateway's external address (`GetExternalIPAddress`), as it reports it: a private
   * address here is reported, not refused (`map` refuses it).
   *
   * @param options `signal` aborts the request.
   * @returns The IPv4 address.
   * @throws {PortMappingError} When the gateway refuses, or reports no address.
   * @throws {TimeoutError} When the gateway does not answer within `requestTimeout`.
   */
  async externalAddress(options: { signal?: AbortSignal } = {}): Promise<string> {
    const signal = this.#signal(options.signal);
    return await this.#externalAddressOf(await this.#serviceOf(signal), signal);
  }

  /**
   * Creates or renews a mapping (renew: the same request with the granted `externalPort`).
   *
   * @param request What to map; `lifetime` is the lease asked for, in seconds (at most a
   * week is asked for).
   * @returns What the gateway granted.
   * @throws {ArgumentError} When a port or the lifetime is out of range.
   * @throws {DoubleNatError} When the gateway's external address is private or CGNAT space.
   * @throws {PortMappingError} When the gateway refuses (`code`: the UPnP error code).
   * @throws {TimeoutError} When the gateway does not answer within `requestTimeout`.
   */
  async map(request: MappingRequest): Promise<PortMapping> {
    const { transport, internalPort, lifetime } = request;
    if (transport !== "tcp" && transport !== "udp") {
      throw new ArgumentError(`transport must be "tcp" or "udp", got ${JSON.stringify(transport)}`);
    }
    integer("internalPort", internalPort, 1, 65_535);
    const wanted = integer("externalPort", request.externalPort ?? internalPort, 1, 65_535);
    if (!Number.isInteger(lifetime) || lifetime <= 0) {
      throw new ArgumentError(
        `lifetime must be a positive integer of seconds (delete with unmap), got ${lifetime}`,
      );
    }
    const signal = this.#signal(request.signal);
    const service = await this.#serviceOf(signal);
    const externalAddress = await this.#externalAddressOf(service, signal);
    const scope = ipScope(externalAddress);
    if (scope === "private") {
      throw new DoubleNatError(
        `UPnP gateway ${service.url.hostname} has the private external address ${externalAddress} ` +
          `(RFC 1918 or CGNAT 100.64/10): another NAT lies beyond it, so a mapping there ` +
          `would not make this host reachable`,
        { protocol: "upnp" },
      );
    }
    if (scope !== "public") {
      throw new PortMappingError(
        `UPnP gateway ${service.url.hostname} has no usable external address (${externalAddress}, ${scope})`,
        { protocol: "upnp" },
      );
    }
    const internalClient = this.#internalClient!; // learned by the request above
    const description = request.description ?? "carrier";
    let lease = this.#permanentOnly ? 0 : Math.min(lifetime, MAX_LEASE);
    const tried: number[] = [];
    let port = wanted;
    for (;;) {
      tried.push(port);
      try {
        const granted = await this.#add(service, {
          transport,
          externalPort: port,
          internalPort,
          internalClient,
          description,
          lease,
        }, signal);
        return {
          protocol: "upnp",
          transport,
          gateway: service.url.hostname,
          internalPort,
          externalAddress,
          externalPort: granted,
          lifetime: lease,
        };
      } catch (error) {
        if (!(error instanceof PortMappingError)) throw error;
        if (error.code === 725 && lease !== 0) {
          this.#permanentOnly = true;
          lease = 0;
          tried.pop(); // the same port again, as a permanent mapping
          continue;
        }
        if (error.code === 718) {
          if (tried.length < this.#maxPortAttempts) {
            port = otherPort(tried);
            continue;
          }
          throw new PortMappingError(
            `${error.message}, on external ports ${
              tried.join(", ")
            } (maxPortAttempts ${this.#maxPortAttempts})`,
            { protocol: "upnp", code: 718, cause: error },
          );
        }
        throw error;
      }
    }
  }

  /**
   * Deletes a mapping (`DeletePortMapping`). A mapping the gateway no longer has (714,
   * NoSuchEntryInArray) counts as deleted.
   *
   * @param mapping A mapping `map` returned.
   * @param options `signal` aborts the request.
   * @throws {PortMappingError} When the gateway refuses.
   * @throws {TimeoutError} When the gateway does not answer within `requestTimeout`.
   */
  async unmap(mapping: PortMapping, options: { signal?: AbortSignal } = {}): Promise<void> {
    integer("externalPort", mapping.externalPort, 1, 65_535);
    const signal = this.#signal(options.signal);
    const service = await this.#serviceOf(signal);
    try {
      await this.#soap(service, "DeletePortMapping", [
        ["NewRemoteHost", ""],
        ["NewExternalPort", mapping.externalPort],
        ["NewProtocol", protocolName(mapping.transport)],
      ], signal);
    } catch (error) {
      if (error instanceof PortMappingError && error.code === 714) return;
      throw error;
    }
  }

  /** Aborts every request in flight (they reject with an `AbortError`) and every later call. */
  close(): void {
    if (!this.#closer.signal.aborted) {
      this.#closer.abort(new DOMException("UpnpClient closed", "AbortError"));
    }
  }

  /** {@linkcode UpnpClient.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }

  #signal(signal: AbortSignal | undefined): AbortSignal {
    const closer = this.#closer.signal;
    closer.throwIfAborted();
    signal?.throwIfAborted();
    return signal === undefined ? closer : AbortSignal.any([closer, signal]);
  }

  #serviceOf(signal: AbortSignal): Promise<Candidate> {
    if (this.#service === undefined) {
      // Shared by concurrent callers; the close signal, not theirs, bounds it.
      const loading = this.#loadService(this.#closer.signal);
      this.#service = loading;
      loading.catch(() => {
        if (this.#service === loading) this.#service = undefined;
      });
    }
    return abortable(this.#service, signal);
  }

  async #loadService(signal: AbortSignal): Promise<Candidate> {
    const response = await this.#http(this.#url, "GET", {}, undefined, signal);
    if (response.status !== 200) {
      throw new PortMappingError(
        `UPnP device description ${this.location}: HTTP ${response.status}`,
        { protocol: "upnp" },
      );
    }
    const candidates = candidatesOf(response.body, this.#url);
    if (candidates.length === 0) {
      throw new PortMappingError(
        `UPnP device description ${this.location} has no WAN connection service ` +
          `(${WAN_CONNECTION_SERVICES.map((t) => t.split(":").slice(-2).join(":")).join(", ")})`,
        { protocol: "upnp" },
      );
    }
    if (candidates.length === 1) return candidates[0];
    for (const candidate of candidates) {
      try {
        await this.#externalAddressOf(candidate, signal);
        return candidate;
      } catch {
        if (signal.aborted) throw signal.reason;
      }
    }
    return candidates[0];
  }

  async #externalAddressOf(service: Candidate, signal: AbortSignal): Promise<string> {
    const { xml, localAddress } = await this.#soap(service, "GetExternalIPAddress", [], signal);
    const address = xmlText(xml, "NewExternalIPAddress") ?? "";
    const scope = ipScope(address);
    if (scope === undefined || !address.includes(".")) {
      throw new PortMappingError(
        `UPnP GetExternalIPAddress: the gateway reports no IPv4 external address (${
          JSON.stringify(address.slice(0, 64))
        })`,
        { protocol: "upnp" },
      );
    }
    this.#internalClient ??= localAddress;
    return address;
  }

  async #add(
    service: Candidate,
    m: {
      transport: MappedTransport;
      externalPort: number;
      internalPort: number;
      internalClient: string;
      description: string;
      lease: number;
    },
    signal: AbortSignal,
  ): Promise<number> {
    const args: [string, string | number][] = [
      ["NewRemoteHost", ""],
      ["NewExternalPort", m.externalPort],
      ["NewProtocol", protocolName(m.transport)],
      ["NewInternalPort", m.internalPort],
      ["NewInternalClient", m.internalClient],
      ["NewEnabled", 1],
      ["NewPortMappingDescription", m.description],
      ["NewLeaseDuration", m.lease],
    ];
    if (service.version === 2 && !this.#noAddAny) {
      try {
        const { xml } = await this.#soap(service, "AddAnyPortMapping", args, signal);
        const reserved = xmlText(xml, "NewReservedPort") ?? "";
        const port = /^\d{1,5}$/.test(reserved) ? Number(reserved) : 0;
        if (port < 1 || port > 65_535) {
          throw new PortMappingError(
            `UPnP AddAnyPortMapping: NewReservedPort ${
              JSON.stringify(reserved.slice(0, 16))
            } is not a port`,
            { protocol: "upnp" },
          );
        }
        return port;
      } catch (error) {
        const code = error instanceof PortMappingError ? error.code : undefined;
        if (code !== 401 && code !== 602) throw error;
        this.#noAddAny = true; // claims v2, lacks the action: AddPortMapping it is
      }
    }
    await this.#soap(service, "AddPortMapping", args, signal);
    return m.externalPort;
  }

  async #soap(
    service: Candidate,
    action: string,
    args: [string, string | number][],
    signal: AbortSignal,
  ): Promise<{ xml: string; localAddress: string }> {
    const type = escapeXml(service.serviceType);
    const body = `<?xml version="1.0"?>\r\n` +
      `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" ` +
      `s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>` +
      `<u:${action} xmlns:u="${type}">` +
      args.map(([name, value]) => `<${name}>${escapeXml(String(value))}</${name}>`).join("") +
      `</u:${action}></s:Body></s:Envelope>\r\n`;
    const headers = {
      "Content-Type": 'text/xml; charset="utf-8"',
      SOAPAction: `"${service.serviceType}#${action}"`,
    };
    const response = await this.#http(service.url, "POST", headers, body, signal);
    const xml = stripXmlNoise(response.body);
    if (response.status === 200) {
      const [result] = xmlElements(xml, `${action}Response`);
      if (result === undefined) {
        throw new PortMappingError(`UPnP ${action}: the answer has no ${action}Response`, {
          protocol: "upnp",
        });
      }
      return { xml: result, localAddress: response.localAddress };
    }
    const codeText = xmlText(xml, "errorCode");
    if (codeText === undefined || !/^\d{1,4}$/.test(codeText)) {
      throw new PortMappingError(`UPnP ${action}: HTTP ${response.status} without a UPnP error`, {
        protocol: "upnp",
      });
    }
    const code = Number(codeText);
    const name = UPNP_ERROR_NAMES[code] ?? "unknown error";
    const detail = (xmlText(xml, "errorDescription") ?? "").slice(0, 200);
    throw new PortMappingError(
      `UPnP ${action} refused: ${code} ${name}${detail && detail !== name ? ` (${detail})` : ""}`,
      { protocol: "upnp", code },
    );
  }

  /** One HTTP/1.1 request on its own connection (`Connection: close`), bounded in time and size. */
  async #http(
    url: URL,
    method: "GET" | "POST",
    headers: Record<string, string>,
    body: string | undefined,
    signal: AbortSignal,
  ): Promise<HttpResponse> {
    const what = `${method} ${url.href}`;
    const max = this.#maxResponseSize;
    const timeout = new AbortController();
    const timer = this.#clock.setTimeout(() => {
      timeout.abort(
        new TimeoutError(
          `UPnP ${what}: no answer within requestTimeout ${this.#requestTimeout} ms`,
        ),
      );
    }, this.#requestTimeout);
    const both = AbortSignal.any([signal, timeout.signal]);
    let conn: Deno.TcpConn | undefined;
    const closeConn = () => {
      try {
        conn?.close();
      } catch {
        // closed already
      }
      conn = undefined;
    };
    try {
      const port = url.port === "" ? 80 : Number(url.port);
      conn = await Deno.connect({ hostname: url.hostname, port, signal: both });
      // The signal of Deno.connect ends the connecting only: end the reads and writes too.
      both.addEventListener("abort", closeConn, { once: true });
      both.throwIfAborted();
      const payload = body === undefined ? undefined : new TextEncoder().encode(body);
      const lines = [
        `${method} ${url.pathname}${url.search} HTTP/1.1`,
        `Host: ${url.host}`,
        "Connection: close",
        ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
      ];
      if (payload !== undefined) lines.push(`Content-Length: ${payload.length}`);
      const head = new TextEncoder().encode(lines.join("\r\n") + "\r\n\r\n");
      await writeAll(conn, head);
      if (payload !== undefined) await writeAll(conn, payload);
      const buffer = new Uint8Array(max + 1);
      let filled = 0;
      let parsed: ReturnType<typeof parseHttp> = undefined;
      for (;;) {
        const n = await conn.read(buffer.subarray(filled));
        if (n === null) break;
        filled += n;
        if (filled > max) {
          throw new PortMappingError(
            `UPnP ${what}: the answer exceeds maxResponseSize ${max} bytes`,
            {
              protocol: "upnp",
              cause: new SizeLimitError(`HTTP response over ${max} bytes`, {
                limit: "maxResponseSize",
                size: filled,
                max,
              }),
            },
          );
        }
        parsed = parseHttp(buffer.subarray(0, filled), false);
        if (parsed !== undefined) break;
      }
      parsed ??= parseHttp(buffer.subarray(0, filled), true);
      if (parsed === undefined) {
        throw new PortMappingError(`UPnP ${what}: the answer ends before its headers do`, {
          protocol: "upnp",
        });
      }
      const local = conn.localAddr as Deno.NetAddr;
      return { status: parsed.status, body: parsed.body, localAddress: local.hostname };
    } catch (error) {
      if (both.aborted) throw both.reason;
      if (error instanceof PortMappingError) throw error;
      throw new PortMappingError(`UPnP ${what} failed: ${errorMessage(error)}`, {
        protocol: "upnp",
        cause: error,
      });
    } finally {
      this.#clock.clearTimeout(timer);
      both.removeEventListener("abort", closeConn);
      closeConn();
    }
  }
}

function integer(name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ArgumentError(`${name} must be an integer from ${min} to ${max}, got ${value}`);
  }
  return value;
}

function protocolName(transport: MappedTransport): "TCP" | "UDP" {
  return transport === "udp" ? "UDP" : "TCP";
}

/** A random port from 1024 to 65535 not yet tried. */
function otherPort(tried: readonly number[]): number {
  const random = new Uint32Array(1);
  for (;;) {
    crypto.getRandomValues(random);
    const port = 1024 + (random[0] % (65_536 - 1024));
    if (!tried.includes(port)) return port;
  }
}

function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let written = 0; written < bytes.length;) {
    written += await conn.write(bytes.subarray(written));
  }
}

/** The WAN connection services of a device description, in preference order. */
function candidatesOf(description: string, location: URL): Candidate[] {
  const xml = stripXmlNoise(description);
  const base = xmlText(xml, "URLBase");
  let baseUrl = location;
  if (base) {
    try {
      baseUrl = new URL(base);
    } catch {
      throw new PortMappingError(
        `UPnP device description ${location.href}: URLBase ${
          JSON.stringify(base.slice(0, 100))
        } is not a URL`,
        { protocol: "upnp" },
      );
    }
  }
  const services = xmlElements(xml, "service").map((service) => ({
    type: xmlText(service, "serviceType") ?? "",
    control: xmlText(service, "controlURL") ?? "",
  }));
  const out: Candidate[] = [];
  for (const serviceType of WAN_CONNECTION_SERVICES) {
    const found = services.find((s) => s.type.toLowerCase() === serviceType.toLowerCase());
    if (found === undefined) continue;
    let url: URL;
    try {
      url = new URL(found.control, baseUrl);
    } catch {
      throw new PortMappingError(
        `UPnP device description ${location.href}: controlURL ${
          JSON.stringify(found.control.slice(0, 100))
        } is not a URL`,
        { protocol: "upnp" },
      );
    }
    // The description came from the gateway; its control point must be on the gateway too.
    if (url.protocol !== "http:" || url.hostname !== location.hostname) {
      throw new PortMappingError(
        `UPnP device description ${location.href}: controlURL ${url.href} is not on ${location.hostname}`,
        { protocol: "upnp" },
      );
    }
    out.push({
      serviceType,
      version: serviceType.endsWith(":2") ? 2 : 1,
      controlUrl: url.href,
      url,
    });
  }
  return out;
}

const CRLF2 = [13, 10, 13, 10];

function indexOfBytes(bytes: Uint8Array, pattern: number[], from: number): number {
  outer: for (let i = from; i <= bytes.length - pattern.length; i++) {
    for (let j = 0; j < pattern.length; j++) if (bytes[i + j] !== pattern[j]) continue outer;
    return i;
  }
  return -1;
}

/**
 * A complete HTTP response from `bytes`, or `undefined` while more must be read. At the end
 * of the stream (`eof`), a response without `Content-Length` or chunking ends there, and a
 * shorter one than announced is an error.
 */
function parseHttp(bytes: Uint8Array, eof: boolean): { status: number; body: string } | undefined {
  const headEnd = indexOfBytes(bytes, CRLF2, 0);
  if (headEnd === -1) return undefined;
  const decoder = new TextDecoder();
  const lines = decoder.decode(bytes.subarray(0, headEnd)).split("\r\n");
  const status = /^HTTP\/1\.[01] (\d{3})(?: |$)/.exec(lines[0]);
  if (status === null) {
    throw new PortMappingError(
      `UPnP gateway answered ${JSON.stringify(lines[0].slice(0, 40))}, not HTTP/1.x`,
      { protocol: "upnp" },
    );
  }
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon > 0) {
      headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
  }
  const start = headEnd + 4;
  const result = (body: Uint8Array) => ({ status: Number(status[1]), body: decoder.decode(body) });
  if (/\bchunked\b/i.test(headers.get("transfer-encoding") ?? "")) {
    const body = dechunk(bytes, start);
    if (body !== undefined) return result(body);
    if (eof) {
      throw new PortMappingError("UPnP gateway's chunked answer ends early", { protocol: "upnp" });
    }
    return undefined;
  }
  const lengthText = headers.get("content-length");
  if (lengthText !== undefined) {
    if (!/^\d{1,9}$/.test(lengthText)) {
      throw new PortMappingError(`UPnP gateway sent Content-Length ${JSON.stringify(lengthText)}`, {
        protocol: "upnp",
      });
    }
    const length = Number(lengthText);
    if (bytes.length - start >= length) return result(bytes.subarray(start, start + length));
    if (eof) {
      throw new PortMappingError(
        `UPnP gateway's answer ends after ${bytes.length - start} of its ${length} bytes`,
        { protocol: "upnp" },
      );
    }
    return undefined;
  }
  return eof ? result(bytes.subarray(start)) : undefined;
}

/** The body of a chunked message starting at `start`, or `undefined` while incomplete. */
function dechunk(bytes: Uint8Array, start: number): Uint8Array | undefined {
  const parts: Uint8Array[] = [];
  let at = start;
  for (;;) {
    const lineEnd = indexOfBytes(bytes, [13, 10], at);
    if (lineEnd === -1) return undefined;
    const sizeText = new TextDecoder().decode(bytes.subarray(at, lineEnd)).split(";")[0].trim();
    if (!/^[0-9a-fA-F]{1,8}$/.test(sizeText)) {
      throw new PortMappingError(
        `UPnP gateway sent chunk size ${JSON.stringify(sizeText.slice(0, 16))}`,
        {
          protocol: "upnp",
        },
      );
    }
    const size = parseInt(sizeText, 16);
    if (size === 0) break; // trailers, if any, are not read
    const dataStart = lineEnd + 2;
    if (bytes.length < dataStart + size + 2) return undefined;
    parts.push(bytes.subarray(dataStart, dataStart + size));
    at = dataStart + size + 2;
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
