/**
 * SSDP discovery of UPnP Internet Gateway Devices: an `M-SEARCH` over UDP
 * multicast (239.255.255.250:1900, or any address a caller names, such as a
 * unicast test responder), the answers parsed and checked.
 *
 * A search is bounded every way: datagram size, number of answers, time.
 * One search runs at a time per target and interface; a caller that asks
 * while one is in flight shares it. An answer whose `LOCATION` names another
 * host than the one that answered is refused, so a LAN device cannot make the
 * node fetch from a third host.
 *
 * @module
 */

import dgram from "node:dgram";
import { type Clock, systemClock } from "../clock.ts";
import { ArgumentError } from "../errors.ts";
import { errorMessage } from "../_error_message.ts";
import { PortMappingError } from "./errors.ts";

/**
 * SSDP's multicast group, IPv4.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SSDP_MULTICAST_ADDRESS, SSDP_PORT } from "./ssdp.ts";
 * assert.equal(`${SSDP_MULTICAST_ADDRESS}:${SSDP_PORT}`, "239.255.255.250:1900");
 * ```
 */
export const SSDP_MULTICAST_ADDRESS = "239.255.255.250";

/**
 * SSDP's port.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SSDP_PORT } from "./ssdp.ts";
 * assert.equal(SSDP_PORT, 1900);
 * ```
 */
export const SSDP_PORT = 1900;

/**
 * The search targets for an Internet Gateway Device, newest first: IGD v2
 * devices answer the first, v1 devices the second (v2 devices usually both).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { IGD_SEARCH_TARGETS } from "./ssdp.ts";
 * assert.ok(IGD_SEARCH_TARGETS[0].endsWith("InternetGatewayDevice:2"));
 * ```
 */
export const IGD_SEARCH_TARGETS: readonly string[] = Object.freeze([
  "urn:schemas-upnp-org:device:InternetGatewayDevice:2",
  "urn:schemas-upnp-org:device:InternetGatewayDevice:1",
]);

/**
 * One device's answer to an `M-SEARCH`.
 *
 * @example
 * ```ts
 * import type { SsdpResponse } from "./ssdp.ts";
 * const response: SsdpResponse = {
 *   address: "10.77.0.1",
 *   location: "http://10.77.0.1:5000/rootDesc.xml",
 *   st: "urn:schemas-upnp-org:device:InternetGatewayDevice:2",
 *   usn: "uuid:1770fa96-5960-404c-9fb2-b839f089f714::urn:schemas-upnp-org:device:InternetGatewayDevice:2",
 *   server: "Debian/12 UPnP/1.1 MiniUPnPd/2.3.1",
 * };
 * void response;
 * ```
 */
export interface SsdpResponse {
  /** The IP address the answer came from (and `location`'s host). */
  address: string;
  /** The device description's URL (`LOCATION`), an `http:` URL on `address`. */
  location: string;
  /** The search target answered (`ST`), one of those searched. */
  st: string;
  /** The unique service name (`USN`), `""` when the device sent none. */
  usn: string;
  /** The `SERVER` header, when the device sent one. */
  server: string | undefined;
}

/**
 * What {@linkcode ssdpSearch} found: the answers kept, and why others were not.
 *
 * @example
 * ```ts
 * import type { SsdpSearchResult } from "./ssdp.ts";
 * const result: SsdpSearchResult = { responses: [], ignored: 0, reasons: [] };
 * void result;
 * ```
 */
export interface SsdpSearchResult {
  /** The answers, in arrival order, one per (`LOCATION`, `ST`). */
  responses: SsdpResponse[];
  /** How many datagrams were not answers to keep (malformed, too large, refused, repeated). */
  ignored: number;
  /** Why, for the first few of them (at most 8), e.g. `LOCATION host 10.0.0.9 is not the responder 10.77.0.1`. */
  reasons: string[];
}

/**
 * Options of {@linkcode ssdpSearch}.
 *
 * @example
 * ```ts
 * import type { SsdpSearchOptions } from "./ssdp.ts";
 * const options: SsdpSearchOptions = { localAddress: "10.77.0.2", timeout: 2000 };
 * void options;
 * ```
 */
