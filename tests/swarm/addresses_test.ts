// The address rules (lib/swarm/addresses.ts): what a node binds apart from
// what it announces, and its reachability.
import assert from "node:assert/strict";
import { AddressBook, type AddressChange, type AddressSnapshot } from "../../mod.ts";

const HOST = ["127.0.0.1", "::1", "192.168.1.20", "80.100.100.10", "fe80::1", "2001:db8::7"];

Deno.test("AddressBook: a wildcard is expanded to the interfaces, public first, never loopback or link-local beside others", () => {
  const book = new AddressBook({ interfaces: () => HOST });
  book.setBound(["0.0.0.0:4000"]);
  assert.deepEqual(book.listenAddrs, ["80.100.100.10:4000", "192.168.1.20:4000"]);
  book.setBound(["[::]:4001"]); // dual stack: IPv6 and IPv4 interfaces
  assert.deepEqual(book.listenAddrs, [
    "80.100.100.10:4001",
    "[2001:db8::7]:4001",
    "192.168.1.20:4001",
  ]);
  assert.ok(book.listenAddrs.every((a) => !a.startsWith("0.0.0.0") && !a.startsWith("[::]")));
});

Deno.test("AddressBook: loopback only when the host has nothing else; an explicit host is kept as bound", () => {
  const lonely = new AddressBook({ interfaces: () => ["127.0.0.1", "::1"] });
  lonely.setBound(["0.0.0.0:4000"]);
  assert.deepEqual(lonely.listenAddrs, ["127.0.0.1:4000"]);
  const none = new AddressBook({ interfaces: () => [] }); // e.g. no --allow-sys
  none.setBound(["0.0.0.0:4000", "10.0.0.1:4002"]);
  assert.deepEqual(none.listenAddrs, ["10.0.0.1:4002"]);
  assert.equal(none.acceptsInbound, true);
  none.setBound(["0.0.0.0:4000"]);
  assert.deepEqual(none.listenAddrs, []);
  assert.equal(none.acceptsInbound, false, "nothing to announce: no inbound connections");
});

Deno.test("AddressBook: announce replaces the expansion; external addresses come first; nothing unannounceable", () => {
  const book = new AddressBook({
    interfaces: () => HOST,
    announce: ["203.0.113.9:4000", "0.0.0.0:1", "10.0.0.1:0"],
  });
  book.setBound(["0.0.0.0:4000"]);
  assert.deepEqual(book.listenAddrs, ["203.0.113.9:4000"]);
  book.setExternal("nat", ["80.100.100.1:31000"]);
  assert.deepEqual(book.listenAddrs, ["80.100.100.1:31000", "203.0.113.9:4000"]);
  book.setExternal("nat", []);
  assert.deepEqual(book.listenAddrs, ["203.0.113.9:4000"]);
});

Deno.test("AddressBook: reachability decides accepts_inbound; confirmed observed addresses are announced", () => {
  const book = new AddressBook({ interfaces: () => ["10.77.0.2"] });
  const changes: [AddressSnapshot, AddressChange][] = [];
  book.onChange((s, c) => changes.push([s, c]));
  book.setBound(["0.0.0.0:4000"]);
  assert.equal(book.reachability, "unknown");
  assert.equal(book.acceptsInbound, true, "unknown: accepts, as before reachability was known");
  book.setReachability("private");
  assert.equal(book.acceptsInbound, false);
  assert.deepEqual(book.listenAddrs, ["10.77.0.2:4000"], "still listed, for the LAN");
  book.setReachability("public", ["80.100.100.1:4000"]);
  assert.deepEqual(book.listenAddrs, ["80.100.100.1:4000", "10.77.0.2:4000"]);
  assert.deepEqual(changes.map(([s, c]) => [c, s.acceptsInbound]), [
    ["bound", true],
    ["reachability", false],
    ["reachability", true],
  ]);
  book.setReachability("public", ["80.100.100.1:4000"]);
  assert.equal(changes.length, 3, "no change, no notification");
});

Deno.test("AddressBook: fixed reachability is never changed by dial-backs", () => {
  const book = new AddressBook({ interfaces: () => ["10.0.0.2"], reachability: "private" });
  book.setBound(["0.0.0.0:4000"]);
  assert.equal(book.probing, false);
  assert.equal(book.acceptsInbound, false);
  book.setReachability("public");
  assert.equal(book.acceptsInbound, false);
});

Deno.test("AddressBook: observed addresses are kept per peer, bounded, and give dial-back candidates", () => {
  const book = new AddressBook({ interfaces: () => ["10.77.0.2"] });
  book.setBound(["0.0.0.0:4000"]);
  for (let i = 0; i < 100; i++) book.observe(`peer${i}`, `80.100.100.1:${30000 + i}`);
  book.observe("peer99", "[::ffff:80.100.100.1]:5"); // a dual-stack listener's form
  book.observe("mem", "");
  assert.equal(book.observedBy("peer0"), undefined, "the oldest observers are forgotten");
  assert.deepEqual(book.observedHosts(), [{ host: "80.100.100.1", peers: 64 }]);
  assert.deepEqual(book.dialBackCandidates("80.100.100.1"), ["80.100.100.1:4000"]);
  book.setExternal("nat", ["80.100.100.1:31000"]);
  assert.deepEqual(book.dialBackCandidates("80.100.100.1"), [
    "80.100.100.1:31000",
    "80.100.100.1:4000",
  ]);
  assert.deepEqual(book.dialBackCandidates("10.77.0.2"), ["10.77.0.2:4000"]);
});
