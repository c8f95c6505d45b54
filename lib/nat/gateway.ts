/**
 * Where the port-mapping gateway is: {@linkcode defaultGateway} reads the
 * IPv4 default route (Linux's `/proc/net/route`), and
 * {@linkcode localAddressTowards} finds this host's address on the link to it
 * (what PCP puts in its client IP field).
 *
 * @module
 */

import dgram from "node:dgram";
import { ipv4Bytes } from "./_udp.ts";

/**
 * Options of {@linkcode defaultGateway}.
 *
 * @example
 * ```ts
 * import type { DefaultGatewayOptions } from "./gateway.ts";
 * const options: DefaultGatewayOptions = { routeTable: "/proc/net/route" };
 * void options;
 * ```
 */
export interface DefaultGatewayOptions {
  /**
   * The routing table to read, in `/proc/net/route`'s format.
   * @default {"/proc/net/route"}
   */
  routeTable?: string;
  /**
   * Aborts the read.
   * @default {undefined}
   */
  signal?: AbortSignal;
}

const RTF_UP = 0x1;
const RTF_GATEWAY = 0x2;

/**
 * The IPv4 default gateway in a routing table in `/proc/net/route`'s format
 * (addresses as little-endian hex), the one of lowest metric when there are
 * several; `undefined` when the table has none.
 *
 * @param table The text of `/proc/net/route`.
 * @returns The gateway's address, or `undefined`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseRouteTable } from "./gateway.ts";
 * const table = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\n" +
 *   "h0\t00000000\t01004D0A\t0003\t0\t0\t0\t00000000\n" +
 *   "h0\t00004D0A\t00000000\t0001\t0\t0\t0\t00FFFFFF\n";
 * assert.equal(parseRouteTable(table), "10.77.0.1");
 * ```
 */
export function parseRouteTable(table: string): string | undefined {
  let best: { gateway: string; metric: number } | undefined;
  for (const line of table.split("\n").slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 8) continue;
    const [, destination, gatewayHex, flagsHex, , , metricText, mask] = fields;
    const flags = parseInt(flagsHex, 16);
    if (destination !== "00000000" || mask !== "00000000") continue;
    if ((flags & (RTF_UP | RTF_GATEWAY)) !== (RTF_UP | RTF_GATEWAY)) continue;
    if (!/^[0-9A-Fa-f]{8}$/.test(gatewayHex)) continue;
    const value = parseInt(gatewayHex, 16);
    const gateway = [value & 0xff, (value >>> 8) & 0xff, (value >>> 16) & 0xff, value >>> 24]
      .join(".");
    const metric = Number(metricText);
    if (!best || metric < best.metric) best = { gateway, metric };
  }
  return best?.gateway;
}

/**
 * The IPv4 default gateway of this host, from Linux's `/proc/net/route`;
 * `undefined` when there is none or it cannot be found. Deno lets only
 * `--allow-all` read `/proc/net` (it is `/proc/self/net`), so without it the
 * route comes from `ip -4 route show default` when `--allow-run` covers
 * `ip`; with neither (and on other systems: macOS, Windows and the BSDs have
 * no such file, and this function runs no `route` or `netstat`) it is
 * `undefined`: pass the gateway yourself.
 *
 * @param options Where the table is, and a signal.
 * @returns The gateway's address, or `undefined`.
 *
 * @example
 * ```ts
 * import { defaultGateway } from "./gateway.ts";
 * const gateway = await defaultGateway(); // "192.168.1.1", or undefined off Linux
 * console.log(gateway ?? "no default gateway known");
 * ```
 */
export async function defaultGateway(
  options: DefaultGatewayOptions = {},
): Promise<string | undefined> {
  const { routeTable = "/proc/net/route", signal } = options;
  signal?.throwIfAborted();
  if (options.routeTable === undefined && Deno.build.os !== "linux") return undefined;
  let text: string;
  try {
    text = await Deno.readTextFile(routeTable, { signal });
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    if (error instanceof Deno.errors.PermissionDenied || error instanceof Deno.errors.NotCapable) {
      return options.routeTable === undefined ? await fromIpRoute(signal) : undefined;
    }
    throw error;
  }
  return parseRouteTable(text);
}

/** The default route's gateway as `ip -4 route show default` prints it, when `ip` may run. */
async function fromIpRoute(signal?: AbortSignal): Promise<string | undefined> {
  if (Deno.permissions.querySync({ name: "run", command: "ip" }).state !== "granted") {
    return undefined;
  }
  try {
    const out = await new Deno.Command("ip", {
      args: ["-4", "route", "show", "default"],
      stdout: "piped",
      stderr: "null",
      signal,
    }).output();
    const match = /^default via (\d+\.\d+\.\d+\.\d+)/m.exec(new TextDecoder().decode(out.stdout));
    return match?.[1];
  } catch {
    signal?.throwIfAborted();
    return undefined; // no `ip` on this system
  }
}

/**
 * Options of {@linkcode localAddressTowards}.
 *
 * @example
 * ```ts
 * import type { LocalAddressOptions } from "./gateway.ts";
 * const options: LocalAddressOptions = { port: 5351 };
 * void options;
 * ```
 */
export interface LocalAddressOptions {
  /**
   * The gateway's port the probe socket connects to (nothing is sent).
   * @default {5351}
   */
  port?: number;
  /**
   * Aborts the look-up.
   * @default {undefined}
   */
  signal?: AbortSignal;
}

/**
 * This host's IPv4 address towards `gateway`: the source address of a UDP
 * socket connected to it, or, where the runtime reports a connected socket's
 * address as 0.0.0.0 (Deno 2.9's `node:dgram` does), the address of the
 * interface whose subnet holds the gateway (which needs `--allow-sys`);
 * `undefined` when neither says. Loopback gateways get 127.0.0.1.
 *
 * @param gateway The gateway's IPv4 address.
 * @param options The port to connect to, and a signal.
 * @returns The local address, or `undefined`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { localAddressTowards } from "./gateway.ts";
 * assert.equal(await localAddressTowards("127.0.0.1"), "127.0.0.1");
 * ```
 */
export async function localAddressTowards(
  gateway: string,
  options: LocalAddressOptions = {},
): Promise<string | undefined> {
  const { port = 5351, signal } = options;
  signal?.throwIfAborted();
  const target = ipv4Bytes(gateway);
  if (target === undefined) return undefined;
  if (target[0] === 127) return "127.0.0.1";
  const connected = await connectedAddress(gateway, port).catch(() => undefined);
  signal?.throwIfAborted();
  if (connected !== undefined && connected !== "0.0.0.0") return connected;
  const wanted = toNumber(target);
  for (const info of Deno.networkInterfaces()) {
    if (info.family !== "IPv4") continue;
    const address = ipv4Bytes(info.address);
    const mask = ipv4Bytes(info.netmask);
    if (!address || !mask || toNumber(mask) === 0) continue;
    if (((toNumber(address) ^ wanted) & toNumber(mask)) === 0) return info.address;
  }
  return undefined;
}

function toNumber(bytes: Uint8Array): number {
  return ((bytes[0] << 24) | (bytes[1] << 16) | (bytes[2] << 8) | bytes[3]) >>> 0;
}

function connectedAddress(gateway: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket("udp4");
    socket.once("error", (error) => {
      socket.close();
      reject(error);
    });
    socket.connect(port, gateway, () => {
      const { address } = socket.address();
      socket.close();
      resolve(address);
    });
  });
}
