import assert from "node:assert/strict";
import { parseTransportAddress } from "../../lib/transport/address.ts";
import { hostPrefixOf, ipPrefixOf, isLoopback, subnetOf } from "../../lib/transport/ip.ts";

Deno.test("subnetOf reads /24 and /48 prefixes", () => {
  assert.equal(subnetOf("192.0.2.77:80"), "192.0.2");
  assert.equal(subnetOf("[2001:db8:abcd:12::1]:80"), "2001:db8:abcd");
  assert.equal(subnetOf("[2001:db8::1]:80"), "2001:db8:0");
  assert.equal(subnetOf("[2001:0DB8:0001::1]:80"), "2001:db8:1");
  assert.equal(subnetOf("[::1]:80"), "0:0:0");
  assert.equal(subnetOf("mem:alice"), undefined);
  assert.equal(subnetOf("localhost:80"), undefined);
  assert.equal(subnetOf("not an address"), undefined);
  assert.equal(subnetOf("999.0.0.1:80"), undefined);
});

Deno.test("the IP facts read any scheme with an IP host, text or parsed", () => {
  assert.equal(subnetOf("ws://192.0.2.77:80/p"), "192.0.2");
  assert.equal(subnetOf(parseTransportAddress("[2001:db8:1::5]:4000")), "2001:db8:1");
  assert.equal(hostPrefixOf({ scheme: "ws", host: "10.1.2.3" }), "10.1.2.3");
  assert.ok(isLoopback("ws://[::1]:80"));
});

Deno.test("hostPrefixOf is the IPv4 address or the IPv6 /64", () => {
  assert.equal(hostPrefixOf("192.168.1.20:4000"), "192.168.1.20");
  assert.equal(hostPrefixOf("[2001:db8::5]:4000"), "2001:db8:0:0");
  assert.equal(hostPrefixOf("[2001:db8:0:0:ffff::5]:4000"), "2001:db8:0:0");
  assert.equal(hostPrefixOf("[fe80::1%eth0]:4000"), "fe80:0:0:0");
  assert.equal(ipPrefixOf("[::1]:4000", 4, 8), "0:0:0:0:0:0:0:1");
  assert.equal(ipPrefixOf("[1::]:4000", 4, 8), "1:0:0:0:0:0:0:0");
});

Deno.test("an IPv4-mapped IPv6 address counts as its IPv4 address", () => {
  // What a dual-stack listener ([::]:PORT) reports for an IPv4 peer: each
  // counts against its own IPv4 address and /24, not one shared ::ffff:0:0/64.
  assert.equal(hostPrefixOf("[::ffff:192.0.2.1]:4000"), "192.0.2.1");
  assert.equal(hostPrefixOf("[::ffff:c000:201]:4000"), "192.0.2.1");
  assert.equal(subnetOf("[::ffff:192.0.2.1]:4000"), "192.0.2");
  assert.ok(isLoopback("[::ffff:127.0.0.1]:4000"));
});

Deno.test("malformed IPv6 hosts have no IP facts", () => {
  for (const host of ["1::2::3", "1:2:3:4:5:6:7:8:9", "1:2:3", "12345::", "1:2:3:4:5:6:7::8"]) {
    assert.equal(ipPrefixOf({ scheme: "tcp", host, port: 1 }, 4, 8), undefined, host);
  }
});

Deno.test("isLoopback is 127.0.0.0/8 and ::1 only", () => {
  assert.ok(isLoopback("127.0.0.1:4000"));
  assert.ok(isLoopback("127.255.0.9:1"));
  assert.ok(isLoopback("[::1]:4000"));
  assert.ok(isLoopback("[0:0:0:0:0:0:0:1]:4000"));
  assert.ok(!isLoopback("10.0.0.1:4000"));
  assert.ok(!isLoopback("[::2]:4000"));
  assert.ok(!isLoopback("localhost:4000")); // a name, not an address
  assert.ok(!isLoopback("mem:a"));
  assert.ok(!isLoopback("127.example.org:80"));
});