export interface SsdpSearchOptions {
  /**
   * The `ST` values searched, one `M-SEARCH` each; answers for other targets are ignored.
   * @default {IGD_SEARCH_TARGETS}
   */
  searchTargets?: readonly string[];
  /**
   * Where the `M-SEARCH` goes: the multicast group, or a unicast IPv4 address (a known
   * gateway, a test responder).
   * @default {"239.255.255.250"}
   */
  address?: string;
  /**
   * The port it goes to.
   * @default {1900}
   */
  port?: number;
  /**
   * The local IPv4 address to bind to and send multicast from: the interface towards the
   * gateway. Unset, the socket binds to all interfaces and the system's routing table picks
   * the multicast interface (a default route or a route for 239.0.0.0/8 is needed).
   * @default {undefined}
   */
  localAddress?: string;
  /**
   * `MX`: the seconds a device may wait at random before answering a multicast search (1 to 5).
   * @default {1}
   */
  mx?: number;
  /**
   * How long the whole search may take, in milliseconds; it then resolves with the answers
   * it has (maybe none).
   * @default {3000}
   */
  timeout?: number;
  /**
   * How long to keep listening after the first answer, in milliseconds, for other devices'
   * (and the same device's other targets'). It is most of the time to a first mapping:
   * miniupnpd 2.3.1 answers in about 60 ms, whatever `mx`.
   * @default {100}
   */
  linger?: number;
  /**
   * How often to send the searches again while nothing has answered, in milliseconds (UDP
   * may lose them).
   * @default {1000}
   */
  retransmitInterval?: number;
  /**
   * The most answers kept; the search ends when it has this many.
   * @default {16}
   */
  maxResponses?: number;
  /**
   * The largest datagram read, in bytes; larger ones are ignored.
   * @default {2048}
   */
  maxDatagramSize?: number;
  /**
   * The clock for the search's timers.
   * @default {systemClock}
   */
  clock?: Clock;
  /** Aborts this caller's wait (the shared search ends when all its callers have left). */
  signal?: AbortSignal;
}

interface SearchConfig {
  searchTargets: readonly string[];
  address: string;
  port: number;
  localAddress: string | undefined;
  mx: number;
  timeout: number;
  linger: number;
  retransmitInterval: number;
  maxResponses: number;
  maxDatagramSize: number;
  clock: Clock;
}

interface SharedSearch {
  promise: Promise<SsdpSearchResult>;
  controller: AbortController;
  callers: number;
}

const MAX_REASONS = 8;
const IPV4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
const inFlight = new Map<string, SharedSearch>();

/**
 * Searches for UPnP devices with SSDP `M-SEARCH` and resolves with their answers once the
 * first answer has lingered `linger` ms, `maxResponses` have come, or `timeout` ms have
 * passed (an empty list then: no device answered).
 *
 * Only one search runs per (address, port, local address, targets): a call made while one is
 * in flight joins it and gets its result (with the first caller's timeout and limits).
 *
 * @param options Target, interface, limits and signal.
 * @returns The answers kept and a count of those ignored.
 * @throws {ArgumentError} When an option is out of range.
 * @throws {PortMappingError} When the socket cannot bind or send (e.g. no route for multicast).
 * @throws The signal's reason when `options.signal` aborts first.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ssdpSearch } from "./ssdp.ts";
 * // Nothing answers on this unicast target: the search ends empty after its timeout.
 * const { responses } = await ssdpSearch({ address: "127.0.0.1", port: 9, timeout: 50 });
 * assert.deepEqual(responses, []);
 * ```
 */
