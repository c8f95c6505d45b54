/**
 * Transport addresses: the one parser and the one formatter of the text a
 * transport dials and listens on, and that handshakes and peer addresses
 * carry. Every other module works on the parsed {@linkcode TransportAddress}
 * (or calls these two), so a new transport adds a scheme without a new parser.
 *
 * The text forms:
 *
 * | Form                          | Scheme         | Example                         |
 * | ----------------------------- | -------------- | ------------------------------- |
 * | `HOST:PORT`                   | `tcp`          | `127.0.0.1:4000`, `[::1]:4000`  |
 * | `mem:NAME`                    | `mem`          | `mem:alice`, `mem:0`            |
 * | `SCHEME://HOST[:PORT][/PATH]` | `SCHEME`, `ws` | `ws://example.org:8080/carrier` |
 *
 * TCP has no `tcp://` prefix (its form on the wire predates schemes), and a
 * text starting with `mem:` is always a memory address, never TCP host `mem`.
 *
 * @module
 */

import { TransportAddressError } from "../errors.ts";

/**
 * Scheme of `HOST:PORT` addresses (TCP).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseTransportAddress, TcpTransport } from "@carrier/p2p";
 * import { TCP_SCHEME } from "@carrier/p2p/protocol";
 * assert.equal(parseTransportAddress("127.0.0.1:4000").scheme, TCP_SCHEME);
 * assert.deepEqual(new TcpTransport().schemes, [TCP_SCHEME]);
 * ```
 */
export const TCP_SCHEME = "tcp";

/**
 * Scheme of `mem:NAME` addresses (the in-memory transport).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseTransportAddress } from "@carrier/p2p";
 * import { MEMORY_SCHEME } from "@carrier/p2p/protocol";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
 * assert.equal(parseTransportAddress("mem:alice").scheme, MEMORY_SCHEME);
 * assert.deepEqual(new MemoryNetwork().transport().schemes, [MEMORY_SCHEME]);
 * ```
 */
export const MEMORY_SCHEME = "mem";

/**
 * A parsed transport address. Which fields are set depends on the scheme:
 * `host` and `port` for `tcp`, `name` for `mem`, `host` and, when the text
 * has them, `port` and `path` for `SCHEME://…` forms.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseTransportAddress, type TransportAddress } from "@carrier/p2p";
 * const address: TransportAddress = parseTransportAddress("[::1]:4000");
 * assert.deepEqual(address, { scheme: "tcp", host: "::1", port: 4000 });
 * ```
 */
export interface TransportAddress {
  /** `"tcp"` for `HOST:PORT`, `"mem"` for `mem:NAME`, else the lower-case `SCHEME` of `SCHEME://…`. */
  readonly scheme: string;
  /** A host name or IP address; IPv6 without brackets (`"::1"`). */
  readonly host?: string;
  /** A port from 0 to 65535; 0 asks the system for a free port when listening. */
  readonly port?: number;
  /** The name of a memory address (`"0"` asks `listen` for a fresh one). */
  readonly name?: string;
  /** The path of a `SCHEME://…` address, starting with `/`. */
  readonly path?: string;
}

const PORT_PATTERN = /^[0-9]{1,5}$/;
const HOSTNAME_PATTERN = /^[A-Za-z0-9._-]+$/;
const IPV6_PATTERN = /^[0-9A-Fa-f:.]+(%[A-Za-z0-9._-]+)?$/;
const SCHEME_PATTERN = /^[a-z][a-z0-9+.-]*$/;
const URL_PREFIX = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//;
const PATH_PATTERN = /^\/[\x21-\x7e]*$/;
const MEMORY_PREFIX = `${MEMORY_SCHEME}:`;

/** Longest name after `"mem:"`. */
const MAX_MEMORY_NAME_LENGTH = 255;

/** How an address of `scheme` is written, for messages. */
function formOf(scheme: string): string {
  if (scheme === TCP_SCHEME) return "HOST:PORT";
  if (scheme === MEMORY_SCHEME) return "mem:NAME";
  return `${scheme}://HOST:PORT`;
}

