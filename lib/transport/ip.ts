/**
 * IP facts about transport addresses, for the limits that count peers per IP
 * address or per subnet: {@linkcode isLoopback}, {@linkcode subnetOf} (the
 * IPv4 /24 or IPv6 /48 of the routing table's diversity limit),
 * {@linkcode hostPrefixOf} (the IPv4 address or IPv6 /64 of the per-IP
 * connection shares) and the general {@linkcode ipPrefixOf}.
 *
 * They read any {@linkcode TransportAddress} whose host is an IP literal,
 * whatever its scheme (`HOST:PORT`, `ws://HOST:PORT`, …); a host name or a
 * memory address has no IP facts. An IPv4-mapped IPv6 address
 * (`::ffff:10.0.0.1`, what a dual-stack listener reports for an IPv4 peer)
 * counts as the IPv4 address it maps.
 *
 * @module
 */

import { parseTransportAddress, type TransportAddress } from "./address.ts";

/** An IP address: 4 bytes (IPv4) or 16 (IPv6). */
type IpBytes = Uint8Array;

const IPV4_PATTERN = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;
const HEX_GROUP = /^[0-9A-Fa-f]{1,4}$/;

function parseIpv4(text: string): IpBytes | undefined {
  const match = IPV4_PATTERN.exec(text);
  if (match === null) return undefined;
  const bytes = match.slice(1).map(Number);
  return bytes.every((b) => b <= 255) ? Uint8Array.from(bytes) : undefined;
}

/** 16 bytes of an IPv6 literal (zone and all), or undefined when it is not one. */
function parseIpv6(text: string): IpBytes | undefined {
  const zone = text.indexOf("%");
  const bare = zone === -1 ? text : text.slice(0, zone);
  const halves = bare.split("::");
  if (halves.length > 2) return undefined;
  const groupsOf = (half: string): number[] | undefined => {
    if (half === "") return [];
    const parts = half.split(":");
    const out: number[] = [];
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i];
      if (i === parts.length - 1 && part.includes(".")) {
        const v4 = parseIpv4(part); // a dotted tail: ::ffff:1.2.3.4
        if (v4 === undefined) return undefined;
        out.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
      } else if (HEX_GROUP.test(part)) {
        out.push(parseInt(part, 16));
      } else {
        return undefined;
      }
    }
    return out;
  };
  const head = groupsOf(halves[0]);
  const tail = halves.length === 2 ? groupsOf(halves[1]) : [];
  if (head === undefined || tail === undefined) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const groups = [...head, ...Array(missing).fill(0), ...tail];
  const bytes = new Uint8Array(16);
  groups.forEach((g, i) => {
    bytes[2 * i] = g >> 8;
    bytes[2 * i + 1] = g & 0xff;
  });
  return bytes;
}

/**
 * The IP of address texts read lately: the limits ask about the same few
 * addresses (contacts' listen addresses, peers' remote addresses) over and
 * over. Bounded: emptied when full.
 */
const recent = new Map<string, IpBytes | null>();
const RECENT_MAX = 1024;

/** The IP address of `address`'s host (IPv4-mapped IPv6 as IPv4), if it is an IP literal. */
function ipOf(address: string | TransportAddress): IpBytes | undefined {
  if (typeof address !== "string") return ipOfHost(address.host);
  const known = recent.get(address);
  if (known !== undefined) return known ?? undefined;
  let ip: IpBytes | undefined;
  try {
    ip = ipOfHost(parseTransportAddress(address).host);
  } catch {
    ip = undefined;
  }
  if (recent.size >= RECENT_MAX) recent.clear();
  recent.set(address, ip ?? null);
  return ip;
}

function ipOfHost(host: string | undefined): IpBytes | undefined {
  if (host === undefined) return undefined;
  if (!host.includes(":")) return parseIpv4(host);
  const v6 = parseIpv6(host);
  if (v6 === undefined) return undefined;
  const mapped = v6.subarray(0, 10).every((b) => b === 0) && v6[10] === 0xff && v6[11] === 0xff;
  return mapped ? v6.slice(12) : v6;
}