export function ssdpSearch(options: SsdpSearchOptions = {}): Promise<SsdpSearchResult> {
  let config: SearchConfig;
  try {
    config = configOf(options);
  } catch (error) {
    return Promise.reject(error);
  }
  const { signal } = options;
  if (signal?.aborted) return Promise.reject(signal.reason);
  const key = JSON.stringify([
    config.address,
    config.port,
    config.localAddress ?? "",
    config.searchTargets,
  ]);
  let shared = inFlight.get(key);
  if (shared === undefined) {
    const controller = new AbortController();
    const search: SharedSearch = {
      promise: runSearch(config, controller.signal),
      controller,
      callers: 0,
    };
    shared = search;
    inFlight.set(key, search);
    search.promise.catch(() => {}).finally(() => {
      if (inFlight.get(key) === search) inFlight.delete(key);
    });
  }
  const joined = shared;
  joined.callers++;
  return new Promise<SsdpSearchResult>((resolve, reject) => {
    let left = false;
    const leave = () => {
      if (left) return;
      left = true;
      signal?.removeEventListener("abort", onAbort);
      if (--joined.callers === 0) joined.controller.abort();
    };
    const onAbort = () => {
      leave();
      reject(signal!.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    joined.promise.then(
      (result) => {
        leave();
        resolve({ ...result, responses: [...result.responses], reasons: [...result.reasons] });
      },
      (error) => {
        leave();
        reject(error);
      },
    );
  });
}

function configOf(options: SsdpSearchOptions): SearchConfig {
  const searchTargets = options.searchTargets ?? IGD_SEARCH_TARGETS;
  if (searchTargets.length === 0) throw new ArgumentError("searchTargets must not be empty");
  for (const st of searchTargets) {
    if (st === "" || /[\r\n]/.test(st)) {
      throw new ArgumentError(`Invalid SSDP search target ${JSON.stringify(st)}`);
    }
  }
  const address = options.address ?? SSDP_MULTICAST_ADDRESS;
  if (!IPV4.test(address)) {
    throw new ArgumentError(`SSDP address must be an IPv4 address, got ${JSON.stringify(address)}`);
  }
  const localAddress = options.localAddress;
  if (localAddress !== undefined && !IPV4.test(localAddress)) {
    throw new ArgumentError(
      `SSDP localAddress must be an IPv4 address, got ${JSON.stringify(localAddress)}`,
    );
  }
  const config: SearchConfig = {
    searchTargets: [...searchTargets],
    address,
    port: integer("port", options.port ?? SSDP_PORT, 1, 65_535),
    localAddress,
    mx: integer("mx", options.mx ?? 1, 1, 5),
    timeout: integer("timeout", options.timeout ?? 3000, 1, 600_000),
    linger: integer("linger", options.linger ?? 100, 0, 600_000),
    retransmitInterval: integer(
      "retransmitInterval",
      options.retransmitInterval ?? 1000,
      1,
      600_000,
    ),
    maxResponses: integer("maxResponses", options.maxResponses ?? 16, 1, 1024),
    maxDatagramSize: integer("maxDatagramSize", options.maxDatagramSize ?? 2048, 64, 65_535),
    clock: options.clock ?? systemClock,
  };
  return config;
}

function integer(name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ArgumentError(`${name} must be an integer from ${min} to ${max}, got ${value}`);
  }
  return value;
}

function isMulticast(address: string): boolean {
  const first = Number(address.split(".")[0]);
  return first >= 224 && first <= 239;
}

function searchMessage(config: SearchConfig, st: string): Uint8Array {
  const host = `${config.address}:${config.port}`;
  const lines = ["M-SEARCH * HTTP/1.1", `HOST: ${host}`, 'MAN: "ssdp:discover"'];
  if (isMulticast(config.address)) lines.push(`MX: ${config.mx}`);
  lines.push(`ST: ${st}`, "", "");
  return new TextEncoder().encode(lines.join("\r\n"));
}

async function runSearch(config: SearchConfig, signal: AbortSignal): Promise<SsdpSearchResult> {
  const { clock } = config;
  const socket = dgram.createSocket({ type: "udp4" });
  const result: SsdpSearchResult = { responses: [], ignored: 0, reasons: [] };
  const seen = new Set<string>();
  const timers: number[] = [];
  const where = `${config.address}:${config.port}`;
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      socket.bind({ address: config.localAddress, port: 0 }, () => {
        socket.off("error", reject);
        resolve();
      });
    }).catch((error) => {
      throw new PortMappingError(
        `Cannot bind the SSDP socket to ${config.localAddress ?? "0.0.0.0"}: ${
          errorMessage(error)
        }`,
        { protocol: "upnp", cause: error },
      );
    });
    if (isMulticast(config.address)) {
      socket.setMulticastTTL(2); // UDA 1.1: a TTL of 2 by default
      if (config.localAddress !== undefined) socket.setMulticastInterface(config.localAddress);
    }
    signal.throwIfAborted();
    return await new Promise<SsdpSearchResult>((resolve, reject) => {
      let done = false;
      const finish = (error?: unknown) => {
        if (done) return;
        done = true;
        signal.removeEventListener("abort", onAbort);
        if (error === undefined) resolve(result);
        else reject(error);
      };
      const onAbort = () => finish(signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
      const ignore = (reason: string) => {
        result.ignored++;
        if (result.reasons.length < MAX_REASONS) result.reasons.push(reason);
      };
      const send = () => {
        for (const st of config.searchTargets) {
          socket.send(searchMessage(config, st), config.port, config.address, (error) => {
            if (error == null) return;
            const hint = isMulticast(config.address)
              ? " (multicast needs a default route or a route for 239.0.0.0/8 on the LAN interface)"
              : "";
            finish(
              new PortMappingError(
                `Cannot send SSDP M-SEARCH to ${where}: ${errorMessage(error)}${hint}`,
                { protocol: "upnp", cause: error },
              ),
            );
          });
        }
      };
      socket.on("message", (message: Uint8Array, remote: { address: string; port: number }) => {
        if (done) return;
        if (message.length > config.maxDatagramSize) {
          return ignore(
            `datagram of ${message.length} bytes from ${remote.address} exceeds maxDatagramSize ${config.maxDatagramSize}`,
          );
        }
        const parsed = parseResponse(message, remote.address, config.searchTargets);
        if (typeof parsed === "string") return ignore(`${parsed} (from ${remote.address})`);
        const id = `${parsed.location} ${parsed.st}`;
        if (seen.has(id)) return ignore(`repeated answer from ${remote.address}`);
        seen.add(id);
        result.responses.push(parsed);
        if (result.responses.length >= config.maxResponses) return finish();
        if (result.responses.length === 1) {
          timers.push(clock.setTimeout(() => finish(), config.linger));
        }
      });
      socket.on("error", (error) => finish(error));
      timers.push(clock.setTimeout(() => finish(), config.timeout));
      const retransmit = () => {
        if (done || result.responses.length > 0) return;
        send();
        timers.push(clock.setTimeout(retransmit, config.retransmitInterval));
      };
      retransmit();
    });
  } finally {
    for (const timer of timers) clock.clearTimeout(timer);
    await new Promise<void>((resolve) => {
      try {
        socket.close(() => resolve());
      } catch {
        resolve(); // never bound, or already closed
      }
    });
  }
}