/** The scheme `text` is written in, from its syntax alone (no validation). */
function schemeOf(text: string): string {
  if (text.startsWith(MEMORY_PREFIX)) return MEMORY_SCHEME;
  const url = URL_PREFIX.exec(text);
  return url === null ? TCP_SCHEME : url[1].toLowerCase();
}

type Fail = (why: string) => never;

/** Why `name` is not a memory name, or undefined when it is one. */
function memoryNameProblem(name: string): string | undefined {
  if (name === "") return "empty name";
  if (name.length > MAX_MEMORY_NAME_LENGTH) {
    return `name of ${name.length} characters exceeds ${MAX_MEMORY_NAME_LENGTH}`;
  }
  if (/\s/.test(name)) return "name contains whitespace";
  return undefined;
}

/** Why `host` cannot be written in an address, or undefined when it can. */
function hostProblem(host: string): string | undefined {
  if (host === "") return "missing host";
  if (host.includes(":")) {
    return IPV6_PATTERN.test(host) ? undefined : `"${host}" is not an IPv6 address`;
  }
  return HOSTNAME_PATTERN.test(host)
    ? undefined
    : `host "${host}" has a character not allowed in a host name`;
}

function validPort(port: number): boolean {
  return Number.isInteger(port) && port >= 0 && port <= 65535;
}

/** Reads `host:port` or `[ipv6]:port` (the port optional unless `portRequired`). */
function parseAuthority(
  text: string,
  fail: Fail,
  portRequired: boolean,
): { host: string; port?: number } {
  let host: string;
  let portText: string | undefined;
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close === -1) fail(`missing "]" after the IPv6 address`);
    host = text.slice(1, close);
    if (close + 1 < text.length || portRequired) {
      if (text[close + 1] !== ":") fail(`missing ":port" after "]"`);
      portText = text.slice(close + 2);
    }
    if (!host.includes(":") || !IPV6_PATTERN.test(host)) {
      fail(`"${host}" in brackets is not an IPv6 address`);
    }
  } else {
    const colon = text.lastIndexOf(":");
    if (colon === -1 && portRequired) fail(`missing ":port"`);
    host = colon === -1 ? text : text.slice(0, colon);
    portText = colon === -1 ? undefined : text.slice(colon + 1);
    if (host.includes(":")) {
      fail(`an IPv6 address must be in brackets, as in "[::1]:4000"`);
    }
    if (host === "") fail(portText === undefined ? "missing host" : "missing host before the port");
    const problem = hostProblem(host);
    if (problem !== undefined) fail(problem);
  }
  if (portText === undefined) return { host };
  const port = Number(portText);
  if (!PORT_PATTERN.test(portText) || port > 65535) {
    fail(`port "${portText}" is not a number from 0 to 65535`);
  }
  return { host, port };
}

/**
 * Parses a transport address: `HOST:PORT` (IPv6 as `[V6]:PORT`), `mem:NAME`,
 * or `SCHEME://HOST[:PORT][/PATH]`. The one place address text is read.
 *
 * @param text The address text.
 * @param scheme When given, the scheme the address must have (a transport
 * checking what it was handed).
 * @returns The parsed address; {@linkcode formatTransportAddress} writes it back.
 * @throws {TransportAddressError} Naming the input and why, e.g.
 * `Cannot parse address "127.0.0.1": missing ":port"`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseTransportAddress, TransportAddressError } from "@carrier/p2p";
 * assert.deepEqual(parseTransportAddress("10.0.0.1:80"), { scheme: "tcp", host: "10.0.0.1", port: 80 });
 * assert.deepEqual(parseTransportAddress("mem:alice"), { scheme: "mem", name: "alice" });
 * assert.deepEqual(parseTransportAddress("ws://[::1]:8080/p2p"), {
 *   scheme: "ws",
 *   host: "::1",
 *   port: 8080,
 *   path: "/p2p",
 * });
 * assert.throws(() => parseTransportAddress("::1:80"), TransportAddressError); // needs brackets
 * assert.throws(() => parseTransportAddress("mem:alice", "tcp"), TransportAddressError);
 * ```
 */