/**
 * The first `octets` of an IPv4 host, or the first `groups` 16-bit groups of
 * an IPv6 host (in lower-case hex without leading zeros), joined by "." or
 * ":"; `undefined` when the host is not an IP address (a name, a memory
 * address, malformed text).
 *
 * @param address A transport address, as text or parsed.
 * @param octets How many of an IPv4 address's 4 octets to keep.
 * @param groups How many of an IPv6 address's 8 groups to keep.
 * @returns The prefix, or `undefined`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ipPrefixOf } from "./ip.ts";
 * assert.equal(ipPrefixOf("192.168.1.20:4000", 4, 4), "192.168.1.20"); // the host
 * assert.equal(ipPrefixOf("[2001:db8::5]:4000", 4, 4), "2001:db8:0:0"); // its /64
 * assert.equal(ipPrefixOf("[::1]:4000", 4, 8), "0:0:0:0:0:0:0:1");
 * assert.equal(ipPrefixOf("localhost:4000", 4, 8), undefined);
 * ```
 */
export function ipPrefixOf(
  address: string | TransportAddress,
  octets: number,
  groups: number,
): string | undefined {
  const ip = ipOf(address);
  if (ip === undefined) return undefined;
  if (ip.length === 4) return [...ip.subarray(0, octets)].join(".");
  const out: string[] = [];
  for (let i = 0; i < Math.min(groups, 8); i++) {
    out.push(((ip[2 * i] << 8) | ip[2 * i + 1]).toString(16));
  }
  return out.join(":");
}

/**
 * The subnet a transport address belongs to for the diversity limit:
 * `a.b.c` for IPv4 (/24), the first three groups for IPv6 (/48), undefined
 * for other addresses (memory transport, names).
 *
 * @param address A transport address, as text or parsed.
 * @returns The subnet, or `undefined`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { subnetOf } from "./ip.ts";
 * assert.equal(subnetOf("192.168.1.20:4000"), "192.168.1"); // IPv4 /24
 * assert.equal(subnetOf("[2001:db8:1::5]:4000"), "2001:db8:1"); // IPv6 /48
 * assert.equal(subnetOf("mem:alice"), undefined);
 * ```
 */
export function subnetOf(address: string | TransportAddress): string | undefined {
  return ipPrefixOf(address, 3, 3);
}

/**
 * The IP address a per-IP share counts a transport address against: the
 * IPv4 address, or an IPv6 address's /64 (one host usually holds a whole
 * /64); undefined for other addresses.
 *
 * @param address A transport address, as text or parsed.
 * @returns The address or prefix, or `undefined`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { hostPrefixOf } from "./ip.ts";
 * assert.equal(hostPrefixOf("192.168.1.20:4000"), "192.168.1.20");
 * assert.equal(hostPrefixOf("[2001:db8::5]:4000"), "2001:db8:0:0");
 * assert.equal(hostPrefixOf("[::ffff:192.168.1.20]:4000"), "192.168.1.20"); // IPv4-mapped
 * ```
 */
export function hostPrefixOf(address: string | TransportAddress): string | undefined {
  return ipPrefixOf(address, 4, 4);
}

/**
 * Whether a transport address is on a loopback address (127.0.0.0/8 or ::1).
 *
 * @param address A transport address, as text or parsed.
 * @returns `true` for a loopback IP host, `false` otherwise (names included).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isLoopback } from "./ip.ts";
 * assert(isLoopback("127.0.0.2:4000") && isLoopback("[::1]:4000"));
 * assert(!isLoopback("10.0.0.1:4000") && !isLoopback("mem:a"));
 * ```
 */
