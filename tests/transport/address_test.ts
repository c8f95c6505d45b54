import assert from "node:assert/strict";
import fc from "fast-check";
import { CarrierError, TransportAddressError } from "../../lib/errors.ts";
import {
  formatTransportAddress,
  parseTransportAddress,
  type TransportAddress,
} from "../../lib/transport/address.ts";

function assertAddressError(fn: () => unknown, message: string): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof TransportAddressError, `got ${error}`);
    assert.ok(error instanceof CarrierError);
    assert.equal(error.message, message);
    return true;
  });
}

Deno.test("parseTransportAddress reads the three forms", () => {
  const cases: [string, TransportAddress][] = [
    ["127.0.0.1:0", { scheme: "tcp", host: "127.0.0.1", port: 0 }],
    ["[::1]:4000", { scheme: "tcp", host: "::1", port: 4000 }],
    ["[fe80::1%eth0]:65535", { scheme: "tcp", host: "fe80::1%eth0", port: 65535 }],
    ["[::ffff:10.0.0.1]:80", { scheme: "tcp", host: "::ffff:10.0.0.1", port: 80 }],
    ["node-1.example.org:4001", { scheme: "tcp", host: "node-1.example.org", port: 4001 }],
    ["mem:alice", { scheme: "mem", name: "alice" }],
    ["mem:0", { scheme: "mem", name: "0" }],
    ["mem:80", { scheme: "mem", name: "80" }], // never TCP host "mem"
    ["ws://127.0.0.1:8080", { scheme: "ws", host: "127.0.0.1", port: 8080 }],
    ["WSS://[::1]:443/p2p", { scheme: "wss", host: "::1", port: 443, path: "/p2p" }],
    ["ws://example.org", { scheme: "ws", host: "example.org" }],
    ["ws://example.org/", { scheme: "ws", host: "example.org", path: "/" }],
    ["relay+v1://10.0.0.1:1/x?y", { scheme: "relay+v1", host: "10.0.0.1", port: 1, path: "/x?y" }],
  ];
  for (const [text, address] of cases) {
    assert.deepEqual(parseTransportAddress(text), address, text);
  }
});

Deno.test("formatTransportAddress writes what parseTransportAddress reads", () => {
  for (
    const text of [
      "127.0.0.1:0",
      "10.0.0.1:65535",
      "[::1]:4000",
      "[2001:db8::5]:1",
      "[fe80::1%eth0]:80",
      "localhost:80",
      "mem:alice",
      "mem:0",
      "ws://127.0.0.1:8080",
      "ws://[::1]:8080/carrier",
      "wss://example.org/",
      "ws://example.org",
    ]
  ) {
    assert.equal(formatTransportAddress(parseTransportAddress(text)), text);
  }
  assert.equal(formatTransportAddress({ scheme: "tcp", host: "::1", port: 4000 }), "[::1]:4000");
  // The scheme is case-insensitive and written in lower case.
  assert.equal(formatTransportAddress(parseTransportAddress("WS://h:1")), "ws://h:1");
});

Deno.test("parse ∘ format is the identity on TCP and memory addresses", () => {
  const v4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255))
    .map((o) => o.join("."));
  const v6 = fc.array(fc.nat(0xffff), { minLength: 8, maxLength: 8 })
    .map((g) => g.map((x) => x.toString(16)).join(":"));
  const tcp = fc.record({
    scheme: fc.constant("tcp"),
    host: fc.oneof(v4, v6, fc.constantFrom("localhost", "a.example.org")),
    port: fc.nat(65535),
  });
  const mem = fc.record({
    scheme: fc.constant("mem"),
    name: fc.stringMatching(/^[!-~]{1,255}$/),
  });
  fc.assert(
    fc.property(fc.oneof(tcp, mem), (address: TransportAddress) => {
      assert.deepEqual(parseTransportAddress(formatTransportAddress(address)), { ...address });
    }),
  );
});