export function parseTransportAddress(text: string, scheme?: string): TransportAddress {
  if (typeof text !== "string") {
    throw new TransportAddressError(
      `Cannot parse address: expected a string, got ${typeof text}`,
    );
  }
  const fail: Fail = (why) => {
    throw new TransportAddressError(`Cannot parse address ${JSON.stringify(text)}: ${why}`);
  };
  const written = schemeOf(text);
  if (scheme !== undefined && written !== scheme) {
    fail(`expected a ${scheme} address (${formOf(scheme)})`);
  }
  if (written === MEMORY_SCHEME) {
    const name = text.slice(MEMORY_PREFIX.length);
    const problem = memoryNameProblem(name);
    if (problem !== undefined) fail(problem);
    return { scheme: MEMORY_SCHEME, name };
  }
  if (written === TCP_SCHEME) {
    if (URL_PREFIX.test(text)) fail(`a tcp address is written HOST:PORT, without "tcp://"`);
    const { host, port } = parseAuthority(text, fail, true);
    return { scheme: TCP_SCHEME, host, port };
  }
  const rest = text.slice(text.indexOf("//") + 2);
  const slash = rest.indexOf("/");
  const authority = slash === -1 ? rest : rest.slice(0, slash);
  const path = slash === -1 ? undefined : rest.slice(slash);
  if (path !== undefined && !PATH_PATTERN.test(path)) {
    fail(`path "${path}" has whitespace or a character outside printable ASCII`);
  }
  const { host, port } = parseAuthority(authority, fail, false);
  return {
    scheme: written,
    host,
    ...(port === undefined ? {} : { port }),
    ...(path === undefined ? {} : { path }),
  };
}

/**
 * Writes a transport address in its text form: `HOST:PORT` (IPv6 in
 * brackets) for `tcp`, `mem:NAME` for `mem`, `SCHEME://HOST[:PORT][/PATH]`
 * for any other scheme. {@linkcode parseTransportAddress} reads the result
 * back to an equal address.
 *
 * @param address The address; the fields its scheme needs must be set.
 * @returns The address text.
 * @throws {TransportAddressError} When a field its scheme needs is missing or
 * invalid (a port outside 0 to 65535, a host with a space, …).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatTransportAddress, parseTransportAddress } from "@carrier/p2p";
 * assert.equal(formatTransportAddress({ scheme: "tcp", host: "::1", port: 4000 }), "[::1]:4000");
 * assert.equal(formatTransportAddress({ scheme: "mem", name: "alice" }), "mem:alice");
 * const text = "ws://example.org:8080/carrier";
 * assert.equal(formatTransportAddress(parseTransportAddress(text)), text);
 * ```
 */
export function formatTransportAddress(address: TransportAddress): string {
  const { scheme, host, port, name, path } = address;
  const fail: Fail = (why) => {
    throw new TransportAddressError(`Cannot format ${scheme} address: ${why}`);
  };
  if (scheme === MEMORY_SCHEME) {
    if (name === undefined) fail("missing name");
    const problem = memoryNameProblem(name!);
    if (problem !== undefined) fail(problem);
    return MEMORY_PREFIX + name;
  }
  if (typeof scheme !== "string" || !SCHEME_PATTERN.test(scheme)) {
    throw new TransportAddressError(
      `Cannot format address: scheme ${JSON.stringify(scheme)} is not a lower-case scheme name`,
    );
  }
  if (host === undefined) fail("missing host");
  const problem = hostProblem(host!);
  if (problem !== undefined) fail(problem);
  const hostText = host!.includes(":") ? `[${host}]` : host!;
  if (port !== undefined && !validPort(port)) {
    throw new TransportAddressError(
      `Cannot format address of host ${
        JSON.stringify(host)
      }: port ${port} is not an integer from 0 to 65535`,
    );
  }
  if (scheme === TCP_SCHEME) {
    if (port === undefined) fail("missing port");
    return `${hostText}:${port}`;
  }
  if (path !== undefined && !PATH_PATTERN.test(path)) {
    fail(`path "${path}" does not start with "/" or is not printable ASCII`);
  }
  return `${scheme}://${hostText}${port === undefined ? "" : `:${port}`}${path ?? ""}`;
}