export function isLoopback(address: string | TransportAddress): boolean {
  const ip = ipOf(address);
  if (ip === undefined) return false;
  if (ip.length === 4) return ip[0] === 127;
  return ip.subarray(0, 15).every((b) => b === 0) && ip[15] === 1;
}

/**
 * What an IP address can be reached from, for the address rules (which
 * addresses a node announces, which a peer keeps) and the double-NAT check:
 *
 * - `unspecified`: a wildcard (`0.0.0.0`, `::`), never an address to dial;
 * - `loopback`: this host only (127/8, `::1`);
 * - `link-local`: this link only (169.254/16, fe80::/10);
 * - `private`: a site behind NAT (10/8, 172.16/12, 192.168/16, fc00::/7) or
 *   carrier-grade NAT space (100.64/10, RFC 6598);
 * - `public`: anything else.
 */
export type IpScope = "unspecified" | "loopback" | "link-local" | "private" | "public";

/**
 * The {@linkcode IpScope} of an address: a bare IP literal (`10.0.0.1`,
 * `::1`) or a transport address (`10.0.0.1:4000`, `[::1]:4000`);
 * `undefined` when it names no IP (a host name, a memory address).
 *
 * @param address An IP literal or a transport address, as text or parsed.
 * @returns The scope, or `undefined`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ipScope } from "./ip.ts";
 * assert.equal(ipScope("0.0.0.0:4000"), "unspecified");
 * assert.equal(ipScope("[::]:4000"), "unspecified");
 * assert.equal(ipScope("100.64.0.7"), "private"); // CGNAT space
 * assert.equal(ipScope("192.168.1.2:4000"), "private");
 * assert.equal(ipScope("fe80::1"), "link-local");
 * assert.equal(ipScope("80.100.100.1:4000"), "public");
 * assert.equal(ipScope("mem:a"), undefined);
 * ```
 */
export function ipScope(address: string | TransportAddress): IpScope | undefined {
  const ip = typeof address === "string" ? ipOfHost(address) ?? ipOf(address) : ipOf(address);
  if (ip === undefined) return undefined;
  if (ip.every((b) => b === 0)) return "unspecified";
  if (ip.length === 4) {
    const [a, b] = ip;
    if (a === 127) return "loopback";
    if (a === 0) return "unspecified";
    if (a === 169 && b === 254) return "link-local";
    if (a === 10 || (a === 172 && (b & 0xf0) === 16) || (a === 192 && b === 168)) return "private";
    if (a === 100 && (b & 0xc0) === 64) return "private";
    return "public";
  }
  if (ip.subarray(0, 15).every((b) => b === 0) && ip[15] === 1) return "loopback";
  if (ip[0] === 0xfe && (ip[1] & 0xc0) === 0x80) return "link-local";
  if ((ip[0] & 0xfe) === 0xfc) return "private";
  return "public";
}

/**
 * Whether a node may announce `address` to others, and a receiver keep it:
 * it parses, and it is not a wildcard (`0.0.0.0`, `::`) nor a port or a
 * memory name still to be chosen (`:0`, `mem:0`). The handshake and
 * IDENTIFY drop the others (the README's address rules).
 *
 * @param address A transport address.
 * @returns `true` when it can be dialled as it is written.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isAnnounceable } from "./ip.ts";
 * assert(isAnnounceable("80.100.100.1:4000") && isAnnounceable("mem:a"));
 * assert(!isAnnounceable("0.0.0.0:4000") && !isAnnounceable("[::]:4000"));
 * assert(!isAnnounceable("10.0.0.1:0") && !isAnnounceable("mem:0") && !isAnnounceable("nonsense"));
 * ```
 */
export function isAnnounceable(address: string): boolean {
  let parsed: TransportAddress;
  try {
    parsed = parseTransportAddress(address);
  } catch {
    return false;
  }
  if (parsed.port === 0 || parsed.name === "0") return false;
  return ipScope(parsed) !== "unspecified";
}