Deno.test("parseTransportAddress rejects malformed text with a typed error naming it", () => {
  const cases: [string, string][] = [
    ["127.0.0.1", 'Cannot parse address "127.0.0.1": missing ":port"'],
    [
      "::1:80",
      'Cannot parse address "::1:80": an IPv6 address must be in brackets, as in "[::1]:4000"',
    ],
    ["[::1]", 'Cannot parse address "[::1]": missing ":port" after "]"'],
    ["[::1:80", 'Cannot parse address "[::1:80": missing "]" after the IPv6 address'],
    [
      "[example.org]:80",
      'Cannot parse address "[example.org]:80": "example.org" in brackets is not an IPv6 address',
    ],
    [":80", 'Cannot parse address ":80": missing host before the port'],
    ["", 'Cannot parse address "": missing ":port"'],
    [
      "localhost:65536",
      'Cannot parse address "localhost:65536": port "65536" is not a number from 0 to 65535',
    ],
    ["mem:", 'Cannot parse address "mem:": empty name'],
    ["mem:a b", 'Cannot parse address "mem:a b": name contains whitespace'],
    [
      "tcp://1.2.3.4:80",
      'Cannot parse address "tcp://1.2.3.4:80": a tcp address is written HOST:PORT, without "tcp://"',
    ],
    ["ws://", 'Cannot parse address "ws://": missing host'],
    ["ws://h:x", 'Cannot parse address "ws://h:x": port "x" is not a number from 0 to 65535'],
    [
      "ws://h/a b",
      'Cannot parse address "ws://h/a b": path "/a b" has whitespace or a character outside printable ASCII',
    ],
  ];
  for (const [text, message] of cases) {
    assertAddressError(() => parseTransportAddress(text), message);
  }
  assertAddressError(
    () => parseTransportAddress(80 as unknown as string),
    "Cannot parse address: expected a string, got number",
  );
});

Deno.test("parseTransportAddress with a scheme rejects an address of another", () => {
  assert.deepEqual(parseTransportAddress("mem:a", "mem"), { scheme: "mem", name: "a" });
  assertAddressError(
    () => parseTransportAddress("mem:alice", "tcp"),
    'Cannot parse address "mem:alice": expected a tcp address (HOST:PORT)',
  );
  assertAddressError(
    () => parseTransportAddress("127.0.0.1:1", "mem"),
    'Cannot parse address "127.0.0.1:1": expected a mem address (mem:NAME)',
  );
  assertAddressError(
    () => parseTransportAddress("127.0.0.1:1", "ws"),
    'Cannot parse address "127.0.0.1:1": expected a ws address (ws://HOST:PORT)',
  );
});

Deno.test("formatTransportAddress rejects an address its scheme cannot write", () => {
  const cases: [TransportAddress, string][] = [
    [
      { scheme: "tcp", host: "localhost", port: 70000 },
      'Cannot format address of host "localhost": port 70000 is not an integer from 0 to 65535',
    ],
    [{ scheme: "tcp", host: "localhost" }, "Cannot format tcp address: missing port"],
    [{ scheme: "tcp", port: 1 }, "Cannot format tcp address: missing host"],
    [
      { scheme: "tcp", host: "ho st", port: 1 },
      'Cannot format tcp address: host "ho st" has a character not allowed in a host name',
    ],
    [
      { scheme: "tcp", host: "[::1]", port: 1 },
      'Cannot format tcp address: "[::1]" is not an IPv6 address',
    ],
    [{ scheme: "mem" }, "Cannot format mem address: missing name"],
    [{ scheme: "mem", name: "" }, "Cannot format mem address: empty name"],
    [
      { scheme: "Ws", host: "h" },
      'Cannot format address: scheme "Ws" is not a lower-case scheme name',
    ],
    [
      { scheme: "ws", host: "h", path: "p" },
      'Cannot format ws address: path "p" does not start with "/" or is not printable ASCII',
    ],
  ];
  for (const [address, message] of cases) {
    assertAddressError(() => formatTransportAddress(address), message);
  }
});