/** An answer, or why it is not one. */
function parseResponse(
  datagram: Uint8Array,
  from: string,
  searchTargets: readonly string[],
): SsdpResponse | string {
  const text = new TextDecoder().decode(datagram);
  const end = text.search(/\r?\n\r?\n/);
  const lines = (end === -1 ? text : text.slice(0, end)).split(/\r?\n/);
  if (!/^HTTP\/1\.[01] 200(?: |$)/i.test(lines[0])) {
    return `not an SSDP answer: ${JSON.stringify(lines[0].slice(0, 40))}`;
  }
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    if (!headers.has(name)) headers.set(name, line.slice(colon + 1).trim());
  }
  const st = headers.get("st");
  if (!st) return "SSDP answer without ST";
  const target = searchTargets.find((t) => t.toLowerCase() === st.toLowerCase());
  if (target === undefined) return `SSDP answer for ST ${JSON.stringify(st)}, not searched`;
  const location = headers.get("location") ?? headers.get("al");
  if (!location) return "SSDP answer without LOCATION";
  let url: URL;
  try {
    url = new URL(location);
  } catch {
    return `LOCATION ${JSON.stringify(location.slice(0, 100))} is not a URL`;
  }
  if (url.protocol !== "http:") return `LOCATION ${JSON.stringify(location)} is not http:`;
  if (url.hostname !== from) return `LOCATION host ${url.hostname} is not the responder ${from}`;
  return {
    address: from,
    location: url.href,
    st: target,
    usn: headers.get("usn") ?? "",
    server: headers.get("server"),
  };
}
